//! The daemon: opens the data directory, starts the engine and serves the API until told to
//! stop, then drains.
//!
//! Layout of the data directory: `db/` (the sled store), `artifacts/` (compiled plugins),
//! `tokens.json` (token digests) and `admin.token` (a generated bootstrap token).
//!
//! Draining ([`Daemon::shutdown`]): the server stops accepting connections and finishes the
//! requests in flight, event streams end, the engine stops starting attempts, and running
//! attempts get up to `drain_grace_ms` to finish and commit; whatever is still running then is
//! interrupted and runs again on the next start (a step without a committed result is
//! retried).
//!
//! Attempts run on a runtime of their own (`weft-attempt` threads), beside the one that
//! serves HTTP: a request's task never queues behind plugins at work on the same threads, so
//! the API stays responsive while every worker is busy. The operating system shares the
//! cores between the two.

mod config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use weft_sandbox::{Sandbox, SandboxConfig, SandboxError};
use weft_store::{SledConfig, SledStore, Store, StoreError};

pub use config::{ConfigError, DaemonConfig, RawConcurrency, RawConfig};

use crate::access::{
    ADMIN_TOKEN_ENV, BootstrapError, BootstrapToken, TokenError, Tokens, bootstrap,
};
use crate::api::{ApiConfig, AppState, router};
use crate::engine::{Engine, EngineConfig, StoreKv, queue};

/// Why the daemon could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The data directory cannot be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The sandbox could not be set up.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The bootstrap token could not be set up.
    #[error("admin token: {0}")]
    Bootstrap(#[from] BootstrapError),
    /// The token file could not be read.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// The address cannot be listened on.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server: {0}")]
    Server(std::io::Error),
    /// The runtime for attempts could not be started.
    #[error("cannot start the runtime for attempts: {0}")]
    Runtime(std::io::Error),
}

/// A running daemon.
#[derive(Debug)]
pub struct Daemon {
    state: AppState,
    local_addr: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
    drain_grace: Duration,
    attempts: AttemptRuntime,
}

/// The runtime attempts run on, with [`DaemonConfig::attempt_threads`] worker threads.
/// [`stop`](Self::stop) ends what still runs on it once draining is over; dropping it
/// instead (a daemon dropped without [`Daemon::shutdown`], in async code as often as not)
/// abandons that work without waiting for it, as when the process exits.
#[derive(Debug)]
struct AttemptRuntime(Option<tokio::runtime::Runtime>);

/// Threads for attempts unless the config says otherwise: half the cores, at least one. The
/// other runtime, which serves HTTP, creates jobs and commits, keeps a thread per core.
///
/// Measured on 2 cores (`bench api` and `bench engine`, interleaved with 2 attempt threads):
/// with 1, the API started 17% more jobs per second at 16% less CPU each, its p99 at 32
/// clients fell from 4.7-5.2 to 4.1-4.4 ms (5 pairs), and starts behind four spinning
/// plugins kept a core to themselves. Fewer threads on the cores wake and steal from each
/// other less: the engine's steps cost 15-20% less CPU. The price: plugins together get half
/// the cores, so the engine alone, chains of `echo` steps and nothing else, ran 10-15% fewer
/// steps per second. For plugins that compute rather than wait, raise `attempt_threads`.
pub fn default_attempt_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 2).max(1))
}

/// A runtime built as the daemon builds the one its attempts run on: `threads` worker
/// threads, named `weft-attempt`. Public so that benchmarks measure the engine as the daemon
/// runs it.
pub fn attempt_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("weft-attempt")
        .enable_all()
        .build()
}

impl AttemptRuntime {
    fn start(threads: usize) -> Result<Self, DaemonError> {
        attempt_runtime(threads)
            .map(|runtime| AttemptRuntime(Some(runtime)))
            .map_err(DaemonError::Runtime)
    }

    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|runtime| runtime.handle().clone())
    }

    /// Drops the attempts still running (interrupted: they run again on the next start) and
    /// waits for the runtime's threads, so that nothing of the engine outlives the daemon.
    async fn stop(mut self) {
        if let Some(runtime) = self.0.take() {
            let stopped = tokio::task::spawn_blocking(move || {
                runtime.shutdown_timeout(Duration::from_secs(5));
            })
            .await;
            if let Err(error) = stopped {
                tracing::error!(%error, "stopping the runtime for attempts failed");
            }
        }
    }
}

impl Drop for AttemptRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// What draining left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Attempts still running when the grace period ended; they run again on the next start.
    pub interrupted_attempts: usize,
}

fn create_data_dir(path: &std::path::Path) -> Result<(), DaemonError> {
    let error = |source| DaemonError::DataDir {
        path: path.to_owned(),
        source,
    };
    if !path.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            // It holds token digests and maybe the admin token.
            builder.mode(0o700);
        }
        builder.create(path).map_err(error)?;
    }
    Ok(())
}

impl Daemon {
    /// Opens the data directory, starts the engine and begins serving. Must be called inside
    /// a tokio runtime.
    pub async fn start(config: DaemonConfig) -> Result<Daemon, DaemonError> {
        create_data_dir(&config.data_dir)?;
        let store: Arc<dyn Store> = Arc::new(SledStore::open(
            &config.data_dir.join("db"),
            SledConfig {
                cache_capacity_bytes: config.cache_capacity_bytes,
                group_commit_linger: Duration::from_micros(config.group_commit_linger_us),
                ..SledConfig::default()
            },
        )?);
        let sandbox = Sandbox::new(
            SandboxConfig {
                max_component_bytes: config.max_component_bytes,
                artifact_dir: Some(config.data_dir.join("artifacts")),
                ..SandboxConfig::default()
            },
            Arc::new(StoreKv::new(store.clone())),
        )?;
        let attempts = AttemptRuntime::start(config.attempt_threads)?;
        let engine = Engine::start(
            store,
            sandbox,
            EngineConfig {
                attempts: attempts.handle(),
                workers: config.workers,
                max_unfinished_jobs: config.max_unfinished_jobs,
                limits: queue::Limits {
                    per_workflow: config.concurrency.per_workflow.clone(),
                    per_plugin: config.concurrency.per_plugin.clone(),
                    per_queue: config.concurrency.per_queue.clone(),
                },
            },
        )
        .await?;

        let (secret, source) = bootstrap(&config.data_dir, config.admin_token.clone())?;
        match source {
            BootstrapToken::Environment => {
                tracing::info!("the admin token is the one in {ADMIN_TOKEN_ENV}");
            }
            BootstrapToken::File(path) => {
                tracing::info!(path = %path.display(), "the admin token is in this file");
            }
            BootstrapToken::Generated(path) => {
                tracing::warn!(path = %path.display(), "generated an admin token and wrote it to this file (mode 0600)");
            }
        }
        let tokens = Tokens::open(&config.data_dir, &secret)?;
        if config.auto_approve {
            tracing::warn!(
                "auto_approve is on: uploaded plugins run with every capability they request"
            );
        }
        let state = AppState::new(
            engine,
            tokens,
            ApiConfig {
                max_component_bytes: config.max_component_bytes,
                max_request_body_bytes: config.max_request_body_bytes,
                auto_approve: config.auto_approve,
                ..ApiConfig::default()
            },
        )?;

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| DaemonError::Bind {
                    address: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(DaemonError::Server)?;
        let app = router(state.clone());
        let stopping = state.clone();
        // Responses go out as soon as they are written: with Nagle's algorithm on, a response
        // written in two parts (an SSE stream's headers, then its first event) waits for the
        // client's delayed acknowledgement, about 40 ms.
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
            }
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopping.shutting_down().await })
                .await
        });
        tracing::info!(address = %local_addr, "listening on {local_addr}");
        Ok(Daemon {
            state,
            local_addr,
            server,
            drain_grace: Duration::from_millis(config.drain_grace_ms),
            attempts,
        })
    }

    /// The address the daemon listens on (with the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until SIGTERM or SIGINT, then drains.
    pub async fn run_until_signal(self) -> Result<Drained, DaemonError> {
        wait_for_signal().await;
        tracing::info!("stopping: draining running attempts");
        self.shutdown().await
    }

    /// Stops serving and drains; see the module documentation.
    pub async fn shutdown(self) -> Result<Drained, DaemonError> {
        self.state.begin_shutdown();
        match self.server.await {
            Ok(result) => result.map_err(DaemonError::Server)?,
            Err(e) => tracing::error!(error = %e, "the server task failed"),
        }
        self.state.engine().stop_dispatching();
        let metrics = self.state.metrics();
        let idle = metrics.wait_until_idle(self.drain_grace).await;
        let interrupted_attempts = if idle { 0 } else { metrics.attempts_running() };
        self.state.engine().store().durable().wait().await?;
        self.attempts.stop().await;
        if interrupted_attempts > 0 {
            tracing::warn!(
                attempts = interrupted_attempts,
                "grace period over: attempts still running are interrupted and run again on the next start"
            );
        }
        tracing::info!("stopped");
        Ok(Drained {
            interrupted_attempts,
        })
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot watch for SIGTERM; stopping on Ctrl-C only");
                _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests;
