//! The raw throughput the engine's benchmark compares against: plain sled inserts, each made
//! durable through the same group-commit flusher the store uses, with no transaction, index or
//! JSON. The gap between this and the engine's rate is what the engine's own work costs.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::SledConfig;
use super::group_commit::GroupCommit;
use crate::error::StoreError;

/// Records per second that `writers` concurrent threads reach for `duration` when each inserts
/// a `record_bytes`-long record into a fresh sled database at `path` and waits for it to be
/// durable before inserting the next.
pub fn raw_group_commit_baseline(
    path: &Path,
    record_bytes: usize,
    writers: usize,
    duration: Duration,
) -> Result<f64, StoreError> {
    let db = SledConfig::default().sled(path).open()?;
    let tree = db.open_tree("baseline")?;
    let mut group_commit =
        GroupCommit::start(db.clone(), SledConfig::default().group_commit_linger)?;
    let record = vec![0xa5; record_bytes];
    let started = Instant::now();
    let deadline = started + duration;
    let written = thread::scope(|scope| {
        let threads: Vec<_> = (0..writers)
            .map(|writer| {
                let (tree, group_commit, record) = (&tree, &group_commit, &record);
                scope.spawn(move || write_until(tree, group_commit, record, writer, deadline))
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| {
                thread.join().unwrap_or_else(|_| {
                    Err(StoreError::Backend("a baseline writer panicked".to_owned()))
                })
            })
            .sum::<Result<u64, StoreError>>()
    })?;
    let elapsed = started.elapsed();
    group_commit.stop()?;
    Ok(written as f64 / elapsed.as_secs_f64())
}

/// One writer: inserts and waits until `deadline`; returns how many records it wrote.
fn write_until(
    tree: &sled::Tree,
    group_commit: &GroupCommit,
    record: &[u8],
    writer: usize,
    deadline: Instant,
) -> Result<u64, StoreError> {
    let mut written: u64 = 0;
    while Instant::now() < deadline {
        let mut key = [0; 16];
        key[..8].copy_from_slice(&(writer as u64).to_be_bytes());
        key[8..].copy_from_slice(&written.to_be_bytes());
        tree.insert(key, record)?;
        group_commit.request().wait_blocking()?;
        written += 1;
    }
    Ok(written)
}
