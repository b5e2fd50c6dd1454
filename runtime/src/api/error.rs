//! [`ApiError`]: every way a request fails, answered as an `application/problem+json` body
//! (RFC 9457) with `type`, `title`, `status`, `detail`, and where the fault is: `pointer` (a
//! JSON pointer into the request body), `parameter` (a path or query parameter, or a header),
//! or `problems` (every problem of a workflow definition, each with its path).
//!
//! Client errors are the caller's business and are not logged. An internal error answers with
//! an opaque message; its cause rides on the response to [`log_internal_errors`], the one
//! place that logs it.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use weft_domain::Problems;
use weft_store::StoreError;

/// Media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where in the request the fault is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A JSON pointer into the request body (`""` for the whole body).
    Body(String),
    /// A path or query parameter, or a header, by name.
    Parameter(String),
    /// The request as a whole.
    Request,
}

impl Location {
    /// The body member at JSON pointer `pointer`.
    pub fn body(pointer: impl Into<String>) -> Self {
        Location::Body(pointer.into())
    }

    /// The parameter (or header) `name`.
    pub fn parameter(name: impl Into<String>) -> Self {
        Location::Parameter(name.into())
    }
}

/// Why a request failed; see the module documentation.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or not a valid one.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The token's role is lower than the route's.
    #[error("this requires the {required} role; the token has {actual}")]
    Forbidden {
        /// The route's role.
        required: crate::access::Role,
        /// The token's role.
        actual: crate::access::Role,
    },
    /// The request is malformed: a parameter or body that does not parse.
    #[error("{detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
        /// Where.
        at: Location,
    },
    /// A resource named by the path does not exist.
    #[error("{detail}")]
    NotFound {
        /// What was not found.
        detail: String,
        /// The parameter that named it.
        at: Location,
    },
    /// No route has this path.
    #[error("no route for {0}")]
    NoRoute(String),
    /// The route exists but not with this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// The request conflicts with what exists.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the route accepts.
    #[error("the request body is larger than {limit_bytes} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// The body has a media type the route does not take.
    #[error("expected a body of type {expected}")]
    UnsupportedMediaType {
        /// What the route takes.
        expected: &'static str,
    },
    /// The body parses but a value is not acceptable.
    #[error("{detail}")]
    Unprocessable {
        /// What is wrong.
        detail: String,
        /// Where.
        at: Location,
    },
    /// A workflow definition with problems.
    #[error("{0}")]
    InvalidDefinition(Problems),
    /// The daemon cannot take more work now.
    #[error("{detail}")]
    Busy {
        /// Why.
        detail: String,
        /// When to try again.
        retry_after_seconds: u64,
    },
    /// The daemon is shutting down.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// Anything else: a fault of the daemon, not of the request.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Internal(format!("store: {error}"))
    }
}

/// The body of an error response.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// Identifies the kind of problem: `urn:weft:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// JSON pointer to the offending member of the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The offending path or query parameter, or header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Every problem of a workflow definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<DefinitionProblem>>,
}

/// One problem of a workflow definition.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DefinitionProblem {
    /// JSON pointer into the definition.
    pub path: String,
    /// Stable machine-readable code, such as `unknown_field`.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

/// The answers of a route to a caller without a valid token (401) or with a lower role (403),
/// for the OpenAPI document.
#[derive(Debug, utoipa::IntoResponses)]
#[expect(dead_code, reason = "only describes responses in the OpenAPI document")]
pub enum Denied {
    /// No valid bearer token.
    #[response(
        status = 401,
        description = "No valid bearer token",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    /// The token's role is too low.
    #[response(
        status = 403,
        description = "The token's role is lower than the route's",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
}

/// The cause of an internal error, handed from the response to the logging middleware.
#[derive(Debug, Clone)]
struct InternalCause(String);

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } | ApiError::InvalidDefinition(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem's code (the end of its `type`) and title.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Unauthorized => ("unauthorized", "Unauthorized"),
            ApiError::Forbidden { .. } => ("forbidden", "Forbidden"),
            ApiError::BadRequest { .. } => ("bad-request", "Malformed request"),
            ApiError::NotFound { .. } => ("not-found", "Not found"),
            ApiError::NoRoute(_) => ("no-route", "No such route"),
            ApiError::MethodNotAllowed(_) => ("method-not-allowed", "Method not allowed"),
            ApiError::Conflict(_) => ("conflict", "Conflict"),
            ApiError::PayloadTooLarge { .. } => ("payload-too-large", "Request body too large"),
            ApiError::UnsupportedMediaType { .. } => {
                ("unsupported-media-type", "Unsupported media type")
            }
            ApiError::Unprocessable { .. } => ("invalid-value", "Invalid value"),
            ApiError::InvalidDefinition(_) => ("invalid-definition", "Invalid workflow definition"),
            ApiError::Busy { .. } => ("busy", "Too many unfinished jobs"),
            ApiError::ShuttingDown => ("shutting-down", "Shutting down"),
            ApiError::Internal(_) => ("internal", "Internal error"),
        }
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        let (code, title) = self.kind();
        let location = match self {
            ApiError::BadRequest { at, .. }
            | ApiError::NotFound { at, .. }
            | ApiError::Unprocessable { at, .. } => at.clone(),
            ApiError::Unauthorized | ApiError::Forbidden { .. } => {
                Location::parameter(header::AUTHORIZATION.as_str())
            }
            ApiError::PayloadTooLarge { .. } => Location::body(""),
            ApiError::UnsupportedMediaType { .. } => {
                Location::parameter(header::CONTENT_TYPE.as_str())
            }
            _ => Location::Request,
        };
        let (pointer, parameter) = match location {
            Location::Body(pointer) => (Some(pointer), None),
            Location::Parameter(name) => (None, Some(name)),
            Location::Request => (None, None),
        };
        let detail = match self {
            // The cause is logged, never shown.
            ApiError::Internal(_) => {
                "the daemon failed to handle the request; see its log".to_owned()
            }
            ApiError::InvalidDefinition(problems) => format!(
                "the definition has {} problem(s); see `problems`",
                problems.0.len()
            ),
            other => other.to_string(),
        };
        let problems = match self {
            ApiError::InvalidDefinition(problems) => Some(
                problems
                    .0
                    .iter()
                    .map(|p| DefinitionProblem {
                        path: p.path.to_string(),
                        code: p.kind.code().to_owned(),
                        message: p.kind.to_string(),
                    })
                    .collect(),
            ),
            _ => None,
        };
        Problem {
            type_uri: format!("urn:weft:problem:{code}"),
            title: title.to_owned(),
            status: self.status().as_u16(),
            detail,
            pointer,
            parameter,
            problems,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).expect("problems serialize");
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response();
        match self {
            ApiError::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"weft\""),
                );
            }
            ApiError::Busy {
                retry_after_seconds,
                ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            }
            ApiError::Internal(cause) => {
                response.extensions_mut().insert(InternalCause(cause));
            }
            _ => {}
        }
        response
    }
}

/// Logs the cause of every internal error, once, with the request it answered.
pub async fn log_internal_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    if let Some(InternalCause(cause)) = response.extensions_mut().remove::<InternalCause>() {
        tracing::error!(%method, %path, error = %cause, "request failed");
    }
    response
}
