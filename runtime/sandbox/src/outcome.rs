//! What came of one attempt: the [`Outcome`] and the [`AttemptReport`] around it.
//!
//! Three families of outcome are kept apart on purpose, because the engine treats them
//! differently: the plugin succeeded; the plugin reported an error (it decided, and said
//! whether trying again may help); the sandbox stopped the plugin (fuel, deadline, memory,
//! trap, a denied capability, output that is not JSON). A fault of the host itself is not an
//! outcome at all: it is a [`SandboxError`](crate::SandboxError).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The plugin returned an output document.
    Succeeded {
        /// The output, parsed.
        output: serde_json::Value,
    },
    /// The plugin returned an error of its own.
    Failed {
        /// The error as the plugin reported it.
        error: TaskError,
    },
    /// The sandbox stopped the plugin.
    Stopped {
        /// Why.
        stop: SandboxStop,
    },
}

impl Outcome {
    /// Whether this outcome is a success.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded { .. })
    }
}

/// An error reported by a plugin; mirrors `weft:plugin/types.task-error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskError {
    /// Machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
    /// Extra detail: the plugin's JSON document, or the raw text if it was not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Why the sandbox stopped a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SandboxStop {
    /// The fuel budget ran out.
    OutOfFuel {
        /// The budget the attempt had.
        fuel_budget: u64,
    },
    /// The wall-clock deadline passed.
    DeadlineExceeded {
        /// The deadline the attempt had, in milliseconds.
        deadline_ms: u64,
    },
    /// The plugin tried to grow its memory beyond the limit.
    MemoryLimit {
        /// The limit, in bytes.
        limit_bytes: usize,
        /// The total the plugin asked for, in bytes.
        requested_bytes: usize,
    },
    /// The plugin trapped: a panic, an `unreachable`, a stack overflow, a bad memory access.
    Trap {
        /// What happened, with the panic message when the plugin printed one.
        message: String,
        /// The WebAssembly backtrace, when one was captured.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backtrace: Option<String>,
    },
    /// The plugin failed after it was denied a capability it was not granted.
    CapabilityDenied {
        /// The first capability denied, such as `http:example.com:443` or `kv`.
        capability: String,
        /// How the plugin failed afterwards.
        detail: String,
    },
    /// The plugin returned an output that is not a JSON document.
    InvalidOutput {
        /// The parse error.
        detail: String,
    },
}

impl SandboxStop {
    /// Short name of the stop, as used in metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SandboxStop::OutOfFuel { .. } => "out_of_fuel",
            SandboxStop::DeadlineExceeded { .. } => "deadline_exceeded",
            SandboxStop::MemoryLimit { .. } => "memory_limit",
            SandboxStop::Trap { .. } => "trap",
            SandboxStop::CapabilityDenied { .. } => "capability_denied",
            SandboxStop::InvalidOutput { .. } => "invalid_output",
        }
    }
}

/// A capability the plugin used without holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// The capability, such as `http:example.com:443` or `kv`.
    pub capability: String,
}

/// Severity of a log record; mirrors `weft:plugin/log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// For debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// One record written by the plugin through `weft:plugin/log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Milliseconds since the attempt started.
    pub at_ms: u64,
    /// Severity.
    pub level: LogLevel,
    /// The message.
    pub message: String,
}

/// A captured output stream (stdout or stderr).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedOutput {
    /// What was kept, as text (invalid UTF-8 replaced).
    pub text: String,
    /// How many bytes were dropped past the capture limit.
    pub truncated_bytes: u64,
}

/// Everything known about one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptReport {
    /// What came of it.
    pub outcome: Outcome,
    /// Fuel consumed.
    pub fuel_consumed: u64,
    /// Wall-clock time from instantiation to the end of the call.
    #[serde(with = "duration_us", rename = "duration_us")]
    pub duration: Duration,
    /// Highest total linear memory of the instance, in bytes.
    pub peak_memory_bytes: usize,
    /// Records written through `weft:plugin/log`.
    pub logs: Vec<LogRecord>,
    /// Log records dropped past the log budget.
    pub logs_dropped: u64,
    /// Captured stdout.
    pub stdout: CapturedOutput,
    /// Captured stderr.
    pub stderr: CapturedOutput,
    /// Capabilities the plugin tried to use without holding them.
    pub denials: Vec<Denial>,
}

mod duration_us {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_micros)
    }
}

/// Names the sandbox stop behind a failed call.
pub(crate) fn classify_error(
    error: &wasmtime::Error,
    limits: &crate::config::StepLimits,
    stderr: &CapturedOutput,
) -> SandboxStop {
    if let Some(exceeded) = error.downcast_ref::<crate::limiter::MemoryLimitExceeded>() {
        return SandboxStop::MemoryLimit {
            limit_bytes: exceeded.limit_bytes,
            requested_bytes: exceeded.requested_bytes,
        };
    }
    let backtrace = error
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| bt.to_string());
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => SandboxStop::OutOfFuel {
            fuel_budget: limits.fuel,
        },
        Some(wasmtime::Trap::Interrupt) => SandboxStop::DeadlineExceeded {
            deadline_ms: u64::try_from(limits.deadline.as_millis()).unwrap_or(u64::MAX),
        },
        Some(trap) => SandboxStop::Trap {
            message: with_panic_message(trap.to_string(), stderr),
            backtrace,
        },
        None => SandboxStop::Trap {
            message: with_panic_message(format!("{error:#}"), stderr),
            backtrace,
        },
    }
}

/// A Rust guest prints its panic message to stderr before it traps; that message says far
/// more than "unreachable instruction executed".
fn with_panic_message(message: String, stderr: &CapturedOutput) -> String {
    match stderr.text.find("panicked at") {
        Some(at) => {
            let panic: String = stderr.text[at..]
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            format!("{message}: {panic}")
        }
        None => message,
    }
}

/// A plugin that fails after being denied a capability failed because of the denial: say
/// so, rather than report whatever error it made of it.
pub(crate) fn blame_denial(outcome: Outcome, denials: &[Denial]) -> Outcome {
    let Some(first) = denials.first() else {
        return outcome;
    };
    let detail = match &outcome {
        Outcome::Succeeded { .. } => return outcome,
        Outcome::Failed { error } => format!("{}: {}", error.code, error.message),
        Outcome::Stopped { stop } => format!("{stop:?}"),
    };
    Outcome::Stopped {
        stop: SandboxStop::CapabilityDenied {
            capability: first.capability.clone(),
            detail,
        },
    }
}
