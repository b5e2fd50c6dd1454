//! The Weft daemon as a library: the engine that runs jobs, and the command line over it.
//!
//! Layers point one way: `weft-domain` (pure types and the job state machine) ← `weft-store`
//! (sled behind the `Store` trait) ← `weft-sandbox` (the only wasmtime user) ← [`engine`]
//! (scheduling, workers, timers, recovery) ← [`api`] (HTTP, with [`access`] control and
//! [`metrics`]) ← [`daemon`] (data directory, serving, draining) ← the CLI (`src/cli/`).

/// Every program built on this library (the daemon, its tests and benchmarks) allocates
/// through mimalloc, so that benchmarks measure the allocator the daemon runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod access;
pub mod api;
pub mod daemon;
pub mod engine;
pub mod metrics;
