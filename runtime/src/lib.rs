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

/// mimalloc's `mi_option_purge_delay`, which the bindings do not name: its place in the C
/// enum `mi_option_t`, just before the option they name below.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const _: () = assert!(libmimalloc_sys::mi_option_use_numa_nodes - 1 == MI_OPTION_PURGE_DELAY);

/// How long, in milliseconds, the allocator keeps freed memory before it gives it back to
/// the OS. mimalloc's default is 10 ms. Giving memory back unmaps it, and interrupts every
/// core to drop its stale address translations; measured with `bench engine`, the memory
/// thousands of finished jobs freed at once went back in the middle of the next steps and
/// stalled them for 5-40 ms (the 3,000-chain step-to-step p99: median 2.2 ms over 8 runs
/// with the default, 1.9 ms over 12 with this).
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// Sets the allocator's options, once per process. The engine calls it when it starts, so
/// that the daemon, its tests and its benchmarks all run with them.
pub(crate) fn tune_allocator() {
    static TUNED: std::sync::Once = std::sync::Once::new();
    TUNED.call_once(|| {
        // SAFETY: sets one of mimalloc's integer options, which it reads atomically; no
        // memory of ours is involved.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        }
    });
}

#[cfg(test)]
mod allocator_tests {
    #[test]
    fn the_allocator_keeps_freed_memory_for_the_purge_delay() {
        super::tune_allocator();
        // SAFETY: reads one of mimalloc's integer options.
        #[allow(unsafe_code)]
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, super::PURGE_DELAY_MS);
    }
}

pub mod access;
pub mod api;
pub mod daemon;
pub mod engine;
pub mod metrics;
