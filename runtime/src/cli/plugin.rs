//! `weft plugin push|ls|show|approve|disable`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use weft::api::types::{Grants, PluginList, PluginStatusView, PluginView};

use super::client::Client;
use super::output::{Output, format_time, print_json, print_table};

/// `weft plugin` commands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Upload a component (any toolchain's); with --approve, approve it too.
    Push(PushArgs),
    /// List every plugin build.
    Ls,
    /// Show every build of a plugin, or one build.
    Show {
        /// The plugin's name.
        name: String,
        /// One version.
        version: Option<String>,
    },
    /// Approve a build with exactly these grants (replacing earlier ones).
    Approve {
        /// The plugin's name.
        name: String,
        /// The version.
        version: String,
        #[command(flatten)]
        grants: GrantArgs,
    },
    /// Disable a build: steps that run it wait until it is approved again.
    Disable {
        /// The plugin's name.
        name: String,
        /// The version.
        version: String,
    },
}

/// Arguments of `weft plugin push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// Approve the build after uploading it, with the grants below.
    #[arg(long)]
    approve: bool,
    #[command(flatten)]
    grants: GrantArgs,
}

/// Capabilities and limits to grant.
#[derive(Debug, clap::Args)]
pub struct GrantArgs {
    /// Allow outbound HTTP to this host (`host`, `host:port` or `*.domain`); repeatable.
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,
    /// Allow the key-value store.
    #[arg(long)]
    kv: bool,
    /// Fuel of one attempt.
    #[arg(long)]
    fuel: Option<u64>,
    /// Deadline of one attempt, in milliseconds.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Memory of one attempt, in bytes.
    #[arg(long)]
    memory_bytes: Option<u64>,
}

impl GrantArgs {
    fn grants(&self) -> Grants {
        Grants {
            http_hosts: self.allow_hosts.clone(),
            kv: self.kv,
            fuel: self.fuel,
            deadline_ms: self.deadline_ms,
            memory_bytes: self.memory_bytes,
        }
    }
}

fn status(status: PluginStatusView) -> &'static str {
    match status {
        PluginStatusView::Pending => "pending",
        PluginStatusView::Approved => "approved",
        PluginStatusView::Disabled => "disabled",
    }
}

fn hosts(hosts: &[String]) -> String {
    if hosts.is_empty() {
        "-".to_owned()
    } else {
        hosts.join(",")
    }
}

fn print_plugins(plugins: &[PluginView]) {
    let rows: Vec<Vec<String>> = plugins
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.clone(),
                status(p.status).to_owned(),
                hosts(&p.grants.http_hosts),
                if p.grants.kv { "yes" } else { "no" }.to_owned(),
                p.digest.chars().take(19).collect(),
                format_time(p.uploaded_at),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME", "VERSION", "STATUS", "HOSTS", "KV", "DIGEST", "UPLOADED",
        ],
        &rows,
    );
}

fn print_plugin(p: &PluginView) {
    println!("{} {} ({})", p.name, p.version, status(p.status));
    println!("  digest:      {}", p.digest);
    if !p.description.is_empty() {
        println!("  description: {}", p.description);
    }
    println!(
        "  requests:    hosts {}, kv {}",
        hosts(&p.requested.http_hosts),
        if p.requested.kv { "yes" } else { "no" }
    );
    println!(
        "  granted:     hosts {}, kv {}",
        hosts(&p.grants.http_hosts),
        if p.grants.kv { "yes" } else { "no" }
    );
}

fn build_path(name: &str, version: &str) -> String {
    format!("/api/v1/plugins/{name}/{version}")
}

/// Runs a `weft plugin` command.
pub async fn run(client: &Client, output: Output, command: PluginCommand) -> Result<i32> {
    match command {
        PluginCommand::Push(args) => {
            let bytes = std::fs::read(&args.file)
                .with_context(|| format!("reading {}", args.file.display()))?;
            let mut plugin: PluginView = client
                .post_bytes("/api/v1/plugins", "application/wasm", bytes)
                .await?;
            if args.approve {
                let path = format!("{}/approve", build_path(&plugin.name, &plugin.version));
                plugin = client.post(&path, &args.grants.grants()).await?;
            }
            match output {
                Output::Json => print_json(&plugin),
                Output::Text => print_plugin(&plugin),
            }
        }
        PluginCommand::Ls => {
            let list: PluginList = client.get("/api/v1/plugins", &[]).await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => print_plugins(&list.plugins),
            }
        }
        PluginCommand::Show { name, version } => {
            let plugins = match version {
                Some(version) => vec![client.get(&build_path(&name, &version), &[]).await?],
                None => {
                    let list: PluginList =
                        client.get(&format!("/api/v1/plugins/{name}"), &[]).await?;
                    list.plugins
                }
            };
            match output {
                Output::Json => print_json(&plugins),
                Output::Text => plugins.iter().for_each(print_plugin),
            }
        }
        PluginCommand::Approve {
            name,
            version,
            grants,
        } => {
            let path = format!("{}/approve", build_path(&name, &version));
            let plugin: PluginView = client.post(&path, &grants.grants()).await?;
            match output {
                Output::Json => print_json(&plugin),
                Output::Text => print_plugin(&plugin),
            }
        }
        PluginCommand::Disable { name, version } => {
            let path = format!("{}/disable", build_path(&name, &version));
            let plugin: PluginView = client.post(&path, &serde_json::json!({})).await?;
            match output {
                Output::Json => print_json(&plugin),
                Output::Text => print_plugin(&plugin),
            }
        }
    }
    Ok(0)
}
