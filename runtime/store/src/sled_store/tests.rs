//! Records this build cannot read: each must surface as [`StoreError::Corrupt`] naming the
//! record, never as a panic or a misread value.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use weft_domain::{
    Event, Job, JobId, PluginDigest, ResolvedPlugin, StepId, Timestamp, WorkflowDefinition,
};

use super::*;
use crate::plugin::{PluginGrants, PluginStatus, RequestedCapabilities};
use crate::{JobMeta, RECORD_FORMAT_VERSION};

fn temp_store() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("db"), SledConfig::default()).unwrap();
    (dir, store)
}

fn digest() -> PluginDigest {
    PluginDigest::new(format!("sha256:{}", "ab".repeat(32))).unwrap()
}

fn job() -> Job {
    job_with_id(JobId::from_parts(Timestamp::from_unix_ms(5), [1; 10]))
}

fn job_with_id(id: JobId) -> Job {
    let definition = WorkflowDefinition::from_value(json!({
        "name": "erase", "version": 1, "steps": [{"id": "a", "plugin": "echo@1"}]
    }))
    .unwrap();
    Job::create(
        id,
        &definition,
        json!({}),
        echo_plugins(["a"]),
        Timestamp::EPOCH,
    )
    .unwrap()
    .0
}

/// The JSON `record` with another format version.
fn with_format_version(record: &[u8], version: u32) -> Vec<u8> {
    let mut record: Value = serde_json::from_slice(record).unwrap();
    record["format_version"] = json!(version);
    serde_json::to_vec(&record).unwrap()
}

/// Rewrites the JSON record at `key` in `tree` with another format version.
fn bump_format_version(tree: &Tree, key: &[u8], version: u32) {
    let record = tree.get(key).unwrap().unwrap();
    tree.insert(key, with_format_version(&record, version))
        .unwrap();
}

/// Records `version` as the database's store format, and closes it.
fn close_as_format(store: SledStore, version: u32) {
    let version = version.to_string();
    store
        .db
        .open_tree("meta")
        .unwrap()
        .insert(FORMAT_VERSION_KEY, version.as_bytes())
        .unwrap();
    store.close().unwrap();
}

fn assert_corrupt<T: fmt::Debug>(result: Result<T, StoreError>, what: &str, detail: &str) {
    match result {
        Err(StoreError::Corrupt { what: w, detail: d }) => {
            assert!(w.contains(what), "{w:?} should name {what:?}");
            assert!(d.contains(detail), "{d:?} should contain {detail:?}");
        }
        other => panic!("expected a corrupt {what}, got {other:?}"),
    }
}

#[test]
fn jobs_of_an_unknown_format_are_corrupt() {
    let (_dir, store) = temp_store();
    let job = job();
    let meta = JobMeta::new(0, "default", None);
    store.create_job(&job, &meta, &[]).unwrap();
    let jobs = &store.trees.jobs;
    let commit = keys::head(job.id());
    let stored = jobs.get(commit).unwrap().unwrap();
    let head = records::split_head(&stored, String::new).unwrap();
    let (events, tasks) = (head.events, head.tasks);
    let mut record: Value = serde_json::from_slice(head.outline).unwrap();
    record["format_version"] = json!(2);
    let rewritten = serde_json::from_value::<Job>(record.clone());
    assert!(rewritten.is_err(), "this build refuses format version 2");
    let mut bytes = Vec::new();
    for section in [events, tasks] {
        bytes.extend_from_slice(&(section.len() as u32).to_le_bytes());
        bytes.extend_from_slice(section);
    }
    bytes.extend_from_slice(&serde_json::to_vec(&record).unwrap());
    jobs.insert(commit, bytes).unwrap();
    let meta_key = keys::tagged_job(keys::tag::META, job.id());
    let meta = jobs.get(meta_key.as_slice()).unwrap().unwrap();
    jobs.insert(meta_key, with_format_version(&meta, 2))
        .unwrap();

    let unsupported = "format version 2 is not supported";
    assert_corrupt(store.job(job.id()), "job", unsupported);
    assert_corrupt(store.jobs(&JobQuery::newest(10)), "job", unsupported);
    assert_corrupt(store.unfinished_jobs(), "job", unsupported);
    assert_corrupt(store.job_meta(job.id()), "metadata of job", unsupported);

    // A commit replaces the record without reading it, which repairs it.
    store.commit_job(&job, &[]).unwrap();
    assert_eq!(store.job(job.id()).unwrap(), Some(job));
}

#[test]
fn plugins_and_definitions_of_an_unknown_format_are_corrupt() {
    let (_dir, store) = temp_store();
    let record = PluginRecord {
        format_version: RECORD_FORMAT_VERSION,
        digest: digest(),
        name: "echo".parse().unwrap(),
        version: semver::Version::new(1, 0, 0),
        description: String::new(),
        input_schema: None,
        output_schema: None,
        requested: RequestedCapabilities::default(),
        grants: PluginGrants::default(),
        status: PluginStatus::Approved,
        size_bytes: 0,
        uploaded_at: Timestamp::EPOCH,
        approved_at: None,
    };
    store.put_plugin(&record, b"").unwrap();
    bump_format_version(&store.trees.plugins, digest().as_str().as_bytes(), 7);
    let unsupported = "record format version 7 is not supported";
    assert_corrupt(store.plugin(&digest()), "plugin sha256:", unsupported);
    assert_corrupt(store.plugins(), "plugin", unsupported);
    assert_corrupt(store.put_plugin(&record, b""), "plugin", unsupported);

    let name = WorkflowName::new("erase").unwrap();
    store.put_definition(&name, 3, &json!({})).unwrap();
    bump_format_version(&store.trees.definitions, &keys::definition(&name, 3), 7);
    assert_corrupt(
        store.definition(&name, 3),
        "definition erase version 3",
        unsupported,
    );
    assert_corrupt(
        store.latest_definition(&name),
        "definition erase",
        unsupported,
    );
}

#[test]
fn undecodable_events_are_corrupt() {
    let (_dir, store) = temp_store();
    let id = job().id();
    store
        .trees
        .jobs
        .insert(
            keys::commit(id, 1),
            records::encode_chunk(b"[{not json", String::new).unwrap(),
        )
        .unwrap();
    assert_corrupt(store.events(id, 0, 10), "event", "key must be a string");
}

#[test]
fn a_database_of_another_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = SledStore::open(&path, SledConfig::default()).unwrap();
    close_as_format(store, 1);
    assert_corrupt(
        SledStore::open(&path, SledConfig::default()),
        "store",
        "format version 1 is not supported",
    );
}

#[test]
fn a_database_of_store_format_6_has_its_journal_tree_moved_into_the_jobs_tree() {
    let dir = tempfile::tempdir().unwrap();
    // Job `kept` is in the jobs tree; job `journaled` only in a format-6 journal record.
    let (kept, journaled) = (
        job(),
        job_with_id(JobId::from_parts(Timestamp::from_unix_ms(6), [2; 10])),
    );
    let elsewhere = dir.path().join("elsewhere");
    let store = SledStore::open(&elsewhere, SledConfig::default()).unwrap();
    store
        .create_job(&journaled, &JobMeta::new(0, "default", None), &[])
        .unwrap();
    store.close().unwrap();
    // Closed, the store holds every record in its jobs tree.
    let store = SledStore::open(&elsewhere, SledConfig::default()).unwrap();
    let mut record = Vec::new();
    for entry in store.db.open_tree("job_records").unwrap().iter() {
        let (key, value) = entry.unwrap();
        journal::push_write(&mut record, &key, Some(&value)).unwrap();
    }
    let path = dir.path().join("db");
    let store = SledStore::open(&path, SledConfig::default()).unwrap();
    store
        .create_job(&kept, &JobMeta::new(0, "default", None), &[])
        .unwrap();
    store
        .db
        .open_tree("job_journal")
        .unwrap()
        .insert(0_u64.to_be_bytes(), record)
        .unwrap();
    close_as_format(store, 6);

    let store = SledStore::open(&path, SledConfig::default()).unwrap();
    assert_eq!(store.job(kept.id()).unwrap(), Some(kept));
    assert_eq!(store.job(journaled.id()).unwrap(), Some(journaled));
    assert!(
        !store
            .db
            .tree_names()
            .iter()
            .any(|name| name == b"job_journal"),
        "the journal tree is gone"
    );
    let meta = store.db.open_tree("meta").unwrap();
    let version: u32 =
        serde_json::from_slice(&meta.get(FORMAT_VERSION_KEY).unwrap().unwrap()).unwrap();
    assert_eq!(version, STORE_FORMAT_VERSION);
}

#[test]
fn a_database_of_store_format_5_opens_with_an_empty_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = SledStore::open(&path, SledConfig::default()).unwrap();
    let job = job();
    store
        .create_job(&job, &JobMeta::new(0, "default", None), &[])
        .unwrap();
    // Closing moves the journal into the jobs tree: the tree alone is the format-5 layout.
    close_as_format(store, 5);
    let store = SledStore::open(&path, SledConfig::default()).unwrap();
    assert_eq!(store.job(job.id()).unwrap(), Some(job));
    let meta = store.db.open_tree("meta").unwrap();
    let version = meta.get(FORMAT_VERSION_KEY).unwrap().unwrap();
    let version: u32 = serde_json::from_slice(&version).unwrap();
    assert_eq!(version, STORE_FORMAT_VERSION);
}

/// Writes the index entries a creation makes before its head, for a job that was
/// never stored: what a crash between those writes leaves behind.
fn leave_interrupted_creation(store: &SledStore, ghost: JobId, idempotency_key: &str) {
    let jobs = &store.trees.jobs;
    let workflow = job().workflow().clone();
    let meta = serde_json::to_vec(&JobMeta::new(0, "default", None)).unwrap();
    let pending = serde_json::to_vec(&[weft_domain::JobState::Pending]).unwrap();
    jobs.insert(keys::tagged_job(keys::tag::META, ghost), meta)
        .unwrap();
    jobs.insert(keys::workflow_job(&workflow, ghost), &[])
        .unwrap();
    jobs.insert(keys::tagged_job(keys::tag::UNFINISHED, ghost), pending)
        .unwrap();
    jobs.insert(
        keys::idempotency(&workflow, idempotency_key),
        &ghost.to_bytes(),
    )
    .unwrap();
}

#[test]
fn index_entries_without_their_job_are_skipped() {
    let (_dir, store) = temp_store();
    let job = job();
    store
        .create_job(&job, &JobMeta::new(0, "default", None), &[])
        .unwrap();
    let ghost = JobId::from_parts(Timestamp::from_unix_ms(9), [7; 10]);
    leave_interrupted_creation(&store, ghost, "retry-1");
    // A move to `running` cut short before its head is rewritten leaves the job's unfinished
    // entry naming both states.
    use weft_domain::JobState::{Pending, Running};
    store
        .trees
        .jobs
        .insert(
            keys::tagged_job(keys::tag::UNFINISHED, job.id()),
            serde_json::to_vec(&[Pending, Running]).unwrap(),
        )
        .unwrap();

    let unfinished: Vec<JobId> = store
        .unfinished_jobs()
        .unwrap()
        .iter()
        .map(|(job, _)| job.id())
        .collect();
    assert_eq!(unfinished, vec![job.id()]);
    let ids = |query: &JobQuery| -> Vec<JobId> {
        store
            .jobs(query)
            .unwrap()
            .jobs
            .iter()
            .map(Job::id)
            .collect()
    };
    assert_eq!(ids(&JobQuery::newest(10)), vec![job.id()]);
    let by_workflow = JobQuery {
        workflow: Some(job.workflow().clone()),
        ..JobQuery::newest(10)
    };
    assert_eq!(ids(&by_workflow), vec![job.id()]);
    let running = JobQuery {
        state: Some(Running),
        ..JobQuery::newest(10)
    };
    assert!(ids(&running).is_empty(), "the job is pending, not running");
    let pending = JobQuery {
        state: Some(Pending),
        ..JobQuery::newest(10)
    };
    assert_eq!(ids(&pending), vec![job.id()]);
    assert_eq!(store.job(ghost).unwrap(), None);

    // The idempotency key of the interrupted creation is free again.
    let retried = JobId::from_parts(Timestamp::from_unix_ms(10), [8; 10]);
    let again = job_with_id(retried);
    let meta = JobMeta::new(0, "default", Some("retry-1".to_owned()));
    assert_eq!(
        store.create_job(&again, &meta, &[]).unwrap(),
        CreateJob::Created
    );
    assert_eq!(
        store.create_job(&again, &meta, &[]).unwrap(),
        CreateJob::Existing(retried)
    );
}

/// The echo plugin, resolved for each of `steps`.
fn echo_plugins<'a>(steps: impl IntoIterator<Item = &'a str>) -> BTreeMap<StepId, ResolvedPlugin> {
    let plugin = ResolvedPlugin {
        name: "echo".parse().unwrap(),
        version: semver::Version::new(1, 0, 0),
        digest: digest(),
    };
    steps
        .into_iter()
        .map(|step| (StepId::new(step).unwrap(), plugin.clone()))
        .collect()
}

/// Job `id` of `definition` on `input`, started, with its events so far.
fn started_job(definition: &WorkflowDefinition, input: Value, id: JobId) -> (Job, Vec<Event>) {
    let steps = definition.steps().iter().map(|step| step.id.as_str());
    let plugins = echo_plugins(steps);
    let (mut job, created) = Job::create(id, definition, input, plugins, Timestamp::EPOCH).unwrap();
    let started = weft_domain::Machine::new(definition)
        .start(&mut job, Timestamp::from_unix_ms(1))
        .unwrap();
    let mut events = vec![created];
    events.extend(started.events);
    (job, events)
}

/// Runs one attempt of `task` to success with output `{"erased": n}`; returns the events.
fn run_to_success(
    definition: &WorkflowDefinition,
    job: &mut Job,
    task: weft_domain::TaskKey,
    n: u64,
) -> Vec<Event> {
    use weft_domain::{AttemptOutcome, AttemptReport};
    let machine = weft_domain::Machine::new(definition);
    let now = job.updated_at().plus_ms(1);
    let (_, mut effects) = machine.begin_attempt(job, &task, now).unwrap();
    let report = AttemptReport::new(AttemptOutcome::Succeeded {
        output: json!({ "erased": n }),
    });
    let completed = machine
        .complete_attempt(job, &task, report, 0.0, now.plus_ms(1))
        .unwrap();
    effects.events.extend(completed.events);
    effects.events
}

/// A started job of `steps` independent steps, with its events so far.
fn wide_job(steps: usize) -> (WorkflowDefinition, Job, Vec<Event>) {
    let ids: Vec<String> = (0..steps).map(|n| format!("s{n}")).collect();
    let definition = WorkflowDefinition::from_value(json!({
        "name": "erase", "version": 1,
        "steps": ids.iter().map(|id| json!({"id": id, "plugin": "echo@1"})).collect::<Vec<_>>()
    }))
    .unwrap();
    let id = JobId::from_parts(Timestamp::from_unix_ms(5), [3; 10]);
    let (job, events) = started_job(&definition, json!({}), id);
    (definition, job, events)
}

/// Runs step `s{n}` of a `wide_job` to success; returns the events.
fn run_step(definition: &WorkflowDefinition, job: &mut Job, n: usize) -> Vec<Event> {
    let task = weft_domain::TaskKey::step(StepId::new(format!("s{n}")).unwrap());
    run_to_success(definition, job, task, n as u64)
}

/// The keys of every head and chunk record of a job.
fn job_records(store: &SledStore, id: JobId) -> Vec<sled::IVec> {
    store
        .trees
        .jobs
        .range(keys::commit(id, 0)..=keys::head(id))
        .keys()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn events_pass_from_the_head_into_chunks_and_read_back_once() {
    let (_dir, store) = temp_store();
    let (definition, mut job, mut all) = wide_job(80);
    let meta = JobMeta::new(0, "default", None);
    store.create_job(&job, &meta, &all).unwrap();
    for n in 0..79 {
        let events = run_step(&definition, &mut job, n);
        store.commit_job(&job, &events).unwrap();
        all.extend(events);
    }
    let records = job_records(&store, job.id());
    assert!(records.len() > 2, "{} records: no chunks", records.len());
    assert_eq!(store.events(job.id(), 0, 10_000).unwrap(), all);
    for after in [0, 1, 7, 50, all.len() as u64 - 1] {
        let page = store.events(job.id(), after, 5).unwrap();
        let expected: Vec<_> = all.iter().skip(after as usize).take(5).cloned().collect();
        assert_eq!(page, expected, "5 events after {after}");
    }
    assert_eq!(store.job(job.id()).unwrap(), Some(job.clone()));

    // A crash between writing a chunk and rewriting the head leaves the head's events in
    // both; each is still read once, and commits go on.
    let head = store.trees.jobs.get(keys::head(job.id())).unwrap().unwrap();
    let (head_events, _) = records::split_commit(&head, String::new).unwrap();
    let last = all.last().unwrap().sequence;
    store
        .trees
        .jobs
        .insert(
            keys::commit(job.id(), last),
            records::encode_chunk(head_events, String::new).unwrap(),
        )
        .unwrap();
    assert_eq!(store.events(job.id(), 0, 10_000).unwrap(), all);
    let reopened = store.path.clone();
    store.close().unwrap();
    let store = SledStore::open(&reopened, SledConfig::default()).unwrap();
    let events = run_step(&definition, &mut job, 79);
    store.commit_job(&job, &events).unwrap();
    all.extend(events);
    assert_eq!(store.events(job.id(), 0, 10_000).unwrap(), all);
    assert!(job.state().is_terminal());
    assert_eq!(store.job(job.id()).unwrap(), Some(job));
}

#[test]
fn a_database_of_store_format_3_is_migrated() {
    let (dir, store) = temp_store();
    let (definition, mut job, mut all) = wide_job(3);
    store
        .create_job(&job, &JobMeta::new(0, "default", None), &all)
        .unwrap();
    let events = run_step(&definition, &mut job, 0);
    store.commit_job(&job, &events).unwrap();
    all.extend(events);
    // Format 3 kept the job in its latest commit record, keyed by that commit's last event.
    let jobs = &store.trees.jobs;
    let head = jobs.get(keys::head(job.id())).unwrap().unwrap();
    jobs.remove(keys::head(job.id())).unwrap();
    let last = all.last().unwrap().sequence;
    jobs.insert(keys::commit(job.id(), last), head).unwrap();
    close_as_format(store, 3);

    let path = dir.path().join("db");
    let store = SledStore::open(&path, SledConfig::default()).unwrap();
    assert_eq!(store.job(job.id()).unwrap(), Some(job.clone()));
    assert_eq!(store.events(job.id(), 0, 100).unwrap(), all);
    assert_eq!(store.unfinished_jobs().unwrap().len(), 1);
    let events = run_step(&definition, &mut job, 1);
    store.commit_job(&job, &events).unwrap();
    all.extend(events);
    assert_eq!(store.events(job.id(), 0, 100).unwrap(), all);
    assert_eq!(store.job(job.id()).unwrap(), Some(job));
    store.close().unwrap();
    let stored = SledStore::open(&path, SledConfig::default()).unwrap();
    let meta = stored.db.open_tree("meta").unwrap();
    let version = meta.get(FORMAT_VERSION_KEY).unwrap().unwrap();
    assert_eq!(
        version.as_ref(),
        STORE_FORMAT_VERSION.to_string().as_bytes()
    );
}

/// A started job whose step `erase` fans out over `items` items, one at a time, with its
/// events so far.
fn fan_out_job(items: usize) -> (WorkflowDefinition, Job, Vec<Event>) {
    let definition = WorkflowDefinition::from_value(json!({
        "name": "erase", "version": 1,
        "steps": [{"id": "erase", "plugin": "echo@1", "for_each": "${workflow.input.machines}",
                   "concurrency": 1, "input": {"machine": "${item}"}}]
    }))
    .unwrap();
    let machines: Vec<String> = (0..items).map(|n| format!("m{n}")).collect();
    let id = JobId::from_parts(Timestamp::from_unix_ms(5), [4; 10]);
    let (job, events) = started_job(&definition, json!({ "machines": machines }), id);
    (definition, job, events)
}

/// Runs item `n` of a `fan_out_job` to success; returns the events.
fn run_item(definition: &WorkflowDefinition, job: &mut Job, n: u32) -> Vec<Event> {
    let task = weft_domain::TaskKey::item(StepId::new("erase").unwrap(), n);
    run_to_success(definition, job, task, u64::from(n))
}

fn head_len(store: &SledStore, id: JobId) -> usize {
    store.trees.jobs.get(keys::head(id)).unwrap().unwrap().len()
}

#[test]
fn a_large_fan_out_is_stored_in_parts_and_reads_back_whole() {
    const ITEMS: u32 = 400;
    let (dir, store) = temp_store();
    let (definition, mut job, events) = fan_out_job(ITEMS as usize);
    let id = job.id();
    store
        .create_job(&job, &JobMeta::new(0, "default", None), &events)
        .unwrap();
    let mut largest_head = 0;
    for n in 0..ITEMS / 2 {
        let events = run_item(&definition, &mut job, n);
        store.commit_job(&job, &events).unwrap();
        largest_head = largest_head.max(head_len(&store, id));
        if n % 7 == 0 {
            assert_eq!(
                store.job(id).unwrap().as_ref(),
                Some(&job),
                "after item {n}"
            );
        }
    }

    // Reopened, the store no longer knows what it wrote: it reads the job back and goes on.
    store.close().unwrap();
    let store = SledStore::open(&dir.path().join("db"), SledConfig::default()).unwrap();
    assert_eq!(store.job(id).unwrap().as_ref(), Some(&job));
    for n in ITEMS / 2..ITEMS {
        let events = run_item(&definition, &mut job, n);
        store.commit_job(&job, &events).unwrap();
        largest_head = largest_head.max(head_len(&store, id));
    }
    assert!(job.state().is_terminal(), "{:?}", job.state());
    assert_eq!(store.job(id).unwrap().as_ref(), Some(&job));
    // Heads hold the job's input, the step's output at the end, and the events and tasks
    // of the latest commits: a fraction of the job.
    let whole = serde_json::to_vec(&job).unwrap().len();
    assert!(
        largest_head < whole / 3,
        "heads grew to {largest_head} bytes, for a job of {whole} bytes in JSON"
    );
    let page = store.jobs(&JobQuery::newest(10)).unwrap();
    assert_eq!(page.jobs, [job]);
}

#[test]
fn a_fan_out_writes_no_task_until_it_changes_and_needs_its_list() {
    let (_dir, store) = temp_store();
    let (definition, mut job, events) = fan_out_job(400);
    let id = job.id();
    store
        .create_job(&job, &JobMeta::new(0, "default", None), &events)
        .unwrap();
    let erase = StepId::new("erase").unwrap();
    let task_records = |store: &SledStore| {
        store
            .trees
            .jobs
            .scan_prefix(keys::task_prefix(id, &erase))
            .count()
    };
    assert_eq!(task_records(&store), 0, "pending tasks have no record");
    for n in 0..100 {
        let events = run_item(&definition, &mut job, n);
        store.commit_job(&job, &events).unwrap();
    }
    let written = task_records(&store);
    assert!(
        written > 0 && written <= 101,
        "{written} task records: only tasks that changed are written out"
    );
    assert_eq!(store.job(id).unwrap().as_ref(), Some(&job));
    store.trees.jobs.remove(keys::items(id, &erase)).unwrap();
    assert_corrupt(store.job(id), "the list step erase", "missing");
}

#[test]
fn a_database_of_store_format_4_is_migrated() {
    let (dir, store) = temp_store();
    let (definition, mut job, mut all) = fan_out_job(5);
    let id = job.id();
    store
        .create_job(&job, &JobMeta::new(0, "default", None), &all)
        .unwrap();
    let events = run_item(&definition, &mut job, 0);
    store.commit_job(&job, &events).unwrap();
    all.extend(events);
    // Format 4 held the whole job in its head, after the events, and nothing apart.
    let jobs = &store.trees.jobs;
    let head = jobs.get(keys::head(id)).unwrap().unwrap();
    let events_json = records::split_head(&head, String::new).unwrap().events;
    let mut format_4 = records::encode_chunk(events_json, String::new).unwrap();
    format_4.extend_from_slice(&serde_json::to_vec(&job).unwrap());
    jobs.insert(keys::head(id), format_4).unwrap();
    for tag in [keys::tag::ITEMS, keys::tag::TASK] {
        for key in jobs.scan_prefix([tag]).keys() {
            jobs.remove(key.unwrap()).unwrap();
        }
    }
    close_as_format(store, 4);

    let path = dir.path().join("db");
    let store = SledStore::open(&path, SledConfig::default()).unwrap();
    assert_eq!(store.job(id).unwrap().as_ref(), Some(&job));
    assert_eq!(store.events(id, 0, 100).unwrap(), all);
    for n in 1..5 {
        let events = run_item(&definition, &mut job, n);
        store.commit_job(&job, &events).unwrap();
        all.extend(events);
    }
    assert_eq!(store.job(id).unwrap().as_ref(), Some(&job));
    assert_eq!(store.events(id, 0, 100).unwrap(), all);
    store.close().unwrap();
    // Migrating again (a crash before the version was recorded) finds nothing to change.
    let store = SledStore::open(&path, SledConfig::default()).unwrap();
    close_as_format(store, 4);
    let store = SledStore::open(&path, SledConfig::default()).unwrap();
    assert_eq!(store.job(id).unwrap(), Some(job));
}

#[test]
fn a_crash_before_a_head_is_written_leaves_the_job_as_the_previous_head_said() {
    let (_dir, store) = temp_store();
    let (definition, mut job, events) = fan_out_job(120);
    let id = job.id();
    store
        .create_job(&job, &JobMeta::new(0, "default", None), &events)
        .unwrap();
    let jobs = &store.trees.jobs;
    for n in 0..120 {
        let before = job.clone();
        let previous_head = jobs.get(keys::head(id)).unwrap().unwrap();
        let events = run_item(&definition, &mut job, n);
        store.commit_job(&job, &events).unwrap();
        // Every other write of the commit happened; its head did not.
        let head = jobs.get(keys::head(id)).unwrap().unwrap();
        jobs.insert(keys::head(id), previous_head).unwrap();
        assert_eq!(store.job(id).unwrap().as_ref(), Some(&before), "item {n}");
        jobs.insert(keys::head(id), head).unwrap();
        assert_eq!(store.job(id).unwrap().as_ref(), Some(&job), "item {n}");
    }
}

#[test]
fn a_large_input_is_written_once_apart_from_the_head() {
    let (dir, store) = temp_store();
    let (definition, mut job, events) = fan_out_job(1_000);
    let id = job.id();
    let input_bytes = serde_json::to_vec(job.input()).unwrap().len();
    store
        .create_job(&job, &JobMeta::new(0, "default", None), &events)
        .unwrap();
    let input_key = keys::tagged_job(keys::tag::INPUT, id);
    assert!(store.trees.jobs.contains_key(input_key).unwrap());
    for n in 0..3 {
        let events = run_item(&definition, &mut job, n);
        store.commit_job(&job, &events).unwrap();
        assert!(
            head_len(&store, id) < input_bytes,
            "a head of {} bytes holds the input of {input_bytes}",
            head_len(&store, id)
        );
    }
    assert_eq!(store.job(id).unwrap().as_ref(), Some(&job));
    // Reopened, the store finds where the input is and keeps it there.
    store.close().unwrap();
    let store = SledStore::open(&dir.path().join("db"), SledConfig::default()).unwrap();
    let events = run_item(&definition, &mut job, 3);
    store.commit_job(&job, &events).unwrap();
    assert!(head_len(&store, id) < input_bytes);
    assert_eq!(store.job(id).unwrap().as_ref(), Some(&job));
    assert_eq!(store.unfinished_jobs().unwrap()[0].0, job);

    store.trees.jobs.remove(input_key).unwrap();
    assert_corrupt(store.job(id), "input of job", "missing");

    // A small input stays in the head: no record of its own.
    let small = self::job();
    store
        .create_job(&small, &JobMeta::new(0, "default", None), &[])
        .unwrap();
    let small_input = keys::tagged_job(keys::tag::INPUT, small.id());
    assert!(!store.trees.jobs.contains_key(small_input).unwrap());
    assert_eq!(store.job(small.id()).unwrap(), Some(small));
}

#[test]
fn settling_moves_every_commit_into_the_tree_and_leaves_no_journal() {
    let (dir, store) = temp_store();
    let jobs: Vec<Job> = (0..20u8)
        .map(|n| job_with_id(JobId::from_parts(Timestamp::from_unix_ms(5), [n; 10])))
        .collect();
    for job in &jobs {
        store
            .create_job(job, &JobMeta::new(0, "default", None), &[])
            .unwrap();
    }
    let journal = dir.path().join("db").join(JOURNAL_DIR);
    store.durable().wait_blocking().unwrap();
    assert!(
        !journal::journal_files(&journal).unwrap().is_empty(),
        "20 jobs are far from a checkpoint's worth: the journal holds them"
    );
    store.settle().unwrap();
    assert_eq!(journal::files_holding_records(&journal), []);
    for job in &jobs {
        assert_eq!(store.job(job.id()).unwrap().as_ref(), Some(job));
    }
}

#[test]
fn a_job_created_again_after_reopening_is_refused_whether_newest_or_not() {
    let (dir, store) = temp_store();
    let older = job_with_id(JobId::from_parts(Timestamp::from_unix_ms(5), [1; 10]));
    let newest = job_with_id(JobId::from_parts(Timestamp::from_unix_ms(9), [1; 10]));
    let meta = JobMeta::new(0, "default", None);
    for job in [&older, &newest] {
        assert_eq!(
            store.create_job(job, &meta, &[]).unwrap(),
            CreateJob::Created
        );
    }
    store.durable().wait_blocking().unwrap();
    drop(store);
    // Opening reads which job is the newest: a creation of it or of an older one looks for
    // the job and finds it.
    let store = SledStore::open(&dir.path().join("db"), SledConfig::default()).unwrap();
    for job in [&newest, &older] {
        assert!(
            matches!(
                store.create_job(job, &meta, &[]),
                Err(StoreError::Conflict(_))
            ),
            "job {} was created twice",
            job.id()
        );
    }
    let newer = job_with_id(JobId::from_parts(Timestamp::from_unix_ms(10), [1; 10]));
    assert_eq!(
        store.create_job(&newer, &meta, &[]).unwrap(),
        CreateJob::Created
    );
    assert!(matches!(
        store.create_job(&newer, &meta, &[]),
        Err(StoreError::Conflict(_))
    ));
}
