//! `/api/v1/workflows`: applying definitions in JSON and YAML, their problems, and reading
//! them back.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{Harness, echo_workflow, plugin};

#[tokio::test]
async fn applying_creates_a_version_once_and_refuses_to_change_it() {
    let h = Harness::new().await;
    h.approve(plugin("echo")).await;
    let created = h
        .post("/api/v1/workflows", echo_workflow("greet", &[]))
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(
        created,
        json!({"name": "greet", "version": 1, "created": true})
    );
    let again = h
        .post("/api/v1/workflows", echo_workflow("greet", &[]))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(again["created"], false);
    h.post("/api/v1/workflows", echo_workflow("greet", &["who"]))
        .await
        .expect(StatusCode::CONFLICT)
        .problem();
}

#[tokio::test]
async fn yaml_definitions_are_accepted() {
    let h = Harness::new().await;
    h.approve(plugin("echo")).await;
    let yaml =
        "name: hello\nversion: 3\nsteps:\n  - id: say\n    plugin: echo@0\n    input: {text: hi}\n";
    let created = h
        .send_body(Method::POST, "/api/v1/workflows", "application/yaml", yaml)
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(created["version"], 3);
    h.send_body(Method::POST, "/api/v1/workflows", "text/plain", yaml)
        .await
        .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .problem();
}

#[tokio::test]
async fn every_problem_of_a_definition_is_listed_with_its_path() {
    let h = Harness::new().await;
    h.approve(plugin("echo")).await;
    let definition = json!({
        "name": "bad", "version": 1,
        "steps": [
            {"id": "a", "plugin": "echo@0", "input": {}, "retryy": 3},
            {"id": "b", "plugin": "missing@1", "depends_on": ["a", "nope"]}
        ]
    });
    let problem = h
        .post("/api/v1/workflows", definition)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY)
        .problem();
    assert_eq!(problem["type"], "urn:weft:problem:invalid-definition");
    let paths: Vec<&str> = problem["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    for expected in [
        "/steps/0/retryy",
        "/steps/1/plugin",
        "/steps/1/depends_on/1",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {problem}"
        );
    }
    for p in problem["problems"].as_array().unwrap() {
        assert!(p["code"].is_string() && p["message"].is_string(), "{p}");
    }
    let problem = h
        .send_body(
            Method::POST,
            "/api/v1/workflows",
            "application/json",
            "{\"name\": ",
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY)
        .problem();
    assert_eq!(problem["problems"][0]["code"], "syntax");
}

#[tokio::test]
async fn definitions_are_listed_and_read_by_version() {
    let h = Harness::new().await;
    h.approve(plugin("echo")).await;
    h.apply(echo_workflow("greet", &[])).await;
    let mut v2 = echo_workflow("greet", &["who"]);
    v2["version"] = json!(2);
    h.apply(v2).await;
    h.apply(echo_workflow("other", &[])).await;

    let list = h
        .get("/api/v1/workflows")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        list["workflows"],
        json!([
            {"name": "greet", "latest_version": 2, "versions": [1, 2]},
            {"name": "other", "latest_version": 1, "versions": [1]}
        ])
    );
    let latest = h
        .get("/api/v1/workflows/greet")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["definition"]["input"]["required"], json!(["who"]));
    let first = h
        .get("/api/v1/workflows/greet/versions/1")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(first["definition"]["steps"][0]["id"], "say");

    let missing = h
        .get("/api/v1/workflows/nope")
        .await
        .expect(StatusCode::NOT_FOUND)
        .problem();
    assert_eq!(missing["parameter"], "name");
    let missing = h
        .get("/api/v1/workflows/greet/versions/7")
        .await
        .expect(StatusCode::NOT_FOUND)
        .problem();
    assert_eq!(missing["parameter"], "version");
    let bad = h
        .get("/api/v1/workflows/greet/versions/two")
        .await
        .expect(StatusCode::BAD_REQUEST)
        .problem();
    assert_eq!(bad["parameter"], "version");
}
