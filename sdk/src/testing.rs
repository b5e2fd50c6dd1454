//! Unit-testing plugins natively, with plain `cargo test`.
//!
//! Outside WebAssembly every [`Context`] talks to a [`FakeHost`]: an in-memory key-value
//! store, a list of recorded log records, and canned HTTP responses matched by method and
//! URL (an unmatched request fails with [`HttpError::Connection`]). Tests call
//! [`Task::run`] directly, or [`run_json`] to see the JSON-level behaviour the daemon sees.
//!
//! This module does not exist when compiling for `wasm32`.
//!
//! ```
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//! use serde_json::json;
//! use weft_sdk::http::{Method, Response};
//! use weft_sdk::testing::FakeHost;
//! use weft_sdk::{Context, Task, TaskError};
//!
//! /// Looks up a user's name.
//! struct WhoIs;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Input {
//!     id: u32,
//! }
//!
//! impl Task for WhoIs {
//!     type Input = Input;
//!     type Output = String;
//!
//!     fn run(input: Input, ctx: &Context) -> Result<String, TaskError> {
//!         let url = format!("https://users.example.com/{}", input.id);
//!         let user: serde_json::Value = ctx.http().get(url).send()?.json()?;
//!         ctx.log().info(format_args!("found user {}", input.id));
//!         Ok(user["name"].as_str().unwrap_or_default().to_owned())
//!     }
//! }
//!
//! // In the plugin's `#[cfg(test)] mod tests`:
//! let host = FakeHost::new().with_response(
//!     Method::Get,
//!     "https://users.example.com/7",
//!     Response::new(200).with_json(json!({ "name": "ada" })),
//! );
//! let ctx = host.context();
//! assert_eq!(WhoIs::run(Input { id: 7 }, &ctx).unwrap(), "ada");
//! assert_eq!(host.logs()[0].message, "found user 7");
//!
//! // Any other request fails, as an unreachable host would.
//! let error = WhoIs::run(Input { id: 8 }, &ctx).unwrap_err();
//! assert_eq!(error.code(), "http-connection-failed");
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use crate::backend::fake::{FakeBackend, Route};
use crate::http::{HttpError, Method, Response};
use crate::log::Level;
use crate::task::Package;
use crate::{Context, PluginInfo, Task, TaskError};

/// A fake daemon for native tests; see the [module documentation](self).
///
/// Cloning it shares the state: contexts and clones all see the same store, logs and
/// requests.
#[derive(Debug, Clone)]
pub struct FakeHost {
    backend: FakeBackend,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    /// A host that grants the key-value store (empty), has no canned responses, and has
    /// recorded nothing yet.
    pub fn new() -> Self {
        let backend = FakeBackend::default();
        backend.state().kv = Some(BTreeMap::new());
        Self { backend }
    }

    /// Answers every `method` request to exactly `url` with `response`.
    pub fn with_response(self, method: Method, url: impl Into<String>, response: Response) -> Self {
        self.with_route(method, url.into(), Ok(response))
    }

    /// Fails every `method` request to exactly `url` with `error`, for example
    /// [`HttpError::Denied`] for a host the operator did not grant.
    pub fn with_http_error(self, method: Method, url: impl Into<String>, error: HttpError) -> Self {
        self.with_route(method, url.into(), Err(error))
    }

    /// Stores `value` under `key` before the test runs.
    ///
    /// # Panics
    ///
    /// If the key-value store was withheld with [`FakeHost::without_kv`].
    pub fn with_kv_value(self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.backend
            .state()
            .kv
            .as_mut()
            .expect("with_kv_value needs the key-value store; drop without_kv")
            .insert(key.into(), value.into());
        self
    }

    /// Withholds the key-value store: every call fails with
    /// [`KvError::Denied`](crate::kv::KvError::Denied), as for a plugin whose operator did
    /// not grant it.
    pub fn without_kv(self) -> Self {
        self.backend.state().kv = None;
        self
    }

    /// A context for the first attempt of a step, with [`StepInfo::default`].
    pub fn context(&self) -> Context {
        self.context_for(StepInfo::default())
    }

    /// A context for the given step and attempt.
    pub fn context_for(&self, step: StepInfo) -> Context {
        Context::new(
            step.job_id,
            step.workflow,
            step.step_id,
            step.attempt,
            self.backend.clone(),
        )
    }

    /// Every record logged so far, in order.
    pub fn logs(&self) -> Vec<LogRecord> {
        self.backend.state().logs.clone()
    }

    /// The value stored under `key`, if the key-value store is granted and has it.
    pub fn kv_value(&self, key: &str) -> Option<Vec<u8>> {
        self.backend.state().kv.as_ref()?.get(key).cloned()
    }

    /// Every key in the store, in byte order.
    pub fn kv_keys(&self) -> Vec<String> {
        let state = self.backend.state();
        state.kv.iter().flat_map(|kv| kv.keys().cloned()).collect()
    }

    /// Every HTTP request sent so far, matched or not, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.backend.state().requests.clone()
    }

    fn with_route(self, method: Method, url: String, answer: Result<Response, HttpError>) -> Self {
        self.backend.state().routes.push(Route {
            method,
            url,
            answer,
        });
        self
    }
}

/// Where a test context belongs; the default is attempt 1 of step `step` in job `job-1` of
/// workflow `test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    /// See [`Context::job_id`].
    pub job_id: String,
    /// See [`Context::workflow`].
    pub workflow: String,
    /// See [`Context::step_id`].
    pub step_id: String,
    /// See [`Context::attempt`].
    pub attempt: u32,
}

impl Default for StepInfo {
    fn default() -> Self {
        Self {
            job_id: "job-1".to_owned(),
            workflow: "test".to_owned(),
            step_id: "step".to_owned(),
            attempt: 1,
        }
    }
}

/// One record a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its severity.
    pub level: Level,
    /// Its text.
    pub message: String,
}

/// One HTTP request a plugin sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Its method.
    pub method: Method,
    /// Its URL, as the plugin gave it.
    pub url: String,
    /// Its headers, in order, including those the client adds (`content-type` for JSON,
    /// `content-length` when there is a body).
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
    /// The bound set with [`RequestBuilder::timeout`](crate::http::RequestBuilder::timeout).
    pub timeout: Option<Duration>,
}

/// Runs `T` the way the daemon does: on a JSON input document, returning the JSON output
/// document or the error, including the SDK's own `invalid-input` and `invalid-output`.
///
/// ```
/// # use weft_sdk::{Context, Task, TaskError};
/// # #[derive(serde::Deserialize, schemars::JsonSchema)]
/// # struct Input { name: String }
/// # struct Greet;
/// # impl Task for Greet {
/// #     type Input = Input;
/// #     type Output = String;
/// #     fn run(input: Input, _ctx: &Context) -> Result<String, TaskError> {
/// #         Ok(format!("hello, {}", input.name))
/// #     }
/// # }
/// use weft_sdk::testing::{run_json, FakeHost};
///
/// let ctx = FakeHost::new().context();
/// assert_eq!(run_json::<Greet>(&ctx, r#"{"name": "ada"}"#).unwrap(), r#""hello, ada""#);
///
/// let error = run_json::<Greet>(&ctx, r#"{"name": 7}"#).unwrap_err();
/// assert_eq!(error.code(), "invalid-input");
/// assert!(error.message().contains("`name`"));
/// ```
pub fn run_json<T: Task>(ctx: &Context, input: &str) -> Result<String, TaskError> {
    crate::dispatch::run_json::<T>(input, ctx)
}

/// What `describe` returns for `T` in a crate with the given Cargo metadata; pass the
/// plugin crate's own with `env!`.
///
/// ```
/// # use weft_sdk::{Context, Task, TaskError};
/// # struct Echo;
/// # impl Task for Echo {
/// #     type Input = serde_json::Value;
/// #     type Output = serde_json::Value;
/// #     fn run(input: Self::Input, _ctx: &Context) -> Result<Self::Output, TaskError> { Ok(input) }
/// # }
/// let info = weft_sdk::testing::describe::<Echo>("weft-plugin-echo", "1.2.0", "Returns its input");
/// assert_eq!(info.name, "echo");
/// assert_eq!(info.version, "1.2.0");
/// ```
pub fn describe<T: Task>(
    package_name: &'static str,
    package_version: &'static str,
    package_description: &'static str,
) -> PluginInfo {
    PluginInfo::of::<T>(&Package {
        name: package_name,
        version: package_version,
        description: package_description,
    })
}
