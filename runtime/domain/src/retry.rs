//! Retry policies: how many attempts a step gets, how long to wait between them, and which
//! failures are worth another attempt.
//!
//! The delay after the n-th failed attempt is `initial_interval_ms × multiplier^(n-1)`, capped
//! at `max_interval_ms`, then shortened by up to `jitter` of itself:
//! `delay × (1 − jitter × sample)` with `sample` drawn by the caller from `[0, 1)`. Jitter only
//! ever shortens the delay, so `max_interval_ms` is a true bound, and steps that failed
//! together (a shared dependency went down) do not all come back at the same instant.

use serde::Serialize;

use crate::attempt::AttemptOutcome;
use crate::time::Timestamp;

/// Most attempts a step may ask for; beyond this a failing step mostly burns resources.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Longest allowed retry interval: one day.
pub const MAX_INTERVAL_LIMIT_MS: u64 = 86_400_000;
/// Largest allowed backoff multiplier.
pub const MAX_MULTIPLIER: f64 = 10.0;

/// Which failures the policy retries. Failures not listed here (a plugin error marked not
/// retryable, out of fuel, memory limit, capability denied, invalid output) never are: the
/// same input would fail the same way. An attempt `interrupted` by a daemon crash is always
/// retried while attempts remain, since it never got to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetryOn {
    /// Retry plugin errors that the plugin marked retryable. Default `true`.
    pub plugin_error: bool,
    /// Retry attempts stopped at their deadline. Default `true`.
    pub deadline_exceeded: bool,
    /// Retry attempts that trapped (a crash inside the plugin). Default `false`, since a trap
    /// is usually a bug that repeats.
    pub trap: bool,
}

impl Default for RetryOn {
    fn default() -> Self {
        RetryOn {
            plugin_error: true,
            deadline_exceeded: true,
            trap: false,
        }
    }
}

/// A step's retry policy; see the module documentation for the delay formula.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Attempts in total, including the first; 1 means never retry. 1 to [`MAX_ATTEMPTS_LIMIT`].
    pub max_attempts: u32,
    /// Delay after the first failed attempt. 1 to [`MAX_INTERVAL_LIMIT_MS`].
    pub initial_interval_ms: u64,
    /// Factor applied to the delay after each further failure. 1.0 to [`MAX_MULTIPLIER`].
    pub multiplier: f64,
    /// Upper bound of the delay. `initial_interval_ms` to [`MAX_INTERVAL_LIMIT_MS`].
    pub max_interval_ms: u64,
    /// Fraction of the delay that jitter may take off. 0.0 to 1.0.
    pub jitter: f64,
    /// Which failures are retried.
    pub retry_on: RetryOn,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_interval_ms: 1_000,
            multiplier: 2.0,
            max_interval_ms: 60_000,
            jitter: 0.1,
            retry_on: RetryOn::default(),
        }
    }
}

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this time.
    RetryAt(Timestamp),
    /// The failure is not retried by the policy.
    NotRetryable,
    /// The failure would be retried, but every attempt is used.
    AttemptsExhausted,
}

impl RetryPolicy {
    /// Milliseconds to wait after attempt number `failed_attempt` (from 1) failed, given a
    /// jitter sample from `[0, 1)` (values outside are clamped into it).
    pub fn delay_ms(&self, failed_attempt: u32, jitter_sample: f64) -> u64 {
        let exponent = i32::try_from(failed_attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let cap = self.max_interval_ms as f64;
        // `min` also absorbs an infinite power after many attempts.
        let base = (self.initial_interval_ms as f64 * self.multiplier.powi(exponent)).min(cap);
        let sample = if jitter_sample.is_nan() {
            0.0
        } else {
            jitter_sample.clamp(0.0, 1.0)
        };
        let delay = base * (1.0 - self.jitter.clamp(0.0, 1.0) * sample);
        // Float-to-int `as` saturates, and the value is already within [0, cap].
        delay.round() as u64
    }

    /// Decides what follows attempt number `attempt` (from 1) ending with `outcome`, which must
    /// be a failure; a success is reported as [`RetryDecision::NotRetryable`].
    pub fn decide(
        &self,
        attempt: u32,
        outcome: &AttemptOutcome,
        jitter_sample: f64,
        now: Timestamp,
    ) -> RetryDecision {
        if !outcome.is_retried_by(&self.retry_on) {
            RetryDecision::NotRetryable
        } else if attempt >= self.max_attempts {
            RetryDecision::AttemptsExhausted
        } else {
            RetryDecision::RetryAt(now.plus_ms(self.delay_ms(attempt, jitter_sample)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::PluginError;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_interval_ms: 200,
            multiplier: 2.0,
            max_interval_ms: 1_000,
            jitter,
            retry_on: RetryOn::default(),
        }
    }

    #[test]
    fn delays_grow_geometrically_up_to_the_cap() {
        let delays: Vec<u64> = (1..=6)
            .map(|attempt| policy(0.0).delay_ms(attempt, 0.5))
            .collect();
        assert_eq!(delays, [200, 400, 800, 1_000, 1_000, 1_000]);
        assert_eq!(policy(0.0).delay_ms(u32::MAX, 0.0), 1_000);
        assert_eq!(policy(0.0).delay_ms(0, 0.0), 200);
    }

    #[test]
    fn jitter_only_shortens() {
        let p = policy(0.5);
        assert_eq!(p.delay_ms(2, 0.0), 400);
        assert_eq!(p.delay_ms(2, 0.5), 300);
        assert_eq!(p.delay_ms(2, 0.999_999), 200);
        assert_eq!(p.delay_ms(2, 7.0), 200);
        assert_eq!(p.delay_ms(2, -1.0), 400);
        assert_eq!(p.delay_ms(2, f64::NAN), 400);
    }

    #[test]
    fn decisions_follow_outcome_class_and_attempts() {
        let p = policy(0.0);
        let now = Timestamp::from_unix_ms(10_000);
        let retryable = AttemptOutcome::PluginError(PluginError {
            code: "unavailable".to_owned(),
            message: "503".to_owned(),
            retryable: true,
            details: None,
        });
        assert_eq!(
            p.decide(1, &retryable, 0.0, now),
            RetryDecision::RetryAt(now.plus_ms(200))
        );
        assert_eq!(
            p.decide(5, &retryable, 0.0, now),
            RetryDecision::AttemptsExhausted
        );
        let trap = AttemptOutcome::Trap {
            message: "unreachable".to_owned(),
        };
        assert_eq!(p.decide(1, &trap, 0.0, now), RetryDecision::NotRetryable);
        assert_eq!(
            p.decide(1, &AttemptOutcome::Interrupted, 0.0, now),
            RetryDecision::RetryAt(now.plus_ms(200))
        );
    }
}
