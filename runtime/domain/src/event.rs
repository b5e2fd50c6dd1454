//! The append-only history of a job: one [`Event`] per thing that happened, numbered in order.
//!
//! Events are produced by [`crate::job::Job::create`] and the state machine, stored next to the
//! job in the same transaction, and served by the API as the job's timeline. They are a record
//! for people and tools, not the source of truth: the job record is. Each carries
//! [`FORMAT_VERSION`] like the job.

use serde::{Deserialize, Serialize};

use crate::failure::{JobFailure, StepError};
use crate::id::{StepId, WorkflowName};
use crate::job::{FORMAT_VERSION, SkipReason, supported_format_version};
use crate::job_id::JobId;
use crate::time::Timestamp;

/// What happened. Serialized with a `type` tag, such as `{"type": "step_started", ...}`.
/// `item` is set for events about one item of a fanned-out step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The job was accepted.
    JobCreated {
        /// The workflow.
        workflow: WorkflowName,
        /// Its version.
        version: u32,
    },
    /// The job began scheduling steps.
    JobStarted,
    /// An operator paused the job.
    JobPaused,
    /// An operator resumed the job.
    JobResumed,
    /// A step (or item) became ready to run, its input rendered.
    StepScheduled {
        /// The step.
        step: StepId,
        /// The item, for a fanned-out step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
    },
    /// A `for_each` step rendered its list.
    StepFannedOut {
        /// The step.
        step: StepId,
        /// How many items the list has.
        items: u32,
    },
    /// An attempt began.
    StepStarted {
        /// The step.
        step: StepId,
        /// The item, for a fanned-out step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// The attempt number.
        attempt: u32,
    },
    /// A step (or item) succeeded.
    StepSucceeded {
        /// The step.
        step: StepId,
        /// The item, for a fanned-out step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// The attempt that succeeded; absent for a fanned-out step as a whole.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// An attempt failed and another is scheduled.
    StepRetrying {
        /// The step.
        step: StepId,
        /// The item, for a fanned-out step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// The attempt that failed.
        attempt: u32,
        /// When the next attempt is due.
        due_at: Timestamp,
        /// Why the attempt failed.
        error: StepError,
    },
    /// A step (or item) failed for good.
    StepFailed {
        /// The step.
        step: StepId,
        /// The item, for a fanned-out step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// The last attempt; absent when the step failed before running.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        /// Why.
        error: StepError,
    },
    /// A step was skipped.
    StepSkipped {
        /// The step.
        step: StepId,
        /// Why.
        reason: SkipReason,
    },
    /// A step (or item) was cancelled.
    StepCancelled {
        /// The step.
        step: StepId,
        /// The item, for a fanned-out step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
    },
    /// The job finished successfully.
    JobSucceeded,
    /// The job failed.
    JobFailed {
        /// Why.
        failure: JobFailure,
    },
    /// The job was cancelled.
    JobCancelled {
        /// The reason an operator gave, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// One entry of a job's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Layout version of the record.
    #[serde(deserialize_with = "supported_format_version")]
    pub format_version: u32,
    /// The job.
    pub job_id: JobId,
    /// Position in the job's history, from 1, without gaps.
    pub sequence: u64,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// An event of the current format.
    pub fn new(job_id: JobId, sequence: u64, at: Timestamp, kind: EventKind) -> Self {
        Event {
            format_version: FORMAT_VERSION,
            job_id,
            sequence,
            at,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_serialize_flat_with_a_type_tag() {
        let job_id = JobId::from_parts(Timestamp::from_unix_ms(1), [0; 10]);
        let kind = EventKind::StepRetrying {
            step: StepId::new("erase").unwrap(),
            item: Some(3),
            attempt: 1,
            due_at: Timestamp::from_unix_ms(900),
            error: StepError::new(crate::failure::ErrorKind::DeadlineExceeded, "too slow"),
        };
        let event = Event::new(job_id, 7, Timestamp::from_unix_ms(700), kind);
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            json!({
                "format_version": 1, "job_id": job_id.to_string(), "sequence": 7, "at": 700,
                "type": "step_retrying", "step": "erase", "item": 3, "attempt": 1, "due_at": 900,
                "error": {"kind": "deadline_exceeded", "message": "too slow"}
            })
        );
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
    }

    #[test]
    fn newer_formats_are_refused() {
        let job_id = JobId::from_parts(Timestamp::from_unix_ms(1), [0; 10]);
        let mut json = serde_json::to_value(Event::new(
            job_id,
            1,
            Timestamp::EPOCH,
            EventKind::JobStarted,
        ))
        .unwrap();
        json["format_version"] = json!(FORMAT_VERSION + 1);
        let error = serde_json::from_value::<Event>(json)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("record format version 2 is not supported"),
            "{error}"
        );
    }
}
