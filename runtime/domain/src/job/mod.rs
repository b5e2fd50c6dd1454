//! The job record: one run of a workflow definition, with the state of every step, item and
//! attempt.
//!
//! A [`Job`] is what the store keeps (it carries [`FORMAT_VERSION`]) and what the state
//! machine in [`crate::machine`] moves forward; outside this crate it is read-only. Each step
//! has a [`StepRecord`]; once a step is ready its work is either a single task or, for a
//! `for_each` step, one task per item ([`StepWork`]). A task ([`TaskRecord`]) is what a worker
//! claims and runs; [`TaskKey`] names one.

mod outline;
mod step;
mod tasks;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::definition::{InputError, WorkflowDefinition};
use crate::event::{Event, EventKind};
use crate::failure::JobFailure;
use crate::id::{StepId, WorkflowName};
use crate::job_id::JobId;
use crate::plugin_ref::ResolvedPlugin;
use crate::state::{JobState, StepState};
use crate::template::{ItemView, JobView, Scope, StepView};
use crate::time::Timestamp;

pub use outline::{FanOutParts, Outline, RestoreError};
pub use step::{SkipReason, StepRecord, StepWork, TaskRecord};
pub use tasks::TaskList;

/// Version of the stored layout of [`Job`] and [`Event`] records. A release that changes the
/// layout bumps it and teaches the store to migrate older records; records newer than this
/// build are refused rather than misread.
pub const FORMAT_VERSION: u32 = 1;

/// Deserializes a `format_version` field, refusing versions newer than [`FORMAT_VERSION`].
pub(crate) fn supported_format_version<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<u32, D::Error> {
    let version = u32::deserialize(deserializer)?;
    if version == 0 || version > FORMAT_VERSION {
        return Err(serde::de::Error::custom(format!(
            "record format version {version} is not supported (this build reads 1 to {FORMAT_VERSION})"
        )));
    }
    Ok(version)
}

/// One schedulable unit of work: a step without `for_each`, or one item of a step with it.
/// Displayed as `step` or `step[index]`, the form plugins see as their step id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskKey {
    /// The step.
    pub step: StepId,
    /// The item's index, for a fanned-out step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
}

impl TaskKey {
    /// The task of a step without `for_each`.
    pub fn step(step: StepId) -> Self {
        TaskKey { step, item: None }
    }

    /// The task of one item of a fanned-out step.
    pub fn item(step: StepId, index: u32) -> Self {
        TaskKey {
            step,
            item: Some(index),
        }
    }
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            Some(index) => write!(f, "{}[{index}]", self.step),
            None => write!(f, "{}", self.step),
        }
    }
}

/// Why a job cannot be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateJobError {
    /// The input does not fit the definition.
    #[error(transparent)]
    Input(#[from] InputError),
    /// No resolved plugin was given for a step.
    #[error("no resolved plugin for step `{step}`")]
    MissingPlugin {
        /// The step.
        step: StepId,
    },
}

/// A job; see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    #[serde(deserialize_with = "supported_format_version")]
    pub(crate) format_version: u32,
    pub(crate) id: JobId,
    pub(crate) workflow: WorkflowName,
    pub(crate) version: u32,
    pub(crate) state: JobState,
    /// Shared, like `plugins`: neither changes after creation, and the state machine's
    /// working copy of a job should not copy them.
    pub(crate) input: Arc<Value>,
    pub(crate) plugins: Arc<BTreeMap<StepId, ResolvedPlugin>>,
    /// Shared, so that the state machine's working copy of a job clones only the steps it
    /// changes.
    #[serde(with = "shared_steps")]
    pub(crate) steps: BTreeMap<StepId, Arc<StepRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) failure: Option<JobFailure>,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) finished_at: Option<Timestamp>,
    pub(crate) last_event_sequence: u64,
}

/// The steps of a job in JSON: a map of records, as if they were not shared.
mod shared_steps {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::StepRecord;
    use crate::id::StepId;

    pub fn serialize<S: Serializer>(
        steps: &BTreeMap<StepId, Arc<StepRecord>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(steps.iter().map(|(id, record)| (id, &**record)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<StepId, Arc<StepRecord>>, D::Error> {
        let steps = BTreeMap::<StepId, StepRecord>::deserialize(deserializer)?;
        Ok(steps
            .into_iter()
            .map(|(id, record)| (id, Arc::new(record)))
            .collect())
    }
}

impl Job {
    /// Creates a pending job of `definition` and its `job_created` event. `plugins` are the
    /// definition's plugins resolved at submission
    /// ([`WorkflowDefinition::resolve_plugins`]).
    pub fn create(
        id: JobId,
        definition: &WorkflowDefinition,
        input: Value,
        plugins: BTreeMap<StepId, ResolvedPlugin>,
        now: Timestamp,
    ) -> Result<(Job, Event), CreateJobError> {
        definition.check_input(&input)?;
        if let Some(step) = definition
            .steps()
            .iter()
            .find(|step| !plugins.contains_key(&step.id))
        {
            return Err(CreateJobError::MissingPlugin {
                step: step.id.clone(),
            });
        }
        let steps = definition
            .steps()
            .iter()
            .map(|step| (step.id.clone(), Arc::new(StepRecord::pending())))
            .collect();
        let mut job = Job {
            format_version: FORMAT_VERSION,
            id,
            workflow: definition.name().clone(),
            version: definition.version(),
            state: JobState::Pending,
            input: Arc::new(input),
            plugins: Arc::new(plugins),
            steps,
            output: None,
            failure: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
            last_event_sequence: 0,
        };
        let kind = EventKind::JobCreated {
            workflow: job.workflow.clone(),
            version: job.version,
        };
        let event = job.record(kind, now);
        Ok((job, event))
    }

    /// Appends an event to the job's history: gives it the next sequence number.
    pub(crate) fn record(&mut self, kind: EventKind, at: Timestamp) -> Event {
        self.last_event_sequence += 1;
        Event::new(self.id, self.last_event_sequence, at, kind)
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The workflow the job runs.
    pub fn workflow(&self) -> &WorkflowName {
        &self.workflow
    }

    /// The version of the workflow definition.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The job's state.
    pub fn state(&self) -> JobState {
        self.state
    }

    /// The job's input document.
    pub fn input(&self) -> &Value {
        &self.input
    }

    /// The plugin build each step runs.
    pub fn plugins(&self) -> &BTreeMap<StepId, ResolvedPlugin> {
        &self.plugins
    }

    /// Every step's record, by id.
    pub fn steps(&self) -> &BTreeMap<StepId, Arc<StepRecord>> {
        &self.steps
    }

    /// One step's record.
    pub fn step(&self, id: &StepId) -> Option<&StepRecord> {
        self.steps.get(id).map(|record| &**record)
    }

    /// One task's record.
    pub fn task(&self, key: &TaskKey) -> Option<&TaskRecord> {
        self.steps.get(&key.step)?.task(key.item)
    }

    /// The rendered output, once the job succeeded.
    pub fn output(&self) -> Option<&Value> {
        self.output.as_ref()
    }

    /// Why the job failed, once it did.
    pub fn failure(&self) -> Option<&JobFailure> {
        self.failure.as_ref()
    }

    /// When the job was created.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// When the job last changed.
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    /// When the job reached a terminal state.
    pub fn finished_at(&self) -> Option<Timestamp> {
        self.finished_at
    }

    /// Sequence number of the job's newest event.
    pub fn last_event_sequence(&self) -> u64 {
        self.last_event_sequence
    }

    /// Every task, with its key, in step id order and then item order.
    pub fn tasks(&self) -> impl Iterator<Item = (TaskKey, &TaskRecord)> {
        self.steps.iter().flat_map(|(step, record)| {
            record.tasks().map(move |(item, task)| {
                (
                    TaskKey {
                        step: step.clone(),
                        item,
                    },
                    task,
                )
            })
        })
    }

    /// Tasks a worker may start at `now`: ready ones, and those whose retry is due. Empty unless
    /// the job is running.
    pub fn claimable_tasks(&self, now: Timestamp) -> Vec<TaskKey> {
        if self.state != JobState::Running {
            return Vec::new();
        }
        self.tasks()
            .filter(|(_, task)| task.is_claimable(now))
            .map(|(key, _)| key)
            .collect()
    }

    /// The earliest time a waiting retry falls due, for the scheduler's timer.
    pub fn next_retry_at(&self) -> Option<Timestamp> {
        self.tasks().filter_map(|(_, task)| task.retry_at()).min()
    }

    /// Tasks with an attempt in progress (after a crash, these were interrupted).
    pub fn running_tasks(&self) -> Vec<TaskKey> {
        self.tasks()
            .filter(|(_, task)| task.state() == StepState::Running)
            .map(|(key, _)| key)
            .collect()
    }

    /// The scope templates of this job are rendered in; `item` is set for a fanned-out item.
    pub fn scope<'a>(&'a self, item: Option<ItemView<'a>>) -> JobScope<'a> {
        JobScope { job: self, item }
    }
}

/// A [`Scope`] over a job, optionally for one item of a fanned-out step.
#[derive(Debug, Clone, Copy)]
pub struct JobScope<'a> {
    job: &'a Job,
    item: Option<ItemView<'a>>,
}

impl Scope for JobScope<'_> {
    fn job(&self) -> JobView<'_> {
        JobView {
            id: self.job.id,
            workflow: &self.job.workflow,
            version: self.job.version,
        }
    }

    fn workflow_input(&self) -> &Value {
        &self.job.input
    }

    fn step(&self, id: &StepId) -> Option<StepView<'_>> {
        self.job.steps.get(id).map(|record| record.view())
    }

    fn item(&self) -> Option<ItemView<'_>> {
        self.item
    }
}
