//! Scenarios for the job state machine: each builds a definition, drives a job through
//! attempts, and checks states, outputs and events.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::attempt::PluginError;
use crate::failure::ErrorKind;
use crate::id::PluginDigest;
use crate::job::{RestoreError, SkipReason, TaskList};
use crate::job_id::JobId;
use crate::plugin_ref::{CatalogueEntry, PluginCatalogue};

fn t(ms: u64) -> Timestamp {
    Timestamp::from_unix_ms(ms)
}

fn definition(document: Value) -> WorkflowDefinition {
    WorkflowDefinition::from_value(document).unwrap_or_else(|problems| panic!("{problems}"))
}

fn steps_definition(steps: Value) -> WorkflowDefinition {
    definition(json!({"name": "test", "version": 1, "steps": steps, "output": {"done": true}}))
}

fn catalogue() -> Vec<CatalogueEntry> {
    vec![CatalogueEntry {
        name: "echo".parse().unwrap(),
        version: semver::Version::new(1, 0, 0),
        digest: PluginDigest::new(format!("sha256:{}", "ab".repeat(32))).unwrap(),
    }]
}

fn new_job(definition: &WorkflowDefinition, input: Value) -> Job {
    let plugins = definition
        .resolve_plugins(&catalogue() as &dyn PluginCatalogue)
        .unwrap();
    let id = JobId::from_parts(t(1), [1; 10]);
    Job::create(id, definition, input, plugins, t(1)).unwrap().0
}

fn key(step: &str) -> TaskKey {
    TaskKey::step(StepId::new(step).unwrap())
}

fn item(step: &str, index: u32) -> TaskKey {
    TaskKey::item(StepId::new(step).unwrap(), index)
}

fn success(output: Value) -> AttemptReport {
    AttemptReport::new(AttemptOutcome::Succeeded { output })
}

fn plugin_error(retryable: bool) -> AttemptReport {
    AttemptReport::new(AttemptOutcome::PluginError(PluginError {
        code: "unavailable".to_owned(),
        message: "try later".to_owned(),
        retryable,
        details: None,
    }))
}

fn state(job: &Job, step: &str) -> StepState {
    job.step(&StepId::new(step).unwrap()).unwrap().state()
}

fn event_types(effects: &Effects) -> Vec<String> {
    effects
        .events
        .iter()
        .map(|event| {
            serde_json::to_value(event).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Runs one attempt of `task` to `report`.
fn run(
    machine: &Machine<'_>,
    job: &mut Job,
    task: &TaskKey,
    report: AttemptReport,
    now: u64,
) -> Effects {
    machine.begin_attempt(job, task, t(now)).unwrap();
    machine
        .complete_attempt(job, task, report, 0.0, t(now + 1))
        .unwrap()
}

#[test]
fn linear_workflow_renders_inputs_from_ancestors_and_output() {
    let def = definition(json!({
        "name": "test", "version": 1,
        "steps": [
            {"id": "a", "plugin": "echo@1", "input": {"device": "${workflow.input.device}"}},
            {"id": "b", "plugin": "echo@1", "depends_on": ["a"], "input": {"got": "${steps.a.output.n}", "job": "${job.workflow}"}}
        ],
        "output": {"b": "${steps.b.output}"}
    }));
    let machine = Machine::new(&def);
    let mut job = new_job(&def, json!({"device": "d-1"}));
    let started = machine.start(&mut job, t(10)).unwrap();
    assert_eq!(event_types(&started), ["job_started", "step_scheduled"]);
    assert_eq!(started.ready, [key("a")]);
    let (attempt, _) = machine.begin_attempt(&mut job, &key("a"), t(11)).unwrap();
    assert_eq!(
        (attempt.attempt, &attempt.input),
        (1, &json!({"device": "d-1"}))
    );
    assert_eq!(attempt.timeout_ms, crate::definition::DEFAULT_TIMEOUT_MS);
    let effects = machine
        .complete_attempt(&mut job, &key("a"), success(json!({"n": 5})), 0.0, t(12))
        .unwrap();
    assert_eq!(effects.ready, [key("b")]);
    assert_eq!(
        job.task(&key("b")).unwrap().input(),
        Some(&json!({"got": 5, "job": "test"}))
    );
    let effects = run(&machine, &mut job, &key("b"), success(json!("ok")), 20);
    assert_eq!(event_types(&effects), ["step_succeeded", "job_succeeded"]);
    assert_eq!(effects.finished, Some(JobState::Succeeded));
    assert_eq!(job.output(), Some(&json!({"b": "ok"})));
    assert_eq!(job.last_event_sequence(), 9);
    assert_eq!(job.finished_at(), Some(t(21)));
}

#[test]
fn retryable_failures_wait_and_retry_until_success() {
    let def = steps_definition(json!([
        {"id": "a", "plugin": "echo@1", "retry": {"max_attempts": 3, "initial_interval_ms": 100, "jitter": 0.0}}
    ]));
    let machine = Machine::new(&def);
    let mut job = new_job(&def, json!({}));
    machine.start(&mut job, t(0)).unwrap();
    let effects = run(&machine, &mut job, &key("a"), plugin_error(true), 10);
    assert_eq!(event_types(&effects), ["step_retrying"]);
    assert_eq!(state(&job, "a"), StepState::WaitingRetry);
    assert_eq!(job.next_retry_at(), Some(t(111)));
    assert!(job.claimable_tasks(t(110)).is_empty());
    let early = machine
        .begin_attempt(&mut job, &key("a"), t(110))
        .unwrap_err();
    assert_eq!(
        early,
        MachineError::RetryNotDue {
            task: key("a"),
            due_at: t(111)
        }
    );
    assert_eq!(job.claimable_tasks(t(111)), [key("a")]);
    let (attempt, _) = machine.begin_attempt(&mut job, &key("a"), t(111)).unwrap();
    assert_eq!(attempt.attempt, 2);
    let effects = machine
        .complete_attempt(&mut job, &key("a"), success(json!(1)), 0.0, t(120))
        .unwrap();
    assert_eq!(effects.finished, Some(JobState::Succeeded));
    assert_eq!(job.task(&key("a")).unwrap().attempts().len(), 2);
}

#[test]
fn exhausted_attempts_fail_the_job_and_cancel_the_rest() {
    let def = steps_definition(json!([
        {"id": "a", "plugin": "echo@1", "retry": {"max_attempts": 1}},
        {"id": "b", "plugin": "echo@1"},
        {"id": "c", "plugin": "echo@1", "depends_on": ["a"]}
    ]));
    let machine = Machine::new(&def);
    let mut job = new_job(&def, json!({}));
    machine.start(&mut job, t(0)).unwrap();
    machine.begin_attempt(&mut job, &key("b"), t(1)).unwrap();
    let effects = run(&machine, &mut job, &key("a"), plugin_error(true), 2);
    assert_eq!(
        event_types(&effects),
        [
            "step_failed",
            "step_cancelled",
            "step_cancelled",
            "job_failed"
        ]
    );
    assert_eq!(effects.abort, [key("b")]);
    assert_eq!(effects.finished, Some(JobState::Failed));
    let failure = job.failure().unwrap();
    assert_eq!(
        failure.to_string(),
        "step `a` failed: unavailable: try later"
    );
    assert_eq!(
        (state(&job, "b"), state(&job, "c")),
        (StepState::Cancelled, StepState::Cancelled)
    );
    // The aborted attempt's late result is kept but changes nothing.
    let late = machine
        .complete_attempt(&mut job, &key("b"), success(json!(1)), 0.0, t(9))
        .unwrap();
    assert!(late.events.is_empty());
    assert!(job.task(&key("b")).unwrap().attempts()[0].outcome.is_some());
    assert_eq!(state(&job, "b"), StepState::Cancelled);
}

#[test]
fn continue_on_failure_skips_dependents_without_when() {
    let def = steps_definition(json!([
        {"id": "a", "plugin": "echo@1", "on_failure": "continue"},
        {"id": "plain", "plugin": "echo@1", "depends_on": ["a"]},
        {"id": "cleanup", "plugin": "echo@1", "depends_on": ["a"], "when": "${steps.a.status} == 'failed'",
         "input": {"seen": "${steps.a.output}"}},
        {"id": "after", "plugin": "echo@1", "depends_on": ["plain"]}
    ]));
    let machine = Machine::new(&def);
    let mut job = new_job(&def, json!({}));
    machine.start(&mut job, t(0)).unwrap();
    let effects = run(&machine, &mut job, &key("a"), plugin_error(false), 1);
    assert_eq!(
        event_types(&effects),
        [
            "step_failed",
            "step_skipped",
            "step_scheduled",
            "step_skipped"
        ]
    );
    let plain = job.step(&StepId::new("plain").unwrap()).unwrap();
    assert_eq!(
        plain.skip_reason(),
        Some(&SkipReason::DependencyNotSucceeded {
            dependency: StepId::new("a").unwrap()
        })
    );
    assert_eq!(state(&job, "after"), StepState::Skipped);
    assert_eq!(
        job.task(&key("cleanup")).unwrap().input(),
        Some(&json!({"seen": null}))
    );
    let effects = run(&machine, &mut job, &key("cleanup"), success(json!(null)), 5);
    assert_eq!(effects.finished, Some(JobState::Succeeded));
}

#[test]
fn false_conditions_skip_and_bad_conditions_fail() {
    let def = steps_definition(json!([
        {"id": "a", "plugin": "echo@1", "when": "${workflow.input.run} == true"},
        {"id": "b", "plugin": "echo@1", "when": "${workflow.input.count} > 'x'", "on_failure": "continue"}
    ]));
    let machine = Machine::new(&def);
    let mut job = new_job(&def, json!({"run": false, "count": 1}));
    let effects = machine.start(&mut job, t(0)).unwrap();
    assert_eq!(
        event_types(&effects),
        [
            "job_started",
            "step_skipped",
            "step_failed",
            "job_succeeded"
        ]
    );
    let error = job
        .step(&StepId::new("b").unwrap())
        .unwrap()
        .error()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::Condition);
    assert!(
        error
            .message
            .contains("cannot compare a number with a string using `>`"),
        "{}",
        error.message
    );
}

#[test]
fn missing_input_reference_fails_the_step_without_an_attempt() {
    let def = steps_definition(
        json!([{"id": "a", "plugin": "echo@1", "input": {"x": "${workflow.input.nope}"}}]),
    );
    let machine = Machine::new(&def);
    let mut job = new_job(&def, json!({}));
    let effects = machine.start(&mut job, t(0)).unwrap();
    assert_eq!(effects.finished, Some(JobState::Failed));
    let failure = job.failure().unwrap();
    assert_eq!(failure.error.kind, ErrorKind::Input);
    assert_eq!(
        failure.to_string(),
        "step `a` failed: `${workflow.input.nope}` is missing: no field `nope`"
    );
}

fn fan_out_definition(concurrency: u32, max_failures: u32) -> WorkflowDefinition {
    steps_definition(json!([
        {"id": "erase", "plugin": "echo@1", "for_each": "${workflow.input.machines}",
         "concurrency": concurrency, "max_failures": max_failures, "retry": {"max_attempts": 1},
         "input": {"machine": "${item.name}", "n": "${index}"}},
        {"id": "report", "plugin": "echo@1", "depends_on": ["erase"],
         "input": {"failed": "${steps.erase.failed_count}", "outputs": "${steps.erase.output}"}}
    ]))
}

fn machines(count: usize) -> Value {
    json!({"machines": (0..count).map(|i| json!({"name": format!("m{i}")})).collect::<Vec<_>>()})
}

/// Takes `job` apart as a store that keeps fan-outs apart does, and puts it back together.
fn through_outline(job: &Job) -> Job {
    let outline = serde_json::to_vec(&job.outline()).unwrap();
    let mut restored: Job = serde_json::from_slice(&outline).unwrap();
    for parts in job.fan_outs() {
        assert_eq!(
            restored.step(parts.step).unwrap().tasks().count(),
            0,
            "the outline holds no task of {}",
            parts.step
        );
        restored
            .restore_fan_out(parts.step, parts.items.clone(), parts.tasks.clone())
            .unwrap();
    }
    restored
}

#[test]
fn a_job_outline_leaves_out_fan_outs_and_restores_whole() {
    let def = fan_out_definition(2, 1);
    let machine = Machine::new(&def);
    let mut job = new_job(&def, machines(3));
    // Before the fan-out, the outline is the job.
    assert_eq!(
        serde_json::to_string(&job.outline()).unwrap(),
        serde_json::to_string(&job).unwrap()
    );
    machine.start(&mut job, t(0)).unwrap();
    run(
        &machine,
        &mut job,
        &item("erase", 0),
        success(json!("e0")),
        1,
    );
    let before = job.clone();
    run(
        &machine,
        &mut job,
        &item("erase", 1),
        plugin_error(false),
        2,
    );
    assert_eq!(through_outline(&job), job);

    // Only the changed task is a new `Arc`: that is how a store tells what to write.
    let [was, now] = [&before, &job].map(|j| j.fan_outs().next().unwrap().tasks.clone());
    let changed: Vec<usize> = now.unshared_items(&was).collect();
    assert_eq!(changed, [1], "only item 1 ran; item 2 was ready before");

    // The input may be left out too, and put back.
    let outline = serde_json::to_vec(&job.outline_without_input()).unwrap();
    let mut without: Job = serde_json::from_slice(&outline).unwrap();
    assert_eq!(without.input(), &Value::Null);
    without
        .restore_input(Arc::new(job.input().clone()))
        .unwrap();
    assert_eq!(
        without.restore_input(Arc::new(json!({}))),
        Err(RestoreError::InputPresent)
    );
    for parts in job.fan_outs() {
        without
            .restore_fan_out(parts.step, parts.items.clone(), parts.tasks.clone())
            .unwrap();
    }
    assert_eq!(without, job);

    run(
        &machine,
        &mut job,
        &item("erase", 2),
        success(json!("e2")),
        3,
    );
    run(&machine, &mut job, &key("report"), success(json!("r")), 4);
    assert_eq!(job.state(), JobState::Succeeded);
    assert_eq!(through_outline(&job), job);

    // A fan-out goes back only once, and only with one task per item.
    let parts = job.fan_outs().next().unwrap();
    let (step, items) = (parts.step.clone(), parts.items.clone());
    let mut whole = job.clone();
    assert_eq!(
        whole.restore_fan_out(&step, items.clone(), TaskList::default()),
        Err(RestoreError::Mismatch {
            step: step.clone(),
            items: 3,
            tasks: 0
        })
    );
    let tasks = parts.tasks.clone();
    assert_eq!(
        whole.restore_fan_out(&step, items, tasks),
        Err(RestoreError::AlreadyWhole(step))
    );
}

#[test]
fn fan_out_respects_concurrency_and_tolerates_failures_within_budget() {
    let def = fan_out_definition(2, 1);
    let machine = Machine::new(&def);
    let mut job = new_job(&def, machines(4));
    let effects = machine.start(&mut job, t(0)).unwrap();
    assert_eq!(effects.ready, [item("erase", 0), item("erase", 1)]);
    assert_eq!(
        job.task(&item("erase", 1)).unwrap().input(),
        Some(&json!({"machine": "m1", "n": 1}))
    );
    let effects = run(
        &machine,
        &mut job,
        &item("erase", 0),
        success(json!("e0")),
        1,
    );
    assert_eq!(effects.ready, [item("erase", 2)]);
    assert_eq!(state(&job, "erase"), StepState::Running);
    let effects = run(
        &machine,
        &mut job,
        &item("erase", 1),
        plugin_error(false),
        2,
    );
    assert_eq!(effects.ready, [item("erase", 3)]);
    run(
        &machine,
        &mut job,
        &item("erase", 2),
        success(json!("e2")),
        3,
    );
    let effects = run(
        &machine,
        &mut job,
        &item("erase", 3),
        success(json!("e3")),
        4,
    );
    assert_eq!(effects.ready, [key("report")]);
    assert_eq!(state(&job, "erase"), StepState::Succeeded);
    assert_eq!(
        job.task(&key("report")).unwrap().input(),
        Some(&json!({"failed": 1, "outputs": ["e0", null, "e2", "e3"]}))
    );
}

#[test]
fn fan_out_over_budget_cancels_unstarted_items_and_fails_after_running_ones() {
    let def = fan_out_definition(2, 0);
    let machine = Machine::new(&def);
    let mut job = new_job(&def, machines(5));
    machine.start(&mut job, t(0)).unwrap();
    machine
        .begin_attempt(&mut job, &item("erase", 1), t(1))
        .unwrap();
    let effects = run(
        &machine,
        &mut job,
        &item("erase", 0),
        plugin_error(false),
        2,
    );
    assert_eq!(
        event_types(&effects),
        [
            "step_failed",
            "step_cancelled",
            "step_cancelled",
            "step_cancelled"
        ]
    );
    assert_eq!(effects.finished, None);
    let effects = machine
        .complete_attempt(&mut job, &item("erase", 1), success(json!(1)), 0.0, t(5))
        .unwrap();
    assert_eq!(effects.finished, Some(JobState::Failed));
    let failure = job.failure().unwrap();
    assert_eq!(failure.error.kind, ErrorKind::FailureBudget);
    assert_eq!(
        failure.error.message,
        "1 of 5 items failed; max_failures is 0"
    );
}

#[test]
fn empty_and_non_list_fan_outs() {
    let def = fan_out_definition(3, 0);
    let machine = Machine::new(&def);
    let mut job = new_job(&def, machines(0));
    let effects = machine.start(&mut job, t(0)).unwrap();
    assert_eq!(effects.ready, [key("report")]);
    assert_eq!(
        job.step(&StepId::new("erase").unwrap()).unwrap().output(),
        Some(&json!([]))
    );
    let mut job = new_job(&def, json!({"machines": "all"}));
    machine.start(&mut job, t(0)).unwrap();
    assert_eq!(
        job.failure().unwrap().error.message,
        "`for_each` yielded a string, not an array"
    );
}

#[test]
fn pause_stops_new_attempts_but_records_running_ones() {
    let def =
        steps_definition(json!([{"id": "a", "plugin": "echo@1"}, {"id": "b", "plugin": "echo@1"}]));
    let machine = Machine::new(&def);
    let mut job = new_job(&def, json!({}));
    machine.start(&mut job, t(0)).unwrap();
    machine.begin_attempt(&mut job, &key("a"), t(1)).unwrap();
    machine.pause(&mut job, t(2)).unwrap();
    assert_eq!(
        machine
            .begin_attempt(&mut job, &key("b"), t(3))
            .unwrap_err(),
        MachineError::JobNotRunning {
            state: JobState::Paused
        }
    );
    assert!(job.claimable_tasks(t(3)).is_empty());
    machine
        .complete_attempt(&mut job, &key("a"), success(json!(1)), 0.0, t(4))
        .unwrap();
    let effects = machine.resume(&mut job, t(5)).unwrap();
    assert_eq!(effects.ready, [key("b")]);
    let effects = run(&machine, &mut job, &key("b"), success(json!(2)), 6);
    assert_eq!(effects.finished, Some(JobState::Succeeded));
}

#[test]
fn cancel_aborts_running_tasks_and_is_final() {
    let def = steps_definition(
        json!([{"id": "a", "plugin": "echo@1"}, {"id": "b", "plugin": "echo@1", "depends_on": ["a"]}]),
    );
    let machine = Machine::new(&def);
    let mut job = new_job(&def, json!({}));
    machine.start(&mut job, t(0)).unwrap();
    machine.begin_attempt(&mut job, &key("a"), t(1)).unwrap();
    let effects = machine
        .cancel(&mut job, Some("operator".to_owned()), t(2))
        .unwrap();
    assert_eq!(
        event_types(&effects),
        ["step_cancelled", "step_cancelled", "job_cancelled"]
    );
    assert_eq!(
        (effects.abort, effects.finished),
        (vec![key("a")], Some(JobState::Cancelled))
    );
    let before = job.clone();
    assert!(machine.cancel(&mut job, None, t(3)).is_err());
    assert_eq!(job, before);
}

#[test]
fn recovery_marks_running_attempts_interrupted_and_retries_them() {
    let def = steps_definition(
        json!([{"id": "a", "plugin": "echo@1", "retry": {"initial_interval_ms": 50, "jitter": 0.0}}]),
    );
    let machine = Machine::new(&def);
    let mut job = new_job(&def, json!({}));
    machine.start(&mut job, t(0)).unwrap();
    machine.begin_attempt(&mut job, &key("a"), t(1)).unwrap();
    assert_eq!(job.running_tasks(), [key("a")]);
    let effects = machine.recover_interrupted(&mut job, 0.0, t(100)).unwrap();
    assert_eq!(event_types(&effects), ["step_retrying"]);
    let task = job.task(&key("a")).unwrap();
    assert_eq!(
        task.attempts()[0].outcome,
        Some(AttemptOutcome::Interrupted)
    );
    assert_eq!(task.retry_at(), Some(t(150)));
}

#[test]
fn errors_leave_the_job_untouched() {
    let def = steps_definition(json!([{"id": "a", "plugin": "echo@1"}]));
    let machine = Machine::new(&def);
    let mut job = new_job(&def, json!({}));
    assert!(matches!(
        machine.begin_attempt(&mut job, &key("a"), t(0)),
        Err(MachineError::JobNotRunning { .. })
    ));
    machine.start(&mut job, t(0)).unwrap();
    let before = job.clone();
    let error = machine
        .complete_attempt(&mut job, &key("a"), success(json!(1)), 0.0, t(1))
        .unwrap_err();
    assert_eq!(error, MachineError::NoOpenAttempt { task: key("a") });
    assert_eq!(
        machine
            .begin_attempt(&mut job, &key("zz"), t(1))
            .unwrap_err(),
        MachineError::UnknownStep {
            step: StepId::new("zz").unwrap()
        }
    );
    assert_eq!(
        machine
            .begin_attempt(&mut job, &item("a", 0), t(1))
            .unwrap_err(),
        MachineError::UnknownTask { task: item("a", 0) }
    );
    assert!(matches!(
        machine.start(&mut job, t(1)),
        Err(MachineError::Transition(_))
    ));
    assert_eq!(job, before);
    let other = definition(
        json!({"name": "other", "version": 1, "steps": [{"id": "a", "plugin": "echo@1"}]}),
    );
    assert!(matches!(
        Machine::new(&other).start(&mut job, t(1)),
        Err(MachineError::DefinitionMismatch { .. })
    ));
}

#[test]
fn job_records_round_trip_through_serde() {
    let def = fan_out_definition(2, 1);
    let machine = Machine::new(&def);
    let mut job = new_job(&def, machines(3));
    machine.start(&mut job, t(0)).unwrap();
    run(
        &machine,
        &mut job,
        &item("erase", 0),
        success(json!({"ok": true})),
        1,
    );
    let stored = serde_json::to_string(&job).unwrap();
    assert_eq!(serde_json::from_str::<Job>(&stored).unwrap(), job);
    let mut newer: Value = serde_json::from_str(&stored).unwrap();
    newer["format_version"] = json!(99);
    assert!(serde_json::from_value::<Job>(newer).is_err());
}

#[test]
fn job_creation_checks_input_and_plugins() {
    let def = definition(
        json!({"name": "test", "version": 1, "input": {"required": ["device"]}, "steps": [{"id": "a", "plugin": "echo@1"}]}),
    );
    let plugins = def
        .resolve_plugins(&catalogue() as &dyn PluginCatalogue)
        .unwrap();
    let id = JobId::from_parts(t(1), [1; 10]);
    let missing = Job::create(id, &def, json!({}), plugins.clone(), t(1)).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "job input lacks required field `device`"
    );
    assert!(Job::create(id, &def, json!([]), plugins, t(1)).is_err());
    let no_plugins =
        Job::create(id, &def, json!({"device": 1}), BTreeMap::new(), t(1)).unwrap_err();
    assert_eq!(no_plugins.to_string(), "no resolved plugin for step `a`");
    let (job, event) = Job::create(
        id,
        &def,
        json!({"device": 1}),
        def.resolve_plugins(&catalogue() as &dyn PluginCatalogue)
            .unwrap(),
        t(1),
    )
    .unwrap();
    assert_eq!((job.state(), event.sequence), (JobState::Pending, 1));
    assert_eq!(
        event.kind,
        EventKind::JobCreated {
            workflow: job.workflow().clone(),
            version: 1
        }
    );
}
