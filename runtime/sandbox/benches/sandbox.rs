//! `cargo xtask bench sandbox`: what the sandbox costs, against baselines measured in the
//! same run.
//!
//! - Cold compile of a plugin vs loading its cached artifact.
//! - A fresh sandboxed `echo` step (instantiate, run, drop): median and p99, and steps per
//!   second on 1 and 2 threads; against doing the same work natively (parse the JSON input
//!   and serialize it again), which is what `echo` does inside the sandbox.
//! - Fuel metering on a CPU-bound plugin (`burn`): the same run with and without metering.
//!
//! Prints a table and writes `sandbox.json` into `WEFT_BENCH_OUT` (default `target/bench`).

#![allow(clippy::print_stdout)]

#[path = "../../benches/common/report.rs"]
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use report::{Row, print_table, write_json};
use weft_sandbox::{
    Grants, MemoryKv, Plugin, RunRequest, Sandbox, SandboxConfig, StepLimitsOverride,
};

const ECHO_INPUT: &str =
    r#"{"device_id":"sw-ams-17","site":"ams","ports":[1,2,3,4],"reason":"decommission"}"#;
const SEQUENTIAL_STEPS: usize = 20_000;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(3);
const BURN_ITERATIONS: u64 = 20_000_000;

fn component(var: &str, default: &str, name: &str) -> Vec<u8> {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(
            std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
        )
        .join("../..")
        .join(default)
    });
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask bench sandbox`", path.display()))
}

fn sandbox(config: SandboxConfig) -> Sandbox {
    Sandbox::new(config, Arc::new(MemoryKv::default())).expect("sandbox")
}

fn request(input: &str) -> RunRequest {
    RunRequest {
        input: input.to_owned(),
        job_id: "bench".into(),
        workflow: "bench".into(),
        step_id: "step".into(),
        attempt: 1,
        limits: StepLimitsOverride::default(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(measure());
    print_table(&rows);
    write_json(&rows, "sandbox");
}

async fn measure() -> Vec<Row> {
    let mut rows = Vec::new();
    rows.extend(compile_vs_cached().await);
    rows.extend(echo_steps().await);
    rows.extend(fuel_overhead().await);
    rows
}

async fn compile_vs_cached() -> Vec<Row> {
    let bytes = component("WEFT_PLUGIN_DIR", "target/plugins", "transform");
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let config = SandboxConfig {
            artifact_dir: Some(dir.path().to_path_buf()),
            ..SandboxConfig::default()
        };
        let start = Instant::now();
        sandbox(config.clone()).load(&bytes).await.unwrap();
        cold.push(start.elapsed());
        let warm = sandbox(config);
        for _ in 0..10 {
            let start = Instant::now();
            warm.load(&bytes).await.unwrap();
            cached.push(start.elapsed());
        }
    }
    cold.sort();
    cached.sort();
    let cold = percentile(&cold, 0.5);
    let cached = percentile(&cached, 0.5);
    vec![
        Row {
            name: "load transform: cold compile (median)".into(),
            value: cold.as_secs_f64() * 1e3,
            unit: "ms",
            baseline: None,
            note: "validate + compile + write artifact + describe",
        },
        Row {
            name: "load transform: cached artifact (median)".into(),
            value: cached.as_secs_f64() * 1e3,
            unit: "ms",
            baseline: Some(cold.as_secs_f64() * 1e3),
            note: "verify + deserialize + describe; ratio = cold / cached",
        },
    ]
}

async fn echo_steps() -> Vec<Row> {
    let sandbox = sandbox(SandboxConfig::default());
    let echo = sandbox
        .load(&component("WEFT_PLUGIN_DIR", "target/plugins", "echo"))
        .await
        .unwrap();
    let req = request(ECHO_INPUT);
    let grants = Grants::default();
    for _ in 0..1000 {
        sandbox.run(&echo, &grants, &req).await.unwrap();
    }
    let mut times = Vec::with_capacity(SEQUENTIAL_STEPS);
    for _ in 0..SEQUENTIAL_STEPS {
        let start = Instant::now();
        let report = sandbox.run(&echo, &grants, &req).await.unwrap();
        times.push(start.elapsed());
        assert!(report.outcome.is_success());
    }
    times.sort();
    let native = native_echo_median();
    let one = throughput(&sandbox, &echo, 1);
    let two = throughput(&sandbox, &echo, 2);
    let native_one = native_throughput(1);
    let native_two = native_throughput(2);
    vec![
        Row {
            name: "echo step, fresh instance (median)".into(),
            value: micros(percentile(&times, 0.5)),
            unit: "µs",
            baseline: Some(micros(native)),
            note: "baseline: the same JSON parse + serialize natively",
        },
        Row {
            name: "echo step, fresh instance (p99)".into(),
            value: micros(percentile(&times, 0.99)),
            unit: "µs",
            baseline: Some(micros(native)),
            note: "",
        },
        Row {
            name: "echo steps/s, 1 thread".into(),
            value: one,
            unit: "steps/s",
            baseline: Some(native_one),
            note: "baseline: native calls/s",
        },
        Row {
            name: "echo steps/s, 2 threads".into(),
            value: two,
            unit: "steps/s",
            baseline: Some(native_two),
            note: "scaling = 2 threads / 1 thread",
        },
    ]
}

fn native_echo(input: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(input).unwrap();
    serde_json::to_string(&value).unwrap()
}

fn native_echo_median() -> Duration {
    let mut times: Vec<Duration> = (0..SEQUENTIAL_STEPS)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(native_echo(std::hint::black_box(ECHO_INPUT)));
            start.elapsed()
        })
        .collect();
    times.sort();
    percentile(&times, 0.5)
}

/// Steps per second with `threads` threads, each running steps one after another on its own
/// single-threaded runtime.
fn throughput(sandbox: &Sandbox, plugin: &Plugin, threads: usize) -> f64 {
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let sandbox = sandbox.clone();
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let req = request(ECHO_INPUT);
                    let grants = Grants::default();
                    let start = Instant::now();
                    let mut steps = 0u64;
                    while start.elapsed() < THROUGHPUT_WINDOW {
                        sandbox.run(&plugin, &grants, &req).await.unwrap();
                        steps += 1;
                    }
                    steps as f64 / start.elapsed().as_secs_f64()
                })
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

fn native_throughput(threads: usize) -> f64 {
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(|| {
                let start = Instant::now();
                let mut calls = 0u64;
                while start.elapsed() < THROUGHPUT_WINDOW {
                    for _ in 0..1000 {
                        std::hint::black_box(native_echo(std::hint::black_box(ECHO_INPUT)));
                    }
                    calls += 1000;
                }
                calls as f64 / start.elapsed().as_secs_f64()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

async fn fuel_overhead() -> Vec<Row> {
    let bytes = component("WEFT_FIXTURE_DIR", "target/test-plugins", "burn");
    let input = format!("{{\"iterations\": {BURN_ITERATIONS}}}");
    let mut medians = Vec::new();
    for meter_fuel in [false, true] {
        let sandbox = sandbox(SandboxConfig {
            meter_fuel,
            ..SandboxConfig::default()
        });
        let burn = sandbox.load(&bytes).await.unwrap();
        let mut times = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let report = sandbox
                .run(&burn, &Grants::default(), &request(&input))
                .await
                .unwrap();
            times.push(start.elapsed());
            assert!(report.outcome.is_success(), "{:?}", report.outcome);
        }
        times.sort();
        medians.push(percentile(&times, 0.5));
    }
    vec![Row {
        name: "burn (CPU-bound), fuel metered (median)".into(),
        value: medians[1].as_secs_f64() * 1e3,
        unit: "ms",
        baseline: Some(medians[0].as_secs_f64() * 1e3),
        note: "baseline: same engine settings without fuel metering",
    }]
}
