//! The fan-outs of jobs in sled. A fanned-out step's list and tasks are records of their own,
//! so that a commit writes the tasks it changed rather than every task of a large fan-out.
//!
//! A job's head holds its *outline* ([`Job::outline`], the job without its fan-outs' lists
//! and tasks) and the tasks that changed since their own records were written, which override
//! those records when the job is read. Records are written only with what the head they go
//! under already says, so a crash between any two writes leaves a job that reads back as its
//! last head did:
//! - when a step fans out, its list is written before the first head that names the fan-out
//!   (no earlier head reads it); its tasks are not written at all: a task without a record is
//!   as every task starts, [`TaskRecord::pending`], so a fan-out of any size costs one record;
//! - a task that changes goes into the head; once the head's tasks pass [`HEAD_TASK_BYTES`],
//!   the commit that passes it first writes them out to their records *as the previous head
//!   holds them*, and then writes its head with only its own changes.
//!
//! Which tasks changed is told by pointer first: the state machine changes a job
//! copy-on-write, and the store keeps each fanned-out step's record as of the job's latest
//! commit ([`FanOutsWritten`]), sharing the tasks that did not change. It also keeps the JSON
//! of each task in that head, so that a commit encodes only the tasks it changed, not every
//! task the head holds. Without that memory (after a restart, or a failed write) the commit
//! reads the job back first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_domain::job::{FanOutParts, StepWork, TaskList};
use weft_domain::{Job, JobId, StepId, StepRecord, TaskRecord};

use super::SledStore;
use super::codec::{decode, encode};
use super::journal::Insert;
use super::keys;
use crate::error::StoreError;

/// The head's tasks grow to this, in JSON bytes, before they are written out to their own
/// records: small enough that rewriting the head stays cheap, large enough that most commits
/// write no task record at all.
const HEAD_TASK_BYTES: usize = 8 * 1024;

/// A task in a head, as written.
#[derive(Serialize)]
struct HeadTaskRef<'a> {
    step: &'a StepId,
    item: u32,
    task: &'a TaskRecord,
}

/// A task in a head, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadTask {
    step: StepId,
    item: u32,
    task: TaskRecord,
}

/// What the store knows of a job's fan-outs as its latest head left them.
#[derive(Debug, Default)]
pub(super) struct FanOutsWritten {
    /// Each fanned-out step's record as of the latest head.
    steps: BTreeMap<StepId, Arc<StepRecord>>,
    /// The tasks that head holds, each with its JSON there ([`HeadTaskRef`]) when known.
    in_head: BTreeMap<(StepId, u32), Option<Vec<u8>>>,
}

fn fan_out_tasks(record: &StepRecord) -> Option<&TaskList> {
    match record.work() {
        Some(StepWork::FanOut { tasks, .. }) => Some(tasks),
        _ => None,
    }
}

fn item_index(index: usize) -> Result<u32, StoreError> {
    u32::try_from(index).map_err(|_| StoreError::Invalid(format!("item {index} is out of range")))
}

/// The JSON of the tasks of `job` that its head holds: an array of each task's JSON, encoding
/// those not known yet (and remembering it). A task the job lacks is left out.
fn encode_head_tasks(
    job: &Job,
    in_head: &mut BTreeMap<(StepId, u32), Option<Vec<u8>>>,
) -> Result<Vec<u8>, StoreError> {
    let mut tasks_json = Vec::from(*b"[");
    for ((step, item), json) in in_head.iter_mut() {
        if json.is_none() {
            let Some(task) = job.step(step).and_then(|record| record.task(Some(*item))) else {
                continue;
            };
            let task = HeadTaskRef {
                step,
                item: *item,
                task,
            };
            *json = Some(encode(&task, || {
                format!("task {step}[{item}] in the head of job {}", job.id())
            })?);
        }
        if let Some(json) = json {
            if tasks_json.len() > 1 {
                tasks_json.push(b',');
            }
            tasks_json.extend_from_slice(json);
        }
    }
    tasks_json.push(b']');
    Ok(tasks_json)
}

/// Writes a fanned-out step's list and the records of its tasks that are not pending, for a
/// head that will hold none of its tasks (the migration from store format 4 writes such heads).
pub(super) fn write_fan_out_records(
    tree: &impl Insert,
    id: JobId,
    parts: &FanOutParts<'_>,
) -> Result<(), StoreError> {
    write_items(tree, id, parts)?;
    let pending = TaskRecord::pending();
    for (index, task) in parts.tasks.iter().enumerate() {
        if **task == pending {
            continue;
        }
        let task_json = encode(&**task, || {
            format!("task {}[{index}] of job {id}", parts.step)
        })?;
        tree.insert_record(&keys::task(id, parts.step, item_index(index)?), task_json)?;
    }
    Ok(())
}

/// Writes the list a step fans out over.
fn write_items(tree: &impl Insert, id: JobId, parts: &FanOutParts<'_>) -> Result<(), StoreError> {
    let items = encode(&**parts.items, || {
        format!("the list step {} of job {id} fans out over", parts.step)
    })?;
    tree.insert_record(&keys::items(id, parts.step), items)
}

impl SledStore {
    /// Writes what of `job`'s fan-outs must be stored before its head, given what the
    /// previous head left. Returns the tasks the new head holds, as JSON, and what the store
    /// knows once that head is written.
    pub(super) fn write_fan_outs(
        &self,
        job: &Job,
        mut previous: FanOutsWritten,
    ) -> Result<(Vec<u8>, FanOutsWritten), StoreError> {
        let tree = &self.trees.jobs;
        let id = job.id();
        let mut steps = BTreeMap::new();
        let mut changed = BTreeSet::new();
        let pending = TaskRecord::pending();
        for parts in job.fan_outs() {
            steps.insert(parts.step.clone(), parts.record.clone());
            let before = match previous.steps.get(parts.step) {
                Some(before) if Arc::ptr_eq(before, parts.record) => continue,
                Some(before) => fan_out_tasks(before),
                // Just fanned out: no head names its list yet, so it may be written now.
                None => {
                    write_items(tree, id, &parts)?;
                    None
                }
            };
            let candidates: Vec<usize> = match before {
                Some(before) => parts.tasks.unshared_items(before).collect(),
                None => (0..parts.tasks.len()).collect(),
            };
            for index in candidates {
                let same = match (before.and_then(|b| b.get(index)), parts.tasks.get(index)) {
                    (Some(was), Some(now)) => **was == **now,
                    (None, Some(now)) if before.is_none() => **now == pending,
                    _ => false,
                };
                if !same {
                    changed.insert((parts.step.clone(), item_index(index)?));
                }
            }
        }
        // The tasks the previous head holds keep their JSON unless they changed.
        let mut in_head: BTreeMap<_, _> = previous
            .in_head
            .iter_mut()
            .map(|(task, json)| {
                (
                    task.clone(),
                    json.take().filter(|_| !changed.contains(task)),
                )
            })
            .chain(changed.iter().map(|task| (task.clone(), None)))
            .collect();
        let mut tasks_json = encode_head_tasks(job, &mut in_head)?;
        if tasks_json.len() > HEAD_TASK_BYTES && in_head.len() > changed.len() {
            self.write_out_head_tasks(id, &previous)?;
            in_head.retain(|task, _| changed.contains(task));
            tasks_json = encode_head_tasks(job, &mut in_head)?;
        }
        Ok((tasks_json, FanOutsWritten { steps, in_head }))
    }

    /// Writes each task the previous head holds to its own record, as that head holds it.
    fn write_out_head_tasks(&self, id: JobId, previous: &FanOutsWritten) -> Result<(), StoreError> {
        for (step, item) in previous.in_head.keys() {
            let task = previous
                .steps
                .get(step)
                .and_then(|record| record.task(Some(*item)))
                .ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "the head of job {id} holds task {step}[{item}], which the job lacks"
                    ))
                })?;
            let task_json = encode(task, || format!("task {step}[{item}] of job {id}"))?;
            self.trees
                .jobs
                .insert(keys::task(id, step, *item), task_json)?;
        }
        Ok(())
    }

    /// The job whose head holds `outline` and `tasks_json`, with its fan-outs read back in,
    /// and what the store knows of them.
    pub(super) fn assemble_job(
        &self,
        id: JobId,
        tasks_json: &[u8],
        outline: &[u8],
    ) -> Result<(Job, FanOutsWritten), StoreError> {
        let corrupt = |detail: String| StoreError::corrupt(format!("job {id}"), detail);
        let mut job: Job = decode(outline, || format!("job {id}"))?;
        let head_tasks: Vec<HeadTask> =
            decode(tasks_json, || format!("tasks in the head of job {id}"))?;
        let mut in_head = BTreeMap::new();
        let mut by_step: BTreeMap<StepId, Vec<(u32, TaskRecord)>> = BTreeMap::new();
        for HeadTask { step, item, task } in head_tasks {
            in_head.insert((step.clone(), item), None);
            by_step.entry(step).or_default().push((item, task));
        }
        let fanned: Vec<StepId> = job.fan_outs().map(|parts| parts.step.clone()).collect();
        for step in &fanned {
            let from_head = by_step.remove(step).unwrap_or_default();
            self.read_fan_out(&mut job, step, from_head)?;
        }
        if let Some(step) = by_step.keys().next() {
            return Err(corrupt(format!(
                "its head holds tasks of step {step}, which did not fan out"
            )));
        }
        let steps = job
            .fan_outs()
            .map(|parts| (parts.step.clone(), parts.record.clone()))
            .collect();
        Ok((job, FanOutsWritten { steps, in_head }))
    }

    /// Puts a fanned-out step's list and tasks back into `job`: its records, overridden by
    /// the tasks in the head.
    fn read_fan_out(
        &self,
        job: &mut Job,
        step: &StepId,
        from_head: Vec<(u32, TaskRecord)>,
    ) -> Result<(), StoreError> {
        let id = job.id();
        let tree = &self.trees.jobs;
        let what = || format!("the list step {step} of job {id} fans out over");
        let items: Vec<Value> = match tree.get(keys::items(id, step))? {
            Some(bytes) => decode(&bytes, what)?,
            None => return Err(StoreError::corrupt(what(), "the record is missing")),
        };
        let mut tasks: Vec<Option<Arc<TaskRecord>>> = vec![None; items.len()];
        // Only tasks a head held are written out, so none lies beyond the list; one that did
        // would belong to no item, and is passed over.
        for entry in tree.scan_prefix(keys::task_prefix(id, step)) {
            let (key, bytes) = entry?;
            let item = keys::task_item(&key)?;
            if let Some(slot) = tasks.get_mut(item as usize) {
                let task = decode(&bytes, || format!("task {step}[{item}] of job {id}"))?;
                *slot = Some(Arc::new(task));
            }
        }
        for (item, task) in from_head {
            let slot = tasks.get_mut(item as usize).ok_or_else(|| {
                StoreError::corrupt(
                    format!("job {id}"),
                    format!("its head holds task {step}[{item}], beyond the list"),
                )
            })?;
            *slot = Some(Arc::new(task));
        }
        // A task without a record has not changed since the step fanned out.
        let pending = Arc::new(TaskRecord::pending());
        let tasks = tasks
            .into_iter()
            .map(|task| task.unwrap_or_else(|| pending.clone()))
            .collect();
        job.restore_fan_out(step, Arc::new(items), tasks)
            .map_err(|e| StoreError::corrupt(format!("job {id}"), e))
    }
}
