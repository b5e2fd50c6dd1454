//! The records of a job's steps and tasks.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attempt::Attempt;
use crate::failure::StepError;
use crate::id::StepId;
use crate::state::StepState;
use crate::template::StepView;
use crate::time::Timestamp;

use super::TaskList;

/// Why a step was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SkipReason {
    /// Its `when` condition was false.
    ConditionFalse,
    /// It has no `when`, and this dependency did not succeed (it was skipped, or failed with
    /// `on_failure: continue`).
    DependencyNotSucceeded {
        /// The first dependency, in `depends_on` order, that did not succeed.
        dependency: StepId,
    },
}

/// One claimable unit of work and its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRecord {
    pub(crate) state: StepState,
    /// The rendered input, set when the task became ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) input: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<StepError>,
}

impl TaskRecord {
    pub(crate) fn new(state: StepState, input: Option<Value>) -> Self {
        TaskRecord {
            state,
            input,
            attempts: Vec::new(),
            retry_at: None,
            output: None,
            error: None,
        }
    }

    /// A task of a step that has just fanned out: pending, with no input yet.
    pub fn pending() -> Self {
        TaskRecord::new(StepState::Pending, None)
    }

    /// The task's state.
    pub fn state(&self) -> StepState {
        self.state
    }

    /// The rendered input, once the task is ready.
    pub fn input(&self) -> Option<&Value> {
        self.input.as_ref()
    }

    /// Every attempt so far, oldest first.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// When the next attempt is due, while waiting to retry.
    pub fn retry_at(&self) -> Option<Timestamp> {
        self.retry_at
    }

    /// The output, once the task succeeded.
    pub fn output(&self) -> Option<&Value> {
        self.output.as_ref()
    }

    /// The error, once the task failed.
    pub fn error(&self) -> Option<&StepError> {
        self.error.as_ref()
    }

    /// Whether a worker may start the task at `now`.
    pub fn is_claimable(&self, now: Timestamp) -> bool {
        match self.state {
            StepState::Ready => true,
            StepState::WaitingRetry => self.retry_at.is_none_or(|due| due <= now),
            _ => false,
        }
    }

    /// The attempt in progress, if any.
    pub(crate) fn open_attempt(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut().filter(|attempt| attempt.is_open())
    }
}

/// What a ready step has to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepWork {
    /// A step without `for_each`: one task.
    Single {
        /// The task.
        task: TaskRecord,
    },
    /// A step with `for_each`: the list it fanned out over and one task per element. Both are
    /// shared, so that the state machine's working copy of a job copies neither the list nor
    /// the tasks it leaves alone: a commit costs the tasks it changes, not the fan-out's size.
    FanOut {
        /// The rendered list.
        items: Arc<Vec<Value>>,
        /// One task per element, in order.
        tasks: TaskList,
    },
}

/// One step of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    pub(crate) state: StepState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) work: Option<StepWork>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<StepError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) skip_reason: Option<SkipReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) finished_at: Option<Timestamp>,
}

impl StepRecord {
    pub(crate) fn pending() -> Self {
        StepRecord {
            state: StepState::Pending,
            work: None,
            output: None,
            error: None,
            skip_reason: None,
            finished_at: None,
        }
    }

    /// The step's state.
    pub fn state(&self) -> StepState {
        self.state
    }

    /// The step's work, once it is ready.
    pub fn work(&self) -> Option<&StepWork> {
        self.work.as_ref()
    }

    /// The step's output, once it succeeded: the task's output, or for a fanned-out step the
    /// list of item outputs in order (`null` for items that failed).
    pub fn output(&self) -> Option<&Value> {
        self.output.as_ref()
    }

    /// Why the step failed.
    pub fn error(&self) -> Option<&StepError> {
        self.error.as_ref()
    }

    /// Why the step was skipped.
    pub fn skip_reason(&self) -> Option<&SkipReason> {
        self.skip_reason.as_ref()
    }

    /// When the step reached a terminal state.
    pub fn finished_at(&self) -> Option<Timestamp> {
        self.finished_at
    }

    /// The step's tasks with their item indices (`None` for a single task).
    pub fn tasks(&self) -> Box<dyn Iterator<Item = (Option<u32>, &TaskRecord)> + '_> {
        match &self.work {
            None => Box::new(std::iter::empty()),
            Some(StepWork::Single { task }) => Box::new(std::iter::once((None, task))),
            Some(StepWork::FanOut { tasks, .. }) => Box::new(
                tasks
                    .iter()
                    .enumerate()
                    .map(|(index, task)| (u32::try_from(index).ok(), &**task)),
            ),
        }
    }

    /// The task for `item` (`None` for a step without `for_each`).
    pub fn task(&self, item: Option<u32>) -> Option<&TaskRecord> {
        match (&self.work, item) {
            (Some(StepWork::Single { task }), None) => Some(task),
            (Some(StepWork::FanOut { tasks, .. }), Some(index)) => {
                tasks.get(usize::try_from(index).ok()?).map(|task| &**task)
            }
            _ => None,
        }
    }

    pub(crate) fn task_mut(&mut self, item: Option<u32>) -> Option<&mut TaskRecord> {
        match (&mut self.work, item) {
            (Some(StepWork::Single { task }), None) => Some(task),
            (Some(StepWork::FanOut { tasks, .. }), Some(index)) => {
                tasks.get_mut(usize::try_from(index).ok()?)
            }
            _ => None,
        }
    }

    /// Items (or the single task) that succeeded and failed.
    pub fn counts(&self) -> (u64, u64) {
        match &self.work {
            Some(StepWork::FanOut { tasks, .. }) => {
                let count = |state| tasks.iter().filter(|task| task.state == state).count() as u64;
                (count(StepState::Succeeded), count(StepState::Failed))
            }
            _ => (
                u64::from(self.state == StepState::Succeeded),
                u64::from(self.state == StepState::Failed),
            ),
        }
    }

    /// The step as templates see it.
    pub(crate) fn view(&self) -> StepView<'_> {
        let (succeeded_count, failed_count) = self.counts();
        StepView {
            state: self.state,
            output: self.output.as_ref(),
            succeeded_count,
            failed_count,
        }
    }
}
