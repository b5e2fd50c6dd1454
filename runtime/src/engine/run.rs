//! One attempt of one task, from the ready queue to the committed result.

use std::time::Duration;

use weft_domain::{AttemptOutcome, AttemptReport, Machine, PluginError as DomainPluginError};
use weft_sandbox::{Outcome, RunRequest, SandboxError, SandboxStop, StepLimitsOverride};
use weft_store::StoreError;

use super::queue::Entry;
use super::{Engine, clock, lock};

/// How long a task whose plugin is not approved (or is disabled) waits before it is looked
/// at again. It occupies no worker meanwhile.
const PARKED_RECHECK: Duration = Duration::from_secs(1);

impl Engine {
    /// Runs one attempt of `entry`'s task, if the job still wants one.
    pub(super) async fn run_task(&self, entry: &Entry) -> Result<(), StoreError> {
        let Some(active) = self.active(entry.job) else {
            return Ok(());
        };
        let digest = {
            let guard = active.lock().await;
            match guard.job.plugins().get(&entry.task.step) {
                Some(p) => p.digest.clone(),
                None => return Ok(()),
            }
        };
        let runnable = match self.inner.catalogue.runnable(&digest).await {
            Ok(Some(runnable)) => runnable,
            Ok(None) => {
                self.park(entry);
                return Ok(());
            }
            Err(e) => {
                tracing::error!(plugin = %digest, error = %e, "plugin cannot be loaded; task parked");
                self.park(entry);
                return Ok(());
            }
        };

        let (start, job_id, workflow) = {
            let mut guard = active.lock().await;
            let definition = guard.definition.clone();
            let began =
                Machine::new(&definition).begin_attempt(&mut guard.job, &entry.task, clock::now());
            let (start, effects) = match began {
                Ok(began) => began,
                // Not (or no longer) startable: paused, cancelled, finished, not due.
                Err(e) => {
                    tracing::debug!(job = %entry.job, task = %entry.task, error = %e, "task not started");
                    return Ok(());
                }
            };
            self.inner.store.commit_job(&guard.job, &effects.events)?;
            self.inner.store.durable().wait().await?;
            for event in effects.events {
                _ = self.inner.events.send(event);
            }
            (start, guard.job.id(), guard.job.workflow().to_string())
        };

        let request = RunRequest {
            input: start.input.to_string(),
            job_id: job_id.to_string(),
            workflow,
            step_id: entry.task.to_string(),
            attempt: start.attempt,
            limits: StepLimitsOverride {
                fuel: start.fuel,
                deadline_ms: Some(start.timeout_ms),
                memory_bytes: start
                    .memory_bytes
                    .map(|m| usize::try_from(m).unwrap_or(usize::MAX)),
                ..StepLimitsOverride::default()
            },
        };
        let span = tracing::info_span!("attempt", job = %job_id, step = %entry.task, plugin = %digest, attempt = start.attempt);
        let sandbox = self.inner.sandbox.clone();
        let attempt = tokio::spawn(tracing::Instrument::instrument(
            async move {
                sandbox
                    .run(&runnable.plugin, &runnable.grants, &request)
                    .await
            },
            span,
        ));
        let key = (job_id, entry.task.clone());
        lock(&self.inner.running).insert(key.clone(), attempt.abort_handle());
        let joined = attempt.await;
        lock(&self.inner.running).remove(&key);
        let report = match joined {
            Ok(Ok(report)) => domain_report(report),
            // A full instance pool is the host's fault: the attempt ends as interrupted,
            // which is retried.
            Ok(Err(SandboxError::Busy)) => AttemptReport::new(AttemptOutcome::Interrupted),
            Ok(Err(e)) => AttemptReport::new(AttemptOutcome::Trap {
                message: format!("host fault: {e}"),
            }),
            // Aborted: the job was cancelled or failed, and the machine already closed it.
            Err(e) if e.is_cancelled() => return Ok(()),
            Err(e) => AttemptReport::new(AttemptOutcome::Trap {
                message: format!("host fault: {e}"),
            }),
        };

        let mut guard = active.lock().await;
        let definition = guard.definition.clone();
        let now = clock::now();
        let effects = match Machine::new(&definition).complete_attempt(
            &mut guard.job,
            &entry.task,
            report,
            clock::jitter_sample(),
            now,
        ) {
            Ok(effects) => effects,
            Err(e) => {
                tracing::debug!(job = %job_id, task = %entry.task, error = %e, "result not recorded");
                return Ok(());
            }
        };
        self.inner.store.commit_job(&guard.job, &effects.events)?;
        self.inner.store.durable().wait().await?;
        let ready = effects.ready.clone();
        drop(guard);
        for task in &effects.abort {
            if let Some(handle) = lock(&self.inner.running).remove(&(job_id, task.clone())) {
                handle.abort();
            }
        }
        self.after_commit(job_id, &effects, ready).await;
        Ok(())
    }

    /// Puts a task aside until its plugin can run.
    fn park(&self, entry: &Entry) {
        let due = clock::now().plus_ms(PARKED_RECHECK.as_millis() as u64);
        lock(&self.inner.timers).insert((due, entry.job, entry.task.clone()));
        self.inner.timers_changed.notify_one();
    }
}

/// The domain's record of a sandbox report.
fn domain_report(report: weft_sandbox::AttemptReport) -> AttemptReport {
    let log_excerpt = log_excerpt(&report);
    let outcome = match report.outcome {
        Outcome::Succeeded { output } => AttemptOutcome::Succeeded { output },
        Outcome::Failed { error } => AttemptOutcome::PluginError(DomainPluginError {
            code: error.code,
            message: error.message,
            retryable: error.retryable,
            details: error.details,
        }),
        Outcome::Stopped { stop } => match stop {
            SandboxStop::OutOfFuel { .. } => AttemptOutcome::OutOfFuel,
            SandboxStop::DeadlineExceeded { .. } => AttemptOutcome::DeadlineExceeded,
            SandboxStop::MemoryLimit { .. } => AttemptOutcome::MemoryLimit,
            SandboxStop::Trap { message, backtrace } => AttemptOutcome::Trap {
                message: match backtrace {
                    Some(bt) => format!("{message}\n{bt}"),
                    None => message,
                },
            },
            SandboxStop::CapabilityDenied { capability, detail } => {
                AttemptOutcome::CapabilityDenied {
                    message: format!("{capability}: {detail}"),
                }
            }
            SandboxStop::InvalidOutput { detail } => {
                AttemptOutcome::InvalidOutput { message: detail }
            }
        },
    };
    AttemptReport {
        outcome,
        fuel_used: Some(report.fuel_consumed),
        log_excerpt,
    }
}

/// The attempt's log records and captured stderr as one text, for the job record.
fn log_excerpt(report: &weft_sandbox::AttemptReport) -> Option<String> {
    let mut text = String::new();
    for record in &report.logs {
        text.push_str(&format!("{:?} {}\n", record.level, record.message));
    }
    if !report.stderr.text.is_empty() {
        text.push_str(&report.stderr.text);
    }
    (!text.is_empty()).then_some(text)
}
