//! The lifecycles of jobs and steps: [`JobState`] and [`StepState`], with one method per
//! legal transition.
//!
//! Each transition method takes the current state and returns the next one, or a
//! [`TransitionError`] when the move is illegal (starting a finished step, resuming a job that
//! is not paused). The state machine in [`crate::machine`] only changes states through these
//! methods, so the tables below are the whole truth about what can follow what.
//!
//! Jobs: `pending -> running <-> paused`, then `succeeded` or `failed` (from `running` or
//! `paused`), and `cancelled` from any state that is not terminal.
//!
//! Steps (and the items of a fanned-out step, which share this lifecycle but are never
//! skipped): `pending -> ready -> running -> (waiting_retry -> running)*`, ending in
//! `succeeded` or `failed`; `pending -> skipped`; a step that fails before running (its input or
//! condition could not be evaluated) goes `pending -> failed` or `ready -> failed`; a fanned-out
//! step over an empty list goes `ready -> succeeded`; anything not terminal can be `cancelled`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An illegal state transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a {entity} that is {from}")]
pub struct TransitionError {
    /// `job` or `step`.
    pub entity: &'static str,
    /// The state the transition was attempted from.
    pub from: &'static str,
    /// The attempted transition, such as `start`.
    pub action: &'static str,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted and stored; no step has been scheduled yet.
    Pending,
    /// Steps are being scheduled and run.
    Running,
    /// No new attempt starts; attempts already running finish and are recorded.
    Paused,
    /// Every step finished and the output was rendered.
    Succeeded,
    /// A step failed with `on_failure: fail`, or the output could not be rendered.
    Failed,
    /// Stopped by an operator.
    Cancelled,
}

impl JobState {
    /// The state's name as it appears in JSON and templates.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job can never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    fn refuse(self, action: &'static str) -> TransitionError {
        TransitionError {
            entity: "job",
            from: self.as_str(),
            action,
        }
    }

    /// `pending -> running`.
    pub fn start(self) -> Result<JobState, TransitionError> {
        match self {
            JobState::Pending => Ok(JobState::Running),
            _ => Err(self.refuse("start")),
        }
    }

    /// `running -> paused`.
    pub fn pause(self) -> Result<JobState, TransitionError> {
        match self {
            JobState::Running => Ok(JobState::Paused),
            _ => Err(self.refuse("pause")),
        }
    }

    /// `paused -> running`.
    pub fn resume(self) -> Result<JobState, TransitionError> {
        match self {
            JobState::Paused => Ok(JobState::Running),
            _ => Err(self.refuse("resume")),
        }
    }

    /// `running | paused -> succeeded`. A paused job finishes when its last attempts do.
    pub fn succeed(self) -> Result<JobState, TransitionError> {
        match self {
            JobState::Running | JobState::Paused => Ok(JobState::Succeeded),
            _ => Err(self.refuse("succeed")),
        }
    }

    /// `running | paused -> failed`.
    pub fn fail(self) -> Result<JobState, TransitionError> {
        match self {
            JobState::Running | JobState::Paused => Ok(JobState::Failed),
            _ => Err(self.refuse("fail")),
        }
    }

    /// Any state that is not terminal `-> cancelled`.
    pub fn cancel(self) -> Result<JobState, TransitionError> {
        if self.is_terminal() {
            Err(self.refuse("cancel"))
        } else {
            Ok(JobState::Cancelled)
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a step, or one item of a fanned-out step, is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Waiting for its dependencies (or, for an item, for a free concurrency slot).
    Pending,
    /// Its input is rendered and it may be claimed by a worker.
    Ready,
    /// An attempt is in progress.
    Running,
    /// An attempt failed and another one is due at a recorded time.
    WaitingRetry,
    /// Finished with an output.
    Succeeded,
    /// Finished without an output.
    Failed,
    /// Not run, because its condition was false or a dependency did not succeed.
    Skipped,
    /// Stopped because the job was cancelled or failed.
    Cancelled,
}

impl StepState {
    /// The state's name as it appears in JSON and in `${steps.<id>.status}`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Ready => "ready",
            StepState::Running => "running",
            StepState::WaitingRetry => "waiting_retry",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
            StepState::Cancelled => "cancelled",
        }
    }

    /// Whether the step can never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepState::Succeeded | StepState::Failed | StepState::Skipped | StepState::Cancelled
        )
    }

    /// Whether work on the step has begun and not ended: ready, running or waiting to retry.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            StepState::Ready | StepState::Running | StepState::WaitingRetry
        )
    }

    fn refuse(self, action: &'static str) -> TransitionError {
        TransitionError {
            entity: "step",
            from: self.as_str(),
            action,
        }
    }

    /// `pending -> ready`.
    pub fn make_ready(self) -> Result<StepState, TransitionError> {
        match self {
            StepState::Pending => Ok(StepState::Ready),
            _ => Err(self.refuse("make ready")),
        }
    }

    /// `pending -> skipped`.
    pub fn skip(self) -> Result<StepState, TransitionError> {
        match self {
            StepState::Pending => Ok(StepState::Skipped),
            _ => Err(self.refuse("skip")),
        }
    }

    /// `ready | waiting_retry -> running`.
    pub fn start(self) -> Result<StepState, TransitionError> {
        match self {
            StepState::Ready | StepState::WaitingRetry => Ok(StepState::Running),
            _ => Err(self.refuse("start")),
        }
    }

    /// `running -> waiting_retry`.
    pub fn wait_for_retry(self) -> Result<StepState, TransitionError> {
        match self {
            StepState::Running => Ok(StepState::WaitingRetry),
            _ => Err(self.refuse("retry")),
        }
    }

    /// `ready | running -> succeeded`; from `ready` only for a fanned-out step whose items
    /// never needed the step to run (an empty list).
    pub fn succeed(self) -> Result<StepState, TransitionError> {
        match self {
            StepState::Ready | StepState::Running => Ok(StepState::Succeeded),
            _ => Err(self.refuse("succeed")),
        }
    }

    /// `pending | ready | running -> failed`; from `pending` or `ready` when the step's
    /// condition, input or list could not be evaluated.
    pub fn fail(self) -> Result<StepState, TransitionError> {
        match self {
            StepState::Pending | StepState::Ready | StepState::Running => Ok(StepState::Failed),
            _ => Err(self.refuse("fail")),
        }
    }

    /// Any state that is not terminal `-> cancelled`.
    pub fn cancel(self) -> Result<StepState, TransitionError> {
        if self.is_terminal() {
            Err(self.refuse("cancel"))
        } else {
            Ok(StepState::Cancelled)
        }
    }
}

impl fmt::Display for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_JOB: [JobState; 6] = [
        JobState::Pending,
        JobState::Running,
        JobState::Paused,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    #[test]
    fn job_lifecycle() {
        let running = JobState::Pending.start().unwrap();
        let paused = running.pause().unwrap();
        assert_eq!(paused.resume().unwrap(), JobState::Running);
        assert_eq!(paused.succeed().unwrap(), JobState::Succeeded);
        assert_eq!(running.fail().unwrap(), JobState::Failed);
        assert_eq!(
            JobState::Succeeded.cancel().unwrap_err().to_string(),
            "cannot cancel a job that is succeeded"
        );
        assert!(JobState::Pending.succeed().is_err());
        assert!(running.start().is_err());
    }

    #[test]
    fn terminal_job_states_accept_nothing() {
        for state in ALL_JOB.into_iter().filter(|s| s.is_terminal()) {
            let moves = [
                state.start(),
                state.pause(),
                state.resume(),
                state.succeed(),
                state.fail(),
            ];
            assert!(moves.iter().all(Result::is_err), "{state}");
            assert!(state.cancel().is_err());
        }
        for state in ALL_JOB.into_iter().filter(|s| !s.is_terminal()) {
            assert_eq!(state.cancel(), Ok(JobState::Cancelled));
        }
    }

    #[test]
    fn step_lifecycle_with_retry() {
        let ready = StepState::Pending.make_ready().unwrap();
        let running = ready.start().unwrap();
        let waiting = running.wait_for_retry().unwrap();
        assert_eq!(waiting, StepState::WaitingRetry);
        assert!(waiting.is_active() && !waiting.is_terminal());
        let running = waiting.start().unwrap();
        assert_eq!(running.succeed().unwrap(), StepState::Succeeded);
        assert_eq!(waiting.cancel().unwrap(), StepState::Cancelled);
    }

    #[test]
    fn illegal_step_moves_are_errors() {
        assert!(StepState::Pending.start().is_err());
        assert!(StepState::Ready.skip().is_err());
        assert!(StepState::WaitingRetry.succeed().is_err());
        assert!(StepState::Skipped.cancel().is_err());
        assert_eq!(
            StepState::Succeeded.fail().unwrap_err().to_string(),
            "cannot fail a step that is succeeded"
        );
    }

    #[test]
    fn serde_uses_snake_case() {
        let json = serde_json::to_string(&StepState::WaitingRetry).unwrap();
        assert_eq!(json, "\"waiting_retry\"");
        assert_eq!(
            serde_json::to_string(&JobState::Cancelled).unwrap(),
            "\"cancelled\""
        );
    }
}
