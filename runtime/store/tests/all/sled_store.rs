//! What only the on-disk store promises: everything survives closing and reopening, and
//! concurrent commits share flushes.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use serde_json::json;
use weft_domain::JobState;
use weft_store::{
    CreateJob, JobMeta, KvScope, PluginStatus, SledConfig, SledStore, Store, StoreError,
    raw_group_commit_baseline,
};

use crate::fixtures::{
    digest, job, open_sled, plugin, start, succeed, temp_dir, workflow, workflow_name,
};

#[test]
fn reopening_keeps_everything() {
    let dir = temp_dir();
    let definition = workflow("erase");
    let (mut running, created) = job(&definition, 100);
    let (pending, pending_created) = job(&definition, 200);
    let scope = KvScope::new("http", "cache");
    {
        let store = open_sled(&dir);
        store
            .put_plugin(&plugin("http", "1.0.0", 1), b"wasm")
            .unwrap();
        store
            .put_definition(&workflow_name("erase"), 1, &json!({"steps": []}))
            .unwrap();
        let keyed = JobMeta::new(5, "fast", Some("order-1".to_owned()));
        store.create_job(&running, &keyed, &[created]).unwrap();
        let events = start(&definition, &mut running);
        store.commit_job(&running, &events).unwrap();
        store
            .create_job(
                &pending,
                &JobMeta::new(0, "default", None),
                &[pending_created],
            )
            .unwrap();
        store.kv_set(&scope, "token", b"secret").unwrap();
        store.durable().wait_blocking().unwrap();
    }

    let store = open_sled(&dir);
    assert_eq!(
        store.plugin(&digest(1)).unwrap().unwrap().status,
        PluginStatus::Pending
    );
    assert_eq!(
        store.plugin_component(&digest(1)).unwrap().unwrap(),
        b"wasm"
    );
    assert_eq!(
        store.latest_definition(&workflow_name("erase")).unwrap(),
        Some((1, json!({"steps": []})))
    );
    assert_eq!(store.job(running.id()).unwrap(), Some(running.clone()));
    assert_eq!(
        store.events(running.id(), 0, 100).unwrap().len() as u64,
        running.last_event_sequence()
    );
    assert_eq!(store.job_meta(running.id()).unwrap().unwrap().queue, "fast");
    let unfinished: Vec<_> = store
        .unfinished_jobs()
        .unwrap()
        .into_iter()
        .map(|(job, _)| (job.id(), job.state()))
        .collect();
    assert_eq!(
        unfinished,
        [
            (running.id(), JobState::Running),
            (pending.id(), JobState::Pending)
        ]
    );
    let (duplicate, duplicate_created) = job(&definition, 300);
    let keyed = JobMeta::new(5, "fast", Some("order-1".to_owned()));
    assert_eq!(
        store
            .create_job(&duplicate, &keyed, &[duplicate_created])
            .unwrap(),
        CreateJob::Existing(running.id())
    );
    assert_eq!(store.kv_get(&scope, "token").unwrap().unwrap(), b"secret");

    // A commit on a job an earlier process wrote, which this store has not seen commit.
    let events = succeed(&definition, &mut running);
    store.commit_job(&running, &events).unwrap();
    assert_eq!(store.job(running.id()).unwrap(), Some(running.clone()));
    store.close().unwrap();

    let reopened = open_sled(&dir);
    assert_eq!(reopened.job(pending.id()).unwrap(), Some(pending));
    assert_eq!(reopened.job(running.id()).unwrap(), Some(running.clone()));
    let sequences: Vec<u64> = reopened
        .events(running.id(), 0, 100)
        .unwrap()
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(
        sequences,
        (1..=running.last_event_sequence()).collect::<Vec<_>>()
    );
    assert_eq!(
        reopened.unfinished_jobs().unwrap().len(),
        1,
        "the finished job left the unfinished index"
    );
}

#[test]
fn a_database_is_opened_by_one_store_at_a_time() {
    let dir = temp_dir();
    let store = open_sled(&dir);
    let second = SledStore::open(&dir.path().join("db"), SledConfig::default());
    match second {
        Err(StoreError::Backend(message)) => {
            assert!(message.contains("open in another process"), "{message}");
        }
        other => panic!("expected the database to be refused, got {other:?}"),
    }
    // Once closed, it opens at once, though sled's threads may hold it a moment longer.
    store.close().unwrap();
    open_sled(&dir);
}

#[test]
fn concurrent_commits_share_flushes() {
    const TASKS: u64 = 32;
    const JOBS_PER_TASK: u64 = 10;
    let dir = temp_dir();
    let store = Arc::new(open_sled(&dir));
    let definition = Arc::new(workflow("erase"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let (store, definition) = (Arc::clone(&store), Arc::clone(&definition));
                tokio::spawn(async move {
                    for n in 0..JOBS_PER_TASK {
                        let (pending, created) = job(&definition, 1_000 * task + n);
                        let mut running = pending.clone();
                        let events = start(&definition, &mut running);
                        let writer = Arc::clone(&store);
                        let created = tokio::task::spawn_blocking(move || {
                            let meta = JobMeta::new(0, "default", None);
                            writer.create_job(&pending, &meta, &[created]).unwrap();
                            writer.durable()
                        });
                        created.await.unwrap().wait().await.unwrap();
                        let writer = Arc::clone(&store);
                        let committed = tokio::task::spawn_blocking(move || {
                            writer.commit_job(&running, &events).unwrap();
                            writer.durable()
                        });
                        committed.await.unwrap().wait().await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let commits = TASKS * JOBS_PER_TASK * 2;
    let flushes = store.flush_count();
    assert!(
        flushes < commits / 2,
        "{flushes} flushes for {commits} commits"
    );
    assert_eq!(
        store.unfinished_jobs().unwrap().len() as u64,
        TASKS * JOBS_PER_TASK
    );
}

/// Threads that ask for durability at about the same time are served by a shared flush. The
/// threads meet at a barrier between committing and asking, so that how they are scheduled
/// on a loaded machine does not decide how far their requests are spread out.
#[test]
fn concurrent_threads_share_flushes() {
    const THREADS: u64 = 16;
    const JOBS_PER_THREAD: u64 = 20;
    let dir = temp_dir();
    let store = open_sled(&dir);
    let definition = workflow("erase");
    let committed = Barrier::new(THREADS as usize);
    thread::scope(|scope| {
        for thread in 0..THREADS {
            let (store, definition, committed) = (&store, &definition, &committed);
            scope.spawn(move || {
                for n in 0..JOBS_PER_THREAD {
                    let (job, created) = job(definition, 1_000 * thread + n);
                    let meta = JobMeta::new(0, "default", None);
                    store.create_job(&job, &meta, &[created]).unwrap();
                    committed.wait();
                    store.durable().wait_blocking().unwrap();
                }
            });
        }
    });
    let commits = THREADS * JOBS_PER_THREAD;
    let flushes = store.flush_count();
    assert!(
        flushes < commits / 2,
        "{flushes} flushes for {commits} commits"
    );
}

#[test]
fn the_raw_baseline_reports_a_rate() {
    let dir = temp_dir();
    let rate = raw_group_commit_baseline(
        &dir.path().join("baseline"),
        256,
        4,
        Duration::from_millis(200),
    )
    .unwrap();
    assert!(rate > 0.0, "{rate}");
}
