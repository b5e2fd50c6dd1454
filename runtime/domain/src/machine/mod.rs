//! The job state machine: given a definition, a job, and something that happened (the job
//! started, an attempt began or ended, an operator paused or cancelled), it updates the job
//! and says what follows. This is the heart the scheduler calls inside one storage
//! transaction: it is deterministic (time and jitter are arguments), and a call that returns an
//! error leaves the job untouched.
//!
//! Every call returns [`Effects`]: the events to append, the tasks that became ready, the
//! running tasks whose sandboxes should be stopped, and whether the job finished.
//!
//! # Rules
//!
//! - A step is decided once all its dependencies are finished (succeeded, failed, skipped).
//! - **Skipping.** If every dependency succeeded, the step runs, unless its `when` is false,
//!   in which case it is skipped. If some dependency did not succeed (it was skipped, or failed
//!   with `on_failure: continue`), a step without `when` is skipped too; a step with `when`
//!   evaluates it (reading `null` as the output of such a dependency) and runs if it is true.
//!   So `when` is how a step opts into running after an upstream step did not succeed.
//! - A step that runs has its input rendered when it becomes ready; a template error fails the
//!   step without any attempt, as does a `when` that cannot be evaluated. A `for_each` step
//!   renders its list when it becomes ready and each item's input when the item is started;
//!   see [`crate::fanout`] for concurrency and the failure budget.
//! - A failed attempt is retried as its step's [`crate::retry::RetryPolicy`] decides. A step
//!   whose last attempt failed fails; with `on_failure: fail` (the default) the job then fails,
//!   naming the step and its error, and every unfinished step is cancelled; with
//!   `on_failure: continue` the job goes on.
//! - When every step has finished, the workflow `output` is rendered and the job succeeds (or
//!   fails, if the output cannot be rendered). A job without `output` has no output.
//! - A paused job starts no attempt, but records the results of attempts already running and
//!   keeps deciding steps; it may even finish. A result that arrives after the job finished is
//!   written into its attempt and changes nothing else.

use std::sync::Arc;

mod advance;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attempt::{Attempt, AttemptOutcome, AttemptReport};
use crate::definition::{StepDefinition, WorkflowDefinition};
use crate::event::{Event, EventKind};
use crate::id::{StepId, WorkflowName};
use crate::job::{Job, StepRecord, StepWork, TaskKey};
use crate::plugin_ref::ResolvedPlugin;
use crate::retry::RetryDecision;
use crate::state::{JobState, StepState, TransitionError};
use crate::time::Timestamp;

/// What a state machine call changed, for the caller to act on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Events to append to the job's history, in order.
    pub events: Vec<Event>,
    /// Tasks that became ready to run.
    pub ready: Vec<TaskKey>,
    /// Tasks that were running and are now cancelled: their sandboxes should be stopped.
    pub abort: Vec<TaskKey>,
    /// The job's terminal state, if it finished in this call.
    pub finished: Option<JobState>,
}

/// Everything a worker needs to run one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptStart {
    /// The task.
    pub task: TaskKey,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The plugin build to run.
    pub plugin: ResolvedPlugin,
    /// The rendered input.
    pub input: Value,
    /// Deadline of the attempt.
    pub timeout_ms: u64,
    /// Fuel limit; `None` for the daemon's default.
    pub fuel: Option<u64>,
    /// Memory limit; `None` for the daemon's default.
    pub memory_bytes: Option<u64>,
}

/// A call that does not fit the job's state: a bug or a race in the caller, never a step
/// failure. The job is left untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    /// The job was created from another definition.
    #[error(
        "job runs `{job_workflow}` version {job_version}, not `{definition_workflow}` version {definition_version}"
    )]
    DefinitionMismatch {
        /// The job's workflow.
        job_workflow: WorkflowName,
        /// The job's version.
        job_version: u32,
        /// The definition's workflow.
        definition_workflow: WorkflowName,
        /// The definition's version.
        definition_version: u32,
    },
    /// The job and its definition disagree about the steps.
    #[error("step `{step}` is missing from the job or its definition")]
    UnknownStep {
        /// The step.
        step: StepId,
    },
    /// No such task (the step is not ready yet, or has no such item).
    #[error("job has no task `{task}`")]
    UnknownTask {
        /// The task.
        task: TaskKey,
    },
    /// Attempts only start in a running job.
    #[error("job is {state}, not running")]
    JobNotRunning {
        /// The job's state.
        state: JobState,
    },
    /// The task waits for a retry that is not due yet.
    #[error("task `{task}` is not due before {due_at}")]
    RetryNotDue {
        /// The task.
        task: TaskKey,
        /// When it is due.
        due_at: Timestamp,
    },
    /// A result arrived for a task without an attempt in progress.
    #[error("task `{task}` has no attempt in progress")]
    NoOpenAttempt {
        /// The task.
        task: TaskKey,
    },
    /// The job lacks the resolved plugin of a step.
    #[error("job has no resolved plugin for step `{step}`")]
    MissingPlugin {
        /// The step.
        step: StepId,
    },
    /// An illegal state transition.
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// The state machine for jobs of one definition.
#[derive(Debug, Clone, Copy)]
pub struct Machine<'d> {
    definition: &'d WorkflowDefinition,
}

impl<'d> Machine<'d> {
    /// A machine for jobs of `definition`.
    pub fn new(definition: &'d WorkflowDefinition) -> Self {
        Machine { definition }
    }

    /// `pending -> running`: decides the root steps.
    pub fn start(&self, job: &mut Job, now: Timestamp) -> Result<Effects, MachineError> {
        self.transact(job, now, |tx| {
            tx.job.state = tx.job.state.start()?;
            tx.emit(EventKind::JobStarted);
            tx.advance()
        })
        .map(|((), effects)| effects)
    }

    /// Starts the next attempt of a ready task, or of a waiting task whose retry is due.
    pub fn begin_attempt(
        &self,
        job: &mut Job,
        task: &TaskKey,
        now: Timestamp,
    ) -> Result<(AttemptStart, Effects), MachineError> {
        self.transact(job, now, |tx| tx.begin(task))
    }

    /// Records the end of a task's attempt and moves the job on. `jitter_sample`, from
    /// `[0, 1)`, shortens the retry delay as [`crate::retry`] describes.
    pub fn complete_attempt(
        &self,
        job: &mut Job,
        task: &TaskKey,
        report: AttemptReport,
        jitter_sample: f64,
        now: Timestamp,
    ) -> Result<Effects, MachineError> {
        self.transact(job, now, |tx| tx.complete(task, report, jitter_sample))
            .map(|((), effects)| effects)
    }

    /// After a daemon restart: ends every attempt that was in progress as `interrupted`
    /// (which the retry policy retries while attempts remain).
    pub fn recover_interrupted(
        &self,
        job: &mut Job,
        jitter_sample: f64,
        now: Timestamp,
    ) -> Result<Effects, MachineError> {
        self.transact(job, now, |tx| {
            let open: Vec<TaskKey> = tx
                .job
                .tasks()
                .filter(|(_, task)| task.attempts().last().is_some_and(Attempt::is_open))
                .map(|(key, _)| key)
                .collect();
            for key in open {
                tx.complete(
                    &key,
                    AttemptReport::new(AttemptOutcome::Interrupted),
                    jitter_sample,
                )?;
            }
            Ok(())
        })
        .map(|((), effects)| effects)
    }

    /// `running -> paused`.
    pub fn pause(&self, job: &mut Job, now: Timestamp) -> Result<Effects, MachineError> {
        self.transact(job, now, |tx| {
            tx.job.state = tx.job.state.pause()?;
            tx.emit(EventKind::JobPaused);
            Ok(())
        })
        .map(|((), effects)| effects)
    }

    /// `paused -> running`; the tasks that can start at once are reported as ready.
    pub fn resume(&self, job: &mut Job, now: Timestamp) -> Result<Effects, MachineError> {
        self.transact(job, now, |tx| {
            tx.job.state = tx.job.state.resume()?;
            tx.emit(EventKind::JobResumed);
            tx.ready = tx.job.claimable_tasks(tx.now);
            Ok(())
        })
        .map(|((), effects)| effects)
    }

    /// Cancels the job and every unfinished step.
    pub fn cancel(
        &self,
        job: &mut Job,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<Effects, MachineError> {
        self.transact(job, now, |tx| {
            tx.job.state = tx.job.state.cancel()?;
            tx.cancel_unfinished()?;
            tx.job.finished_at = Some(tx.now);
            tx.emit(EventKind::JobCancelled { reason });
            Ok(())
        })
        .map(|((), effects)| effects)
    }

    /// Runs `change` on a copy of the job and keeps the copy only if it succeeds.
    fn transact<T>(
        &self,
        job: &mut Job,
        now: Timestamp,
        change: impl FnOnce(&mut Transaction<'d>) -> Result<T, MachineError>,
    ) -> Result<(T, Effects), MachineError> {
        if job.workflow != *self.definition.name() || job.version != self.definition.version() {
            return Err(MachineError::DefinitionMismatch {
                job_workflow: job.workflow.clone(),
                job_version: job.version,
                definition_workflow: self.definition.name().clone(),
                definition_version: self.definition.version(),
            });
        }
        let was_terminal = job.state.is_terminal();
        let mut tx = Transaction {
            definition: self.definition,
            job: job.clone(),
            now,
            events: Vec::new(),
            ready: Vec::new(),
            abort: Vec::new(),
        };
        let value = change(&mut tx)?;
        tx.job.updated_at = now;
        let Transaction {
            job: changed,
            events,
            mut ready,
            abort,
            ..
        } = tx;
        ready.retain(|key| {
            changed
                .task(key)
                .is_some_and(|task| task.state() == StepState::Ready)
        });
        let finished = (!was_terminal && changed.state.is_terminal()).then_some(changed.state);
        *job = changed;
        Ok((
            value,
            Effects {
                events,
                ready,
                abort,
                finished,
            },
        ))
    }
}

/// A change in progress: a copy of the job and what has happened to it so far.
struct Transaction<'d> {
    definition: &'d WorkflowDefinition,
    job: Job,
    now: Timestamp,
    events: Vec<Event>,
    ready: Vec<TaskKey>,
    abort: Vec<TaskKey>,
}

impl<'d> Transaction<'d> {
    fn emit(&mut self, kind: EventKind) {
        let event = self.job.record(kind, self.now);
        self.events.push(event);
    }

    fn step_definition(&self, step: &StepId) -> Result<&'d StepDefinition, MachineError> {
        self.definition
            .step(step)
            .ok_or_else(|| MachineError::UnknownStep { step: step.clone() })
    }

    fn record(&self, step: &StepId) -> Result<&StepRecord, MachineError> {
        self.job
            .steps
            .get(step)
            .map(|record| &**record)
            .ok_or_else(|| MachineError::UnknownStep { step: step.clone() })
    }

    fn record_mut(&mut self, step: &StepId) -> Result<&mut StepRecord, MachineError> {
        self.job
            .steps
            .get_mut(step)
            .map(Arc::make_mut)
            .ok_or_else(|| MachineError::UnknownStep { step: step.clone() })
    }

    fn begin(&mut self, key: &TaskKey) -> Result<AttemptStart, MachineError> {
        if self.job.state != JobState::Running {
            return Err(MachineError::JobNotRunning {
                state: self.job.state,
            });
        }
        let definition = self.step_definition(&key.step)?;
        let plugin = self.job.plugins.get(&key.step).cloned().ok_or_else(|| {
            MachineError::MissingPlugin {
                step: key.step.clone(),
            }
        })?;
        let now = self.now;
        let record = self.record_mut(&key.step)?;
        let task = record
            .task_mut(key.item)
            .ok_or_else(|| MachineError::UnknownTask { task: key.clone() })?;
        if let (StepState::WaitingRetry, Some(due_at)) = (task.state, task.retry_at)
            && due_at > now
        {
            return Err(MachineError::RetryNotDue {
                task: key.clone(),
                due_at,
            });
        }
        task.state = task.state.start()?;
        task.retry_at = None;
        let attempt = u32::try_from(task.attempts.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        task.attempts.push(Attempt::started(attempt, now));
        let input = task.input.clone().unwrap_or(Value::Null);
        if record.state != StepState::Running {
            record.state = record.state.start()?;
        }
        self.emit(EventKind::StepStarted {
            step: key.step.clone(),
            item: key.item,
            attempt,
        });
        Ok(AttemptStart {
            task: key.clone(),
            attempt,
            plugin,
            input,
            timeout_ms: definition.timeout_ms,
            fuel: definition.fuel,
            memory_bytes: definition.memory_bytes,
        })
    }

    fn complete(
        &mut self,
        key: &TaskKey,
        report: AttemptReport,
        jitter_sample: f64,
    ) -> Result<(), MachineError> {
        let definition = self.step_definition(&key.step)?;
        let now = self.now;
        let job_finished = self.job.state.is_terminal();
        let record = self.record_mut(&key.step)?;
        let single = matches!(record.work, Some(StepWork::Single { .. }));
        let task = record
            .task_mut(key.item)
            .ok_or_else(|| MachineError::UnknownTask { task: key.clone() })?;
        let no_attempt = || MachineError::NoOpenAttempt { task: key.clone() };
        if job_finished || task.state == StepState::Cancelled {
            // A late result: keep it in the attempt's history and change nothing else.
            task.open_attempt()
                .ok_or_else(no_attempt)?
                .finish(report, now);
            return Ok(());
        }
        if task.state != StepState::Running {
            return Err(no_attempt());
        }
        let attempt = task.open_attempt().ok_or_else(no_attempt)?;
        let number = attempt.number;
        let outcome = report.outcome.clone();
        attempt.finish(report, now);
        let (step, item) = (key.step.clone(), key.item);
        let error = match outcome.result() {
            Err(error) => error,
            Ok(output) => {
                let output = output.clone();
                task.state = task.state.succeed()?;
                task.output = Some(output.clone());
                if single {
                    record.state = record.state.succeed()?;
                    record.output = Some(output);
                    record.finished_at = Some(now);
                }
                self.emit(EventKind::StepSucceeded {
                    step,
                    item,
                    attempt: Some(number),
                });
                return self.advance();
            }
        };
        match definition
            .retry
            .decide(number, &outcome, jitter_sample, now)
        {
            RetryDecision::RetryAt(due_at) => {
                task.state = task.state.wait_for_retry()?;
                task.retry_at = Some(due_at);
                task.error = Some(error.clone());
                if single {
                    record.state = record.state.wait_for_retry()?;
                }
                self.emit(EventKind::StepRetrying {
                    step,
                    item,
                    attempt: number,
                    due_at,
                    error,
                });
            }
            RetryDecision::NotRetryable | RetryDecision::AttemptsExhausted => {
                task.state = task.state.fail()?;
                task.error = Some(error.clone());
                if single {
                    self.fail_step(&step, Some(number), error)?;
                } else {
                    self.emit(EventKind::StepFailed {
                        step,
                        item,
                        attempt: Some(number),
                        error,
                    });
                }
            }
        }
        self.advance()
    }
}
