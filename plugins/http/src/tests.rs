//! Unit tests of the `http` plugin against the SDK's fake host.

use std::time::Duration;

use serde_json::{Value, json};
use weft_sdk::http::{HttpError, Method, Response};
use weft_sdk::testing::{FakeHost, describe, run_json};

use super::*;

const URL: &str = "https://api.example.com/items";

fn run(host: &FakeHost, input: Value) -> Result<Output, TaskError> {
    let output = run_json::<HttpRequest>(&host.context(), &input.to_string())?;
    Ok(serde_json::from_str(&output).unwrap())
}

#[test]
fn returns_status_headers_body_and_parsed_json() {
    let host = FakeHost::new().with_response(
        Method::Get,
        URL,
        Response::new(200)
            .with_json(json!({ "items": [1, 2] }))
            .with_header("X-Page", "1")
            .with_header("x-page", "2"),
    );
    let output = run(&host, json!({ "url": URL })).unwrap();
    assert_eq!(output.status, 200);
    assert_eq!(output.headers["x-page"], "1, 2");
    assert_eq!(output.headers["content-type"], "application/json");
    assert_eq!(output.body, r#"{"items":[1,2]}"#);
    assert_eq!(output.json, Some(json!({ "items": [1, 2] })));
}

#[test]
fn leaves_json_null_for_other_content_types() {
    let host = FakeHost::new().with_response(
        Method::Get,
        URL,
        Response::new(200)
            .with_header("content-type", "text/plain")
            .with_body("[1]"),
    );
    let output = run(&host, json!({ "url": URL })).unwrap();
    assert_eq!(output.body, "[1]");
    assert_eq!(output.json, None);
}

#[test]
fn sends_json_bodies_as_json_and_strings_as_they_are() {
    let host = FakeHost::new().with_response(Method::Post, URL, Response::new(201));
    let input = json!({
        "method": "post",
        "url": URL,
        "headers": { "authorization": "Bearer token" },
        "body": { "name": "widget" },
        "timeout_ms": 1500,
    });
    run(&host, input).unwrap();
    run(
        &host,
        json!({ "method": "POST", "url": URL, "body": "plain text" }),
    )
    .unwrap();

    let requests = host.requests();
    let json_request = &requests[0];
    assert_eq!(json_request.method, Method::Post);
    assert_eq!(json_request.body, br#"{"name":"widget"}"#);
    assert!(
        json_request
            .headers
            .contains(&("content-type".into(), "application/json".into()))
    );
    assert!(
        json_request
            .headers
            .contains(&("authorization".into(), "Bearer token".into()))
    );
    assert_eq!(json_request.timeout, Some(Duration::from_millis(1500)));

    let text_request = &requests[1];
    assert_eq!(text_request.body, b"plain text");
    assert!(
        !text_request
            .headers
            .iter()
            .any(|(name, _)| name == "content-type")
    );
}

#[test]
fn an_unaccepted_status_fails_retryably_only_when_it_may_pass_later() {
    for (status, retryable) in [(503, true), (429, true), (404, false), (301, false)] {
        let host = FakeHost::new().with_response(
            Method::Get,
            URL,
            Response::new(status).with_body("nope"),
        );
        let error = run(&host, json!({ "url": URL })).unwrap_err();
        assert_eq!(error.code(), UNEXPECTED_STATUS);
        assert_eq!(error.is_retryable(), retryable, "status {status}");
        assert_eq!(
            error.details(),
            Some(&json!({ "status": status, "body": "nope" }))
        );
    }
}

#[test]
fn accept_status_replaces_the_success_range() {
    let host = FakeHost::new().with_response(Method::Get, URL, Response::new(404));
    let output = run(&host, json!({ "url": URL, "accept_status": [404] })).unwrap();
    assert_eq!(output.status, 404);

    let host = FakeHost::new().with_response(Method::Get, URL, Response::new(200));
    let error = run(&host, json!({ "url": URL, "accept_status": [204] })).unwrap_err();
    assert_eq!(error.code(), UNEXPECTED_STATUS);
}

#[test]
fn a_denied_host_is_a_permanent_http_request_denied() {
    let host = FakeHost::new().with_http_error(Method::Get, URL, HttpError::Denied);
    let error = run(&host, json!({ "url": URL })).unwrap_err();
    assert_eq!(error.code(), "http-request-denied");
    assert!(!error.is_retryable());
}

#[test]
fn connection_failures_and_timeouts_are_retryable() {
    let host = FakeHost::new()
        .with_http_error(Method::Get, URL, HttpError::Timeout("slow".into()))
        .with_http_error(Method::Delete, URL, HttpError::Connection("refused".into()));
    let timeout = run(&host, json!({ "url": URL })).unwrap_err();
    assert_eq!(timeout.code(), "http-timeout");
    assert!(timeout.is_retryable());
    let refused = run(&host, json!({ "url": URL, "method": "DELETE" })).unwrap_err();
    assert_eq!(refused.code(), "http-connection-failed");
    assert!(refused.is_retryable());
}

#[test]
fn malformed_input_is_invalid_input() {
    let host = FakeHost::new();
    for input in [
        json!({ "url": URL, "method": "GET /" }),
        json!({ "url": "ftp://example.com/" }),
        json!({ "url": URL, "timeout_ms": 0 }),
        json!({ "url": URL, "accept_status": [] }),
        json!({ "url": URL, "header": {} }),
        json!({ "url": URL, "headers": { "x": 1 } }),
    ] {
        let error = run(&host, input.clone()).unwrap_err();
        assert_eq!(error.code(), "invalid-input", "{input}");
        assert!(!error.is_retryable());
    }
    let error = run(&host, json!({ "url": URL, "headers": { "x": 1 } })).unwrap_err();
    assert!(error.message().contains("`headers.x`"), "{error}");
    assert!(host.requests().is_empty());
}

#[test]
fn requests_no_capabilities() {
    let info = describe::<HttpRequest>(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_DESCRIPTION"),
    );
    assert_eq!(info.name, "http");
    assert_eq!(info.capabilities, weft_sdk::Capabilities::NONE);
    assert_eq!(info.input_schema["required"], json!(["url"]));
}
