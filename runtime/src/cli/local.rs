//! The command that needs no daemon: `weft run-plugin` runs one sandboxed attempt of a plugin,
//! the way a plugin author tries one.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use weft_sandbox::{
    Grants, HostPattern, MemoryKv, RunRequest, Sandbox, SandboxConfig, StepLimitsOverride,
};

/// Arguments of `weft run-plugin`.
#[derive(Debug, clap::Args)]
pub struct RunPluginArgs {
    /// The component to run.
    file: PathBuf,
    /// Input document: JSON text, or `@path` to read it from a file.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Grant outbound HTTP to this host (`host`, `host:port` or `*.domain`); repeatable.
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,
    /// Grant the key-value store (in memory for this run).
    #[arg(long)]
    kv: bool,
    /// Fuel budget.
    #[arg(long)]
    fuel: Option<u64>,
    /// Wall-clock deadline in milliseconds.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Linear memory limit in bytes.
    #[arg(long)]
    memory_bytes: Option<usize>,
}

/// An input document given as JSON text or `@path`, checked to be JSON.
pub fn read_input(input: &str) -> Result<String> {
    let text = match input.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => input.to_owned(),
    };
    serde_json::from_str::<serde_json::Value>(&text).context("--input is not a JSON document")?;
    Ok(text)
}

fn new_sandbox() -> Result<Sandbox> {
    Ok(Sandbox::new(
        SandboxConfig::default(),
        Arc::new(MemoryKv::default()),
    )?)
}

fn request(input: String, step_id: &str) -> RunRequest {
    RunRequest {
        input,
        job_id: "local".into(),
        workflow: "local".into(),
        step_id: step_id.into(),
        attempt: 1,
        limits: StepLimitsOverride::default(),
    }
}

/// Runs `weft run-plugin`.
pub async fn run_plugin(args: RunPluginArgs) -> Result<i32> {
    let input = read_input(&args.input)?;
    let http_hosts = args
        .allow_hosts
        .iter()
        .map(|h| h.parse::<HostPattern>())
        .collect::<Result<Vec<_>, _>>()
        .context("--allow-host")?;
    let grants = Grants {
        http_hosts,
        kv: args.kv,
        limits: StepLimitsOverride::default(),
    };
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let sandbox = new_sandbox()?;
    let plugin = sandbox
        .load(&bytes)
        .await
        .with_context(|| format!("loading {}", args.file.display()))?;
    let mut req = request(input, "run");
    req.limits = StepLimitsOverride {
        fuel: args.fuel,
        deadline_ms: args.deadline_ms,
        memory_bytes: args.memory_bytes,
        ..Default::default()
    };
    let report = sandbox.run(&plugin, &grants, &req).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.outcome.is_success() { 0 } else { 2 })
}
