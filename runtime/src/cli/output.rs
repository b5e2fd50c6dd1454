//! How client commands print: [`Output::Json`] prints the API's answer as JSON for scripts;
//! [`Output::Text`] prints tables and sentences for people, with times in UTC.

use serde::Serialize;
use serde_json::Value;

/// The output format of client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Tables and sentences.
    Text,
    /// The API's JSON.
    Json,
}

/// Prints `value` as pretty JSON.
pub fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("weft: cannot print the answer: {e}"),
    }
}

/// Prints rows under headers, in aligned columns.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC for milliseconds since the Unix epoch.
pub fn format_time(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `HH:MM:SS.mmm` in UTC, for event lines.
pub fn format_clock(unix_ms: u64) -> String {
    let rest = unix_ms / 1000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        unix_ms % 1000
    )
}

/// A duration in milliseconds, briefly: `850ms`, `12.3s`, `4m05s`.
pub fn format_duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `step` or `step[item]` of an event.
fn task_of(event: &Value) -> String {
    let step = event["step"].as_str().unwrap_or("?");
    match event["item"].as_u64() {
        Some(item) => format!("{step}[{item}]"),
        None => step.to_owned(),
    }
}

fn error_of(event: &Value, member: &str) -> String {
    let error = &event[member];
    let message = error["message"].as_str().unwrap_or_default();
    match error["kind"].as_str() {
        Some(kind) => format!("{kind}: {message}"),
        None => message.to_owned(),
    }
}

/// One line describing a job event, for people.
pub fn describe_event(event: &Value) -> String {
    let at = format_clock(event["at"].as_u64().unwrap_or_default());
    let attempt = event["attempt"]
        .as_u64()
        .map(|a| format!(" (attempt {a})"))
        .unwrap_or_default();
    let what = match event["type"].as_str().unwrap_or_default() {
        "job_created" => format!(
            "job created: {} version {}",
            event["workflow"].as_str().unwrap_or_default(),
            event["version"]
        ),
        "job_started" => "job started".to_owned(),
        "job_paused" => "job paused".to_owned(),
        "job_resumed" => "job resumed".to_owned(),
        "job_succeeded" => "job succeeded".to_owned(),
        "job_failed" => {
            let failure = &event["failure"];
            match failure["step"].as_str() {
                Some(step) => format!("job failed: step {step}: {}", error_of(failure, "error")),
                None => format!("job failed: {}", error_of(failure, "error")),
            }
        }
        "job_cancelled" => match event["reason"].as_str() {
            Some(reason) => format!("job cancelled: {reason}"),
            None => "job cancelled".to_owned(),
        },
        "step_scheduled" => format!("step {} ready", task_of(event)),
        "step_fanned_out" => format!(
            "step {} fanned out over {} items",
            task_of(event),
            event["items"]
        ),
        "step_started" => format!("step {} started{attempt}", task_of(event)),
        "step_succeeded" => format!("step {} succeeded{attempt}", task_of(event)),
        "step_retrying" => format!(
            "step {} will retry{attempt}: {}",
            task_of(event),
            error_of(event, "error")
        ),
        "step_failed" => format!(
            "step {} failed{attempt}: {}",
            task_of(event),
            error_of(event, "error")
        ),
        "step_skipped" => format!("step {} skipped", task_of(event)),
        "step_cancelled" => format!("step {} cancelled", task_of(event)),
        other => other.to_owned(),
    };
    format!("{at}  {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_709_210_096_000), "2024-02-29 12:34:56");
        assert_eq!(format_clock(1_709_210_096_789), "12:34:56.789");
        assert_eq!(format_duration(850), "850ms");
        assert_eq!(format_duration(12_345), "12.3s");
        assert_eq!(format_duration(245_000), "4m05s");
    }

    #[test]
    fn events_read_as_sentences() {
        let event = serde_json::json!({"type": "step_retrying", "at": 0, "step": "erase", "item": 2,
            "attempt": 1, "error": {"kind": "deadline_exceeded", "message": "too slow"}});
        assert_eq!(
            describe_event(&event),
            "00:00:00.000  step erase[2] will retry (attempt 1): deadline_exceeded: too slow"
        );
    }
}
