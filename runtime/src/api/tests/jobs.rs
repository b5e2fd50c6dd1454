//! `/api/v1/workflows/{name}/jobs` and `/api/v1/jobs`: starting, reading, listing,
//! cancelling, pausing and resuming jobs, and step logs.

use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use super::{Harness, echo_workflow, fixture, plugin};
use crate::api::ApiConfig;
use crate::engine::EngineConfig;

async fn with_echo() -> Harness {
    let h = Harness::new().await;
    h.approve(plugin("echo")).await;
    h.approve(plugin("transform")).await;
    h
}

async fn with_spin(h: &Harness) {
    h.approve(fixture("spin")).await;
    h.apply(json!({
        "name": "stuck", "version": 1,
        "steps": [{"id": "spin", "plugin": "weft-fixture-spin@0", "timeout_ms": 600000,
                   "fuel": weft_domain::definition::MAX_FUEL, "input": {}}]
    }))
    .await;
}

#[tokio::test]
async fn a_started_job_runs_and_shows_every_step_in_definition_order() {
    let h = with_echo().await;
    h.apply(json!({
        "name": "chain", "version": 1,
        "input": {"required": ["device"]},
        "steps": [
            {"id": "z_first", "plugin": "echo@0", "input": {"device": "${workflow.input.device}", "n": 1}},
            {"id": "a_second", "plugin": "transform@0", "depends_on": ["z_first"],
             "input": {"query": ".n + 1", "data": "${steps.z_first.output}"}}
        ],
        "output": {"n": "${steps.a_second.output}"}
    }))
    .await;
    let reply = h
        .post(
            "/api/v1/workflows/chain/jobs",
            json!({"input": {"device": "sw-1"}}),
        )
        .await
        .expect(StatusCode::CREATED);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply.headers[header::LOCATION],
        format!("/api/v1/jobs/{id}").as_str()
    );
    h.finished(&id).await;

    let job = h
        .get(&format!("/api/v1/jobs/{id}"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["output"], json!({"n": 2}));
    assert_eq!(job["input"], json!({"device": "sw-1"}));
    assert!(job["finished_at"].as_u64().unwrap() >= job["created_at"].as_u64().unwrap());
    let steps: Vec<&str> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["z_first", "a_second"]);
    let first = &job["steps"][0];
    assert_eq!(first["status"], "succeeded");
    assert!(first["plugin"].as_str().unwrap().starts_with("echo@"));
    let attempt = &first["tasks"][0]["attempts"][0];
    assert_eq!(attempt["number"], 1);
    assert_eq!(attempt["outcome"], "succeeded");
    assert!(attempt["ended_at"].as_u64().is_some());
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_job() {
    let h = with_echo().await;
    h.apply(echo_workflow("hello", &[])).await;
    let body =
        json!({"input": {}, "idempotency_key": "order-17", "priority": 5, "queue": "default"});
    let first = h.start("hello", body.clone()).await;
    let second = h.start("hello", body).await;
    assert_eq!(first, second);
    let other = h
        .start("hello", json!({"idempotency_key": "order-18"}))
        .await;
    assert_ne!(first, other);
}

#[tokio::test]
async fn starting_checks_the_workflow_and_the_input() {
    let h = with_echo().await;
    h.apply(json!({
        "name": "typed", "version": 1,
        "input": {"required": ["device"], "schema": {
            "type": "object",
            "properties": {"device": {"type": "string"}, "count": {"type": "integer", "minimum": 1}}
        }},
        "steps": [{"id": "say", "plugin": "echo@0", "input": {}}]
    }))
    .await;
    let cases: [(&str, Value, StatusCode, &str, &str); 8] = [
        (
            "nope",
            json!({}),
            StatusCode::NOT_FOUND,
            "parameter",
            "name",
        ),
        (
            "typed",
            json!({"input": {"device": "d"}, "version": 4}),
            StatusCode::NOT_FOUND,
            "pointer",
            "/version",
        ),
        (
            "typed",
            json!({"input": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "pointer",
            "/input",
        ),
        (
            "typed",
            json!({"input": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "pointer",
            "/input/device",
        ),
        (
            "typed",
            json!({"input": {"device": 7}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "pointer",
            "/input/device",
        ),
        (
            "typed",
            json!({"input": {"device": "d", "count": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "pointer",
            "/input/count",
        ),
        (
            "typed",
            json!({"input": {"device": "d"}, "priority": "high"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "pointer",
            "/priority",
        ),
        (
            "typed",
            json!({"input": {"device": "d"}, "inputs": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "pointer",
            "/inputs",
        ),
    ];
    for (workflow, body, status, member, at) in cases {
        let problem = h
            .post(&format!("/api/v1/workflows/{workflow}/jobs"), body.clone())
            .await
            .expect(status)
            .problem();
        assert_eq!(problem[member], at, "{body}: {problem}");
    }
    h.start("typed", json!({"input": {"device": "d", "count": 2}}))
        .await;

    // A new version's input rules apply to the next start, and the old ones to its version.
    h.apply(json!({
        "name": "typed", "version": 2,
        "input": {"required": ["device", "site"]},
        "steps": [{"id": "say", "plugin": "echo@0", "input": {}}]
    }))
    .await;
    let problem = h
        .post(
            "/api/v1/workflows/typed/jobs",
            json!({"input": {"device": "d"}}),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY)
        .problem();
    assert_eq!(problem["pointer"], "/input/site", "{problem}");
    h.post(
        "/api/v1/workflows/typed/jobs",
        json!({"input": {"device": "d"}, "version": 1}),
    )
    .await
    .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn a_full_engine_answers_429_with_retry_after() {
    let h = Harness::with(
        ApiConfig {
            retry_after_seconds: 2,
            ..ApiConfig::default()
        },
        EngineConfig {
            max_unfinished_jobs: 0,
            ..EngineConfig::default()
        },
    )
    .await;
    h.approve(plugin("echo")).await;
    h.apply(echo_workflow("hello", &[])).await;
    let reply = h
        .post("/api/v1/workflows/hello/jobs", json!({}))
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers[header::RETRY_AFTER], "2");
    assert_eq!(reply.problem()["type"], "urn:weft:problem:busy");
}

#[tokio::test]
async fn jobs_are_listed_newest_first_a_page_at_a_time() {
    let h = with_echo().await;
    h.apply(echo_workflow("hello", &[])).await;
    h.apply(echo_workflow("other", &[])).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.start("hello", json!({})).await);
    }
    let other = h.start("other", json!({})).await;
    for id in ids.iter().chain([&other]) {
        h.finished(id).await;
    }

    let page = h
        .get("/api/v1/jobs?workflow=hello&limit=2")
        .await
        .expect(StatusCode::OK)
        .json();
    let listed: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = h
        .get(&format!(
            "/api/v1/jobs?workflow=hello&limit=2&cursor={cursor}"
        ))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(next["jobs"][0]["id"], ids[0].as_str());
    assert!(next.get("next_cursor").is_none());

    let all = h
        .get("/api/v1/jobs?status=succeeded")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(all["jobs"].as_array().unwrap().len(), 4);
    assert_eq!(all["jobs"][0]["id"], other.as_str());
    let none = h
        .get("/api/v1/jobs?status=failed")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(none["jobs"], json!([]));

    for (query, parameter) in [
        ("status=done", Some("status")),
        ("limit=0", Some("limit")),
        ("limit=many", Some("limit")),
        ("cursor=xyz", Some("cursor")),
        ("workflow=Bad%20Name", Some("workflow")),
        ("colour=red", None),
    ] {
        let problem = h
            .get(&format!("/api/v1/jobs?{query}"))
            .await
            .expect(StatusCode::BAD_REQUEST)
            .problem();
        assert_eq!(
            problem.get("parameter").and_then(Value::as_str),
            parameter,
            "{query}: {problem}"
        );
    }
}

#[tokio::test]
async fn unknown_and_malformed_job_ids() {
    let h = Harness::new().await;
    let problem = h
        .get("/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .await
        .expect(StatusCode::NOT_FOUND)
        .problem();
    assert_eq!(problem["parameter"], "id");
    let problem = h
        .get("/api/v1/jobs/banana")
        .await
        .expect(StatusCode::BAD_REQUEST)
        .problem();
    assert_eq!(problem["parameter"], "id");
    h.post("/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel", json!({}))
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cancelling_stops_a_running_job_and_cannot_be_repeated() {
    let h = Harness::new().await;
    with_spin(&h).await;
    let id = h.start("stuck", json!({})).await;
    h.until(&id, "the step to run", |job| {
        job["steps"][0]["status"] == "running"
    })
    .await;
    let cancelled = h
        .post(
            &format!("/api/v1/jobs/{id}/cancel"),
            json!({"reason": "testing"}),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["steps"][0]["status"], "cancelled");
    h.post(&format!("/api/v1/jobs/{id}/cancel"), json!({}))
        .await
        .expect(StatusCode::CONFLICT)
        .problem();
    h.post(&format!("/api/v1/jobs/{id}/cancel"), json!({"why": "x"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn pausing_and_resuming_a_job() {
    let h = Harness::new().await;
    with_spin(&h).await;
    let id = h.start("stuck", json!({})).await;
    h.until(&id, "the job to run", |job| job["status"] == "running")
        .await;
    let paused = h
        .post(&format!("/api/v1/jobs/{id}/pause"), json!({}))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(paused["status"], "paused");
    h.post(&format!("/api/v1/jobs/{id}/pause"), json!({}))
        .await
        .expect(StatusCode::CONFLICT);
    let resumed = h
        .post(&format!("/api/v1/jobs/{id}/resume"), json!({}))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(resumed["status"], "running");
    h.post(&format!("/api/v1/jobs/{id}/cancel"), json!({}))
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn step_logs_are_served_per_attempt() {
    let h = Harness::new().await;
    h.approve(fixture("log")).await;
    h.approve(fixture("fail")).await;
    h.apply(json!({
        "name": "noisy", "version": 1,
        "steps": [
            {"id": "talk", "plugin": "weft-fixture-log@0", "input": {"message": "disk 7 erased"}},
            {"id": "flaky", "plugin": "weft-fixture-fail@0", "depends_on": ["talk"],
             "input": {"code": "busy", "retryable": true},
             "retry": {"max_attempts": 2, "initial_interval_ms": 1, "jitter": 0}}
        ]
    }))
    .await;
    let id = h.start("noisy", json!({})).await;
    h.finished(&id).await;

    let logs = h
        .get(&format!("/api/v1/jobs/{id}/steps/talk/logs"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(logs["step"], "talk");
    assert!(logs["excerpt_max_bytes"].as_u64().unwrap() > 0);
    let log = logs["tasks"][0]["attempts"][0]["log"].as_str().unwrap();
    for line in [
        "Info info: disk 7 erased",
        "stdout: out: disk 7 erased",
        "stderr: err: disk 7 erased",
    ] {
        assert!(
            log.lines().any(|l| l == line),
            "{line:?} missing from {log}"
        );
    }
    assert_eq!(logs["tasks"][0]["attempts"][0]["outcome"], "succeeded");

    let flaky = h
        .get(&format!("/api/v1/jobs/{id}/steps/flaky/logs"))
        .await
        .expect(StatusCode::OK)
        .json();
    let attempts = flaky["tasks"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{flaky}");
    assert!(attempts.iter().all(|a| a["outcome"] == "plugin_error"));

    let problem = h
        .get(&format!("/api/v1/jobs/{id}/steps/nope/logs"))
        .await
        .expect(StatusCode::NOT_FOUND)
        .problem();
    assert_eq!(problem["parameter"], "step");
}
