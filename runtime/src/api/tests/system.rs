//! `/healthz`, `/metrics`, routing errors, and `/api/v1/tokens`.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::json;

use super::{Harness, plugin};
use crate::access::Role;

#[tokio::test]
async fn healthz_needs_no_token() {
    let h = Harness::new().await;
    let reply = h
        .send(
            h.request(Method::GET, "/healthz", None)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(reply.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn metrics_count_jobs_attempts_and_sandbox_stops() {
    let h = Harness::new().await;
    h.approve(plugin("echo")).await;
    h.approve(super::fixture("fail")).await;
    h.apply(super::echo_workflow("hello", &[])).await;
    h.apply(json!({
        "name": "broken", "version": 1,
        "steps": [{"id": "f", "plugin": "weft-fixture-fail@0", "input": {"code": "nope"}}]
    }))
    .await;
    let ok = h.start("hello", json!({"input": {}})).await;
    let failed = h.start("broken", json!({})).await;
    h.finished(&ok).await;
    h.finished(&failed).await;

    // The metrics follow the engine's events: poll until they have caught up.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let reply = h
            .send(
                h.request(Method::GET, "/metrics", None)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .expect(StatusCode::OK);
        assert!(
            reply.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let text = String::from_utf8(reply.body.to_vec()).unwrap();
        if text.contains("weft_jobs{state=\"failed\"} 1")
            && text.contains("weft_jobs{state=\"succeeded\"} 1")
        {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never caught up:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for line in [
        "weft_step_attempts_started_total 2",
        "weft_step_attempts_finished_total{outcome=\"succeeded\"} 1",
        "weft_step_attempts_finished_total{outcome=\"plugin_error\"} 1",
        "weft_step_attempt_duration_seconds_count 2",
        "weft_step_attempt_duration_seconds_bucket{le=\"+Inf\"} 2",
        "weft_sandbox_stops_total{kind=\"out_of_fuel\"} 0",
        "weft_step_attempts_running 0",
        "weft_queue_depth 0",
        "# TYPE weft_step_attempt_duration_seconds histogram",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let h = Harness::new().await;
    let problem = h
        .get("/api/v1/nothing")
        .await
        .expect(StatusCode::NOT_FOUND)
        .problem();
    assert_eq!(problem["type"], "urn:weft:problem:no-route");
    let reply = h
        .send(
            h.request(Method::PUT, "/api/v1/plugins", Some(Role::Admin))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .expect(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        reply.problem()["type"],
        "urn:weft:problem:method-not-allowed"
    );
}

#[tokio::test]
async fn a_bad_or_missing_token_is_401_with_a_challenge() {
    let h = Harness::new().await;
    for authorization in [
        None,
        Some("Bearer nope"),
        Some("Basic YWRtaW4="),
        Some("Bearer"),
    ] {
        let mut request = h.request(Method::GET, "/api/v1/plugins", None);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let reply = h
            .send(request.body(Body::empty()).unwrap())
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert!(reply.headers.contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(reply.problem()["parameter"], "authorization");
    }
}

#[tokio::test]
async fn admins_create_list_and_revoke_tokens() {
    let h = Harness::new().await;
    let created = h
        .post(
            "/api/v1/tokens",
            json!({"name": "deploy bot", "role": "operator"}),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    let secret = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["role"], "operator");
    assert_eq!(created["name"], "deploy bot");

    let with_secret = |method: Method, path: &str| {
        h.request(method, path, None)
            .header(header::AUTHORIZATION, format!("Bearer {secret}"))
            .body(Body::empty())
            .unwrap()
    };
    h.send(with_secret(Method::GET, "/api/v1/jobs"))
        .await
        .expect(StatusCode::OK);
    h.send(with_secret(Method::GET, "/api/v1/tokens"))
        .await
        .expect(StatusCode::FORBIDDEN);

    let list = h.get("/api/v1/tokens").await.expect(StatusCode::OK).json();
    let ids: Vec<&str> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], "bootstrap");
    assert!(ids.contains(&id.as_str()));
    assert!(
        !list.to_string().contains(&secret),
        "secrets are never listed"
    );

    let revoke = |path: String| {
        h.send(
            h.request(Method::DELETE, &path, Some(Role::Admin))
                .body(Body::empty())
                .unwrap(),
        )
    };
    let revoked = revoke(format!("/api/v1/tokens/{id}"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(revoked["id"], id.as_str());
    h.send(with_secret(Method::GET, "/api/v1/jobs"))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let again = revoke(format!("/api/v1/tokens/{id}"))
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(again.problem()["parameter"], "id");
    revoke("/api/v1/tokens/bootstrap".to_owned())
        .await
        .expect(StatusCode::CONFLICT)
        .problem();
}

#[tokio::test]
async fn token_requests_are_checked_member_by_member() {
    let h = Harness::new().await;
    let cases = [
        (json!({"name": "x", "role": "root"}), "/role"),
        (json!({"name": "", "role": "viewer"}), "/name"),
        (
            json!({"name": "x", "role": "viewer", "expires": 3}),
            "/expires",
        ),
        (json!({"role": "viewer"}), ""),
    ];
    for (body, pointer) in cases {
        let problem = h
            .post("/api/v1/tokens", body.clone())
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY)
            .problem();
        assert_eq!(problem["pointer"], pointer, "{body}: {problem}");
    }
    let problem = h
        .send_body(
            Method::POST,
            "/api/v1/tokens",
            "application/json",
            "{not json",
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .problem();
    assert_eq!(problem["pointer"], "");
    let problem = h
        .send_body(Method::POST, "/api/v1/tokens", "text/plain", "name=x")
        .await
        .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .problem();
    assert_eq!(problem["parameter"], "content-type");
}

#[tokio::test]
async fn json_bodies_are_size_limited() {
    let h = Harness::with(
        crate::api::ApiConfig {
            max_request_body_bytes: 1024,
            ..Default::default()
        },
        Default::default(),
    )
    .await;
    let big = json!({"name": "x".repeat(2000), "role": "viewer"});
    h.post("/api/v1/tokens", big)
        .await
        .expect(StatusCode::PAYLOAD_TOO_LARGE)
        .problem();
}
