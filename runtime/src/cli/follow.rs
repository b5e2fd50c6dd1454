//! `--follow`: watches a job until it ends, over its event stream.
//!
//! On a terminal the job's steps are drawn as a list that is redrawn in place as events
//! arrive (at most every [`REDRAW_EVERY`]); otherwise each event is printed as a line. With
//! `--output json` nothing is printed until the end, then the job as JSON. A dropped stream
//! is reopened after the last event seen, so nothing is missed or repeated.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::Value;
use tokio::time::Instant;
use weft::api::types::{JobView, StepView};

use super::EXIT_JOB_FAILED;
use super::client::{Client, EventStream};
use super::output::{Output, describe_event, format_duration, print_json};

/// Shortest time between two redraws of the step list.
const REDRAW_EVERY: Duration = Duration::from_millis(100);
/// How often a dropped stream is reopened before giving up.
const RECONNECTS: u32 = 20;
/// Wait before reopening a dropped stream.
const RECONNECT_AFTER: Duration = Duration::from_millis(250);

/// Whether an event of this type ends the job.
fn ends_job(kind: &str) -> bool {
    matches!(kind, "job_succeeded" | "job_failed" | "job_cancelled")
}

/// How events are shown while following.
enum Display {
    /// A step list redrawn in place.
    Live {
        lines_drawn: usize,
        last_draw: Option<Instant>,
        pending: bool,
    },
    /// One line per event.
    Lines,
    /// Nothing until the end.
    Quiet,
}

/// Follows job `id` until it ends; prints it and returns the exit code: 0 if it succeeded,
/// [`EXIT_JOB_FAILED`] otherwise.
pub async fn follow(client: &Client, id: &str, output: Output) -> Result<i32> {
    let path = format!("/api/v1/jobs/{id}");
    let mut display = match output {
        Output::Json => Display::Quiet,
        Output::Text if std::io::stdout().is_terminal() => Display::Live {
            lines_drawn: 0,
            last_draw: None,
            pending: true,
        },
        Output::Text => Display::Lines,
    };
    let mut after = 0;
    let mut failures = 0;
    'watch: loop {
        let mut stream = match client.event_stream(id, after).await {
            Ok(stream) => stream,
            Err(e) if failures < RECONNECTS => {
                failures += 1;
                tracing::debug!(error = %e, "reopening the event stream");
                tokio::time::sleep(RECONNECT_AFTER).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        loop {
            let Some(event) = next_event(&mut stream, client, &path, &mut display).await? else {
                // The stream ended before the job did (the daemon restarted?): reopen it.
                let job: JobView = client.get(&path, &[]).await?;
                if is_finished(&job.status) && after >= job.last_event_sequence {
                    break 'watch;
                }
                failures += 1;
                if failures > RECONNECTS {
                    bail!("the event stream of job {id} keeps ending early");
                }
                tokio::time::sleep(RECONNECT_AFTER).await;
                continue 'watch;
            };
            failures = 0;
            after = event["sequence"].as_u64().unwrap_or(after);
            match &mut display {
                Display::Lines => println!("{}", describe_event(&event)),
                Display::Live { pending, .. } => *pending = true,
                Display::Quiet => {}
            }
            if ends_job(event["type"].as_str().unwrap_or_default()) {
                break 'watch;
            }
        }
    }
    let job: JobView = client.get(&path, &[]).await?;
    match &mut display {
        Display::Live { lines_drawn, .. } => draw(&job, lines_drawn),
        Display::Lines => {}
        Display::Quiet => print_json(&job),
    }
    if !matches!(display, Display::Quiet) {
        print_result(&job);
    }
    Ok(if job.status == "succeeded" {
        0
    } else {
        EXIT_JOB_FAILED
    })
}

fn is_finished(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled")
}

/// The next event, redrawing a live display when it is due meanwhile.
async fn next_event(
    stream: &mut EventStream,
    client: &Client,
    path: &str,
    display: &mut Display,
) -> Result<Option<Value>> {
    loop {
        let due = match display {
            Display::Live {
                pending: true,
                last_draw,
                ..
            } => Some(last_draw.map_or_else(Instant::now, |at| at + REDRAW_EVERY)),
            _ => None,
        };
        let message = match due {
            Some(due) => tokio::select! {
                message = stream.next() => message?,
                () = tokio::time::sleep_until(due) => {
                    let job: JobView = client.get(path, &[]).await?;
                    if let Display::Live { lines_drawn, last_draw, pending } = display {
                        draw(&job, lines_drawn);
                        *last_draw = Some(Instant::now());
                        *pending = false;
                    }
                    continue;
                }
            },
            None => stream.next().await?,
        };
        let Some(message) = message else {
            return Ok(None);
        };
        return Ok(Some(serde_json::from_str(&message.data)?));
    }
}

fn symbol(status: &str) -> &'static str {
    match status {
        "succeeded" => "✓",
        "failed" => "✗",
        "running" => "▶",
        "waiting_retry" => "↻",
        "skipped" => "–",
        "cancelled" => "⊘",
        _ => "·",
    }
}

fn step_line(step: &StepView) -> String {
    let mut detail = String::new();
    if step.tasks.len() > 1 || step.tasks.first().is_some_and(|t| t.item.is_some()) {
        let done = step
            .tasks
            .iter()
            .filter(|t| is_finished(&t.status) || t.status == "skipped")
            .count();
        detail = format!("{done}/{} items", step.tasks.len());
    } else if let Some(task) = step.tasks.first()
        && let Some(attempt) = task.attempts.last()
    {
        if task.attempts.len() > 1 {
            detail = format!("attempt {}", attempt.number);
        }
        if let Some(ended) = attempt.ended_at {
            let took = format_duration(ended.saturating_sub(attempt.started_at));
            detail = if detail.is_empty() {
                took
            } else {
                format!("{detail}, {took}")
            };
        }
    }
    if let Some(error) = &step.error {
        detail = format!("{detail}  {}: {}", error.kind, error.message);
    }
    format!(
        "  {} {:<20} {:<14} {}",
        symbol(&step.status),
        step.id,
        step.status,
        detail.trim()
    )
}

/// Redraws the step list over the previous one.
fn draw(job: &JobView, lines_drawn: &mut usize) {
    let mut out = String::new();
    if *lines_drawn > 0 {
        out.push_str(&format!("\x1b[{}A", *lines_drawn));
    }
    let mut lines = vec![format!(
        "job {} ({} version {}): {}",
        job.id, job.workflow, job.version, job.status
    )];
    lines.extend(job.steps.iter().map(step_line));
    for line in &lines {
        out.push_str("\x1b[2K\r");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\x1b[J");
    *lines_drawn = lines.len();
    let mut stdout = std::io::stdout().lock();
    _ = stdout.write_all(out.as_bytes());
    _ = stdout.flush();
}

/// The end of a followed job: its output or why it did not succeed.
pub fn print_result(job: &JobView) {
    let took = job
        .finished_at
        .map(|end| {
            format!(
                " in {}",
                format_duration(end.saturating_sub(job.created_at))
            )
        })
        .unwrap_or_default();
    println!("job {} {}{took}", job.id, job.status);
    if let Some(output) = &job.output {
        println!("output: {output}");
    }
    if let Some(error) = &job.error {
        match &error.step {
            Some(step) => println!("error: step {step}: {}: {}", error.kind, error.message),
            None => println!("error: {}: {}", error.kind, error.message),
        }
    }
}
