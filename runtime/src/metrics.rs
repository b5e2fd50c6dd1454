//! [`Metrics`]: what the daemon has been doing, counted from the engine's events and served as
//! Prometheus text at `/metrics`.
//!
//! The engine publishes every durable event ([`Engine::subscribe`]); this module watches them
//! and keeps: jobs by state (seeded from the store at start, so it covers jobs of earlier
//! runs), step attempts started and finished by outcome, a histogram of attempt durations,
//! the attempts running now, and sandbox stops by kind. Counters start at zero with the
//! process, as Prometheus expects. The queue depth is read from the engine when scraped.
//!
//! Events carry their job's sequence number: events already reflected by the store scan are
//! skipped, and if the watcher falls behind the channel it scans the store again.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use weft_domain::{ErrorKind, Event, EventKind, JobId, JobState, StepId, StepState, Timestamp};
use weft_store::{JobQuery, StoreError};

use crate::engine::{Engine, EventReceiver};

/// Upper bounds of the attempt duration histogram, in seconds: from a trivial plugin to the
/// longest deadline anyone should use.
const DURATION_BUCKETS_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// How an attempt ended, as the `outcome` label says it. Every value is always exported.
const OUTCOMES: [&str; 10] = [
    "succeeded",
    "plugin_error",
    "out_of_fuel",
    "deadline_exceeded",
    "memory_limit",
    "trap",
    "capability_denied",
    "invalid_output",
    "interrupted",
    "cancelled",
];

/// Outcomes that mean the sandbox stopped the plugin.
const SANDBOX_STOPS: [&str; 6] = [
    "out_of_fuel",
    "deadline_exceeded",
    "memory_limit",
    "trap",
    "capability_denied",
    "invalid_output",
];

const JOB_STATES: [JobState; 6] = [
    JobState::Pending,
    JobState::Running,
    JobState::Paused,
    JobState::Succeeded,
    JobState::Failed,
    JobState::Cancelled,
];

/// Jobs read from the store per page when seeding.
const SCAN_PAGE: usize = 1_000;

type TaskId = (JobId, StepId, Option<u32>);

#[derive(Debug, Default)]
struct Counters {
    /// Unfinished jobs: state and the last event applied.
    unfinished: HashMap<JobId, (JobState, u64)>,
    /// Finished jobs by state.
    finished: BTreeMap<&'static str, u64>,
    /// Attempts running, with when they started.
    running: HashMap<TaskId, Timestamp>,
    started: u64,
    outcomes: BTreeMap<&'static str, u64>,
    bucket_counts: [u64; DURATION_BUCKETS_SECONDS.len()],
    duration_count: u64,
    duration_sum_seconds: f64,
}

/// The daemon's metrics; see the module documentation.
#[derive(Debug)]
pub struct Metrics {
    engine: Engine,
    counters: Mutex<Counters>,
    running: watch::Sender<usize>,
}

fn outcome_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::PluginError => "plugin_error",
        ErrorKind::OutOfFuel => "out_of_fuel",
        ErrorKind::DeadlineExceeded => "deadline_exceeded",
        ErrorKind::MemoryLimit => "memory_limit",
        ErrorKind::Trap => "trap",
        ErrorKind::CapabilityDenied => "capability_denied",
        ErrorKind::InvalidOutput => "invalid_output",
        ErrorKind::Interrupted => "interrupted",
        // Failures that end a step without an attempt ending; never paired with a running
        // attempt, so never counted.
        ErrorKind::Input
        | ErrorKind::Condition
        | ErrorKind::ForEach
        | ErrorKind::FailureBudget
        | ErrorKind::Output => "other",
    }
}

impl Counters {
    /// Rebuilds the job and attempt gauges from the store.
    fn seed(&mut self, engine: &Engine) -> Result<(), StoreError> {
        self.unfinished.clear();
        self.finished.clear();
        self.running.clear();
        let mut query = JobQuery::newest(SCAN_PAGE);
        loop {
            let page = engine.store().jobs(&query)?;
            for job in &page.jobs {
                if job.state().is_terminal() {
                    *self.finished.entry(job.state().as_str()).or_default() += 1;
                    continue;
                }
                self.unfinished
                    .insert(job.id(), (job.state(), job.last_event_sequence()));
                for (key, task) in job.tasks() {
                    if task.state() == StepState::Running
                        && let Some(attempt) = task.attempts().last()
                    {
                        self.running
                            .insert((job.id(), key.step, key.item), attempt.started_at);
                    }
                }
            }
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(()),
            }
        }
    }

    fn apply(&mut self, event: &Event) {
        let job = event.job_id;
        match self.unfinished.get_mut(&job) {
            Some((_, last)) if event.sequence <= *last => return,
            Some((_, last)) => *last = event.sequence,
            None if matches!(event.kind, EventKind::JobCreated { .. }) => {
                self.unfinished
                    .insert(job, (JobState::Pending, event.sequence));
            }
            // A job this watcher does not know: finished before it started watching.
            None => return,
        }
        let set_state = |counters: &mut Counters, state: JobState| {
            if let Some(entry) = counters.unfinished.get_mut(&job) {
                entry.0 = state;
            }
        };
        match &event.kind {
            EventKind::JobCreated { .. } => {}
            EventKind::JobStarted | EventKind::JobResumed => set_state(self, JobState::Running),
            EventKind::JobPaused => set_state(self, JobState::Paused),
            EventKind::JobSucceeded => self.finish_job(job, JobState::Succeeded, event.at),
            EventKind::JobFailed { .. } => self.finish_job(job, JobState::Failed, event.at),
            EventKind::JobCancelled { .. } => self.finish_job(job, JobState::Cancelled, event.at),
            EventKind::StepStarted { step, item, .. } => {
                self.started += 1;
                self.running.insert((job, step.clone(), *item), event.at);
            }
            EventKind::StepSucceeded {
                step,
                item,
                attempt: Some(_),
            } => self.finish_attempt(&(job, step.clone(), *item), "succeeded", event.at),
            EventKind::StepRetrying {
                step, item, error, ..
            }
            | EventKind::StepFailed {
                step,
                item,
                attempt: Some(_),
                error,
            } => self.finish_attempt(
                &(job, step.clone(), *item),
                outcome_label(error.kind),
                event.at,
            ),
            EventKind::StepCancelled { step, item } => {
                self.finish_attempt(&(job, step.clone(), *item), "cancelled", event.at);
            }
            _ => {}
        }
    }

    fn finish_job(&mut self, job: JobId, state: JobState, at: Timestamp) {
        self.unfinished.remove(&job);
        *self.finished.entry(state.as_str()).or_default() += 1;
        let left: Vec<TaskId> = self
            .running
            .keys()
            .filter(|(id, _, _)| *id == job)
            .cloned()
            .collect();
        for task in left {
            self.finish_attempt(&task, "cancelled", at);
        }
    }

    fn finish_attempt(&mut self, task: &TaskId, outcome: &'static str, at: Timestamp) {
        let Some(started) = self.running.remove(task) else {
            return;
        };
        *self.outcomes.entry(outcome).or_default() += 1;
        let seconds = at.ms_since(started) as f64 / 1000.0;
        self.duration_count += 1;
        self.duration_sum_seconds += seconds;
        for (count, bound) in self.bucket_counts.iter_mut().zip(DURATION_BUCKETS_SECONDS) {
            if seconds <= bound {
                *count += 1;
            }
        }
    }
}

impl Metrics {
    /// Starts watching `engine`: seeds the job counts from its store, then follows its events.
    /// Must be called inside a tokio runtime.
    pub fn start(engine: &Engine) -> Result<Arc<Metrics>, StoreError> {
        // Subscribe before reading the store, so no event falls between the two.
        let events = engine.subscribe();
        let mut counters = Counters::default();
        counters.seed(engine)?;
        let (running, _) = watch::channel(counters.running.len());
        let metrics = Arc::new(Metrics {
            engine: engine.clone(),
            counters: Mutex::new(counters),
            running,
        });
        tokio::spawn(Arc::clone(&metrics).watch(events));
        Ok(metrics)
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn watch(self: Arc<Self>, mut events: EventReceiver) {
        loop {
            // One lock, and one update of the running count, for all the events of a
            // publication: a flush makes many commits durable at once.
            let received = events.recv_many().await;
            let running = {
                let mut counters = self.counters();
                match received {
                    Ok(received) => received.iter().for_each(|event| counters.apply(event)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed_commits = missed,
                            "metrics fell behind the engine's events; rescanning the store"
                        );
                        if let Err(e) = counters.seed(&self.engine) {
                            tracing::error!(error = %e, "cannot rescan the store for metrics");
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
                counters.running.len()
            };
            self.running.send_if_modified(|count| {
                let changed = *count != running;
                *count = running;
                changed
            });
        }
    }

    /// Attempts running now.
    pub fn attempts_running(&self) -> usize {
        *self.running.borrow()
    }

    /// Waits until no attempt is running, at most `grace`; returns whether none is.
    pub async fn wait_until_idle(&self, grace: Duration) -> bool {
        let mut running = self.running.subscribe();
        tokio::time::timeout(grace, running.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let queue_depth = self.engine.queue_depth();
        let c = self.counters();
        let mut out = String::new();
        let mut jobs = BTreeMap::<&str, u64>::new();
        for (state, _) in c.unfinished.values() {
            *jobs.entry(state.as_str()).or_default() += 1;
        }
        header(&mut out, "weft_jobs", "gauge", "Jobs by state, as stored.");
        for state in JOB_STATES {
            let name = state.as_str();
            let count = jobs.get(name).copied().unwrap_or_default()
                + c.finished.get(name).copied().unwrap_or_default();
            _ = writeln!(out, "weft_jobs{{state=\"{name}\"}} {count}");
        }
        header(
            &mut out,
            "weft_step_attempts_started_total",
            "counter",
            "Step attempts started.",
        );
        _ = writeln!(out, "weft_step_attempts_started_total {}", c.started);
        header(
            &mut out,
            "weft_step_attempts_finished_total",
            "counter",
            "Step attempts finished, by outcome.",
        );
        for outcome in OUTCOMES {
            let count = c.outcomes.get(outcome).copied().unwrap_or_default();
            _ = writeln!(
                out,
                "weft_step_attempts_finished_total{{outcome=\"{outcome}\"}} {count}"
            );
        }
        header(
            &mut out,
            "weft_step_attempts_running",
            "gauge",
            "Step attempts running now.",
        );
        _ = writeln!(out, "weft_step_attempts_running {}", c.running.len());
        header(
            &mut out,
            "weft_step_attempt_duration_seconds",
            "histogram",
            "Duration of finished step attempts.",
        );
        for (bound, count) in DURATION_BUCKETS_SECONDS.iter().zip(c.bucket_counts) {
            _ = writeln!(
                out,
                "weft_step_attempt_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        _ = writeln!(
            out,
            "weft_step_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            c.duration_count
        );
        _ = writeln!(
            out,
            "weft_step_attempt_duration_seconds_sum {}",
            c.duration_sum_seconds
        );
        _ = writeln!(
            out,
            "weft_step_attempt_duration_seconds_count {}",
            c.duration_count
        );
        header(
            &mut out,
            "weft_sandbox_stops_total",
            "counter",
            "Attempts the sandbox stopped, by kind.",
        );
        for kind in SANDBOX_STOPS {
            let count = c.outcomes.get(kind).copied().unwrap_or_default();
            _ = writeln!(out, "weft_sandbox_stops_total{{kind=\"{kind}\"}} {count}");
        }
        header(
            &mut out,
            "weft_queue_depth",
            "gauge",
            "Tasks waiting for a worker.",
        );
        _ = writeln!(out, "weft_queue_depth {queue_depth}");
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    _ = writeln!(out, "# HELP {name} {help}");
    _ = writeln!(out, "# TYPE {name} {kind}");
}
