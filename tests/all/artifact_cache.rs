//! The precompiled-artifact cache: a restart loads instead of compiling, and an artifact the
//! daemon did not write is never deserialized.

use serde_json::json;
use weft_sandbox::{Grants, Outcome, SandboxConfig};

use crate::support::{plugin_bytes, run, sandbox_with};

fn config(dir: &std::path::Path) -> SandboxConfig {
    SandboxConfig {
        artifact_dir: Some(dir.to_path_buf()),
        ..SandboxConfig::default()
    }
}

fn artifacts(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

#[tokio::test]
async fn a_second_sandbox_loads_the_artifact_the_first_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = plugin_bytes("echo");
    let first = sandbox_with(config(dir.path()));
    let plugin = first.load(&bytes).await.unwrap();
    let written = artifacts(dir.path());
    assert_eq!(written.len(), 1, "one artifact per component");
    assert!(
        written[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&plugin.digest().hex())
    );
    let mtime = std::fs::metadata(&written[0]).unwrap().modified().unwrap();
    drop(first);

    let second = sandbox_with(config(dir.path()));
    let plugin = second.load(&bytes).await.unwrap();
    assert_eq!(
        std::fs::metadata(&written[0]).unwrap().modified().unwrap(),
        mtime
    );
    let report = run(&second, &plugin, &Grants::default(), json!([1])).await;
    assert_eq!(report.outcome, Outcome::Succeeded { output: json!([1]) });
}

#[tokio::test]
async fn a_tampered_artifact_is_compiled_again_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = plugin_bytes("echo");
    sandbox_with(config(dir.path())).load(&bytes).await.unwrap();
    let path = artifacts(dir.path()).pop().unwrap();
    let mut artifact = std::fs::read(&path).unwrap();
    let last = artifact.len() - 1;
    artifact[last] ^= 0xff;
    std::fs::write(&path, &artifact).unwrap();

    let sandbox = sandbox_with(config(dir.path()));
    let plugin = sandbox.load(&bytes).await.unwrap();
    assert_ne!(std::fs::read(&path).unwrap(), artifact, "rewritten");
    let report = run(&sandbox, &plugin, &Grants::default(), json!("ok")).await;
    assert!(report.outcome.is_success());
}
