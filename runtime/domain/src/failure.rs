//! Why a step or a job failed, in the form stored with them and shown to operators.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::id::StepId;

/// The class of a step failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The plugin returned an error.
    PluginError,
    /// The sandbox stopped the plugin: out of fuel.
    OutOfFuel,
    /// The sandbox stopped the plugin: deadline.
    DeadlineExceeded,
    /// The sandbox stopped the plugin: memory limit.
    MemoryLimit,
    /// The plugin trapped.
    Trap,
    /// The plugin used a capability it was not granted.
    CapabilityDenied,
    /// The plugin's output was not a JSON document.
    InvalidOutput,
    /// The daemon stopped during the last attempt and no attempt remained.
    Interrupted,
    /// The step's input template could not be rendered.
    Input,
    /// The step's `when` condition could not be evaluated.
    Condition,
    /// The step's `for_each` template did not yield an array.
    ForEach,
    /// More items of a fanned-out step failed than `max_failures` allows.
    FailureBudget,
    /// The workflow's `output` template could not be rendered.
    Output,
}

/// A failure recorded on a step, an item, or a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// Human-readable explanation.
    pub message: String,
    /// The plugin's error code, for plugin errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The plugin's extra detail, for plugin errors that have some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl StepError {
    /// An error without code or details.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StepError {
            kind,
            message: message.into(),
            code: None,
            details: None,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why a job failed: the step that failed it (none when the workflow output could not be
/// rendered) and that step's error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFailure {
    /// The step whose failure failed the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepId>,
    /// The error.
    pub error: StepError,
}

impl fmt::Display for JobFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step `{step}` failed: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}
