//! The Weft daemon as a library: the engine that runs jobs, and the command line over it.
//!
//! Layers point one way: `weft-domain` (pure types and the job state machine) ← `weft-store`
//! (sled behind the `Store` trait) ← `weft-sandbox` (the only wasmtime user) ← [`engine`]
//! (scheduling, workers, timers, recovery) ← [`api`] (HTTP, with [`access`] control and
//! [`metrics`]) ← [`daemon`] (data directory, serving, draining) ← the CLI (`src/cli/`).

pub mod access;
pub mod api;
pub mod daemon;
pub mod engine;
pub mod metrics;
