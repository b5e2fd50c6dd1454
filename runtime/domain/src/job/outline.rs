//! A job in parts, for a store that keeps a large fan-out's items and tasks apart from the
//! rest of the job, so that a commit writes the tasks it changed and not all of them.
//!
//! The *outline* is the job as it serializes, except that every fanned-out step has empty
//! `items` and `tasks` (and, if asked, the input is `null`; a job's input is always an
//! object); it deserializes as a [`Job`] like any other, and [`Job::restore_fan_out`] and
//! [`Job::restore_input`] put the parts back. Which tasks changed since a
//! commit is told by pointer: the state machine changes a job copy-on-write, so a task that
//! is still the same `Arc` is unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::{Job, SkipReason, StepRecord, StepWork, TaskList, TaskRecord};
use crate::failure::{JobFailure, StepError};
use crate::id::{StepId, WorkflowName};
use crate::job_id::JobId;
use crate::plugin_ref::ResolvedPlugin;
use crate::state::{JobState, StepState};
use crate::time::Timestamp;

/// Why a fan-out could not be put back into a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The job has no such step, or the step did not fan out.
    #[error("step {0} of the job did not fan out")]
    NotFannedOut(StepId),
    /// The step's items and tasks are already in the job.
    #[error("step {0} already holds its items and tasks")]
    AlreadyWhole(StepId),
    /// The job already holds its input.
    #[error("the job already holds its input")]
    InputPresent,
    /// There is not one task per item.
    #[error("step {step} has {items} items but {tasks} tasks")]
    Mismatch {
        /// The step.
        step: StepId,
        /// Items given.
        items: usize,
        /// Tasks given.
        tasks: usize,
    },
}

/// One fanned-out step of a job: what a store keeps apart.
#[derive(Debug, Clone, Copy)]
pub struct FanOutParts<'a> {
    /// The step.
    pub step: &'a StepId,
    /// The step's record: while it is the same `Arc` as at an earlier commit, no task of it
    /// changed since.
    pub record: &'a Arc<StepRecord>,
    /// The list the step fanned out over.
    pub items: &'a Arc<Vec<Value>>,
    /// One task per item, in order.
    pub tasks: &'a TaskList,
}

impl Job {
    /// The job without its fan-outs' items and tasks; see the module documentation.
    pub fn outline(&self) -> Outline<'_> {
        Outline {
            job: self,
            input: InputPlace::Inline,
        }
    }

    /// The outline without the input either, for a store that keeps a large input apart:
    /// it never changes, so it need not be written again with every commit.
    pub fn outline_without_input(&self) -> Outline<'_> {
        Outline {
            job: self,
            input: InputPlace::Apart,
        }
    }

    /// Puts the input back into a job read from an outline without it.
    pub fn restore_input(&mut self, input: Arc<Value>) -> Result<(), RestoreError> {
        if !self.input.is_null() {
            return Err(RestoreError::InputPresent);
        }
        self.input = input;
        Ok(())
    }

    /// Every step that fanned out, in step id order.
    pub fn fan_outs(&self) -> impl Iterator<Item = FanOutParts<'_>> {
        self.steps
            .iter()
            .filter_map(|(step, record)| match &record.work {
                Some(StepWork::FanOut { items, tasks }) => Some(FanOutParts {
                    step,
                    record,
                    items,
                    tasks,
                }),
                _ => None,
            })
    }

    /// Puts a fan-out's items and tasks back into a job read from its outline.
    pub fn restore_fan_out(
        &mut self,
        step: &StepId,
        items: Arc<Vec<Value>>,
        tasks: TaskList,
    ) -> Result<(), RestoreError> {
        if items.len() != tasks.len() {
            return Err(RestoreError::Mismatch {
                step: step.clone(),
                items: items.len(),
                tasks: tasks.len(),
            });
        }
        let record = self
            .steps
            .get_mut(step)
            .ok_or_else(|| RestoreError::NotFannedOut(step.clone()))?;
        match &mut Arc::make_mut(record).work {
            Some(StepWork::FanOut {
                items: held_items,
                tasks: held_tasks,
            }) => {
                if !held_items.is_empty() || !held_tasks.is_empty() {
                    return Err(RestoreError::AlreadyWhole(step.clone()));
                }
                *held_items = items;
                *held_tasks = tasks;
                Ok(())
            }
            _ => Err(RestoreError::NotFannedOut(step.clone())),
        }
    }
}

/// A job's outline, ready to serialize; see [`Job::outline`].
#[derive(Debug, Clone, Copy)]
pub struct Outline<'a> {
    job: &'a Job,
    input: InputPlace,
}

/// Whether an outline holds the job's input.
#[derive(Debug, Clone, Copy)]
enum InputPlace {
    Inline,
    Apart,
}

impl Serialize for Outline<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Listing every field, without `..`, makes a field added to `Job` a compile error
        // here rather than a field the outline silently drops.
        let Job {
            format_version,
            id,
            workflow,
            version,
            state,
            input,
            plugins,
            steps,
            output,
            failure,
            created_at,
            updated_at,
            finished_at,
            last_event_sequence,
        } = self.job;
        JobOutline {
            format_version: *format_version,
            id: *id,
            workflow,
            version: *version,
            state: *state,
            input: match self.input {
                InputPlace::Inline => input,
                InputPlace::Apart => &Value::Null,
            },
            plugins,
            steps: StepsOutline(steps),
            output: output.as_ref(),
            failure: failure.as_ref(),
            created_at: *created_at,
            updated_at: *updated_at,
            finished_at: *finished_at,
            last_event_sequence: *last_event_sequence,
        }
        .serialize(serializer)
    }
}

/// [`Job`]'s fields as it serializes them, borrowed.
#[derive(Serialize)]
struct JobOutline<'a> {
    format_version: u32,
    id: JobId,
    workflow: &'a WorkflowName,
    version: u32,
    state: JobState,
    input: &'a Value,
    plugins: &'a BTreeMap<StepId, ResolvedPlugin>,
    steps: StepsOutline<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a JobFailure>,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<Timestamp>,
    last_event_sequence: u64,
}

struct StepsOutline<'a>(&'a BTreeMap<StepId, Arc<StepRecord>>);

impl Serialize for StepsOutline<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(id, record)| (id, step_outline(record))))
    }
}

fn step_outline(record: &StepRecord) -> StepOutline<'_> {
    let StepRecord {
        state,
        work,
        output,
        error,
        skip_reason,
        finished_at,
    } = record;
    StepOutline {
        state: *state,
        work: work.as_ref().map(|work| match work {
            StepWork::Single { task } => WorkOutline::Single { task },
            StepWork::FanOut { .. } => WorkOutline::FanOut {
                items: &[],
                tasks: &[],
            },
        }),
        output: output.as_ref(),
        error: error.as_ref(),
        skip_reason: skip_reason.as_ref(),
        finished_at: *finished_at,
    }
}

/// [`StepRecord`]'s fields as it serializes them, borrowed.
#[derive(Serialize)]
struct StepOutline<'a> {
    state: StepState,
    #[serde(skip_serializing_if = "Option::is_none")]
    work: Option<WorkOutline<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a StepError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_reason: Option<&'a SkipReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<Timestamp>,
}

/// [`StepWork`] as it serializes, with a fan-out's items and tasks left out.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WorkOutline<'a> {
    Single {
        task: &'a TaskRecord,
    },
    FanOut {
        items: &'static [Value],
        tasks: &'static [TaskRecord],
    },
}
