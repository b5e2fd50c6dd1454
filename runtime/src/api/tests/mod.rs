//! Contract tests of the API, through [`router`] with `oneshot`: every route, the role
//! matrix, the OpenAPI document, and the event stream. Each test runs its own engine on a
//! `MemoryStore` with real plugins from `target/plugins` and fixtures from
//! `target/test-plugins` (built by `cargo xtask build-plugins`).

mod jobs;
mod openapi;
mod plugins;
mod roles;
mod sse;
mod system;
mod workflows;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use weft_domain::{Job, JobId};
use weft_sandbox::{Sandbox, SandboxConfig};
use weft_store::{MemoryStore, Store};

use super::{ApiConfig, AppState, PROBLEM_JSON, router};
use crate::access::{Role, Tokens};
use crate::engine::{Engine, EngineConfig, StoreKv};

/// The bootstrap admin token of every test.
pub const ADMIN: &str = "weft-test-admin-token-0123456789";

fn component(variable: &str, default: &str, name: &str) -> Vec<u8> {
    let dir = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                std::env::var("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
            )
            .parent()
            .unwrap()
            .join(default)
        });
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the components with `cargo xtask build-plugins`",
            path.display()
        )
    })
}

/// A first-party plugin (`echo`, `http`, `transform`).
pub fn plugin(name: &str) -> Vec<u8> {
    component("WEFT_PLUGIN_DIR", "target/plugins", name)
}

/// A test fixture (`fail`, `spin`, `log`...).
pub fn fixture(name: &str) -> Vec<u8> {
    component("WEFT_FIXTURE_DIR", "target/test-plugins", name)
}

/// Compiled artifacts shared by every test of this binary, so each plugin compiles once.
fn artifact_dir() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .to_path_buf()
}

/// An answer of the router.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered a body that is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The problem body, checking its media type and members.
    pub fn problem(&self) -> Value {
        assert_eq!(
            self.headers.get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_JSON,
            "{self:?}"
        );
        let problem = self.json();
        assert_eq!(problem["status"], self.status.as_u16(), "{problem}");
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:weft:problem:")
        );
        assert!(problem["title"].is_string() && problem["detail"].is_string());
        problem
    }

    /// Asserts the status, showing the body when it differs.
    pub fn expect(self, status: StatusCode) -> Reply {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

/// An API over a fresh engine.
pub struct Harness {
    pub state: AppState,
    router: Router,
    operator: String,
    viewer: String,
}

impl Harness {
    /// Default settings.
    pub async fn new() -> Harness {
        Harness::with(ApiConfig::default(), EngineConfig::default()).await
    }

    /// These settings (workers are capped at 4).
    pub async fn with(api: ApiConfig, engine: EngineConfig) -> Harness {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let sandbox = Sandbox::new(
            SandboxConfig {
                artifact_dir: Some(artifact_dir()),
                max_instances: 8,
                ..SandboxConfig::default()
            },
            Arc::new(StoreKv::new(store.clone())),
        )
        .unwrap();
        let engine = Engine::start(
            store,
            sandbox,
            EngineConfig {
                workers: 4,
                ..engine
            },
        )
        .await
        .unwrap();
        let tokens = Tokens::in_memory(ADMIN);
        let (_, operator) = tokens.create("operator", Role::Operator).unwrap();
        let (_, viewer) = tokens.create("viewer", Role::Viewer).unwrap();
        let state = AppState::new(engine, tokens, api).unwrap();
        Harness {
            router: router(state.clone()),
            state,
            operator,
            viewer,
        }
    }

    /// A token of `role`.
    pub fn token(&self, role: Role) -> &str {
        match role {
            Role::Admin => ADMIN,
            Role::Operator => &self.operator,
            Role::Viewer => &self.viewer,
        }
    }

    /// Sends a request through the router.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A request with the token of `role`, if any.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        role: Option<Role>,
    ) -> axum::http::request::Builder {
        let builder = Request::builder().method(method).uri(path);
        match role {
            Some(role) => builder.header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.token(role)),
            ),
            None => builder,
        }
    }

    /// `GET path` as an admin.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(
            self.request(Method::GET, path, Some(Role::Admin))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// `method path` with a body of `content_type`, as an admin.
    pub async fn send_body(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> Reply {
        let request = self
            .request(method, path, Some(Role::Admin))
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    /// `POST path` with a JSON body, as an admin.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send_body(Method::POST, path, "application/json", body.to_string())
            .await
    }

    /// Uploads a component.
    pub async fn upload(&self, bytes: Vec<u8>) -> Reply {
        self.send_body(Method::POST, "/api/v1/plugins", "application/wasm", bytes)
            .await
    }

    /// Uploads and approves a component with `grants`; returns its name.
    pub async fn approve_with(&self, bytes: Vec<u8>, grants: Value) -> String {
        let plugin = self.upload(bytes).await.json();
        let name = plugin["name"].as_str().unwrap().to_owned();
        let path = format!(
            "/api/v1/plugins/{name}/{}/approve",
            plugin["version"].as_str().unwrap()
        );
        self.post(&path, grants).await.expect(StatusCode::OK);
        name
    }

    /// Uploads and approves a component without grants; returns its name.
    pub async fn approve(&self, bytes: Vec<u8>) -> String {
        self.approve_with(bytes, json!({})).await
    }

    /// Applies a definition, expecting it to be created.
    pub async fn apply(&self, definition: Value) {
        self.post("/api/v1/workflows", definition)
            .await
            .expect(StatusCode::CREATED);
    }

    /// Starts a job; returns its id.
    pub async fn start(&self, workflow: &str, body: Value) -> String {
        let reply = self
            .post(&format!("/api/v1/workflows/{workflow}/jobs"), body)
            .await
            .expect(StatusCode::CREATED);
        reply.json()["id"].as_str().unwrap().to_owned()
    }

    /// Waits until job `id` is finished.
    pub async fn finished(&self, id: &str) -> Job {
        let id: JobId = id.parse().unwrap();
        tokio::time::timeout(Duration::from_secs(60), self.state.engine.wait_finished(id))
            .await
            .expect("the job finished in time")
            .unwrap()
    }

    /// Waits until `check` holds for job `id`'s view, polling.
    pub async fn until(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.get(&format!("/api/v1/jobs/{id}")).await.json();
            if check(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A workflow of one `echo` step, `required` fields in its input.
pub fn echo_workflow(name: &str, required: &[&str]) -> Value {
    json!({
        "name": name, "version": 1,
        "input": {"required": required},
        "steps": [{"id": "say", "plugin": "echo@0", "input": {"said": "${workflow.input}"}}],
        "output": "${steps.say.output.said}"
    })
}
