//! The `weft` command line against a real daemon: every test spawns `weft serve` on a
//! loopback port with a temporary data directory and drives it only through CLI commands,
//! checking their exit codes and output.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::{ADMIN_TOKEN, Daemon, weft_bin};
use crate::support::{fixture_bytes, plugin_bytes};

/// Exit code of a followed job that failed or was cancelled (`weft::cli::EXIT_JOB_FAILED`).
const EXIT_JOB_FAILED: i32 = 3;
/// How long a job of these tests may take; they take well under a second when all is well.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// A daemon and a scratch directory for the files the commands read.
struct Setup {
    daemon: Daemon,
    dir: tempfile::TempDir,
}

impl Setup {
    fn start() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::start(&dir.path().join("data"));
        Setup { daemon, dir }
    }

    /// `weft ARGS` against the daemon; `WEFT_SERVER` and `WEFT_TOKEN` point at it.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(weft_bin());
        cmd.args(args)
            .env("WEFT_SERVER", &self.daemon.url)
            .env("WEFT_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .current_dir(self.dir.path());
        cmd
    }

    /// Runs `weft ARGS` to its end.
    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("running weft")
    }

    /// Runs `weft ARGS`, which must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "weft {args:?}: {}",
            describe(&output)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs `weft ARGS --output json`, which must succeed; returns its parsed stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let stdout = self.ok(&args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("weft {args:?}: {e}: {stdout}"))
    }

    /// Writes `contents` to a file of the scratch directory; returns its path.
    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Pushes and approves a component; returns its `name@major` reference.
    fn push(&self, file_name: &str, bytes: Vec<u8>) -> String {
        self.push_with_grants(file_name, bytes, &[])
    }

    /// Pushes and approves a component with grant flags; returns its `name@major`
    /// reference.
    fn push_with_grants(&self, file_name: &str, bytes: Vec<u8>, grants: &[&str]) -> String {
        let path = self.file(file_name, bytes);
        let mut args = vec!["plugin", "push", path_str(&path), "--approve"];
        args.extend(grants);
        let plugin = self.json(&args);
        assert_eq!(plugin["status"], "approved", "{plugin}");
        let version = plugin["version"].as_str().unwrap();
        let major = version.split('.').next().unwrap();
        format!("{}@{major}", plugin["name"].as_str().unwrap())
    }

    /// Applies a definition from a file.
    fn apply(&self, definition: &Value) -> String {
        let name = definition["name"].as_str().unwrap();
        let path = self.file(&format!("{name}.json"), definition.to_string());
        self.ok(&["workflow", "apply", path_str(&path)])
    }

    /// The job's JSON once `done` holds for it, failing after [`JOB_TIMEOUT`].
    fn job_when(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + JOB_TIMEOUT;
        loop {
            let job = self.json(&["job", "show", id]);
            if done(&job) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {job}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Waits for `child` to exit, killing it and failing after [`JOB_TIMEOUT`].
fn wait_with_deadline(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            _ = child.kill();
            panic!("weft did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn push_apply_and_follow_a_job_to_success() {
    let setup = Setup::start();
    let echo = setup.push("echo.wasm", plugin_bytes("echo"));
    assert_eq!(echo, "echo@0");
    let applied = setup.apply(&json!({
        "name": "hello", "version": 1,
        "input": {"required": ["who"]},
        "steps": [{"id": "greet", "plugin": echo, "input": {"greeting": "hello, ${workflow.input.who}"}}],
        "output": "${steps.greet.output.greeting}"
    }));
    assert!(
        applied.contains("workflow hello version 1 created"),
        "{applied}"
    );

    let stdout = setup.ok(&[
        "job",
        "start",
        "hello",
        "--input",
        r#"{"who": "ops"}"#,
        "--follow",
    ]);
    assert!(stdout.contains("succeeded"), "{stdout}");
    assert!(stdout.contains("hello, ops"), "{stdout}");

    let job = setup.json(&[
        "job",
        "start",
        "hello",
        "--input",
        r#"{"who": "dev"}"#,
        "--follow",
    ]);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["output"], "hello, dev", "{job}");
}

#[test]
fn pushing_and_applying_again_changes_nothing() {
    let setup = Setup::start();
    let echo = setup.push("echo.wasm", plugin_bytes("echo"));
    assert_eq!(setup.push("echo.wasm", plugin_bytes("echo")), echo);
    let definition = json!({
        "name": "again", "version": 1,
        "steps": [{"id": "a", "plugin": echo, "input": {}}]
    });
    setup.apply(&definition);
    let second = setup.apply(&definition);
    assert!(second.contains("unchanged"), "{second}");
}

#[test]
fn a_failing_job_followed_exits_non_zero_with_the_step_error() {
    let setup = Setup::start();
    let fail = setup.push("fail.wasm", fixture_bytes("fail"));
    setup.apply(&json!({
        "name": "doomed", "version": 1,
        "steps": [{"id": "boom", "plugin": fail,
                   "input": {"code": "disk-on-fire", "message": "the disk is on fire"}}]
    }));
    let output = setup.run(&["job", "start", "doomed", "--follow"]);
    assert_eq!(
        output.status.code(),
        Some(EXIT_JOB_FAILED),
        "{}",
        describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("failed"), "{stdout}");
    assert!(stdout.contains("the disk is on fire"), "{stdout}");
}

#[test]
fn cancelling_a_running_job_stops_it_and_ends_its_followers() {
    let setup = Setup::start();
    // Fuel and time enough to spin for minutes: only the cancellation can stop it in time.
    let spin = setup.push_with_grants(
        "spin.wasm",
        fixture_bytes("spin"),
        &["--fuel", "1000000000000", "--deadline-ms", "600000"],
    );
    setup.apply(&json!({
        "name": "forever", "version": 1,
        "steps": [{"id": "spin", "plugin": spin, "input": {}, "timeout_ms": 600_000,
                   "fuel": 1_000_000_000_000_u64}]
    }));
    let started = setup.json(&["job", "start", "forever"]);
    let id = started["id"].as_str().unwrap().to_owned();
    setup.job_when(&id, "the step to run", |job| {
        job["steps"][0]["status"] == "running"
    });
    let mut follower = setup
        .command(&["job", "events", &id, "--follow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let stdout = setup.ok(&["job", "cancel", &id, "--reason", "changed my mind"]);
    assert!(stdout.contains(&id), "{stdout}");
    let job = setup.job_when(&id, "the job to be cancelled", |job| {
        job["status"] == "cancelled"
    });
    assert_ne!(job["steps"][0]["status"], "running", "{job}");
    assert_eq!(
        wait_with_deadline(&mut follower).code(),
        Some(EXIT_JOB_FAILED)
    );
}

#[test]
fn logs_show_what_each_item_of_the_example_plugin_logged() {
    let setup = Setup::start();
    let erase = setup.push("disk-erase.wasm", plugin_bytes("disk-erase"));
    assert_eq!(erase, "disk-erase@0");
    setup.apply(&json!({
        "name": "erase", "version": 1,
        "steps": [{"id": "erase", "plugin": erase, "for_each": "${workflow.input.machines}",
                   "concurrency": 2, "max_failures": 1,
                   "input": {"machine": "${item.name}", "site": "${item.site}"}}],
        "output": {"erased": "${steps.erase.output}", "failed": "${steps.erase.failed_count}"}
    }));
    let input = json!({"machines": [
        {"name": "db-ams-01", "site": "ams1"},
        {"name": "db-fail-02", "site": "ams1"},
        {"name": "web-fra-01", "site": "fra1"}
    ]});
    let job = setup.json(&[
        "job",
        "start",
        "erase",
        "--input",
        &input.to_string(),
        "--follow",
    ]);
    assert_eq!(
        job["status"], "succeeded",
        "one failure is within the budget: {job}"
    );
    assert_eq!(job["output"]["failed"], 1, "{job}");
    assert_eq!(job["output"]["erased"][0]["erased"], true, "{job}");
    assert_eq!(job["output"]["erased"][1], Value::Null, "{job}");

    let id = job["id"].as_str().unwrap();
    let logs = setup.ok(&["job", "logs", id, "erase"]);
    assert!(logs.contains("erasing db-ams-01 at ams1"), "{logs}");
    assert!(logs.contains("db-fail-02: disk 0 did not verify"), "{logs}");
    assert!(logs.contains("web-fra-01 erased"), "{logs}");
}

#[test]
fn the_example_workflows_apply() {
    let setup = Setup::start();
    for plugin in ["echo", "http", "transform", "disk-erase"] {
        setup.push(&format!("{plugin}.wasm"), plugin_bytes(plugin));
    }
    let examples = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .join("../examples/workflows");
    for name in ["decommission-device", "disk-erase", "host-maintenance"] {
        let path = examples.join(format!("{name}.json"));
        let stdout = setup.ok(&["workflow", "apply", path_str(&path)]);
        assert!(
            stdout.contains(&format!("workflow {name} version 1")),
            "{stdout}"
        );
    }
}

#[test]
fn a_bad_workflow_file_is_refused_with_its_problems() {
    let setup = Setup::start();
    let path = setup.file(
        "bad.json",
        json!({
            "name": "bad", "version": 1,
            "steps": [{"id": "a", "plugin": "echo@0", "depends_on": ["nowhere"], "colour": "red"}]
        })
        .to_string(),
    );
    let output = setup.run(&["workflow", "apply", path_str(&path)]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nowhere"), "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");

    let output = setup.run(&["workflow", "apply", "missing.json"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing.json"), "{stderr}");

    let garbage = setup.file("garbage.json", "{ not json");
    let output = setup.run(&["workflow", "apply", path_str(&garbage)]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(!output.stderr.is_empty());
}
