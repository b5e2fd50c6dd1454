//! Points in time as Weft records them: milliseconds since the Unix epoch.
//!
//! The domain never reads a clock. Every operation that needs the current time takes a
//! [`Timestamp`] argument, which keeps the job state machine deterministic and its tests exact.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in time, in milliseconds since the Unix epoch (UTC).
///
/// Serialized as a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch itself.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The time `unix_ms` milliseconds after the Unix epoch.
    pub const fn from_unix_ms(unix_ms: u64) -> Self {
        Timestamp(unix_ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_ms(self) -> u64 {
        self.0
    }

    /// The time `delay_ms` milliseconds later, saturating at the end of representable time.
    pub const fn plus_ms(self, delay_ms: u64) -> Self {
        Timestamp(self.0.saturating_add(delay_ms))
    }

    /// Milliseconds from `earlier` to `self`, or zero when `earlier` is later.
    pub const fn ms_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_unix_ms(u64::MAX - 1);
        assert_eq!(t.plus_ms(10).as_unix_ms(), u64::MAX);
        assert_eq!(Timestamp::EPOCH.ms_since(t), 0);
        assert_eq!(t.ms_since(Timestamp::EPOCH), u64::MAX - 1);
    }

    #[test]
    fn serializes_as_integer() {
        let t = Timestamp::from_unix_ms(1_700_000_000_123);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1700000000123");
    }
}
