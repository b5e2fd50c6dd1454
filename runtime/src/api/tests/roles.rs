//! The role matrix: every route of the OpenAPI document, called with no token and with a
//! token of every role, answers 401, 403 or passes the role check exactly as the document's
//! security requirement says. Also checks that the document lists exactly the expected routes.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::Value;

use super::{Harness, echo_workflow, plugin};
use crate::access::Role;
use crate::api::openapi;

/// Every route of the API, as `METHOD path`.
const ROUTES: [&str; 24] = [
    "GET /healthz",
    "GET /metrics",
    "GET /api/v1/openapi.json",
    "POST /api/v1/plugins",
    "GET /api/v1/plugins",
    "GET /api/v1/plugins/{name}",
    "GET /api/v1/plugins/{name}/{version}",
    "POST /api/v1/plugins/{name}/{version}/approve",
    "POST /api/v1/plugins/{name}/{version}/disable",
    "POST /api/v1/workflows",
    "GET /api/v1/workflows",
    "GET /api/v1/workflows/{name}",
    "GET /api/v1/workflows/{name}/versions/{version}",
    "POST /api/v1/workflows/{name}/jobs",
    "GET /api/v1/jobs",
    "GET /api/v1/jobs/{id}",
    "POST /api/v1/jobs/{id}/cancel",
    "POST /api/v1/jobs/{id}/pause",
    "POST /api/v1/jobs/{id}/resume",
    "GET /api/v1/jobs/{id}/events",
    "GET /api/v1/jobs/{id}/steps/{step}/logs",
    "POST /api/v1/tokens",
    "GET /api/v1/tokens",
    "DELETE /api/v1/tokens/{id}",
];

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Every documented operation: method, path template, and the role it requires (`None`
/// for routes without a security requirement).
pub fn documented_operations() -> Vec<(Method, String, Option<Role>)> {
    let document = serde_json::to_value(openapi()).unwrap();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let role = operation.get("security").map(|security| {
                let requirement = &security.as_array().unwrap()[0]["bearer"];
                let roles = requirement.as_array().unwrap();
                assert_eq!(roles.len(), 1, "{method} {path} names one role");
                roles[0].as_str().unwrap().parse::<Role>().unwrap()
            });
            operations.push((method.to_uppercase().parse().unwrap(), path.clone(), role));
        }
    }
    operations
}

/// The path with its parameters naming what exists: version `echo_version` of the `echo`
/// plugin, the `hello` workflow, job `job` and its step `say`; an unknown token.
fn concrete(path: &str, echo_version: &str, job: &str) -> String {
    let path = if path.starts_with("/api/v1/plugins/") {
        path.replace("{name}", "echo")
            .replace("{version}", echo_version)
    } else if path.starts_with("/api/v1/tokens/") {
        path.replace("{id}", "tok_unknown")
    } else {
        path.replace("{name}", "hello").replace("{version}", "1")
    };
    path.replace("{id}", job).replace("{step}", "say")
}

#[test]
fn the_document_lists_exactly_the_routes() {
    let documented: BTreeSet<String> = documented_operations()
        .into_iter()
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    let expected: BTreeSet<String> = ROUTES.iter().map(|r| (*r).to_owned()).collect();
    assert_eq!(documented, expected);
}

#[test]
fn every_api_route_requires_a_role_and_only_api_routes_do() {
    for (method, path, role) in documented_operations() {
        assert_eq!(
            role.is_some(),
            path.starts_with("/api/v1/"),
            "{method} {path}"
        );
    }
}

/// Calls every route with no token and with a token of each role: 401 without a token, 403
/// with a lower role, and otherwise past the role check; reads of existing resources then
/// answer 200. (Writes may still fail for other reasons, such as an empty body.)
#[tokio::test]
async fn every_route_checks_its_role() {
    let h = Harness::new().await;
    assert_eq!(h.approve(plugin("echo")).await, "echo");
    h.apply(echo_workflow("hello", &[])).await;
    let job = h.start("hello", serde_json::json!({})).await;
    h.finished(&job).await;
    let echo = h.get("/api/v1/plugins/echo").await.json();
    let echo_version = echo["plugins"][0]["version"].as_str().unwrap().to_owned();
    let mut checked = 0;
    for (method, path, required) in documented_operations() {
        let uri = concrete(&path, &echo_version, &job);
        let callers = std::iter::once(None).chain(Role::ALL.map(Some));
        for caller in callers {
            let request = h
                .request(method.clone(), &uri, caller)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let reply = h.send(request).await;
            let expected = match (required, caller) {
                (None, _) => None,
                (Some(_), None) => Some(StatusCode::UNAUTHORIZED),
                (Some(required), Some(role)) if !role.allows(required) => {
                    Some(StatusCode::FORBIDDEN)
                }
                (Some(_), Some(_)) => None,
            };
            let who = caller.map_or("no token".to_owned(), |r| r.to_string());
            match expected {
                Some(status) => {
                    assert_eq!(reply.status, status, "{method} {uri} with {who}");
                    reply.problem();
                }
                None if method == Method::GET => {
                    assert_eq!(reply.status, StatusCode::OK, "{method} {uri} with {who}");
                }
                None => {
                    assert!(
                        ![
                            StatusCode::UNAUTHORIZED,
                            StatusCode::FORBIDDEN,
                            StatusCode::METHOD_NOT_ALLOWED
                        ]
                        .contains(&reply.status),
                        "{method} {uri} with {who}: {}",
                        reply.status
                    );
                    if reply.status == StatusCode::NOT_FOUND {
                        let problem: Value = reply.problem();
                        assert_ne!(
                            problem["type"], "urn:weft:problem:no-route",
                            "{method} {uri}"
                        );
                    }
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * 4);
}
