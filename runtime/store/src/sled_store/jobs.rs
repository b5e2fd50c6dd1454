//! Jobs in sled: creating and committing them, with their events and indexes, and reading them
//! back.
//!
//! Every record about jobs lives in one tree, the kinds told apart by the tag that starts each
//! key ([`keys::tag`]). The heart of it is the *commit record*: one per commit of a job, keyed
//! by the job and the sequence number of the commit's last event, holding that commit's events
//! and the job as it stands after it. A commit is therefore a single sled insert, which sled
//! makes atomic by itself; sled's batches and transactions would serialize every writer on a
//! global lock and write the log once per commit, which costs an order of magnitude more. The
//! job as of an older commit is dropped once a newer commit is in (only its events stay), so
//! the latest commit record is the job.
//!
//! The indexes are few, because each costs a write: the metadata entries (which also list
//! every job, in creation order), jobs by workflow, idempotency keys, the *unfinished* entries
//! (which say the state of every job not finished, so that lists of pending, running or paused
//! jobs need no index of their own), and jobs by state for finished jobs only. They are plain
//! inserts around the commit record, in an order that keeps them safe to trust after a crash
//! between any two writes: an entry that says a job exists or is in a state is written before
//! the commit record that makes it so, and an entry that stops being true is removed or
//! narrowed after. While a job moves between unfinished states its entry names both. So an
//! index may point at a job that was never created or has moved on, and readers check the job
//! itself; it never misses a job that exists.
//!
//! The checks a write makes before it (the job's previous state, the events already stored)
//! read the tree without a lock. That is sound because the writes of one job never race: the
//! engine commits a job only under that job's lock, and creations are serialized by
//! [`SledStore`]'s creation lock. For the same reason the store can remember each unfinished
//! job's latest commit ([`LatestCommits`]) instead of reading it back before the next one.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use sled::IVec;
use weft_domain::{Event, Job, JobId, JobState};

use super::codec::{decode, decode_versioned, encode};
use super::keys::{self, tag};
use super::{SledStore, lock};
use crate::error::StoreError;
use crate::format::check_written;
use crate::job::{
    CreateJob, JobMeta, JobPage, JobQuery, check_events, duplicate_job, reopened_job,
};

/// Length of the header of a commit record: the length of its events' JSON, little-endian.
const HEADER_LEN: usize = 4;

fn describe_commit(id: JobId, last: u64) -> String {
    format!("commit {last} of job {id}")
}

/// A commit record's bytes: the header, the events as a JSON array, then the job as JSON, or
/// nothing once a newer commit holds the job.
pub(super) fn encode_commit(
    events_json: &[u8],
    job: Option<&Job>,
    what: impl Fn() -> String,
) -> Result<Vec<u8>, StoreError> {
    let length = u32::try_from(events_json.len())
        .map_err(|_| StoreError::Invalid(format!("{} has too many events", what())))?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + events_json.len() + 2048);
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(events_json);
    if let Some(job) = job {
        serde_json::to_writer(&mut bytes, job)
            .map_err(|e| StoreError::Invalid(format!("cannot encode {}: {e}", what())))?;
    }
    Ok(bytes)
}

/// A commit record split into its events' JSON and its job's JSON (empty when dropped).
pub(super) fn split_commit(
    bytes: &[u8],
    what: impl Fn() -> String,
) -> Result<(&[u8], &[u8]), StoreError> {
    let malformed = || StoreError::corrupt(what(), "the record is truncated");
    let header = bytes.get(..HEADER_LEN).ok_or_else(malformed)?;
    let length = u32::from_le_bytes(header.try_into().map_err(|_| malformed())?) as usize;
    let rest = &bytes[HEADER_LEN..];
    if rest.len() < length {
        return Err(malformed());
    }
    Ok(rest.split_at(length))
}

/// Events JSON longer than this is not remembered in [`LatestCommits`]: the next commit reads
/// it back instead, so that a few huge commits cannot hold much memory.
const MAX_REMEMBERED_EVENTS_BYTES: usize = 16 * 1024;

/// What a commit needs of the job's latest commit record: its key, its events (to rewrite it
/// without the job), and the job's state in it.
#[derive(Debug)]
struct Latest {
    /// Sequence number of its last event: its key.
    last: u64,
    /// Its events, as stored.
    events_json: Vec<u8>,
    /// The job's state in it; `None` when the job had finished.
    state: Option<JobState>,
}

/// The latest commit of each unfinished job this store wrote. A job's entry is taken out for
/// its next commit and put back once that commit's writes all succeeded, so after a failed
/// write the next commit reads the tree instead of trusting a stale entry.
#[derive(Debug, Default)]
pub(super) struct LatestCommits(Mutex<HashMap<JobId, Latest>>);

impl LatestCommits {
    fn take(&self, id: JobId) -> Option<Latest> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }

    /// Remembers `latest` for an unfinished job; forgets a finished one.
    fn put(&self, id: JobId, latest: Latest) {
        if latest.state.is_some_and(|s| !s.is_terminal())
            && latest.events_json.len() <= MAX_REMEMBERED_EVENTS_BYTES
        {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, latest);
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
    /// The latest commit record of a job, with its key.
    fn latest_commit(&self, id: JobId) -> Result<Option<(IVec, IVec)>, StoreError> {
        let commits = keys::commit(id, 0)..=keys::commit(id, u64::MAX);
        Ok(self.trees.jobs.range(commits).next_back().transpose()?)
    }

    /// The job in a commit record.
    fn job_in_commit(key: &[u8], bytes: &[u8], id: JobId) -> Result<Job, StoreError> {
        let last = keys::commit_last(key)?;
        let (_, job) = split_commit(bytes, || describe_commit(id, last))?;
        if job.is_empty() {
            return Err(StoreError::corrupt(
                format!("job {id}"),
                "its latest commit does not hold the job",
            ));
        }
        decode(job, || format!("job {id}"))
    }

    /// The job's latest commit, read from the tree. `job` is the job about to be committed
    /// on top of it.
    fn read_latest(&self, job: &Job) -> Result<Latest, StoreError> {
        let id = job.id();
        // A job without a commit record was never created, whatever an index says.
        let Some((key, bytes)) = self.latest_commit(id)? else {
            return Err(StoreError::NotFound);
        };
        let last = keys::commit_last(&key)?;
        let (events_json, _) = split_commit(&bytes, || describe_commit(id, last))?;
        // The job is unfinished while it has an unfinished entry, which names its state; if
        // a crash cut a move short it names two, and the stored job says which holds.
        let state = match self.trees.jobs.get(keys::tagged_job(tag::UNFINISHED, id))? {
            Some(entry) => match decode_states(&entry, id)?.as_slice() {
                [state] => Some(*state),
                _ => Some(Self::job_in_commit(&key, &bytes, id)?.state()),
            },
            None if !job.state().is_terminal() => return Err(reopened_job(job)),
            None => None,
        };
        Ok(Latest {
            last,
            events_json: events_json.to_vec(),
            state,
        })
    }

    /// Writes `job` with those of `events` not yet stored, as one commit record, and drops the
    /// job from the previous commit record. Events already stored (a retried commit) must be
    /// equal to the new ones. Returns the new latest commit.
    fn write_commit(
        &self,
        job: &Job,
        events: &[Event],
        previous: Option<Latest>,
    ) -> Result<Latest, StoreError> {
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
        let state = Some(job.state());
        let Some(last) = new.last() else {
            // Nothing new to record: the job replaces the one in the latest commit.
            let what = || describe_commit(id, stored_last);
            let events_json = previous.map_or_else(|| b"[]".to_vec(), |p| p.events_json);
            let record = encode_commit(&events_json, Some(job), what)?;
            tree.insert(keys::commit(id, stored_last), record)?;
            return Ok(Latest {
                last: stored_last,
                events_json,
                state,
            });
        };
        let what = || describe_commit(id, last.sequence);
        let events_json = encode(&new, what)?;
        let record = encode_commit(&events_json, Some(job), what)?;
        tree.insert(keys::commit(id, last.sequence), record)?;
        if let Some(previous) = previous {
            let what = || describe_commit(id, previous.last);
            let events_only = encode_commit(&previous.events_json, None, what)?;
            tree.insert(keys::commit(id, previous.last), events_only)?;
        }
        Ok(Latest {
            last: last.sequence,
            events_json,
            state,
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
        let _creating = lock(&self.creating);
        if let Some(key) = &idempotency
            && let Some(existing) = tree.get(key)?
        {
            let existing = keys::job_id(&existing)?;
            // An entry whose job is missing was left by a creation a crash interrupted.
            if self.latest_commit(existing)?.is_some() {
                return Ok(CreateJob::Existing(existing));
            }
        }
        if self.latest_commit(id)?.is_some() {
            return Err(duplicate_job(id));
        }
        tree.insert(keys::tagged_job(tag::META, id), meta_bytes)?;
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
        let latest = self.write_commit(job, events, None)?;
        self.latest.put(id, latest);
        Ok(CreateJob::Created)
    }

    pub(super) fn commit_job_records(&self, job: &Job, events: &[Event]) -> Result<(), StoreError> {
        check_events(job, events)?;
        let id = job.id();
        let state = job.state();
        let tree = &self.trees.jobs;
        let unfinished_key = keys::tagged_job(tag::UNFINISHED, id);
        let previous = match self.latest.take(id) {
            Some(latest) => latest,
            None => self.read_latest(job)?,
        };
        // The state the job leaves, when it was unfinished and moves.
        let moved_from = previous.state.filter(|previous| *previous != state);
        match moved_from {
            Some(_) if state.is_terminal() => tree.insert(keys::state_job(state, id), &[])?,
            Some(from) => tree.insert(unfinished_key, encode_states(&[from, state])?)?,
            None => None,
        };
        let latest = self.write_commit(job, events, Some(previous))?;
        match moved_from {
            Some(_) if state.is_terminal() => tree.remove(unfinished_key)?,
            Some(_) => tree.insert(unfinished_key, encode_states(&[state])?)?,
            None => None,
        };
        self.latest.put(id, latest);
        Ok(())
    }

    pub(super) fn job_record(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.latest_commit(id)?
            .map(|(key, bytes)| Self::job_in_commit(&key, &bytes, id))
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
                tree.range(prefix..end).rev()
            }
            None => tree.scan_prefix(prefix).rev(),
        };
        let unfinished_in = query.state.filter(|state| !state.is_terminal());
        let candidates = entries.filter_map(|entry| {
            entry
                .map_err(StoreError::from)
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
        // The first commit whose last event is at or after `first` holds `first`.
        let commits = keys::commit(id, first)..=keys::commit(id, u64::MAX);
        let mut events = Vec::new();
        for entry in self.trees.jobs.range(commits) {
            let (key, bytes) = entry?;
            let last = keys::commit_last(&key)?;
            let what = || describe_commit(id, last);
            let (events_json, _) = split_commit(&bytes, what)?;
            let commit: Vec<Event> = decode(events_json, || format!("events of {}", what()))?;
            events.extend(commit.into_iter().filter(|e| e.sequence >= first));
            if events.len() >= limit {
                events.truncate(limit);
                break;
            }
        }
        Ok(events)
    }
}
