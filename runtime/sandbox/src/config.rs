//! Sandbox configuration: admission limits, where compiled artifacts live, and the resource
//! limits a step gets unless its plugin grant or the step itself says otherwise.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Configuration of a [`Sandbox`](crate::Sandbox). Every field has a default fit for a
/// daemon on a small machine.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Largest component accepted, in bytes. Larger uploads are refused before parsing.
    pub max_component_bytes: usize,
    /// Directory for precompiled artifacts. `None` keeps them in memory only, so every start
    /// compiles again.
    pub artifact_dir: Option<PathBuf>,
    /// Limits of a step when neither its grant nor the step overrides them.
    pub default_limits: StepLimits,
    /// Limits of the `describe` call made when a plugin is loaded.
    pub describe_limits: StepLimits,
    /// How many plugin instances may exist at once. The pooling allocator reserves address
    /// space for this many up front; the engine must not run more steps than this at once.
    pub max_instances: u32,
    /// How often the deadline clock ticks. Deadlines are checked at this granularity.
    pub epoch_tick: Duration,
    /// Whether fuel is metered. Only a benchmark turns this off, to measure what metering
    /// costs: without it the fuel limit is gone and only the deadline bounds a step.
    pub meter_fuel: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_component_bytes: 32 * 1024 * 1024,
            artifact_dir: None,
            default_limits: StepLimits::default(),
            describe_limits: StepLimits {
                fuel: 100_000_000,
                deadline: Duration::from_secs(5),
                ..StepLimits::default()
            },
            max_instances: 256,
            epoch_tick: Duration::from_millis(5),
            meter_fuel: true,
        }
    }
}

/// Resource limits of one attempt of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepLimits {
    /// Fuel budget: roughly one unit per WebAssembly instruction. Fuel bounds work, not time
    /// (the rate varies with the workload); the deadline bounds time.
    pub fuel: u64,
    /// Wall-clock deadline of the attempt, host calls (HTTP) included.
    #[serde(with = "duration_ms", rename = "deadline_ms")]
    pub deadline: Duration,
    /// Total linear memory of the instance, in bytes, summed over all its memories.
    pub memory_bytes: usize,
    /// How much of stdout, and separately of stderr, is kept; the rest is dropped and the
    /// capture says how much was dropped.
    pub output_capture_bytes: usize,
    /// How many bytes of log messages an attempt may write; further records are dropped.
    pub log_bytes: usize,
}

impl Default for StepLimits {
    fn default() -> Self {
        StepLimits {
            fuel: 10_000_000_000,
            deadline: Duration::from_secs(30),
            memory_bytes: 256 * 1024 * 1024,
            output_capture_bytes: 64 * 1024,
            log_bytes: 256 * 1024,
        }
    }
}

/// Overrides of some [`StepLimits`], as given by a plugin grant or a step definition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepLimitsOverride {
    /// Fuel budget.
    pub fuel: Option<u64>,
    /// Wall-clock deadline in milliseconds.
    pub deadline_ms: Option<u64>,
    /// Linear memory in bytes.
    pub memory_bytes: Option<usize>,
    /// Captured bytes of stdout and of stderr.
    pub output_capture_bytes: Option<usize>,
    /// Bytes of log messages.
    pub log_bytes: Option<usize>,
}

impl StepLimits {
    /// These limits with every field that `over` sets replaced.
    pub fn with(self, over: &StepLimitsOverride) -> StepLimits {
        StepLimits {
            fuel: over.fuel.unwrap_or(self.fuel),
            deadline: over
                .deadline_ms
                .map(Duration::from_millis)
                .unwrap_or(self.deadline),
            memory_bytes: over.memory_bytes.unwrap_or(self.memory_bytes),
            output_capture_bytes: over
                .output_capture_bytes
                .unwrap_or(self.output_capture_bytes),
            log_bytes: over.log_bytes.unwrap_or(self.log_bytes),
        }
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_set() {
        let base = StepLimits::default();
        let limits = base.with(&StepLimitsOverride {
            deadline_ms: Some(250),
            ..Default::default()
        });
        assert_eq!(limits.deadline, Duration::from_millis(250));
        assert_eq!(limits.fuel, base.fuel);
        assert_eq!(limits.memory_bytes, base.memory_bytes);
    }
}
