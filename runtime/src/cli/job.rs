//! `weft job start|ls|show|cancel|pause|resume|logs|events`.

use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;
use weft::api::types::{
    CancelRequest, EventPage, JobList, JobView, StartRequest, Started, StepLogs,
};

use super::EXIT_JOB_FAILED;
use super::client::Client;
use super::follow::{follow, print_result};
use super::local::read_input;
use super::output::{
    Output, describe_event, format_duration, format_time, print_json, print_table,
};

/// `weft job` commands.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Start a job of a workflow.
    Start(StartArgs),
    /// List jobs, newest first.
    Ls {
        /// Only jobs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only jobs in this state.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Continue after a previous page (its `next_cursor`).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a job with its steps.
    Show {
        /// The job's id.
        id: String,
    },
    /// Cancel a job; its running steps are stopped.
    Cancel {
        /// The job's id.
        id: String,
        /// Why, for the record.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Pause a job: no new attempt starts until it is resumed.
    Pause {
        /// The job's id.
        id: String,
    },
    /// Resume a paused job.
    Resume {
        /// The job's id.
        id: String,
    },
    /// Print a step's logs, per attempt.
    Logs {
        /// The job's id.
        id: String,
        /// The step's id.
        step: String,
    },
    /// Print a job's events; with --follow, until the job ends.
    Events {
        /// The job's id.
        id: String,
        /// Keep printing events as they happen, until the job ends.
        #[arg(long)]
        follow: bool,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

/// Arguments of `weft job start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The workflow.
    workflow: String,
    /// The input: JSON text, or `@path` to read it from a file.
    #[arg(long, default_value = "{}")]
    input: String,
    /// The workflow version; the latest if not given.
    #[arg(long)]
    version: Option<u32>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0)]
    priority: i32,
    /// The named queue whose limits apply.
    #[arg(long)]
    queue: Option<String>,
    /// Starting again with the same key returns the first job.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Watch the job until it ends; exit non-zero unless it succeeds.
    #[arg(long)]
    follow: bool,
}

fn job_path(id: &str) -> String {
    format!("/api/v1/jobs/{id}")
}

/// Runs a `weft job` command.
pub async fn run(client: &Client, output: Output, command: JobCommand) -> Result<i32> {
    match command {
        JobCommand::Start(args) => start(client, output, args).await,
        JobCommand::Ls {
            workflow,
            status,
            limit,
            cursor,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(workflow.map(|w| ("workflow", w)));
            query.extend(status.map(|s| ("status", s)));
            query.extend(cursor.map(|c| ("cursor", c)));
            let list: JobList = client.get("/api/v1/jobs", &query).await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => {
                    let rows: Vec<Vec<String>> = list
                        .jobs
                        .iter()
                        .map(|j| {
                            vec![
                                j.id.clone(),
                                format!("{}@{}", j.workflow, j.version),
                                j.status.clone(),
                                format_time(j.created_at),
                                j.finished_at
                                    .map(|f| format_duration(f.saturating_sub(j.created_at)))
                                    .unwrap_or_default(),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "WORKFLOW", "STATUS", "CREATED", "TOOK"], &rows);
                    if let Some(cursor) = list.next_cursor {
                        println!("more: --cursor {cursor}");
                    }
                }
            }
            Ok(0)
        }
        JobCommand::Show { id } => {
            let job: JobView = client.get(&job_path(&id), &[]).await?;
            match output {
                Output::Json => print_json(&job),
                Output::Text => print_job(&job),
            }
            Ok(0)
        }
        JobCommand::Cancel { id, reason } => {
            let path = format!("{}/cancel", job_path(&id));
            let job: JobView = client.post(&path, &CancelRequest { reason }).await?;
            match output {
                Output::Json => print_json(&job),
                Output::Text => println!("job {} {}", job.id, job.status),
            }
            Ok(0)
        }
        JobCommand::Pause { id } => change(client, output, &id, "pause").await,
        JobCommand::Resume { id } => change(client, output, &id, "resume").await,
        JobCommand::Logs { id, step } => {
            let logs: StepLogs = client
                .get(&format!("{}/steps/{step}/logs", job_path(&id)), &[])
                .await?;
            match output {
                Output::Json => print_json(&logs),
                Output::Text => print_logs(&logs),
            }
            Ok(0)
        }
        JobCommand::Events { id, follow, after } => {
            events(client, output, &id, follow, after).await
        }
    }
}

async fn change(client: &Client, output: Output, id: &str, action: &str) -> Result<i32> {
    let path = format!("{}/{action}", job_path(id));
    let job: JobView = client.post(&path, &serde_json::json!({})).await?;
    match output {
        Output::Json => print_json(&job),
        Output::Text => println!("job {} {}", job.id, job.status),
    }
    Ok(0)
}

async fn start(client: &Client, output: Output, args: StartArgs) -> Result<i32> {
    let input: Value = serde_json::from_str(&read_input(&args.input)?)?;
    let request = StartRequest {
        input,
        version: args.version,
        priority: args.priority,
        queue: args.queue,
        idempotency_key: args.idempotency_key,
    };
    let started: Started = client
        .post(
            &format!("/api/v1/workflows/{}/jobs", args.workflow),
            &request,
        )
        .await?;
    if args.follow {
        if output == Output::Text {
            println!("job {} started", started.id);
        }
        return follow(client, &started.id, output).await;
    }
    match output {
        Output::Json => print_json(&started),
        Output::Text => println!("{}", started.id),
    }
    Ok(0)
}

async fn events(
    client: &Client,
    output: Output,
    id: &str,
    live: bool,
    mut after: u64,
) -> Result<i32> {
    let print = |event: &Value| match output {
        Output::Json => println!("{event}"),
        Output::Text => println!("{}", describe_event(event)),
    };
    if live {
        let mut stream = client.event_stream(id, after).await?;
        while let Some(message) = stream.next().await? {
            print(&serde_json::from_str(&message.data)?);
        }
        let job: JobView = client.get(&job_path(id), &[]).await?;
        let failed = is_finished(&job.status) && job.status != "succeeded";
        return Ok(if failed { EXIT_JOB_FAILED } else { 0 });
    }
    loop {
        let page: EventPage = client
            .get(
                &format!("{}/events", job_path(id)),
                &[("after", after.to_string())],
            )
            .await?;
        let Some(last) = page.events.last() else {
            break;
        };
        after = last["sequence"].as_u64().unwrap_or(u64::MAX);
        page.events.iter().for_each(print);
        if after >= page.last_sequence {
            break;
        }
    }
    Ok(0)
}

fn is_finished(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled")
}

fn print_job(job: &JobView) {
    println!("job {}", job.id);
    println!("  workflow: {} version {}", job.workflow, job.version);
    println!("  status:   {}", job.status);
    println!("  created:  {}", format_time(job.created_at));
    if let Some(finished) = job.finished_at {
        println!(
            "  finished: {} ({})",
            format_time(finished),
            format_duration(finished.saturating_sub(job.created_at))
        );
    }
    println!("  input:    {}", job.input);
    let rows: Vec<Vec<String>> = job
        .steps
        .iter()
        .map(|s| {
            let attempts: usize = s.tasks.iter().map(|t| t.attempts.len()).sum();
            vec![
                s.id.clone(),
                s.status.clone(),
                s.plugin.clone().unwrap_or_default(),
                if s.tasks.len() > 1 {
                    s.tasks.len().to_string()
                } else {
                    String::new()
                },
                attempts.to_string(),
                s.error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.kind, e.message))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    println!();
    print_table(
        &["STEP", "STATUS", "PLUGIN", "ITEMS", "ATTEMPTS", "ERROR"],
        &rows,
    );
    println!();
    if is_finished(&job.status) {
        print_result(job);
    }
}

fn print_logs(logs: &StepLogs) {
    let mut any = false;
    for task in &logs.tasks {
        for attempt in &task.attempts {
            any = true;
            let item = task.item.map(|i| format!("item {i}, ")).unwrap_or_default();
            let outcome = attempt.outcome.as_deref().unwrap_or("running");
            println!("== {item}attempt {} ({outcome}) ==", attempt.number);
            if attempt.log.is_empty() {
                println!("(no log)");
            } else {
                print!("{}", attempt.log);
                if !attempt.log.ends_with('\n') {
                    println!();
                }
            }
        }
    }
    if !any {
        println!("step {} has not run yet", logs.step);
    }
}
