//! The [`Store`] trait: everything Weft keeps, in the terms of the domain.
//!
//! Every write is atomic: it happens entirely or not at all, and readers never see part of it.
//! Writes are not durable when they return; [`Store::durable`] says when they are. The trait
//! is object safe, so the engine holds an `Arc<dyn Store>` and tests swap in the in-memory
//! backend.

use std::fmt::Debug;

use serde_json::Value;
use weft_domain::{CatalogueEntry, Event, Job, JobId, PluginDigest, WorkflowName};

use crate::definition::PutDefinition;
use crate::durable::{Committers, Durable};
use crate::error::StoreError;
use crate::job::{CreateJob, JobMeta, JobPage, JobQuery};
use crate::kv::KvScope;
use crate::plugin::{PluginRecord, PutPlugin};

/// Weft's storage; see the module documentation.
pub trait Store: Send + Sync + Debug + 'static {
    /// Stores an uploaded plugin and its component's bytes, unless a build with the same
    /// digest, or another build with the same name and version, is already stored.
    fn put_plugin(&self, record: &PluginRecord, component: &[u8]) -> Result<PutPlugin, StoreError>;

    /// The plugin with this digest.
    fn plugin(&self, digest: &PluginDigest) -> Result<Option<PluginRecord>, StoreError>;

    /// The component bytes of the plugin with this digest.
    fn plugin_component(&self, digest: &PluginDigest) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every plugin, by name and then version.
    fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError>;

    /// Replaces a plugin's record (its status, grants, approval time). Fails with
    /// [`StoreError::NotFound`] when no plugin has the record's digest, and with
    /// [`StoreError::Conflict`] when the record changes the plugin's name or version.
    fn update_plugin(&self, record: &PluginRecord) -> Result<(), StoreError>;

    /// Every plugin, whatever its status, as the domain's plugin resolution sees it; by name
    /// and then version.
    fn catalogue(&self) -> Result<Vec<CatalogueEntry>, StoreError>;

    /// Stores version `version` of workflow `name` as the submitted document. Versions are
    /// immutable: storing an equal document again changes nothing, a different one conflicts.
    fn put_definition(
        &self,
        name: &WorkflowName,
        version: u32,
        document: &Value,
    ) -> Result<PutDefinition, StoreError>;

    /// The document of one version of a workflow.
    fn definition(&self, name: &WorkflowName, version: u32) -> Result<Option<Value>, StoreError>;

    /// The highest version of a workflow, with its document.
    fn latest_definition(&self, name: &WorkflowName) -> Result<Option<(u32, Value)>, StoreError>;

    /// Every stored (workflow, version), by name and then version.
    fn definitions(&self) -> Result<Vec<(WorkflowName, u32)>, StoreError>;

    /// Stores a new job, its metadata and its first events, unless a job of the same workflow
    /// was already submitted with the same idempotency key. Fails with
    /// [`StoreError::Conflict`] when a job with this id exists.
    fn create_job(
        &self,
        job: &Job,
        meta: &JobMeta,
        events: &[Event],
    ) -> Result<CreateJob, StoreError>;

    /// Replaces a job's record and appends its new events, in one atomic write. Appending an
    /// event that is already stored is allowed when it is equal (a retried commit) and fails
    /// with [`StoreError::Conflict`] otherwise. Fails with [`StoreError::NotFound`] for an
    /// unknown job.
    fn commit_job(&self, job: &Job, events: &[Event]) -> Result<(), StoreError>;

    /// One job.
    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError>;

    /// One job's metadata.
    fn job_meta(&self, id: JobId) -> Result<Option<JobMeta>, StoreError>;

    /// A page of jobs, newest first; see [`JobQuery`].
    fn jobs(&self, query: &JobQuery) -> Result<JobPage, StoreError>;

    /// Every job that is not finished, with its metadata, oldest first: what the scheduler
    /// resumes after a restart.
    fn unfinished_jobs(&self) -> Result<Vec<(Job, JobMeta)>, StoreError>;

    /// At most `limit` events of a job with a sequence number above `after_sequence`, in
    /// order. Empty for an unknown job.
    fn events(
        &self,
        id: JobId,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;

    /// The value of `key` in `scope`.
    fn kv_get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets `key` in `scope` to `value`.
    fn kv_set(&self, scope: &KvScope, key: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Removes `key` from `scope`; removing a missing key is not an error.
    fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<(), StoreError>;

    /// The keys in `scope` that start with `prefix`, sorted.
    fn kv_list_prefix(&self, scope: &KvScope, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// Resolves once everything committed before this call is durable. Cheap: it does not
    /// flush by itself, and concurrent callers share flushes.
    fn durable(&self) -> Durable;

    /// Tells the store how to count its committers; a later call replaces an earlier one.
    /// The sled store's group commit then flushes once half of them wait, rather than as many
    /// as its last flush served, so that the other half work meanwhile. A store without group
    /// commit ignores it.
    fn count_committers(&self, _committers: Committers) {}

    /// Blocks until the background work on everything written so far is done: the sled
    /// store puts off moving its journal into its tree while writes keep coming. For
    /// measurements that must count that work; nothing else needs it.
    fn settle(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
