//! Jobs in sled: creating and committing them, with their events and indexes, and reading them
//! back.
//!
//! Every record about jobs lives in one tree, the kinds told apart by the tag that starts each
//! key ([`keys::tag`]). The heart of it is each job's *head record*: the job as of its latest
//! commit, with the events committed since its last *chunk*. A commit rewrites the head in a
//! single write, atomic by itself; sled's batches and transactions would serialize every
//! writer on a global lock and write the log once per commit, which costs an order of magnitude
//! more. Writes go through the tree's journal ([`super::journal`]), which replays them in order
//! after a crash, so what a crash leaves is what some prefix of the writes left. Rewriting a
//! key is also far cheaper in sled than adding one, so events gather in the head until they
//! pass [`CHUNK_BYTES`]; the commit that passes it first writes them out as a chunk of their
//! own, keyed by its last event, and starts the head's events afresh. A crash between the two
//! writes leaves the same events in the chunk and in the head, and readers take each event
//! once.
//!
//! What is large and written once stays out of the head: an input over [`INPUT_APART_BYTES`]
//! is a record of its own, written when the job is created, and so is each fan-out's list,
//! while its tasks are written as [`super::fan_outs`] says. The head then holds the job's
//! outline ([`Job::outline`]).
//!
//! The indexes are few, because each costs a write: the metadata entries (which also list
//! every job, in creation order), jobs by workflow, idempotency keys, the *unfinished* entries
//! (which say the state of every job not finished, so that lists of pending, running or paused
//! jobs need no index of their own), and jobs by state for finished jobs only. They are plain
//! inserts around the head, in an order that keeps them safe to trust after a crash
//! between any two writes: an entry that says a job exists or is in a state is written before
//! the head that makes it so, and an entry that stops being true is removed or
//! narrowed after. While a job moves between unfinished states its entry names both. So an
//! index may point at a job that was never created or has moved on, and readers check the job
//! itself; it never misses a job that exists.
//!
//! The checks a write makes before it (the job's previous state, the events already stored)
//! read the tree without a lock. That is sound because the writes of one job never race: the
//! engine commits a job only under that job's lock, and a creation holds [`CreationLocks`]
//! for its job id and its idempotency key. For the same reason the store can remember each
//! unfinished job's head ([`KnownHeads`]) instead of reading it back before the next commit.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;
use sled::IVec;
use weft_domain::job::Outline;
use weft_domain::{Event, Job, JobId, JobState};

use super::SledStore;
use super::codec::{decode, decode_versioned, encode};
use super::fan_outs::FanOutsWritten;
use super::journal::JournaledTree;
use super::keys::{self, tag};
use super::records::{
    EMPTY_ARRAY, HeadSections, decode_events, describe_chunk, describe_head, describe_record,
    encode_chunk, encode_events, encode_head, join_arrays, split_commit, split_head,
};
use crate::error::StoreError;
use crate::format::check_written;
use crate::job::{
    CreateJob, JobMeta, JobPage, JobQuery, check_events, duplicate_job, reopened_job,
};

/// Events gathered in a head beyond this are written out as a chunk.
const CHUNK_BYTES: usize = 4 * 1024;

/// A job input longer than this, in JSON bytes, is written once, in a record of its own,
/// rather than with every commit of the job. Below it, the record would cost more (sled adds
/// a key far more slowly than it rewrites one) than rewriting the input does.
const INPUT_APART_BYTES: usize = 4 * 1024;

/// How the job's head holds its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputPlace {
    /// In the head, with the rest of the job.
    Inline,
    /// In its own record ([`keys::tag::INPUT`]); the head's is `null`.
    Apart,
}

impl InputPlace {
    fn outline(self, job: &Job) -> Outline<'_> {
        match self {
            InputPlace::Inline => job.outline(),
            InputPlace::Apart => job.outline_without_input(),
        }
    }
}

/// Events JSON longer than this is not remembered in [`KnownHeads`]: the next commit reads
/// it back instead, so that a few huge commits cannot hold much memory.
const MAX_REMEMBERED_EVENTS_BYTES: usize = 16 * 1024;

/// What a commit needs of the job's head record: the last event stored, the events in the
/// head (to add to them), and the job's state in it.
#[derive(Debug)]
struct KnownHead {
    /// Sequence number of the job's last stored event.
    last: u64,
    /// The events in the head, as stored: a JSON array.
    events_json: Vec<u8>,
    /// The job's state in it; `None` when the job had finished.
    state: Option<JobState>,
    /// The job's fan-outs as it left them.
    fan_outs: FanOutsWritten,
    /// Where the job's input is.
    input: InputPlace,
}

/// The head of each unfinished job this store wrote. A job's entry is taken out for
/// its next commit and put back once that commit's writes all succeeded, so after a failed
/// write the next commit reads the tree instead of trusting a stale entry.
#[derive(Debug, Default)]
pub(super) struct KnownHeads(Mutex<HashMap<JobId, KnownHead>>);

impl KnownHeads {
    fn take(&self, id: JobId) -> Option<KnownHead> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }

    /// Remembers `head` for an unfinished job; forgets a finished one.
    fn put(&self, id: JobId, head: KnownHead) {
        if head.state.is_some_and(|s| !s.is_terminal())
            && head.events_json.len() <= MAX_REMEMBERED_EVENTS_BYTES
        {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, head);
        }
    }
}

/// Stripes of [`CreationLocks`]: enough that concurrent creations rarely share one.
const CREATION_STRIPES: usize = 64;

/// What makes a creation's checks and writes one step: its job id must still be free, and
/// its idempotency key still unused. Only creations of the same id or key exclude each
/// other, each holding the stripes their id and key hash to. With one lock for every
/// creation, a creation holding it was now and then preempted by the OS, and every other
/// creation then put its runtime thread to sleep: traced during `bench api` with 32 clients,
/// the API's threads blocked on it about 500 times a second.
#[derive(Debug)]
pub(super) struct CreationLocks {
    stripes: [Mutex<()>; CREATION_STRIPES],
    hasher: RandomState,
}

impl Default for CreationLocks {
    fn default() -> Self {
        CreationLocks {
            stripes: std::array::from_fn(|_| Mutex::new(())),
            hasher: RandomState::new(),
        }
    }
}

/// The stripes a creation holds: one, or two taken in the order of their index, so that no
/// two creations each hold a stripe the other waits for.
type CreationGuards<'a> = (MutexGuard<'a, ()>, Option<MutexGuard<'a, ()>>);

impl CreationLocks {
    fn stripe(&self, bytes: &[u8]) -> usize {
        (self.hasher.hash_one(bytes) % CREATION_STRIPES as u64) as usize
    }

    /// Holds off every other creation of job `id` or with the idempotency entry `key`.
    fn lock(&self, id: JobId, key: Option<&[u8]>) -> CreationGuards<'_> {
        let by_id = self.stripe(&id.to_bytes());
        let by_key = key.map(|key| self.stripe(key)).filter(|s| *s != by_id);
        let lock = |stripe: usize| {
            self.stripes[stripe]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        match by_key {
            None => (lock(by_id), None),
            Some(by_key) => {
                let first = lock(by_id.min(by_key));
                (first, Some(lock(by_id.max(by_key))))
            }
        }
    }
}

/// The newest job id with a metadata entry. A creation looks for an existing job of its id
/// only when the id is not newer: job ids are time-ordered, so almost every new job is newer
/// than all others, and the lookup (a miss that walks the tree) cost 2.5% of the CPU of a
/// saturated `bench api` run. Sound because an entry is written before its job's head, and
/// a creation records its id here before it lets go of the id's creation stripe, which any
/// creation of the same id must take next.
#[derive(Debug)]
pub(super) struct NewestJob(Mutex<Option<JobId>>);

impl NewestJob {
    /// The newest id among the metadata entries of `jobs`.
    pub(super) fn read(jobs: &JournaledTree) -> Result<NewestJob, StoreError> {
        let newest = match jobs.scan_prefix_rev([tag::META]).keys().next() {
            Some(key) => Some(keys::job_id(&key?[1..])?),
            None => None,
        };
        Ok(NewestJob(Mutex::new(newest)))
    }

    fn lock(&self) -> MutexGuard<'_, Option<JobId>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a job of id `id` may exist: it is not newer than every id stored.
    fn may_exist(&self, id: JobId) -> bool {
        self.lock().is_some_and(|newest| id <= newest)
    }

    /// Records that job `id` has a metadata entry.
    fn stored(&self, id: JobId) {
        let mut newest = self.lock();
        if newest.is_none_or(|n| n < id) {
            *newest = Some(id);
        }
    }
}

/// The JSON of the states in an `unfinished` entry: the job's, or, while it moves, both.
fn encode_states(states: &[JobState]) -> Result<Vec<u8>, StoreError> {
    encode(&states, || "job states".to_owned())
}

/// The states an `unfinished` entry names.
fn decode_states(bytes: &[u8], id: JobId) -> Result<Vec<JobState>, StoreError> {
    decode(bytes, || format!("unfinished entry of job {id}"))
}

impl SledStore {
    /// A job's head record.
    fn head(&self, id: JobId) -> Result<Option<IVec>, StoreError> {
        self.trees.jobs.get(keys::head(id))
    }

    /// Whether the job exists: whether it has a head.
    fn has_head(&self, id: JobId) -> Result<bool, StoreError> {
        self.trees.jobs.contains_key(keys::head(id))
    }

    /// The job in its head record.
    fn job_in_head(&self, bytes: &[u8], id: JobId) -> Result<Job, StoreError> {
        let head = split_head(bytes, || describe_head(id))?;
        Ok(self.read_job(id, &head)?.0)
    }

    /// The job whose head is `head`, whole, with what a commit on top of it needs to know:
    /// how the store keeps its fan-outs and its input.
    fn read_job(
        &self,
        id: JobId,
        head: &HeadSections<'_>,
    ) -> Result<(Job, FanOutsWritten, InputPlace), StoreError> {
        let (mut job, fan_outs) = self.assemble_job(id, head.tasks, head.outline)?;
        if !job.input().is_null() {
            return Ok((job, fan_outs, InputPlace::Inline));
        }
        let what = || format!("input of job {id}");
        let input: Value = match self.trees.jobs.get(keys::tagged_job(tag::INPUT, id))? {
            Some(bytes) => decode(&bytes, what)?,
            None => return Err(StoreError::corrupt(what(), "the record is missing")),
        };
        job.restore_input(Arc::new(input))
            .map_err(|e| StoreError::corrupt(what(), e))?;
        Ok((job, fan_outs, InputPlace::Apart))
    }

    /// The job's head, read from the tree. `job` is the job about to be committed on top of
    /// it.
    fn read_head(&self, job: &Job) -> Result<KnownHead, StoreError> {
        let id = job.id();
        // A job without a head was never created, whatever an index says.
        let Some(bytes) = self.head(id)? else {
            return Err(StoreError::NotFound);
        };
        let head = split_head(&bytes, || describe_head(id))?;
        let events_json = head.events;
        let last = self.last_stored_sequence(id, events_json)?;
        let (stored, fan_outs, input) = self.read_job(id, &head)?;
        // The job is unfinished while it has an unfinished entry, which names its state; if
        // a crash cut a move short it names two, and the stored job says which holds.
        let state = match self.trees.jobs.get(keys::tagged_job(tag::UNFINISHED, id))? {
            Some(entry) => match decode_states(&entry, id)?.as_slice() {
                [state] => Some(*state),
                _ => Some(stored.state()),
            },
            None if !job.state().is_terminal() => return Err(reopened_job(job)),
            None => None,
        };
        Ok(KnownHead {
            last,
            events_json: events_json.to_vec(),
            state,
            fan_outs,
            input,
        })
    }

    /// The sequence number of the job's last stored event: the last in its head, or else the
    /// last of its chunks, or 0.
    fn last_stored_sequence(&self, id: JobId, head_events: &[u8]) -> Result<u64, StoreError> {
        let events = decode_events(head_events, id, || {
            format!("events of {}", describe_head(id))
        })?;
        if let Some(last) = events.last() {
            return Ok(last.sequence);
        }
        let chunks = keys::commit(id, 0)..keys::head(id);
        match self.trees.jobs.range_rev(chunks).next().transpose()? {
            Some((key, _)) => keys::commit_last(&key),
            None => Ok(0),
        }
    }

    /// Writes `job` with those of `events` not yet stored into the job's head, writing the
    /// head's events out as a chunk first when they have grown past [`CHUNK_BYTES`]. Events
    /// already stored (a retried commit) must be equal to the new ones. Returns the new head.
    fn write_commit(
        &self,
        job: &Job,
        events: &[Event],
        previous: Option<KnownHead>,
        input: InputPlace,
    ) -> Result<KnownHead, StoreError> {
        let id = job.id();
        let tree = &self.trees.jobs;
        let stored_last = previous.as_ref().map_or(0, |p| p.last);
        let split = events.partition_point(|e| e.sequence <= stored_last);
        let (again, new) = events.split_at(split);
        if let Some(first) = again.first() {
            let count = (stored_last - first.sequence + 1) as usize;
            let stored = self.job_events(id, first.sequence - 1, count)?;
            for event in again {
                if stored.iter().find(|s| s.sequence == event.sequence) != Some(event) {
                    return Err(StoreError::Conflict(format!(
                        "job {id} already has another event {}",
                        event.sequence
                    )));
                }
            }
        }
        let (previous_events, previous_fan_outs) = match previous {
            Some(p) => (Some((p.last, p.events_json)), p.fan_outs),
            None => (None, FanOutsWritten::default()),
        };
        let (last, events_json) = match (new.last(), previous_events) {
            // Nothing new to record: the job replaces the one in the head.
            (None, previous) => (
                stored_last,
                previous.map_or_else(|| EMPTY_ARRAY.to_vec(), |(_, json)| json),
            ),
            (Some(last), previous) => {
                let new_json = encode_events(new, || format!("events of {}", describe_head(id)))?;
                let events_json = match previous {
                    Some((_, json)) if json.as_slice() == EMPTY_ARRAY => new_json,
                    Some((last, json)) if json.len() + new_json.len() > CHUNK_BYTES => {
                        let chunk = encode_chunk(&json, || describe_chunk(id, last))?;
                        tree.insert(keys::commit(id, last), chunk)?;
                        new_json
                    }
                    Some((_, json)) => join_arrays(&json, &new_json),
                    None => new_json,
                };
                (last.sequence, events_json)
            }
        };
        let (tasks_json, fan_outs) = self.write_fan_outs(job, previous_fan_outs)?;
        let outline = input.outline(job);
        let record = encode_head(&events_json, &tasks_json, outline, || describe_head(id))?;
        tree.insert(keys::head(id), record)?;
        Ok(KnownHead {
            last,
            events_json,
            state: Some(job.state()),
            fan_outs,
            input,
        })
    }

    pub(super) fn create_job_records(
        &self,
        job: &Job,
        meta: &JobMeta,
        events: &[Event],
    ) -> Result<CreateJob, StoreError> {
        check_written("job metadata", meta.format_version)?;
        check_events(job, events)?;
        let id = job.id();
        let meta_bytes = encode(meta, || format!("metadata of job {id}"))?;
        let state = job.state();
        let idempotency = meta
            .idempotency_key
            .as_ref()
            .map(|key| keys::idempotency(job.workflow(), key));
        let tree = &self.trees.jobs;
        let _creating = self.creating.lock(id, idempotency.as_deref());
        if let Some(key) = &idempotency
            && let Some(existing) = tree.get(key)?
        {
            let existing = keys::job_id(&existing)?;
            // An entry whose job is missing was left by a creation a crash interrupted.
            if self.has_head(existing)? {
                return Ok(CreateJob::Existing(existing));
            }
        }
        if self.newest.may_exist(id) && self.has_head(id)? {
            return Err(duplicate_job(id));
        }
        tree.insert(keys::tagged_job(tag::META, id), meta_bytes)?;
        self.newest.stored(id);
        tree.insert(keys::workflow_job(job.workflow(), id), &[])?;
        if state.is_terminal() {
            tree.insert(keys::state_job(state, id), &[])?;
        } else {
            tree.insert(
                keys::tagged_job(tag::UNFINISHED, id),
                encode_states(&[state])?,
            )?;
        }
        if let Some(key) = &idempotency {
            tree.insert(key.as_slice(), &id.to_bytes())?;
        }
        let input_json = encode(job.input(), || format!("input of job {id}"))?;
        let input = if input_json.len() > INPUT_APART_BYTES {
            tree.insert(keys::tagged_job(tag::INPUT, id), input_json)?;
            InputPlace::Apart
        } else {
            InputPlace::Inline
        };
        let head = self.write_commit(job, events, None, input)?;
        self.heads.put(id, head);
        Ok(CreateJob::Created)
    }

    pub(super) fn commit_job_records(&self, job: &Job, events: &[Event]) -> Result<(), StoreError> {
        check_events(job, events)?;
        let id = job.id();
        let state = job.state();
        let tree = &self.trees.jobs;
        let unfinished_key = keys::tagged_job(tag::UNFINISHED, id);
        let previous = match self.heads.take(id) {
            Some(head) => head,
            None => self.read_head(job)?,
        };
        // The state the job leaves, when it was unfinished and moves.
        let moved_from = previous.state.filter(|previous| *previous != state);
        match moved_from {
            Some(_) if state.is_terminal() => tree.insert(keys::state_job(state, id), &[])?,
            Some(from) => tree.insert(unfinished_key.as_slice(), encode_states(&[from, state])?)?,
            None => {}
        }
        let input = previous.input;
        let head = self.write_commit(job, events, Some(previous), input)?;
        match moved_from {
            Some(_) if state.is_terminal() => tree.remove(unfinished_key)?,
            Some(_) => tree.insert(unfinished_key, encode_states(&[state])?)?,
            None => {}
        }
        self.heads.put(id, head);
        Ok(())
    }

    pub(super) fn job_record(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.head(id)?
            .map(|bytes| self.job_in_head(&bytes, id))
            .transpose()
    }

    pub(super) fn job_meta_record(&self, id: JobId) -> Result<Option<JobMeta>, StoreError> {
        self.trees
            .jobs
            .get(keys::tagged_job(tag::META, id))?
            .map(|bytes| decode_versioned(&bytes, || format!("metadata of job {id}")))
            .transpose()
    }

    /// The job an index entry points to, unless a crash left the entry without its job.
    fn indexed_job(&self, key: &[u8]) -> Result<Option<Job>, StoreError> {
        self.job_record(keys::trailing_job_id(key)?)
    }

    pub(super) fn job_page(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        let prefix = match (query.state, &query.workflow) {
            (Some(state), _) if state.is_terminal() => keys::state_prefix(state),
            // Unfinished jobs in that state, told by their entries.
            (Some(_), _) => vec![tag::UNFINISHED],
            (None, Some(workflow)) => keys::tagged_name(tag::BY_WORKFLOW, workflow.as_str()),
            // Every job has metadata.
            (None, None) => vec![tag::META],
        };
        let tree = &self.trees.jobs;
        let entries = match query.cursor {
            Some(cursor) => {
                let end = [prefix.as_slice(), &cursor.to_bytes()].concat();
                tree.range_rev(prefix..end)
            }
            None => tree.scan_prefix_rev(prefix),
        };
        let unfinished_in = query.state.filter(|state| !state.is_terminal());
        let candidates = entries.filter_map(|entry| {
            entry
                .and_then(|(key, value)| match unfinished_in {
                    Some(state) => {
                        let id = keys::trailing_job_id(&key)?;
                        if decode_states(&value, id)?.contains(&state) {
                            self.job_record(id)
                        } else {
                            Ok(None)
                        }
                    }
                    None => self.indexed_job(&key),
                })
                .transpose()
        });
        let matching = candidates.filter(|job| job.as_ref().map_or(true, |job| query.matches(job)));
        JobPage::collect(matching, query.limit)
    }

    pub(super) fn unfinished_job_records(&self) -> Result<Vec<(Job, JobMeta)>, StoreError> {
        let mut unfinished = Vec::new();
        for key in self.trees.jobs.scan_prefix([tag::UNFINISHED]).keys() {
            let Some(job) = self.indexed_job(&key?)? else {
                continue;
            };
            if job.state().is_terminal() {
                continue;
            }
            let meta = self.job_meta_record(job.id())?.ok_or_else(|| {
                StoreError::corrupt(format!("job {}", job.id()), "metadata is missing")
            })?;
            unfinished.push((job, meta));
        }
        Ok(unfinished)
    }

    pub(super) fn job_events(
        &self,
        id: JobId,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let Some(first) = after_sequence.checked_add(1) else {
            return Ok(Vec::new());
        };
        // The first chunk whose last event is at or after `first` holds `first`; the head
        // comes last. A crash may have left events both in a chunk and in the head (or in two
        // chunks): each is taken once.
        let records = keys::commit(id, first)..=keys::head(id);
        let mut next = first;
        let mut events = Vec::new();
        for entry in self.trees.jobs.range(records) {
            let (key, bytes) = entry?;
            let what = || describe_record(id, &key);
            let (events_json, _) = split_commit(&bytes, what)?;
            let record = decode_events(events_json, id, || format!("events of {}", what()))?;
            for event in record {
                if event.sequence >= next {
                    next = event.sequence + 1;
                    events.push(event);
                }
            }
            if events.len() >= limit {
                events.truncate(limit);
                break;
            }
        }
        Ok(events)
    }
}
