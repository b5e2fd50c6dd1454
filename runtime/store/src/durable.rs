//! [`Durable`]: the promise that what was committed before it was made reaches stable storage.
//!
//! A commit returns as soon as it is applied, before it is durable; the engine acts on it (runs
//! the next step, answers the client) only after waiting on a [`Durable`]. Backends batch the
//! waits: every [`Durable`] requested while a flush runs is served by the next one, so many
//! concurrent commits share a single flush (group commit).
//!
//! Progress is published through a `tokio::sync::watch` channel as generation numbers: the
//! backend numbers each request and reports the highest generation flushed, or the highest
//! one whose flush failed.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use tokio::sync::watch;

use crate::error::StoreError;

/// What a backend's flusher has done so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlushProgress {
    /// Every generation up to this one is durable.
    pub flushed: u64,
    /// The latest failed flush, if any.
    pub failed: Option<FailedFlush>,
}

/// A flush that failed, and the generations it was meant to cover.
#[derive(Debug, Clone)]
pub(crate) struct FailedFlush {
    /// Generations up to this one were waiting for the flush.
    pub through: u64,
    /// The error.
    pub message: String,
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
        progress: watch::Receiver<FlushProgress>,
    },
}

impl Durable {
    /// Already durable: for backends where a commit is durable as soon as it returns, or that
    /// promise no durability at all (the in-memory store).
    pub fn ready() -> Self {
        Durable(Waiting::Ready)
    }

    /// Durable once `progress` reports `generation` flushed.
    pub(crate) fn after(generation: u64, progress: watch::Receiver<FlushProgress>) -> Self {
        Durable(Waiting::Generation {
            generation,
            progress,
        })
    }

    /// Waits until the commits are durable. Fails with [`StoreError::Backend`] when the flush
    /// that should have made them durable failed, or the store closed first.
    pub async fn wait(self) -> Result<(), StoreError> {
        let (generation, mut progress) = match self.0 {
            Waiting::Ready => return Ok(()),
            Waiting::Generation {
                generation,
                progress,
            } => (generation, progress),
        };
        let settled = progress
            .wait_for(|p| {
                p.flushed >= generation
                    || p.failed.as_ref().is_some_and(|f| f.through >= generation)
            })
            .await;
        match settled {
            Ok(p) if p.flushed >= generation => Ok(()),
            Ok(p) => {
                let message = p.failed.as_ref().map_or("", |f| f.message.as_str());
                Err(StoreError::Backend(format!("flush failed: {message}")))
            }
            Err(_) => Err(StoreError::Backend(
                "store closed before the commit was durable".to_owned(),
            )),
        }
    }

    /// [`Durable::wait`] for threads outside an async runtime: blocks the calling thread.
    /// Never call it on an async runtime's worker thread.
    pub fn wait_blocking(self) -> Result<(), StoreError> {
        block_on(self.wait())
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
