//! `/api/v1/jobs` and `/api/v1/workflows/{name}/jobs`: starting jobs, listing them newest
//! first, reading one, and cancelling, pausing or resuming it.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_domain::{Job, JobId, JobState, WorkflowName};
use weft_store::JobQuery;

use super::AppState;
use super::auth::{Operator, Viewer};
use super::error::{ApiError, Denied, Location, Problem};
use super::extract::{JsonBody, PathParams, QueryParams, parse_param};
use super::job_view::{JobSummary, JobView, step_order};
use crate::engine::{JobError, StartError, StartJob};

/// Jobs per page when the query does not say.
const DEFAULT_PAGE: usize = 50;
/// Most jobs per page.
const MAX_PAGE: usize = 1_000;
/// Longest queue name and idempotency key, in bytes.
const MAX_KEY_BYTES: usize = 200;

/// A request to start a job.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The job's input: an object with the fields the workflow requires. `{}` if absent.
    #[serde(default = "empty_object")]
    pub input: Value,
    /// The workflow version to run; the latest if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Higher runs first; 0 if absent.
    #[serde(default)]
    pub priority: i32,
    /// The named queue whose limits apply; `default` if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Starting the same workflow again with the same key returns the first job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// A job that was started (or found by its idempotency key).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Started {
    /// The job's id.
    pub id: String,
    /// The workflow.
    pub workflow: String,
}

/// A page of jobs.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobList {
    /// The jobs, newest first.
    pub jobs: Vec<JobSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters and paging of the job list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs of this workflow.
    pub workflow: Option<String>,
    /// Only jobs in this state.
    pub status: Option<String>,
    /// At most this many jobs (1 to 1000, default 50).
    #[param(value_type = Option<u64>)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A reason for cancelling.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Path of a workflow's jobs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WorkflowPath {
    /// The workflow's name.
    pub name: String,
}

/// Path of one job.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobPath {
    /// The job's id.
    pub id: String,
}

/// Parses a job id parameter.
pub fn job_id(id: &str) -> Result<JobId, ApiError> {
    parse_param("id", id)
}

/// The job with `id`, or 404.
pub fn load_job(state: &AppState, id: JobId) -> Result<Job, ApiError> {
    state.engine.job(id)?.ok_or_else(|| ApiError::NotFound {
        detail: format!("no job {id}"),
        at: Location::parameter("id"),
    })
}

/// The full view of a job, its steps in definition order.
pub fn view(state: &AppState, job: &Job) -> Result<JobView, ApiError> {
    let order = state
        .engine
        .store()
        .definition(job.workflow(), job.version())?
        .map(|d| step_order(&d))
        .unwrap_or_default();
    Ok(JobView::of(job, &order))
}

fn check_key(field: &str, value: &Option<String>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > MAX_KEY_BYTES => Err(ApiError::Unprocessable {
            detail: format!("`{field}` must be 1 to {MAX_KEY_BYTES} bytes"),
            at: Location::body(format!("/{field}")),
        }),
        _ => Ok(()),
    }
}

/// Starts a job of the workflow. Answers 201 with the job's id; with an idempotency key
/// already used for this workflow, the first job's id. A full engine answers 429 with
/// `Retry-After`.
#[utoipa::path(post, path = "/api/v1/workflows/{name}/jobs", operation_id = "start_job", tag = "jobs",
    security(("bearer" = ["operator"])), params(WorkflowPath), request_body = StartRequest,
    responses(
        (status = 201, description = "Started", body = Started,
            headers(("Location" = String, description = "The job's URL"))),
        (status = 404, description = "No such workflow or version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The input does not fit the workflow", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many unfinished jobs; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        Denied,
    ))]
pub async fn start(
    _: Operator,
    State(state): State<AppState>,
    PathParams(path): PathParams<WorkflowPath>,
    JsonBody(request): JsonBody<StartRequest>,
) -> Result<Response, ApiError> {
    if *state.shutdown.borrow() {
        return Err(ApiError::ShuttingDown);
    }
    let workflow: WorkflowName = parse_param("name", &path.name)?;
    if !request.input.is_object() {
        return Err(ApiError::Unprocessable {
            detail: "the job input must be a JSON object".to_owned(),
            at: Location::body("/input"),
        });
    }
    super::input::check(&state, &workflow, request.version, &request.input)?;
    check_key("queue", &request.queue)?;
    check_key("idempotency_key", &request.idempotency_key)?;
    let id = state
        .engine
        .start_job(StartJob {
            workflow: workflow.clone(),
            version: request.version,
            input: request.input,
            priority: request.priority,
            queue: request.queue.unwrap_or_else(|| "default".to_owned()),
            idempotency_key: request.idempotency_key,
        })
        .await
        .map_err(|e| match e {
            StartError::UnknownWorkflow { .. } => ApiError::NotFound {
                detail: e.to_string(),
                at: if request.version.is_some() {
                    Location::body("/version")
                } else {
                    Location::parameter("name")
                },
            },
            // The input was checked above; what is left is the workflow's plugins.
            StartError::Invalid(detail) => ApiError::Unprocessable {
                detail,
                at: Location::Request,
            },
            StartError::Busy(_) => ApiError::Busy {
                detail: e.to_string(),
                retry_after_seconds: state.config.retry_after_seconds,
            },
            StartError::Store(e) => e.into(),
        })?;
    let location = HeaderValue::from_str(&format!("/api/v1/jobs/{id}"))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = Started {
        id: id.to_string(),
        workflow: workflow.to_string(),
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// Jobs, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/jobs", operation_id = "list_jobs", tag = "jobs",
    security(("bearer" = ["viewer"])), params(ListQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobList),
        (status = 400, description = "A malformed parameter", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn list(
    _: Viewer,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let workflow = query
        .workflow
        .as_deref()
        .map(|w| parse_param::<WorkflowName>("workflow", w))
        .transpose()?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            serde_json::from_value::<JobState>(Value::String(s.to_owned())).map_err(|_| {
                ApiError::BadRequest {
                    detail: format!(
                        "`status` must be pending, running, paused, succeeded, failed or cancelled, not `{s}`"
                    ),
                    at: Location::parameter("status"),
                }
            })
        })
        .transpose()?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest {
                    detail: format!("`limit` must be between 1 and {MAX_PAGE}"),
                    at: Location::parameter("limit"),
                });
            }
        },
    };
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| parse_param::<JobId>("cursor", c))
        .transpose()?;
    let page = state.engine.store().jobs(&JobQuery {
        workflow,
        state: status,
        limit,
        cursor,
    })?;
    Ok(Json(JobList {
        jobs: page.jobs.iter().map(JobSummary::of).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// One job: its state, input, output, error, timings, and every step with its attempts.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", operation_id = "get_job", tag = "jobs",
    security(("bearer" = ["viewer"])), params(JobPath),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn show(
    _: Viewer,
    State(state): State<AppState>,
    PathParams(path): PathParams<JobPath>,
) -> Result<Json<JobView>, ApiError> {
    let job = load_job(&state, job_id(&path.id)?)?;
    Ok(Json(view(&state, &job)?))
}

fn job_error(error: JobError) -> ApiError {
    match error {
        JobError::NotFound(id) => ApiError::NotFound {
            detail: format!("no job {id}"),
            at: Location::parameter("id"),
        },
        JobError::State(e) => ApiError::Conflict(e.to_string()),
        JobError::Store(e) => e.into(),
    }
}

/// The answer to an operator's change of a job (cancel, pause, resume): the job as it is
/// now, with the change logged under the token that made it.
fn answer_change(
    state: &AppState,
    token: &str,
    changed: Result<Job, JobError>,
    what: &str,
) -> Result<Json<JobView>, ApiError> {
    let job = changed.map_err(job_error)?;
    tracing::info!(token, job = %job.id(), "job {what}");
    Ok(Json(view(state, &job)?))
}

/// Cancels a job: unfinished steps are cancelled and running attempts stopped. A finished
/// job cannot be cancelled (409).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", operation_id = "cancel_job", tag = "jobs",
    security(("bearer" = ["operator"])), params(JobPath), request_body = CancelRequest,
    responses(
        (status = 200, description = "Cancelled", body = JobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is finished", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn cancel(
    operator: Operator,
    State(state): State<AppState>,
    PathParams(path): PathParams<JobPath>,
    JsonBody(request): JsonBody<CancelRequest>,
) -> Result<Json<JobView>, ApiError> {
    let changed = state
        .engine
        .cancel_job(job_id(&path.id)?, request.reason)
        .await;
    answer_change(&state, operator.token(), changed, "cancelled")
}

/// Pauses a running job: no new attempt starts until it is resumed.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/pause", operation_id = "pause_job", tag = "jobs",
    security(("bearer" = ["operator"])), params(JobPath),
    responses(
        (status = 200, description = "Paused", body = JobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not running", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn pause(
    operator: Operator,
    State(state): State<AppState>,
    PathParams(path): PathParams<JobPath>,
) -> Result<Json<JobView>, ApiError> {
    let changed = state.engine.pause_job(job_id(&path.id)?).await;
    answer_change(&state, operator.token(), changed, "paused")
}

/// Resumes a paused job.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/resume", operation_id = "resume_job", tag = "jobs",
    security(("bearer" = ["operator"])), params(JobPath),
    responses(
        (status = 200, description = "Resumed", body = JobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not paused", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn resume(
    operator: Operator,
    State(state): State<AppState>,
    PathParams(path): PathParams<JobPath>,
) -> Result<Json<JobView>, ApiError> {
    let changed = state.engine.resume_job(job_id(&path.id)?).await;
    answer_change(&state, operator.token(), changed, "resumed")
}
