//! The engine's live events: every commit's events, published once durable.
//!
//! Commits are published in batches: the first commit sent after a publication starts the
//! next one, which waits for the tasks already queued on its thread to run, and then
//! publishes every commit sent meanwhile as one message. One flush makes many commits durable
//! at once and their workers send their events one after the other, so a watcher wakes once
//! for all of them rather than once per commit, and the workers do not each pay for waking it.
//! Each commit keeps the moment it was sent, which is when it was durable.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::broadcast::{self, error::RecvError};
use weft_domain::Event;

/// Batches kept for slow watchers before they must re-read the store.
const BUFFER: usize = 1_024;

/// One durable commit's events, and when they were sent.
type Commit = (Instant, Arc<[Event]>);

/// Commits published together, in the order they were sent.
type Batch = Arc<[Commit]>;

/// Publishes each commit's events to every [`EventReceiver`].
#[derive(Debug)]
pub(super) struct EventSender {
    channel: broadcast::Sender<Batch>,
    /// Commits sent since the last publication.
    pending: Arc<Mutex<Vec<Commit>>>,
}

impl EventSender {
    pub fn new() -> Self {
        EventSender {
            channel: broadcast::channel(BUFFER).0,
            pending: Arc::default(),
        }
    }

    /// Publishes the events of one durable commit, in order, after those of every commit
    /// sent before it. Given the commit's own list, it publishes that list without copying
    /// it. Must be called inside a tokio runtime.
    pub fn send(&self, events: impl Into<Arc<[Event]>>) {
        if self.channel.receiver_count() == 0 {
            return;
        }
        let events = events.into();
        if events.is_empty() {
            return;
        }
        let starts_batch = {
            let mut pending = super::lock(&self.pending);
            pending.push((Instant::now(), events));
            pending.len() == 1
        };
        if starts_batch {
            let channel = self.channel.clone();
            let pending = Arc::clone(&self.pending);
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                let batch = std::mem::take(&mut *super::lock(&pending));
                // An error means nobody is watching any more, which is fine.
                _ = channel.send(batch.into());
            });
        }
    }

    pub fn subscribe(&self) -> EventReceiver {
        EventReceiver {
            batches: self.channel.subscribe(),
            current: None,
        }
    }
}

/// Where a receiver is in the batch it is handing out.
#[derive(Debug)]
struct Position {
    batch: Batch,
    commit: usize,
    event: usize,
}

/// Events [`EventReceiver::recv_many`] handed out, in order.
#[derive(Debug)]
pub struct Received {
    batch: Batch,
    /// Where the events handed out start.
    commit: usize,
    event: usize,
}

impl Received {
    /// The events, in commit order.
    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        let (commit, event) = (self.commit, self.event);
        self.batch[commit..]
            .iter()
            .enumerate()
            .flat_map(move |(i, (_, events))| &events[if i == 0 { event } else { 0 }..])
    }
}

/// Every event committed after it was made, in commit order; see [`EventReceiver::recv`].
#[derive(Debug)]
pub struct EventReceiver {
    batches: broadcast::Receiver<Batch>,
    /// The batch being handed out, and the position of its next event.
    current: Option<Position>,
}

impl EventReceiver {
    /// The next event. A receiver that fell behind gets [`RecvError::Lagged`] with the number
    /// of batches of commits it missed, and should re-read the store; [`RecvError::Closed`]
    /// means the engine is gone. Cancel-safe: no event is lost when the future is dropped.
    pub async fn recv(&mut self) -> Result<Event, RecvError> {
        Ok(self.recv_published().await?.1)
    }

    /// Every event that can be had without waiting again: the rest of the publication being
    /// handed out, or else all of the next one, borrowed rather than cloned. For a watcher
    /// that acts on each event under one lock. Errors and cancel-safety as in
    /// [`recv`](Self::recv).
    pub async fn recv_many(&mut self) -> Result<Received, RecvError> {
        loop {
            let Position {
                batch,
                commit,
                event,
            } = match self.current.take() {
                Some(position) => position,
                None => Position {
                    batch: self.batches.recv().await?,
                    commit: 0,
                    event: 0,
                },
            };
            let left = batch
                .get(commit)
                .is_some_and(|(_, events)| event < events.len())
                || batch.len() > commit + 1;
            if left {
                return Ok(Received {
                    batch,
                    commit,
                    event,
                });
            }
        }
    }

    /// The next event, as [`recv`](Self::recv) gives it, with the moment its commit was
    /// sent: once durable, and before any watcher could hear of it. A watcher that times
    /// events with this rather than with when it got round to reading them measures the
    /// engine, not its own scheduling.
    pub async fn recv_published(&mut self) -> Result<(Instant, Event), RecvError> {
        loop {
            if let Some(position) = &mut self.current {
                while let Some((at, events)) = position.batch.get(position.commit) {
                    if let Some(event) = events.get(position.event) {
                        position.event += 1;
                        return Ok((*at, event.clone()));
                    }
                    position.commit += 1;
                    position.event = 0;
                }
                self.current = None;
            }
            let batch = self.batches.recv().await?;
            self.current = Some(Position {
                batch,
                commit: 0,
                event: 0,
            });
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
    async fn events_carry_when_their_commit_was_sent_not_when_they_were_read() {
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
                "stamped {at:?}, sent in {before:?}..{after:?}"
            );
        }
    }

    /// Sends `events` and lets the publication it is part of happen.
    async fn send_published(sender: &EventSender, events: Vec<Event>) {
        sender.send(events);
        while !sender.pending.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn commits_sent_before_a_publication_share_one_message() {
        let sender = EventSender::new();
        let mut receiver = sender.subscribe();
        sender.send(commit(1, 2));
        sender.send(commit(3, 1));
        send_published(&sender, commit(4, 2)).await;
        send_published(&sender, commit(6, 1)).await;
        assert_eq!(receiver.batches.len(), 2, "two publications");
        assert_eq!(sequences(&mut receiver, 6).await, [1, 2, 3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn receiving_many_hands_out_the_rest_of_a_publication_then_the_next_whole() {
        let sender = EventSender::new();
        let mut receiver = sender.subscribe();
        sender.send(commit(1, 2));
        sender.send(Vec::new());
        send_published(&sender, commit(3, 2)).await;
        send_published(&sender, commit(5, 1)).await;
        assert_eq!(sequences(&mut receiver, 1).await, [1]);
        let many = |received: Received| received.iter().map(|e| e.sequence).collect::<Vec<_>>();
        assert_eq!(many(receiver.recv_many().await.unwrap()), [2, 3, 4]);
        assert_eq!(many(receiver.recv_many().await.unwrap()), [5]);
        // Taken whole, the last publication leaves nothing: the next receive waits.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(1), receiver.recv_many()).await;
        assert!(waiting.is_err(), "there is no sixth event yet");
        send_published(&sender, commit(6, 1)).await;
        assert_eq!(sequences(&mut receiver, 1).await, [6]);
    }

    #[tokio::test]
    async fn a_receiver_that_falls_behind_is_told_how_many_publications_it_missed() {
        let sender = EventSender::new();
        let mut receiver = sender.subscribe();
        for sequence in 1..=(BUFFER as u64 + 2) {
            send_published(&sender, commit(sequence, 1)).await;
        }
        assert!(matches!(receiver.recv().await, Err(RecvError::Lagged(2))));
        assert_eq!(receiver.recv().await.unwrap().sequence, 3);
    }
}
