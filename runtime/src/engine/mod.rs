//! The engine: runs jobs as graphs of sandboxed steps, durably.
//!
//! It owns scheduling and nothing else: what a step *means* is decided by the domain's state
//! machine ([`weft_domain::Machine`]), how it *runs* by the sandbox, and where state *lives*
//! by the store. The loop for every attempt is:
//!
//! 1. a worker takes a ready task from the [`queue`] (priority, then oldest job first;
//!    concurrency limits per workflow, plugin and named queue);
//! 2. under the job's lock, the machine begins the attempt; the job and its events are
//!    committed and made durable before the plugin runs, so a crash leaves an open attempt
//!    that recovery ends as `interrupted`. (A new job's first task that would start at once
//!    skips the queue: its attempt begins in the commit that creates the job, and a worker
//!    takes it once that is durable.)
//! 3. the sandbox runs the attempt (cancellable: cancelling a job aborts it);
//! 4. under the job's lock, the machine records the result; the job, its events and every
//!    consequence (steps made ready, retry timers, the job finishing) commit in one
//!    transaction and are durable before anything acts on them.
//!
//! Guarantees: a step whose result was committed never runs again; a step that was running
//! when the daemon stopped runs again as a new attempt (at-least-once for a step without a
//! committed result). Retry waits are timers derived from the stored job (`retry_at`), so
//! they survive restarts with their due time and occupy no worker while they wait.

mod catalogue;
mod clock;
mod events;
mod kv;
pub mod queue;
mod run;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast};
use tokio::task::AbortHandle;
use weft_domain::{
    Effects, EventKind, Job, JobId, JobIdGenerator, Machine, MachineError, PluginDigest,
    SourceFormat, TaskKey, Timestamp, WorkflowDefinition, WorkflowName,
};
use weft_sandbox::Sandbox;
use weft_store::{CreateJob, JobMeta, PluginGrants, PluginRecord, Store, StoreError};

pub use catalogue::{Applied, ApplyError, PluginError, problems_text};
pub use events::{EventReceiver, Received};
pub use kv::StoreKv;

use queue::{Entry, ReadyQueue};

/// Woken tasks waiting for the attempts' threads, per thread, beyond which no worker starts
/// or goes on to another task.
///
/// Measured on 2 cores against 8 per thread (`bench engine`, 6 alternated runs, and profile
/// rounds grouped by CPU per step): as the daemon runs it, the p99 step-to-step latency of
/// 3,000 chains at once was lower in 5 of 6 runs and in every group of rounds (medians
/// 1.19-1.62 ms against 1.31-2.10), and its chains and fan-outs averaged 0.52x and 0.51x the
/// lower baseline against 0.47x and 0.44x; on one runtime, about the same. 2 per thread cut
/// the daemon's p99 to about 1.1 ms but cost the 10-wide fan-outs a third of their throughput.
///
/// The threads' queues miss the tasks woken on a thread itself, which tokio's stable metrics
/// do not count; [`BUSY_PER_THREAD`] bounds the workers at work whatever the queues hold.
const BACKLOG_PER_THREAD: usize = 4;

/// Workers per attempts' thread that may be busy at once: at work, and not in an attempt that
/// has run for [`LONG_ATTEMPT`]. A worker beyond it neither starts nor goes on to another
/// task.
///
/// Fewer jobs in flight wait less for the cores. On their own, they also kept the cores less
/// busy while commits became durable: measured on 2 cores, a cap of 8 per thread cut the p99
/// step-to-step latency of 3,000 chains at once to about 1 ms, from 1.8-1.9, but cost the
/// chains a quarter of their throughput and the 10-wide fan-outs a third. What won that back
/// is the store's group commit flushing once half the busy workers wait, not all of them
/// ([`Store::count_committers`]). With both, against neither (`bench engine`, 3 alternated
/// runs, each row pooling 5 rounds): that p99 was 0.7-0.8 ms on one runtime against 1.6-2.0,
/// and 0.4-0.7 ms as the daemon runs it against 1.0-1.2; on one runtime the chains ran
/// 32,100-32,600 steps/s against 29,600-30,700 and the 10-wide fan-outs 26,200-32,200 against
/// 23,000-24,500. As the daemon runs it, with one attempts' thread, the chains ran 20,900-23,400
/// against 22,600-27,300 and the fan-outs 21,300-22,100 against 25,200-26,000: more flushes,
/// each of which wakes that thread.
const BUSY_PER_THREAD: usize = 12;

/// How long an attempt runs before its worker stops counting as busy: most likely it waits
/// for something outside (a network call, a timer) rather than for a core, and holding other
/// tasks back behind it would leave the cores idle.
const LONG_ATTEMPT: std::time::Duration = std::time::Duration::from_millis(1);

/// Workers per attempts' thread that may always be at work, backlog or not.
const MIN_WORKERS_PER_THREAD: usize = 4;

/// How often the dispatcher looks again while the attempts' threads are backlogged.
const BACKLOG_RECHECK: std::time::Duration = std::time::Duration::from_millis(1);

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Attempts running at once. Must not exceed the sandbox's instance slots.
    pub workers: usize,
    /// Unfinished jobs accepted at once; starting more fails with [`StartError::Busy`].
    pub max_unfinished_jobs: usize,
    /// Concurrency limits per workflow, plugin and named queue.
    pub limits: queue::Limits,
    /// The runtime attempts run on; `None` for the one that starts the engine. The daemon
    /// gives attempts a runtime of their own so that plugins at work never delay its HTTP
    /// requests: a request's task does not queue behind attempts on the same threads.
    pub attempts: Option<tokio::runtime::Handle>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 64,
            max_unfinished_jobs: 100_000,
            limits: queue::Limits::default(),
            attempts: None,
        }
    }
}

/// A request to start a job.
#[derive(Debug, Clone)]
pub struct StartJob {
    /// The workflow.
    pub workflow: WorkflowName,
    /// Its version; the latest when `None`.
    pub version: Option<u32>,
    /// The job input.
    pub input: serde_json::Value,
    /// Higher runs first.
    pub priority: i32,
    /// Named queue.
    pub queue: String,
    /// Starting twice with the same key returns the first job.
    pub idempotency_key: Option<String>,
}

/// Why a job could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No such workflow (or version).
    #[error("workflow {workflow} has no version {version}")]
    UnknownWorkflow {
        /// The workflow.
        workflow: String,
        /// The version asked for, or `latest`.
        version: String,
    },
    /// The input does not fit the workflow, or a plugin cannot be resolved.
    #[error("{0}")]
    Invalid(String),
    /// Too many unfinished jobs.
    #[error("the engine has {0} unfinished jobs, its limit; try again later")]
    Busy(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an operation on a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No such job.
    #[error("no job {0}")]
    NotFound(JobId),
    /// The job is finished, or the operation does not fit its state.
    #[error("{0}")]
    State(#[from] MachineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An attempt in the sandbox.
#[derive(Debug)]
struct Running {
    handle: AbortHandle,
    digest: PluginDigest,
}

/// A job the engine is running, with what it needs to move it on.
#[derive(Debug)]
struct Active {
    job: Job,
    meta: JobMeta,
    definition: Arc<WorkflowDefinition>,
}

/// Runs jobs. Cheap to clone; clones share the engine.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    sandbox: Sandbox,
    config: EngineConfig,
    active: Mutex<HashMap<JobId, Arc<tokio::sync::Mutex<Active>>>>,
    catalogue: catalogue::Catalogue,
    queue: ReadyQueue,
    timers: Mutex<BTreeSet<(Timestamp, JobId, TaskKey)>>,
    timers_changed: Notify,
    running: Mutex<HashMap<(JobId, TaskKey), Running>>,
    /// Attempts stopped because their plugin was disabled: they end as `interrupted`.
    interrupted: Mutex<std::collections::HashSet<(JobId, TaskKey)>>,
    events: events::EventSender,
    ids: Mutex<JobIdGenerator>,
    /// Where attempts run; see [`EngineConfig::attempts`].
    attempts: tokio::runtime::Handle,
    workers: Arc<Semaphore>,
    /// How many times running attempts were looked for to be stopped (a plugin disabled, a
    /// job cancelled or failed). An attempt that sees it change between its begin and its
    /// registration in `running` checks whether it was stopped meanwhile
    /// ([`Engine::stopped_while_starting`]).
    stops: AtomicU64,
    /// Workers at work: each holds a permit of `workers`.
    active_workers: AtomicUsize,
    /// Workers at work whose attempt has run for [`LONG_ATTEMPT`].
    waiting_workers: AtomicUsize,
}

impl Inner {
    /// Workers at work and not in a long attempt; see [`BUSY_PER_THREAD`].
    fn busy_workers(&self) -> usize {
        let waiting = self.waiting_workers.load(Ordering::SeqCst);
        self.active_workers
            .load(Ordering::SeqCst)
            .saturating_sub(waiting)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// Starts an engine on `store`: resumes every unfinished job, then runs the scheduler.
    /// Must be called inside a tokio runtime.
    pub async fn start(
        store: Arc<dyn Store>,
        sandbox: Sandbox,
        config: EngineConfig,
    ) -> Result<Engine, StoreError> {
        crate::tune_allocator();
        let attempts = config
            .attempts
            .clone()
            .unwrap_or_else(tokio::runtime::Handle::current);
        let engine = Engine {
            inner: Arc::new(Inner {
                attempts,
                catalogue: catalogue::Catalogue::new(store.clone(), sandbox.clone()),
                store,
                sandbox,
                workers: Arc::new(Semaphore::new(config.workers)),
                queue: ReadyQueue::new(config.limits.clone()),
                config,
                active: Mutex::default(),
                timers: Mutex::default(),
                timers_changed: Notify::new(),
                running: Mutex::default(),
                interrupted: Mutex::default(),
                events: events::EventSender::new(),
                ids: Mutex::new(JobIdGenerator::new()),
                stops: AtomicU64::new(0),
                active_workers: AtomicUsize::new(0),
                waiting_workers: AtomicUsize::new(0),
            }),
        };
        // The busy workers are the committers that keep coming back: each commits its result
        // and waits for it to be durable before its next task.
        let inner = Arc::downgrade(&engine.inner);
        engine.inner.store.count_committers(Arc::new(move || {
            inner.upgrade().map_or(0, |inner| inner.busy_workers())
        }));
        engine.recover().await?;
        tokio::spawn(engine.clone().dispatch());
        tokio::spawn(engine.clone().fire_timers());
        Ok(engine)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Sandbox {
        &self.inner.sandbox
    }

    /// Every event committed from now on, once durable. A watcher that lags behind is told
    /// so by the channel and re-reads the store from its last sequence.
    pub fn subscribe(&self) -> EventReceiver {
        self.inner.events.subscribe()
    }

    /// The definition a job started now would run: `version` of `name`, or its latest.
    /// `Ok(None)` when there is no such version, or it cannot be read (starting a job says
    /// why). Cached, as versions never change once stored.
    pub fn definition(
        &self,
        name: &WorkflowName,
        version: Option<u32>,
    ) -> Result<Option<Arc<WorkflowDefinition>>, StoreError> {
        match self.inner.catalogue.resolve_definition(name, version) {
            Ok(definition) => Ok(Some(definition)),
            Err(catalogue::DefinitionLookup::Store(e)) => Err(e),
            Err(
                catalogue::DefinitionLookup::Missing | catalogue::DefinitionLookup::Unreadable(_),
            ) => Ok(None),
        }
    }

    /// Number of jobs not finished yet.
    pub fn unfinished_count(&self) -> usize {
        lock(&self.inner.active).len()
    }

    /// Number of tasks waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.inner.queue.len()
    }

    /// Stops handing tasks to workers, for a shutdown: attempts already running go on and
    /// commit; ready tasks stay ready in the store and run after the next start. (A task the
    /// dispatcher was already holding a worker for may still start.) Cannot be undone.
    pub fn stop_dispatching(&self) {
        self.inner.workers.close();
    }

    /// The job, as last committed.
    pub fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.inner.store.job(id)
    }

    /// Validates a component and records it in the catalogue, pending approval. Returns the
    /// record and whether it is new (the same bytes again return the existing record).
    pub async fn add_plugin(&self, bytes: &[u8]) -> Result<(PluginRecord, bool), PluginError> {
        self.inner.catalogue.add_plugin(bytes).await
    }

    /// Approves a plugin with exactly `grants`; only approved plugins run.
    pub async fn approve_plugin(
        &self,
        digest: &PluginDigest,
        grants: PluginGrants,
    ) -> Result<PluginRecord, PluginError> {
        self.inner.catalogue.approve(digest, grants).await
    }

    /// Disables a plugin: tasks of it wait until it is approved again.
    /// Disables a plugin: its running attempts are stopped and end as `interrupted` (retried
    /// as the step's policy allows), and its tasks wait until it is approved again.
    pub async fn disable_plugin(&self, digest: &PluginDigest) -> Result<PluginRecord, PluginError> {
        let record = self.inner.catalogue.disable(digest).await?;
        self.count_stop();
        let running = lock(&self.inner.running);
        let mut interrupted = lock(&self.inner.interrupted);
        for (key, attempt) in running.iter().filter(|(_, r)| &r.digest == digest) {
            interrupted.insert(key.clone());
            attempt.handle.abort();
        }
        Ok(record)
    }

    /// Validates a workflow definition against the approved plugins and records it.
    pub async fn apply_definition(
        &self,
        source: &str,
        format: SourceFormat,
    ) -> Result<Applied, ApplyError> {
        self.inner.catalogue.apply(source, format).await
    }

    /// Resumes every unfinished job found in the store.
    async fn recover(&self) -> Result<(), StoreError> {
        let now = clock::now();
        let unfinished = self.inner.store.unfinished_jobs()?;
        let count = unfinished.len();
        for (mut job, meta) in unfinished {
            let definition = match self
                .inner
                .catalogue
                .definition(job.workflow(), job.version())
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(job = %job.id(), error = %e, "cannot resume job: its definition is unreadable");
                    continue;
                }
            };
            let machine = Machine::new(&definition);
            let effects = if job.state() == weft_domain::JobState::Pending {
                machine.start(&mut job, now)
            } else {
                machine.recover_interrupted(&mut job, clock::jitter_sample(), now)
            };
            let effects = match effects {
                Ok(effects) => effects,
                Err(e) => {
                    tracing::error!(job = %job.id(), error = %e, "cannot resume job");
                    continue;
                }
            };
            if !effects.events.is_empty() {
                self.inner.store.commit_job(&job, &effects.events)?;
            }
            let id = job.id();
            let ready = job.claimable_tasks(now);
            // Retries keep the due times they were given before the restart.
            self.arm(
                job.tasks()
                    .filter_map(|(key, task)| task.retry_at().map(|due| (due, id, key)))
                    .collect(),
            );
            self.admit(Active {
                job,
                meta,
                definition,
            });
            self.after_commit(id, &effects, ready).await;
        }
        self.inner.store.durable().wait().await?;
        if count > 0 {
            tracing::info!(jobs = count, "resumed unfinished jobs");
        }
        Ok(())
    }

    /// Counts a search of `running` for attempts to stop; made before the search.
    fn count_stop(&self) {
        self.inner.stops.fetch_add(1, Ordering::SeqCst);
    }

    fn admit(&self, active: Active) {
        let id = active.job.id();
        lock(&self.inner.active).insert(id, Arc::new(tokio::sync::Mutex::new(active)));
    }

    fn active(&self, id: JobId) -> Option<Arc<tokio::sync::Mutex<Active>>> {
        lock(&self.inner.active).get(&id).cloned()
    }

    /// Starts a job.
    pub async fn start_job(&self, request: StartJob) -> Result<JobId, StartError> {
        let unfinished = lock(&self.inner.active).len();
        if unfinished >= self.inner.config.max_unfinished_jobs {
            return Err(StartError::Busy(unfinished));
        }
        let definition = self
            .inner
            .catalogue
            .resolve_definition(&request.workflow, request.version)
            .map_err(|e| match e {
                catalogue::DefinitionLookup::Missing => StartError::UnknownWorkflow {
                    workflow: request.workflow.to_string(),
                    version: request.version.map_or("latest".into(), |v| v.to_string()),
                },
                catalogue::DefinitionLookup::Store(e) => StartError::Store(e),
                catalogue::DefinitionLookup::Unreadable(e) => StartError::Invalid(e),
            })?;
        let plugins = self.inner.catalogue.resolve_plugins(&definition)?;
        let now = clock::now();
        let id = lock(&self.inner.ids).generate(now, clock::id_randomness());
        let (mut job, created) = Job::create(id, &definition, request.input, plugins, now)
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        let machine = Machine::new(&definition);
        let mut effects = machine
            .start(&mut job, now)
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        effects.events.insert(0, created);
        let meta = JobMeta::new(request.priority, request.queue, request.idempotency_key);
        let mut claimed = self
            .begin_with_creation(&machine, &mut job, &meta, &mut effects, now)
            .await;
        let found = match self.inner.store.create_job(&job, &meta, &effects.events) {
            Ok(CreateJob::Created) => self.inner.store.durable().wait().await.map(|()| None),
            Ok(CreateJob::Existing(existing)) => Ok(Some(existing)),
            Err(e) => Err(e),
        };
        // A start that finds its idempotent job already there, or whose commit failed, gives
        // back the task it claimed.
        if !matches!(found, Ok(None))
            && let Some(claimed) = claimed.take()
        {
            self.release(claimed);
        }
        if let Some(existing) = found? {
            return Ok(existing);
        }
        let ready = effects.ready.clone();
        let active = Active {
            job,
            meta,
            definition,
        };
        let finished = effects.finished.is_some();
        if !finished {
            self.admit(active);
        }
        self.after_commit(id, &effects, ready).await;
        if let Some(claimed) = claimed {
            self.run_claimed(claimed);
        }
        Ok(id)
    }

    /// Cancels a job: every unfinished step is cancelled and running attempts are stopped.
    pub async fn cancel_job(&self, id: JobId, reason: Option<String>) -> Result<Job, JobError> {
        self.change_job(id, |machine, job, now| machine.cancel(job, reason, now))
            .await
    }

    /// Pauses a job: no new attempt starts until it is resumed.
    pub async fn pause_job(&self, id: JobId) -> Result<Job, JobError> {
        self.change_job(id, |machine, job, now| machine.pause(job, now))
            .await
    }

    /// Resumes a paused job.
    pub async fn resume_job(&self, id: JobId) -> Result<Job, JobError> {
        self.change_job(id, |machine, job, now| machine.resume(job, now))
            .await
    }

    async fn change_job(
        &self,
        id: JobId,
        change: impl FnOnce(&Machine<'_>, &mut Job, Timestamp) -> Result<Effects, MachineError>,
    ) -> Result<Job, JobError> {
        let Some(active) = self.active(id) else {
            return match self.inner.store.job(id)? {
                // Finished jobs are not active; let the machine say why the change is refused.
                Some(mut job) => {
                    let definition = self
                        .inner
                        .catalogue
                        .definition(job.workflow(), job.version())
                        .map_err(|_| JobError::NotFound(id))?;
                    change(&Machine::new(&definition), &mut job, clock::now())?;
                    Ok(job)
                }
                None => Err(JobError::NotFound(id)),
            };
        };
        let mut guard = active.lock().await;
        let now = clock::now();
        let definition = guard.definition.clone();
        let effects = change(&Machine::new(&definition), &mut guard.job, now)?;
        self.inner.store.commit_job(&guard.job, &effects.events)?;
        self.inner.store.durable().wait().await?;
        let ready = guard.job.claimable_tasks(now);
        let job = guard.job.clone();
        drop(guard);
        self.stop_attempts(id, &effects.abort);
        self.after_commit(id, &effects, ready).await;
        Ok(job)
    }

    /// Stops the running attempts of `tasks` of job `id`.
    fn stop_attempts(&self, id: JobId, tasks: &[TaskKey]) {
        if tasks.is_empty() {
            return;
        }
        self.count_stop();
        for task in tasks {
            if let Some(running) = lock(&self.inner.running).remove(&(id, task.clone())) {
                running.handle.abort();
            }
        }
    }

    /// Acts on a durable commit: publishes its events, queues the tasks that can start,
    /// arms retry timers, and forgets a finished job.
    async fn after_commit(&self, id: JobId, effects: &Effects, ready: Vec<TaskKey>) {
        self.inner.events.send(effects.events.as_slice());
        if effects.finished.is_some() {
            // Queued tasks of the job are dropped when a worker finds the job gone.
            lock(&self.inner.active).remove(&id);
            return;
        }
        let Some(active) = self.active(id) else {
            return;
        };
        // Retries this commit scheduled. (One that falls due while its job is paused has its
        // timer dropped; resuming the job makes it ready.)
        let timers: Vec<_> = effects
            .events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::StepRetrying {
                    step, item, due_at, ..
                } => Some((
                    *due_at,
                    id,
                    TaskKey {
                        step: step.clone(),
                        item: *item,
                    },
                )),
                _ => None,
            })
            .collect();
        if !ready.is_empty() {
            let guard = active.lock().await;
            for task in ready {
                self.enqueue(&guard, task);
            }
        }
        self.arm(timers);
    }

    /// Adds retry timers.
    fn arm(&self, timers: Vec<(Timestamp, JobId, TaskKey)>) {
        if !timers.is_empty() {
            lock(&self.inner.timers).extend(timers);
            self.inner.timers_changed.notify_one();
        }
    }

    fn enqueue(&self, active: &Active, task: TaskKey) {
        let plugin = active
            .job
            .plugins()
            .get(&task.step)
            .map(|p| p.name.to_string())
            .unwrap_or_default();
        self.inner.queue.push(
            active.meta.priority,
            Entry {
                job: active.job.id(),
                task,
                workflow: active.job.workflow().to_string(),
                plugin,
                queue: active.meta.queue.clone(),
            },
        );
    }

    /// Hands ready tasks to new workers, as many at once as there are worker permits, unless
    /// the attempts' threads are backlogged ([`Engine::backlogged`]) or too many workers are
    /// busy ([`BUSY_PER_THREAD`]).
    async fn dispatch(self) {
        loop {
            let Ok(permit) = self.inner.workers.clone().acquire_owned().await else {
                return;
            };
            let entry = loop {
                if self.inner.workers.is_closed() {
                    return;
                }
                if self.backlogged() || self.inner.busy_workers() >= self.busy_cap() {
                    // Not woken by the queue: under load it changes all the time.
                    tokio::time::sleep(BACKLOG_RECHECK).await;
                    continue;
                }
                if let Some(entry) = self.inner.queue.pop_runnable() {
                    break entry;
                }
                self.inner.queue.changed().await;
            };
            self.spawn_worker(entry, permit);
        }
    }

    /// Starts a worker on the attempts' threads, holding `permit`, for `entry`.
    fn spawn_worker(&self, entry: Entry, permit: OwnedSemaphorePermit) {
        self.inner.active_workers.fetch_add(1, Ordering::SeqCst);
        self.run_worker(entry, None, permit);
    }

    /// Starts a worker already counted in `active_workers`, holding `permit`, for `entry`
    /// (whose attempt has begun when `begun` is given).
    fn run_worker(&self, entry: Entry, begun: Option<run::Begun>, permit: OwnedSemaphorePermit) {
        let engine = self.clone();
        self.inner.attempts.spawn(async move {
            engine.work(entry, begun).await;
            engine.inner.active_workers.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
        });
    }

    /// A worker: runs `entry`'s task, then takes the next from the queue itself, until the
    /// queue has none it may run. While every worker is busy, tasks thus go from one to the
    /// next on the attempts' threads, without a round trip through the dispatcher. A worker
    /// also stops when the attempts' threads are backlogged, or too many workers are busy
    /// ([`BUSY_PER_THREAD`]).
    async fn work(&self, mut entry: Entry, mut begun: Option<run::Begun>) {
        loop {
            if let Err(e) = self.run_task(&entry, begun.take()).await {
                tracing::error!(job = %entry.job, task = %entry.task, error = %e, "attempt failed in the host");
            }
            self.inner.queue.finished(&entry);
            // This worker counts among the busy ones: it goes on if the others leave room.
            if self.inner.workers.is_closed()
                || self.backlogged()
                || self.inner.busy_workers() > self.busy_cap()
            {
                return;
            }
            match self.inner.queue.pop_runnable() {
                Some(next) => entry = next,
                None => return,
            }
        }
    }

    /// How many workers may be busy at once: [`BUSY_PER_THREAD`] per attempts' thread.
    fn busy_cap(&self) -> usize {
        BUSY_PER_THREAD * self.inner.attempts.metrics().num_workers()
    }

    /// Whether the attempts' threads have more woken tasks waiting for them than
    /// [`BACKLOG_PER_THREAD`] each while at least [`MIN_WORKERS_PER_THREAD`] workers each are
    /// at work. More workers would then add no throughput, since the cores are busy, only
    /// delay: a worker woken by a flush waits behind every task woken before it.
    fn backlogged(&self) -> bool {
        let metrics = self.inner.attempts.metrics();
        let threads = metrics.num_workers();
        self.inner.active_workers.load(Ordering::SeqCst) >= MIN_WORKERS_PER_THREAD * threads
            && metrics.global_queue_depth() > BACKLOG_PER_THREAD * threads
    }

    /// Moves tasks whose retry is due, and parked tasks, into the ready queue.
    async fn fire_timers(self) {
        loop {
            let next = lock(&self.inner.timers).first().cloned();
            let Some((due, job, task)) = next else {
                self.inner.timers_changed.notified().await;
                continue;
            };
            let wait_ms = due.ms_since(clock::now());
            if wait_ms > 0 {
                let sleep = tokio::time::sleep(std::time::Duration::from_millis(wait_ms));
                tokio::select! {
                    () = sleep => {}
                    () = self.inner.timers_changed.notified() => continue,
                }
            }
            lock(&self.inner.timers).remove(&(due, job, task.clone()));
            // A timer is a retry falling due or a parked task to look at again; either way
            // the task goes to the queue if it can start now. A task queued twice is harmless:
            // the second attempt to begin it is refused.
            if let Some(active) = self.active(job) {
                let guard = active.lock().await;
                if guard.job.claimable_tasks(clock::now()).contains(&task) {
                    self.enqueue(&guard, task);
                }
            }
        }
    }

    /// Waits until job `id` is finished and returns it.
    pub async fn wait_finished(&self, id: JobId) -> Result<Job, JobError> {
        let mut events = self.subscribe();
        loop {
            let job = self.inner.store.job(id)?.ok_or(JobError::NotFound(id))?;
            if job.state().is_terminal() {
                return Ok(job);
            }
            loop {
                match events.recv().await {
                    Ok(event) if event.job_id == id => break,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return Ok(job),
                }
            }
        }
    }
}
