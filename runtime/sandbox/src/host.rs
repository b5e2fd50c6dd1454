//! The [`Sandbox`]: one wasmtime engine and linker, shared by every plugin and attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    UpdateDeadline,
};

use crate::bindings::{TaskPre, kv, log, types};
use crate::cache::ArtifactCache;
use crate::config::{SandboxConfig, StepLimits, StepLimitsOverride};
use crate::digest::Digest;
use crate::grants::Grants;
use crate::kv::{KvScope, KvStore};
use crate::outcome::{AttemptReport, Outcome, SandboxStop};
use crate::plugin::{LoadError, Plugin, info_from_wit};
use crate::state::{KvAccess, StepState, StepStateParts};
use crate::validate::{self, ValidationError};

/// A fault of the host, not of the plugin: the attempt did not really run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Every instance slot is in use; try again when a step finishes.
    #[error("every sandbox instance slot is in use")]
    Busy,
    /// The engine could not be configured.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
}

/// What to run: one attempt of one step.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The rendered input, a JSON document.
    pub input: String,
    /// Identifier of the job.
    pub job_id: String,
    /// Name of the workflow.
    pub workflow: String,
    /// Identifier of the step (with `[index]` for an item of a fan-out).
    pub step_id: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Limits set by the step itself, over the plugin grant and the defaults.
    pub limits: StepLimitsOverride,
}

/// Loads plugins and runs attempts. Cheap to clone; clones share the engine.
#[derive(Clone, Debug)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<StepState>,
    config: SandboxConfig,
    cache: ArtifactCache,
    kv: Arc<dyn KvStore>,
    ticker: EpochTicker,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Linear memory kept mapped between instances of a slot, so that a fresh instance of a
/// small plugin does not pay for mmap and page faults again.
const MEMORY_KEEP_RESIDENT_BYTES: usize = 2 * 1024 * 1024;
/// Likewise for tables and async stacks.
const TABLE_KEEP_RESIDENT_BYTES: usize = 64 * 1024;
const STACK_KEEP_RESIDENT_BYTES: usize = 64 * 1024;
/// Largest single linear memory; the per-step limit is enforced below this by the limiter.
const MAX_MEMORY_BYTES: usize = 4 << 30;
/// Core instances, memories and tables a component may hold. Components from interpreted
/// language toolchains are made of many core modules.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
const MAX_MEMORIES_PER_COMPONENT: u32 = 16;
const MAX_TABLES_PER_COMPONENT: u32 = 64;
/// Room for instance metadata of large components.
const MAX_CORE_INSTANCE_BYTES: usize = 4 << 20;
const MAX_COMPONENT_INSTANCE_BYTES: usize = 4 << 20;

fn engine(config: &SandboxConfig) -> Result<Engine, SandboxError> {
    let mut pool = PoolingAllocationConfig::new();
    let instances = config.max_instances;
    pool.total_component_instances(instances)
        .total_core_instances(instances * 4)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_core_instance_size(MAX_CORE_INSTANCE_BYTES)
        .max_component_instance_size(MAX_COMPONENT_INSTANCE_BYTES)
        .max_memory_size(MAX_MEMORY_BYTES)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT_BYTES)
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES)
        .async_stack_keep_resident(STACK_KEEP_RESIDENT_BYTES)
        .pagemap_scan(Enabled::Auto);
    let mut wasm = Config::new();
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .consume_fuel(config.meter_fuel)
        .epoch_interruption(true)
        .wasm_component_model(true);
    Engine::new(&wasm).map_err(|e| SandboxError::Setup(format!("{e:#}")))
}

fn linker(engine: &Engine) -> Result<Linker<StepState>, SandboxError> {
    let setup = |e: wasmtime::Error| SandboxError::Setup(format!("{e:#}"));
    let mut linker = Linker::new(engine);
    // Every standard WASI 0.2 interface is linked, so that components from any toolchain
    // link; the state of each attempt denies what it must (no preopens, no sockets).
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(setup)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(setup)?;
    type Host = wasmtime::component::HasSelf<StepState>;
    log::add_to_linker::<_, Host>(&mut linker, |s| s).map_err(setup)?;
    kv::add_to_linker::<_, Host>(&mut linker, |s| s).map_err(setup)?;
    types::add_to_linker::<_, Host>(&mut linker, |s| s).map_err(setup)?;
    Ok(linker)
}

impl Sandbox {
    /// A sandbox whose plugins use `kv` as their key-value store.
    pub fn new(config: SandboxConfig, kv: Arc<dyn KvStore>) -> Result<Sandbox, SandboxError> {
        let engine = engine(&config)?;
        let linker = linker(&engine)?;
        let cache = ArtifactCache::open(config.artifact_dir.clone(), &engine)
            .map_err(|e| SandboxError::Setup(format!("artifact cache: {e}")))?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick);
        Ok(Sandbox {
            inner: Arc::new(Inner {
                engine,
                linker,
                config,
                cache,
                kv,
                ticker,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Validates, compiles (or loads from the artifact cache) and describes a component.
    pub async fn load(&self, bytes: &[u8]) -> Result<Plugin, LoadError> {
        validate::check_bytes(bytes, self.inner.config.max_component_bytes)?;
        let digest = Digest::of(bytes);
        let component = self.compile(digest, bytes).await?;
        validate::check_imports(&component, &self.inner.engine)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| ValidationError::NotATask(format!("{e:#}")))?;
        let pre = TaskPre::new(pre).map_err(|e| ValidationError::NotATask(format!("{e:#}")))?;
        let info = self.describe(&pre).await?;
        Ok(Plugin {
            digest,
            size_bytes: bytes.len(),
            info,
            pre,
        })
    }

    /// Compiles `bytes` or loads its verified artifact, off the async threads.
    async fn compile(&self, digest: Digest, bytes: &[u8]) -> Result<Component, LoadError> {
        let inner = self.inner.clone();
        let bytes = bytes.to_vec();
        let (component, provenance) = tokio::task::spawn_blocking(move || {
            inner.cache.load_or_compile(&inner.engine, &digest, &bytes)
        })
        .await
        .map_err(|e| LoadError::Host(e.to_string()))?
        .map_err(ValidationError::Invalid)?;
        tracing::debug!(%digest, ?provenance, "component ready");
        Ok(component)
    }

    async fn describe(&self, pre: &TaskPre<StepState>) -> Result<crate::PluginInfo, LoadError> {
        let limits = self.inner.config.describe_limits;
        let mut store = self.store(limits, Arc::new(Grants::default()), None);
        let call = async {
            let task = pre.instantiate_async(&mut store).await?;
            task.call_describe(&mut store).await
        };
        let raw = match tokio::time::timeout(outer_deadline(limits.deadline), call).await {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) => return Err(LoadError::DescribeFailed(format!("{e:#}"))),
            Err(_) => return Err(LoadError::DescribeFailed("deadline exceeded".into())),
        };
        info_from_wit(raw)
    }

    fn store(
        &self,
        limits: StepLimits,
        grants: Arc<Grants>,
        kv: Option<KvAccess>,
    ) -> Store<StepState> {
        let state = StepState::new(StepStateParts {
            grants,
            kv,
            memory_bytes: limits.memory_bytes,
            output_capture_bytes: limits.output_capture_bytes,
            log_bytes: limits.log_bytes,
        });
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        if self.inner.config.meter_fuel {
            // Fuel is enabled on the engine, so setting it cannot fail.
            store.set_fuel(limits.fuel).expect("fuel is enabled");
        }
        // At every tick the guest yields to the async runtime, so a CPU-bound plugin never
        // holds a runtime thread for long; once the deadline has passed it is interrupted.
        let deadline_at = Instant::now() + limits.deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline_at {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store
    }

    /// Runs one attempt of a step of `plugin` with `grants`.
    pub async fn run(
        &self,
        plugin: &Plugin,
        grants: &Grants,
        request: &RunRequest,
    ) -> Result<AttemptReport, SandboxError> {
        let limits = self
            .inner
            .config
            .default_limits
            .with(&grants.limits)
            .with(&request.limits);
        let kv = KvAccess {
            store: self.inner.kv.clone(),
            scope: KvScope {
                plugin: plugin.info.name.clone(),
                namespace: request.workflow.clone(),
            },
        };
        let mut store = self.store(limits, Arc::new(grants.clone()), Some(kv));
        let ctx = types::StepContext {
            job_id: request.job_id.clone(),
            workflow: request.workflow.clone(),
            step_id: request.step_id.clone(),
            attempt: request.attempt,
        };
        let started = Instant::now();
        let call = async {
            let task = plugin.pre.instantiate_async(&mut store).await?;
            task.call_run(&mut store, &request.input, &ctx).await
        };
        let result = tokio::time::timeout(outer_deadline(limits.deadline), call).await;
        let duration = started.elapsed();
        let outcome = match result {
            Ok(Ok(Ok(output))) => parse_output(&output),
            Ok(Ok(Err(error))) => Outcome::Failed {
                error: crate::outcome::TaskError {
                    code: error.code,
                    message: error.message,
                    retryable: error.retryable,
                    details: error
                        .details
                        .map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d))),
                },
            },
            Ok(Err(e)) if e.is::<wasmtime::PoolConcurrencyLimitError>() => {
                return Err(SandboxError::Busy);
            }
            Ok(Err(e)) => Outcome::Stopped {
                stop: crate::outcome::classify_error(&e, &limits, &store.data().stderr.contents()),
            },
            Err(_) => Outcome::Stopped {
                stop: SandboxStop::DeadlineExceeded {
                    deadline_ms: u64::try_from(limits.deadline.as_millis()).unwrap_or(u64::MAX),
                },
            },
        };
        Ok(report(store, limits, outcome, duration))
    }
}

/// The host-side timeout around a call: the epoch deadline stops running wasm, but not a
/// host call in progress (an HTTP request), so this stops those a little later.
fn outer_deadline(deadline: Duration) -> Duration {
    deadline + Duration::from_millis(100) + deadline / 10
}

fn parse_output(output: &str) -> Outcome {
    match serde_json::from_str(output) {
        Ok(output) => Outcome::Succeeded { output },
        Err(e) => Outcome::Stopped {
            stop: SandboxStop::InvalidOutput {
                detail: format!("output is not a JSON document: {e}"),
            },
        },
    }
}

fn report(
    store: Store<StepState>,
    limits: StepLimits,
    outcome: Outcome,
    duration: Duration,
) -> AttemptReport {
    // Without metering there is no fuel to read: report none consumed.
    let fuel_left = store.get_fuel().unwrap_or(limits.fuel);
    let state = store.into_data();
    let denials = state
        .denials
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let outcome = crate::outcome::blame_denial(outcome, &denials);
    AttemptReport {
        outcome,
        fuel_consumed: limits.fuel.saturating_sub(fuel_left),
        duration,
        peak_memory_bytes: state.limiter.peak_bytes(),
        logs: state.logs.records,
        logs_dropped: state.logs.dropped,
        stdout: state.stdout.contents(),
        stderr: state.stderr.contents(),
        denials,
    }
}

/// A thread that advances the engine's epoch, the clock of every deadline.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("weft-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            _ = thread.join();
        }
    }
}
