//! `weft workflow apply|ls|show`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use weft::api::types::{AppliedView, WorkflowList, WorkflowView};

use super::client::Client;
use super::output::{Output, print_json, print_table};

/// `weft workflow` commands.
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Create a workflow, or a new version of one, from a JSON or YAML file.
    Apply {
        /// The definition (`.json`, `.yaml` or `.yml`).
        file: PathBuf,
    },
    /// List workflows and their versions.
    Ls,
    /// Show a workflow's latest definition, or one version.
    Show {
        /// The workflow's name.
        name: String,
        /// One version.
        #[arg(long)]
        version: Option<u32>,
    },
}

/// The media type of a definition file, from its extension.
fn media_type(file: &std::path::Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => "application/yaml",
        _ => "application/json",
    }
}

/// Runs a `weft workflow` command.
pub async fn run(client: &Client, output: Output, command: WorkflowCommand) -> Result<i32> {
    match command {
        WorkflowCommand::Apply { file } => {
            let source =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let applied: AppliedView = client
                .post_bytes("/api/v1/workflows", media_type(&file), source)
                .await?;
            match output {
                Output::Json => print_json(&applied),
                Output::Text if applied.created => {
                    println!(
                        "workflow {} version {} created",
                        applied.name, applied.version
                    );
                }
                Output::Text => println!(
                    "workflow {} version {} unchanged",
                    applied.name, applied.version
                ),
            }
        }
        WorkflowCommand::Ls => {
            let list: WorkflowList = client.get("/api/v1/workflows", &[]).await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => {
                    let rows: Vec<Vec<String>> = list
                        .workflows
                        .iter()
                        .map(|w| {
                            let versions: Vec<String> =
                                w.versions.iter().map(ToString::to_string).collect();
                            vec![
                                w.name.clone(),
                                w.latest_version.to_string(),
                                versions.join(","),
                            ]
                        })
                        .collect();
                    print_table(&["NAME", "LATEST", "VERSIONS"], &rows);
                }
            }
        }
        WorkflowCommand::Show { name, version } => {
            let path = match version {
                Some(v) => format!("/api/v1/workflows/{name}/versions/{v}"),
                None => format!("/api/v1/workflows/{name}"),
            };
            let workflow: WorkflowView = client.get(&path, &[]).await?;
            match output {
                Output::Json => print_json(&workflow),
                Output::Text => {
                    println!("# {} version {}", workflow.name, workflow.version);
                    print_json(&workflow.definition);
                }
            }
        }
    }
    Ok(0)
}
