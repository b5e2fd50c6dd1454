//! [`TaskError`]: a failure the plugin reports on purpose.
//!
//! This is the only error type that crosses into the daemon. The SDK's other errors
//! ([`HttpError`](crate::http::HttpError), [`KvError`](crate::kv::KvError)) convert into it,
//! so `?` works on them inside [`Task::run`](crate::Task::run).

/// Code of the error the SDK returns when the step's input does not decode into
/// [`Task::Input`](crate::Task::Input).
pub const INVALID_INPUT: &str = "invalid-input";

/// Code of the error the SDK returns when [`Task::Output`](crate::Task::Output) does not
/// encode as JSON.
pub const INVALID_OUTPUT: &str = "invalid-output";

/// A failure the plugin reports on purpose, as opposed to the sandbox stopping it.
///
/// ```
/// use serde_json::json;
/// use weft_sdk::TaskError;
///
/// let error = TaskError::retryable("upstream-busy", "the upstream answered 503")
///     .with_details(json!({ "status": 503 }));
/// assert_eq!(error.code(), "upstream-busy");
/// assert!(error.is_retryable());
/// assert_eq!(error.to_string(), "upstream-busy: the upstream answered 503");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct TaskError {
    code: String,
    message: String,
    retryable: bool,
    details: Option<serde_json::Value>,
}

impl TaskError {
    /// A failure that trying the same input again will not fix, such as invalid input.
    ///
    /// `code` is short and machine-readable (`not-found`, `invalid-input`); `message` is
    /// for operators.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: false,
            details: None,
        }
    }

    /// A failure that trying the same input again may fix, such as a timeout or a 503.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            ..Self::new(code, message)
        }
    }

    /// An `invalid-input` failure: the input is well-formed JSON of the right shape but
    /// its values do not make sense.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(INVALID_INPUT, message)
    }

    /// Attaches a JSON document with extra detail, replacing any attached before.
    pub fn with_details(self, details: serde_json::Value) -> Self {
        Self {
            details: Some(details),
            ..self
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The explanation for operators.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying the same input again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The extra detail, if any.
    pub fn details(&self) -> Option<&serde_json::Value> {
        self.details.as_ref()
    }
}
