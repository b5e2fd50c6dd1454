//! Weft's domain: workflow definitions, jobs, steps, events, and the pure state machine that
//! moves a job forward.
//!
//! This crate knows nothing about storage, threads, HTTP or WebAssembly, and it never reads a
//! clock or draws random numbers: callers pass time and randomness in. Everything here is
//! deterministic, serializable with serde, and safe to call inside a storage transaction.
//!
//! # Code map
//!
//! - Identifiers: [`id`] (step ids, workflow and plugin names, plugin digests), [`job_id`]
//!   (time-ordered job ids), [`plugin_ref`] (`name@1`, `sha256:...` and their resolution
//!   against the plugin catalogue), [`time`].
//! - Definitions: [`definition`] reads JSON or YAML in stages (raw, normalized, validated) and
//!   reports every problem with a JSON pointer; [`graph`] is the step DAG; [`template`] is the
//!   `${...}` language and [`expr`] the `when` language, both parsed once at validation.
//! - Policies: [`retry`] (backoff and which failures retry), [`fanout`] (concurrency and failure
//!   budget of `for_each` steps).
//! - Jobs: [`state`] (job and step lifecycles), [`attempt`] and [`failure`] (what an attempt
//!   reports and what a failure records), [`job`] (the stored job record), [`event`] (the job's
//!   history).
//! - [`machine`]: the job state machine the scheduler calls, the heart of the engine.
//!
//! Invariant: no module here does I/O; the store, sandbox and scheduler build on these types
//! and never the other way round.

pub mod attempt;
pub mod definition;
pub mod event;
pub mod expr;
pub mod failure;
pub mod fanout;
pub mod graph;
pub mod id;
pub mod job;
pub mod job_id;
pub mod machine;
pub mod plugin_ref;
pub mod pointer;
pub mod retry;
pub mod state;
pub mod template;
pub mod time;

pub use attempt::{Attempt, AttemptOutcome, AttemptReport, PluginError};
pub use definition::{Problem, Problems, SourceFormat, StepDefinition, WorkflowDefinition};
pub use event::{Event, EventKind};
pub use failure::{ErrorKind, JobFailure, StepError};
pub use id::{PluginDigest, PluginName, StepId, WorkflowName};
pub use job::{FORMAT_VERSION, Job, StepRecord, TaskKey, TaskRecord};
pub use job_id::{JobId, JobIdGenerator};
pub use machine::{AttemptStart, Effects, Machine, MachineError};
pub use plugin_ref::{CatalogueEntry, PluginCatalogue, PluginRef, ResolvedPlugin};
pub use state::{JobState, StepState};
pub use time::Timestamp;
