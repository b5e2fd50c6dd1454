//! The jobs tree, written through a journal: group commit at the level of records.
//!
//! sled charges an insert mostly per insert, not per byte: measured on a 2-core machine, a
//! 2 KiB insert cost about 40 µs of CPU, a 64 KiB one about 3 µs per KiB. A job commit writes
//! one to three records of a few KiB, and thousands of jobs commit each second. So writes to
//! the jobs tree do not reach it one by one ([`JournaledTree`]):
//!
//! - A write goes into the *overlay*, an ordered map in memory that every read consults before
//!   the tree, so it is visible at once; and it is appended to the *pending* journal bytes.
//! - The group-commit flusher ([`JournalFlusher::flush`]) appends the pending bytes, as a few
//!   *journal records* each framed with its length and checksum, to the current *journal file*
//!   in the store's directory. A write is durable once the journal record holding it is
//!   written: like sled's flush, that survives the process crashing (not the machine losing
//!   power). A commit so costs one `write` to a file, and no flush of sled.
//! - Now and then (past a number of keys, of bytes, or an age: [`Limits`]) the flusher also
//!   *freezes* the overlay, in the same step that takes the pending bytes, so the frozen map
//!   holds exactly the writes of the journal files up to the one it is writing; later writes
//!   go to a new file. Once those are durable, the checkpoint thread writes the latest value of
//!   each frozen key into the tree (a job's head rewritten by many commits in between is
//!   written once), flushes sled, deletes the journal files the frozen map came from, and drops
//!   it. Reads consult the overlay, then the frozen map, then the tree. The checkpoint thread
//!   also creates the journal file after the one being written, ahead of need
//!   ([`Shared::make_spare`]), and opening the store creates the first two, so that creating
//!   files keeps off the commits' path.
//! - A checkpoint is put off while writes keep coming, up to a bound
//!   ([`Limits::defer_at_most`], or [`DEFER_WINDOWS`] checkpoints' worth of writes): it costs
//!   as much CPU as the commits it follows, and run in the middle of a burst of them it took a
//!   core from them, doubling their latency.
//!
//! A crash loses nothing durable, and leaves nothing half-done that readers trust:
//! - Opening the store deletes the empty journal files that end the list (made ahead, never
//!   written), then reads the journal files left, in order, back into the overlay, where
//!   they override the tree, and freezes them for a checkpoint at once, whether or not any
//!   write follows. Opening stays fast however much the journal holds. A record the crash
//!   cut short, at the end of the last file, was never reported durable: it is dropped, and
//!   the file cut back to the records before it.
//! - A checkpoint deletes journal files only once sled has flushed the tree writes that cover
//!   them. A checkpoint cut short leaves some of its keys written, all of which the journal
//!   still holds with the same or later values.
//! - Journal records replay in the order the writes were made, so after a crash the records
//!   read back as they were after some prefix of the writes, which is what the job records'
//!   own write order is designed for ([`super::jobs`]). Nothing undurable reaches the tree: a
//!   checkpoint writes only frozen writes, whose records were durable first.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::mem;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sled::{IVec, Tree};

use crate::error::StoreError;

/// When journal records close and checkpoints start.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// A journal record is closed once it holds this many bytes (at a write's boundary), so
    /// that pending bytes grow by records rather than by copying one ever larger buffer.
    pub record_bytes: usize,
    /// A flush freezes the overlay for a checkpoint once it holds this many keys ...
    pub checkpoint_keys: usize,
    /// ... or this many bytes of keys and values ...
    pub checkpoint_bytes: usize,
    /// ... or its oldest write is this old.
    pub checkpoint_age: Duration,
    /// A frozen map waits for writes to pause this long (no write in that time) before its
    /// checkpoint starts ...
    pub defer_quiet: Duration,
    /// ... but no longer than this in all.
    pub defer_at_most: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // A larger window writes fewer keys into the tree, but holds more memory. Measured
        // with `bench engine`: 3-step chains cost about the same CPU per step with 2,048 keys
        // (4 MiB, 250 ms) as with 8,192 (16 MiB, 1 s), and 10,000 jobs on retry timers took
        // 158 MiB resident with the first and 184 MiB with the second. This lies between.
        Limits {
            record_bytes: 64 * 1024,
            checkpoint_keys: 4 * 1024,
            checkpoint_bytes: 8 * 1024 * 1024,
            checkpoint_age: Duration::from_millis(500),
            // Measured with `bench engine`: 3,000 chains started at once write about 18,000
            // keys over 300 ms; put off, their checkpoint no longer halves the steps' share
            // of the cores in the middle of it. A pause of 2 ms did happen in the middle of
            // such a burst, while the OS held every committer's thread back.
            defer_quiet: Duration::from_millis(10),
            defer_at_most: Duration::from_secs(1),
        }
    }
}

/// How long a checkpoint that failed waits before it tries again.
const CHECKPOINT_RETRY: Duration = Duration::from_secs(1);

/// How long a checkpoint writes into the tree before it lets the other threads have its core.
/// Woken with thousands of frozen keys, the checkpoint thread would otherwise keep a core
/// for tens of milliseconds, and the threads that serve commits and requests would queue
/// for the other one: those stalls were most of the tail latency of commits under load.
const CHECKPOINT_SLICE: Duration = Duration::from_micros(100);

/// A checkpoint is put off only while fewer writes than this many checkpoints' worth wait
/// behind the frozen map: the memory a burst may hold.
const DEFER_WINDOWS: usize = 4;

/// A checkpoint stops yielding once the writes made since it started are enough for this
/// many checkpoints: a burst of writes (thousands of jobs created at once) may outrun it for
/// a while, a steady load that does so must not.
const BEHIND: usize = 2 * DEFER_WINDOWS;

/// Writes by key, newest value last; `None` removes the key.
type Writes = BTreeMap<IVec, Option<IVec>>;

/// What readers and writers share under one lock.
#[derive(Debug, Default)]
struct Overlay {
    /// Writes since the last freeze.
    active: Writes,
    /// Bytes of keys and values in `active`.
    active_bytes: usize,
    /// When the oldest write in `active` was made.
    active_since: Option<Instant>,
    /// Writes a checkpoint is moving into the tree.
    frozen: Option<Arc<Writes>>,
    /// Journal records not yet written: closed ones, and last the one being filled. Each
    /// starts with room for its frame ([`FRAME_BYTES`]).
    pending: Vec<Vec<u8>>,
    /// Number of the journal file the next flush appends to.
    generation: u64,
    /// Writes made since the tree opened: whether writes keep coming.
    writes: u64,
    /// Callers of [`JournaledTree::checkpoint_now`] waiting: a flush then freezes whatever
    /// the active writes hold, and no checkpoint is put off.
    hurried: usize,
    limits: Limits,
}

impl Overlay {
    /// Whether the writes in `active` are due for a checkpoint.
    fn checkpoint_due(&self) -> bool {
        self.frozen.is_none()
            && (self.hurried > 0 && !self.active.is_empty()
                || self.holds(1)
                || self
                    .active_since
                    .is_some_and(|since| since.elapsed() >= self.limits.checkpoint_age))
    }

    /// Whether `active` holds the writes of `checkpoints` checkpoints, by keys or bytes.
    fn holds(&self, checkpoints: usize) -> bool {
        self.active.len() >= checkpoints.saturating_mul(self.limits.checkpoint_keys)
            || self.active_bytes >= checkpoints.saturating_mul(self.limits.checkpoint_bytes)
    }

    /// Hands the active writes to the next checkpoint; later writes start anew.
    fn freeze(&mut self) {
        self.frozen = Some(Arc::new(mem::take(&mut self.active)));
        self.active_bytes = 0;
        self.active_since = None;
    }

    /// Moves a frozen map whose checkpoint cannot go ahead back under the active writes,
    /// which are newer.
    fn unfreeze(&mut self) {
        if let Some(frozen) = self.frozen.take() {
            let mut writes = Arc::unwrap_or_clone(frozen);
            writes.append(&mut self.active);
            self.active_bytes = writes.iter().map(|(k, v)| write_bytes(k, v)).sum();
            self.active = writes;
            self.active_since.get_or_insert_with(Instant::now);
        }
    }
}

fn write_bytes(key: &IVec, value: &Option<IVec>) -> usize {
    key.len() + value.as_ref().map_or(0, |v| v.len())
}

/// What the checkpoint thread is asked to do, and has done.
#[derive(Debug, Default)]
struct CheckpointOrder {
    /// The last journal file the frozen map covers, once its records are durable.
    through: Option<u64>,
    stopping: bool,
    /// Checkpoints done so far.
    done: u64,
}

#[derive(Debug)]
struct Shared {
    overlay: Mutex<Overlay>,
    tree: Tree,
    /// The directory of the journal files.
    dir: PathBuf,
    /// The journal file being appended to; only the flusher writes.
    appending: Mutex<Option<Appending>>,
    /// Journal files made ahead of need, empty, by generation ([`Shared::make_spare`]).
    spares: Mutex<BTreeMap<u64, Appending>>,
    order: Mutex<CheckpointOrder>,
    wake: Condvar,
}

/// A journal file open for appending.
#[derive(Debug)]
struct Appending {
    generation: u64,
    file: File,
    /// Bytes of whole records in it: where the next record goes. A write that failed
    /// halfway is written over by the next.
    length: u64,
}

impl Shared {
    fn overlay(&self) -> MutexGuard<'_, Overlay> {
        // The overlay is only changed by code that cannot panic halfway.
        self.overlay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn order(&self) -> MutexGuard<'_, CheckpointOrder> {
        self.order.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `records` to journal file `generation`, framing each.
    fn append(&self, generation: u64, records: &mut [Vec<u8>]) -> Result<(), StoreError> {
        let mut appending = self
            .appending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = match appending.take() {
            Some(current) if current.generation == generation => current,
            _ => match self.take_spare(generation) {
                Some(spare) => spare,
                None => open_file(&self.dir, generation)?,
            },
        };
        let current = appending.insert(current);
        // Each record is framed in place and written where the last one ended; a retry
        // frames and writes them again from the same offset.
        let mut end = current.length;
        for record in records.iter_mut() {
            frame(record);
            current.file.write_all_at(record, end).map_err(|e| {
                journal_error(&file_path(&self.dir, generation), "cannot write to", &e)
            })?;
            end += record.len() as u64;
        }
        current.length = end;
        Ok(())
    }

    fn spares(&self) -> MutexGuard<'_, BTreeMap<u64, Appending>> {
        self.spares.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file made ahead for `generation`, if any. Those of earlier generations are
    /// dropped: no flush goes back to them, and the checkpoints delete their files. A file
    /// whose name is gone (its directory was deleted) is not used: writes to it would be lost.
    fn take_spare(&self, generation: u64) -> Option<Appending> {
        let spare = {
            let mut spares = self.spares();
            let spare = spares.remove(&generation);
            spares.retain(|later, _| *later > generation);
            spare?
        };
        let linked = spare.file.metadata().is_ok_and(|m| m.nlink() > 0);
        linked.then_some(spare)
    }

    /// Makes the journal file for `generation` ahead of need, for the flusher to take when it
    /// gets there. Creating a file took the flusher 2 to 5 ms on ext4 (measured with `bench
    /// engine`), while the checkpoint's sled flush and file deletions kept the file system's
    /// own journal busy: every commit waiting on that flush waited as long. The checkpoint
    /// thread makes the file instead, off the commits' path. A file that cannot be made is
    /// left to the flusher.
    fn make_spare(&self, generation: u64) {
        if self.spares().contains_key(&generation) {
            return;
        }
        match open_file(&self.dir, generation) {
            Ok(file) => {
                self.spares().insert(generation, file);
            }
            Err(error) => tracing::debug!(%error, "cannot make a journal file ahead"),
        }
    }

    /// Deletes the files made ahead and never written to: when the store closes.
    fn remove_spares(&self) {
        let spares = mem::take(&mut *self.spares());
        for generation in spares.into_keys() {
            let path = file_path(&self.dir, generation);
            if let Err(error) = fs::remove_file(&path) {
                tracing::debug!(%error, path = %path.display(), "cannot delete a spare journal file");
            }
        }
    }

    /// Waits until no checkpoint is ordered or under way; returns whether the checkpoint
    /// thread is stopping instead.
    fn wait_for_checkpoint(&self) -> bool {
        let mut order = self.order();
        while !order.stopping && (order.through.is_some() || self.overlay().frozen.is_some()) {
            order = self
                .wake
                .wait(order)
                .unwrap_or_else(PoisonError::into_inner);
        }
        order.stopping
    }

    /// Deletes the journal files up to `through`.
    fn delete_files(&self, through: u64) -> Result<(), StoreError> {
        for (generation, path) in journal_files(&self.dir)? {
            if generation <= through {
                fs::remove_file(&path).map_err(|e| journal_error(&path, "cannot delete", &e))?;
            }
        }
        Ok(())
    }
}

/// A sled tree whose writes go through a journal; see the module documentation. Its reads
/// and writes mirror sled's. Dropping it stops the checkpoint thread; what it had not moved
/// into the tree stays in the journal.
#[derive(Debug)]
pub(super) struct JournaledTree {
    shared: Arc<Shared>,
    checkpoints: Option<JoinHandle<()>>,
}

impl JournaledTree {
    /// `tree` written through a journal in the directory `dir` (created if missing); reads
    /// the journal files there back first.
    pub fn open(tree: Tree, dir: &Path, limits: Limits) -> Result<Self, StoreError> {
        let mut overlay = Overlay {
            limits,
            ..Overlay::default()
        };
        fs::create_dir_all(dir).map_err(|e| journal_error(dir, "cannot create", &e))?;
        let mut files = journal_files(dir)?;
        // Files made ahead of need and never written to hold nothing; the last file that
        // holds records is the one a crash may have cut short.
        while let Some((_, path)) = files.last() {
            let length = fs::metadata(path)
                .map_err(|e| journal_error(path, "cannot read the size of", &e))?
                .len();
            if length > 0 {
                break;
            }
            fs::remove_file(path).map_err(|e| journal_error(path, "cannot delete", &e))?;
            files.pop();
        }
        let last = files.last().map(|(generation, _)| *generation);
        for (generation, path) in &files {
            read_file(path, Some(*generation) == last, |key, value| {
                overlay.active_bytes += write_bytes(&key, &value);
                overlay.active.insert(key, value);
            })?;
        }
        // Later writes go to a file of their own.
        overlay.generation = last.map_or(0, |last| last + 1);
        let mut order = CheckpointOrder::default();
        if !overlay.active.is_empty() {
            tracing::debug!(
                keys = overlay.active.len(),
                "read back the writes the journal held"
            );
            // Made before the store opened, they are due by age, unless the limits turn
            // that off; so they are frozen at once, as a flush freezes writes, and moved
            // into the tree. Left to the next flush, they would wait for writes that a
            // store left idle never takes: held in memory, their files replayed at every
            // start.
            if limits.checkpoint_age == Duration::MAX {
                overlay.active_since = Some(Instant::now());
            } else {
                overlay.freeze();
                order.through = last;
            }
        }
        let shared = Arc::new(Shared {
            overlay: Mutex::new(overlay),
            tree,
            dir: dir.to_owned(),
            appending: Mutex::new(None),
            spares: Mutex::default(),
            order: Mutex::new(order),
            wake: Condvar::new(),
        });
        // The first file the flusher writes to, and the one after it, are made now, while
        // nothing waits on them; each checkpoint order makes the one after the file the
        // flusher is writing then.
        let first = shared.overlay().generation;
        shared.make_spare(first);
        shared.make_spare(first + 1);
        let checkpoints = thread::Builder::new()
            .name("weft-store-checkpoint".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run_checkpoints(&shared)
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(JournaledTree {
            shared,
            checkpoints: Some(checkpoints),
        })
    }

    /// A handle on the journal for the group-commit flusher.
    pub fn flusher(&self) -> JournalFlusher {
        JournalFlusher(Arc::clone(&self.shared))
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, StoreError> {
        let key = key.as_ref();
        {
            let overlay = self.shared.overlay();
            let written = overlay
                .active
                .get(key)
                .or_else(|| overlay.frozen.as_ref().and_then(|f| f.get(key)));
            if let Some(value) = written {
                return Ok(value.clone());
            }
        }
        // Not written since the last checkpoint, so the tree has it: a checkpoint that
        // starts now writes only keys the overlay held when it was looked at.
        Ok(self.shared.tree.get(key)?)
    }

    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl Into<IVec>) -> Result<(), StoreError> {
        self.write(IVec::from(key.as_ref()), Some(value.into()))
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<(), StoreError> {
        self.write(IVec::from(key.as_ref()), None)
    }

    fn write(&self, key: IVec, value: Option<IVec>) -> Result<(), StoreError> {
        let bytes = key.len() + value.as_ref().map_or(0, |v| v.len());
        if bytes > MAX_WRITE_BYTES {
            return Err(StoreError::Invalid(format!(
                "a record of {bytes} bytes; the store takes at most {MAX_WRITE_BYTES}"
            )));
        }
        let mut overlay = self.shared.overlay();
        let record_bytes = overlay.limits.record_bytes;
        let mut record = match overlay.pending.pop() {
            Some(open) if open.len() < record_bytes => open,
            closed => {
                overlay.pending.extend(closed);
                let mut record = Vec::with_capacity(record_bytes);
                record.resize(FRAME_BYTES, 0);
                record
            }
        };
        let written = push_write(&mut record, &key, value.as_deref());
        overlay.pending.push(record);
        written?;
        overlay.active_bytes += write_bytes(&key, &value);
        overlay.active_since.get_or_insert_with(Instant::now);
        overlay.active.insert(key, value);
        overlay.writes += 1;
        Ok(())
    }

    /// Moves every write made so far into the tree and waits until it is there, `flush`
    /// making them durable. For measurements that must count the checkpoint's work, which
    /// is otherwise put off while writes keep coming. Writes made meanwhile are waited for
    /// too.
    pub fn checkpoint_now(
        &self,
        flush: impl Fn() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let shared = &self.shared;
        shared.overlay().hurried += 1;
        // A checkpoint being put off goes ahead.
        shared.wake.notify_all();
        let result = loop {
            // Freezes the active writes, unless a checkpoint holds the frozen map still.
            if let Err(error) = flush() {
                break Err(error);
            }
            if shared.wait_for_checkpoint() || shared.overlay().active.is_empty() {
                break Ok(());
            }
        };
        shared.overlay().hurried -= 1;
        result
    }

    /// Records with keys in `range`, in key order.
    pub fn range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Records {
        self.records(owned_bounds(&range), false)
    }

    /// Records with keys in `range`, last key first.
    pub fn range_rev<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Records {
        self.records(owned_bounds(&range), true)
    }

    /// Records whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Records {
        self.records(prefix_bounds(prefix.as_ref()), false)
    }

    /// Records whose key starts with `prefix`, last key first.
    pub fn scan_prefix_rev(&self, prefix: impl AsRef<[u8]>) -> Records {
        self.records(prefix_bounds(prefix.as_ref()), true)
    }

    fn records(&self, bounds: (Bound<IVec>, Bound<IVec>), reverse: bool) -> Records {
        let written = if is_empty_range(&bounds) {
            Vec::new()
        } else {
            let overlay = self.shared.overlay();
            let mut written: Writes = overlay
                .frozen
                .iter()
                .flat_map(|frozen| frozen.range(bounds.clone()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            written.extend(
                overlay
                    .active
                    .range(bounds.clone())
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            written.into_iter().collect::<Vec<_>>()
        };
        let mut written = written;
        if reverse {
            written.reverse();
        }
        Records {
            tree: self.shared.tree.range(bounds),
            written: written.into_iter(),
            reverse,
            tree_next: None,
            tree_done: false,
        }
    }

    /// Moves every durable write into the tree and empties the journal, once nothing writes
    /// any more: a store closed cleanly leaves no journal to read back.
    fn checkpoint_everything(&self) -> Result<(), StoreError> {
        let (writes, through) = {
            let mut overlay = self.shared.overlay();
            if !overlay.pending.is_empty() {
                // The last flush failed: these writes are not durable, and stay out of the tree.
                return Ok(());
            }
            let mut writes = overlay
                .frozen
                .take()
                .map(Arc::unwrap_or_clone)
                .unwrap_or_default();
            writes.append(&mut overlay.active);
            (writes, overlay.generation)
        };
        checkpoint(&self.shared, &writes, through)
    }
}

impl Drop for JournaledTree {
    fn drop(&mut self) {
        self.shared.order().stopping = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.checkpoints.take()
            && thread.join().is_err()
        {
            tracing::error!("the checkpoint thread panicked");
        }
        if let Err(error) = self.checkpoint_everything() {
            tracing::error!(%error, "moving the journal into the store on closing failed");
        }
        self.shared.remove_spares();
    }
}

/// Where records are inserted: the tree itself, or the tree through its journal.
pub(super) trait Insert {
    fn insert_record(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError>;
}

impl Insert for Tree {
    fn insert_record(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.insert(key, value)?;
        Ok(())
    }
}

impl Insert for JournaledTree {
    fn insert_record(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.insert(key, value)
    }
}

/// The group-commit flusher's handle on a [`JournaledTree`].
#[derive(Debug)]
pub(super) struct JournalFlusher(Arc<Shared>);

impl JournalFlusher {
    /// Appends the pending journal records to the journal, which makes every write made
    /// before the call durable; hands a frozen overlay, if this flush froze one, to the
    /// checkpoint thread once it is durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        let shared = &self.0;
        let (mut records, generation, froze) = {
            let mut overlay = shared.overlay();
            let records = mem::take(&mut overlay.pending);
            let generation = overlay.generation;
            // The frozen writes are those of every journal file up to the one this flush
            // writes; later writes go to the next.
            let froze = overlay.checkpoint_due().then(|| {
                overlay.freeze();
                overlay.generation += 1;
                generation
            });
            (records, generation, froze)
        };
        let written = if records.is_empty() {
            Ok(())
        } else {
            shared.append(generation, &mut records)
        };
        if let Err(error) = written {
            // The writes stay visible and pending; the next flush writes them again, over
            // whatever part of them did get written.
            let mut overlay = shared.overlay();
            if froze.is_some() {
                overlay.unfreeze();
                overlay.generation = generation;
            }
            let mut later = mem::take(&mut overlay.pending);
            overlay.pending = records;
            overlay.pending.append(&mut later);
            return Err(error);
        }
        if froze.is_some() {
            shared.order().through = froze;
            shared.wake.notify_all();
        }
        Ok(())
    }
}

/// The checkpoint thread: moves each frozen map into the tree, then drops its journal
/// records; see the module documentation.
fn run_checkpoints(shared: &Shared) {
    loop {
        let through = {
            let mut order = shared.order();
            loop {
                if order.stopping {
                    return;
                }
                if let Some(through) = order.through.take() {
                    break through;
                }
                order = shared
                    .wake
                    .wait(order)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        // The flusher writes to file `through + 1` now (made ahead by the last order), and
        // goes on to the next once this checkpoint is done and the next one frozen.
        shared.make_spare(through + 2);
        let Some(frozen) = shared.overlay().frozen.clone() else {
            continue;
        };
        defer_while_busy(shared);
        match checkpoint(shared, &frozen, through) {
            Ok(()) => {
                shared.overlay().frozen = None;
                shared.order().done += 1;
                shared.wake.notify_all();
            }
            Err(error) => {
                tracing::error!(%error, "moving journaled writes into the store failed; retrying");
                let order = shared.order();
                let (mut order, _) = shared
                    .wake
                    .wait_timeout(order, CHECKPOINT_RETRY)
                    .unwrap_or_else(PoisonError::into_inner);
                order.through.get_or_insert(through);
            }
        }
    }
}

/// Puts off the next checkpoint while writes keep coming, within the bounds of
/// [`Limits::defer_at_most`] and [`DEFER_WINDOWS`]. A checkpoint costs about as much CPU as
/// the commits whose writes it moves; in the middle of a burst of commits it would take a
/// core from them, and once they pause it has the cores to itself.
fn defer_while_busy(shared: &Shared) {
    let started = Instant::now();
    let (mut seen, limits) = {
        let overlay = shared.overlay();
        (overlay.writes, overlay.limits)
    };
    loop {
        {
            let overlay = shared.overlay();
            if overlay.hurried > 0 || overlay.holds(DEFER_WINDOWS) {
                return;
            }
        }
        let Some(left) = limits.defer_at_most.checked_sub(started.elapsed()) else {
            return;
        };
        let order = shared.order();
        if order.stopping {
            return;
        }
        let order = shared
            .wake
            .wait_timeout(order, left.min(limits.defer_quiet))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        if order.stopping {
            return;
        }
        drop(order);
        let writes = shared.overlay().writes;
        if writes == seen {
            return;
        }
        seen = writes;
    }
}

/// Writes `frozen` into the tree, flushes it, and then deletes the journal files up to
/// `through`, which held those writes. A checkpoint is background work: it yields its core
/// after every [`CHECKPOINT_SLICE`] of writing, unless the writes made meanwhile are enough
/// for [`BEHIND`] checkpoints already. It is falling behind then, and yielding would let the
/// writes held in memory grow without bound.
fn checkpoint(shared: &Shared, frozen: &Writes, through: u64) -> Result<(), StoreError> {
    let mut slice = Instant::now();
    for (key, value) in frozen {
        match value {
            Some(value) => shared.tree.insert(key, value.clone())?,
            None => shared.tree.remove(key)?,
        };
        if slice.elapsed() >= CHECKPOINT_SLICE {
            if !shared.overlay().holds(BEHIND) {
                thread::yield_now();
            }
            slice = Instant::now();
        }
    }
    shared.tree.flush()?;
    shared.delete_files(through)
}

/// Records of a [`JournaledTree`] in a range: its tree's, overridden by the writes not yet
/// checkpointed.
pub(super) struct Records {
    tree: sled::Iter,
    /// The writes in the range, in the order of iteration.
    written: std::vec::IntoIter<(IVec, Option<IVec>)>,
    reverse: bool,
    /// The tree's next record, read ahead.
    tree_next: Option<(IVec, IVec)>,
    tree_done: bool,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("reverse", &self.reverse)
            .finish_non_exhaustive()
    }
}

impl Records {
    /// The keys alone.
    pub fn keys(self) -> impl Iterator<Item = Result<IVec, StoreError>> {
        self.map(|record| record.map(|(key, _)| key))
    }
}

impl Iterator for Records {
    type Item = Result<(IVec, IVec), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.tree_next.is_none() && !self.tree_done {
                let next = if self.reverse {
                    self.tree.next_back()
                } else {
                    self.tree.next()
                };
                match next {
                    Some(Ok(record)) => self.tree_next = Some(record),
                    Some(Err(error)) => return Some(Err(error.into())),
                    None => self.tree_done = true,
                }
            }
            let written_first = match (self.tree_next.as_ref(), self.written.as_slice().first()) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((tree_key, _)), Some((written_key, _))) => {
                    let order = written_key.cmp(tree_key);
                    let order = if self.reverse { order.reverse() } else { order };
                    if order.is_eq() {
                        // The write overrides the tree's record.
                        self.tree_next = None;
                    }
                    order.is_le()
                }
            };
            if !written_first {
                return self.tree_next.take().map(Ok);
            }
            if let Some((key, Some(value))) = self.written.next() {
                return Some(Ok((key, value)));
            }
            // A removal hides the tree's record and yields nothing.
        }
    }
}

/// Appends a write to a journal record: a byte telling an insert (1) from a removal (0), the
/// key's length (u32, little-endian) and the key, then for an insert the value's length and
/// the value.
pub(super) fn push_write(
    record: &mut Vec<u8>,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), StoreError> {
    let length = |bytes: &[u8]| {
        u32::try_from(bytes.len())
            .map(u32::to_le_bytes)
            .map_err(|_| StoreError::Invalid(format!("a record of {} bytes", bytes.len())))
    };
    let key_length = length(key)?;
    let value_length = value.map(length).transpose()?;
    record.push(u8::from(value.is_some()));
    record.extend_from_slice(&key_length);
    record.extend_from_slice(key);
    if let (Some(value), Some(value_length)) = (value, value_length) {
        record.extend_from_slice(&value_length);
        record.extend_from_slice(value);
    }
    Ok(())
}

/// Calls `each` with every write of a journal record, in order.
pub(super) fn read_record(
    mut bytes: &[u8],
    mut each: impl FnMut(IVec, Option<IVec>),
) -> Result<(), &'static str> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], &'static str> {
        if bytes.len() < n {
            return Err("the record is truncated");
        }
        let (taken, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(taken)
    }
    fn sized<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
        let length = take(bytes, 4)?;
        let length = u32::from_le_bytes(length.try_into().map_err(|_| "bad length")?);
        take(bytes, length as usize)
    }
    while !bytes.is_empty() {
        let insert = match take(&mut bytes, 1)?[0] {
            0 => false,
            1 => true,
            _ => return Err("a write is neither an insert nor a removal"),
        };
        let key = IVec::from(sized(&mut bytes)?);
        let value = if insert {
            Some(IVec::from(sized(&mut bytes)?))
        } else {
            None
        };
        each(key, value);
    }
    Ok(())
}

/// The largest write (key and value) a journal takes: with the open record it joins, which
/// is below [`Limits::record_bytes`], a record's length then fits its frame's 32 bits.
const MAX_WRITE_BYTES: usize = 1 << 30;

/// Bytes of a journal record's frame: the length of its writes (u32, little-endian), then
/// their CRC-32 (u32, little-endian).
const FRAME_BYTES: usize = 8;

/// Fills in the frame at the start of `record` for the writes after it.
fn frame(record: &mut [u8]) {
    let (frame, writes) = record.split_at_mut(FRAME_BYTES);
    // Cannot saturate: a record is closed once past `Limits::record_bytes` (KiB), and a
    // write is at most `MAX_WRITE_BYTES`.
    let length = u32::try_from(writes.len()).unwrap_or(u32::MAX);
    frame[..4].copy_from_slice(&length.to_le_bytes());
    frame[4..].copy_from_slice(&crc32fast::hash(writes).to_le_bytes());
}

/// Suffix of a journal file's name, after its generation.
const FILE_SUFFIX: &str = ".journal";

/// Opens journal file `generation` for appending, creating it if missing.
fn open_file(dir: &Path, generation: u64) -> Result<Appending, StoreError> {
    let path = file_path(dir, generation);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| journal_error(&path, "cannot open", &e))?;
    let length = file
        .metadata()
        .map_err(|e| journal_error(&path, "cannot read the size of", &e))?
        .len();
    Ok(Appending {
        generation,
        file,
        length,
    })
}

fn file_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:020}{FILE_SUFFIX}"))
}

/// The journal files in `dir`, oldest first. Other files are left alone.
pub(super) fn journal_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let entries = fs::read_dir(dir).map_err(|e| journal_error(dir, "cannot list", &e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| journal_error(dir, "cannot list", &e))?
            .path();
        let generation = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(FILE_SUFFIX))
            .and_then(|number| number.parse::<u64>().ok());
        if let Some(generation) = generation {
            files.push((generation, path));
        }
    }
    files.sort_unstable();
    Ok(files)
}

/// The journal files in `dir` that hold records, oldest first: all but a file made ahead of
/// need ([`Shared::make_spare`]), which is empty.
#[cfg(test)]
pub(super) fn files_holding_records(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut files = journal_files(dir).unwrap();
    files.retain(|(_, path)| fs::metadata(path).unwrap().len() > 0);
    files
}

/// Calls `each` with every write of the journal file at `path`, in order. A record cut short
/// (the file ends before its frame or its writes do) ends the `last` file: a crash
/// interrupted the flush writing it, which never reported those writes durable, and the file
/// is cut back to the records before it. Anywhere else, or a checksum that does not match,
/// is corruption.
fn read_file(
    path: &Path,
    last: bool,
    mut each: impl FnMut(IVec, Option<IVec>),
) -> Result<(), StoreError> {
    let bytes = fs::read(path).map_err(|e| journal_error(path, "cannot read", &e))?;
    let what = |offset: usize| format!("journal file {}, record at byte {offset}", path.display());
    let mut offset = 0;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let whole = rest.get(..FRAME_BYTES).and_then(|frame| {
            let length = u32::from_le_bytes(frame[..4].try_into().ok()?) as usize;
            let crc = u32::from_le_bytes(frame[4..].try_into().ok()?);
            Some((rest.get(FRAME_BYTES..FRAME_BYTES + length)?, crc))
        });
        if let Some((writes, crc)) = whole
            && crc32fast::hash(writes) != crc
        {
            return Err(StoreError::corrupt(
                what(offset),
                "the record's checksum does not match",
            ));
        }
        let Some((writes, _)) = whole else {
            if !last {
                return Err(StoreError::corrupt(
                    what(offset),
                    "the record is cut short, and later files follow it",
                ));
            }
            tracing::warn!(
                file = %path.display(),
                offset,
                "dropping the end of the journal, which a crash cut short"
            );
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| journal_error(path, "cannot open", &e))?;
            file.set_len(offset as u64)
                .map_err(|e| journal_error(path, "cannot cut short", &e))?;
            return Ok(());
        };
        read_record(writes, &mut each)
            .map_err(|detail| StoreError::corrupt(what(offset), detail))?;
        offset += FRAME_BYTES + writes.len();
    }
    Ok(())
}

fn journal_error(path: &Path, doing: &str, error: &io::Error) -> StoreError {
    StoreError::Backend(format!(
        "{doing} the journal at {}: {error}",
        path.display()
    ))
}

fn owned_bound(bound: Bound<&impl AsRef<[u8]>>) -> Bound<IVec> {
    match bound {
        Bound::Included(key) => Bound::Included(IVec::from(key.as_ref())),
        Bound::Excluded(key) => Bound::Excluded(IVec::from(key.as_ref())),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn owned_bounds<K: AsRef<[u8]>>(range: &impl RangeBounds<K>) -> (Bound<IVec>, Bound<IVec>) {
    (
        owned_bound(range.start_bound()),
        owned_bound(range.end_bound()),
    )
}

/// The bounds of the keys starting with `prefix`.
fn prefix_bounds(prefix: &[u8]) -> (Bound<IVec>, Bound<IVec>) {
    let mut end = prefix.to_vec();
    while end.last() == Some(&u8::MAX) {
        end.pop();
    }
    let end = match end.last_mut() {
        Some(last) => {
            *last += 1;
            Bound::Excluded(IVec::from(end))
        }
        None => Bound::Unbounded,
    };
    (Bound::Included(IVec::from(prefix)), end)
}

/// Whether no key lies within `bounds` (where `BTreeMap::range` would panic).
fn is_empty_range((start, end): &(Bound<IVec>, Bound<IVec>)) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Model = BTreeMap<Vec<u8>, Vec<u8>>;

    fn database() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (dir, db)
    }

    fn journal_dir(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("journal")
    }

    fn journaled(dir: &tempfile::TempDir, db: &sled::Db, limits: Limits) -> JournaledTree {
        let tree = db.open_tree("records").unwrap();
        JournaledTree::open(tree, &journal_dir(dir), limits).unwrap()
    }

    /// Small records, and a checkpoint every 16 keys, put off by a short pause in writes.
    fn small_limits() -> Limits {
        Limits {
            record_bytes: 256,
            checkpoint_keys: 16,
            checkpoint_bytes: usize::MAX,
            checkpoint_age: Duration::MAX,
            defer_quiet: Duration::from_millis(1),
            defer_at_most: Duration::from_secs(10),
        }
    }

    impl JournaledTree {
        fn checkpoints_done(&self) -> u64 {
            self.shared.order().done
        }

        /// Waits until the checkpoint the last flush started, if any, is done.
        fn settle(&self) {
            self.shared.wait_for_checkpoint();
        }
    }

    /// What the tree itself holds, journal aside.
    fn stored(db: &sled::Db) -> Model {
        db.open_tree("records")
            .unwrap()
            .iter()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect()
    }

    /// Small records, and no checkpoint.
    fn never_checkpointing() -> Limits {
        Limits {
            checkpoint_keys: usize::MAX,
            ..small_limits()
        }
    }

    /// A deterministic stream of writes over 3 prefixes of 24 keys each.
    struct Writes(u64);

    impl Writes {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Makes one write to `tree` and `model`; returns whether to flush after it.
        fn write(&mut self, tree: &JournaledTree, model: &mut Model) -> bool {
            let r = self.next();
            let key = vec![b"abc"[(r % 3) as usize], (r >> 8) as u8 % 24];
            if (r >> 20).is_multiple_of(4) {
                tree.remove(&key).unwrap();
                model.remove(&key);
            } else {
                let value = vec![(r >> 32) as u8; 1 + (r >> 40) as usize % 100];
                tree.insert(&key, value.clone()).unwrap();
                model.insert(key, value);
            }
            (r >> 48).is_multiple_of(8)
        }
    }

    fn collect(records: Records) -> Vec<(Vec<u8>, Vec<u8>)> {
        records
            .map(|record| {
                let (key, value) = record.unwrap();
                (key.to_vec(), value.to_vec())
            })
            .collect()
    }

    /// Every read of `tree` agrees with `model`.
    fn assert_reads(tree: &JournaledTree, model: &Model) {
        let all: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let reversed: Vec<_> = all.iter().rev().cloned().collect();
        assert_eq!(collect(tree.range::<&[u8]>(..)), all);
        assert_eq!(collect(tree.range_rev::<&[u8]>(..)), reversed);
        for prefix in [b'a', b'b', b'c'] {
            let with = |(k, _): &&(Vec<u8>, Vec<u8>)| k[0] == prefix;
            let expected: Vec<_> = all.iter().filter(with).cloned().collect();
            assert_eq!(collect(tree.scan_prefix([prefix])), expected);
            let expected: Vec<_> = reversed.iter().filter(with).cloned().collect();
            assert_eq!(collect(tree.scan_prefix_rev([prefix])), expected);
            // A page below a cursor, as job lists read them.
            let below: Vec<_> = expected
                .iter()
                .filter(|(k, _)| k[1] < 12)
                .cloned()
                .collect();
            assert_eq!(
                collect(tree.range_rev(vec![prefix]..vec![prefix, 12])),
                below
            );
            for n in 0..24 {
                let key = [prefix, n];
                let value = tree.get(key).unwrap().map(|v| v.to_vec());
                assert_eq!(value.as_ref(), model.get(key.as_slice()), "{key:?}");
            }
        }
    }

    #[test]
    fn reads_see_every_write_whether_pending_journaled_frozen_or_in_the_tree() {
        let (dir, db) = database();
        let tree = journaled(&dir, &db, small_limits());
        let flusher = tree.flusher();
        let mut writes = Writes(0x2545_f491_4f6c_dd1d);
        let mut model = Model::new();
        for n in 0..4000 {
            if writes.write(&tree, &mut model) {
                flusher.flush().unwrap();
            }
            // Some reads race the checkpoint thread, some follow it.
            if n % 97 == 0 {
                tree.settle();
            }
            if n % 13 == 0 {
                assert_reads(&tree, &model);
            }
        }
        assert_reads(&tree, &model);
        assert!(
            tree.checkpoints_done() > 10,
            "checkpoints ran: {}",
            tree.checkpoints_done()
        );
    }

    #[test]
    fn after_a_crash_the_journal_gives_back_every_flushed_write_and_no_other() {
        let (dir, db) = database();
        let mut writes = Writes(0x9e37_79b9_7f4a_7c15);
        let mut model = Model::new();
        let mut flushed = Model::new();
        {
            let tree = journaled(&dir, &db, small_limits());
            let flusher = tree.flusher();
            for _ in 0..1000 {
                if writes.write(&tree, &mut model) {
                    flusher.flush().unwrap();
                    flushed = model.clone();
                }
            }
            tree.settle();
            assert!(tree.checkpoints_done() > 0);
            // Dropped with writes pending, it leaves the tree and the journal as a crash
            // would: as the last flush and the checkpoints left them.
            tree.insert(b"never flushed", b"lost").unwrap();
        }
        let tree = journaled(&dir, &db, small_limits());
        assert_reads(&tree, &flushed);
        assert_eq!(tree.get(b"never flushed").unwrap(), None);
        // The journal read back moves into the tree like any other write.
        let flusher = tree.flusher();
        let mut model = flushed;
        while tree.checkpoints_done() < 3 {
            if writes.write(&tree, &mut model) {
                flusher.flush().unwrap();
                tree.settle();
            }
        }
        assert_reads(&tree, &model);
    }

    #[test]
    fn a_checkpoint_a_crash_cut_short_is_overridden_by_the_journal() {
        let (dir, db) = database();
        let never = never_checkpointing();
        let mut writes = Writes(0x1234_5678_9abc_def1);
        let mut model = Model::new();
        {
            let tree = journaled(&dir, &db, never);
            for _ in 0..300 {
                writes.write(&tree, &mut model);
            }
            tree.flusher().flush().unwrap();
            tree.insert(b"pending", b"keeps the journal").unwrap();
        }
        // Half of a checkpoint reached the tree before the crash.
        let raw = db.open_tree("records").unwrap();
        for (key, value) in model.iter().step_by(2) {
            raw.insert(key.as_slice(), value.as_slice()).unwrap();
        }
        let tree = journaled(&dir, &db, never);
        assert_reads(&tree, &model);
    }

    #[test]
    fn closing_moves_every_write_into_the_tree_and_empties_the_journal() {
        let (dir, db) = database();
        let mut writes = Writes(0x0bad_cafe_dead_beef);
        let mut model = Model::new();
        {
            let tree = journaled(&dir, &db, small_limits());
            for _ in 0..500 {
                writes.write(&tree, &mut model);
            }
            tree.flusher().flush().unwrap();
        }
        let raw = db.open_tree("records").unwrap();
        let stored: Model = raw
            .iter()
            .map(|record| {
                let (key, value) = record.unwrap();
                (key.to_vec(), value.to_vec())
            })
            .collect();
        assert_eq!(stored, model);
        assert_eq!(journal_files(&journal_dir(&dir)).unwrap(), []);
    }

    #[test]
    fn a_failed_flush_keeps_its_writes_for_the_next_flush() {
        let never = never_checkpointing();
        // Without a checkpoint, only the journal keeps the writes; with one, the failed
        // flush also gives back the writes it froze.
        for (limits, checkpoints) in [(never, 0), (small_limits(), 1)] {
            let (dir, db) = database();
            let mut writes = Writes(0x5151_7272_9393_b4b4);
            let mut model = Model::new();
            let tree = journaled(&dir, &db, limits);
            while model.len() < 20 {
                writes.write(&tree, &mut model);
            }
            fs::remove_dir_all(journal_dir(&dir)).unwrap();
            assert!(tree.flusher().flush().is_err());
            assert_reads(&tree, &model);
            fs::create_dir(journal_dir(&dir)).unwrap();
            tree.flusher().flush().unwrap();
            tree.settle();
            assert_eq!(tree.checkpoints_done(), checkpoints);
            writes.write(&tree, &mut model);
            tree.flusher().flush().unwrap();
            tree.insert(b"pending", b"unflushed").unwrap();
            drop(tree);
            assert_reads(&journaled(&dir, &db, limits), &model);
        }
    }

    /// Writes `count` flushes of one write each, as separate journal records, and drops the
    /// tree as a crash would; returns the model of what was written.
    fn journal_of(dir: &tempfile::TempDir, db: &sled::Db, limits: Limits, count: u8) -> Model {
        let mut model = Model::new();
        let tree = journaled(dir, db, limits);
        for n in 0..count {
            tree.insert([n], vec![n; 40]).unwrap();
            model.insert(vec![n], vec![n; 40]);
            tree.flusher().flush().unwrap();
        }
        // Left pending, so that closing does not move the journal into the tree.
        tree.insert(b"pending", b"unflushed").unwrap();
        model
    }

    #[test]
    fn writes_read_back_from_the_journal_reach_the_tree_without_any_later_write() {
        let (dir, db) = database();
        let model = journal_of(&dir, &db, never_checkpointing(), 5);
        assert_eq!(journal_files(&journal_dir(&dir)).unwrap().len(), 1);
        let by_age = Limits {
            checkpoint_age: Duration::from_secs(3600),
            ..never_checkpointing()
        };
        let tree = journaled(&dir, &db, by_age);
        tree.settle();
        assert_eq!(tree.checkpoints_done(), 1);
        assert_eq!(files_holding_records(&journal_dir(&dir)), []);
        let stored = stored(&db);
        assert_eq!(stored, model);
        assert_reads(&tree, &model);
    }

    /// Writes a journal of 5 records ([`journal_of`]) in one file, whose last record then
    /// loses its last 3 bytes, as a write a crash interrupted would. Returns the model
    /// without that record, and the file's generation and path.
    fn journal_cut_short(dir: &tempfile::TempDir, db: &sled::Db) -> (Model, u64, PathBuf) {
        let mut model = journal_of(dir, db, never_checkpointing(), 5);
        let files = journal_files(&journal_dir(dir)).unwrap();
        let [(generation, path)] = files.as_slice() else {
            panic!("one journal file: {files:?}");
        };
        let length = fs::metadata(path).unwrap().len();
        let file = OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(length - 3).unwrap();
        model.remove([4_u8].as_slice());
        (model, *generation, path.clone())
    }

    #[test]
    fn a_record_a_crash_cut_short_at_the_end_of_the_journal_is_dropped() {
        let (dir, db) = database();
        let never = never_checkpointing();
        let (mut model, _, path) = journal_cut_short(&dir, &db);
        let tree = journaled(&dir, &db, never);
        assert_reads(&tree, &model);
        // The file is cut back to its whole records, and later writes follow them.
        let record = (FRAME_BYTES + 1 + 4 + 1 + 4 + 40) as u64;
        assert_eq!(fs::metadata(&path).unwrap().len(), 4 * record);
        tree.insert([9], vec![9; 40]).unwrap();
        model.insert(vec![9], vec![9; 40]);
        tree.flusher().flush().unwrap();
        tree.insert(b"pending", b"unflushed").unwrap();
        drop(tree);
        assert_reads(&journaled(&dir, &db, never), &model);
    }

    #[test]
    fn a_checkpoint_makes_the_next_journal_file_ahead_and_the_flusher_writes_into_it() {
        let (dir, db) = database();
        let tree = journaled(&dir, &db, small_limits());
        let flusher = tree.flusher();
        let spares =
            |tree: &JournaledTree| -> Vec<u64> { tree.shared.spares().keys().copied().collect() };
        let generations = |files: Vec<(u64, PathBuf)>| -> Vec<u64> {
            files
                .into_iter()
                .map(|(generation, _)| generation)
                .collect()
        };
        // Files 0 and 1 are made as the tree opens, before any write: the flusher's first
        // write goes into file 0 as made.
        assert_eq!(spares(&tree), [0, 1]);
        assert_eq!(
            generations(journal_files(&journal_dir(&dir)).unwrap()),
            [0, 1]
        );
        // 16 keys freeze generation 0; its checkpoint makes file 2 while the flusher goes on
        // with file 1.
        for key in 0..16 {
            tree.insert([key], vec![key; 8]).unwrap();
        }
        flusher.flush().unwrap();
        tree.settle();
        assert_eq!(tree.checkpoints_done(), 1);
        assert_eq!(spares(&tree), [1, 2]);
        assert_eq!(
            generations(journal_files(&journal_dir(&dir)).unwrap()),
            [1, 2]
        );
        assert_eq!(files_holding_records(&journal_dir(&dir)), []);
        // Generation 1 fills and freezes, then a write goes to generation 2: the flusher
        // takes both files as they were made, and the checkpoint makes file 3.
        for key in 16..32 {
            tree.insert([key], vec![key; 8]).unwrap();
        }
        flusher.flush().unwrap();
        tree.insert([200], vec![1; 8]).unwrap();
        flusher.flush().unwrap();
        tree.settle();
        assert_eq!(spares(&tree), [3]);
        let holding = generations(files_holding_records(&journal_dir(&dir)));
        assert_eq!(holding, [2], "file 2 holds the last write");
        // Closing empties the journal, the file made ahead included.
        drop(tree);
        assert_eq!(journal_files(&journal_dir(&dir)).unwrap(), []);
    }

    #[test]
    fn an_empty_journal_file_made_ahead_leaves_the_file_before_it_the_last() {
        let (dir, db) = database();
        let never = never_checkpointing();
        // A crash cut the last record short, after the next file had been made ahead.
        let (mut model, generation, _) = journal_cut_short(&dir, &db);
        let spare = file_path(&journal_dir(&dir), generation + 1);
        File::create(&spare).unwrap();
        let tree = journaled(&dir, &db, never);
        assert_reads(&tree, &model);
        let holding: Vec<u64> = files_holding_records(&journal_dir(&dir))
            .into_iter()
            .map(|(generation, _)| generation)
            .collect();
        assert_eq!(
            holding,
            [generation],
            "the cut-short file, cut back, ends the journal"
        );
        tree.insert([9], vec![9; 40]).unwrap();
        model.insert(vec![9], vec![9; 40]);
        tree.flusher().flush().unwrap();
        drop(tree);
        assert_reads(&journaled(&dir, &db, never), &model);
    }

    /// Writes 16 distinct keys and flushes, which freezes them for a checkpoint with
    /// [`small_limits`]; then writes `then` other keys, and key `[255]` again and again,
    /// `every` apart, until `until` holds or `for_at_most` passes. Returns whether `until`
    /// held.
    fn write_on(
        tree: &JournaledTree,
        then: u8,
        every: Duration,
        for_at_most: Duration,
        until: impl Fn(&JournaledTree) -> bool,
    ) -> bool {
        for key in 0..16 {
            tree.insert([key], vec![key; 8]).unwrap();
        }
        tree.flusher().flush().unwrap();
        for key in 16..16 + then {
            tree.insert([key], vec![key; 8]).unwrap();
        }
        let started = Instant::now();
        while started.elapsed() < for_at_most {
            if until(tree) {
                return true;
            }
            tree.insert([255], vec![0; 8]).unwrap();
            thread::sleep(every);
        }
        until(tree)
    }

    #[test]
    fn a_checkpoint_waits_while_writes_keep_coming_and_goes_ahead_once_they_pause() {
        let (dir, db) = database();
        let limits = Limits {
            defer_quiet: Duration::from_millis(500),
            defer_at_most: Duration::from_secs(600),
            ..small_limits()
        };
        let tree = journaled(&dir, &db, limits);
        let checkpointed = |tree: &JournaledTree| tree.checkpoints_done() > 0;
        let early = write_on(
            &tree,
            0,
            Duration::from_millis(10),
            Duration::from_millis(700),
            checkpointed,
        );
        assert!(!early, "no checkpoint while writes come every 10 ms");
        let started = Instant::now();
        tree.settle();
        assert_eq!(tree.checkpoints_done(), 1);
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    /// Whether a checkpoint goes ahead while writes keep coming every 5 ms, with `limits`
    /// and `then` keys written after the frozen ones ([`write_on`]).
    fn checkpoints_while_writes_keep_coming(limits: Limits, then: u8) -> bool {
        let (dir, db) = database();
        let tree = journaled(&dir, &db, limits);
        write_on(
            &tree,
            then,
            Duration::from_millis(5),
            Duration::from_secs(60),
            |tree| tree.checkpoints_done() > 0,
        )
    }

    #[test]
    fn a_checkpoint_is_put_off_no_longer_than_its_limit() {
        let limits = Limits {
            defer_quiet: Duration::from_secs(600),
            defer_at_most: Duration::from_millis(100),
            ..small_limits()
        };
        assert!(checkpoints_while_writes_keep_coming(limits, 0));
    }

    #[test]
    fn a_checkpoint_is_not_put_off_once_the_writes_waiting_fill_its_windows() {
        let limits = Limits {
            defer_quiet: Duration::from_millis(50),
            defer_at_most: Duration::from_secs(600),
            ..small_limits()
        };
        // 16 keys are frozen, and the next 64 fill 4 windows of 16.
        assert!(checkpoints_while_writes_keep_coming(
            limits,
            16 * DEFER_WINDOWS as u8
        ));
    }

    #[test]
    fn checkpoint_now_moves_every_write_into_the_tree_and_empties_the_journal() {
        let (dir, db) = database();
        let limits = Limits {
            defer_quiet: Duration::from_secs(600),
            defer_at_most: Duration::from_secs(600),
            ..never_checkpointing()
        };
        let mut writes = Writes(0x5eed_1e55_c0ff_ee00);
        let mut model = Model::new();
        let tree = journaled(&dir, &db, limits);
        for _ in 0..300 {
            writes.write(&tree, &mut model);
        }
        let flusher = tree.flusher();
        tree.checkpoint_now(|| flusher.flush()).unwrap();
        let stored = stored(&db);
        assert_eq!(stored, model);
        assert_eq!(files_holding_records(&journal_dir(&dir)), []);
        assert_reads(&tree, &model);
    }

    #[test]
    fn a_checkpoint_counts_as_behind_once_the_writes_since_fill_that_many_windows() {
        // A limit of `usize::MAX` turns its trigger off, however many windows are asked for.
        let limits = Limits {
            checkpoint_keys: 4,
            checkpoint_bytes: usize::MAX,
            ..small_limits()
        };
        let mut overlay = Overlay {
            active: BTreeMap::new(),
            active_bytes: 0,
            active_since: None,
            frozen: None,
            pending: Vec::new(),
            generation: 0,
            writes: 0,
            hurried: 0,
            limits,
        };
        for key in 0..8u8 {
            overlay
                .active
                .insert(IVec::from(&[key]), Some(IVec::from(&[key])));
            assert_eq!(overlay.holds(1), key >= 3, "{} keys", key + 1);
            assert_eq!(overlay.holds(2), key >= 7, "{} keys", key + 1);
            assert!(!overlay.holds(usize::MAX), "{} keys", key + 1);
        }
    }

    #[test]
    fn a_damaged_record_or_one_cut_short_before_the_last_journal_file_is_corrupt() {
        let (dir, db) = database();
        let never = never_checkpointing();
        // Each opening writes a file of its own after those it read back.
        journal_of(&dir, &db, never, 5);
        journal_of(&dir, &db, never, 5);
        let files = journal_files(&journal_dir(&dir)).unwrap();
        assert_eq!(files.len(), 2, "two journal files: {files:?}");
        let (_, first) = &files[0];
        let mut bytes = fs::read(first).unwrap();
        let length = bytes.len();
        bytes[length - 1] ^= 0xff;
        fs::write(first, &bytes).unwrap();
        let open = || {
            let tree = db.open_tree("records").unwrap();
            JournaledTree::open(tree, &journal_dir(&dir), never)
        };
        let corrupt = |opened: Result<JournaledTree, StoreError>, expected: &str| match opened {
            Err(StoreError::Corrupt { what, detail }) => {
                assert!(what.contains(&first.display().to_string()), "{what}");
                assert!(detail.contains(expected), "{detail}");
            }
            other => panic!("expected a corrupt journal record, got {other:?}"),
        };
        corrupt(open(), "checksum does not match");
        // Cut short, it is as corrupt: later files hold later writes.
        fs::write(first, &bytes[..length - 3]).unwrap();
        corrupt(open(), "cut short, and later files follow it");
    }
}
