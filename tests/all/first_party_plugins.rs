//! The bundled plugins (`echo`, `http`, `transform`) running in the real sandbox.

use serde_json::json;
use weft_sandbox::{Grants, Outcome};

use crate::support::{echo_http_server, plugin, run, sandbox};

fn output(outcome: &Outcome) -> &serde_json::Value {
    match outcome {
        Outcome::Succeeded { output } => output,
        other => panic!("expected success, got {other:?}"),
    }
}

#[tokio::test]
async fn echo_returns_its_input() {
    let sandbox = sandbox();
    let echo = plugin(&sandbox, "echo").await;
    assert_eq!(echo.info().name, "echo");
    let input = json!({"a": [1, 2.5, "three", null, {"b": true}]});
    let report = run(&sandbox, &echo, &Grants::default(), input.clone()).await;
    assert_eq!(output(&report.outcome), &input);
}

#[tokio::test]
async fn http_sends_method_headers_and_json_body_and_parses_the_reply() {
    let sandbox = sandbox();
    let http = plugin(&sandbox, "http").await;
    let server = echo_http_server().await;
    let grants = Grants {
        http_hosts: vec!["127.0.0.1".parse().unwrap()],
        ..Grants::default()
    };
    let input = json!({
        "method": "DELETE",
        "url": format!("http://{server}/devices/sw-17"),
        "headers": {"x-test": "yes"},
        "body": {"reason": "decommissioned"},
    });
    let report = run(&sandbox, &http, &grants, input).await;
    let out = output(&report.outcome);
    assert_eq!(out["status"], json!(200));
    assert_eq!(out["json"]["method"], json!("DELETE"));
    assert_eq!(out["json"]["path"], json!("/devices/sw-17"));
    assert_eq!(out["json"]["x_test"], json!("yes"));
    let sent: serde_json::Value =
        serde_json::from_str(out["json"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"reason": "decommissioned"}));
}

#[tokio::test]
async fn http_status_outside_the_accepted_set_is_a_plugin_error() {
    let sandbox = sandbox();
    let http = plugin(&sandbox, "http").await;
    let server = echo_http_server().await;
    let grants = Grants {
        http_hosts: vec![server.parse().unwrap()],
        ..Grants::default()
    };
    for (status, retryable) in [(503, true), (404, false)] {
        let input = json!({"method": "GET", "url": format!("http://{server}/x?status={status}")});
        let report = run(&sandbox, &http, &grants, input).await;
        match &report.outcome {
            Outcome::Failed { error } => {
                assert_eq!(error.retryable, retryable, "{status}: {error:?}");
                assert!(
                    error
                        .details
                        .as_ref()
                        .unwrap()
                        .to_string()
                        .contains(&status.to_string())
                );
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn http_to_an_ungranted_host_is_denied() {
    let sandbox = sandbox();
    let http = plugin(&sandbox, "http").await;
    let server = echo_http_server().await;
    let input = json!({"method": "GET", "url": format!("http://{server}/")});
    let report = run(&sandbox, &http, &Grants::default(), input).await;
    assert!(
        matches!(
            &report.outcome,
            Outcome::Stopped {
                stop: weft_sandbox::SandboxStop::CapabilityDenied { .. }
            }
        ),
        "{:?}",
        report.outcome
    );
}

#[tokio::test]
async fn transform_runs_a_jq_query() {
    let sandbox = sandbox();
    let transform = plugin(&sandbox, "transform").await;
    let input = json!({
        "query": "[.machines[] | select(.site == \"ams\") | .name]",
        "data": {"machines": [
            {"name": "m1", "site": "ams"},
            {"name": "m2", "site": "fra"},
            {"name": "m3", "site": "ams"}
        ]}
    });
    let report = run(&sandbox, &transform, &Grants::default(), input).await;
    assert_eq!(output(&report.outcome), &json!(["m1", "m3"]));
}

#[tokio::test]
async fn transform_reports_a_bad_query_without_retry() {
    let sandbox = sandbox();
    let transform = plugin(&sandbox, "transform").await;
    let input = json!({"query": ".machines[ | nope", "data": {}});
    let report = run(&sandbox, &transform, &Grants::default(), input).await;
    match &report.outcome {
        Outcome::Failed { error } => {
            assert_eq!(error.code, "invalid-query");
            assert!(!error.retryable);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_input_names_the_field() {
    let sandbox = sandbox();
    let http = plugin(&sandbox, "http").await;
    let report = run(
        &sandbox,
        &http,
        &Grants::default(),
        json!({"method": "GET", "url": 7}),
    )
    .await;
    match &report.outcome {
        Outcome::Failed { error } => {
            assert_eq!(error.code, "invalid-input");
            assert!(error.message.contains("url"), "{}", error.message);
            assert!(!error.retryable);
        }
        other => panic!("{other:?}"),
    }
}
