//! Records to store: plugin records, workflow definitions, and jobs moved through the domain's
//! state machine, plus opening a temporary on-disk store.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tempfile::TempDir;
use weft_domain::{
    AttemptOutcome, AttemptReport, Event, Job, JobId, Machine, PluginDigest, ResolvedPlugin,
    StepId, TaskKey, Timestamp, WorkflowDefinition, WorkflowName,
};
use weft_store::{
    PluginGrants, PluginRecord, PluginStatus, RECORD_FORMAT_VERSION, RequestedCapabilities,
    SledConfig, SledStore,
};

pub fn t(ms: u64) -> Timestamp {
    Timestamp::from_unix_ms(ms)
}

pub fn digest(n: u8) -> PluginDigest {
    PluginDigest::new(format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}

pub fn plugin(name: &str, version: &str, n: u8) -> PluginRecord {
    PluginRecord {
        format_version: RECORD_FORMAT_VERSION,
        digest: digest(n),
        name: name.parse().unwrap(),
        version: version.parse().unwrap(),
        description: format!("{name} {version}"),
        input_schema: Some(json!({"type": "object"})),
        output_schema: None,
        requested: RequestedCapabilities {
            http_hosts: vec!["example.internal".to_owned()],
            kv: true,
        },
        grants: PluginGrants::default(),
        status: PluginStatus::Pending,
        size_bytes: 3,
        uploaded_at: t(1_000),
        approved_at: None,
    }
}

pub fn workflow_name(name: &str) -> WorkflowName {
    WorkflowName::new(name).unwrap()
}

/// A workflow with one step, `a`, that runs the `echo` plugin.
pub fn workflow(name: &str) -> WorkflowDefinition {
    let document = json!({
        "name": name, "version": 1,
        "steps": [{"id": "a", "plugin": "echo@1"}],
        "output": {"done": true}
    });
    WorkflowDefinition::from_value(document).unwrap_or_else(|problems| panic!("{problems}"))
}

/// A job of `definition`, and its `job_created` event. Jobs sort by `created_ms`.
pub fn job(definition: &WorkflowDefinition, created_ms: u64) -> (Job, Event) {
    let step = StepId::new("a").unwrap();
    let echo = ResolvedPlugin {
        name: "echo".parse().unwrap(),
        version: semver::Version::new(1, 0, 0),
        digest: digest(0xab),
    };
    let id = JobId::from_parts(t(created_ms), [7; 10]);
    let input: Value = json!({});
    Job::create(
        id,
        definition,
        input,
        BTreeMap::from([(step, echo)]),
        t(created_ms),
    )
    .unwrap()
}

/// Starts `job`; returns the new events.
pub fn start(definition: &WorkflowDefinition, job: &mut Job) -> Vec<Event> {
    let now = job.updated_at().plus_ms(1);
    Machine::new(definition).start(job, now).unwrap().events
}

/// Runs step `a` of a started `job` to success, which finishes the job; returns the events.
pub fn succeed(definition: &WorkflowDefinition, job: &mut Job) -> Vec<Event> {
    let machine = Machine::new(definition);
    let task = TaskKey::step(StepId::new("a").unwrap());
    let now = job.updated_at().plus_ms(1);
    let (_, mut effects) = machine.begin_attempt(job, &task, now).unwrap();
    let report = AttemptReport::new(AttemptOutcome::Succeeded { output: json!(1) });
    let completed = machine
        .complete_attempt(job, &task, report, 0.0, now.plus_ms(1))
        .unwrap();
    effects.events.extend(completed.events);
    effects.events
}

/// Cancels `job`; returns the new events.
pub fn cancel(definition: &WorkflowDefinition, job: &mut Job) -> Vec<Event> {
    let now = job.updated_at().plus_ms(1);
    Machine::new(definition)
        .cancel(job, Some("test".to_owned()), now)
        .unwrap()
        .events
}

/// Pauses `job`; returns the events.
pub fn pause(definition: &WorkflowDefinition, job: &mut Job) -> Vec<Event> {
    let now = job.updated_at().plus_ms(1);
    Machine::new(definition).pause(job, now).unwrap().events
}

/// Resumes a paused `job`; returns the events.
pub fn resume(definition: &WorkflowDefinition, job: &mut Job) -> Vec<Event> {
    let now = job.updated_at().plus_ms(1);
    Machine::new(definition).resume(job, now).unwrap().events
}

/// A temporary directory under the target directory (on disk, unlike a `tmpfs` `/tmp`).
pub fn temp_dir() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// A store in `dir`, with default settings.
pub fn open_sled(dir: &TempDir) -> SledStore {
    SledStore::open(&dir.path().join("db"), SledConfig::default()).unwrap()
}
