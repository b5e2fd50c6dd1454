//! The memory limiter of a step's store.
//!
//! It limits the total of all linear memories of the instance (a plain per-memory limit lets
//! a component with several memories use several times the limit), and it refuses growth
//! past the limit with a typed error instead of letting `memory.grow` return -1: a Rust guest
//! answers -1 with an allocation-failure abort, which would look like any other trap.

use wasmtime::ResourceLimiter;

/// The error that stops a guest growing its memory past the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "memory limit of {limit_bytes} bytes reached: the plugin asked for {requested_bytes} bytes"
)]
pub struct MemoryLimitExceeded {
    /// The limit.
    pub limit_bytes: usize,
    /// The total the plugin asked for.
    pub requested_bytes: usize,
}

/// Tracks and limits the linear memory of one store.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit_bytes: usize,
    total_bytes: usize,
    peak_bytes: usize,
}

/// Table elements allowed per table; far above what real components use, and bounded so a
/// plugin cannot exhaust host memory through tables.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl MemoryLimiter {
    /// A limiter allowing `limit_bytes` of linear memory in total.
    pub fn new(limit_bytes: usize) -> MemoryLimiter {
        MemoryLimiter {
            limit_bytes,
            total_bytes: 0,
            peak_bytes: 0,
        }
    }

    /// The highest total reached.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let requested = self.total_bytes - current.min(self.total_bytes) + desired;
        if requested > self.limit_bytes {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit_bytes: self.limit_bytes,
                requested_bytes: requested,
            }));
        }
        self.total_bytes = requested;
        self.peak_bytes = self.peak_bytes.max(requested);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_the_sum_of_all_memories() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        // A second memory of 50 would bring the total to 110.
        let err = limiter.memory_growing(0, 50, None).unwrap_err();
        let exceeded = err.downcast_ref::<MemoryLimitExceeded>().unwrap();
        assert_eq!(exceeded.requested_bytes, 110);
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert_eq!(limiter.peak_bytes(), 100);
    }
}
