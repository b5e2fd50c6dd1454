//! The engine running real workflows of real plugins: graphs, templates, conditions,
//! fan-out with its failure budget, retries, cancellation, and resuming after a restart.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use weft::engine::{Engine, EngineConfig, StartJob};
use weft_domain::{EventKind, Job, JobId, JobState, SourceFormat, StepState};
use weft_store::{MemoryStore, PluginGrants, Store};

use crate::support::{fixture_bytes, plugin_bytes, sandbox};

/// An engine on `store` with `echo`, `transform`, `fail` and `spin` approved.
async fn engine_on(store: Arc<dyn Store>, workers: usize) -> Engine {
    let config = EngineConfig {
        workers,
        ..EngineConfig::default()
    };
    let engine = Engine::start(store, sandbox(), config).await.unwrap();
    for bytes in [
        plugin_bytes("echo"),
        plugin_bytes("transform"),
        fixture_bytes("fail"),
        fixture_bytes("spin"),
    ] {
        let (record, _) = engine.add_plugin(&bytes).await.unwrap();
        engine
            .approve_plugin(&record.digest, PluginGrants::default())
            .await
            .unwrap();
    }
    engine
}

async fn engine() -> Engine {
    engine_on(Arc::new(MemoryStore::new()), 8).await
}

async fn apply(engine: &Engine, definition: Value) {
    engine
        .apply_definition(&definition.to_string(), SourceFormat::Json)
        .await
        .unwrap_or_else(|e| panic!("{e}: {e:?}"));
}

/// A request to start `workflow` with `input`, at default priority and queue.
/// Workflow `flaky`: one step, `call`, whose plugin always fails retryably, with `retry`.
fn flaky(retry: Value) -> Value {
    json!({
        "name": "flaky", "version": 1,
        "steps": [
            {"id": "call", "plugin": "weft-fixture-fail@0", "retry": retry,
             "input": {"code": "unavailable", "message": "try later", "retryable": true}}
        ]
    })
}

/// Workflow `stuck`: one step, `spin`, that loops until it is cancelled.
fn stuck() -> Value {
    json!({
        "name": "stuck", "version": 1,
        "steps": [{"id": "spin", "plugin": "weft-fixture-spin@0", "timeout_ms": 600000,
                   "fuel": weft_domain::definition::MAX_FUEL, "input": {}}]
    })
}

/// Applies the `flaky` workflow with `retry` and starts a job of it.
async fn start_flaky(engine: &Engine, retry: Value) -> JobId {
    apply(engine, flaky(retry)).await;
    engine
        .start_job(start_request("flaky", json!({}), None))
        .await
        .unwrap()
}

fn start_request(workflow: &str, input: Value, idempotency_key: Option<&str>) -> StartJob {
    StartJob {
        workflow: workflow.parse().unwrap(),
        version: None,
        input,
        priority: 0,
        queue: "default".into(),
        idempotency_key: idempotency_key.map(String::from),
    }
}

async fn run_job(engine: &Engine, workflow: &str, input: Value) -> Job {
    let id = engine
        .start_job(start_request(workflow, input, None))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), engine.wait_finished(id))
        .await
        .expect("job finished in time")
        .unwrap()
}

fn events(engine: &Engine, job: &Job) -> Vec<EventKind> {
    engine
        .store()
        .events(job.id(), 0, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn a_chain_passes_outputs_along_and_renders_the_job_output() {
    let engine = engine().await;
    apply(
        &engine,
        json!({
            "name": "chain", "version": 1,
            "input": {"required": ["device"]},
            "steps": [
                {"id": "a", "plugin": "echo@0", "input": {"device": "${workflow.input.device}", "n": 1}},
                {"id": "b", "plugin": "transform@0", "depends_on": ["a"],
                 "input": {"query": ".n + 1", "data": "${steps.a.output}"}},
                {"id": "c", "plugin": "echo@0", "depends_on": ["b"],
                 "input": {"label": "device ${workflow.input.device} got ${steps.b.output}"}}
            ],
            "output": {"n": "${steps.b.output}", "label": "${steps.c.output.label}"}
        }),
    )
    .await;
    let job = run_job(&engine, "chain", json!({"device": "sw-17"})).await;
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    assert_eq!(
        job.output(),
        Some(&json!({"n": 2, "label": "device sw-17 got 2"}))
    );
    let kinds = events(&engine, &job);
    assert!(matches!(kinds.first(), Some(EventKind::JobCreated { .. })));
    assert!(matches!(kinds.last(), Some(EventKind::JobSucceeded)));
}

#[tokio::test]
async fn a_false_condition_skips_the_step_and_its_dependents() {
    let engine = engine().await;
    apply(
        &engine,
        json!({
            "name": "cond", "version": 1,
            "steps": [
                {"id": "check", "plugin": "echo@0", "input": {"healthy": "${workflow.input.healthy}"}},
                {"id": "patch", "plugin": "echo@0", "depends_on": ["check"],
                 "when": "${steps.check.output.healthy} == true", "input": {}},
                {"id": "reboot", "plugin": "echo@0", "depends_on": ["patch"], "input": {}}
            ]
        }),
    )
    .await;
    let job = run_job(&engine, "cond", json!({"healthy": false})).await;
    assert_eq!(job.state(), JobState::Succeeded);
    for step in ["patch", "reboot"] {
        let record = job.step(&step.parse().unwrap()).unwrap();
        assert_eq!(record.state(), StepState::Skipped, "{step}");
    }
    let job = run_job(&engine, "cond", json!({"healthy": true})).await;
    let reboot = job.step(&"reboot".parse().unwrap()).unwrap();
    assert_eq!(reboot.state(), StepState::Succeeded);
}

#[tokio::test]
async fn fan_out_keeps_item_order_and_stops_at_the_failure_budget() {
    let engine = engine().await;
    apply(
        &engine,
        json!({
            "name": "fan", "version": 1,
            "steps": [
                {"id": "erase", "plugin": "transform@0",
                 "for_each": "${workflow.input.machines}", "concurrency": 2, "max_failures": 0,
                 "input": {"query": "if .bad then error(\"disk stuck\") else .name end", "data": "${item}"}}
            ],
            "output": "${steps.erase.output}"
        }),
    )
    .await;
    let machines: Vec<Value> = (0..10).map(|i| json!({"name": format!("m{i}")})).collect();
    let job = run_job(&engine, "fan", json!({"machines": machines})).await;
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    let names: Vec<Value> = (0..10).map(|i| json!(format!("m{i}"))).collect();
    assert_eq!(job.output(), Some(&json!(names)));

    // One bad machine early: the budget of zero failures stops the fan-out; items that never
    // started are not run.
    let mut machines: Vec<Value> = (0..10).map(|i| json!({"name": format!("m{i}")})).collect();
    machines[1] = json!({"name": "m1", "bad": true});
    let job = run_job(&engine, "fan", json!({"machines": machines})).await;
    assert_eq!(job.state(), JobState::Failed);
    let erase = job.step(&"erase".parse().unwrap()).unwrap();
    let started = erase
        .tasks()
        .filter(|(_, t)| !t.attempts().is_empty())
        .count();
    assert!(
        started < 10,
        "{started} items started after the budget was spent"
    );
}

#[tokio::test]
async fn a_retryable_failure_is_retried_with_backoff_then_fails_the_job() {
    let engine = engine().await;
    apply(
        &engine,
        flaky(json!({"max_attempts": 3, "initial_interval_ms": 50, "multiplier": 2.0, "max_interval_ms": 1000})),
    )
    .await;
    let started = std::time::Instant::now();
    let job = run_job(&engine, "flaky", json!({})).await;
    assert_eq!(job.state(), JobState::Failed);
    let call = job.step(&"call".parse().unwrap()).unwrap();
    let attempts = call.task(None).unwrap().attempts();
    assert_eq!(attempts.len(), 3);
    let retries = events(&engine, &job)
        .into_iter()
        .filter(|k| matches!(k, EventKind::StepRetrying { .. }))
        .count();
    assert_eq!(retries, 2);
    // Jitter only shortens delays: at least half of 50 ms + 100 ms passed between attempts.
    assert!(started.elapsed() >= Duration::from_millis(75));
    let failure = job.failure().expect("a failed job names its failure");
    assert_eq!(failure.step.as_ref().map(|s| s.as_str()), Some("call"));
}

#[tokio::test]
async fn a_retry_that_fell_due_while_the_job_was_paused_runs_after_resume() {
    let engine = engine().await;
    let retry = json!({"max_attempts": 2, "initial_interval_ms": 200, "jitter": 0});
    let id = start_flaky(&engine, retry).await;
    let job_state = |engine: &Engine| engine.job(id).unwrap().unwrap();
    let due = |engine: &Engine| {
        let job = job_state(engine);
        let task = job
            .step(&"call".parse().unwrap())
            .unwrap()
            .task(None)
            .cloned();
        task.and_then(|task| task.retry_at())
    };
    wait_until("the first attempt to fail", Duration::from_secs(10), || {
        due(&engine).is_some()
    })
    .await;
    let due_at = due(&engine).unwrap();
    engine.pause_job(id).await.unwrap();
    // The retry falls due, and its timer fires, while the job is paused: wait out the due
    // time (this test is about time passing), with a margin for the timer.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let until_due = due_at.as_unix_ms().saturating_sub(now_ms);
    tokio::time::sleep(Duration::from_millis(until_due + 100)).await;
    assert_eq!(job_state(&engine).state(), JobState::Paused);
    engine.resume_job(id).await.unwrap();
    let job = tokio::time::timeout(Duration::from_secs(10), engine.wait_finished(id))
        .await
        .expect("the retry runs once the job is resumed")
        .unwrap();
    assert_eq!(job.state(), JobState::Failed);
    let call = job.step(&"call".parse().unwrap()).unwrap();
    assert_eq!(call.task(None).unwrap().attempts().len(), 2);
}

#[tokio::test]
async fn cancelling_a_job_stops_its_running_step() {
    let engine = engine().await;
    apply(&engine, stuck()).await;
    let id = engine
        .start_job(start_request("stuck", json!({}), None))
        .await
        .unwrap();
    wait_until("the step to start", Duration::from_secs(30), || {
        let job = engine.job(id).unwrap().unwrap();
        job.step(&"spin".parse().unwrap()).unwrap().state() == StepState::Running
    })
    .await;
    let cancelled_at = std::time::Instant::now();
    let job = engine
        .cancel_job(id, Some("operator".into()))
        .await
        .unwrap();
    assert_eq!(job.state(), JobState::Cancelled);
    assert_eq!(
        job.step(&"spin".parse().unwrap()).unwrap().state(),
        StepState::Cancelled
    );
    // The worker is free again: another job runs to completion promptly.
    apply(
        &engine,
        json!({"name": "quick", "version": 1, "steps": [{"id": "a", "plugin": "echo@0", "input": {}}]}),
    )
    .await;
    let quick = run_job(&engine, "quick", json!({})).await;
    assert_eq!(quick.state(), JobState::Succeeded);
    assert!(cancelled_at.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_retry_keeps_its_due_time_on_a_new_engine() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let call: weft_domain::StepId = "call".parse().unwrap();
    let due = |engine: &Engine, id| {
        let job = engine.job(id).unwrap().unwrap();
        job.step(&call).unwrap().task(None).unwrap().retry_at()
    };
    // The first engine runs the first attempt, then stops with its runtime before the retry
    // is due.
    let (id, due_at) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Runtime::new().unwrap();
                runtime.block_on(async {
                    let first = engine_on(store.clone(), 1).await;
                    let retry =
                        json!({"max_attempts": 2, "initial_interval_ms": 1500, "jitter": 0});
                    let id = start_flaky(&first, retry).await;
                    wait_until("the first attempt to fail", Duration::from_secs(10), || {
                        due(&first, id).is_some()
                    })
                    .await;
                    (id, due(&first, id).unwrap())
                })
            })
            .join()
            .unwrap()
    });

    let second = Engine::start(store, sandbox(), EngineConfig::default())
        .await
        .unwrap();
    let job = tokio::time::timeout(Duration::from_secs(10), second.wait_finished(id))
        .await
        .expect("the new engine runs the retry")
        .unwrap();
    assert_eq!(job.state(), JobState::Failed);
    let attempts = job.step(&call).unwrap().task(None).unwrap().attempts();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts[1].started_at >= due_at,
        "the retry waited for its due time"
    );
}

#[tokio::test]
async fn an_unfinished_job_resumes_on_a_new_engine() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    // No workers: the job is created and its first step made ready, but nothing runs.
    let first = engine_on(store.clone(), 0).await;
    apply(
        &first,
        json!({"name": "later", "version": 1, "steps": [
            {"id": "a", "plugin": "echo@0", "input": {"x": 1}},
            {"id": "b", "plugin": "echo@0", "depends_on": ["a"], "input": "${steps.a.output}"}
        ], "output": "${steps.b.output}"}),
    )
    .await;
    let id = first
        .start_job(start_request("later", json!({}), Some("once")))
        .await
        .unwrap();
    assert_eq!(first.job(id).unwrap().unwrap().state(), JobState::Running);

    let second = Engine::start(store, sandbox(), EngineConfig::default())
        .await
        .unwrap();
    let job = tokio::time::timeout(Duration::from_secs(60), second.wait_finished(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state(), JobState::Succeeded);
    assert_eq!(job.output(), Some(&json!({"x": 1})));

    // The idempotency key still names the same job.
    let again = second
        .start_job(start_request("later", json!({}), Some("once")))
        .await
        .unwrap();
    assert_eq!(again, id);
}

#[tokio::test]
async fn invalid_definitions_report_every_problem() {
    let engine = engine().await;
    let err = engine
        .apply_definition(
            &json!({"name": "bad", "version": 1, "steps": [
                {"id": "a", "plugin": "nope@1", "depends_on": ["b"], "input": {}},
                {"id": "b", "plugin": "echo@0", "depends_on": ["a"], "input": {}}
            ]})
            .to_string(),
            SourceFormat::Json,
        )
        .await
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("nope"), "{text}");
    assert!(text.contains("cycle"), "{text}");
}

#[tokio::test]
async fn disabling_a_plugin_stops_its_running_step_until_it_is_approved_again() {
    let engine = engine().await;
    apply(
        &engine,
        json!({
            "name": "spinning", "version": 1,
            "steps": [{"id": "spin", "plugin": "weft-fixture-spin@0", "timeout_ms": 1000,
                       "fuel": weft_domain::definition::MAX_FUEL,
                       "retry": {"max_attempts": 2, "initial_interval_ms": 10, "multiplier": 1.0, "max_interval_ms": 10},
                       "input": {}}]
        }),
    )
    .await;
    let id = engine
        .start_job(start_request("spinning", json!({}), None))
        .await
        .unwrap();
    let spin_step: weft_domain::StepId = "spin".parse().unwrap();
    let running = |engine: &Engine| {
        let job = engine.job(id).unwrap().unwrap();
        job.step(&spin_step).unwrap().state() == StepState::Running
    };
    wait_until("the step to start", Duration::from_secs(30), || {
        running(&engine)
    })
    .await;
    let digest = engine.job(id).unwrap().unwrap().plugins()[&spin_step]
        .digest
        .clone();
    engine.disable_plugin(&digest).await.unwrap();

    // The attempt ends as interrupted, and no new attempt starts while the plugin is disabled.
    let attempts = |engine: &Engine| {
        let job = engine.job(id).unwrap().unwrap();
        job.step(&spin_step)
            .unwrap()
            .task(None)
            .unwrap()
            .attempts()
            .to_vec()
    };
    wait_until("the attempt to stop", Duration::from_secs(10), || {
        attempts(&engine)
            .first()
            .is_some_and(|a| a.outcome.is_some())
    })
    .await;
    assert_eq!(
        attempts(&engine)[0].outcome,
        Some(weft_domain::AttemptOutcome::Interrupted)
    );
    // A parked task is looked at again every second: wait past that, and it still waits.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        attempts(&engine).len(),
        1,
        "a new attempt started while disabled"
    );

    engine
        .approve_plugin(&digest, PluginGrants::default())
        .await
        .unwrap();
    let job = tokio::time::timeout(Duration::from_secs(60), engine.wait_finished(id))
        .await
        .unwrap()
        .unwrap();
    let attempts = job
        .step(&spin_step)
        .unwrap()
        .task(None)
        .unwrap()
        .attempts()
        .to_vec();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[1].outcome,
        Some(weft_domain::AttemptOutcome::DeadlineExceeded)
    );
}

/// An engine of `workers` workers on a memory store that runs at most one task of the
/// workflows `stuck` (a step that spins until it is cancelled) and `quick` (one `echo` step)
/// at a time; both applied.
async fn engine_one_at_a_time(workers: usize) -> Engine {
    let config = EngineConfig {
        workers,
        limits: weft::engine::queue::Limits {
            per_workflow: [("stuck".to_owned(), 1), ("quick".to_owned(), 1)].into(),
            ..Default::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::start(Arc::new(MemoryStore::new()), sandbox(), config)
        .await
        .unwrap();
    for bytes in [plugin_bytes("echo"), fixture_bytes("spin")] {
        let (record, _) = engine.add_plugin(&bytes).await.unwrap();
        engine
            .approve_plugin(&record.digest, PluginGrants::default())
            .await
            .unwrap();
    }
    apply(&engine, stuck()).await;
    apply(
        &engine,
        json!({"name": "quick", "version": 1, "steps": [{"id": "a", "plugin": "echo@0", "input": {}}]}),
    )
    .await;
    engine
}

fn spin_state(engine: &Engine, id: JobId) -> StepState {
    let job = engine.job(id).unwrap().unwrap();
    job.step(&"spin".parse().unwrap()).unwrap().state()
}

#[tokio::test]
async fn a_first_step_free_to_run_begins_with_its_job_and_one_held_back_waits() {
    let engine = engine_one_at_a_time(8).await;
    let first = engine
        .start_job(start_request("stuck", json!({}), None))
        .await
        .unwrap();
    // Workers are free and nothing waits: the attempt began in the commit that created the
    // job, so the step runs as soon as the job exists.
    assert_eq!(spin_state(&engine, first), StepState::Running);
    // The workflow's limit is reached: the next job's first step waits, not begun.
    let second = engine
        .start_job(start_request("stuck", json!({}), None))
        .await
        .unwrap();
    assert_eq!(spin_state(&engine, second), StepState::Ready);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(spin_state(&engine, second), StepState::Ready);
    // Once the first is done, the second runs, through the queue.
    engine.cancel_job(first, None).await.unwrap();
    wait_until(
        "the second job's step to start",
        Duration::from_secs(30),
        || spin_state(&engine, second) == StepState::Running,
    )
    .await;
    engine.cancel_job(second, None).await.unwrap();
}

#[tokio::test]
async fn attempts_that_run_long_do_not_hold_other_tasks_back() {
    // One attempts' thread here: the engine keeps at most a dozen workers busy on it, but a
    // worker whose attempt runs on (these spin until cancelled) stops counting as busy.
    let engine = engine_on(Arc::new(MemoryStore::new()), 32).await;
    apply(&engine, stuck()).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let id = engine
            .start_job(start_request("stuck", json!({}), None))
            .await
            .unwrap();
        ids.push(id);
    }
    wait_until(
        "every spinning step to start",
        Duration::from_secs(60),
        || {
            ids.iter()
                .all(|&id| spin_state(&engine, id) == StepState::Running)
        },
    )
    .await;
    for id in ids {
        engine.cancel_job(id, None).await.unwrap();
    }
}

#[tokio::test]
async fn a_start_that_finds_its_idempotent_job_leaves_no_task_counted() {
    let engine = engine_one_at_a_time(8).await;
    let first = engine
        .start_job(start_request("quick", json!({}), Some("once")))
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(30), engine.wait_finished(first));
    assert_eq!(done.await.unwrap().unwrap().state(), JobState::Succeeded);
    // The same key again: the first job, and the attempt begun for the job that was not
    // created is given back, so the workflow's one running task is free for the next job.
    let again = engine
        .start_job(start_request("quick", json!({}), Some("once")))
        .await
        .unwrap();
    assert_eq!(again, first);
    let next = engine
        .start_job(start_request("quick", json!({}), None))
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(30), engine.wait_finished(next));
    let job = done.await.expect("the next job ran").unwrap();
    assert_eq!(job.state(), JobState::Succeeded);
}

/// Polls `ready` every 10 ms until it holds; fails the test, naming `what`, after `timeout`.
async fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
