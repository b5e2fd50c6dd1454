//! The contract of [`Store`], checked against every backend. Each check is a function taking
//! `&dyn Store`; the `conformance!` macro runs each one against a fresh [`MemoryStore`] and a
//! fresh [`SledStore`] in a temporary directory.

use serde_json::json;
use weft_domain::{JobState, Timestamp};
use weft_store::{
    CreateJob, JobMeta, JobQuery, KvScope, PluginStatus, PutDefinition, PutPlugin, Store,
    StoreError,
};

use crate::fixtures::{
    cancel, digest, job, pause, plugin, resume, start, succeed, workflow, workflow_name,
};

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $check() {
                    super::$check(&weft_store::MemoryStore::new());
                }
            )*
        }

        mod sled {
            $(
                #[test]
                fn $check() {
                    let dir = crate::fixtures::temp_dir();
                    super::$check(&crate::fixtures::open_sled(&dir));
                }
            )*
        }
    };
}

conformance!(
    plugins_are_stored_once_per_digest_and_per_version,
    plugins_list_by_name_then_version,
    plugin_updates_change_status_and_grants_only,
    definition_versions_are_immutable,
    latest_definition_is_the_highest_version,
    created_jobs_keep_their_metadata_and_events,
    idempotency_keys_are_per_workflow,
    racing_creations_create_each_job_once,
    commits_replace_the_job_and_append_events,
    failed_commits_change_nothing,
    events_page_after_a_sequence,
    jobs_list_newest_first_with_filters_and_cursor,
    unfinished_jobs_follow_the_job_state,
    kv_scopes_are_separate,
    durable_resolves_after_commits,
);

fn meta(key: Option<&str>) -> JobMeta {
    JobMeta::new(3, "default", key.map(str::to_owned))
}

fn plugins_are_stored_once_per_digest_and_per_version(store: &dyn Store) {
    let http = plugin("http", "1.0.0", 1);
    assert_eq!(store.put_plugin(&http, b"one").unwrap(), PutPlugin::Created);
    let mut again = http.clone();
    again.description = "ignored".to_owned();
    assert_eq!(
        store.put_plugin(&again, b"one").unwrap(),
        PutPlugin::Existing(http.clone())
    );
    let rebuilt = plugin("http", "1.0.0", 2);
    assert_eq!(
        store.put_plugin(&rebuilt, b"two").unwrap(),
        PutPlugin::Conflict {
            existing: digest(1)
        }
    );
    assert_eq!(store.plugin(&digest(1)).unwrap(), Some(http));
    assert_eq!(
        store.plugin_component(&digest(1)).unwrap(),
        Some(b"one".to_vec())
    );
    assert_eq!(store.plugin(&digest(2)).unwrap(), None);
    assert_eq!(store.plugin_component(&digest(2)).unwrap(), None);
    assert_eq!(store.plugins().unwrap().len(), 1);
}

fn plugins_list_by_name_then_version(store: &dyn Store) {
    for (name, version, n) in [
        ("http", "1.10.0", 1),
        ("http", "1.2.0", 2),
        ("disk-erase", "0.3.0", 3),
    ] {
        store.put_plugin(&plugin(name, version, n), &[n]).unwrap();
    }
    let listed: Vec<String> = store
        .plugins()
        .unwrap()
        .iter()
        .map(|p| format!("{}@{}", p.name, p.version))
        .collect();
    assert_eq!(listed, ["disk-erase@0.3.0", "http@1.2.0", "http@1.10.0"]);
    let catalogue = store.catalogue().unwrap();
    let digests: Vec<_> = catalogue.iter().map(|e| e.digest.clone()).collect();
    assert_eq!(digests, [digest(3), digest(2), digest(1)]);
    assert_eq!(
        catalogue[0],
        plugin("disk-erase", "0.3.0", 3).catalogue_entry()
    );
}

fn plugin_updates_change_status_and_grants_only(store: &dyn Store) {
    let mut record = plugin("http", "1.0.0", 1);
    store.put_plugin(&record, b"one").unwrap();
    record.status = PluginStatus::Approved;
    record.approved_at = Some(Timestamp::from_unix_ms(2_000));
    record.grants.http_hosts = vec!["example.internal".to_owned()];
    record.grants.fuel = Some(1_000_000);
    store.update_plugin(&record).unwrap();
    assert_eq!(store.plugin(&digest(1)).unwrap(), Some(record.clone()));

    assert_eq!(
        store.update_plugin(&plugin("http", "1.0.0", 9)),
        Err(StoreError::NotFound)
    );
    let mut renamed = record.clone();
    renamed.version = "2.0.0".parse().unwrap();
    assert!(matches!(
        store.update_plugin(&renamed),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.plugin(&digest(1)).unwrap(), Some(record));
}

fn definition_versions_are_immutable(store: &dyn Store) {
    let name = workflow_name("erase");
    let document = json!({"name": "erase", "version": 1, "steps": []});
    assert_eq!(
        store.put_definition(&name, 1, &document).unwrap(),
        PutDefinition::Created
    );
    assert_eq!(
        store.put_definition(&name, 1, &document).unwrap(),
        PutDefinition::Unchanged
    );
    let changed = json!({"name": "erase", "version": 1, "steps": [], "description": "x"});
    assert_eq!(
        store.put_definition(&name, 1, &changed).unwrap(),
        PutDefinition::Conflict
    );
    assert_eq!(store.definition(&name, 1).unwrap(), Some(document));
    assert_eq!(store.definition(&name, 2).unwrap(), None);
}

fn latest_definition_is_the_highest_version(store: &dyn Store) {
    let (erase, erase_all) = (workflow_name("erase"), workflow_name("erase-all"));
    for version in [2, 10, 1] {
        store
            .put_definition(&erase, version, &json!({"v": version}))
            .unwrap();
    }
    store
        .put_definition(&erase_all, 1, &json!({"v": "all"}))
        .unwrap();
    assert_eq!(
        store.latest_definition(&erase).unwrap(),
        Some((10, json!({"v": 10})))
    );
    assert_eq!(
        store.latest_definition(&workflow_name("eras")).unwrap(),
        None
    );
    assert_eq!(
        store.definitions().unwrap(),
        [
            (erase.clone(), 1),
            (erase.clone(), 2),
            (erase, 10),
            (erase_all, 1)
        ]
    );
}

fn created_jobs_keep_their_metadata_and_events(store: &dyn Store) {
    let definition = workflow("erase");
    let (job, created) = job(&definition, 100);
    let job_meta = meta(None);
    assert_eq!(
        store
            .create_job(&job, &job_meta, std::slice::from_ref(&created))
            .unwrap(),
        CreateJob::Created
    );
    assert_eq!(store.job(job.id()).unwrap(), Some(job.clone()));
    assert_eq!(store.job_meta(job.id()).unwrap(), Some(job_meta));
    assert_eq!(
        store.events(job.id(), 0, 10).unwrap(),
        std::slice::from_ref(&created)
    );
    assert!(matches!(
        store.create_job(&job, &meta(Some("retry")), &[created]),
        Err(StoreError::Conflict(_))
    ));
    // The refused creation left nothing behind, not even its idempotency key.
    let (other, other_created) = crate::fixtures::job(&definition, 101);
    assert_eq!(
        store
            .create_job(&other, &meta(Some("retry")), &[other_created])
            .unwrap(),
        CreateJob::Created
    );
    let (other, _) = crate::fixtures::job(&definition, 102);
    assert_eq!(store.job(other.id()).unwrap(), None);
    assert_eq!(store.job_meta(other.id()).unwrap(), None);
    assert_eq!(store.events(other.id(), 0, 10).unwrap(), []);
}

fn idempotency_keys_are_per_workflow(store: &dyn Store) {
    let (erase, audit) = (workflow("erase"), workflow("audit"));
    let (first, first_created) = job(&erase, 100);
    let (second, second_created) = job(&erase, 200);
    let (third, third_created) = job(&audit, 300);
    let keyed = meta(Some("order-7"));
    store.create_job(&first, &keyed, &[first_created]).unwrap();
    assert_eq!(
        store
            .create_job(&second, &keyed, std::slice::from_ref(&second_created))
            .unwrap(),
        CreateJob::Existing(first.id())
    );
    assert_eq!(store.job(second.id()).unwrap(), None);
    assert_eq!(store.events(second.id(), 0, 10).unwrap(), []);
    assert_eq!(
        store.create_job(&third, &keyed, &[third_created]).unwrap(),
        CreateJob::Created
    );
    assert_eq!(
        store
            .create_job(&second, &meta(None), &[second_created])
            .unwrap(),
        CreateJob::Created
    );
}

/// Threads that create jobs at the same moment: with one idempotency key, exactly one job is
/// created and every other creation names it; creating one job many times creates it once.
fn racing_creations_create_each_job_once(store: &dyn Store) {
    const RACERS: u64 = 8;
    let definition = workflow("erase");
    let race = |creations: Vec<(weft_domain::Job, weft_domain::Event, JobMeta)>| {
        let barrier = std::sync::Barrier::new(creations.len());
        std::thread::scope(|scope| {
            let racers: Vec<_> = creations
                .iter()
                .map(|(job, created, meta)| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        store.create_job(job, meta, std::slice::from_ref(created))
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|racer| racer.join().unwrap())
                .collect::<Vec<_>>()
        })
    };
    for round in 0..20 {
        let keyed = meta(Some(&format!("order-{round}")));
        let creations: Vec<_> = (0..RACERS)
            .map(|i| {
                let (job, created) = job(&definition, 1_000 + round * 100 + i);
                (job, created, keyed.clone())
            })
            .collect();
        let ids: Vec<_> = creations.iter().map(|(job, _, _)| job.id()).collect();
        let outcomes = race(creations);
        let created: Vec<_> = ids
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| matches!(outcome, Ok(CreateJob::Created)))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(created.len(), 1, "round {round}: {outcomes:?}");
        for (id, outcome) in ids.iter().zip(&outcomes) {
            match outcome {
                Ok(CreateJob::Existing(existing)) => assert_eq!(*existing, created[0]),
                Ok(CreateJob::Created) => assert_eq!(*id, created[0]),
                Err(e) => panic!("round {round}: {e}"),
            }
            let stored = store.job(*id).unwrap();
            assert_eq!(stored.is_some(), *id == created[0], "round {round}");
        }

        let (job, created) = job(&definition, 9_000 + round);
        let outcomes = race(
            (0..RACERS)
                .map(|_| (job.clone(), created.clone(), meta(None)))
                .collect(),
        );
        let firsts = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Ok(CreateJob::Created)))
            .count();
        assert_eq!(firsts, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(CreateJob::Created) | Err(StoreError::Conflict(_)))),
            "round {round}: {outcomes:?}"
        );
        assert_eq!(store.events(job.id(), 0, 10).unwrap(), [created]);
    }
}

fn commits_replace_the_job_and_append_events(store: &dyn Store) {
    let definition = workflow("erase");
    let (mut job, created) = job(&definition, 100);
    store
        .create_job(&job, &meta(None), std::slice::from_ref(&created))
        .unwrap();
    let started = start(&definition, &mut job);
    store.commit_job(&job, &started).unwrap();
    assert_eq!(store.job(job.id()).unwrap(), Some(job.clone()));
    store
        .commit_job(&job, &started)
        .expect("a retried commit with equal events is accepted");
    let finished = succeed(&definition, &mut job);
    store.commit_job(&job, &finished).unwrap();
    assert_eq!(
        store.job(job.id()).unwrap().unwrap().state(),
        JobState::Succeeded
    );
    let all: Vec<_> = [vec![created], started, finished].concat();
    assert_eq!(store.events(job.id(), 0, 100).unwrap(), all);
    assert_eq!(
        all.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=all.len() as u64).collect::<Vec<_>>()
    );

    let (unknown, _) = crate::fixtures::job(&definition, 200);
    assert_eq!(store.commit_job(&unknown, &[]), Err(StoreError::NotFound));
}

fn failed_commits_change_nothing(store: &dyn Store) {
    let definition = workflow("erase");
    let (mut job, created) = job(&definition, 100);
    store
        .create_job(&job, &meta(None), std::slice::from_ref(&created))
        .unwrap();
    let stored = job.clone();
    let mut events = start(&definition, &mut job);
    let mut rewritten = created.clone();
    rewritten.at = Timestamp::from_unix_ms(999);
    events.insert(0, rewritten);
    assert!(matches!(
        store.commit_job(&job, &events),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.job(job.id()).unwrap(), Some(stored.clone()));
    assert_eq!(store.events(job.id(), 0, 100).unwrap(), [created]);

    let (other, other_created) = crate::fixtures::job(&workflow("audit"), 200);
    assert!(matches!(
        store.commit_job(&job, &[other_created]),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.create_job(
            &other,
            &JobMeta {
                format_version: 99,
                ..meta(None)
            },
            &[]
        ),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.job(job.id()).unwrap(), Some(stored));
    assert_eq!(store.job(other.id()).unwrap(), None);
}

fn events_page_after_a_sequence(store: &dyn Store) {
    let definition = workflow("erase");
    let (mut job, created) = job(&definition, 100);
    let (neighbour, neighbour_created) = crate::fixtures::job(&definition, 101);
    store.create_job(&job, &meta(None), &[created]).unwrap();
    store
        .create_job(&neighbour, &meta(None), &[neighbour_created])
        .unwrap();
    let mut events = start(&definition, &mut job);
    events.extend(succeed(&definition, &mut job));
    store.commit_job(&job, &events).unwrap();
    assert!(job.last_event_sequence() >= 5);

    let sequences = |after: u64, limit: usize| -> Vec<u64> {
        store
            .events(job.id(), after, limit)
            .unwrap()
            .iter()
            .map(|e| e.sequence)
            .collect()
    };
    assert_eq!(sequences(2, 2), [3, 4]);
    assert_eq!(
        sequences(0, 100),
        (1..=job.last_event_sequence()).collect::<Vec<_>>()
    );
    assert!(sequences(job.last_event_sequence(), 10).is_empty());
    assert!(sequences(0, 0).is_empty());
    assert!(sequences(u64::MAX, 10).is_empty());
    assert!(
        store
            .events(job.id(), 0, 100)
            .unwrap()
            .iter()
            .all(|e| e.job_id == job.id())
    );
}

fn jobs_list_newest_first_with_filters_and_cursor(store: &dyn Store) {
    let (erase, audit) = (workflow("erase"), workflow("audit"));
    let mut ids = Vec::new();
    for (n, definition) in [&erase, &audit, &erase, &audit, &erase]
        .into_iter()
        .enumerate()
    {
        let (mut job, created) = job(definition, 100 + n as u64);
        store.create_job(&job, &meta(None), &[created]).unwrap();
        if n % 2 == 0 {
            let events = start(definition, &mut job);
            store.commit_job(&job, &events).unwrap();
        }
        ids.push(job.id());
    }
    let page = |query: JobQuery| {
        let page = store.jobs(&query).unwrap();
        let ids: Vec<_> = page.jobs.iter().map(|job| job.id()).collect();
        (ids, page.next_cursor)
    };

    let first = page(JobQuery::newest(2));
    assert_eq!(first, (vec![ids[4], ids[3]], Some(ids[3])));
    let second = page(JobQuery {
        cursor: first.1,
        ..JobQuery::newest(2)
    });
    assert_eq!(second, (vec![ids[2], ids[1]], Some(ids[1])));
    let last = page(JobQuery {
        cursor: second.1,
        ..JobQuery::newest(2)
    });
    assert_eq!(last, (vec![ids[0]], None));
    assert_eq!(
        page(JobQuery::newest(5)),
        (ids.iter().rev().copied().collect(), None)
    );
    assert_eq!(page(JobQuery::newest(0)).0, []);

    let of_audit = JobQuery {
        workflow: Some(workflow_name("audit")),
        ..JobQuery::newest(10)
    };
    assert_eq!(page(of_audit.clone()), (vec![ids[3], ids[1]], None));
    let running = JobQuery {
        state: Some(JobState::Running),
        ..JobQuery::newest(10)
    };
    assert_eq!(page(running.clone()), (vec![ids[4], ids[2], ids[0]], None));
    let running_after_cursor = JobQuery {
        cursor: Some(ids[4]),
        limit: 1,
        ..running.clone()
    };
    assert_eq!(page(running_after_cursor), (vec![ids[2]], Some(ids[2])));
    let pending_audit = JobQuery {
        state: Some(JobState::Pending),
        ..of_audit
    };
    assert_eq!(page(pending_audit), (vec![ids[3], ids[1]], None));

    // The state filter follows commits, into and out of states a job rarely visits.
    let paused = JobQuery {
        state: Some(JobState::Paused),
        ..JobQuery::newest(10)
    };
    let mut job = store.job(ids[4]).unwrap().unwrap();
    let events = pause(&erase, &mut job);
    store.commit_job(&job, &events).unwrap();
    assert_eq!(page(paused.clone()), (vec![ids[4]], None));
    assert_eq!(page(running.clone()), (vec![ids[2], ids[0]], None));
    let events = resume(&erase, &mut job);
    store.commit_job(&job, &events).unwrap();
    assert_eq!(page(paused), (vec![], None));
    assert_eq!(page(running.clone()), (vec![ids[4], ids[2], ids[0]], None));
    let mut job = store.job(ids[2]).unwrap().unwrap();
    let events = cancel(&erase, &mut job);
    store.commit_job(&job, &events).unwrap();
    assert_eq!(page(running), (vec![ids[4], ids[0]], None));
    let cancelled = JobQuery {
        state: Some(JobState::Cancelled),
        workflow: Some(workflow_name("erase")),
        ..JobQuery::newest(10)
    };
    assert_eq!(page(cancelled), (vec![ids[2]], None));
}

fn unfinished_jobs_follow_the_job_state(store: &dyn Store) {
    let definition = workflow("erase");
    let mut jobs = Vec::new();
    for n in 0..3 {
        let (job, created) = job(&definition, 100 + n);
        store
            .create_job(&job, &meta(Some(&format!("k{n}"))), &[created])
            .unwrap();
        jobs.push(job);
    }
    let events = start(&definition, &mut jobs[1]);
    store.commit_job(&jobs[1], &events).unwrap();
    let events = cancel(&definition, &mut jobs[2]);
    store.commit_job(&jobs[2], &events).unwrap();

    let unfinished = store.unfinished_jobs().unwrap();
    let listed: Vec<_> = unfinished
        .iter()
        .map(|(job, meta)| (job.id(), job.state(), meta.idempotency_key.clone()))
        .collect();
    assert_eq!(
        listed,
        [
            (jobs[0].id(), JobState::Pending, Some("k0".to_owned())),
            (jobs[1].id(), JobState::Running, Some("k1".to_owned())),
        ]
    );

    let events = succeed(&definition, &mut jobs[1]);
    store.commit_job(&jobs[1], &events).unwrap();
    let ids: Vec<_> = store
        .unfinished_jobs()
        .unwrap()
        .iter()
        .map(|(job, _)| job.id())
        .collect();
    assert_eq!(ids, [jobs[0].id()]);

    // A finished job may still be rewritten (a late result), but never reopened.
    store.commit_job(&jobs[2], &[]).unwrap();
    let (mut reopened, _) = job(&definition, 102);
    assert_eq!(reopened.id(), jobs[2].id());
    start(&definition, &mut reopened);
    assert!(matches!(
        store.commit_job(&reopened, &[]),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.job(jobs[2].id()).unwrap().unwrap().state(),
        JobState::Cancelled
    );
}

fn kv_scopes_are_separate(store: &dyn Store) {
    let left = KvScope::new("ab", "c");
    let right = KvScope::new("a", "bc");
    let other_namespace = KvScope::new("ab", "d");
    store.kv_set(&left, "user/1", b"left").unwrap();
    store.kv_set(&left, "user/2", b"two").unwrap();
    store.kv_set(&left, "users", b"s").unwrap();
    store.kv_set(&right, "user/1", b"right").unwrap();
    store.kv_set(&other_namespace, "user/3", b"d").unwrap();

    assert_eq!(
        store.kv_get(&left, "user/1").unwrap(),
        Some(b"left".to_vec())
    );
    assert_eq!(
        store.kv_get(&right, "user/1").unwrap(),
        Some(b"right".to_vec())
    );
    assert_eq!(store.kv_get(&other_namespace, "user/1").unwrap(), None);
    assert_eq!(
        store.kv_list_prefix(&left, "user/").unwrap(),
        ["user/1", "user/2"]
    );
    assert_eq!(
        store.kv_list_prefix(&left, "").unwrap(),
        ["user/1", "user/2", "users"]
    );
    assert_eq!(store.kv_list_prefix(&right, "").unwrap(), ["user/1"]);

    store.kv_set(&left, "user/1", b"again").unwrap();
    assert_eq!(
        store.kv_get(&left, "user/1").unwrap(),
        Some(b"again".to_vec())
    );
    store.kv_delete(&left, "user/1").unwrap();
    store.kv_delete(&left, "never-set").unwrap();
    assert_eq!(store.kv_get(&left, "user/1").unwrap(), None);
    assert_eq!(
        store.kv_get(&right, "user/1").unwrap(),
        Some(b"right".to_vec())
    );
    assert_eq!(
        store.kv_list_prefix(&left, "user").unwrap(),
        ["user/2", "users"]
    );
}

fn durable_resolves_after_commits(store: &dyn Store) {
    let definition = workflow("erase");
    let (job, created) = job(&definition, 100);
    store.create_job(&job, &meta(None), &[created]).unwrap();
    store.durable().wait_blocking().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let waits: Vec<_> = (0..4).map(|_| store.durable()).collect();
        for durable in waits {
            durable.wait().await.unwrap();
        }
    });
}
