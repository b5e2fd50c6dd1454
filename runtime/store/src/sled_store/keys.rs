//! Key layouts of the sled trees. Every multi-part key is built here, so that the layouts that
//! must sort a certain way (by job id, by sequence, by version) are in one place.
//!
//! Workflow, plugin and state names are validated identifiers that never contain a NUL byte,
//! so `name ++ 0x00 ++ rest` cannot collide. Key-value scopes hold arbitrary strings and are
//! length-prefixed instead. Numbers are big-endian so that byte order is numeric order; job
//! ids are big-endian and time-ordered, so byte order is creation order.

use semver::Version;
use weft_domain::{JobId, JobState, PluginName, StepId, WorkflowName};

use crate::error::StoreError;
use crate::kv::KvScope;

/// Ends a name inside a key.
const NAME_END: u8 = 0;

/// Length of [`JobId::to_bytes`].
pub(super) const JOB_ID_LEN: usize = 16;

/// `name ++ 0x00`: the prefix of every key about `name`.
pub(super) fn name_prefix(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1 + JOB_ID_LEN);
    key.extend_from_slice(name.as_bytes());
    key.push(NAME_END);
    key
}

/// `name ++ 0x00 ++ rest`.
fn named(name: &str, rest: &[u8]) -> Vec<u8> {
    let mut key = name_prefix(name);
    key.extend_from_slice(rest);
    key
}

/// Key of a plugin's (name, version) in the version index.
pub(super) fn plugin_version(name: &PluginName, version: &Version) -> Vec<u8> {
    named(name.as_str(), version.to_string().as_bytes())
}

/// Key of a workflow definition: versions of a workflow sort numerically.
pub(super) fn definition(name: &WorkflowName, version: u32) -> Vec<u8> {
    named(name.as_str(), &version.to_be_bytes())
}

/// The (name, version) a definition key was built from.
pub(super) fn parse_definition(key: &[u8]) -> Result<(WorkflowName, u32), StoreError> {
    let malformed = || StoreError::corrupt("definition key", format!("{key:?} is malformed"));
    let split = key.len().checked_sub(5).ok_or_else(malformed)?;
    let (name, rest) = key.split_at(split);
    let version = rest
        .strip_prefix(&[NAME_END])
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .ok_or_else(malformed)?;
    let name = std::str::from_utf8(name).map_err(|_| malformed())?;
    let name = WorkflowName::new(name).map_err(|e| StoreError::corrupt("definition key", e))?;
    Ok((name, u32::from_be_bytes(version)))
}

/// Tags of the kinds of record in the job tree: every key there starts with one, so that each
/// kind sorts apart from the others.
pub(super) mod tag {
    /// `c ++ job id ++ last event sequence` -> a chunk of the job's older events;
    /// `c ++ job id ++ u64::MAX` -> the job's head: its events since the last chunk, and the
    /// job as of its latest commit.
    pub const COMMIT: u8 = b'c';
    /// `m ++ job id` -> the job's metadata. Every job has one: they list every job, in
    /// creation order.
    pub const META: u8 = b'm';
    /// `u ++ job id` -> the states (a JSON array) of a job that is not finished: its state,
    /// or, while it moves from one to another, both.
    pub const UNFINISHED: u8 = b'u';
    /// `s ++ state ++ 0x00 ++ job id` -> nothing, for finished jobs.
    pub const BY_STATE: u8 = b's';
    /// `w ++ workflow ++ 0x00 ++ job id` -> nothing.
    pub const BY_WORKFLOW: u8 = b'w';
    /// `i ++ workflow ++ 0x00 ++ idempotency key` -> job id (raw bytes).
    pub const IDEMPOTENCY: u8 = b'i';
    /// `n ++ job id` -> the job's input, when it is large enough to be kept out of the head.
    pub const INPUT: u8 = b'n';
    /// `f ++ job id ++ step ++ 0x00` -> the list a step of the job fanned out over.
    pub const ITEMS: u8 = b'f';
    /// `t ++ job id ++ step ++ 0x00 ++ item index` -> that item's task, unless the job's head
    /// holds a newer one.
    pub const TASK: u8 = b't';
}

/// `tag ++ job id`.
pub(super) fn tagged_job(tag: u8, id: JobId) -> [u8; 1 + JOB_ID_LEN] {
    let mut key = [tag; 1 + JOB_ID_LEN];
    key[1..].copy_from_slice(&id.to_bytes());
    key
}

/// Key of a chunk of a job's events: the job's id, then the sequence number of the chunk's
/// last event. Chunks of a job sort by sequence.
pub(super) fn commit(id: JobId, last_sequence: u64) -> [u8; 1 + JOB_ID_LEN + 8] {
    let mut key = [tag::COMMIT; 1 + JOB_ID_LEN + 8];
    key[1..=JOB_ID_LEN].copy_from_slice(&id.to_bytes());
    key[1 + JOB_ID_LEN..].copy_from_slice(&last_sequence.to_be_bytes());
    key
}

/// Key of a job's head record, which sorts after every chunk of its events.
pub(super) fn head(id: JobId) -> [u8; 1 + JOB_ID_LEN + 8] {
    commit(id, u64::MAX)
}

/// The last sequence number a commit's key ends with.
pub(super) fn commit_last(key: &[u8]) -> Result<u64, StoreError> {
    key.len()
        .checked_sub(8)
        .and_then(|start| <[u8; 8]>::try_from(&key[start..]).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::corrupt("commit key", format!("{key:?} is too short")))
}

/// `tag ++ job id ++ step ++ 0x00`.
fn job_step(tag: u8, id: JobId, step: &StepId) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + JOB_ID_LEN + step.as_str().len() + 1 + 4);
    key.extend_from_slice(&tagged_job(tag, id));
    key.extend_from_slice(step.as_str().as_bytes());
    key.push(NAME_END);
    key
}

/// Key of the list a step of a job fanned out over.
pub(super) fn items(id: JobId, step: &StepId) -> Vec<u8> {
    job_step(tag::ITEMS, id, step)
}

/// Prefix of the keys of a fanned-out step's tasks; they sort by item index.
pub(super) fn task_prefix(id: JobId, step: &StepId) -> Vec<u8> {
    job_step(tag::TASK, id, step)
}

/// Key of one item's task.
pub(super) fn task(id: JobId, step: &StepId, item: u32) -> Vec<u8> {
    let mut key = task_prefix(id, step);
    key.extend_from_slice(&item.to_be_bytes());
    key
}

/// The item index a task key ends with.
pub(super) fn task_item(key: &[u8]) -> Result<u32, StoreError> {
    key.len()
        .checked_sub(4)
        .and_then(|start| <[u8; 4]>::try_from(&key[start..]).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| StoreError::corrupt("task key", format!("{key:?} is too short")))
}

/// `tag ++ name ++ 0x00`: the prefix of an index's keys under `name`.
pub(super) fn tagged_name(tag: u8, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + name.len() + JOB_ID_LEN);
    key.push(tag);
    key.extend_from_slice(name.as_bytes());
    key.push(NAME_END);
    key
}

/// Key of a job in the index of its workflow's jobs.
pub(super) fn workflow_job(workflow: &WorkflowName, id: JobId) -> Vec<u8> {
    let mut key = tagged_name(tag::BY_WORKFLOW, workflow.as_str());
    key.extend_from_slice(&id.to_bytes());
    key
}

/// Prefix of the keys of jobs in `state` in the state index.
pub(super) fn state_prefix(state: JobState) -> Vec<u8> {
    tagged_name(tag::BY_STATE, state.as_str())
}

/// Key of a job in the state index.
pub(super) fn state_job(state: JobState, id: JobId) -> Vec<u8> {
    let mut key = state_prefix(state);
    key.extend_from_slice(&id.to_bytes());
    key
}

/// Key of an idempotency key of a workflow.
pub(super) fn idempotency(workflow: &WorkflowName, key: &str) -> Vec<u8> {
    let mut full = tagged_name(tag::IDEMPOTENCY, workflow.as_str());
    full.extend_from_slice(key.as_bytes());
    full
}

/// The job id a key ends with (job and index keys).
pub(super) fn trailing_job_id(key: &[u8]) -> Result<JobId, StoreError> {
    key.len()
        .checked_sub(JOB_ID_LEN)
        .and_then(|start| <[u8; JOB_ID_LEN]>::try_from(&key[start..]).ok())
        .map(JobId::from_bytes)
        .ok_or_else(|| StoreError::corrupt("job key", format!("{key:?} is too short")))
}

/// The job id stored as an idempotency entry's value.
pub(super) fn job_id(bytes: &[u8]) -> Result<JobId, StoreError> {
    <[u8; JOB_ID_LEN]>::try_from(bytes)
        .map(JobId::from_bytes)
        .map_err(|_| StoreError::corrupt("job id", format!("{bytes:?} is not 16 bytes")))
}

/// Prefix of every key in a key-value scope: both names, each preceded by its length.
pub(super) fn kv_scope(scope: &KvScope) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + scope.plugin.len() + scope.namespace.len());
    for part in [&scope.plugin, &scope.namespace] {
        key.extend_from_slice(&(part.len() as u64).to_be_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    key
}

/// Key of `key` in a key-value scope.
pub(super) fn kv(scope: &KvScope, key: &str) -> Vec<u8> {
    let mut full = kv_scope(scope);
    full.extend_from_slice(key.as_bytes());
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_keys_round_trip_and_sort_by_version() {
        let name = WorkflowName::new("erase").unwrap();
        let key = definition(&name, 258);
        assert_eq!(parse_definition(&key).unwrap(), (name.clone(), 258));
        assert!(definition(&name, 9) < definition(&name, 10));
    }

    #[test]
    fn commits_sort_by_job_then_sequence() {
        let a = JobId::from_bytes([1; JOB_ID_LEN]);
        let b = JobId::from_bytes([2; JOB_ID_LEN]);
        assert!(commit(a, 9) < commit(a, 10));
        assert!(commit(a, u64::MAX) < commit(b, 0));
        assert_eq!(commit_last(&commit(a, 77)).unwrap(), 77);
        assert!(commit(a, 0).starts_with(&tagged_job(tag::COMMIT, a)));
    }

    #[test]
    fn tasks_sort_by_step_then_item_and_steps_cannot_collide() {
        let id = JobId::from_bytes([1; JOB_ID_LEN]);
        let [a, ab] = ["a", "ab"].map(|s| StepId::new(s).unwrap());
        assert!(task(id, &a, 9) < task(id, &a, 10));
        assert!(task(id, &a, 255) < task(id, &a, 256));
        assert!(task(id, &a, u32::MAX) < task(id, &ab, 0));
        assert!(!task(id, &ab, 0).starts_with(&task_prefix(id, &a)));
        assert_eq!(task_item(&task(id, &ab, 70_000)).unwrap(), 70_000);
    }

    #[test]
    fn kv_scopes_cannot_collide() {
        let a = kv(&KvScope::new("ab", "c"), "d");
        let b = kv(&KvScope::new("a", "bc"), "d");
        assert_ne!(a, b);
        assert!(!a.starts_with(&kv_scope(&KvScope::new("a", "bc"))));
    }
}
