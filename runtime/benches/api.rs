//! `cargo xtask bench api`: job starts per second over HTTP on loopback with many concurrent
//! clients, the p50/p99 latency of `POST /api/v1/workflows/{name}/jobs`, and the time from a
//! start to the first event on its SSE stream; against a bare axum handler returning the same
//! JSON, measured in the same run with the same clients. Last, the latency of one client's
//! starts while plugins that loop until their deadline keep every core busy: attempts run on
//! a runtime of their own, so busy plugins must not hold up the API.
//!
//! The daemon is the real one (sled store, sandbox, engine, auth), in this process on a
//! loopback port. Prints a table and writes `api.json` into `WEFT_BENCH_OUT`. The last row
//! is the share of the machine's CPU time that the hypervisor stole during the loads: over a
//! few percent of it, the tail latencies say more of the host than of Weft.

#![allow(clippy::print_stdout)]

#[path = "common/components.rs"]
mod components;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/report.rs"]
mod report;

use std::path::Path;
use std::time::{Duration, Instant};

use components::component;
use cpu::{STOLEN_NOTE, StealMeter, process_cpu_seconds};
use report::{Row, print_table, write_json};
use serde_json::json;
use weft::daemon::{Daemon, DaemonConfig, RawConfig};

/// Clients posting at once: enough to saturate the daemon.
const CLIENTS: usize = 32;
/// Clients posting at once for latency under a moderate load.
const FEW_CLIENTS: usize = 4;
const WINDOW: Duration = Duration::from_secs(4);
const SSE_SAMPLES: usize = 50;
const TOKEN: &str = "weft-bench-admin-token-0123456789";
/// Attempts of the `spin` fixture running while the busy latency is measured: twice the
/// cores.
const SPINNERS: usize = 4;
/// Starts timed, one after the other, while they spin.
const BUSY_SAMPLES: usize = 300;

/// Sends `request` with the bench's token; returns the JSON answer.
async fn json_answer(request: reqwest::RequestBuilder) -> serde_json::Value {
    let response = request.bearer_auth(TOKEN).send().await.unwrap();
    response.json().await.unwrap()
}

/// Uploads `bytes` and approves the plugin.
async fn push_and_approve(client: &reqwest::Client, base: &str, bytes: Vec<u8>) {
    let push = client
        .post(format!("{base}/api/v1/plugins"))
        .header("content-type", "application/wasm")
        .body(bytes);
    let pushed = json_answer(push).await;
    let (name, version) = (
        pushed["name"].as_str().unwrap(),
        pushed["version"].as_str().unwrap(),
    );
    let approve = format!("{base}/api/v1/plugins/{name}/{version}/approve");
    post_ok(client, &approve, &json!({})).await;
}

/// Posts `body` to `url` and fails unless the daemon accepts it.
async fn post_ok(client: &reqwest::Client, url: &str, body: &serde_json::Value) {
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {:?}",
        response.text().await
    );
}

/// Starts a job of `workflow`; returns its id.
async fn start(client: &reqwest::Client, base: &str, workflow: &str) -> String {
    let start = client
        .post(format!("{base}/api/v1/workflows/{workflow}/jobs"))
        .json(&json!({"input": {"n": 1}}));
    json_answer(start).await["id"].as_str().unwrap().to_owned()
}

/// Latencies (sorted) of starts of `one`, made one at a time while [`SPINNERS`] attempts of
/// `spin` run; the spinning jobs are cancelled afterwards.
async fn busy_latencies(client: &reqwest::Client, base: &str) -> Vec<Duration> {
    let mut spinning = Vec::new();
    for _ in 0..SPINNERS {
        spinning.push(start(client, base, "spin").await);
    }
    for id in &spinning {
        loop {
            let job = json_answer(client.get(format!("{base}/api/v1/jobs/{id}"))).await;
            if job["steps"][0]["status"] == "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut latencies = Vec::with_capacity(BUSY_SAMPLES);
    for _ in 0..BUSY_SAMPLES {
        let t = Instant::now();
        start(client, base, "one").await;
        latencies.push(t.elapsed());
    }
    for id in &spinning {
        post_ok(
            client,
            &format!("{base}/api/v1/jobs/{id}/cancel"),
            &json!({}),
        )
        .await;
    }
    latencies.sort();
    latencies
}

/// What `clients` clients posting to `url` for [`WINDOW`] measured.
struct Load {
    /// Requests per second.
    rate: f64,
    /// CPU time of the whole process (clients included) per request, in microseconds.
    cpu_us: f64,
    /// Latencies, sorted.
    latencies: Vec<Duration>,
}

/// `clients` clients posting `body` to `url` for [`WINDOW`], each as fast as it gets answers.
///
/// Each client is one kept-alive HTTP/1 connection driven by hyper's own client, without a
/// pool or middleware: the clients share the two cores with the daemon, so the lighter they
/// are, the more the figures say of the daemon. (Measured: with `reqwest`'s client, the
/// clients took about a sixth of the process's CPU at 32 clients, and the daemon's p99 was
/// 9% higher for it.)
async fn load(url: String, body: serde_json::Value, clients: usize) -> Load {
    let uri: hyper::Uri = url.parse().unwrap();
    let body = bytes::Bytes::from(serde_json::to_vec(&body).unwrap());
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (uri, body) = (uri.clone(), body.clone());
            tokio::spawn(async move {
                let mut connection = Connection::open(&uri).await;
                let mut latencies = Vec::new();
                while started.elapsed() < WINDOW {
                    let t = Instant::now();
                    connection.post_created(&uri, body.clone()).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    let cpu_us = (process_cpu_seconds() - cpu_before) * 1e6 / all.len() as f64;
    all.sort();
    Load {
        rate,
        cpu_us,
        latencies: all,
    }
}

/// One client of [`load`]: a kept-alive HTTP/1 connection.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    host: hyper::header::HeaderValue,
    token: hyper::header::HeaderValue,
}

impl Connection {
    /// Connects to `uri`'s host, with the daemon's socket settings.
    async fn open(uri: &hyper::Uri) -> Connection {
        let authority = uri.authority().unwrap().as_str();
        let stream = tokio::net::TcpStream::connect(authority).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(connection);
        Connection {
            sender,
            host: authority.parse().unwrap(),
            token: format!("Bearer {TOKEN}").parse().unwrap(),
        }
    }

    /// Posts `body` as JSON to `uri`, reads the whole answer, and checks that it is a 201.
    async fn post_created(&mut self, uri: &hyper::Uri, body: bytes::Bytes) {
        use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
        let request = hyper::Request::post(uri.clone())
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.token.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(body))
            .unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let status = response.status();
        let answer = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(status, 201, "{answer:?}");
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

/// A bare axum server answering every POST with the same JSON a job start returns.
async fn bare_server() -> String {
    let app = axum::Router::new().route(
        "/jobs",
        axum::routing::post(|| async {
            (
                axum::http::StatusCode::CREATED,
                axum::Json(json!({"id": "01JBENCH00000000000000000", "workflow": "one", "version": 1, "status": "running"})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The same socket settings as the daemon's.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        _ = stream.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jobs")
}

/// Median time from a job start to the first event on its SSE stream.
async fn first_event(base: &str) -> f64 {
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    for _ in 0..SSE_SAMPLES {
        let t = Instant::now();
        let id = start(&client, base, "one").await;
        let mut stream = client
            .get(format!("{base}/api/v1/jobs/{id}/events"))
            .bearer_auth(TOKEN)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        let mut seen = String::new();
        while let Some(chunk) = stream.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("data:") {
                break;
            }
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    pct(&samples, 0.5)
}

async fn measure(dir: &Path) -> Vec<Row> {
    let config = DaemonConfig::new(
        dir.to_path_buf(),
        "127.0.0.1:0",
        RawConfig::default(),
        Some(TOKEN.into()),
    )
    .unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    let base = format!("http://{}", daemon.local_addr());
    let client = reqwest::Client::new();
    let echo = component("WEFT_PLUGIN_DIR", "target/plugins", "echo");
    push_and_approve(&client, &base, echo).await;
    let spin = component("WEFT_FIXTURE_DIR", "target/test-plugins", "spin");
    push_and_approve(&client, &base, spin).await;
    let workflows = format!("{base}/api/v1/workflows");
    let one = json!({
        "name": "one", "version": 1,
        "steps": [{"id": "a", "plugin": "echo@0", "input": "${workflow.input}"}]
    });
    post_ok(&client, &workflows, &one).await;
    // Loops until its deadline or its cancellation, whichever comes first.
    let spinning = json!({
        "name": "spin", "version": 1,
        "steps": [{"id": "spin", "plugin": "weft-fixture-spin@0", "timeout_ms": 60_000,
                   "fuel": weft_domain::definition::MAX_FUEL, "input": {}}]
    });
    post_ok(&client, &workflows, &spinning).await;

    let bare_url = bare_server().await;
    let jobs_url = format!("{base}/api/v1/workflows/one/jobs");
    let body = json!({"input": {"n": 1}});
    let steal = StealMeter::start();
    let bare = load(bare_url.clone(), body.clone(), CLIENTS).await;
    let api = load(jobs_url.clone(), body.clone(), CLIENTS).await;
    let bare_few = load(bare_url, body.clone(), FEW_CLIENTS).await;
    let api_few = load(jobs_url, body, FEW_CLIENTS).await;
    let sse = first_event(&base).await;
    let busy = busy_latencies(&client, &base).await;
    let stolen = steal.percent();
    _ = daemon.shutdown().await;
    let row = |name: &str, value: f64, unit, baseline, note| Row {
        name: name.to_owned(),
        value,
        unit,
        baseline,
        note,
    };
    let mut rows = vec![
        row(
            "job starts/s over HTTP",
            api.rate,
            "starts/s",
            Some(bare.rate),
            "baseline: bare axum handler, same clients",
        ),
        row(
            "CPU per job start, 32 clients",
            api.cpu_us,
            "us",
            Some(bare.cpu_us),
            "whole process: clients, API, and running the job's step",
        ),
        row(
            "POST .../jobs latency p50, 32 clients",
            pct(&api.latencies, 0.5),
            "ms",
            Some(pct(&bare.latencies, 0.5)),
            "saturated: latency is clients / throughput",
        ),
        row(
            "POST .../jobs latency p99, 32 clients",
            pct(&api.latencies, 0.99),
            "ms",
            Some(pct(&bare.latencies, 0.99)),
            "target < 5 ms",
        ),
        row(
            "job starts/s over HTTP, 4 clients",
            api_few.rate,
            "starts/s",
            None,
            "the load of the two rows below",
        ),
        row(
            "POST .../jobs latency p50, 4 clients",
            pct(&api_few.latencies, 0.5),
            "ms",
            Some(pct(&bare_few.latencies, 0.5)),
            "below saturation",
        ),
        row(
            "POST .../jobs latency p99, 4 clients",
            pct(&api_few.latencies, 0.99),
            "ms",
            Some(pct(&bare_few.latencies, 0.99)),
            "target < 5 ms",
        ),
        row(
            "start -> first SSE event (median)",
            sse,
            "ms",
            None,
            "POST, then GET events as text/event-stream",
        ),
        row(
            "POST .../jobs latency p50, 1 client, 4 plugins spinning",
            pct(&busy, 0.5),
            "ms",
            None,
            "one start at a time while 4 attempts loop on 2 cores",
        ),
        row(
            "POST .../jobs latency p99, 1 client, 4 plugins spinning",
            pct(&busy, 0.99),
            "ms",
            None,
            "target < 5 ms",
        ),
    ];
    if let Some(stolen) = stolen {
        rows.push(row(
            "host: CPU time stolen by the hypervisor, during the loads",
            stolen,
            "%",
            None,
            STOLEN_NOTE,
        ));
    }
    rows
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The daemon's directory outlives the runtime, whose tasks hold the store until it is
    // dropped: the store's last writes need it.
    let dir = tempfile::tempdir().unwrap();
    let rows = rt.block_on(measure(dir.path()));
    drop(rt);
    print_table(&rows);
    write_json(&rows, "api");
}
