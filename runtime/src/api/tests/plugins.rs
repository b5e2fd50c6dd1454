//! `/api/v1/plugins`: upload, catalogue, approval, disabling.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{Harness, fixture, plugin};
use crate::api::ApiConfig;

/// `bytes` with a custom section appended: another build with the same name and version.
fn rebuilt(mut bytes: Vec<u8>) -> Vec<u8> {
    let name = b"weft-test";
    let payload = b"another build";
    let size = 1 + name.len() + payload.len();
    bytes.push(0); // custom section id
    bytes.push(u8::try_from(size).unwrap()); // LEB128 of a small size is the byte itself
    bytes.push(u8::try_from(name.len()).unwrap());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}

#[tokio::test]
async fn an_upload_is_pending_and_uploading_it_again_returns_it() {
    let h = Harness::new().await;
    let first = h
        .upload(plugin("echo"))
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(first["name"], "echo");
    assert_eq!(first["status"], "pending");
    assert!(first["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(first["requested"], json!({"http_hosts": [], "kv": false}));
    assert!(first["version"].as_str().unwrap().starts_with("0."));
    let again = h.upload(plugin("echo")).await.expect(StatusCode::OK).json();
    assert_eq!(again["digest"], first["digest"]);
}

#[tokio::test]
async fn another_build_with_the_same_name_and_version_conflicts() {
    let h = Harness::new().await;
    h.upload(plugin("echo")).await.expect(StatusCode::CREATED);
    let problem = h
        .upload(rebuilt(plugin("echo")))
        .await
        .expect(StatusCode::CONFLICT)
        .problem();
    assert!(
        problem["detail"].as_str().unwrap().contains("echo"),
        "{problem}"
    );
}

#[tokio::test]
async fn uploads_must_be_wasm_components_within_the_size_limit() {
    let h = Harness::with(
        ApiConfig {
            max_component_bytes: 64 * 1024,
            ..ApiConfig::default()
        },
        Default::default(),
    )
    .await;
    let problem = h
        .send_body(
            Method::POST,
            "/api/v1/plugins",
            "application/octet-stream",
            plugin("echo"),
        )
        .await
        .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .problem();
    assert_eq!(problem["parameter"], "content-type");
    h.upload(plugin("echo"))
        .await
        .expect(StatusCode::PAYLOAD_TOO_LARGE)
        .problem();
    let problem = h
        .upload(b"\0asm not a component".to_vec())
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY)
        .problem();
    assert_eq!(problem["type"], "urn:weft:problem:invalid-value");
}

#[tokio::test]
async fn the_catalogue_lists_builds_by_name_and_version() {
    let h = Harness::new().await;
    h.upload(plugin("echo")).await.expect(StatusCode::CREATED);
    let transform = h
        .upload(plugin("transform"))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let list = h.get("/api/v1/plugins").await.expect(StatusCode::OK).json();
    let names: Vec<&str> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "transform"]);

    let by_name = h
        .get("/api/v1/plugins/transform")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(by_name["plugins"][0]["digest"], transform["digest"]);
    let version = transform["version"].as_str().unwrap();
    let one = h
        .get(&format!("/api/v1/plugins/transform/{version}"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(one["digest"], transform["digest"]);
    assert!(
        one["input_schema"].is_object(),
        "transform declares its input: {one}"
    );

    let missing = h
        .get("/api/v1/plugins/nothing")
        .await
        .expect(StatusCode::NOT_FOUND)
        .problem();
    assert_eq!(missing["parameter"], "name");
    let missing = h
        .get("/api/v1/plugins/echo/9.9.9")
        .await
        .expect(StatusCode::NOT_FOUND)
        .problem();
    assert_eq!(missing["parameter"], "version");
    let bad = h
        .get("/api/v1/plugins/echo/latest")
        .await
        .expect(StatusCode::BAD_REQUEST)
        .problem();
    assert_eq!(bad["parameter"], "version");
    let bad = h
        .get("/api/v1/plugins/Not%20A%20Name")
        .await
        .expect(StatusCode::BAD_REQUEST)
        .problem();
    assert_eq!(bad["parameter"], "name");
}

#[tokio::test]
async fn approval_grants_exactly_what_is_given_and_disabling_withdraws_it() {
    let h = Harness::new().await;
    let uploaded = h
        .upload(fixture("fetch"))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let path = format!(
        "/api/v1/plugins/{}/{}",
        uploaded["name"].as_str().unwrap(),
        uploaded["version"].as_str().unwrap()
    );
    let grants = json!({"http_hosts": ["127.0.0.1:9", "*.example.com"], "kv": true, "fuel": 1000000, "deadline_ms": 2000});
    let approved = h
        .post(&format!("{path}/approve"), grants.clone())
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["grants"], grants);
    assert!(approved["approved_at"].as_u64().is_some());

    let disabled = h
        .post(&format!("{path}/disable"), json!({}))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(disabled["status"], "disabled");
    let shown = h.get(&path).await.expect(StatusCode::OK).json();
    assert_eq!(shown["status"], "disabled");
    h.post("/api/v1/plugins/echo/0.1.0/disable", json!({}))
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_grants_point_at_the_member_at_fault() {
    let h = Harness::new().await;
    let uploaded = h
        .upload(plugin("echo"))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let path = format!(
        "/api/v1/plugins/echo/{}/approve",
        uploaded["version"].as_str().unwrap()
    );
    let cases = [
        (
            json!({"http_hosts": ["ok.example.com", "not a host"]}),
            "/http_hosts/1",
        ),
        (json!({"fuel": 0}), "/fuel"),
        (json!({"memory_bytes": 1}), "/memory_bytes"),
        (json!({"deadline_ms": 0}), "/deadline_ms"),
        (json!({"kv": "yes"}), "/kv"),
        (json!({"allow_hosts": []}), "/allow_hosts"),
    ];
    for (body, pointer) in cases {
        let problem = h
            .post(&path, body.clone())
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY)
            .problem();
        assert_eq!(problem["pointer"], pointer, "{body}: {problem}");
    }
    let still = h.get(&path.replace("/approve", "")).await.json();
    assert_eq!(still["status"], "pending");
}

#[tokio::test]
async fn auto_approval_grants_what_a_plugin_requests() {
    let h = Harness::with(
        ApiConfig {
            auto_approve: true,
            ..ApiConfig::default()
        },
        Default::default(),
    )
    .await;
    let uploaded = h
        .upload(fixture("kv"))
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(uploaded["status"], "approved");
    assert_eq!(uploaded["grants"]["kv"], uploaded["requested"]["kv"]);
}
