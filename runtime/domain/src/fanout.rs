//! The bookkeeping of a fanned-out (`for_each`) step: which items to start next, which to
//! give up on, and when the step as a whole is finished.
//!
//! Rules, applied by [`plan`] to the current states of the items:
//!
//! - At most `concurrency` items are active at once. An item waiting to retry keeps its slot,
//!   so retries never push the step past its concurrency.
//! - Items start in list order.
//! - The failure budget is `max_failures`: once more items than that have failed, no new item
//!   starts, items not yet running (pending, ready, waiting to retry) are cancelled, and the
//!   step fails as soon as the items still running have finished. Their results are recorded
//!   but cannot save the step.
//! - Otherwise the step succeeds when every item has finished; the failed items (at most
//!   `max_failures`) leave `null` in the step's output list. A list without items succeeds at
//!   once with an empty output.

use serde::{Deserialize, Serialize};

use crate::state::StepState;

/// Largest `concurrency` a step may ask for; the scheduler's worker pool is far smaller, and a
/// bound keeps one step from flooding the ready queue.
pub const MAX_CONCURRENCY: u32 = 1_000;
/// Most items one `for_each` list may have. Every item is a task of the job, which the API
/// serves whole and the state machine looks over at each change of the step; a bound keeps
/// both of a size handled in one piece.
pub const MAX_ITEMS: usize = 10_000;
/// `concurrency` of a `for_each` step that does not set one.
pub const DEFAULT_CONCURRENCY: u32 = 10;

/// The limits of one fanned-out step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOutLimits {
    /// Items active at once, 1 to [`MAX_CONCURRENCY`].
    pub concurrency: u32,
    /// Items that may fail without failing the step.
    pub max_failures: u32,
}

/// How many items are in which state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanOutCounts {
    /// Not started.
    pub pending: u64,
    /// Ready, running or waiting to retry.
    pub active: u64,
    /// Of the active ones, running.
    pub running: u64,
    /// Succeeded.
    pub succeeded: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl FanOutCounts {
    /// Counts `states`.
    pub fn of(states: &[StepState]) -> Self {
        let mut counts = FanOutCounts::default();
        for state in states {
            match state {
                StepState::Pending => counts.pending += 1,
                StepState::Ready | StepState::WaitingRetry => counts.active += 1,
                StepState::Running => {
                    counts.active += 1;
                    counts.running += 1;
                }
                StepState::Succeeded => counts.succeeded += 1,
                StepState::Failed => counts.failed += 1,
                // Items are never skipped; count one like a cancelled item if it ever is.
                StepState::Skipped | StepState::Cancelled => counts.cancelled += 1,
            }
        }
        counts
    }
}

/// How a fanned-out step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanOutVerdict {
    /// Every item finished and at most `max_failures` failed.
    Succeeded,
    /// More than `max_failures` items failed.
    Failed,
}

/// What to do next with a fanned-out step's items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanOutPlan {
    /// Items to start (move from pending to ready), in order.
    pub start: Vec<usize>,
    /// Items to cancel because the failure budget is exceeded.
    pub cancel: Vec<usize>,
    /// Set when the step is finished (after `start` and `cancel` are applied).
    pub verdict: Option<FanOutVerdict>,
}

/// Decides the next moves for items in `states`; see the module documentation.
pub fn plan(states: &[StepState], limits: FanOutLimits) -> FanOutPlan {
    let counts = FanOutCounts::of(states);
    if counts.failed > u64::from(limits.max_failures) {
        let cancel = indices(states, |s| {
            matches!(
                s,
                StepState::Pending | StepState::Ready | StepState::WaitingRetry
            )
        });
        let verdict = (counts.running == 0).then_some(FanOutVerdict::Failed);
        return FanOutPlan {
            start: Vec::new(),
            cancel,
            verdict,
        };
    }
    let free = u64::from(limits.concurrency).saturating_sub(counts.active);
    let start: Vec<usize> = indices(states, |s| s == StepState::Pending)
        .into_iter()
        .take(usize::try_from(free).unwrap_or(usize::MAX))
        .collect();
    let finished = counts.pending == 0 && counts.active == 0;
    FanOutPlan {
        start,
        cancel: Vec::new(),
        verdict: finished.then_some(FanOutVerdict::Succeeded),
    }
}

fn indices(states: &[StepState], keep: impl Fn(StepState) -> bool) -> Vec<usize> {
    states
        .iter()
        .enumerate()
        .filter(|(_, state)| keep(**state))
        .map(|(index, _)| index)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepState::{Cancelled, Failed, Pending, Ready, Running, Succeeded, WaitingRetry};

    const LIMITS: FanOutLimits = FanOutLimits {
        concurrency: 2,
        max_failures: 1,
    };

    #[test]
    fn starts_in_order_up_to_concurrency() {
        let plan = plan(&[Pending, Pending, Pending, Pending], LIMITS);
        assert_eq!(
            plan,
            FanOutPlan {
                start: vec![0, 1],
                cancel: vec![],
                verdict: None
            }
        );
    }

    #[test]
    fn waiting_retries_keep_their_slot() {
        assert_eq!(
            plan(&[WaitingRetry, Running, Pending], LIMITS).start,
            Vec::<usize>::new()
        );
        assert_eq!(
            plan(&[Succeeded, WaitingRetry, Pending, Pending], LIMITS).start,
            vec![2]
        );
    }

    #[test]
    fn failures_within_budget_keep_going() {
        let plan = plan(&[Failed, Succeeded, Pending], LIMITS);
        assert_eq!(plan.start, vec![2]);
        assert_eq!(plan.verdict, None);
        let done = super::plan(&[Failed, Succeeded, Succeeded], LIMITS);
        assert_eq!(done.verdict, Some(FanOutVerdict::Succeeded));
    }

    #[test]
    fn exceeding_the_budget_cancels_what_has_not_run_and_waits_for_running_items() {
        let plan = plan(
            &[Failed, Failed, Running, WaitingRetry, Ready, Pending],
            LIMITS,
        );
        assert_eq!(plan.start, Vec::<usize>::new());
        assert_eq!(plan.cancel, vec![3, 4, 5]);
        assert_eq!(plan.verdict, None);
        let after = super::plan(
            &[Failed, Failed, Succeeded, Cancelled, Cancelled, Cancelled],
            LIMITS,
        );
        assert_eq!(
            after,
            FanOutPlan {
                start: vec![],
                cancel: vec![],
                verdict: Some(FanOutVerdict::Failed)
            }
        );
    }

    #[test]
    fn zero_budget_fails_on_first_failure() {
        let limits = FanOutLimits {
            concurrency: 5,
            max_failures: 0,
        };
        assert_eq!(plan(&[Failed, Pending], limits).cancel, vec![1]);
    }

    #[test]
    fn empty_list_succeeds_at_once() {
        assert_eq!(plan(&[], LIMITS).verdict, Some(FanOutVerdict::Succeeded));
    }
}
