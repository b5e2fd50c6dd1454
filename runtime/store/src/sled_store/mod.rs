//! [`SledStore`]: the [`Store`] on disk, in a sled database.
//!
//! One sled tree per kind of record, and one for everything about jobs (see [`Trees`]);
//! values are JSON (see [`codec`]), keys are laid out in [`keys`]. A write that touches
//! several catalogue records is one sled transaction; a job's records are single writes in an
//! order that is safe at every point a crash may cut it (see [`jobs`]), made through a journal
//! that batches them (see [`journal`]). Either way a crash never leaves a half-written change
//! that readers trust. Durability comes from the [`group_commit`] flusher: writes are durable
//! once a [`Durable`] requested after them resolves. A flush appends the journal's pending
//! records to its file, and flushes sled only when something was written to sled directly.
//!
//! The database records [`STORE_FORMAT_VERSION`]; opening a database of another version fails
//! rather than misreading it.

mod baseline;
mod catalogue;
mod codec;
mod fan_outs;
mod group_commit;
mod jobs;
mod journal;
mod keys;
mod migrate;
mod records;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sled::transaction::TransactionError;
use sled::{Db, Tree};
use weft_domain::{CatalogueEntry, Event, Job, JobId, PluginDigest, WorkflowName};

use crate::definition::PutDefinition;
use crate::durable::{Committers, Durable};
use crate::error::StoreError;
use crate::job::{CreateJob, JobMeta, JobPage, JobQuery};
use crate::kv::KvScope;
use crate::plugin::{PluginRecord, PutPlugin};
use crate::store::Store;

pub use baseline::raw_group_commit_baseline;
use group_commit::GroupCommit;
use journal::{JournaledTree, Limits};

/// Version of the database layout: the set of trees and their key layouts. Bumped, with a
/// migration, when either changes.
pub const STORE_FORMAT_VERSION: u32 = 7;

/// Key of the layout version in the `meta` tree.
const FORMAT_VERSION_KEY: &[u8] = b"format_version";

/// How to open a [`SledStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SledConfig {
    /// Memory sled may use to cache pages, in bytes.
    pub cache_capacity_bytes: u64,
    /// How often sled flushes on its own, in milliseconds, besides the flushes that
    /// [`Store::durable`] asks for; `None` for never. Bounds what a crash loses of writes nobody
    /// waited for (key-value writes, for example).
    pub background_flush_every_ms: Option<u64>,
    /// How long the group-commit flusher waits, once a commit asks to be durable, for more
    /// to share the flush: throughput under load. It waits only while many commits are
    /// concurrent, and only until as many wait as the last flush served; a lone commit, or a
    /// few, is flushed at once.
    pub group_commit_linger: Duration,
}

impl Default for SledConfig {
    fn default() -> Self {
        SledConfig {
            cache_capacity_bytes: 128 * 1024 * 1024,
            background_flush_every_ms: Some(500),
            group_commit_linger: Duration::from_micros(500),
        }
    }
}

impl SledConfig {
    /// The sled configuration for a database at `path`.
    fn sled(&self, path: &Path) -> sled::Config {
        sled::Config::new()
            .path(path)
            .cache_capacity(self.cache_capacity_bytes)
            .flush_every_ms(self.background_flush_every_ms)
    }
}

/// The sled trees, one per kind of record, besides `meta` (`format_version` ->
/// [`STORE_FORMAT_VERSION`]). Keys are described in [`keys`].
#[derive(Debug)]
struct Trees {
    /// Plugin digest -> [`PluginRecord`].
    plugins: Tree,
    /// Plugin digest -> component bytes (raw, not JSON).
    components: Tree,
    /// Plugin name and version -> plugin digest.
    plugin_versions: Tree,
    /// Workflow name and version -> stored definition.
    definitions: Tree,
    /// Every record about jobs: the jobs, their metadata and events, and the indexes over
    /// them, under tagged keys ([`keys::tag`]); written through a journal ([`journal`]) whose
    /// files are in the database's directory, under [`JOURNAL_DIR`].
    jobs: JournaledTree,
    /// Scope and key -> value (raw bytes).
    kv: Tree,
}

impl Trees {
    /// Opens the trees of the database at `path`, after moving a database of an earlier
    /// layout to this one.
    fn open(db: &Db, path: &Path) -> Result<Self, StoreError> {
        let meta = db.open_tree("meta")?;
        let jobs = db.open_tree("job_records")?;
        check_format(db, &meta, &jobs)?;
        Ok(Trees {
            plugins: db.open_tree("plugins")?,
            components: db.open_tree("components")?,
            plugin_versions: db.open_tree("plugin_versions")?,
            definitions: db.open_tree("definitions")?,
            jobs: JournaledTree::open(jobs, &path.join(JOURNAL_DIR), Limits::default())?,
            kv: db.open_tree("kv")?,
        })
    }
}

/// The directory of the jobs tree's journal files, in the database's.
const JOURNAL_DIR: &str = "journal";

/// Records the layout version in a new database; migrates one of a previous layout; refuses
/// any other. Layouts before 7 had no journal files, so a migration reads and writes the jobs
/// tree itself.
fn check_format(db: &Db, meta: &Tree, jobs: &Tree) -> Result<(), StoreError> {
    let what = || "store format version".to_owned();
    let stored = meta.compare_and_swap(
        FORMAT_VERSION_KEY,
        None::<&[u8]>,
        Some(codec::encode(&STORE_FORMAT_VERSION, what)?),
    )?;
    let Err(existing) = stored else {
        return Ok(());
    };
    let version: u32 = codec::decode(existing.current.as_deref().unwrap_or_default(), what)?;
    if version == STORE_FORMAT_VERSION {
        return Ok(());
    }
    if !(3..STORE_FORMAT_VERSION).contains(&version) {
        return Err(StoreError::corrupt(
            "store",
            format!(
                "format version {version} is not supported (this build reads {STORE_FORMAT_VERSION})"
            ),
        ));
    }
    if version == 3 {
        migrate::migrate_from_3(jobs)?;
    }
    if version <= 4 {
        migrate::migrate_from_4(jobs)?;
    }
    // Format 5 had no journal; format 6 kept it in a tree of its own, whose writes go into
    // the jobs tree now. Format 7 differs from 5 only by the journal files, which start empty.
    migrate::migrate_from_6(db, jobs)?;
    meta.insert(
        FORMAT_VERSION_KEY,
        codec::encode(&STORE_FORMAT_VERSION, what)?,
    )?;
    Ok(())
}

/// The on-disk store; see the module documentation. Closing it (dropping it, or
/// [`SledStore::close`]) flushes a last time.
pub struct SledStore {
    path: PathBuf,
    /// Held while a job is created: its checks and writes are one step.
    creating: jobs::CreationLocks,
    /// The newest job id stored, for creations of newer ones to skip looking for it.
    newest: jobs::NewestJob,
    /// The head of each unfinished job this store wrote, so that a commit need not
    /// read it back.
    heads: jobs::KnownHeads,
    /// Set when something is written to sled itself (not through the journal), for the next
    /// group-commit flush to flush sled too; see [`SledStore::wrote_to_sled`].
    sled_written: Arc<AtomicBool>,
    group_commit: GroupCommit,
    trees: Trees,
    db: Db,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("flush_count", &self.flush_count())
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens the database at `path`, creating it if needed. A database another store holds
    /// open is waited for up to 2 seconds, then refused.
    pub fn open(path: &Path, config: SledConfig) -> Result<SledStore, StoreError> {
        let db = open_unlocked(&config, path)?;
        let trees = Trees::open(&db, path)?;
        // What opening wrote (a new database's format, a migration) is durable from the start.
        db.flush()?;
        let journal = trees.jobs.flusher();
        let sled_written = Arc::new(AtomicBool::new(false));
        let group_commit = GroupCommit::with_flush(config.group_commit_linger, {
            let (db, sled_written) = (db.clone(), Arc::clone(&sled_written));
            move || {
                journal.flush()?;
                if sled_written.swap(false, Ordering::SeqCst)
                    && let Err(error) = db.flush()
                {
                    sled_written.store(true, Ordering::SeqCst);
                    return Err(error.into());
                }
                Ok(())
            }
        })?;
        tracing::debug!(path = %path.display(), "opened store");
        Ok(SledStore {
            path: path.to_owned(),
            newest: jobs::NewestJob::read(&trees.jobs)?,
            creating: jobs::CreationLocks::default(),
            heads: jobs::KnownHeads::default(),
            sled_written,
            group_commit,
            trees,
            db,
        })
    }

    /// Notes a write made to sled itself, after it: the next group-commit flush, which a
    /// [`Durable`] requested after this call waits for, flushes sled.
    fn wrote_to_sled(&self) {
        self.sled_written.store(true, Ordering::SeqCst);
    }

    /// How many flushes the group-commit flusher has made: far fewer than
    /// [`Store::durable`] calls when commits are concurrent.
    pub fn flush_count(&self) -> u64 {
        self.group_commit.flush_count()
    }

    /// Flushes a last time and closes the database, reporting whether that flush worked.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.group_commit.stop()
    }

    /// Size of the database on disk, in bytes.
    pub fn size_on_disk_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}

/// How long opening a database waits for another store to let go of it. A store that has
/// just closed may hold it a moment longer: sled's own threads let go of its files last.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens the sled database at `path`, waiting up to [`LOCK_WAIT`] while another store holds
/// its lock.
fn open_unlocked(config: &SledConfig, path: &Path) -> Result<Db, StoreError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config.sled(path).open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if Instant::now() >= deadline {
                    return Err(StoreError::Backend(format!(
                        "the database at {} is open in another process",
                        path.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            opened => return Ok(opened?),
        }
    }
}

/// Turns the outcome of a sled transaction into the store's error.
fn transaction_result<T>(result: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    result.map_err(|error| match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => error.into(),
    })
}

impl Store for SledStore {
    fn put_plugin(&self, record: &PluginRecord, component: &[u8]) -> Result<PutPlugin, StoreError> {
        self.put_plugin_record(record, component)
    }

    fn plugin(&self, digest: &PluginDigest) -> Result<Option<PluginRecord>, StoreError> {
        self.plugin_record(digest)
    }

    fn plugin_component(&self, digest: &PluginDigest) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees
            .components
            .get(digest.as_str())?
            .map(|bytes| bytes.to_vec()))
    }

    fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        self.plugin_records()
    }

    fn update_plugin(&self, record: &PluginRecord) -> Result<(), StoreError> {
        self.update_plugin_record(record)
    }

    fn catalogue(&self) -> Result<Vec<CatalogueEntry>, StoreError> {
        Ok(self
            .plugin_records()?
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
        self.put_definition_document(name, version, document)
    }

    fn definition(&self, name: &WorkflowName, version: u32) -> Result<Option<Value>, StoreError> {
        self.definition_document(name, version)
    }

    fn latest_definition(&self, name: &WorkflowName) -> Result<Option<(u32, Value)>, StoreError> {
        self.latest_definition_document(name)
    }

    fn definitions(&self) -> Result<Vec<(WorkflowName, u32)>, StoreError> {
        self.definition_versions()
    }

    fn create_job(
        &self,
        job: &Job,
        meta: &JobMeta,
        events: &[Event],
    ) -> Result<CreateJob, StoreError> {
        self.create_job_records(job, meta, events)
    }

    fn commit_job(&self, job: &Job, events: &[Event]) -> Result<(), StoreError> {
        self.commit_job_records(job, events)
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.job_record(id)
    }

    fn job_meta(&self, id: JobId) -> Result<Option<JobMeta>, StoreError> {
        self.job_meta_record(id)
    }

    fn jobs(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        self.job_page(query)
    }

    fn unfinished_jobs(&self) -> Result<Vec<(Job, JobMeta)>, StoreError> {
        self.unfinished_job_records()
    }

    fn events(
        &self,
        id: JobId,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.job_events(id, after_sequence, limit)
    }

    fn kv_get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees
            .kv
            .get(keys::kv(scope, key))?
            .map(|bytes| bytes.to_vec()))
    }

    fn kv_set(&self, scope: &KvScope, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.trees.kv.insert(keys::kv(scope, key), value)?;
        self.wrote_to_sled();
        Ok(())
    }

    fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<(), StoreError> {
        self.trees.kv.remove(keys::kv(scope, key))?;
        self.wrote_to_sled();
        Ok(())
    }

    fn kv_list_prefix(&self, scope: &KvScope, prefix: &str) -> Result<Vec<String>, StoreError> {
        let scope_len = keys::kv_scope(scope).len();
        self.trees
            .kv
            .scan_prefix(keys::kv(scope, prefix))
            .keys()
            .map(|key| {
                let key = key?;
                String::from_utf8(key[scope_len..].to_vec())
                    .map_err(|e| StoreError::corrupt("key-value key", e))
            })
            .collect()
    }

    fn durable(&self) -> Durable {
        self.group_commit.request()
    }

    fn count_committers(&self, committers: Committers) {
        self.group_commit.count_committers(committers);
    }

    fn settle(&self) -> Result<(), StoreError> {
        self.trees
            .jobs
            .checkpoint_now(|| self.durable().wait_blocking())
    }
}

#[cfg(test)]
mod tests;
