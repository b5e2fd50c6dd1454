//! [`Context`]: where the current attempt belongs, and the host services it may use.

use crate::backend::ActiveHost;
use crate::http::Http;
use crate::kv::Kv;
use crate::log::Log;

/// Where the current attempt belongs, and the way to the daemon's services: logging, the
/// key-value store and outbound HTTP.
///
/// The SDK builds one for every call of [`Task::run`](crate::Task::run). Tests get one from
/// [`FakeHost::context`](crate::testing::FakeHost::context).
#[derive(Debug)]
pub struct Context {
    job_id: String,
    workflow: String,
    step_id: String,
    attempt: u32,
    host: ActiveHost,
}

impl Context {
    pub(crate) fn new(
        job_id: String,
        workflow: String,
        step_id: String,
        attempt: u32,
        host: ActiveHost,
    ) -> Self {
        Self {
            job_id,
            workflow,
            step_id,
            attempt,
            host,
        }
    }

    /// Identifier of the job this step belongs to (a time-ordered id).
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Name of the workflow the job runs.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// Identifier of the step within the workflow definition; for a step that fans out over
    /// a list, the step id followed by `[index]`.
    pub fn step_id(&self) -> &str {
        &self.step_id
    }

    /// Attempt number, starting at 1. Together with [`Context::job_id`] and
    /// [`Context::step_id`] it lets a plugin make side effects idempotent.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The log of the current attempt.
    pub fn log(&self) -> Log<'_> {
        Log::new(&self.host)
    }

    /// The plugin's key-value store.
    pub fn kv(&self) -> Kv<'_> {
        Kv::new(&self.host)
    }

    /// The outbound HTTP client.
    pub fn http(&self) -> Http<'_> {
        Http::new(&self.host)
    }
}
