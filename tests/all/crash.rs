//! The durability promise, tested on the real binary: jobs whose steps report every
//! execution to a counter run while the daemon is SIGKILLed at random moments and restarted.
//! At the end every job has finished, no job or result was lost, and no step whose result
//! was committed ran again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::daemon::{Daemon, eventually, json, request};
use crate::support::fixture_bytes;

const JOBS: usize = 30;
const KILLS: usize = 5;

/// Executions reported by the `record` fixture: (job, step) -> attempt numbers, in order.
type Executions = Arc<Mutex<HashMap<(String, String), Vec<u64>>>>;

/// A loopback server that records every report and answers 200.
async fn counter() -> (String, Executions) {
    let executions: Executions = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = executions.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            let report: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                            let key = (
                                report["job"].as_str().unwrap_or_default().to_owned(),
                                report["step"].as_str().unwrap_or_default().to_owned(),
                            );
                            let attempt = report["attempt"].as_u64().unwrap_or(0);
                            seen.lock().unwrap().entry(key).or_default().push(attempt);
                            let reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                            _ = socket.write_all(reply.as_bytes()).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, executions)
}

fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes) % n
}

async fn set_up(daemon: &Daemon, counter: &str) {
    let upload = request(
        &daemon.url,
        "POST",
        "/api/v1/plugins",
        "application/wasm",
        &fixture_bytes("record"),
    )
    .await
    .unwrap();
    assert!(upload.status == 201 || upload.status == 200, "{upload:?}");
    let name = upload.body["name"].as_str().unwrap().to_owned();
    let version = upload.body["version"].as_str().unwrap().to_owned();
    let approve = json(
        &daemon.url,
        "POST",
        &format!("/api/v1/plugins/{name}/{version}/approve"),
        &json!({"http_hosts": [counter]}),
    )
    .await;
    assert_eq!(approve.status, 200, "{approve:?}");
    let url = format!("http://{counter}/executions");
    let workflow = json!({
        "name": "crashy", "version": 1,
        "steps": [
            {"id": "a", "plugin": format!("{name}@0"), "input": {"url": url, "value": 1}},
            {"id": "b", "plugin": format!("{name}@0"), "depends_on": ["a"], "input": {"url": url, "value": "${steps.a.output.value}"}},
            {"id": "fan", "plugin": format!("{name}@0"), "depends_on": ["b"],
             "for_each": "${workflow.input.items}", "concurrency": 2,
             "input": {"url": url, "value": "${item}"}},
            {"id": "c", "plugin": format!("{name}@0"), "depends_on": ["fan"], "input": {"url": url, "value": "${steps.fan.output}"}}
        ],
        "output": "${steps.c.output.value}"
    });
    let applied = json(&daemon.url, "POST", "/api/v1/workflows", &workflow).await;
    assert_eq!(applied.status, 201, "{applied:?}");
}

/// Items job `i` fans out over: most fan-outs are small; every third is wide enough that the
/// store writes its tasks out of the job's head into records of their own.
fn width(i: usize) -> usize {
    if i.is_multiple_of(3) { 40 } else { 4 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_and_reruns_no_committed_step() {
    let (counter, executions) = counter().await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path());
    set_up(&daemon, &counter).await;

    let mut jobs = Vec::new();
    for i in 0..JOBS {
        let started = json(
            &daemon.url,
            "POST",
            "/api/v1/workflows/crashy/jobs",
            &json!({"input": {"items": (i..i + width(i)).collect::<Vec<_>>()}}),
        )
        .await;
        assert_eq!(started.status, 201, "{started:?}");
        jobs.push(started.body["id"].as_str().unwrap().to_owned());
    }

    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(50 + random_below(400))).await;
        daemon.kill();
        daemon = Daemon::start(dir.path());
    }

    let mut finished = BTreeMap::new();
    for id in &jobs {
        let url = daemon.url.clone();
        let job = eventually(Duration::from_secs(180), "every job to finish", || {
            let url = url.clone();
            let id = id.clone();
            async move {
                let job = json(&url, "GET", &format!("/api/v1/jobs/{id}"), &Value::Null).await;
                let state = job.body["status"].as_str().unwrap_or_default().to_owned();
                matches!(state.as_str(), "succeeded" | "failed" | "cancelled").then_some(job.body)
            }
        })
        .await;
        finished.insert(id.clone(), job);
    }

    let executions = executions.lock().unwrap();
    let runs: usize = executions.values().map(Vec::len).sum();
    let reruns = executions.values().filter(|a| a.len() > 1).count();
    eprintln!("{JOBS} jobs, {KILLS} kills: {runs} executions, {reruns} tasks ran more than once");
    // Each job has 3 steps plus its fanned-out items.
    let tasks: usize = (0..JOBS).map(|i| 3 + width(i)).sum();
    assert!(
        runs >= tasks,
        "{runs} executions for {JOBS} jobs of {tasks} tasks"
    );
    for (id, job) in &finished {
        assert_eq!(job["status"], "succeeded", "job {id}: {job}");
        // Every task's final attempt ran exactly once, and nothing ran after it.
        for (task, last_attempt) in committed_attempts(job) {
            let runs = executions
                .get(&(id.clone(), task.clone()))
                .unwrap_or_else(|| panic!("{id}/{task} never reported an execution"));
            let final_runs = runs.iter().filter(|a| **a == last_attempt).count();
            assert_eq!(
                final_runs, 1,
                "{id}/{task}: attempts {runs:?}, committed {last_attempt}"
            );
            assert!(
                runs.iter().all(|a| *a <= last_attempt),
                "{id}/{task} ran after its result was committed: {runs:?}, committed {last_attempt}"
            );
        }
    }
}

/// (task, number of its last attempt) for every task of a finished job, from the API's job
/// view: `steps[].tasks[]` with an `item` index for fanned-out steps, each with `attempts`.
fn committed_attempts(job: &Value) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for step in job["steps"].as_array().into_iter().flatten() {
        let id = step["id"].as_str().unwrap_or_default();
        for task in step["tasks"].as_array().into_iter().flatten() {
            let name = match task["item"].as_u64() {
                Some(i) => format!("{id}[{i}]"),
                None => id.to_owned(),
            };
            let last = task["attempts"]
                .as_array()
                .and_then(|a| a.last())
                .and_then(|a| a["number"].as_u64());
            if let Some(n) = last {
                out.push((name, n));
            }
        }
    }
    assert!(!out.is_empty(), "no attempts found in {job}");
    out
}
