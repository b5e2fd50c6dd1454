//! Jobs in sled: creating and committing them atomically with their events and indexes, and
//! reading them back.
//!
//! Besides the job records, a commit maintains three indexes in the same transaction: the
//! `unfinished` tree (job id -> current state, for every job not finished; the scheduler
//! resumes from it), the state index (state and job id) and the workflow index (workflow and
//! job id, written once). The old state of a job is read from `unfinished`, which saves
//! decoding the old job record. A finished job never changes state again (the domain's state
//! machine guarantees it, and a commit that tries is refused), so a job missing from
//! `unfinished` keeps its entry in the state index.

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::{IVec, Transactional, Tree};
use weft_domain::{Event, Job, JobId, JobState};

use super::codec::{decode, decode_versioned, encode};
use super::{SledStore, keys, transaction_result};
use crate::error::StoreError;
use crate::format::check_written;
use crate::job::{
    CreateJob, JobMeta, JobPage, JobQuery, check_events, duplicate_job, reopened_job,
};

/// An event ready to append: its key, its JSON, and the event to compare with a stored one.
struct EncodedEvent<'a> {
    key: [u8; keys::JOB_ID_LEN + 8],
    bytes: Vec<u8>,
    event: &'a Event,
}

fn encode_events(events: &[Event]) -> Result<Vec<EncodedEvent<'_>>, StoreError> {
    events
        .iter()
        .map(|event| {
            Ok(EncodedEvent {
                key: keys::event(event.job_id, event.sequence),
                bytes: encode(event, || describe_event(event.job_id, event.sequence))?,
                event,
            })
        })
        .collect()
}

fn describe_event(id: JobId, sequence: u64) -> String {
    format!("event {sequence} of job {id}")
}

fn abort(error: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(error)
}

/// Appends events inside a transaction; an event already stored must be equal to the new one.
fn append_events(
    tree: &TransactionalTree,
    events: &[EncodedEvent<'_>],
) -> Result<(), ConflictableTransactionError<StoreError>> {
    for encoded in events {
        let Some(previous) = tree.insert(&encoded.key, encoded.bytes.as_slice())? else {
            continue;
        };
        if previous == encoded.bytes {
            continue;
        }
        let (id, sequence) = (encoded.event.job_id, encoded.event.sequence);
        let previous: Event = decode(&previous, || describe_event(id, sequence)).map_err(abort)?;
        if previous != *encoded.event {
            return Err(abort(StoreError::Conflict(format!(
                "job {id} already has another event {sequence}"
            ))));
        }
    }
    Ok(())
}

/// The JSON of a state in the `unfinished` tree.
fn encode_state(state: JobState) -> Result<Vec<u8>, StoreError> {
    encode(&state, || "job state".to_owned())
}

/// Entries of `tree` under `prefix`, newest job first, only those older than `cursor`.
fn newest_first(
    tree: &Tree,
    prefix: Vec<u8>,
    cursor: Option<JobId>,
) -> impl Iterator<Item = sled::Result<(IVec, IVec)>> {
    match cursor {
        Some(cursor) => {
            let end = [prefix.as_slice(), &cursor.to_bytes()].concat();
            tree.range(prefix..end).rev()
        }
        None => tree.scan_prefix(prefix).rev(),
    }
}

impl SledStore {
    pub(super) fn create_job_records(
        &self,
        job: &Job,
        meta: &JobMeta,
        events: &[Event],
    ) -> Result<CreateJob, StoreError> {
        check_written("job metadata", meta.format_version)?;
        check_events(job, events)?;
        let id = job.id();
        let id_bytes = id.to_bytes();
        let job_bytes = encode(job, || format!("job {id}"))?;
        let meta_bytes = encode(meta, || format!("metadata of job {id}"))?;
        let state_bytes = encode_state(job.state())?;
        let events = encode_events(events)?;
        let idempotency = meta
            .idempotency_key
            .as_ref()
            .map(|key| keys::idempotency(job.workflow(), key));
        let t = &self.trees;
        let trees = (
            &t.jobs,
            &t.job_meta,
            &t.events,
            &t.unfinished,
            &t.jobs_by_workflow,
            &t.jobs_by_state,
            &t.idempotency,
        );
        let result = trees.transaction(
            |(jobs, job_meta, event_tree, unfinished, by_workflow, by_state, idempotent)| {
                if let Some(key) = &idempotency {
                    if let Some(existing) = idempotent.get(key)? {
                        let existing = keys::job_id(&existing).map_err(abort)?;
                        return Ok(CreateJob::Existing(existing));
                    }
                    idempotent.insert(key.as_slice(), &id_bytes)?;
                }
                if jobs.insert(&id_bytes, job_bytes.as_slice())?.is_some() {
                    return Err(abort(duplicate_job(id)));
                }
                job_meta.insert(&id_bytes, meta_bytes.as_slice())?;
                append_events(event_tree, &events)?;
                if !job.state().is_terminal() {
                    unfinished.insert(&id_bytes, state_bytes.as_slice())?;
                }
                by_workflow.insert(keys::workflow_job(job.workflow(), id), &[])?;
                by_state.insert(keys::state_job(job.state(), id), &[])?;
                Ok(CreateJob::Created)
            },
        );
        transaction_result(result)
    }

    pub(super) fn commit_job_records(&self, job: &Job, events: &[Event]) -> Result<(), StoreError> {
        check_events(job, events)?;
        let id = job.id();
        let id_bytes = id.to_bytes();
        let job_bytes = encode(job, || format!("job {id}"))?;
        let state = job.state();
        let state_bytes = encode_state(state)?;
        let events = encode_events(events)?;
        let t = &self.trees;
        let trees = (&t.jobs, &t.events, &t.unfinished, &t.jobs_by_state);
        let result = trees.transaction(|(jobs, event_tree, unfinished, by_state)| {
            let previous_state = match unfinished.get(id_bytes)? {
                Some(bytes) => Some(
                    decode::<JobState>(&bytes, || format!("unfinished entry of job {id}"))
                        .map_err(abort)?,
                ),
                None if jobs.get(id_bytes)?.is_none() => return Err(abort(StoreError::NotFound)),
                None if !state.is_terminal() => return Err(abort(reopened_job(job))),
                None => None,
            };
            jobs.insert(&id_bytes, job_bytes.as_slice())?;
            append_events(event_tree, &events)?;
            if let Some(previous) = previous_state.filter(|previous| *previous != state) {
                by_state.remove(keys::state_job(previous, id))?;
                by_state.insert(keys::state_job(state, id), &[])?;
            }
            if state.is_terminal() {
                unfinished.remove(&id_bytes)?;
            } else if previous_state != Some(state) {
                unfinished.insert(&id_bytes, state_bytes.as_slice())?;
            }
            Ok(())
        });
        transaction_result(result)
    }

    pub(super) fn job_record(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.trees
            .jobs
            .get(id.to_bytes())?
            .map(|bytes| decode(&bytes, || format!("job {id}")))
            .transpose()
    }

    pub(super) fn job_meta_record(&self, id: JobId) -> Result<Option<JobMeta>, StoreError> {
        self.trees
            .job_meta
            .get(id.to_bytes())?
            .map(|bytes| decode_versioned(&bytes, || format!("metadata of job {id}")))
            .transpose()
    }

    /// A job an index points to; it must exist, since indexes are written with their jobs.
    fn indexed_job(&self, key: &[u8]) -> Result<Job, StoreError> {
        let id = keys::trailing_job_id(key)?;
        self.job_record(id)?.ok_or_else(|| {
            StoreError::corrupt(format!("index entry of job {id}"), "the job does not exist")
        })
    }

    pub(super) fn job_page(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        let t = &self.trees;
        let candidates: Box<dyn Iterator<Item = Result<Job, StoreError>>> =
            match (query.state, &query.workflow) {
                (Some(state), _) => Box::new(
                    newest_first(&t.jobs_by_state, keys::state_prefix(state), query.cursor)
                        .map(|entry| self.indexed_job(&entry?.0)),
                ),
                (None, Some(workflow)) => Box::new(
                    newest_first(
                        &t.jobs_by_workflow,
                        keys::name_prefix(workflow.as_str()),
                        query.cursor,
                    )
                    .map(|entry| self.indexed_job(&entry?.0)),
                ),
                (None, None) => Box::new(newest_first(&t.jobs, Vec::new(), query.cursor).map(
                    |entry| {
                        let (key, bytes) = entry?;
                        decode(&bytes, || format!("job {:?}", keys::job_id(&key)))
                    },
                )),
            };
        let matching = candidates.filter(|job| job.as_ref().map_or(true, |job| query.matches(job)));
        JobPage::collect(matching, query.limit)
    }

    pub(super) fn unfinished_job_records(&self) -> Result<Vec<(Job, JobMeta)>, StoreError> {
        self.trees
            .unfinished
            .iter()
            .keys()
            .map(|key| {
                let key = key?;
                let job = self.indexed_job(&key)?;
                let meta = self.job_meta_record(job.id())?.ok_or_else(|| {
                    StoreError::corrupt(format!("job {}", job.id()), "metadata is missing")
                })?;
                Ok((job, meta))
            })
            .collect()
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
        self.trees
            .events
            .range(keys::event(id, first)..=keys::event(id, u64::MAX))
            .take(limit)
            .map(|entry| {
                let (key, bytes) = entry?;
                decode(&bytes, || format!("event {key:?}"))
            })
            .collect()
    }
}
