//! [`MemoryStore`]: the [`Store`] in ordinary maps, for unit tests of the layers above.
//!
//! It keeps nothing across restarts and every commit is "durable" at once. It follows the
//! same contract as the on-disk store (the conformance tests run against both), so a test
//! that passes against it exercises the engine, not a simplified storage.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::Value;
use weft_domain::{CatalogueEntry, Event, Job, JobId, PluginDigest, WorkflowName};

use crate::definition::PutDefinition;
use crate::durable::Durable;
use crate::error::StoreError;
use crate::format::check_written;
use crate::job::{
    CreateJob, JobMeta, JobPage, JobQuery, check_events, duplicate_job, reopened_job,
};
use crate::kv::KvScope;
use crate::plugin::{PluginRecord, PutPlugin, renamed_plugin, sort_plugins};
use crate::store::Store;

/// The in-memory store; see the module documentation.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    plugins: BTreeMap<PluginDigest, PluginRecord>,
    components: BTreeMap<PluginDigest, Vec<u8>>,
    definitions: BTreeMap<(WorkflowName, u32), Value>,
    jobs: BTreeMap<JobId, Job>,
    job_meta: BTreeMap<JobId, JobMeta>,
    events: BTreeMap<(JobId, u64), Event>,
    idempotency: BTreeMap<(WorkflowName, String), JobId>,
    kv: BTreeMap<(KvScope, String), Vec<u8>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// The state; a panic in another thread cannot leave it half-changed, since every write
    /// checks before it changes anything.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Fails unless every event is new or equal to the stored one.
    fn check_appendable(&self, events: &[Event]) -> Result<(), StoreError> {
        for event in events {
            match self.events.get(&(event.job_id, event.sequence)) {
                Some(stored) if stored != event => {
                    return Err(StoreError::Conflict(format!(
                        "job {} already has another event {}",
                        event.job_id, event.sequence
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn append(&mut self, events: &[Event]) {
        for event in events {
            self.events
                .insert((event.job_id, event.sequence), event.clone());
        }
    }
}

impl Store for MemoryStore {
    fn put_plugin(&self, record: &PluginRecord, component: &[u8]) -> Result<PutPlugin, StoreError> {
        check_written("plugin record", record.format_version)?;
        let mut state = self.state();
        if let Some(existing) = state.plugins.get(&record.digest) {
            return Ok(PutPlugin::Existing(existing.clone()));
        }
        let same_version = state
            .plugins
            .values()
            .find(|p| p.name == record.name && p.version == record.version);
        if let Some(existing) = same_version {
            return Ok(PutPlugin::Conflict {
                existing: existing.digest.clone(),
            });
        }
        state.plugins.insert(record.digest.clone(), record.clone());
        state
            .components
            .insert(record.digest.clone(), component.to_vec());
        Ok(PutPlugin::Created)
    }

    fn plugin(&self, digest: &PluginDigest) -> Result<Option<PluginRecord>, StoreError> {
        Ok(self.state().plugins.get(digest).cloned())
    }

    fn plugin_component(&self, digest: &PluginDigest) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state().components.get(digest).cloned())
    }

    fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        let mut records: Vec<PluginRecord> = self.state().plugins.values().cloned().collect();
        sort_plugins(&mut records);
        Ok(records)
    }

    fn update_plugin(&self, record: &PluginRecord) -> Result<(), StoreError> {
        check_written("plugin record", record.format_version)?;
        let mut state = self.state();
        let stored = state
            .plugins
            .get_mut(&record.digest)
            .ok_or(StoreError::NotFound)?;
        if stored.name != record.name || stored.version != record.version {
            return Err(renamed_plugin(record));
        }
        *stored = record.clone();
        Ok(())
    }

    fn catalogue(&self) -> Result<Vec<CatalogueEntry>, StoreError> {
        Ok(self
            .plugins()?
            .iter()
            .map(PluginRecord::catalogue_entry)
            .collect())
    }

    fn put_definition(
        &self,
        name: &WorkflowName,
        version: u32,
        document: &Value,
    ) -> Result<PutDefinition, StoreError> {
        let mut state = self.state();
        let key = (name.clone(), version);
        Ok(match state.definitions.get(&key) {
            Some(stored) if stored == document => PutDefinition::Unchanged,
            Some(_) => PutDefinition::Conflict,
            None => {
                state.definitions.insert(key, document.clone());
                PutDefinition::Created
            }
        })
    }

    fn definition(&self, name: &WorkflowName, version: u32) -> Result<Option<Value>, StoreError> {
        Ok(self
            .state()
            .definitions
            .get(&(name.clone(), version))
            .cloned())
    }

    fn latest_definition(&self, name: &WorkflowName) -> Result<Option<(u32, Value)>, StoreError> {
        let state = self.state();
        let latest = state
            .definitions
            .range((name.clone(), 0)..=(name.clone(), u32::MAX))
            .next_back();
        Ok(latest.map(|((_, version), document)| (*version, document.clone())))
    }

    fn definitions(&self) -> Result<Vec<(WorkflowName, u32)>, StoreError> {
        Ok(self.state().definitions.keys().cloned().collect())
    }

    fn create_job(
        &self,
        job: &Job,
        meta: &JobMeta,
        events: &[Event],
    ) -> Result<CreateJob, StoreError> {
        check_written("job metadata", meta.format_version)?;
        check_events(job, events)?;
        let mut state = self.state();
        let idempotency = meta
            .idempotency_key
            .as_ref()
            .map(|key| (job.workflow().clone(), key.clone()));
        if let Some(existing) = idempotency.as_ref().and_then(|k| state.idempotency.get(k)) {
            return Ok(CreateJob::Existing(*existing));
        }
        if state.jobs.contains_key(&job.id()) {
            return Err(duplicate_job(job.id()));
        }
        state.check_appendable(events)?;
        state.jobs.insert(job.id(), job.clone());
        state.job_meta.insert(job.id(), meta.clone());
        state.append(events);
        if let Some(key) = idempotency {
            state.idempotency.insert(key, job.id());
        }
        Ok(CreateJob::Created)
    }

    fn commit_job(&self, job: &Job, events: &[Event]) -> Result<(), StoreError> {
        check_events(job, events)?;
        let mut state = self.state();
        let stored = state.jobs.get(&job.id()).ok_or(StoreError::NotFound)?;
        if stored.state().is_terminal() && !job.state().is_terminal() {
            return Err(reopened_job(job));
        }
        state.check_appendable(events)?;
        state.jobs.insert(job.id(), job.clone());
        state.append(events);
        Ok(())
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        Ok(self.state().jobs.get(&id).cloned())
    }

    fn job_meta(&self, id: JobId) -> Result<Option<JobMeta>, StoreError> {
        Ok(self.state().job_meta.get(&id).cloned())
    }

    fn jobs(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        let state = self.state();
        let older = match query.cursor {
            Some(cursor) => state.jobs.range(..cursor),
            None => state.jobs.range(..),
        };
        let matching = older
            .rev()
            .map(|(_, job)| job)
            .filter(|job| query.matches(job))
            .map(|job| Ok(job.clone()));
        JobPage::collect(matching, query.limit)
    }

    fn unfinished_jobs(&self) -> Result<Vec<(Job, JobMeta)>, StoreError> {
        let state = self.state();
        state
            .jobs
            .values()
            .filter(|job| !job.state().is_terminal())
            .map(|job| {
                let meta = state.job_meta.get(&job.id()).cloned().ok_or_else(|| {
                    StoreError::corrupt(format!("job {}", job.id()), "metadata is missing")
                })?;
                Ok((job.clone(), meta))
            })
            .collect()
    }

    fn events(
        &self,
        id: JobId,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let Some(first) = after_sequence.checked_add(1) else {
            return Ok(Vec::new());
        };
        Ok(self
            .state()
            .events
            .range((id, first)..=(id, u64::MAX))
            .take(limit)
            .map(|(_, event)| event.clone())
            .collect())
    }

    fn kv_get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .state()
            .kv
            .get(&(scope.clone(), key.to_owned()))
            .cloned())
    }

    fn kv_set(&self, scope: &KvScope, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.state()
            .kv
            .insert((scope.clone(), key.to_owned()), value.to_vec());
        Ok(())
    }

    fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<(), StoreError> {
        self.state().kv.remove(&(scope.clone(), key.to_owned()));
        Ok(())
    }

    fn kv_list_prefix(&self, scope: &KvScope, prefix: &str) -> Result<Vec<String>, StoreError> {
        let state = self.state();
        Ok(state
            .kv
            .range((scope.clone(), prefix.to_owned())..)
            .take_while(|((s, key), _)| s == scope && key.starts_with(prefix))
            .map(|((_, key), _)| key.clone())
            .collect())
    }

    fn durable(&self) -> Durable {
        Durable::ready()
    }
}
