//! The command line: argument parsing, and each command's user-facing output.
//!
//! - Without a daemon ([`local`]): `weft run-plugin`.
//! - The daemon ([`serve`]): `weft serve`.
//! - Clients of a daemon's API ([`client`]): `weft plugin`, `weft workflow`, `weft job`,
//!   `weft token`, which take `--server` (`WEFT_SERVER`), `--token` (`WEFT_TOKEN`) and
//!   `--output text|json`.
//!
//! [`main`] is the one place that turns an outcome into an exit code: 0 on success, 1 on an
//! error, 2 for bad usage (and, for `run-plugin`, a plugin that failed), 3 when a followed job
//! did not succeed.

#![allow(
    clippy::print_stdout,
    reason = "the CLI's output is its user interface"
)]

mod client;
mod follow;
mod job;
mod local;
mod output;
mod plugin;
mod serve;
mod token;
mod workflow;

use anyhow::Result;
use clap::{Parser, Subcommand};

use client::Connection;

/// Exit code of a followed job that failed or was cancelled.
pub const EXIT_JOB_FAILED: i32 = 3;

/// Weft: a durable workflow engine whose steps are sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "weft", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

/// A client command group: where the daemon is, and the command.
#[derive(Debug, clap::Args)]
struct Remote<C: Subcommand> {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: C,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: the engine and its HTTP API.
    Serve(serve::ServeArgs),
    /// Upload, list, approve and disable plugins.
    Plugin(Remote<plugin::PluginCommand>),
    /// Apply and read workflow definitions.
    Workflow(Remote<workflow::WorkflowCommand>),
    /// Start, watch, cancel and inspect jobs.
    Job(Remote<job::JobCommand>),
    /// Create, list and revoke API tokens (admin).
    Token(Remote<token::TokenCommand>),
    /// Run one sandboxed attempt of a plugin and print the attempt report as JSON.
    RunPlugin(local::RunPluginArgs),
}

/// Log filter when `RUST_LOG` is not set: the daemon says what it does, other commands only
/// warn.
fn default_log_filter(command: &Command) -> &'static str {
    match command {
        Command::Serve(_) => "warn,weft=info",
        _ => "warn",
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_log_filter(&args.command).into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft: {e:#}");
            1
        }
    }
}

async fn run(args: Args) -> Result<i32> {
    match args.command {
        Command::Serve(serve) => serve::run(serve).await,
        Command::Plugin(remote) => {
            let client = remote.connection.client()?;
            plugin::run(&client, remote.connection.output, remote.command).await
        }
        Command::Workflow(remote) => {
            let client = remote.connection.client()?;
            workflow::run(&client, remote.connection.output, remote.command).await
        }
        Command::Job(remote) => {
            let client = remote.connection.client()?;
            job::run(&client, remote.connection.output, remote.command).await
        }
        Command::Token(remote) => {
            let client = remote.connection.client()?;
            token::run(&client, remote.connection.output, remote.command).await
        }
        Command::RunPlugin(args) => local::run_plugin(args).await,
    }
}
