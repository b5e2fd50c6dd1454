//! The ready queue: tasks waiting for a worker, highest job priority first, then the oldest
//! job first (job ids sort by creation time), then FIFO within a job; subject to concurrency
//! limits per workflow, per plugin and per named queue.
//!
//! Ordering by job rather than by task means a job that has started finishes first: when a
//! burst of new jobs queues its first steps, the next step of a job already under way goes
//! ahead of them instead of waiting behind the whole burst.
//!
//! The queue is memory only: after a restart it is rebuilt from the jobs in the store, whose
//! records say which tasks are ready.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tokio::sync::Notify;
use weft_domain::{JobId, TaskKey};

/// A task waiting for a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The job.
    pub job: JobId,
    /// The task.
    pub task: TaskKey,
    /// Workflow of the job, for its concurrency limit.
    pub workflow: String,
    /// Plugin the task runs (by name), for its concurrency limit.
    pub plugin: String,
    /// Named queue of the job.
    pub queue: String,
}

/// Concurrency limits; a missing entry means no limit beyond the worker pool.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Running tasks per workflow name.
    pub per_workflow: HashMap<String, usize>,
    /// Running tasks per plugin name.
    pub per_plugin: HashMap<String, usize>,
    /// Running tasks per named queue.
    pub per_queue: HashMap<String, usize>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Ordered by (negated priority, job, arrival).
    waiting: BTreeMap<(i64, JobId, u64), Entry>,
    arrivals: u64,
    running_workflow: HashMap<String, usize>,
    running_plugin: HashMap<String, usize>,
    running_queue: HashMap<String, usize>,
}

/// The queue shared by the dispatcher and whoever makes tasks ready.
#[derive(Debug)]
pub struct ReadyQueue {
    inner: Mutex<Inner>,
    limits: Limits,
    changed: Notify,
}

fn under(limit: Option<&usize>, running: Option<&usize>) -> bool {
    limit.is_none_or(|l| running.copied().unwrap_or(0) < *l)
}

/// Counts `entry` as running against its limits.
fn count_running(inner: &mut Inner, entry: &Entry) {
    *inner
        .running_workflow
        .entry(entry.workflow.clone())
        .or_default() += 1;
    *inner
        .running_plugin
        .entry(entry.plugin.clone())
        .or_default() += 1;
    *inner.running_queue.entry(entry.queue.clone()).or_default() += 1;
}

impl ReadyQueue {
    /// An empty queue with `limits`.
    pub fn new(limits: Limits) -> ReadyQueue {
        ReadyQueue {
            inner: Mutex::default(),
            limits,
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of tasks waiting.
    pub fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Whether no task waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a task with the job's `priority`.
    pub fn push(&self, priority: i32, entry: Entry) {
        let mut inner = self.lock();
        inner.arrivals += 1;
        let key = (-i64::from(priority), entry.job, inner.arrivals);
        inner.waiting.insert(key, entry);
        drop(inner);
        self.changed.notify_one();
    }

    /// Takes the first task whose limits allow it to run now, counting it as running.
    pub fn pop_runnable(&self) -> Option<Entry> {
        let mut inner = self.lock();
        let key = inner
            .waiting
            .iter()
            .find(|(_, e)| self.allows(&inner, e))
            .map(|(k, _)| *k)?;
        let entry = inner.waiting.remove(&key)?;
        count_running(&mut inner, &entry);
        Some(entry)
    }

    /// Counts `entry` as running without it ever waiting, as [`pop_runnable`] would have
    /// taken it, when no task waits and its limits allow it to run now. A task that waits,
    /// whatever its place, keeps the queue to its order: the entry is then not taken.
    ///
    /// [`pop_runnable`]: Self::pop_runnable
    pub fn take_if_idle(&self, entry: &Entry) -> bool {
        let mut inner = self.lock();
        let idle = inner.waiting.is_empty() && self.allows(&inner, entry);
        if idle {
            count_running(&mut inner, entry);
        }
        idle
    }

    /// Whether the limits let `entry` run besides the tasks running now.
    fn allows(&self, inner: &Inner, entry: &Entry) -> bool {
        under(
            self.limits.per_workflow.get(&entry.workflow),
            inner.running_workflow.get(&entry.workflow),
        ) && under(
            self.limits.per_plugin.get(&entry.plugin),
            inner.running_plugin.get(&entry.plugin),
        ) && under(
            self.limits.per_queue.get(&entry.queue),
            inner.running_queue.get(&entry.queue),
        )
    }

    /// Marks a task taken by [`pop_runnable`](Self::pop_runnable) as no longer running.
    pub fn finished(&self, entry: &Entry) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for (map, key) in [
            (&mut inner.running_workflow, &entry.workflow),
            (&mut inner.running_plugin, &entry.plugin),
            (&mut inner.running_queue, &entry.queue),
        ] {
            if let Some(n) = map.get_mut(key) {
                *n = n.saturating_sub(1);
            }
        }
        drop(guard);
        self.changed.notify_one();
    }

    /// Resolves when the queue changed (a task arrived or a running one finished).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, workflow: &str) -> Entry {
        Entry {
            job: JobId::from_bytes([n; 16]),
            task: TaskKey::step("s".parse().unwrap()),
            workflow: workflow.into(),
            plugin: "echo".into(),
            queue: "default".into(),
        }
    }

    #[test]
    fn higher_priority_first_then_older_jobs_first() {
        let q = ReadyQueue::new(Limits::default());
        q.push(0, entry(1, "a"));
        q.push(5, entry(2, "a"));
        q.push(0, entry(3, "a"));
        q.push(5, entry(4, "a"));
        let order: Vec<u8> = std::iter::from_fn(|| q.pop_runnable())
            .map(|e| e.job.to_bytes()[0])
            .collect();
        assert_eq!(order, [2, 4, 1, 3]);
    }

    #[test]
    fn a_job_under_way_goes_ahead_of_newer_jobs_first_steps() {
        let q = ReadyQueue::new(Limits::default());
        // Job 1 started first; jobs 2 to 4 queued their first steps after it.
        q.push(0, entry(1, "a"));
        let started = q.pop_runnable().unwrap();
        for job in 2..=4 {
            q.push(0, entry(job, "a"));
        }
        // Job 1's step ends and makes its next step ready: it runs before the newer jobs.
        q.finished(&started);
        q.push(0, entry(1, "a"));
        let order: Vec<u8> = std::iter::from_fn(|| q.pop_runnable())
            .map(|e| e.job.to_bytes()[0])
            .collect();
        assert_eq!(order, [1, 2, 3, 4]);
    }

    #[test]
    fn limits_hold_tasks_back_until_one_finishes() {
        let limits = Limits {
            per_workflow: HashMap::from([("slow".to_string(), 1)]),
            ..Limits::default()
        };
        let q = ReadyQueue::new(limits);
        q.push(0, entry(1, "slow"));
        q.push(0, entry(2, "slow"));
        q.push(0, entry(3, "fast"));
        let first = q.pop_runnable().unwrap();
        assert_eq!(first.job.to_bytes()[0], 1);
        // The second `slow` task must wait; `fast` overtakes it.
        assert_eq!(q.pop_runnable().unwrap().job.to_bytes()[0], 3);
        assert!(q.pop_runnable().is_none());
        q.finished(&first);
        assert_eq!(q.pop_runnable().unwrap().job.to_bytes()[0], 2);
    }

    #[test]
    fn a_task_is_taken_idle_only_past_an_empty_queue_and_within_its_limits() {
        let limits = Limits {
            per_workflow: HashMap::from([("slow".to_string(), 1)]),
            ..Limits::default()
        };
        let q = ReadyQueue::new(limits);
        let first = entry(1, "slow");
        assert!(q.take_if_idle(&first));
        // It counts as running: the next `slow` task is over the limit.
        assert!(!q.take_if_idle(&entry(2, "slow")));
        // A task that waits keeps the order, even for a task its limit would let run.
        q.push(0, entry(3, "slow"));
        assert!(!q.take_if_idle(&entry(4, "fast")));
        q.finished(&first);
        assert_eq!(q.pop_runnable().unwrap().job.to_bytes()[0], 3);
        assert!(q.take_if_idle(&entry(4, "fast")));
    }
}
