//! Weft's durable storage: the plugin catalogue, workflow definitions, jobs with their event
//! histories, and the key-value data of plugins, behind the [`Store`] trait.
//!
//! The trait speaks the domain of `weft-domain`: the engine loads a [`weft_domain::Job`],
//! moves it with the state machine, and hands it back with its new events to
//! [`Store::commit_job`], which writes everything at once. Writes return before they are
//! durable; [`Store::durable`] gives a [`Durable`] to wait on, and concurrent waits share one
//! flush (group commit).
//!
//! # Code map
//!
//! - [`Store`] (`store.rs`): the contract; [`StoreError`] (`error.rs`): how it fails.
//! - Records and results: `plugin.rs`, `definition.rs`, `job.rs`, `kv.rs`; `format.rs` holds
//!   the layout version of the records the store owns.
//! - `durable.rs`: [`Durable`], the wait for durability.
//! - Backends: [`MemoryStore`] (`memory.rs`) for tests of the layers above, [`SledStore`]
//!   (`sled_store/`) on disk.
//!
//! Invariant: this crate knows nothing of the sandbox, the scheduler or HTTP. Every backend
//! passes the same conformance tests (`tests/all/conformance.rs`).

mod definition;
mod durable;
mod error;
mod format;
mod job;
mod kv;
mod memory;
mod plugin;
mod sled_store;
mod store;

pub use definition::PutDefinition;
pub use durable::{Committers, Durable};
pub use error::StoreError;
pub use format::RECORD_FORMAT_VERSION;
pub use job::{CreateJob, JobMeta, JobPage, JobQuery};
pub use kv::KvScope;
pub use memory::MemoryStore;
pub use plugin::{PluginGrants, PluginRecord, PluginStatus, PutPlugin, RequestedCapabilities};
pub use sled_store::{STORE_FORMAT_VERSION, SledConfig, SledStore, raw_group_commit_baseline};
pub use store::Store;
