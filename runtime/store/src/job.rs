//! What the store keeps about jobs besides the domain's [`Job`] record: [`JobMeta`] (how the
//! job is scheduled), and the types of job creation ([`CreateJob`]) and listing ([`JobQuery`],
//! [`JobPage`]).
//!
//! The checks every backend applies to a job write live here too, so that backends agree on
//! what they refuse.

use serde::{Deserialize, Serialize};
use weft_domain::{Event, Job, JobId, JobState, WorkflowName};

use crate::error::StoreError;
use crate::format::RECORD_FORMAT_VERSION;

/// How a job is scheduled, and the idempotency key it was submitted with. Written once, when
/// the job is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMeta {
    /// Layout version of the record; see [`RECORD_FORMAT_VERSION`].
    pub format_version: u32,
    /// Higher runs first.
    pub priority: i32,
    /// The queue whose workers run the job's tasks.
    pub queue: String,
    /// The submitter's key: a second submission of the same workflow with the same key returns
    /// the first job instead of creating another.
    pub idempotency_key: Option<String>,
}

impl JobMeta {
    /// Metadata of the current format.
    pub fn new(priority: i32, queue: impl Into<String>, idempotency_key: Option<String>) -> Self {
        JobMeta {
            format_version: RECORD_FORMAT_VERSION,
            priority,
            queue: queue.into(),
            idempotency_key,
        }
    }
}

/// What [`crate::Store::create_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateJob {
    /// The job was stored.
    Created,
    /// A job of the same workflow was already submitted with the same idempotency key;
    /// nothing was stored. Holds that job's id.
    Existing(JobId),
}

/// Which jobs [`crate::Store::jobs`] lists: newest first, optionally filtered, one page at a
/// time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    /// Only jobs of this workflow.
    pub workflow: Option<WorkflowName>,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// At most this many jobs.
    pub limit: usize,
    /// Only jobs strictly older than this one: the `next_cursor` of the previous page.
    pub cursor: Option<JobId>,
}

impl JobQuery {
    /// The first page of every job, `limit` jobs long.
    pub fn newest(limit: usize) -> Self {
        JobQuery {
            workflow: None,
            state: None,
            limit,
            cursor: None,
        }
    }

    /// Whether `job` passes the query's filters (the cursor aside).
    pub fn matches(&self, job: &Job) -> bool {
        self.workflow.as_ref().is_none_or(|w| w == job.workflow())
            && self.state.is_none_or(|state| state == job.state())
    }
}

/// One page of [`crate::Store::jobs`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// The jobs, newest first.
    pub jobs: Vec<Job>,
    /// Where the next page starts, when there may be one.
    pub next_cursor: Option<JobId>,
}

impl JobPage {
    /// The page made of the first `limit` of `matching` (newest first): the cursor is set when
    /// more follow.
    pub(crate) fn collect(
        matching: impl Iterator<Item = Result<Job, StoreError>>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        let mut jobs = Vec::new();
        let mut more = false;
        for job in matching {
            if jobs.len() == limit {
                more = true;
                break;
            }
            jobs.push(job?);
        }
        let next_cursor = if more { jobs.last().map(Job::id) } else { None };
        Ok(JobPage { jobs, next_cursor })
    }
}

/// Checks that `events` belong to `job` and follow each other: increasing sequence numbers, none
/// beyond the job's last.
pub(crate) fn check_events(job: &Job, events: &[Event]) -> Result<(), StoreError> {
    let mut previous = 0;
    for event in events {
        if event.job_id != job.id() {
            return Err(StoreError::Invalid(format!(
                "event {} belongs to job {}, not {}",
                event.sequence,
                event.job_id,
                job.id()
            )));
        }
        if event.sequence <= previous || event.sequence > job.last_event_sequence() {
            return Err(StoreError::Invalid(format!(
                "event sequence {} of job {} does not follow {previous} or exceeds the job's last, {}",
                event.sequence,
                job.id(),
                job.last_event_sequence()
            )));
        }
        previous = event.sequence;
    }
    Ok(())
}

/// The error of creating a job whose id is taken.
pub(crate) fn duplicate_job(id: JobId) -> StoreError {
    StoreError::Conflict(format!("job {id} already exists"))
}

/// The error of a commit that would move a finished job back to an unfinished state.
pub(crate) fn reopened_job(job: &Job) -> StoreError {
    StoreError::Conflict(format!(
        "job {} is finished and cannot become {}",
        job.id(),
        job.state().as_str()
    ))
}
