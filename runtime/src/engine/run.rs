//! One attempt of one task, from the ready queue to the committed result.

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::OwnedSemaphorePermit;
use weft_domain::{
    AttemptOutcome, AttemptReport, AttemptStart, Effects, Job, JobId, Machine, PluginDigest,
    PluginError as DomainPluginError, TaskKey, Timestamp,
};
use weft_sandbox::{Outcome, RunRequest, SandboxError, SandboxStop, StepLimitsOverride};
use weft_store::{JobMeta, StoreError};

use super::catalogue::Runnable;
use super::queue::Entry;
use super::{Active, Engine, LONG_ATTEMPT, MIN_WORKERS_PER_THREAD, Running, clock, lock};

/// How long a task whose plugin is not approved (or is disabled) waits before it is looked
/// at again. It occupies no worker meanwhile.
const PARKED_RECHECK: Duration = Duration::from_secs(1);

impl Engine {
    /// Runs `entry`'s task, and then, in the same worker, the next task of the same job and
    /// plugin that its result made ready (a chain runs without going back to the queue; the
    /// next attempt's start is committed with the previous result, in one transaction).
    /// `begun` is the task's attempt when it began with its job's creation.
    pub(super) async fn run_task(
        &self,
        entry: &Entry,
        begun: Option<Begun>,
    ) -> Result<(), StoreError> {
        let Some(active) = self.active(entry.job) else {
            return Ok(());
        };
        let mut task = entry.task.clone();
        let begun = match begun {
            Some(begun) => Some(begun),
            None => self.begin(entry, &active, &task).await?,
        };
        let Some(mut begun) = begun else {
            return Ok(());
        };
        loop {
            let Some(report) = self.execute(entry, &task, &begun).await else {
                return Ok(());
            };
            match self.complete(entry, &active, &task, report).await? {
                Some((next, next_begun)) => {
                    task = next;
                    begun = next_begun;
                }
                None => return Ok(()),
            }
        }
    }

    /// Starts an attempt of `task`: durable before the plugin runs. `None` when the task is
    /// not startable now (parked, paused, cancelled, finished, not due).
    async fn begin(
        &self,
        entry: &Entry,
        active: &Arc<tokio::sync::Mutex<Active>>,
        task: &TaskKey,
    ) -> Result<Option<Begun>, StoreError> {
        let stops_seen = self.stops_so_far();
        let digest = {
            let guard = active.lock().await;
            match guard.job.plugins().get(&task.step) {
                Some(p) => p.digest.clone(),
                None => return Ok(None),
            }
        };
        let Some(runnable) = self.runnable_or_park(entry, &digest).await else {
            return Ok(None);
        };
        let mut guard = active.lock().await;
        let definition = guard.definition.clone();
        let began = Machine::new(&definition).begin_attempt(&mut guard.job, task, clock::now());
        let (start, effects) = match began {
            Ok(began) => began,
            Err(e) => {
                tracing::debug!(job = %entry.job, %task, error = %e, "task not started");
                return Ok(None);
            }
        };
        self.inner.store.commit_job(&guard.job, &effects.events)?;
        let workflow = guard.job.workflow().to_string();
        // Other tasks of the job may commit on top of this one meanwhile: nothing acts on
        // their commits before they are durable either, and durability follows commit order.
        drop(guard);
        self.inner.store.durable().wait().await?;
        self.inner.events.send(effects.events);
        Ok(Some(Begun {
            start,
            stops_seen,
            runnable,
            workflow,
        }))
    }

    /// Begins one of a new job's first tasks (`effects.ready`, from starting it) in the commit
    /// that creates the job, when the task would start at once anyway and the engine is
    /// lightly loaded: a worker is free, no task waits in the queue, the task's limits let it
    /// run, its plugin may run, and fewer than [`MIN_WORKERS_PER_THREAD`] workers per
    /// attempts' thread are at work, this one counted. The job's creation and the attempt's
    /// start are then one durable commit instead of two, and the task never goes through the
    /// queue. The claim must go to [`Engine::run_claimed`] once that commit is durable, or
    /// back through [`Engine::release`].
    ///
    /// Past that load, workers at work take new tasks from the queue as they finish theirs,
    /// which costs less than a worker started for each new job: measured with `bench api`,
    /// 32 clients starting one-step jobs as fast as they could spent 5% more CPU per job
    /// when every first task that could went to a new worker. And a claim counts as a worker
    /// at once, not once its job's creation is durable, so that a burst of thousands of new
    /// jobs claims a few tasks, not a worker each, whose attempts would be waiting on the
    /// burst's commits although they had begun.
    pub(super) async fn begin_with_creation(
        &self,
        machine: &Machine<'_>,
        job: &mut Job,
        meta: &JobMeta,
        effects: &mut Effects,
        now: Timestamp,
    ) -> Option<Claimed> {
        if effects.ready.is_empty() || effects.finished.is_some() || self.inner.workers.is_closed()
        {
            return None;
        }
        // Counted first, in one atomic step with the check: under load this is where a start
        // stops, before any other work.
        let light = MIN_WORKERS_PER_THREAD * self.inner.attempts.metrics().num_workers();
        let counted =
            self.inner
                .active_workers
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |at_work| {
                    (at_work < light).then_some(at_work + 1)
                });
        if counted.is_err() {
            return None;
        }
        let claimed = self
            .claim_first_task(machine, job, meta, effects, now)
            .await;
        if claimed.is_none() {
            self.inner.active_workers.fetch_sub(1, Ordering::SeqCst);
        }
        claimed
    }

    /// [`Engine::begin_with_creation`] past its count of workers: takes a worker, the task's
    /// place in the queue's counts and its plugin, and begins its attempt.
    async fn claim_first_task(
        &self,
        machine: &Machine<'_>,
        job: &mut Job,
        meta: &JobMeta,
        effects: &mut Effects,
        now: Timestamp,
    ) -> Option<Claimed> {
        let task = effects.ready.first()?.clone();
        let plugin = job.plugins().get(&task.step)?;
        let digest = plugin.digest.clone();
        let entry = Entry {
            job: job.id(),
            task: task.clone(),
            workflow: job.workflow().to_string(),
            plugin: plugin.name.to_string(),
            queue: meta.queue.clone(),
        };
        let permit = self.inner.workers.clone().try_acquire_owned().ok()?;
        let Ok(Some(runnable)) = self.inner.catalogue.runnable(&digest).await else {
            return None;
        };
        let stops_seen = self.stops_so_far();
        if !self.inner.queue.take_if_idle(&entry) {
            return None;
        }
        let Ok((start, began)) = machine.begin_attempt(job, &task, now) else {
            self.inner.queue.finished(&entry);
            return None;
        };
        effects.ready.remove(0);
        effects.events.extend(began.events);
        Some(Claimed {
            entry,
            begun: Begun {
                start,
                stops_seen,
                runnable,
                workflow: job.workflow().to_string(),
            },
            permit,
        })
    }

    /// Runs a claimed task, its creation durable, in a worker of its own.
    pub(super) fn run_claimed(&self, claimed: Claimed) {
        self.run_worker(claimed.entry, Some(claimed.begun), claimed.permit);
    }

    /// Gives back a claimed task whose job was not created after all.
    pub(super) fn release(&self, claimed: Claimed) {
        self.inner.queue.finished(&claimed.entry);
        self.inner.active_workers.fetch_sub(1, Ordering::SeqCst);
    }

    /// The plugin, loaded; `None` (and the task parked) when it may not run now.
    async fn runnable_or_park(
        &self,
        entry: &Entry,
        digest: &PluginDigest,
    ) -> Option<Arc<Runnable>> {
        match self.inner.catalogue.runnable(digest).await {
            Ok(Some(runnable)) => Some(runnable),
            Ok(None) => {
                self.park(entry);
                None
            }
            Err(e) => {
                tracing::error!(plugin = %digest, error = %e, "plugin cannot be loaded; task parked");
                self.park(entry);
                None
            }
        }
    }

    /// Runs the attempt in the sandbox, abortably. `None` when it was aborted.
    async fn execute(&self, entry: &Entry, task: &TaskKey, begun: &Begun) -> Option<AttemptReport> {
        let start = &begun.start;
        let request = RunRequest {
            input: start.input.to_string(),
            job_id: entry.job.to_string(),
            workflow: begun.workflow.clone(),
            step_id: task.to_string(),
            attempt: start.attempt,
            limits: StepLimitsOverride {
                fuel: start.fuel,
                deadline_ms: Some(start.timeout_ms),
                memory_bytes: start
                    .memory_bytes
                    .map(|m| usize::try_from(m).unwrap_or(usize::MAX)),
                ..StepLimitsOverride::default()
            },
        };
        let span = tracing::info_span!("attempt", job = %entry.job, step = %task, plugin = %start.plugin.name, attempt = start.attempt);
        let sandbox = self.inner.sandbox.clone();
        let runnable = begun.runnable.clone();
        let attempt = tokio::spawn(tracing::Instrument::instrument(
            async move {
                sandbox
                    .run(&runnable.plugin, &runnable.grants, &request)
                    .await
            },
            span,
        ));
        let key = (entry.job, task.clone());
        lock(&self.inner.running).insert(
            key.clone(),
            Running {
                handle: attempt.abort_handle(),
                digest: start.plugin.digest.clone(),
            },
        );
        if self.stops_so_far() != begun.stops_seen && self.stopped_while_starting(&key, start).await
        {
            attempt.abort();
        }
        let joined = self.join_attempt(attempt).await;
        lock(&self.inner.running).remove(&key);
        Some(match joined {
            Ok(Ok(report)) => domain_report(report),
            // A full instance pool is the host's fault: the attempt ends as interrupted,
            // which is retried.
            Ok(Err(SandboxError::Busy)) => AttemptReport::new(AttemptOutcome::Interrupted),
            Ok(Err(e)) => AttemptReport::new(AttemptOutcome::Trap {
                message: format!("host fault: {e}"),
            }),
            // Stopped because its plugin was disabled: the attempt ends as interrupted.
            Err(e) if e.is_cancelled() && lock(&self.inner.interrupted).remove(&key) => {
                AttemptReport::new(AttemptOutcome::Interrupted)
            }
            // Aborted: the job was cancelled or failed, and the machine already closed it.
            Err(e) if e.is_cancelled() => return None,
            Err(e) => AttemptReport::new(AttemptOutcome::Trap {
                message: format!("host fault: {e}"),
            }),
        })
    }

    /// Awaits an attempt. Once it has run for [`LONG_ATTEMPT`], its worker stops counting as
    /// busy until it ends.
    async fn join_attempt<T>(
        &self,
        mut attempt: tokio::task::JoinHandle<T>,
    ) -> Result<T, tokio::task::JoinError> {
        tokio::select! {
            biased;
            joined = &mut attempt => return joined,
            () = tokio::time::sleep(LONG_ATTEMPT) => {}
        }
        let _waiting = Waiting::count(&self.inner.waiting_workers);
        attempt.await
    }

    /// The engine's count of stops so far: read before an attempt begins.
    fn stops_so_far(&self) -> u64 {
        self.inner.stops.load(Ordering::SeqCst)
    }

    /// Whether the attempt `key`, just registered as running, was stopped before that, when
    /// disabling its plugin or closing its task could not find it to stop it: its plugin is
    /// disabled (the attempt is then interrupted), or its task no longer runs this attempt
    /// (cancelled). Either stop that comes later finds the attempt registered.
    async fn stopped_while_starting(&self, key: &(JobId, TaskKey), start: &AttemptStart) -> bool {
        if let Ok(None) = self.inner.catalogue.runnable(&start.plugin.digest).await {
            lock(&self.inner.interrupted).insert(key.clone());
            return true;
        }
        let Some(active) = self.active(key.0) else {
            return true;
        };
        let guard = active.lock().await;
        let current = guard.job.task(&key.1).and_then(|t| t.attempts().last());
        !current.is_some_and(|a| a.number == start.attempt && a.outcome.is_none())
    }

    /// Records the result and its consequences in one durable commit. When the result made
    /// a task of the same plugin ready, that task's attempt begins in the same commit and is
    /// returned, for this worker to run next.
    async fn complete(
        &self,
        entry: &Entry,
        active: &Arc<tokio::sync::Mutex<Active>>,
        task: &TaskKey,
        report: AttemptReport,
    ) -> Result<Option<(TaskKey, Begun)>, StoreError> {
        let stops_seen = self.stops_so_far();
        let mut guard = active.lock().await;
        let definition = guard.definition.clone();
        let machine = Machine::new(&definition);
        let now = clock::now();
        let mut effects = match machine.complete_attempt(
            &mut guard.job,
            task,
            report,
            clock::jitter_sample(),
            now,
        ) {
            Ok(effects) => effects,
            Err(e) => {
                tracing::debug!(job = %entry.job, %task, error = %e, "result not recorded");
                return Ok(None);
            }
        };
        let mut next = None;
        if let Some(index) = self.continuation(&guard, entry, &effects.ready).await {
            let candidate = effects.ready[index].clone();
            let digest = guard.job.plugins()[&candidate.step].digest.clone();
            if let Ok(Some(runnable)) = self.inner.catalogue.runnable(&digest).await
                && let Ok((start, began)) = machine.begin_attempt(&mut guard.job, &candidate, now)
            {
                effects.ready.remove(index);
                effects.events.extend(began.events);
                next = Some((
                    candidate,
                    Begun {
                        start,
                        stops_seen,
                        runnable,
                        workflow: guard.job.workflow().to_string(),
                    },
                ));
            }
        }
        self.inner.store.commit_job(&guard.job, &effects.events)?;
        // As in `begin`, the job is free for its other tasks while this commit becomes durable.
        drop(guard);
        self.inner.store.durable().wait().await?;
        let ready = effects.ready.clone();
        self.stop_attempts(entry.job, &effects.abort);
        self.after_commit(entry.job, &effects, ready).await;
        Ok(next)
    }

    /// Which of `ready` this worker may run next: one of the same plugin, so that the
    /// queue's per-plugin count stays right.
    async fn continuation(
        &self,
        active: &Active,
        entry: &Entry,
        ready: &[TaskKey],
    ) -> Option<usize> {
        ready.iter().position(|t| {
            active
                .job
                .plugins()
                .get(&t.step)
                .is_some_and(|p| p.name.as_str() == entry.plugin)
        })
    }

    /// Puts a task aside until its plugin can run.
    fn park(&self, entry: &Entry) {
        let due = clock::now().plus_ms(PARKED_RECHECK.as_millis() as u64);
        lock(&self.inner.timers).insert((due, entry.job, entry.task.clone()));
        self.inner.timers_changed.notify_one();
    }
}

/// A worker counted among those in a long attempt while this lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A new job's first task, begun in its creation commit ([`Engine::begin_with_creation`]),
/// with a worker for it and the queue's count of it as running.
pub(super) struct Claimed {
    entry: Entry,
    begun: Begun,
    permit: OwnedSemaphorePermit,
}

/// An attempt that has begun: what the worker needs to run it.
pub(super) struct Begun {
    start: AttemptStart,
    /// The engine's count of stops before the attempt began.
    stops_seen: u64,
    runnable: Arc<Runnable>,
    workflow: String,
}

/// The domain's record of a sandbox report.
fn domain_report(report: weft_sandbox::AttemptReport) -> AttemptReport {
    let log_excerpt = log_excerpt(&report);
    let outcome = match report.outcome {
        Outcome::Succeeded { output } => AttemptOutcome::Succeeded { output },
        Outcome::Failed { error } => AttemptOutcome::PluginError(DomainPluginError {
            code: error.code,
            message: error.message,
            retryable: error.retryable,
            details: error.details,
        }),
        Outcome::Stopped { stop } => match stop {
            SandboxStop::OutOfFuel { .. } => AttemptOutcome::OutOfFuel,
            SandboxStop::DeadlineExceeded { .. } => AttemptOutcome::DeadlineExceeded,
            SandboxStop::MemoryLimit { .. } => AttemptOutcome::MemoryLimit,
            SandboxStop::Trap { message, backtrace } => AttemptOutcome::Trap {
                message: match backtrace {
                    Some(bt) => format!("{message}\n{bt}"),
                    None => message,
                },
            },
            SandboxStop::CapabilityDenied { capability, detail } => {
                AttemptOutcome::CapabilityDenied {
                    message: format!("{capability}: {detail}"),
                }
            }
            SandboxStop::InvalidOutput { detail } => {
                AttemptOutcome::InvalidOutput { message: detail }
            }
        },
    };
    AttemptReport {
        outcome,
        fuel_used: Some(report.fuel_consumed),
        log_excerpt,
    }
}

/// The attempt's log as one text: its log records (`Level message`), then each line it
/// wrote to stdout and to stderr, prefixed with the stream's name, with a note where the
/// capture limit cut the stream.
fn log_excerpt(report: &weft_sandbox::AttemptReport) -> Option<String> {
    use std::fmt::Write;

    let mut text = String::new();
    for record in &report.logs {
        _ = writeln!(text, "{:?} {}", record.level, record.message);
    }
    if report.logs_dropped > 0 {
        _ = writeln!(text, "({} log records dropped)", report.logs_dropped);
    }
    for (stream, captured) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
        for line in captured.text.lines() {
            _ = writeln!(text, "{stream}: {line}");
        }
        if captured.truncated_bytes > 0 {
            _ = writeln!(
                text,
                "({stream}: {} bytes dropped)",
                captured.truncated_bytes
            );
        }
    }
    (!text.is_empty()).then_some(text)
}
