//! The engine's live events: every commit's events, published once durable, as one message
//! per commit, so that a watcher wakes once per commit rather than once per event.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::broadcast::{self, error::RecvError};
use weft_domain::Event;

/// Commits kept for slow watchers before they must re-read the store.
const BUFFER: usize = 4_096;

/// One durable commit's events, and when they were published.
type Commit = (Instant, Arc<[Event]>);

/// Publishes each commit's events to every [`EventReceiver`].
#[derive(Debug)]
pub(super) struct EventSender(broadcast::Sender<Commit>);

impl EventSender {
    pub fn new() -> Self {
        EventSender(broadcast::channel(BUFFER).0)
    }

    /// Publishes the events of one durable commit, in order. Given the commit's own list, it
    /// publishes that list without copying it.
    pub fn send(&self, events: impl Into<Arc<[Event]>>) {
        if self.0.receiver_count() == 0 {
            return;
        }
        let events = events.into();
        if !events.is_empty() {
            // An error means nobody is watching any more, which is fine.
            _ = self.0.send((Instant::now(), events));
        }
    }

    pub fn subscribe(&self) -> EventReceiver {
        EventReceiver {
            commits: self.0.subscribe(),
            current: None,
        }
    }
}

/// Every event committed after it was made, in commit order; see [`EventReceiver::recv`].
#[derive(Debug)]
pub struct EventReceiver {
    commits: broadcast::Receiver<Commit>,
    /// The commit being handed out, and the index of its next event.
    current: Option<(Commit, usize)>,
}

impl EventReceiver {
    /// The next event. A receiver that fell behind gets [`RecvError::Lagged`] with the number
    /// of commits it missed, and should re-read the store; [`RecvError::Closed`] means the
    /// engine is gone. Cancel-safe: no event is lost when the future is dropped.
    pub async fn recv(&mut self) -> Result<Event, RecvError> {
        Ok(self.recv_published().await?.1)
    }

    /// The next event, as [`recv`](Self::recv) gives it, with the moment its commit was
    /// published: once durable, and before any watcher could hear of it. A watcher that
    /// times events with this rather than with when it got round to reading them measures
    /// the engine, not its own scheduling.
    pub async fn recv_published(&mut self) -> Result<(Instant, Event), RecvError> {
        loop {
            if let Some(((at, events), next)) = &mut self.current {
                if let Some(event) = events.get(*next) {
                    *next += 1;
                    return Ok((*at, event.clone()));
                }
                self.current = None;
            }
            let commit = self.commits.recv().await?;
            self.current = Some((commit, 0));
        }
    }
}

#[cfg(test)]
mod tests {
    use weft_domain::{EventKind, JobId, Timestamp};

    use super::*;

    fn commit(first: u64, count: u64) -> Vec<Event> {
        let job = JobId::from_parts(Timestamp::EPOCH, [1; 10]);
        (first..first + count)
            .map(|sequence| Event::new(job, sequence, Timestamp::EPOCH, EventKind::JobResumed))
            .collect()
    }

    async fn sequences(receiver: &mut EventReceiver, count: usize) -> Vec<u64> {
        let mut sequences = Vec::new();
        for _ in 0..count {
            sequences.push(receiver.recv().await.unwrap().sequence);
        }
        sequences
    }

    #[tokio::test]
    async fn commits_arrive_as_single_events_in_order() {
        let sender = EventSender::new();
        let mut receiver = sender.subscribe();
        sender.send(commit(1, 3));
        sender.send(Vec::new());
        sender.send(commit(4, 2));
        assert_eq!(sequences(&mut receiver, 5).await, [1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn a_dropped_receive_loses_no_event() {
        let sender = EventSender::new();
        let mut receiver = sender.subscribe();
        sender.send(commit(1, 2));
        assert_eq!(sequences(&mut receiver, 2).await, [1, 2]);
        // A receive that is cancelled while it waits, as in a `select!`.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(1), receiver.recv()).await;
        assert!(waiting.is_err(), "there is no third event yet");
        sender.send(commit(3, 2));
        assert_eq!(sequences(&mut receiver, 2).await, [3, 4]);
    }

    #[tokio::test]
    async fn events_carry_when_their_commit_was_published_not_when_they_were_read() {
        let sender = EventSender::new();
        let mut receiver = sender.subscribe();
        let before = Instant::now();
        sender.send(commit(1, 2));
        let after = Instant::now();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        for sequence in [1, 2] {
            let (at, event) = receiver.recv_published().await.unwrap();
            assert_eq!(event.sequence, sequence);
            assert!(
                before <= at && at <= after,
                "published {at:?}, sent in {before:?}..{after:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_receiver_that_falls_behind_is_told_how_many_commits_it_missed() {
        let sender = EventSender::new();
        let mut receiver = sender.subscribe();
        for sequence in 1..=(BUFFER as u64 + 2) {
            sender.send(commit(sequence, 1));
        }
        assert!(matches!(receiver.recv().await, Err(RecvError::Lagged(2))));
        assert_eq!(receiver.recv().await.unwrap().sequence, 3);
    }
}
