//! The host side of one attempt: the data of its store and the `weft:plugin` imports
//! (`log`, `kv`) implemented on it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::{kv, log};
use crate::capture::CappedPipe;
use crate::grants::{Grants, HttpGate};
use crate::kv::{KvError, KvScope, KvStore};
use crate::limiter::MemoryLimiter;
use crate::outcome::{Denial, LogLevel, LogRecord};

/// Where a plugin's key-value calls go, if it was granted the store.
#[derive(Debug, Clone)]
pub struct KvAccess {
    pub store: Arc<dyn KvStore>,
    pub scope: KvScope,
}

/// Log records of one attempt, within a byte budget.
#[derive(Debug)]
pub struct LogSink {
    started: Instant,
    budget_bytes: usize,
    used_bytes: usize,
    pub records: Vec<LogRecord>,
    pub dropped: u64,
}

impl LogSink {
    fn new(budget_bytes: usize) -> LogSink {
        LogSink {
            started: Instant::now(),
            budget_bytes,
            used_bytes: 0,
            records: Vec::new(),
            dropped: 0,
        }
    }

    fn push(&mut self, level: LogLevel, message: String) {
        if self.used_bytes + message.len() > self.budget_bytes {
            self.dropped += 1;
            return;
        }
        self.used_bytes += message.len();
        self.records.push(LogRecord {
            at_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            level,
            message,
        });
    }
}

/// The data of one attempt's store.
pub struct StepState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    gate: HttpGate,
    pub limiter: MemoryLimiter,
    pub logs: LogSink,
    pub stdout: CappedPipe,
    pub stderr: CappedPipe,
    pub denials: Arc<Mutex<Vec<Denial>>>,
    kv: Option<KvAccess>,
}

/// What a [`StepState`] is built from.
#[derive(Debug)]
pub struct StepStateParts {
    pub grants: Arc<Grants>,
    pub kv: Option<KvAccess>,
    pub memory_bytes: usize,
    pub output_capture_bytes: usize,
    pub log_bytes: usize,
}

impl StepState {
    /// A state with no ambient capability: no env, args, preopens or network.
    pub fn new(parts: StepStateParts) -> StepState {
        let stdout = CappedPipe::new(parts.output_capture_bytes);
        let stderr = CappedPipe::new(parts.output_capture_bytes);
        // The builder's defaults already deny sockets and name lookup; nothing is inherited.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let denials = Arc::new(Mutex::new(Vec::new()));
        let kv = if parts.grants.kv { parts.kv } else { None };
        StepState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            gate: HttpGate::new(parts.grants, denials.clone()),
            limiter: MemoryLimiter::new(parts.memory_bytes),
            logs: LogSink::new(parts.log_bytes),
            stdout,
            stderr,
            denials,
            kv,
        }
    }

    fn deny(&self, capability: &str) {
        self.denials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Denial {
                capability: capability.to_owned(),
            });
    }

    fn kv_call<T>(
        &mut self,
        call: impl FnOnce(&dyn KvStore, &KvScope) -> Result<T, KvError>,
    ) -> Result<T, kv::KvError> {
        let Some(access) = &self.kv else {
            self.deny("kv");
            return Err(kv::KvError::Denied);
        };
        call(access.store.as_ref(), &access.scope).map_err(|e| match e {
            KvError::Denied => kv::KvError::Denied,
            KvError::InvalidKey(m) => kv::KvError::InvalidKey(m),
            KvError::QuotaExceeded(m) => kv::KvError::QuotaExceeded(m),
            KvError::Internal(m) => kv::KvError::Internal(m),
        })
    }
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StepState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

impl log::Host for StepState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.logs.push(level, message);
    }
}

impl kv::Host for StepState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        self.kv_call(|store, scope| store.get(scope, &key))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), kv::KvError> {
        self.kv_call(|store, scope| store.set(scope, &key, value))
    }

    fn delete(&mut self, key: String) -> Result<(), kv::KvError> {
        self.kv_call(|store, scope| store.delete(scope, &key))
    }

    fn list_prefix(&mut self, prefix: String) -> Result<Vec<String>, kv::KvError> {
        self.kv_call(|store, scope| store.list_prefix(scope, &prefix))
    }
}

impl crate::bindings::types::Host for StepState {}
