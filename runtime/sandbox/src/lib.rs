//! The sandbox: loads Weft plugins (WebAssembly components) and runs steps in them.
//!
//! This crate is the only part of Weft that knows about wasmtime. It owns three things:
//!
//! - **Admission** ([`Sandbox::load`]): a component is checked before it is accepted (it is a
//!   component, within the size limit, imports nothing outside WASI 0.2 and `weft:plugin`,
//!   exports the `weft:plugin/task` world), identified by the sha256 of its bytes, compiled
//!   once, and its precompiled artifact cached on disk so that a restart loads it instead of
//!   compiling it again.
//! - **Isolation** ([`Sandbox::run`]): every attempt of a step gets a fresh store with a fuel
//!   budget, a wall-clock deadline, a linear-memory limit, captured and capped stdout/stderr,
//!   no environment, no arguments, no preopened directories and no sockets. Outbound HTTP
//!   reaches only the hosts granted to the plugin; the key-value store only if granted.
//! - **Outcomes** ([`Outcome`]): success, an error the plugin reported, or one of the ways
//!   the sandbox stopped the plugin. They are values, never panics: the host keeps serving
//!   after every one of them.
//!
//! It knows nothing of workflows, jobs or storage: the engine decides what to run and what
//! an outcome means for a job.

mod bindings;
mod cache;
mod capture;
mod config;
mod digest;
mod grants;
mod host;
mod kv;
mod limiter;
mod outcome;
mod plugin;
mod state;
mod validate;

pub use config::{SandboxConfig, StepLimits, StepLimitsOverride};
pub use digest::{Digest, DigestParseError};
pub use grants::{Grants, HostPattern, HostPatternError};
pub use host::{RunRequest, Sandbox, SandboxError};
pub use kv::{
    KvError, KvScope, KvStore, MemoryKv, check_key as check_kv_key, check_value as check_kv_value,
};
pub use outcome::{
    AttemptReport, CapturedOutput, Denial, LogLevel, LogRecord, Outcome, SandboxStop, TaskError,
};
pub use plugin::{Capabilities, LoadError, Plugin, PluginInfo};
pub use validate::ValidationError;
