//! One attempt at running a step (or one item of a fanned-out step), and how it ended.
//!
//! [`AttemptOutcome`] keeps three kinds of ending apart, because they call for different
//! handling: the plugin returned an error on purpose ([`PluginError`], which says whether it
//! may be retried); the sandbox stopped the plugin (out of fuel, deadline, memory limit, trap,
//! a denied capability, or output that is not JSON); or the daemon stopped while the attempt
//! was running (`interrupted`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::failure::{ErrorKind, StepError};
use crate::retry::RetryOn;
use crate::time::Timestamp;

/// Longest log excerpt kept with an attempt. The full log belongs to the log store; the
/// excerpt is what an operator sees next to the error, and bounding it bounds job records.
pub const LOG_EXCERPT_MAX_BYTES: usize = 4_096;

/// An error a plugin returned on purpose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginError {
    /// Short machine-readable code, such as `not-found`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Whether the plugin thinks the same input may succeed later.
    pub retryable: bool,
    /// Extra detail, if the plugin gave any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// How an attempt ended. Serialized with a `kind` tag, such as `{"kind": "out_of_fuel"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttemptOutcome {
    /// The plugin returned an output document.
    Succeeded {
        /// The output.
        output: Value,
    },
    /// The plugin returned an error.
    PluginError(PluginError),
    /// The sandbox stopped the plugin when it used up its fuel.
    OutOfFuel,
    /// The sandbox stopped the plugin at the step's deadline.
    DeadlineExceeded,
    /// The plugin tried to grow its memory past the step's limit.
    MemoryLimit,
    /// The plugin trapped (a crash inside WebAssembly).
    Trap {
        /// The trap's description.
        message: String,
    },
    /// The plugin used a capability it was not granted.
    CapabilityDenied {
        /// What was denied.
        message: String,
    },
    /// The plugin returned something that is not a JSON document.
    InvalidOutput {
        /// Why the output was rejected.
        message: String,
    },
    /// The daemon stopped while the attempt was running; found when it started again.
    Interrupted,
}

impl AttemptOutcome {
    /// Whether the attempt succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, AttemptOutcome::Succeeded { .. })
    }

    /// Whether a policy retrying `retry_on` retries this outcome (if attempts remain); see
    /// [`RetryOn`]. A success is never retried.
    pub fn is_retried_by(&self, retry_on: &RetryOn) -> bool {
        match self {
            AttemptOutcome::Succeeded { .. } => false,
            AttemptOutcome::PluginError(error) => error.retryable && retry_on.plugin_error,
            AttemptOutcome::DeadlineExceeded => retry_on.deadline_exceeded,
            AttemptOutcome::Trap { .. } => retry_on.trap,
            AttemptOutcome::OutOfFuel
            | AttemptOutcome::MemoryLimit
            | AttemptOutcome::CapabilityDenied { .. }
            | AttemptOutcome::InvalidOutput { .. } => false,
            AttemptOutcome::Interrupted => true,
        }
    }

    /// The error a failed outcome leaves on its step; `None` for a success.
    pub fn error(&self) -> Option<StepError> {
        self.result().err()
    }

    /// The output of a success, or the error a failure leaves on its step.
    pub fn result(&self) -> Result<&Value, StepError> {
        let plain = |kind, message: &str| Err(StepError::new(kind, message));
        match self {
            AttemptOutcome::Succeeded { output } => Ok(output),
            AttemptOutcome::PluginError(error) => Err(StepError {
                kind: ErrorKind::PluginError,
                message: error.message.clone(),
                code: Some(error.code.clone()),
                details: error.details.clone(),
            }),
            AttemptOutcome::OutOfFuel => plain(ErrorKind::OutOfFuel, "the plugin ran out of fuel"),
            AttemptOutcome::DeadlineExceeded => plain(
                ErrorKind::DeadlineExceeded,
                "the attempt exceeded its deadline",
            ),
            AttemptOutcome::MemoryLimit => plain(
                ErrorKind::MemoryLimit,
                "the plugin exceeded its memory limit",
            ),
            AttemptOutcome::Trap { message } => plain(ErrorKind::Trap, message),
            AttemptOutcome::CapabilityDenied { message } => {
                plain(ErrorKind::CapabilityDenied, message)
            }
            AttemptOutcome::InvalidOutput { message } => plain(ErrorKind::InvalidOutput, message),
            AttemptOutcome::Interrupted => plain(
                ErrorKind::Interrupted,
                "the daemon stopped during the attempt",
            ),
        }
    }
}

/// What the sandbox reports when an attempt ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptReport {
    /// How the attempt ended.
    pub outcome: AttemptOutcome,
    /// Fuel the plugin consumed, if measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
    /// The end of the attempt's log; trimmed to [`LOG_EXCERPT_MAX_BYTES`] when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_excerpt: Option<String>,
}

impl AttemptReport {
    /// A report with only an outcome.
    pub fn new(outcome: AttemptOutcome) -> Self {
        AttemptReport {
            outcome,
            fuel_used: None,
            log_excerpt: None,
        }
    }
}

/// One attempt, as recorded in the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    /// Attempt number, from 1.
    pub number: u32,
    /// When the attempt was handed to a worker.
    pub started_at: Timestamp,
    /// When its result was recorded; `None` while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// How it ended; `None` while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    /// Fuel consumed, if measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
    /// The end of the attempt's log, at most [`LOG_EXCERPT_MAX_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_excerpt: Option<String>,
}

impl Attempt {
    /// An attempt that starts now.
    pub fn started(number: u32, started_at: Timestamp) -> Self {
        Attempt {
            number,
            started_at,
            ended_at: None,
            outcome: None,
            fuel_used: None,
            log_excerpt: None,
        }
    }

    /// Records how the attempt ended.
    pub fn finish(&mut self, report: AttemptReport, ended_at: Timestamp) {
        self.ended_at = Some(ended_at);
        self.outcome = Some(report.outcome);
        self.fuel_used = report.fuel_used;
        self.log_excerpt = report
            .log_excerpt
            .map(|log| tail(&log, LOG_EXCERPT_MAX_BYTES));
    }

    /// Whether the attempt has no recorded end.
    pub fn is_open(&self) -> bool {
        self.outcome.is_none()
    }
}

/// The last `max_bytes` of `text` (at a character boundary), marked with `…` when cut.
fn tail(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let marker = "…";
    let mut start = text.len() - (max_bytes - marker.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{marker}{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn outcomes_serialize_with_a_kind_tag() {
        let error = AttemptOutcome::PluginError(PluginError {
            code: "not-found".to_owned(),
            message: "no such device".to_owned(),
            retryable: false,
            details: None,
        });
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(
            json,
            json!({"kind": "plugin_error", "code": "not-found", "message": "no such device", "retryable": false})
        );
        assert_eq!(
            serde_json::from_value::<AttemptOutcome>(json).unwrap(),
            error
        );
        assert_eq!(
            serde_json::to_value(AttemptOutcome::OutOfFuel).unwrap(),
            json!({"kind": "out_of_fuel"})
        );
        assert!(
            serde_json::from_value::<AttemptOutcome>(
                json!({"kind": "trap", "message": "m", "x": 1})
            )
            .is_err()
        );
    }

    #[test]
    fn retry_classes_follow_the_policy_switches() {
        let all = RetryOn {
            plugin_error: true,
            deadline_exceeded: true,
            trap: true,
        };
        let none = RetryOn {
            plugin_error: false,
            deadline_exceeded: false,
            trap: false,
        };
        let trap = AttemptOutcome::Trap {
            message: "boom".to_owned(),
        };
        assert!(trap.is_retried_by(&all) && !trap.is_retried_by(&RetryOn::default()));
        assert!(AttemptOutcome::DeadlineExceeded.is_retried_by(&RetryOn::default()));
        assert!(!AttemptOutcome::DeadlineExceeded.is_retried_by(&none));
        assert!(AttemptOutcome::Interrupted.is_retried_by(&none));
        assert!(!AttemptOutcome::OutOfFuel.is_retried_by(&all));
        let not_retryable = AttemptOutcome::PluginError(PluginError {
            code: "bad".to_owned(),
            message: "bad".to_owned(),
            retryable: false,
            details: None,
        });
        assert!(!not_retryable.is_retried_by(&all));
        assert!(!AttemptOutcome::Succeeded { output: json!(1) }.is_retried_by(&all));
    }

    #[test]
    fn log_excerpts_keep_the_end() {
        let mut attempt = Attempt::started(1, Timestamp::from_unix_ms(5));
        let log = format!("{}é-end", "x".repeat(LOG_EXCERPT_MAX_BYTES));
        let report = AttemptReport {
            log_excerpt: Some(log),
            ..AttemptReport::new(AttemptOutcome::OutOfFuel)
        };
        attempt.finish(report, Timestamp::from_unix_ms(9));
        let excerpt = attempt.log_excerpt.unwrap();
        assert!(
            excerpt.len() <= LOG_EXCERPT_MAX_BYTES
                && excerpt.starts_with('…')
                && excerpt.ends_with("é-end")
        );
        assert!(attempt.outcome.is_some());
    }
}
