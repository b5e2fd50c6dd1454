//! Logging into the step's log, which operators read per attempt.
//!
//! Logging never fails: records beyond the daemon's per-attempt budget are dropped by the
//! daemon, which notes it in the log.

use std::fmt;

use crate::backend::{ActiveHost, Host};

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing, usually off.
    Trace,
    /// Detail useful when debugging a plugin.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// A failure.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        })
    }
}

/// Appends records to the log of the current attempt; from [`Context::log`](crate::Context::log).
///
/// Every method takes anything printable, so `format_args!` avoids an intermediate string:
///
/// ```
/// # let host = weft_sdk::testing::FakeHost::new();
/// # let ctx = host.context();
/// let count = 3;
/// ctx.log().info(format_args!("fetched {count} items"));
/// ctx.log().warn("the upstream was slow");
/// # assert_eq!(host.logs().len(), 2);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Log<'ctx> {
    host: &'ctx ActiveHost,
}

impl<'ctx> Log<'ctx> {
    pub(crate) fn new(host: &'ctx ActiveHost) -> Self {
        Self { host }
    }

    /// Appends one record at `level`.
    pub fn log(&self, level: Level, message: impl fmt::Display) {
        self.host.log(level, &message.to_string());
    }

    /// Appends one record at [`Level::Trace`].
    pub fn trace(&self, message: impl fmt::Display) {
        self.log(Level::Trace, message);
    }

    /// Appends one record at [`Level::Debug`].
    pub fn debug(&self, message: impl fmt::Display) {
        self.log(Level::Debug, message);
    }

    /// Appends one record at [`Level::Info`].
    pub fn info(&self, message: impl fmt::Display) {
        self.log(Level::Info, message);
    }

    /// Appends one record at [`Level::Warn`].
    pub fn warn(&self, message: impl fmt::Display) {
        self.log(Level::Warn, message);
    }

    /// Appends one record at [`Level::Error`].
    pub fn error(&self, message: impl fmt::Display) {
        self.log(Level::Error, message);
    }
}
