//! [`Durable`]: the promise that what was committed before it was made reaches stable storage.
//!
//! A commit returns as soon as it is applied, before it is durable; the engine acts on it (runs
//! the next step, answers the client) only after waiting on a [`Durable`]. Backends batch the
//! waits: every [`Durable`] requested while a flush runs is served by the next one, so many
//! concurrent commits share a single flush (group commit).
//!
//! The backend numbers each request (a generation) and reports through [`Progress`] the
//! highest generation flushed, or the highest one whose flush failed. Those waiting are woken
//! in the order of their generations, which is the order of their commits: under load a flush
//! wakes dozens of waiters at once, and each one's next commit then waits for the next flush
//! about as long as it waited for this one, instead of being woken first one time and last
//! the next.

use std::collections::BTreeMap;
use std::future::Future;
use std::mem;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::error::StoreError;

/// How many committers a store has now: tasks that each commit, wait for the commit to be
/// durable, and then work towards their next commit ([`crate::Store::count_committers`]).
pub type Committers = Arc<dyn Fn() -> usize + Send + Sync>;

/// A flush that failed, and the generations it was meant to cover.
#[derive(Debug, Clone)]
pub(crate) struct FailedFlush {
    /// Generations up to this one were waiting for the flush.
    pub through: u64,
    /// The error.
    pub message: String,
}

/// What a backend's flusher has done so far, and the waits it has yet to end.
#[derive(Debug, Default)]
pub(crate) struct Progress(Mutex<ProgressState>);

#[derive(Debug, Default)]
struct ProgressState {
    /// Every generation up to this one is durable.
    flushed: u64,
    /// The latest failed flush, if any.
    failed: Option<FailedFlush>,
    /// Set once no flush will follow: the store closed.
    closed: bool,
    /// Waits not yet ended, by generation and then by when they began waiting.
    waiting: BTreeMap<(u64, u64), Waker>,
    /// Waits begun so far: each one's place among those of the same generation.
    began: u64,
}

impl Progress {
    fn state(&self) -> MutexGuard<'_, ProgressState> {
        // Every change under the lock is a plain assignment or map operation.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every generation up to `through` is durable.
    pub fn flushed(&self, through: u64) {
        let woken = {
            let mut state = self.state();
            state.flushed = state.flushed.max(through);
            state.ended_through(through)
        };
        wake_in_order(woken);
    }

    /// The flush meant to cover generations up to `failed.through` failed.
    pub fn failed(&self, failed: FailedFlush) {
        let woken = {
            let mut state = self.state();
            let through = failed.through;
            state.failed = Some(failed);
            state.ended_through(through)
        };
        wake_in_order(woken);
    }

    /// No flush follows: every wait still on ends.
    pub fn close(&self) {
        let woken = {
            let mut state = self.state();
            state.closed = true;
            mem::take(&mut state.waiting)
        };
        wake_in_order(woken);
    }
}

impl ProgressState {
    /// Takes the waits for generations up to `through`.
    fn ended_through(&mut self, through: u64) -> BTreeMap<(u64, u64), Waker> {
        let later = self.waiting.split_off(&(through.saturating_add(1), 0));
        mem::replace(&mut self.waiting, later)
    }

    /// How the wait for `generation` ended, if it did.
    fn outcome(&self, generation: u64) -> Option<Result<(), StoreError>> {
        if self.flushed >= generation {
            return Some(Ok(()));
        }
        if let Some(failed) = self.failed.as_ref().filter(|f| f.through >= generation) {
            let message = &failed.message;
            return Some(Err(StoreError::Backend(format!("flush failed: {message}"))));
        }
        self.closed.then(|| {
            Err(StoreError::Backend(
                "store closed before the commit was durable".to_owned(),
            ))
        })
    }
}

fn wake_in_order(woken: BTreeMap<(u64, u64), Waker>) {
    for waker in woken.into_values() {
        waker.wake();
    }
}

/// Resolves once everything committed before it was requested is durable; see the module
/// documentation. Dropping it without waiting is allowed and changes nothing.
#[derive(Debug)]
#[must_use = "a commit is only durable once `wait` returns"]
pub struct Durable(Waiting);

#[derive(Debug)]
enum Waiting {
    Ready,
    Generation {
        generation: u64,
        progress: Arc<Progress>,
    },
}

impl Durable {
    /// Already durable: for backends where a commit is durable as soon as it returns, or that
    /// promise no durability at all (the in-memory store).
    pub fn ready() -> Self {
        Durable(Waiting::Ready)
    }

    /// Durable once `progress` reports `generation` flushed.
    pub(crate) fn after(generation: u64, progress: Arc<Progress>) -> Self {
        Durable(Waiting::Generation {
            generation,
            progress,
        })
    }

    /// Waits until the commits are durable. Fails with [`StoreError::Backend`] when the flush
    /// that should have made them durable failed, or the store closed first.
    pub async fn wait(self) -> Result<(), StoreError> {
        match self.0 {
            Waiting::Ready => Ok(()),
            Waiting::Generation {
                generation,
                progress,
            } => {
                Wait {
                    progress,
                    generation,
                    place: None,
                }
                .await
            }
        }
    }

    /// [`Durable::wait`] for threads outside an async runtime: blocks the calling thread.
    /// Never call it on an async runtime's worker thread.
    pub fn wait_blocking(self) -> Result<(), StoreError> {
        block_on(self.wait())
    }
}

/// The future of [`Durable::wait`] for a generation.
struct Wait {
    progress: Arc<Progress>,
    generation: u64,
    /// Its place among the waits, once it waits.
    place: Option<u64>,
}

impl Future for Wait {
    type Output = Result<(), StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut state = this.progress.state();
        if let Some(outcome) = state.outcome(this.generation) {
            // Its entry, if it had one, was taken out as it ended: nothing for drop to do.
            this.place = None;
            return Poll::Ready(outcome);
        }
        let place = *this.place.get_or_insert_with(|| {
            state.began += 1;
            state.began
        });
        state
            .waiting
            .entry((this.generation, place))
            .and_modify(|waker| waker.clone_from(cx.waker()))
            .or_insert_with(|| cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        // Ended waits were taken out as they were woken; a wait dropped before that leaves.
        if let Some(place) = self.place {
            self.progress
                .state()
                .waiting
                .remove(&(self.generation, place));
        }
    }
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` to completion on the current thread, parking between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waker that notes its label in `woken` when woken.
    struct Noting {
        label: usize,
        woken: Arc<Mutex<Vec<usize>>>,
    }

    impl Wake for Noting {
        fn wake(self: Arc<Self>) {
            self.woken.lock().unwrap().push(self.label);
        }
    }

    type Waited = Pin<Box<dyn Future<Output = Result<(), StoreError>>>>;

    fn wait_for(progress: &Arc<Progress>, generation: u64) -> Waited {
        Box::pin(Durable::after(generation, Arc::clone(progress)).wait())
    }

    /// Waits for each of `generations` on `progress`, polled once in that order, each with a
    /// waker noting its index.
    fn waiting(
        progress: &Arc<Progress>,
        generations: &[u64],
    ) -> (Vec<Waited>, Arc<Mutex<Vec<usize>>>) {
        let woken = Arc::new(Mutex::new(Vec::new()));
        let mut waits = Vec::new();
        for (label, generation) in generations.iter().enumerate() {
            let mut wait = wait_for(progress, *generation);
            let waker = Waker::from(Arc::new(Noting {
                label,
                woken: Arc::clone(&woken),
            }));
            let poll = wait.as_mut().poll(&mut Context::from_waker(&waker));
            assert!(
                poll.is_pending(),
                "generation {generation} is not flushed yet"
            );
            waits.push(wait);
        }
        (waits, woken)
    }

    fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_flush_wakes_the_waits_it_ends_in_the_order_of_their_generations() {
        let progress = Arc::new(Progress::default());
        let generations = [5, 2, 9, 2, 7, 1, 12, 3];
        let (mut waits, woken) = waiting(&progress, &generations);
        progress.flushed(9);
        // Generation first, then the order they began waiting in: 1, 2 (index 1), 2 (index
        // 3), 3, 5, 7, 9. Generation 12 waits on.
        assert_eq!(*woken.lock().unwrap(), [5, 1, 3, 7, 0, 4, 2]);
        for (wait, generation) in waits.iter_mut().zip(generations) {
            if generation <= 9 {
                let poll = poll_once(wait.as_mut());
                assert!(matches!(poll, Poll::Ready(Ok(()))), "{generation}");
            }
        }
        assert_eq!(
            progress.state().waiting.len(),
            1,
            "generation 12 still waits"
        );
        progress.flushed(12);
        assert_eq!(woken.lock().unwrap().last(), Some(&6));
        assert!(matches!(poll_once(waits[6].as_mut()), Poll::Ready(Ok(()))));
    }

    #[test]
    fn a_failed_flush_fails_the_waits_it_covered_and_later_ones_wait_on() {
        let progress = Arc::new(Progress::default());
        let (mut waits, woken) = waiting(&progress, &[4, 6, 3]);
        progress.failed(FailedFlush {
            through: 4,
            message: "disk full".to_owned(),
        });
        assert_eq!(*woken.lock().unwrap(), [2, 0]);
        for index in [0, 2] {
            match poll_once(waits[index].as_mut()) {
                Poll::Ready(Err(error)) => assert!(error.to_string().contains("disk full")),
                other => panic!("expected the flush's error, got {other:?}"),
            }
        }
        assert!(poll_once(waits[1].as_mut()).is_pending());
        progress.flushed(6);
        assert!(matches!(poll_once(waits[1].as_mut()), Poll::Ready(Ok(()))));
    }

    #[test]
    fn closing_ends_every_wait_with_an_error_and_fails_later_ones_at_once() {
        let progress = Arc::new(Progress::default());
        let (mut waits, woken) = waiting(&progress, &[1, 2]);
        progress.close();
        assert_eq!(*woken.lock().unwrap(), [0, 1]);
        let mut later = wait_for(&progress, 3);
        for wait in waits.iter_mut().chain([&mut later]) {
            match poll_once(wait.as_mut()) {
                Poll::Ready(Err(error)) => assert!(error.to_string().contains("store closed")),
                other => panic!("expected the store closed, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_wait_dropped_before_its_flush_leaves_nothing_behind() {
        let progress = Arc::new(Progress::default());
        let (waits, woken) = waiting(&progress, &[1, 2, 2]);
        assert_eq!(progress.state().waiting.len(), 3);
        drop(waits);
        assert!(progress.state().waiting.is_empty());
        progress.flushed(2);
        assert!(woken.lock().unwrap().is_empty());
    }

    #[test]
    fn a_wait_polled_again_keeps_its_place_and_its_latest_waker() {
        let progress = Arc::new(Progress::default());
        let (mut waits, woken) = waiting(&progress, &[2, 2]);
        // The first wait is polled again with another waker: it stays first, and only the
        // new waker is woken.
        let again = Arc::new(Mutex::new(Vec::new()));
        let waker = Waker::from(Arc::new(Noting {
            label: 10,
            woken: Arc::clone(&again),
        }));
        let poll = waits[0].as_mut().poll(&mut Context::from_waker(&waker));
        assert!(poll.is_pending());
        assert_eq!(progress.state().waiting.len(), 2);
        progress.flushed(2);
        assert_eq!(*again.lock().unwrap(), [10]);
        assert_eq!(*woken.lock().unwrap(), [1]);
    }
}
