//! `cargo xtask bench engine`: durable steps per second, step-to-step latency, recovery time
//! and memory, against baselines measured in the same run.
//!
//! - Throughput: many concurrent jobs of `echo` steps on a sled store, as 3-step chains and
//!   as 10-wide fan-outs; durable steps per second (counting the store's background work on
//!   what the run wrote, which it puts off while commits keep coming) and the p50/p99 time
//!   from one step's durable start to the next one's, pooled over [`ROUNDS`] rounds of them
//!   (3,000 chains, or 1,000 fan-outs, started at once). Baselines: the bare sandbox cost of
//!   the same steps, and raw sled inserts of a job record's size through the same
//!   group-commit flusher. One fan-out of 1,000 machines and one of 10,000 (each listed in
//!   the job input) show whether a job's size weighs on each of its steps. These run the
//!   whole engine on one runtime.
//! - The same chains and fan-outs as the daemon runs them: attempts on a runtime of their
//!   own (half the cores' threads by default), so that busy plugins never hold up its HTTP
//!   requests. Commits, wake-ups and events then cross between the two runtimes' threads;
//!   these rows show what that costs. They measure the rounds after a first run of 3,000
//!   chains: that one, on threads and instance slots used for the first time, has a row of its
//!   own.
//! - Recovery: from opening the store to every one of 10,000 in-flight jobs resumed.
//! - Memory: resident size with 10,000 jobs waiting on retry timers (measured in a child
//!   process of its own, so earlier phases do not count).
//! - The host: the share of the machine's CPU time that the hypervisor stole (`/proc/stat`)
//!   during the latency runs and during the whole run. On a shared virtual machine, other
//!   guests' load takes the CPUs away for milliseconds at a time, and every step in flight
//!   then waits: over a few percent of it, the tail latencies say more of the host than of
//!   Weft.
//!
//! Prints a table and writes `engine.json` into `WEFT_BENCH_OUT` (default `target/bench`).
//!
//! `WEFT_BENCH_PHASES=profile` runs none of that: only rounds of 3-step chains (or of 10-wide
//! fan-outs, with `WEFT_BENCH_PROFILE_SHAPE=fan-outs`) for `WEFT_BENCH_PROFILE_SECS` (default 20),
//! on one runtime (or as the daemon runs them, with `WEFT_BENCH_PROFILE_RUNTIMES=daemon`), printing
//! each round's rate, CPU per step, step-to-step p99 and stolen CPU time, so that a profiler
//! attached to it samples the engine's steady state and nothing else, and so that many rounds show
//! how a change moves the tail.

#![allow(clippy::print_stdout)]

#[path = "common/components.rs"]
mod components;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/report.rs"]
mod report;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use components::component;
use cpu::{STOLEN_NOTE, StealMeter, process_cpu_seconds};
use report::{Row, print_table, write_json};
use serde_json::json;
use weft::engine::{Engine, EngineConfig, StartJob, StoreKv};
use weft_domain::{EventKind, JobId, SourceFormat};
use weft_sandbox::{Grants, RunRequest, Sandbox, SandboxConfig, StepLimitsOverride};
use weft_store::{PluginGrants, SledConfig, SledStore, Store};

const CHAIN_JOBS: usize = 3_000;
const FANOUT_JOBS: usize = 1_000;
/// Items of the large fan-outs, whose cost per step shows whether a job's size weighs on it.
const BIG_FANOUTS: [usize; 2] = [1_000, 10_000];
const RECOVERY_JOBS: usize = 10_000;
const TIMER_JOBS: usize = 10_000;
const WORKERS: usize = 64;
const BASELINE_WINDOW: Duration = Duration::from_secs(3);

fn sandbox(store: &Arc<dyn Store>, artifacts: &Path) -> Sandbox {
    Sandbox::new(
        SandboxConfig {
            artifact_dir: Some(artifacts.to_path_buf()),
            ..SandboxConfig::default()
        },
        Arc::new(StoreKv::new(store.clone())),
    )
    .unwrap()
}

fn open(dir: &Path) -> Arc<dyn Store> {
    // For profiling the engine without the disk: `WEFT_BENCH_STORE=memory`.
    if std::env::var("WEFT_BENCH_STORE").as_deref() == Ok("memory") {
        return Arc::new(weft_store::MemoryStore::new());
    }
    Arc::new(SledStore::open(&dir.join("db"), SledConfig::default()).unwrap())
}

async fn engine(store: Arc<dyn Store>, artifacts: &Path, workers: usize) -> Engine {
    engine_with_attempts(store, artifacts, workers, None).await
}

/// [`engine`], with attempts on `attempts` rather than on the runtime that starts it.
async fn engine_with_attempts(
    store: Arc<dyn Store>,
    artifacts: &Path,
    workers: usize,
    attempts: Option<tokio::runtime::Handle>,
) -> Engine {
    let config = EngineConfig {
        workers,
        max_unfinished_jobs: 1_000_000,
        attempts,
        ..EngineConfig::default()
    };
    Engine::start(store.clone(), sandbox(&store, artifacts), config)
        .await
        .unwrap()
}

async fn setup(engine: &Engine) {
    for bytes in [
        component("WEFT_PLUGIN_DIR", "target/plugins", "echo"),
        component("WEFT_FIXTURE_DIR", "target/test-plugins", "fail"),
    ] {
        let (record, _) = engine.add_plugin(&bytes).await.unwrap();
        engine
            .approve_plugin(&record.digest, PluginGrants::default())
            .await
            .unwrap();
    }
    let definitions = [
        json!({"name": "chain", "version": 1, "steps": [
            {"id": "a", "plugin": "echo@0", "input": {"device": "${workflow.input.device}"}},
            {"id": "b", "plugin": "echo@0", "depends_on": ["a"], "input": "${steps.a.output}"},
            {"id": "c", "plugin": "echo@0", "depends_on": ["b"], "input": "${steps.b.output}"}
        ]}),
        json!({"name": "fanout", "version": 1, "steps": [
            {"id": "all", "plugin": "echo@0", "for_each": "${workflow.input.items}",
             "concurrency": 10, "input": {"item": "${item}"}}
        ]}),
        json!({"name": "waiting", "version": 1, "steps": [
            {"id": "call", "plugin": "weft-fixture-fail@0",
             "retry": {"max_attempts": 5, "initial_interval_ms": 3600000, "multiplier": 1.0, "max_interval_ms": 3600000},
             "input": {"code": "unavailable", "message": "later", "retryable": true}}
        ]}),
    ];
    for d in definitions {
        engine
            .apply_definition(&d.to_string(), SourceFormat::Json)
            .await
            .unwrap();
    }
}

fn start_request(workflow: &str, input: serde_json::Value) -> StartJob {
    StartJob {
        workflow: workflow.parse().unwrap(),
        version: None,
        input,
        priority: 0,
        queue: "default".into(),
        idempotency_key: None,
    }
}

/// What one run of [`throughput`] measured.
struct Run {
    /// Durable steps per second.
    rate: f64,
    /// Steps run.
    steps: f64,
    /// Step-to-step gaps.
    gaps: Vec<Duration>,
    /// CPU time of the whole process per step, in microseconds: less sensitive than the rate
    /// to other load on the machine.
    cpu_us_per_step: f64,
    /// Percentage of the machine's CPU time the hypervisor stole during the run.
    stolen: Option<f64>,
}

/// Rounds of [`throughput`] behind each row of chains and fan-outs. One round of 3,000 chains
/// lasts a few tenths of a second: a stall of the host (a few milliseconds in which the
/// hypervisor runs other guests, not always counted as stolen time) then holds up every step
/// in flight at once, which is about a hundredth of the round's gaps, and alone decided the
/// p99 of some runs. The rows pool the rounds: steps over time, and every gap.
const ROUNDS: usize = 5;

/// [`ROUNDS`] runs of `run` (a [`throughput`] run), one after the other, pooled into one.
async fn rounds<F: Future<Output = Run>>(mut run: impl FnMut() -> F) -> Run {
    let mut pooled = Run {
        rate: 0.0,
        steps: 0.0,
        gaps: Vec::new(),
        cpu_us_per_step: 0.0,
        stolen: Some(0.0),
    };
    let mut seconds = 0.0;
    for _ in 0..ROUNDS {
        let round = run().await;
        seconds += round.steps / round.rate;
        pooled.steps += round.steps;
        pooled.gaps.extend(round.gaps);
        pooled.cpu_us_per_step += round.cpu_us_per_step / ROUNDS as f64;
        pooled.stolen = pooled
            .stolen
            .zip(round.stolen)
            .map(|(sum, s)| sum + s / ROUNDS as f64);
    }
    pooled.rate = pooled.steps / seconds;
    pooled
}

/// Starts `jobs` jobs at once and waits for all.
async fn throughput(
    engine: &Engine,
    workflow: &str,
    jobs: usize,
    input: serde_json::Value,
    steps_per_job: usize,
) -> Run {
    let mut events = engine.subscribe();
    let mut finished_events = engine.subscribe();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    // Best effort: a watcher that lags behind loses some samples, not the measurement.
    let watcher = tokio::spawn(async move {
        let mut last_start: HashMap<JobId, Instant> = HashMap::new();
        let mut gaps = Vec::new();
        loop {
            let event = tokio::select! {
                e = events.recv_published() => e,
                _ = &mut stopped => break,
            };
            let (published, event) = match event {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            // From one step's durable start to the next one's: the step runs, its result
            // and the next start commit and become durable. Both ends are when the engine
            // published the commit, so this watcher's own delays among thousands of busy
            // tasks do not count.
            match event.kind {
                EventKind::StepStarted { .. } => {
                    if let Some(t) = last_start.insert(event.job_id, published) {
                        gaps.push(published - t);
                    }
                }
                EventKind::JobSucceeded | EventKind::JobFailed { .. } => {
                    last_start.remove(&event.job_id);
                }
                _ => {}
            }
        }
        gaps
    });
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    let steal = StealMeter::start();
    let starts: Vec<_> = (0..jobs)
        .map(|_| {
            let engine = engine.clone();
            let input = input.clone();
            let workflow = workflow.to_owned();
            tokio::spawn(async move { engine.start_job(start_request(&workflow, input)).await })
        })
        .collect();
    let mut pending = HashSet::with_capacity(jobs);
    for s in starts {
        pending.insert(s.await.unwrap().unwrap());
    }
    // One subscriber sees every job finish. Should it lag, it can no longer tell which jobs
    // finished; the engine's count of unfinished jobs, all of them this run's, then says when
    // every one has. (Reading each pending job back from the store instead would add the
    // bench's own work to the CPU per step.) A job leaves that count just after its last
    // event is published, hence the short wait.
    let mut lagged = false;
    let all_finished = |pending: &HashSet<JobId>, lagged| {
        pending.is_empty() || lagged && engine.unfinished_count() == 0
    };
    while !all_finished(&pending, lagged) {
        let next = tokio::time::timeout(Duration::from_millis(1), finished_events.recv());
        match next.await {
            Ok(Ok(event)) if is_finish(&event.kind) => {
                pending.remove(&event.job_id);
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(_)) => lagged = true,
        }
    }
    // The store puts its background work off while commits keep coming; the rate and CPU
    // count it.
    let store = engine.store().clone();
    tokio::task::spawn_blocking(move || store.settle())
        .await
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed();
    let cpu = process_cpu_seconds() - cpu_before;
    let stolen = steal.percent();
    _ = stop.send(());
    let gaps = watcher.await.unwrap();
    let steps = (jobs * steps_per_job) as f64;
    Run {
        rate: steps / elapsed.as_secs_f64(),
        steps,
        gaps,
        cpu_us_per_step: cpu * 1e6 / steps,
        stolen,
    }
}

fn is_finish(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::JobSucceeded | EventKind::JobFailed { .. } | EventKind::JobCancelled { .. }
    )
}

/// Records a row, and prints it at once so that a long run shows its figures as it goes.
fn push(out: &mut Vec<Row>, row: Row) {
    eprintln!("{}: {:.1} {}", row.name, row.value, row.unit);
    out.push(row);
}

/// The 99th percentile of `gaps`, in milliseconds.
fn p99_ms(mut gaps: Vec<Duration>) -> f64 {
    gaps.sort();
    percentile(&gaps, 0.99).as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Bare sandbox cost: echo steps/s with `WORKERS` concurrent loops.
async fn sandbox_baseline(engine: &Engine) -> f64 {
    let plugin = engine
        .sandbox()
        .load(&component("WEFT_PLUGIN_DIR", "target/plugins", "echo"))
        .await
        .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            let sandbox = engine.sandbox().clone();
            let plugin = plugin.clone();
            tokio::spawn(async move {
                let request = RunRequest {
                    input: json!({"device": "sw-17"}).to_string(),
                    job_id: "bench".into(),
                    workflow: "bench".into(),
                    step_id: "a".into(),
                    attempt: 1,
                    limits: StepLimitsOverride::default(),
                };
                let mut n = 0u64;
                while started.elapsed() < BASELINE_WINDOW {
                    sandbox
                        .run(&plugin, &Grants::default(), &request)
                        .await
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// A list of `count` machines as an operator's job input would give them (about 60 bytes
/// each in JSON).
fn machines(count: usize) -> Vec<serde_json::Value> {
    (0..count)
        .map(|n| {
            let site = ["ams1", "fra2", "lhr3"][n % 3];
            json!({"name": format!("node-{n:05}"), "site": site, "rack": n / 40})
        })
        .collect()
}

/// Size of a 3-step chain job record, as the store writes it.
async fn job_record_bytes(engine: &Engine) -> usize {
    let id = engine
        .start_job(start_request("chain", json!({"device": "sw-17"})))
        .await
        .unwrap();
    let job = engine.wait_finished(id).await.unwrap();
    serde_json::to_vec(&job).unwrap().len()
}

/// Rounds of 3-step chains (or of 10-wide fan-outs) and nothing else; see the module
/// documentation.
async fn profile_phase(dir: &Path, attempts: Option<tokio::runtime::Handle>) {
    let seconds: u64 = std::env::var("WEFT_BENCH_PROFILE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let store = open(dir);
    let engine =
        engine_with_attempts(store.clone(), &dir.join("artifacts"), WORKERS, attempts).await;
    setup(&engine).await;
    let fan_outs = std::env::var("WEFT_BENCH_PROFILE_SHAPE").is_ok_and(|s| s == "fan-outs");
    let items: Vec<_> = (0..10).collect();
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let (shape, run) = if fan_outs {
            let input = json!({"items": items});
            (
                "fan-outs",
                throughput(&engine, "fanout", FANOUT_JOBS, input, 10).await,
            )
        } else {
            let input = json!({"device": "sw-17"});
            (
                "chains",
                throughput(&engine, "chain", CHAIN_JOBS, input, 3).await,
            )
        };
        eprintln!(
            "{shape}: {:.0} steps/s, {:.0} us CPU per step, step-to-step p99 {:.2} ms, {}",
            run.rate,
            run.cpu_us_per_step,
            p99_ms(run.gaps),
            run.stolen
                .map_or("host steal unknown".to_owned(), |s| format!(
                    "host steal {s:.1}%"
                ))
        );
    }
}

/// Returns the lower of the two baselines, for [`daemon_arrangement_phase`].
async fn main_phases(dir: &Path, out: &mut Vec<Row>) -> f64 {
    let artifacts = dir.join("artifacts");
    let store = open(dir);
    let engine = engine(store.clone(), &artifacts, WORKERS).await;
    setup(&engine).await;

    let record_bytes = job_record_bytes(&engine).await;
    let sandbox_rate = sandbox_baseline(&engine).await;
    let sled_dir = tempfile::tempdir().unwrap();
    let sled_rate = weft_store::raw_group_commit_baseline(
        &sled_dir.path().join("raw"),
        record_bytes,
        WORKERS,
        BASELINE_WINDOW,
    )
    .unwrap();
    let lower = sandbox_rate.min(sled_rate);
    eprintln!("baselines: sandbox {sandbox_rate:.0}/s, sled {sled_rate:.0}/s");

    let chains =
        rounds(|| throughput(&engine, "chain", CHAIN_JOBS, json!({"device": "sw-17"}), 3)).await;
    eprintln!("chains: {:.0} steps/s", chains.rate);
    let items: Vec<_> = (0..10).collect();
    let fans =
        rounds(|| throughput(&engine, "fanout", FANOUT_JOBS, json!({"items": items}), 10)).await;
    let mut big = Vec::new();
    for size in BIG_FANOUTS {
        let input = json!({"items": machines(size)});
        big.push((size, throughput(&engine, "fanout", 1, input, size).await));
    }
    let mut chain_gaps = chains.gaps.clone();
    chain_gaps.sort();
    // Latency without a backlog: rounds of a few concurrent chains, fewer than the workers.
    let mut light = Vec::new();
    let light_steal = StealMeter::start();
    for concurrent in [1, 4, 32] {
        let mut gaps = Vec::new();
        for _ in 0..(640 / concurrent).max(20) {
            let run = throughput(&engine, "chain", concurrent, json!({"device": "sw-17"}), 3).await;
            gaps.extend(run.gaps);
        }
        gaps.sort();
        let chains = if concurrent == 1 { "chain" } else { "chains" };
        light.push((format!("{concurrent} {chains} at a time"), gaps));
    }
    let light_stolen = light_steal.percent();

    push(
        out,
        Row {
            name: "baseline: bare sandbox echo steps/s".into(),
            value: sandbox_rate,
            unit: "steps/s",
            baseline: None,
            note: "64 concurrent loops, no engine, no store",
        },
    );
    push(
        out,
        Row {
            name: format!("baseline: raw sled group-commit writes/s ({record_bytes} B)"),
            value: sled_rate,
            unit: "writes/s",
            baseline: None,
            note: "64 writers, each waits for durability",
        },
    );
    push(
        out,
        Row {
            name: "engine: 3-step chains, durable steps/s".into(),
            value: chains.rate,
            unit: "steps/s",
            baseline: Some(lower),
            note: "ratio against the lower baseline (target >= 0.5)",
        },
    );
    push(
        out,
        Row {
            name: "engine: 10-wide fan-outs, durable steps/s".into(),
            value: fans.rate,
            unit: "steps/s",
            baseline: Some(lower),
            note: "ratio against the lower baseline",
        },
    );
    let steady = "whole process, both cores; steadier than the rate";
    let mut runs = vec![
        ("3-step chains".to_owned(), &chains, steady),
        ("10-wide fan-outs".to_owned(), &fans, steady),
    ];
    for (size, run) in &big {
        let note = "a commit writes the tasks it changed, not the fan-out";
        runs.push((format!("one fan-out over {size} machines"), run, note));
    }
    for (name, run, note) in runs {
        push(
            out,
            Row {
                name: format!("engine: CPU per durable step, {name}"),
                value: run.cpu_us_per_step,
                unit: "us",
                baseline: None,
                note,
            },
        );
    }
    let backlog = ("3000 chains at once".to_owned(), chain_gaps);
    for (load, gaps) in light.iter().chain([&backlog]) {
        for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
            push(
                out,
                Row {
                    name: format!("step-to-step latency {label}, {load}"),
                    value: percentile(gaps, p).as_secs_f64() * 1e3,
                    unit: "ms",
                    baseline: None,
                    note: match (p == 0.99, load.starts_with("3000")) {
                        (true, _) => "target < 2 ms",
                        (false, false) => "durable start of a step -> durable start of the next",
                        (false, true) => "the same, with a backlog of ready steps",
                    },
                },
            );
        }
    }
    push_stolen(out, "1, 4 and 32 chains at a time", light_stolen);
    push_stolen(out, "3000 chains at once", chains.stolen);
    lower
}

/// The CPU time the hypervisor stole during a run, next to the latency it inflates.
fn push_stolen(out: &mut Vec<Row>, run_name: &str, stolen: Option<f64>) {
    if let Some(stolen) = stolen {
        push(
            out,
            Row {
                name: format!("host: CPU time stolen by the hypervisor, {run_name}"),
                value: stolen,
                unit: "%",
                baseline: None,
                note: STOLEN_NOTE,
            },
        );
    }
}

/// Chains and fan-outs again, with attempts on a runtime of their own, as `weft serve` runs
/// them (so that plugins at work never delay its HTTP requests). The phases above run the
/// whole engine on one runtime, where commits, wake-ups and events stay on the same threads.
/// These rows say what the daemon gets.
async fn daemon_arrangement_phase(
    dir: &Path,
    attempts: Option<tokio::runtime::Handle>,
    lower: f64,
    out: &mut Vec<Row>,
) {
    let store = open(dir);
    let engine =
        engine_with_attempts(store.clone(), &dir.join("artifacts"), WORKERS, attempts).await;
    setup(&engine).await;
    // The attempts' threads are new here, and so are the sandbox's instance slots, which the
    // phases above had used already (the sandbox baseline runs through the same engine):
    // their first use costs once per daemon. The first run is reported apart from the
    // steady state that the other rows measure.
    let first = throughput(&engine, "chain", CHAIN_JOBS, json!({"device": "sw-17"}), 3).await;
    let chains =
        rounds(|| throughput(&engine, "chain", CHAIN_JOBS, json!({"device": "sw-17"}), 3)).await;
    let items: Vec<_> = (0..10).collect();
    let fans =
        rounds(|| throughput(&engine, "fanout", FANOUT_JOBS, json!({"items": items}), 10)).await;
    let arrangement = "as the daemon runs it";
    for (name, run) in [("3-step chains", &chains), ("10-wide fan-outs", &fans)] {
        push(
            out,
            Row {
                name: format!("engine, {arrangement}: {name}, durable steps/s"),
                value: run.rate,
                unit: "steps/s",
                baseline: Some(lower),
                note: "attempts on a runtime of their own; ratio against the lower baseline",
            },
        );
        push(
            out,
            Row {
                name: format!("engine, {arrangement}: CPU per durable step, {name}"),
                value: run.cpu_us_per_step,
                unit: "us",
                baseline: None,
                note: "attempts on a runtime of their own; whole process, both cores",
            },
        );
    }
    push(
        out,
        Row {
            name: format!("engine, {arrangement}: step-to-step latency p99, 3000 chains at once"),
            value: p99_ms(chains.gaps),
            unit: "ms",
            baseline: None,
            note: "target < 2 ms",
        },
    );
    let name = format!("{arrangement}, 3000 chains at once");
    push_stolen(out, &name, chains.stolen);
    push(
        out,
        Row {
            name: format!(
                "engine, {arrangement}: step-to-step latency p99, first 3000 chains of a new engine"
            ),
            value: p99_ms(first.gaps),
            unit: "ms",
            baseline: None,
            note: "threads and instance slots used for the first time",
        },
    );
}

/// Creates `RECOVERY_JOBS` in-flight jobs, closes everything, and times a restart.
fn recovery_phase(out: &mut Vec<Row>) {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = open(dir.path());
            // No workers: every job stays in flight with its first step ready.
            let engine = engine(store, &artifacts, 0).await;
            setup(&engine).await;
            let starts: Vec<_> = (0..RECOVERY_JOBS)
                .map(|_| {
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        engine
                            .start_job(start_request("chain", json!({"device": "x"})))
                            .await
                            .unwrap()
                    })
                })
                .collect();
            for s in starts {
                s.await.unwrap();
            }
        });
        // Dropping the runtime drops the engine's tasks, and with them the store.
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let elapsed = rt.block_on(async {
        let started = Instant::now();
        let store = open(dir.path());
        let engine = engine(store, &artifacts, 0).await;
        let elapsed = started.elapsed();
        assert_eq!(engine.queue_depth(), RECOVERY_JOBS, "every job resumed");
        elapsed
    });
    push(
        out,
        Row {
            name: format!("recovery: {RECOVERY_JOBS} in-flight jobs resumed"),
            value: elapsed.as_secs_f64() * 1e3,
            unit: "ms",
            baseline: None,
            note: "open store + resume every job; target < 1000 ms",
        },
    );
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// In a child process: `TIMER_JOBS` jobs each waiting an hour for a retry.
fn memory_phase_child() {
    // Outlives the runtime, which holds the store until it is dropped.
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = open(dir.path());
        let engine = engine(store, &dir.path().join("artifacts"), WORKERS).await;
        setup(&engine).await;
        let before = resident_bytes();
        let mut events = engine.subscribe();
        let starts: Vec<_> = (0..TIMER_JOBS)
            .map(|_| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    engine
                        .start_job(start_request("waiting", json!({})))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut ids = Vec::with_capacity(TIMER_JOBS);
        for s in starts {
            ids.push(s.await.unwrap());
        }
        // Jobs whose step waits for its retry; should the subscriber lag behind, the store
        // says which are.
        let mut waiting = HashSet::with_capacity(TIMER_JOBS);
        while waiting.len() < TIMER_JOBS {
            match events.recv().await {
                Ok(event) if matches!(event.kind, EventKind::StepRetrying { .. }) => {
                    waiting.insert(event.job_id);
                }
                Ok(_) => {}
                Err(_) => waiting.extend(ids.iter().copied().filter(|id| {
                    let job = engine.job(*id).unwrap().unwrap();
                    job.next_retry_at().is_some()
                })),
            }
        }
        println!("RESULT {} {}", resident_bytes(), before);
    });
    drop(rt);
}

fn memory_phase(out: &mut Vec<Row>) {
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("WEFT_BENCH_PHASE", "memory")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&child.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "memory phase failed: {}",
                String::from_utf8_lossy(&child.stderr)
            )
        });
    let mut numbers = line.split(' ').map(|n| n.parse::<f64>().unwrap());
    let (after, before) = (numbers.next().unwrap(), numbers.next().unwrap());
    push(
        out,
        Row {
            name: format!("memory: resident with {TIMER_JOBS} jobs on retry timers"),
            value: after / 1048576.0,
            unit: "MiB",
            baseline: Some(before / 1048576.0),
            note: "baseline: the same process before the jobs; target < 200 MiB",
        },
    );
}

/// Runs a phase on the engine's runtime (two worker threads, one per core), given a fresh
/// directory for its database, and with `own_attempts` a runtime for attempts beside it,
/// the daemon's own ([`weft::daemon::attempt_runtime`], with the daemon's default number of
/// threads), whose handle the phase gets. The directory outlives the runtimes, whose tasks
/// hold the store until they are dropped: the store's last writes need it. The phase runs
/// as a task on the runtime's workers, as the daemon's own watchers do: run on the thread
/// that blocks on the runtime, it would be woken from sleep by every commit it watches, and
/// the engine would pay for those wake-ups.
fn on_engine_runtime<T, F>(
    own_attempts: bool,
    phase: impl FnOnce(PathBuf, Option<tokio::runtime::Handle>) -> F,
) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let attempts = own_attempts
        .then(|| weft::daemon::attempt_runtime(weft::daemon::default_attempt_threads()).unwrap());
    let runtime = bench_runtime();
    let handle = attempts.as_ref().map(|a| a.handle().clone());
    let task = runtime.spawn(phase(dir.path().to_path_buf(), handle));
    let result = runtime.block_on(task).unwrap();
    drop(runtime);
    drop(attempts);
    result
}

/// The runtime a phase runs on: two threads, as on the machine the targets are set for.
fn bench_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    if std::env::var("WEFT_BENCH_PHASE").as_deref() == Ok("memory") {
        memory_phase_child();
        return;
    }
    // `WEFT_BENCH_PHASES=throughput,recovery,memory` (the default: all) picks phases.
    let phases = std::env::var("WEFT_BENCH_PHASES")
        .unwrap_or_else(|_| "throughput,recovery,memory".to_owned());
    let wanted = |phase: &str| phases.split(',').any(|p| p.trim() == phase);
    let mut rows = Vec::new();
    let steal = StealMeter::start();
    if wanted("profile") {
        let own_attempts =
            std::env::var("WEFT_BENCH_PROFILE_RUNTIMES").is_ok_and(|s| s == "daemon");
        on_engine_runtime(own_attempts, |dir, attempts| async move {
            profile_phase(&dir, attempts).await;
        });
        return;
    }
    if wanted("throughput") {
        let (main_rows, lower) = on_engine_runtime(false, |dir, _| async move {
            let mut rows = Vec::new();
            let lower = main_phases(&dir, &mut rows).await;
            (rows, lower)
        });
        rows.extend(main_rows);
        rows.extend(on_engine_runtime(true, move |dir, attempts| async move {
            let mut rows = Vec::new();
            daemon_arrangement_phase(&dir, attempts, lower, &mut rows).await;
            rows
        }));
    }
    if wanted("recovery") {
        recovery_phase(&mut rows);
    }
    if wanted("memory") {
        memory_phase(&mut rows);
    }
    push_stolen(&mut rows, "whole run", steal.percent());
    print_table(&rows);
    write_json(&rows, "engine");
}
