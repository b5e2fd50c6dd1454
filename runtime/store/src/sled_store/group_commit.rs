//! Group commit: one flusher thread makes commits durable in batches.
//!
//! [`GroupCommit::request`] numbers the request (a generation) and wakes the flusher; it never
//! flushes itself. The flusher takes the highest generation requested so far, flushes sled
//! once, and publishes that generation as durable. Requests that arrive during a flush are
//! served together by the next one, so under load the number of flushes stays near the rate
//! the disk can sync, not the rate of commits.
//!
//! Under load the flusher also lingers: once a request arrives it waits up to the linger time
//! before flushing, so that one flush serves the commits of many concurrent jobs instead of
//! one or two. The request that completes the batch the linger waits for wakes the flusher,
//! so a linger costs the flusher one sleep. (Polling for a pause in the requests every 50 us
//! instead woke it thousands of times a second, and on two busy cores each wake-up may wait
//! milliseconds for a core: those waits held up every commit of their flush, and made most of
//! the step-to-step tail under load.) A lone commit, or a few, is flushed at once: a flush
//! costs less than the linger would add to each of them.
//!
//! How long a batch is depends on what the flusher knows:
//! - Told how to count the store's committers ([`GroupCommit::count_committers`]: the engine
//!   counts its busy workers), it waits for half of them, and lingers once half is at least
//!   two. The other half work while the flush runs. Waiting for all of them moved them in
//!   lock step: all of them waited on each flush while the cores idled, then all of them
//!   wanted the cores at once. Measured with `bench engine` on 2 cores under the engine's cap
//!   of 12 busy workers per thread, in profile rounds of 3,000 chains at once: 28,900 steps/s
//!   against 24,100 waiting for as many as the last flush served, with a p99 step-to-step
//!   latency of 0.76 ms against 1.08. Half with a floor of [`LINGER_MIN_BATCH`] made the
//!   flushes of the daemon's one attempts' thread, with fewer busy workers than that, start
//!   at once, a few commits each.
//! - Otherwise it lingers only while many commits are concurrent (the last flush served at
//!   least [`LINGER_MIN_BATCH`], or that many wait already), and waits for as many requests
//!   as the last flush served (at most [`FULL_BATCH`]): the committers it woke are most
//!   likely back by then.
//!
//! A generation is requested after the commit it covers returned, and the flusher reads the
//! requested generation before it flushes, so a flush that publishes a generation always
//! covers every commit made before that generation was requested.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::durable::{Committers, Durable, FailedFlush, Progress};
use crate::error::StoreError;

/// Pending requests that always end a linger.
const FULL_BATCH: u64 = 256;

/// Commits a flush must have served, or find waiting, before the flusher lingers, when it
/// cannot count the committers.
const LINGER_MIN_BATCH: u64 = 8;

/// The flusher and what it shares with requesters; see the module documentation.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
}

#[derive(Debug)]
struct Shared {
    requests: Mutex<Requests>,
    wake: Condvar,
    progress: Arc<Progress>,
    flushes: AtomicU64,
    committers: Mutex<Option<CommitterCount>>,
}

/// [`Committers`], shown by name.
struct CommitterCount(Committers);

impl fmt::Debug for CommitterCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CommitterCount")
    }
}

#[derive(Debug, Default)]
struct Requests {
    /// Highest generation handed out.
    requested: u64,
    /// Highest generation the flusher has taken on.
    taken: u64,
    /// Whether the flusher waits for a first request (rather than lingering, or flushing):
    /// only then, or when a batch is complete, does a request wake it.
    idle: bool,
    /// The batch a linger waits for (see the module documentation), at most [`FULL_BATCH`].
    batch: u64,
    /// Set once the store closes: the flusher flushes a last time and exits.
    stopping: bool,
}

impl Requests {
    /// Requests made since the flusher last took them on.
    fn pending(&self) -> u64 {
        self.requested - self.taken
    }
}

impl Shared {
    fn requests(&self) -> MutexGuard<'_, Requests> {
        // The lock guards plain fields; a panic elsewhere cannot leave them inconsistent.
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many committers there are now; `None` when no one said how to count them, or
    /// the count says none (the flusher then goes by the last batch).
    fn committers(&self) -> Option<u64> {
        let counter = self
            .committers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = counter.as_ref().map(|counter| (counter.0)())?;
        u64::try_from(count).ok().filter(|&count| count > 0)
    }
}

impl GroupCommit {
    /// Starts the flusher thread for `db`, lingering up to `linger` to gather requests.
    pub fn start(db: sled::Db, linger: Duration) -> Result<Self, StoreError> {
        GroupCommit::with_flush(linger, move || {
            db.flush().map(drop).map_err(StoreError::from)
        })
    }

    /// Starts a flusher thread that makes commits durable by calling `flush`.
    pub fn with_flush(
        linger: Duration,
        flush: impl FnMut() -> Result<(), StoreError> + Send + 'static,
    ) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Requests {
                batch: LINGER_MIN_BATCH,
                ..Requests::default()
            }),
            wake: Condvar::new(),
            progress: Arc::default(),
            flushes: AtomicU64::new(0),
            committers: Mutex::new(None),
        });
        let thread = thread::Builder::new()
            .name("weft-store-flusher".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run_flusher(flush, &shared, linger)
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the flusher thread: {e}")))?;
        Ok(GroupCommit {
            shared,
            thread: Some(thread),
        })
    }

    /// A [`Durable`] that resolves once everything committed before this call is flushed.
    pub fn request(&self) -> Durable {
        let (generation, wake) = {
            let mut requests = self.shared.requests();
            requests.requested += 1;
            // Once, when this request completes the batch a linger waits for.
            let complete = requests.pending() == requests.batch;
            (requests.requested, requests.idle || complete)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Durable::after(generation, Arc::clone(&self.shared.progress))
    }

    /// Counts the committers with `committers` from now on; see the module documentation.
    pub fn count_committers(&self, committers: Committers) {
        *self
            .shared
            .committers
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(CommitterCount(committers));
    }

    /// How many flushes the flusher has done.
    pub fn flush_count(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    /// Flushes a last time and stops the flusher; returns how that last flush went. Does
    /// nothing the second time.
    pub fn stop(&mut self) -> Result<(), StoreError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.shared.requests().stopping = true;
        // Wakes the flusher whether it waits for a request or lingers.
        self.shared.wake.notify_one();
        let last = thread.join().unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "the flusher thread panicked".to_owned(),
            ))
        });
        // Requests the last flush did not cover never will be.
        self.shared.progress.close();
        last
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::error!(%error, "last flush before closing the store failed");
        }
    }
}

/// The flusher loop: waits for requests, flushes, publishes. Returns the outcome of the last
/// flush, made when the store closes.
fn run_flusher(
    mut flush: impl FnMut() -> Result<(), StoreError>,
    shared: &Shared,
    linger: Duration,
) -> Result<(), StoreError> {
    // Whether the last flush served a batch worth lingering for: the sign of many concurrent
    // commits. A few are flushed at once.
    let mut large_batch = false;
    loop {
        let (target, stopping) = {
            let mut requests = shared.requests();
            requests.idle = true;
            while requests.pending() == 0 && !requests.stopping {
                requests = shared
                    .wake
                    .wait(requests)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            requests.idle = false;
            let lingers = match shared.committers() {
                Some(committers) => {
                    let half = committers / 2;
                    requests.batch = half.clamp(1, FULL_BATCH);
                    half >= 2
                }
                None => large_batch || requests.pending() >= LINGER_MIN_BATCH,
            };
            let deadline = Instant::now() + if lingers { linger } else { Duration::ZERO };
            while requests.pending() < requests.batch && !requests.stopping {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                requests = shared
                    .wake
                    .wait_timeout(requests, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let served = requests.pending();
            requests.taken = requests.requested;
            large_batch = served >= LINGER_MIN_BATCH;
            requests.batch = served.clamp(LINGER_MIN_BATCH, FULL_BATCH);
            (requests.requested, requests.stopping)
        };
        let outcome = flush();
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        match &outcome {
            Ok(()) => shared.progress.flushed(target),
            Err(error) => {
                tracing::error!(%error, generation = target, "flushing the store failed");
                shared.progress.failed(FailedFlush {
                    through: target,
                    message: error.to_string(),
                });
            }
        }
        if stopping {
            return outcome;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A flusher whose flushes each wait for a message on the returned channel, and report
    /// that they started on the other.
    fn gated() -> (
        GroupCommit,
        mpsc::Sender<Result<(), StoreError>>,
        mpsc::Receiver<()>,
    ) {
        gated_lingering(Duration::ZERO)
    }

    fn gated_lingering(
        linger: Duration,
    ) -> (
        GroupCommit,
        mpsc::Sender<Result<(), StoreError>>,
        mpsc::Receiver<()>,
    ) {
        let (release, gate) = mpsc::channel::<Result<(), StoreError>>();
        let (started_tx, started) = mpsc::channel();
        let group_commit = GroupCommit::with_flush(linger, move || {
            started_tx.send(()).ok();
            gate.recv().unwrap_or(Ok(()))
        })
        .unwrap();
        (group_commit, release, started)
    }

    #[test]
    fn requests_made_during_a_flush_share_the_next_one() {
        let (mut group_commit, release, started) = gated();
        let first = group_commit.request();
        started.recv().unwrap();
        let waiting: Vec<Durable> = (0..50).map(|_| group_commit.request()).collect();
        release.send(Ok(())).unwrap();
        first.wait_blocking().unwrap();
        started.recv().unwrap();
        release.send(Ok(())).unwrap();
        for durable in waiting {
            durable.wait_blocking().unwrap();
        }
        assert_eq!(group_commit.flush_count(), 2);
        drop(release);
        group_commit.stop().unwrap();
        assert_eq!(group_commit.flush_count(), 3, "closing flushes a last time");
    }

    /// Serves `n` requests with one flush of `group_commit`, whose flushes `release` lets
    /// go and `started` reports, and which is idle when called: the flush after that lingers
    /// for `n` requests.
    fn serve_a_batch(
        group_commit: &GroupCommit,
        release: &mpsc::Sender<Result<(), StoreError>>,
        started: &mpsc::Receiver<()>,
        n: u64,
    ) {
        // A lone request is flushed at once; the batch gathers meanwhile.
        let first = group_commit.request();
        started.recv().unwrap();
        let batch: Vec<Durable> = (0..n).map(|_| group_commit.request()).collect();
        release.send(Ok(())).unwrap();
        first.wait_blocking().unwrap();
        // As many as a flush that lingers waits for: it starts at once.
        started.recv().unwrap();
        release.send(Ok(())).unwrap();
        for durable in batch {
            durable.wait_blocking().unwrap();
        }
    }

    /// Makes `n` requests of `group_commit` (flushes as in [`serve_a_batch`]), and checks
    /// that the flusher lingers while the first `n - 1` wait and flushes with the last.
    fn linger_until_request(
        group_commit: &GroupCommit,
        release: &mpsc::Sender<Result<(), StoreError>>,
        started: &mpsc::Receiver<()>,
        n: u64,
    ) {
        let mut waiting: Vec<Durable> = (0..n - 1).map(|_| group_commit.request()).collect();
        assert!(
            started.recv_timeout(Duration::from_millis(200)).is_err(),
            "the flusher lingers while {} requests of {n} wait",
            n - 1
        );
        waiting.push(group_commit.request());
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("the last request ends the linger");
        release.send(Ok(())).unwrap();
        for durable in waiting {
            durable.wait_blocking().unwrap();
        }
    }

    #[test]
    fn a_linger_ends_once_as_many_requests_wait_as_the_last_flush_served() {
        // Lingering would last ten minutes; the flush must come with the batch's last request.
        let (mut group_commit, release, started) = gated_lingering(Duration::from_secs(600));
        let n = LINGER_MIN_BATCH + 3;
        serve_a_batch(&group_commit, &release, &started, n);
        linger_until_request(&group_commit, &release, &started, n);
        assert_eq!(group_commit.flush_count(), 3);
        drop(release);
        group_commit.stop().unwrap();
    }

    #[test]
    fn a_linger_ends_once_half_the_committers_wait() {
        // Fewer than a flush must serve to linger without a count, and more.
        for half in [3, LINGER_MIN_BATCH + 2] {
            let (mut group_commit, release, started) = gated_lingering(Duration::from_secs(600));
            // The last flush served more than the committers there are now.
            serve_a_batch(&group_commit, &release, &started, 3 * LINGER_MIN_BATCH);
            group_commit.count_committers(Arc::new(move || 2 * half as usize));
            linger_until_request(&group_commit, &release, &started, half);
            drop(release);
            group_commit.stop().unwrap();
        }
    }

    #[test]
    fn a_commit_of_fewer_than_four_committers_is_flushed_at_once() {
        let (mut group_commit, release, started) = gated_lingering(Duration::from_secs(600));
        serve_a_batch(&group_commit, &release, &started, 3 * LINGER_MIN_BATCH);
        group_commit.count_committers(Arc::new(|| 3));
        let lone = group_commit.request();
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("the flusher does not linger for one committer of three");
        release.send(Ok(())).unwrap();
        lone.wait_blocking().unwrap();
        drop(release);
        group_commit.stop().unwrap();
    }

    #[test]
    fn a_linger_short_of_its_batch_ends_at_the_linger_time() {
        let (mut group_commit, release, started) = gated_lingering(Duration::from_millis(300));
        let n = LINGER_MIN_BATCH + 3;
        serve_a_batch(&group_commit, &release, &started, n);
        let began = Instant::now();
        let fewer = group_commit.request();
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("the linger ends");
        assert!(
            began.elapsed() >= Duration::from_millis(300),
            "a request short of the batch waits out the linger"
        );
        release.send(Ok(())).unwrap();
        fewer.wait_blocking().unwrap();
        assert_eq!(group_commit.flush_count(), 3);
        drop(release);
        group_commit.stop().unwrap();
    }

    #[test]
    fn a_failed_flush_fails_its_waiters_and_the_next_one_recovers() {
        let (mut group_commit, release, started) = gated();
        let failing = group_commit.request();
        started.recv().unwrap();
        release
            .send(Err(StoreError::Backend("disk on fire".to_owned())))
            .unwrap();
        let error = failing.wait_blocking().unwrap_err();
        assert_eq!(
            error.to_string(),
            "storage backend failed: flush failed: storage backend failed: disk on fire"
        );
        let next = group_commit.request();
        started.recv().unwrap();
        release.send(Ok(())).unwrap();
        next.wait_blocking().unwrap();
        drop(release);
        group_commit.stop().unwrap();
    }

    #[test]
    fn stopping_flushes_and_joins() {
        let (mut group_commit, release, started) = gated();
        drop(started);
        release
            .send(Err(StoreError::Backend("full".to_owned())))
            .unwrap();
        assert!(
            group_commit.stop().is_err(),
            "the last flush's error is reported"
        );
        assert_eq!(group_commit.flush_count(), 1);
        assert!(group_commit.stop().is_ok(), "a second stop does nothing");
    }
}
