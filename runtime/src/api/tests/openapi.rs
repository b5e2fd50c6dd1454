//! The OpenAPI document: it parses as OpenAPI 3.1, every reference resolves, every path
//! parameter is declared, every operation documents a success and its errors, and the copy
//! served at `/api/v1/openapi.json` is the generated one.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::Value;

use super::Harness;
use crate::api::openapi;

fn document() -> Value {
    serde_json::to_value(openapi()).unwrap()
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let text = openapi().to_pretty_json().unwrap();
    let spec = oas3::from_json(&text).expect("the document parses as OpenAPI");
    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));
    let mut operation_ids = BTreeSet::new();
    for (path, method, operation) in spec.operations() {
        let id = operation.operation_id.clone().unwrap_or_default();
        assert!(
            operation_ids.insert(id.clone()),
            "operation id `{id}` of {method} {path} is repeated"
        );
        assert!(
            operation
                .responses
                .as_ref()
                .is_some_and(|r| r.keys().any(|code| code.starts_with('2'))),
            "{method} {path} documents a success"
        );
        assert!(
            operation.summary.is_some() || operation.description.is_some(),
            "{method} {path} is described"
        );
    }
    assert_eq!(operation_ids.len(), 24);
}

/// Every `$ref` in `value`.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference.clone());
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves() {
    let document = document();
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(!found.is_empty());
    for reference in found {
        let pointer = reference.strip_prefix('#').expect("local references only");
        assert!(
            document.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
}

#[test]
fn path_parameters_are_declared_and_api_errors_documented() {
    let document = document();
    for (path, item) in document["paths"].as_object().unwrap() {
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, operation) in item.as_object().unwrap() {
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(declared, in_path, "{method} {path}");
            if path.starts_with("/api/v1/") {
                let responses = operation["responses"].as_object().unwrap();
                for status in ["401", "403"] {
                    let content = &responses[status]["content"];
                    assert!(
                        content["application/problem+json"]["schema"].is_object(),
                        "{method} {path} documents {status} as a problem"
                    );
                }
            }
        }
    }
    assert!(document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let h = Harness::new().await;
    let served = h
        .get("/api/v1/openapi.json")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(served, document());
}
