//! Numeric limits of a definition and their range checks: timeouts, fuel, memory, fan-out and
//! retry settings. Defaults are filled in here, so a value is checked the same way whether it
//! was written or defaulted.

use std::fmt::Display;

use crate::fanout::{DEFAULT_CONCURRENCY, FanOutLimits, MAX_CONCURRENCY};
use crate::pointer::JsonPointer;
use crate::retry::{
    MAX_ATTEMPTS_LIMIT, MAX_INTERVAL_LIMIT_MS, MAX_MULTIPLIER, RetryOn, RetryPolicy,
};
use crate::template::Template;

use super::raw::{RawRetry, RawStep};
use super::{ForEach, Problem, ProblemKind};

pub(super) fn out_of_range<T: Display>(
    at: JsonPointer,
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Problem {
    let kind = ProblemKind::OutOfRange {
        field,
        value: value.to_string(),
        min: min.to_string(),
        max: max.to_string(),
    };
    Problem::new(at, kind)
}

/// `value` if it lies in `min..=max`; otherwise reports it and returns `None`.
pub(super) fn in_range<T: PartialOrd + Display + Copy>(
    value: T,
    (min, max): (T, T),
    field: &'static str,
    at: JsonPointer,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    if value >= min && value <= max {
        Some(value)
    } else {
        problems.push(out_of_range(at, field, value, min, max));
        None
    }
}

pub(super) fn optional_in_range(
    value: Option<u64>,
    range: (u64, u64),
    field: &'static str,
    at: JsonPointer,
    problems: &mut Vec<Problem>,
) -> Option<Option<u64>> {
    match value {
        None => Some(None),
        Some(value) => in_range(value, range, field, at, problems).map(Some),
    }
}

/// Validates `for_each` with its `concurrency` and `max_failures`: `Some(None)` for a step
/// without fan-out, `None` after reporting a problem.
pub(super) fn read_for_each(
    raw: &RawStep,
    at: &JsonPointer,
    problems: &mut Vec<Problem>,
) -> Option<Option<ForEach>> {
    let Some(source) = &raw.for_each else {
        let mut valid = true;
        for (field, present) in [
            ("concurrency", raw.concurrency.is_some()),
            ("max_failures", raw.max_failures.is_some()),
        ] {
            if present {
                problems.push(Problem::new(
                    at.field(field),
                    ProblemKind::RequiresField {
                        field,
                        requires: "for_each",
                    },
                ));
                valid = false;
            }
        }
        return valid.then_some(None);
    };
    let concurrency = raw.concurrency.unwrap_or(u64::from(DEFAULT_CONCURRENCY));
    let concurrency = in_range(
        concurrency,
        (1, u64::from(MAX_CONCURRENCY)),
        "concurrency",
        at.field("concurrency"),
        problems,
    );
    let max_failures = in_range(
        raw.max_failures.unwrap_or(0),
        (0, u64::from(u32::MAX)),
        "max_failures",
        at.field("max_failures"),
        problems,
    );
    let items = match Template::parse(source) {
        Ok(Template::Whole(reference)) => Some(Template::Whole(reference)),
        Ok(Template::Text(_)) => {
            let message = "for_each must be a single `${...}` reference to an array".to_owned();
            problems.push(Problem::new(
                at.field("for_each"),
                ProblemKind::Rule { message },
            ));
            None
        }
        Err(error) => {
            problems.push(Problem::new(at.field("for_each"), error));
            None
        }
    };
    let limits = FanOutLimits {
        concurrency: u32::try_from(concurrency?).ok()?,
        max_failures: u32::try_from(max_failures?).ok()?,
    };
    Some(Some(ForEach {
        items: items?,
        limits,
    }))
}

pub(super) fn read_retry(
    raw: RawRetry,
    at: &JsonPointer,
    problems: &mut Vec<Problem>,
) -> Option<RetryPolicy> {
    let defaults = RetryPolicy::default();
    let max_attempts = in_range(
        raw.max_attempts.unwrap_or(u64::from(defaults.max_attempts)),
        (1, u64::from(MAX_ATTEMPTS_LIMIT)),
        "max_attempts",
        at.field("max_attempts"),
        problems,
    );
    let initial = in_range(
        raw.initial_interval_ms
            .unwrap_or(defaults.initial_interval_ms),
        (1, MAX_INTERVAL_LIMIT_MS),
        "initial_interval_ms",
        at.field("initial_interval_ms"),
        problems,
    );
    // The cap must not be below the first interval; when the first interval is invalid, check
    // the cap against the widest range so that its own problem is still found.
    let max_default = defaults.max_interval_ms.max(initial.unwrap_or(0));
    let max_interval = in_range(
        raw.max_interval_ms.unwrap_or(max_default),
        (initial.unwrap_or(1), MAX_INTERVAL_LIMIT_MS),
        "max_interval_ms",
        at.field("max_interval_ms"),
        problems,
    );
    let multiplier = in_range(
        raw.multiplier.unwrap_or(defaults.multiplier),
        (1.0, MAX_MULTIPLIER),
        "multiplier",
        at.field("multiplier"),
        problems,
    );
    let jitter = in_range(
        raw.jitter.unwrap_or(defaults.jitter),
        (0.0, 1.0),
        "jitter",
        at.field("jitter"),
        problems,
    );
    let retry_on = raw.retry_on.unwrap_or_default();
    let default_on = RetryOn::default();
    Some(RetryPolicy {
        max_attempts: u32::try_from(max_attempts?).ok()?,
        initial_interval_ms: initial?,
        multiplier: multiplier?,
        max_interval_ms: max_interval?,
        jitter: jitter?,
        retry_on: RetryOn {
            plugin_error: retry_on.plugin_error.unwrap_or(default_on.plugin_error),
            deadline_exceeded: retry_on
                .deadline_exceeded
                .unwrap_or(default_on.deadline_exceeded),
            trap: retry_on.trap.unwrap_or(default_on.trap),
        },
    })
}
