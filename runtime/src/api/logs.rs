//! `GET /api/v1/jobs/{id}/steps/{step}/logs`: what a step's attempts logged.
//!
//! Each attempt keeps an excerpt of its log (plugin log calls, then captured stdout and
//! stderr): the
//! last [`LOG_EXCERPT_MAX_BYTES`] bytes, marked with `…` when cut. Full logs are not kept.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use weft_domain::StepId;
use weft_domain::attempt::LOG_EXCERPT_MAX_BYTES;

use super::AppState;
use super::auth::Viewer;
use super::error::{ApiError, Denied, Location, Problem};
use super::extract::{PathParams, parse_param};
use super::jobs::{job_id, load_job};

/// Path of one step of a job.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StepPath {
    /// The job's id.
    pub id: String,
    /// The step's id.
    pub step: String,
}

/// One attempt's log.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptLog {
    /// Attempt number, from 1.
    pub number: u32,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at: u64,
    /// When it ended; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    /// How it ended; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The end of its log: one line per log record (`Level message`), then each line of
    /// stdout and of stderr, prefixed `stdout: ` and `stderr: `. Empty when it logged and
    /// printed nothing (or is still running).
    pub log: String,
}

/// The logs of one task of the step.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskLogs {
    /// The item's index, for a fanned-out step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// Its attempts, oldest first.
    pub attempts: Vec<AttemptLog>,
}

/// A step's logs, per task and attempt.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepLogs {
    /// The job.
    pub job_id: String,
    /// The step.
    pub step: String,
    /// Each attempt keeps at most this many bytes of log: the end.
    pub excerpt_max_bytes: usize,
    /// Its tasks: one, or one per item of a fanned-out step.
    pub tasks: Vec<TaskLogs>,
}

/// The step's captured logs (plugin log calls, stdout and stderr), per task and attempt. Each
/// attempt's log is an excerpt: its last `excerpt_max_bytes` bytes.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/steps/{step}/logs", operation_id = "get_step_logs", tag = "jobs",
    security(("bearer" = ["viewer"])), params(StepPath),
    responses(
        (status = 200, description = "The logs", body = StepLogs),
        (status = 404, description = "No such job or step", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn step_logs(
    _: Viewer,
    State(state): State<AppState>,
    PathParams(path): PathParams<StepPath>,
) -> Result<Json<StepLogs>, ApiError> {
    let id = job_id(&path.id)?;
    let step: StepId = parse_param("step", &path.step)?;
    let job = load_job(&state, id)?;
    let record = job.step(&step).ok_or_else(|| ApiError::NotFound {
        detail: format!("job {id} has no step {step}"),
        at: Location::parameter("step"),
    })?;
    let tasks = record
        .tasks()
        .map(|(item, task)| TaskLogs {
            item,
            attempts: task
                .attempts()
                .iter()
                .map(|a| AttemptLog {
                    number: a.number,
                    started_at: a.started_at.as_unix_ms(),
                    ended_at: a.ended_at.map(|t| t.as_unix_ms()),
                    outcome: a.outcome.as_ref().and_then(|o| {
                        serde_json::to_value(o)
                            .ok()?
                            .get("kind")?
                            .as_str()
                            .map(str::to_owned)
                    }),
                    log: a.log_excerpt.clone().unwrap_or_default(),
                })
                .collect(),
        })
        .collect();
    Ok(Json(StepLogs {
        job_id: id.to_string(),
        step: step.to_string(),
        excerpt_max_bytes: LOG_EXCERPT_MAX_BYTES,
        tasks,
    }))
}
