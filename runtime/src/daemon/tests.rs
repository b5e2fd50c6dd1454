//! The daemon in-process: it creates its data directory, generates a private admin token,
//! serves on the port it reports, and drains on shutdown.

use super::{Daemon, DaemonConfig, Drained, RawConfig};
use crate::access::ADMIN_TOKEN_FILE;

#[tokio::test]
async fn a_daemon_serves_on_its_reported_port_and_drains() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config =
        DaemonConfig::new(data_dir.clone(), "127.0.0.1:0", RawConfig::default(), None).unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    let address = daemon.local_addr();
    assert_ne!(address.port(), 0);

    let token_file = data_dir.join(ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&token_file), 0o600);
        assert_eq!(mode(&data_dir), 0o700);
    }
    assert!(data_dir.join("db").is_dir());

    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let denied = client
        .get(format!("http://{address}/api/v1/plugins"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let plugins = client
        .get(format!("http://{address}/api/v1/plugins"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(plugins.status(), 200);

    assert_eq!(
        daemon.shutdown().await.unwrap(),
        Drained {
            interrupted_attempts: 0
        }
    );
    assert!(
        client
            .get(format!("http://{address}/healthz"))
            .send()
            .await
            .is_err(),
        "the daemon no longer listens"
    );
}

/// A daemon with the `spin` fixture approved and a workflow `stuck` whose one step spins
/// until its deadline, `step_timeout_ms`.
async fn daemon_with_a_spinning_job(
    data_dir: std::path::PathBuf,
    drain_grace_ms: u64,
    step_timeout_ms: u64,
) -> (Daemon, String) {
    let raw = RawConfig {
        drain_grace_ms: Some(drain_grace_ms),
        ..RawConfig::default()
    };
    let config = DaemonConfig::new(
        data_dir,
        "127.0.0.1:0",
        raw,
        Some("a-test-admin-token-0123".into()),
    )
    .unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    let base = format!("http://{}/api/v1", daemon.local_addr());
    let client = reqwest::Client::new();
    let token = "a-test-admin-token-0123";
    let uploaded: serde_json::Value = client
        .post(format!("{base}/plugins"))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(crate::api::tests::fixture("spin"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let approve = format!(
        "{base}/plugins/{}/{}/approve",
        uploaded["name"].as_str().unwrap(),
        uploaded["version"].as_str().unwrap()
    );
    let approved = client
        .post(approve)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let definition = serde_json::json!({
        "name": "stuck", "version": 1,
        "steps": [{"id": "spin", "plugin": "weft-fixture-spin@0", "timeout_ms": step_timeout_ms,
                   "fuel": weft_domain::definition::MAX_FUEL,
                   "retry": {"max_attempts": 1}, "input": {}}]
    });
    let applied = client
        .post(format!("{base}/workflows"))
        .bearer_auth(token)
        .json(&definition)
        .send()
        .await
        .unwrap();
    assert_eq!(applied.status(), 201);
    let started: serde_json::Value = client
        .post(format!("{base}/workflows/stuck/jobs"))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = started["id"].as_str().unwrap().to_owned();
    // Wait until the attempt runs.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while daemon.state.metrics().attempts_running() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the attempt never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    (daemon, job)
}

// Two worker threads, as `weft serve` has on two cores; the spinning attempt runs on the
// daemon's runtime for attempts, beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_lets_running_attempts_finish_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, job) = daemon_with_a_spinning_job(dir.path().join("d"), 30_000, 300).await;
    let engine = daemon.state.engine().clone();
    assert_eq!(daemon.shutdown().await.unwrap().interrupted_attempts, 0);
    let job = engine.job(job.parse().unwrap()).unwrap().unwrap();
    let task = job.tasks().next().unwrap().1.clone();
    let attempt = &task.attempts()[0];
    assert!(
        attempt.outcome.is_some(),
        "the attempt's end was committed: {job:?}"
    );
}

// Two worker threads, as `weft serve` has on two cores; the spinning attempt runs on the
// daemon's runtime for attempts, beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_gives_up_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, _) = daemon_with_a_spinning_job(dir.path().join("d"), 200, 600_000).await;
    let started = std::time::Instant::now();
    assert_eq!(daemon.shutdown().await.unwrap().interrupted_attempts, 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn attempts_run_on_as_many_threads_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let raw = RawConfig {
        attempt_threads: Some(3),
        ..RawConfig::default()
    };
    let config = DaemonConfig::new(dir.path().join("data"), "127.0.0.1:0", raw, None).unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    let runtime = daemon.attempts.0.as_ref().unwrap();
    assert_eq!(runtime.metrics().num_workers(), 3);
    daemon.shutdown().await.unwrap();
}
