//! Routes about the daemon itself: liveness, Prometheus metrics, and the OpenAPI document.
//!
//! `/healthz` and `/metrics` sit outside `/api/v1` and need no token (probes and scrapers
//! rarely carry one); they reveal no job data. The OpenAPI document is under `/api/v1` and,
//! like every route there, needs a token.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Viewer;

/// Media type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The answer of `/healthz`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` while the daemon answers.
    pub status: String,
}

/// Liveness: answers while the daemon runs.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "system",
    responses((status = 200, description = "The daemon is alive", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".to_owned(),
    })
}

/// Prometheus metrics: jobs by state, step attempts started and finished by outcome, attempt
/// durations, attempts running, sandbox stops by kind, queue depth.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROMETHEUS_TEXT),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapi_document", tag = "system",
    security(("bearer" = ["viewer"])),
    responses(
        (status = 200, description = "The OpenAPI document", body = Object),
        super::error::Denied,
    ))]
pub async fn openapi_document(_: Viewer) -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        super::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document.clone(),
    )
        .into_response()
}
