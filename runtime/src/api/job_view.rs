//! How jobs look over HTTP: [`JobSummary`] in lists and [`JobView`] in full, with every step,
//! task and attempt. These are the API's own types, so the stored layout of a job can change
//! without changing the API.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_domain::{Attempt, Job, JobFailure, StepError, StepId, StepRecord, TaskRecord};

/// A job's state: `pending`, `running`, `paused`, `succeeded`, `failed` or `cancelled`.
pub type JobStatus = String;

/// An error recorded on a step, an attempt or a job.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorView {
    /// The class of failure, such as `plugin_error` or `out_of_fuel`.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// The plugin's error code, for plugin errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The plugin's details, for plugin errors that have some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// The step that failed the job, for a job's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// A job in a list.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSummary {
    /// The job's id: time-ordered, newest sorts last.
    pub id: String,
    /// The workflow it runs.
    pub workflow: String,
    /// The workflow's version.
    pub version: u32,
    /// Its state.
    pub status: JobStatus,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at: u64,
    /// When it last changed, in milliseconds since the Unix epoch.
    pub updated_at: u64,
    /// When it finished, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
}

/// One attempt of a task.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// Attempt number, from 1.
    pub number: u32,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at: u64,
    /// When it ended, in milliseconds since the Unix epoch; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    /// How it ended (`succeeded`, `plugin_error`, `out_of_fuel`, `deadline_exceeded`,
    /// `memory_limit`, `trap`, `capability_denied`, `invalid_output`, `interrupted`); absent
    /// while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    /// Fuel consumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
}

/// One task: the work of a step, or of one item of a fanned-out step.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskView {
    /// The item's index, for a fanned-out step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// Its state.
    pub status: String,
    /// Its rendered input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Its error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    /// When the next attempt is due, while waiting to retry (milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptView>,
}

/// One step of a job.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepView {
    /// The step's id.
    pub id: String,
    /// Its state: `pending`, `ready`, `running`, `waiting_retry`, `succeeded`, `failed`,
    /// `skipped` or `cancelled`.
    pub status: String,
    /// The plugin build it runs: `name@version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Its error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    /// Why it was skipped: `{"kind": "condition_false"}` or
    /// `{"kind": "dependency_not_succeeded", "dependency": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<Value>,
    /// When it finished, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// Its tasks: one, or one per item of a fanned-out step; empty until it is ready.
    pub tasks: Vec<TaskView>,
}

/// A job in full.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// The workflow it runs.
    pub workflow: String,
    /// The workflow's version.
    pub version: u32,
    /// Its state.
    pub status: JobStatus,
    /// Its input.
    pub input: Value,
    /// Its output, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at: u64,
    /// When it last changed, in milliseconds since the Unix epoch.
    pub updated_at: u64,
    /// When it finished, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// Sequence number of its newest event.
    pub last_event_sequence: u64,
    /// Its steps, in definition order.
    pub steps: Vec<StepView>,
}

/// The string a serde enum serializes to (a unit variant), or its `kind` tag.
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(Value::Object(map)) => map
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

fn error_view(error: &StepError) -> ErrorView {
    ErrorView {
        kind: name_of(&error.kind),
        message: error.message.clone(),
        code: error.code.clone(),
        details: error.details.clone(),
        step: None,
    }
}

fn failure_view(failure: &JobFailure) -> ErrorView {
    ErrorView {
        step: failure.step.as_ref().map(ToString::to_string),
        ..error_view(&failure.error)
    }
}

fn attempt_view(attempt: &Attempt) -> AttemptView {
    AttemptView {
        number: attempt.number,
        started_at: attempt.started_at.as_unix_ms(),
        ended_at: attempt.ended_at.map(|t| t.as_unix_ms()),
        outcome: attempt.outcome.as_ref().map(name_of),
        error: attempt
            .outcome
            .as_ref()
            .and_then(|o| o.error())
            .map(|e| error_view(&e)),
        fuel_used: attempt.fuel_used,
    }
}

fn task_view(item: Option<u32>, task: &TaskRecord) -> TaskView {
    TaskView {
        item,
        status: task.state().as_str().to_owned(),
        input: task.input().cloned(),
        output: task.output().cloned(),
        error: task.error().map(error_view),
        retry_at: task.retry_at().map(|t| t.as_unix_ms()),
        attempts: task.attempts().iter().map(attempt_view).collect(),
    }
}

fn step_view(job: &Job, id: &StepId, step: &StepRecord) -> StepView {
    StepView {
        id: id.to_string(),
        status: step.state().as_str().to_owned(),
        plugin: job
            .plugins()
            .get(id)
            .map(|p| format!("{}@{}", p.name, p.version)),
        output: step.output().cloned(),
        error: step.error().map(error_view),
        skip_reason: step
            .skip_reason()
            .and_then(|r| serde_json::to_value(r).ok()),
        finished_at: step.finished_at().map(|t| t.as_unix_ms()),
        tasks: step
            .tasks()
            .map(|(item, task)| task_view(item, task))
            .collect(),
    }
}

impl JobSummary {
    /// The summary of `job`.
    pub fn of(job: &Job) -> Self {
        JobSummary {
            id: job.id().to_string(),
            workflow: job.workflow().to_string(),
            version: job.version(),
            status: job.state().as_str().to_owned(),
            created_at: job.created_at().as_unix_ms(),
            updated_at: job.updated_at().as_unix_ms(),
            finished_at: job.finished_at().map(|t| t.as_unix_ms()),
            error: job.failure().map(failure_view),
        }
    }
}

impl JobView {
    /// The view of `job`, its steps in `order` (the definition's), then any others by id.
    pub fn of(job: &Job, order: &[String]) -> Self {
        let mut steps: Vec<StepView> = job
            .steps()
            .iter()
            .map(|(id, step)| step_view(job, id, step))
            .collect();
        steps.sort_by_key(|s| {
            order
                .iter()
                .position(|id| *id == s.id)
                .unwrap_or(usize::MAX)
        });
        JobView {
            id: job.id().to_string(),
            workflow: job.workflow().to_string(),
            version: job.version(),
            status: job.state().as_str().to_owned(),
            input: job.input().clone(),
            output: job.output().cloned(),
            error: job.failure().map(failure_view),
            created_at: job.created_at().as_unix_ms(),
            updated_at: job.updated_at().as_unix_ms(),
            finished_at: job.finished_at().map(|t| t.as_unix_ms()),
            last_event_sequence: job.last_event_sequence(),
            steps,
        }
    }
}

/// The step ids of a stored definition document, in order.
pub fn step_order(definition: &Value) -> Vec<String> {
    definition
        .get("steps")
        .and_then(Value::as_array)
        .map(|steps| {
            steps
                .iter()
                .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
