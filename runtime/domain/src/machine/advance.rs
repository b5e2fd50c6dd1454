//! Moving a job forward after a change: deciding steps whose dependencies finished, keeping
//! fan-outs going, failing steps and jobs, and finishing the job. The rules are in the parent
//! module's documentation.

use std::sync::Arc;

use serde_json::Value;

use crate::definition::OnFailure;
use crate::event::EventKind;
use crate::failure::{ErrorKind, JobFailure, StepError};
use crate::fanout::{self, FanOutVerdict, MAX_ITEMS};
use crate::id::StepId;
use crate::job::{SkipReason, StepWork, TaskKey, TaskRecord};
use crate::state::{JobState, StepState};
use crate::template::ItemView;

use super::{MachineError, Transaction};

impl Transaction<'_> {
    /// Decides every step that can be decided, in topological order (so one pass sees the
    /// effects of earlier steps on later ones), then finishes the job if nothing is left.
    pub(super) fn advance(&mut self) -> Result<(), MachineError> {
        if !matches!(self.job.state, JobState::Running | JobState::Paused) {
            return Ok(());
        }
        let order: Vec<StepId> = self
            .definition
            .graph()
            .topological_order()
            .cloned()
            .collect();
        for step in &order {
            if self.job.state.is_terminal() {
                return Ok(());
            }
            let record = self.record(step)?;
            let fans_out = matches!(record.work, Some(StepWork::FanOut { .. }));
            match record.state {
                StepState::Pending if self.dependencies_finished(step)? => self.decide(step)?,
                StepState::Ready | StepState::Running if fans_out => self.progress_fan_out(step)?,
                _ => {}
            }
        }
        self.finish_if_done()
    }

    fn dependencies_finished(&self, step: &StepId) -> Result<bool, MachineError> {
        for dependency in self.definition.graph().dependencies(step) {
            if !self.record(dependency)?.state.is_terminal() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Runs, skips or fails a pending step whose dependencies all finished.
    fn decide(&mut self, step: &StepId) -> Result<(), MachineError> {
        let definition = self.step_definition(step)?;
        let mut not_succeeded = None;
        for dependency in self.definition.graph().dependencies(step) {
            if self.record(dependency)?.state != StepState::Succeeded {
                not_succeeded = Some(dependency.clone());
                break;
            }
        }
        match (&definition.when, not_succeeded) {
            (Some(condition), _) => match condition.evaluate(&self.job.scope(None)) {
                Ok(true) => self.make_ready(step),
                Ok(false) => self.skip(step, SkipReason::ConditionFalse),
                Err(error) => {
                    let message =
                        format!("condition `{condition}` could not be evaluated: {error}");
                    self.fail_step(step, None, StepError::new(ErrorKind::Condition, message))
                }
            },
            (None, Some(dependency)) => {
                self.skip(step, SkipReason::DependencyNotSucceeded { dependency })
            }
            (None, None) => self.make_ready(step),
        }
    }

    fn skip(&mut self, step: &StepId, reason: SkipReason) -> Result<(), MachineError> {
        let now = self.now;
        let record = self.record_mut(step)?;
        record.state = record.state.skip()?;
        record.skip_reason = Some(reason.clone());
        record.finished_at = Some(now);
        self.emit(EventKind::StepSkipped {
            step: step.clone(),
            reason,
        });
        Ok(())
    }

    /// Renders the step's input (or its `for_each` list) and makes it ready.
    fn make_ready(&mut self, step: &StepId) -> Result<(), MachineError> {
        let definition = self.step_definition(step)?;
        let scope = self.job.scope(None);
        let Some(for_each) = &definition.for_each else {
            let input = match definition.input.render(&scope) {
                Ok(input) => input,
                Err(error) => {
                    return self.fail_step(
                        step,
                        None,
                        StepError::new(ErrorKind::Input, error.to_string()),
                    );
                }
            };
            let record = self.record_mut(step)?;
            record.state = record.state.make_ready()?;
            record.work = Some(StepWork::Single {
                task: TaskRecord::new(StepState::Ready, Some(input)),
            });
            self.emit(EventKind::StepScheduled {
                step: step.clone(),
                item: None,
            });
            self.ready.push(TaskKey::step(step.clone()));
            return Ok(());
        };
        let items = match for_each.items.render(&scope) {
            Ok(Value::Array(items)) if items.len() <= MAX_ITEMS => items,
            Ok(Value::Array(items)) => {
                let message = format!(
                    "`for_each` yielded {} items; at most {MAX_ITEMS} are allowed",
                    items.len()
                );
                return self.fail_step(step, None, StepError::new(ErrorKind::ForEach, message));
            }
            Ok(other) => {
                let message = format!(
                    "`for_each` yielded {}, not an array",
                    crate::expr::type_name(&other)
                );
                return self.fail_step(step, None, StepError::new(ErrorKind::ForEach, message));
            }
            Err(error) => {
                return self.fail_step(
                    step,
                    None,
                    StepError::new(ErrorKind::ForEach, error.to_string()),
                );
            }
        };
        let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
        let record = self.record_mut(step)?;
        record.state = record.state.make_ready()?;
        // Every task starts as one shared record; the first change to a task copies it.
        let tasks = std::iter::repeat_n(Arc::new(TaskRecord::pending()), items.len()).collect();
        record.work = Some(StepWork::FanOut {
            items: Arc::new(items),
            tasks,
        });
        self.emit(EventKind::StepFannedOut {
            step: step.clone(),
            items: count,
        });
        self.progress_fan_out(step)
    }

    /// Applies [`fanout::plan`] to a fanned-out step until nothing changes.
    fn progress_fan_out(&mut self, step: &StepId) -> Result<(), MachineError> {
        let definition = self.step_definition(step)?;
        let Some(for_each) = &definition.for_each else {
            return Ok(());
        };
        loop {
            let Some(StepWork::FanOut { tasks, .. }) = &self.record(step)?.work else {
                return Ok(());
            };
            let states: Vec<StepState> = tasks.iter().map(|task| task.state()).collect();
            let plan = fanout::plan(&states, for_each.limits);
            for index in plan.cancel {
                let task = self.item_mut(step, index)?;
                task.state = task.state.cancel()?;
                self.emit(EventKind::StepCancelled {
                    step: step.clone(),
                    item: item_number(index),
                });
            }
            let mut item_failed = false;
            for index in plan.start {
                let key = TaskKey {
                    step: step.clone(),
                    item: item_number(index),
                };
                let rendered = {
                    let Some(StepWork::FanOut { items, .. }) = &self.record(step)?.work else {
                        return Ok(());
                    };
                    // Items and tasks have the same length unless the record was damaged.
                    let value = items
                        .get(index)
                        .ok_or_else(|| MachineError::UnknownTask { task: key.clone() })?;
                    let item = ItemView {
                        value,
                        index: key.item.unwrap_or(u32::MAX),
                    };
                    definition.input.render(&self.job.scope(Some(item)))
                };
                let task = self.item_mut(step, index)?;
                match rendered {
                    Ok(input) => {
                        task.state = task.state.make_ready()?;
                        task.input = Some(input);
                        self.emit(EventKind::StepScheduled {
                            step: step.clone(),
                            item: key.item,
                        });
                        self.ready.push(key);
                    }
                    Err(error) => {
                        let error = StepError::new(ErrorKind::Input, error.to_string());
                        task.state = task.state.fail()?;
                        task.error = Some(error.clone());
                        self.emit(EventKind::StepFailed {
                            step: step.clone(),
                            item: key.item,
                            attempt: None,
                            error,
                        });
                        item_failed = true;
                    }
                }
            }
            // A failed item may have spent the budget or freed a slot: plan again.
            if item_failed {
                continue;
            }
            return match plan.verdict {
                None => Ok(()),
                Some(FanOutVerdict::Succeeded) => self.finish_fan_out(step),
                Some(FanOutVerdict::Failed) => {
                    let (_, failed) = self.record(step)?.counts();
                    let total = self.record(step)?.tasks().count();
                    let message = format!(
                        "{failed} of {total} items failed; max_failures is {}",
                        for_each.limits.max_failures
                    );
                    self.fail_step(
                        step,
                        None,
                        StepError::new(ErrorKind::FailureBudget, message),
                    )
                }
            };
        }
    }

    fn item_mut(&mut self, step: &StepId, index: usize) -> Result<&mut TaskRecord, MachineError> {
        let task = TaskKey {
            step: step.clone(),
            item: item_number(index),
        };
        self.record_mut(step)?
            .task_mut(task.item)
            .ok_or(MachineError::UnknownTask { task })
    }

    /// A fanned-out step succeeded: its output is the list of item outputs.
    fn finish_fan_out(&mut self, step: &StepId) -> Result<(), MachineError> {
        let now = self.now;
        let record = self.record_mut(step)?;
        let outputs: Vec<Value> = record
            .tasks()
            .map(|(_, task)| task.output().cloned().unwrap_or(Value::Null))
            .collect();
        record.state = record.state.succeed()?;
        record.output = Some(Value::Array(outputs));
        record.finished_at = Some(now);
        self.emit(EventKind::StepSucceeded {
            step: step.clone(),
            item: None,
            attempt: None,
        });
        Ok(())
    }

    /// Fails a step; with `on_failure: fail`, fails the job too.
    pub(super) fn fail_step(
        &mut self,
        step: &StepId,
        attempt: Option<u32>,
        error: StepError,
    ) -> Result<(), MachineError> {
        let on_failure = self.step_definition(step)?.on_failure;
        let now = self.now;
        let record = self.record_mut(step)?;
        record.state = record.state.fail()?;
        record.error = Some(error.clone());
        record.finished_at = Some(now);
        self.emit(EventKind::StepFailed {
            step: step.clone(),
            item: None,
            attempt,
            error: error.clone(),
        });
        match on_failure {
            OnFailure::Fail => self.fail_job(JobFailure {
                step: Some(step.clone()),
                error,
            }),
            OnFailure::Continue => Ok(()),
        }
    }

    fn fail_job(&mut self, failure: JobFailure) -> Result<(), MachineError> {
        self.job.state = self.job.state.fail()?;
        self.cancel_unfinished()?;
        self.job.failure = Some(failure.clone());
        self.job.finished_at = Some(self.now);
        self.emit(EventKind::JobFailed { failure });
        Ok(())
    }

    /// Cancels every step and task that has not finished, noting running tasks to abort.
    pub(super) fn cancel_unfinished(&mut self) -> Result<(), MachineError> {
        let now = self.now;
        let mut cancelled = Vec::new();
        for (step, record) in &mut self.job.steps {
            if record.state.is_terminal() {
                continue;
            }
            let record = Arc::make_mut(record);
            let items: Vec<Option<u32>> = record.tasks().map(|(item, _)| item).collect();
            for item in items {
                let Some(task) = record.task_mut(item) else {
                    continue;
                };
                if task.state.is_terminal() {
                    continue;
                }
                if task.state == StepState::Running {
                    self.abort.push(TaskKey {
                        step: step.clone(),
                        item,
                    });
                }
                task.state = task.state.cancel()?;
            }
            record.state = record.state.cancel()?;
            record.finished_at = Some(now);
            cancelled.push(step.clone());
        }
        for step in cancelled {
            self.emit(EventKind::StepCancelled { step, item: None });
        }
        Ok(())
    }

    /// Once every step finished, renders the output and ends the job.
    fn finish_if_done(&mut self) -> Result<(), MachineError> {
        if self.job.state.is_terminal()
            || !self
                .job
                .steps
                .values()
                .all(|record| record.state.is_terminal())
        {
            return Ok(());
        }
        let output = self
            .definition
            .output()
            .map(|template| template.render(&self.job.scope(None)));
        match output {
            Some(Err(error)) => {
                let error = StepError::new(
                    ErrorKind::Output,
                    format!("workflow output could not be rendered: {error}"),
                );
                self.fail_job(JobFailure { step: None, error })
            }
            output => {
                self.job.output = output.transpose().ok().flatten();
                self.job.state = self.job.state.succeed()?;
                self.job.finished_at = Some(self.now);
                self.emit(EventKind::JobSucceeded);
                Ok(())
            }
        }
    }
}

fn item_number(index: usize) -> Option<u32> {
    u32::try_from(index).ok()
}
