//! Shared helpers: finding built components, a sandbox per test, a loopback HTTP server.

use std::path::PathBuf;
use std::sync::Arc;

use weft_sandbox::{
    AttemptReport, Grants, MemoryKv, Plugin, RunRequest, Sandbox, SandboxConfig, StepLimitsOverride,
};

fn dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(
            std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
        )
        .parent()
        .unwrap()
        .join(default)
    })
}

fn read_component(dir: PathBuf, name: &str) -> Vec<u8> {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the components with `cargo xtask build-plugins` (or run `cargo xtask test`)",
            path.display()
        )
    })
}

/// Bytes of a first-party plugin.
pub fn plugin_bytes(name: &str) -> Vec<u8> {
    read_component(dir("WEFT_PLUGIN_DIR", "target/plugins"), name)
}

/// Bytes of a test fixture.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    read_component(dir("WEFT_FIXTURE_DIR", "target/test-plugins"), name)
}

/// A sandbox with default settings, an in-memory key-value store, and a private artifact
/// directory shared by the whole test binary so that each component compiles once.
pub fn sandbox() -> Sandbox {
    sandbox_with(SandboxConfig {
        artifact_dir: Some(shared_artifact_dir()),
        ..SandboxConfig::default()
    })
}

/// A sandbox with `config`.
pub fn sandbox_with(config: SandboxConfig) -> Sandbox {
    Sandbox::new(config, Arc::new(MemoryKv::default())).expect("sandbox")
}

fn shared_artifact_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .to_path_buf()
}

/// Loads a fixture into `sandbox`.
pub async fn fixture(sandbox: &Sandbox, name: &str) -> Plugin {
    sandbox
        .load(&fixture_bytes(name))
        .await
        .unwrap_or_else(|e| panic!("loading fixture {name}: {e}"))
}

/// Loads a first-party plugin into `sandbox`.
pub async fn plugin(sandbox: &Sandbox, name: &str) -> Plugin {
    sandbox
        .load(&plugin_bytes(name))
        .await
        .unwrap_or_else(|e| panic!("loading plugin {name}: {e}"))
}

/// A request for attempt 1 of step `step` with `input`.
pub fn request(input: serde_json::Value) -> RunRequest {
    RunRequest {
        input: input.to_string(),
        job_id: "01JTESTJOB0000000000000000".into(),
        workflow: "tests".into(),
        step_id: "step".into(),
        attempt: 1,
        limits: StepLimitsOverride::default(),
    }
}

/// Runs `plugin` once with `grants` and `input`.
pub async fn run(
    sandbox: &Sandbox,
    plugin: &Plugin,
    grants: &Grants,
    input: serde_json::Value,
) -> AttemptReport {
    sandbox
        .run(plugin, grants, &request(input))
        .await
        .expect("host fault")
}

/// A minimal HTTP/1.1 server on loopback answering every request with a JSON document
/// describing it (`method`, `path`, `body`, and the `x-test` header), with the status given
/// by a `status` query parameter (default 200). Returns its `host:port`.
pub async fn echo_http_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                };
                let length: usize = header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while data.len() < head_end + length {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buf[..n]);
                }
                let mut words = head.split_whitespace();
                let method = words.next().unwrap_or_default().to_owned();
                let path = words.next().unwrap_or_default().to_owned();
                let status = path
                    .split_once("status=")
                    .and_then(|(_, s)| s.get(..3))
                    .and_then(|s| s.parse::<u16>().ok())
                    .unwrap_or(200);
                let body = serde_json::json!({
                    "method": method,
                    "path": path,
                    "body": String::from_utf8_lossy(&data[head_end..]),
                    "x_test": header("x-test"),
                })
                .to_string();
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    addr.to_string()
}
