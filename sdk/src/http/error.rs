//! [`HttpError`]: why an outbound HTTP request produced no response.
//!
//! A response with an error status (404, 503) is not an `HttpError`: it is a
//! [`Response`](super::Response), and the plugin decides what its status means.

use crate::TaskError;

/// Why an outbound HTTP request produced no response.
///
/// Converts into a [`TaskError`] with [`HttpError::code`] and [`HttpError::is_retryable`],
/// so `?` works inside [`Task::run`](crate::Task::run). Match on it to handle one case,
/// such as a host the operator did not grant:
///
/// ```
/// use weft_sdk::http::HttpError;
///
/// fn describe(error: &HttpError) -> &'static str {
///     match error {
///         HttpError::Denied => "ask an operator to grant this host",
///         error if error.is_retryable() => "try again later",
///         _ => "fix the request",
///     }
/// }
/// assert_eq!(HttpError::Denied.code(), "http-request-denied");
/// assert_eq!(describe(&HttpError::Denied), "ask an operator to grant this host");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The daemon refused the request: its host was not granted to the plugin, or its
    /// address is one plugins may not reach.
    #[error("http request denied: the host is not granted to this plugin")]
    Denied,
    /// The URL could not be parsed, or its scheme is neither `http` nor `https`.
    #[error("invalid url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request is malformed: an invalid method or header, a forbidden header, a body
    /// that does not encode as JSON, or a request the host finds too large.
    #[error("invalid http request: {0}")]
    InvalidRequest(String),
    /// Resolving, connecting, sending or waiting for the response took longer than allowed.
    #[error("http request timed out: {0}")]
    Timeout(String),
    /// The server could not be resolved or reached, or the connection broke.
    #[error("http connection failed: {0}")]
    Connection(String),
    /// The TLS handshake failed, for example on an invalid certificate.
    #[error("tls failed: {0}")]
    Tls(String),
    /// The server's response broke the HTTP protocol or the host's limits.
    #[error("http protocol error: {0}")]
    Protocol(String),
    /// Sending the request body or receiving the response body failed midway.
    #[error("http body transfer failed: {0}")]
    Body(String),
    /// The response body is not what [`Response::json`](super::Response::json) or
    /// [`Response::text`](super::Response::text) was asked to decode.
    #[error("cannot decode the http response: {0}")]
    Decode(String),
    /// The daemon's HTTP client failed on its own.
    #[error("the host's http client failed: {0}")]
    Host(String),
}

impl HttpError {
    /// Stable code for this kind of failure, used as the [`TaskError`] code. A denied
    /// request is `http-request-denied`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Denied => "http-request-denied",
            Self::InvalidUrl { .. } => "http-invalid-url",
            Self::InvalidRequest(_) => "http-invalid-request",
            Self::Timeout(_) => "http-timeout",
            Self::Connection(_) => "http-connection-failed",
            Self::Tls(_) => "http-tls-error",
            Self::Protocol(_) => "http-protocol-error",
            Self::Body(_) => "http-body-error",
            Self::Decode(_) => "http-decode-error",
            Self::Host(_) => "http-host-error",
        }
    }

    /// Whether sending the same request again may succeed: timeouts, broken connections
    /// and host failures are transient; a denied or malformed request is not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout(_) | Self::Connection(_) | Self::Body(_) | Self::Host(_)
        )
    }
}

impl From<HttpError> for TaskError {
    fn from(error: HttpError) -> Self {
        let message = error.to_string();
        if error.is_retryable() {
            TaskError::retryable(error.code(), message)
        } else {
            TaskError::new(error.code(), message)
        }
    }
}
