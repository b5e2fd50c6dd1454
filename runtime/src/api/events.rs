//! `GET /api/v1/jobs/{id}/events`: a job's event history, as a JSON page or, with
//! `Accept: text/event-stream`, as a live stream (SSE) that ends when the job does.
//!
//! The stream reads events from the store by sequence number and uses the engine's broadcast
//! only as a wake-up, so it has no gap and no duplicate: each SSE event carries its sequence
//! as `id`, and a client that reconnects with `after=SEQ` (or `Last-Event-ID`) continues right
//! after it. Events are sent only once durable.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use weft_domain::{Event, JobId};
use weft_store::StoreError;

use super::AppState;
use super::auth::Viewer;
use super::error::{ApiError, Denied, Location, Problem};
use super::extract::{PathParams, QueryParams, parse_param};
use super::jobs::{JobPath, job_id, load_job};
use crate::engine::EventReceiver;

/// Events per page when the query does not say.
const DEFAULT_PAGE: usize = 1_000;
/// Most events per page.
const MAX_PAGE: usize = 10_000;
/// Events read from the store at once while streaming.
const STREAM_BATCH: usize = 500;
/// SSE events buffered per stream before the reader waits for the client.
const STREAM_BUFFER: usize = 64;

/// Which events to return.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with a sequence number above this one (default 0: from the start).
    #[param(value_type = Option<u64>)]
    pub after: Option<String>,
    /// At most this many events (1 to 10000, default 1000); ignored when streaming.
    #[param(value_type = Option<u64>)]
    pub limit: Option<String>,
}

/// One event of a job's history. Besides these members, each type has its own: `step`,
/// `item`, `attempt`, `error`, `due_at`, `reason`, `failure`, `workflow`, `version`, `items`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventSchema {
    /// The job.
    pub job_id: String,
    /// Position in the job's history, from 1, without gaps.
    pub sequence: u64,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at: u64,
    /// What happened: `job_created`, `job_started`, `job_paused`, `job_resumed`,
    /// `step_scheduled`, `step_fanned_out`, `step_started`, `step_succeeded`, `step_retrying`,
    /// `step_failed`, `step_skipped`, `step_cancelled`, `job_succeeded`, `job_failed`,
    /// `job_cancelled`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A page of a job's events.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventPage {
    /// The events, in order.
    #[schema(value_type = Vec<EventSchema>)]
    pub events: Vec<Value>,
    /// Sequence number of the job's newest event when the page was read.
    pub last_sequence: u64,
    /// Whether the job is finished: no event will follow `last_sequence`.
    pub finished: bool,
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// The sequence to continue after: `after`, or the stream's `Last-Event-ID` when reconnecting.
fn start_after(query: &EventsQuery, headers: &HeaderMap) -> Result<u64, ApiError> {
    if let Some(after) = &query.after {
        return parse_param("after", after);
    }
    match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(id) => parse_param("Last-Event-ID", id),
        None => Ok(0),
    }
}

/// A job's events after `after`, in order. With `Accept: text/event-stream` the answer is a
/// live stream of SSE events (`id` = sequence, `event` = type, `data` = the event as JSON)
/// that ends after the job's last event.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", operation_id = "get_job_events", tag = "jobs",
    security(("bearer" = ["viewer"])), params(JobPath, EventsQuery),
    responses(
        (status = 200, description = "The events: JSON, or an SSE stream", content(
            (EventPage = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 400, description = "A malformed parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn events(
    _: Viewer,
    State(state): State<AppState>,
    PathParams(path): PathParams<JobPath>,
    QueryParams(query): QueryParams<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = job_id(&path.id)?;
    let after = start_after(&query, &headers)?;
    if wants_stream(&headers) {
        // Subscribe before the first read, so no wake-up is missed.
        let wake = state.engine.subscribe();
        load_job(&state, id)?;
        return Ok(stream(state, id, after, wake).into_response());
    }
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
    let job = load_job(&state, id)?;
    let events = state.engine.store().events(id, after, limit)?;
    state.engine.store().durable().wait().await?;
    let events = events
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(EventPage {
        events,
        last_sequence: job.last_event_sequence(),
        finished: job.state().is_terminal(),
    })
    .into_response())
}

fn stream(
    state: AppState,
    id: JobId,
    after: u64,
    wake: EventReceiver,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        if let Err(e) = pump(&state, id, after, wake, &sender).await {
            tracing::error!(job = %id, error = %e, "event stream ended early");
        }
    });
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok(event), receiver))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// Sends the job's events after `after` to `sender`, waking up on the engine's broadcast,
/// until the job has ended and its last event is sent, the client goes away, or the daemon
/// shuts down.
async fn pump(
    state: &AppState,
    id: JobId,
    mut after: u64,
    mut wake: EventReceiver,
    sender: &mpsc::Sender<SseEvent>,
) -> Result<(), StoreError> {
    let store = state.engine.store();
    loop {
        // The job is read before its events: if it had ended, every event is stored.
        let Some(job) = store.job(id)? else {
            return Ok(());
        };
        loop {
            let batch = store.events(id, after, STREAM_BATCH)?;
            if batch.is_empty() {
                break;
            }
            store.durable().wait().await?;
            for event in batch {
                after = event.sequence;
                if sender.send(sse_event(&event)).await.is_err() {
                    return Ok(());
                }
            }
        }
        if job.state().is_terminal() && after >= job.last_event_sequence() {
            return Ok(());
        }
        loop {
            tokio::select! {
                received = wake.recv() => match received {
                    Ok(event) if event.job_id == id => break,
                    Ok(_) => {}
                    // Fell behind: read the store again, it has everything.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                () = sender.closed() => return Ok(()),
                () = state.shutting_down() => return Ok(()),
            }
        }
    }
}

fn sse_event(event: &Event) -> SseEvent {
    let data = serde_json::to_value(event).unwrap_or(Value::Null);
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("event")
        .to_owned();
    SseEvent::default()
        .id(event.sequence.to_string())
        .event(kind)
        .data(data.to_string())
}
