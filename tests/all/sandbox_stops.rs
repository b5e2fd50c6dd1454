//! Every way an attempt can end, each shown with a real fixture component, and the host
//! serving normally after each of them.

use serde_json::json;
use weft_sandbox::{Grants, Outcome, SandboxStop, StepLimitsOverride};

use crate::support::{echo_http_server, fixture, plugin, request, run, sandbox};

fn stop(outcome: &Outcome) -> &SandboxStop {
    match outcome {
        Outcome::Stopped { stop } => stop,
        other => panic!("expected a sandbox stop, got {other:?}"),
    }
}

#[tokio::test]
async fn endless_loop_runs_out_of_fuel() {
    let sandbox = sandbox();
    let spin = fixture(&sandbox, "spin").await;
    let mut req = request(json!({}));
    req.limits = StepLimitsOverride {
        fuel: Some(20_000_000),
        ..Default::default()
    };
    let report = sandbox.run(&spin, &Grants::default(), &req).await.unwrap();
    assert_eq!(
        stop(&report.outcome),
        &SandboxStop::OutOfFuel {
            fuel_budget: 20_000_000
        }
    );
    assert_eq!(report.fuel_consumed, 20_000_000);
}

#[tokio::test]
async fn endless_loop_with_fuel_to_spare_hits_the_deadline() {
    let sandbox = sandbox();
    let spin = fixture(&sandbox, "spin").await;
    let mut req = request(json!({}));
    req.limits = StepLimitsOverride {
        fuel: Some(u64::MAX / 2),
        deadline_ms: Some(300),
        ..Default::default()
    };
    let report = sandbox.run(&spin, &Grants::default(), &req).await.unwrap();
    assert_eq!(
        stop(&report.outcome),
        &SandboxStop::DeadlineExceeded { deadline_ms: 300 }
    );
    assert!(report.duration.as_millis() >= 300, "{:?}", report.duration);
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_limit_not_a_trap() {
    let sandbox = sandbox();
    let alloc = fixture(&sandbox, "alloc").await;
    let mut req = request(json!({}));
    req.limits = StepLimitsOverride {
        memory_bytes: Some(32 << 20),
        ..Default::default()
    };
    let report = sandbox.run(&alloc, &Grants::default(), &req).await.unwrap();
    match stop(&report.outcome) {
        SandboxStop::MemoryLimit {
            limit_bytes,
            requested_bytes,
        } => {
            assert_eq!(*limit_bytes, 32 << 20);
            assert!(requested_bytes > limit_bytes);
        }
        other => panic!("expected memory limit, got {other:?}"),
    }
    assert!(report.peak_memory_bytes <= 32 << 20);
}

#[tokio::test]
async fn unbounded_recursion_traps_with_a_stack_overflow() {
    let sandbox = sandbox();
    let recurse = fixture(&sandbox, "recurse").await;
    let report = run(&sandbox, &recurse, &Grants::default(), json!({})).await;
    match stop(&report.outcome) {
        SandboxStop::Trap { message, .. } => {
            assert!(message.contains("stack"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn panic_traps_with_its_message_and_a_backtrace() {
    let sandbox = sandbox();
    let panic = fixture(&sandbox, "panic").await;
    let report = run(
        &sandbox,
        &panic,
        &Grants::default(),
        json!({"message": "the disk is on fire"}),
    )
    .await;
    match stop(&report.outcome) {
        SandboxStop::Trap { message, backtrace } => {
            assert!(message.contains("the disk is on fire"), "{message}");
            assert!(backtrace.as_deref().is_some_and(|b| !b.is_empty()));
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn megabytes_of_output_are_truncated_without_failing_the_step() {
    let sandbox = sandbox();
    let chatty = fixture(&sandbox, "chatty").await;
    let bytes = 3 << 20;
    let report = run(
        &sandbox,
        &chatty,
        &Grants::default(),
        json!({"bytes": bytes}),
    )
    .await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);
    let cap = weft_sandbox::StepLimits::default().output_capture_bytes;
    for captured in [&report.stdout, &report.stderr] {
        assert_eq!(captured.text.len(), cap);
        assert_eq!(captured.truncated_bytes, (bytes - cap) as u64);
    }
}

#[tokio::test]
async fn files_and_environment_are_out_of_reach() {
    let sandbox = sandbox();
    let read_file = fixture(&sandbox, "read-file").await;
    let report = run(
        &sandbox,
        &read_file,
        &Grants::default(),
        json!({"path": "/etc/passwd"}),
    )
    .await;
    match &report.outcome {
        Outcome::Failed { error } => assert_eq!(error.code, "capability-denied"),
        other => panic!("reading a file must fail inside the guest, got {other:?}"),
    }

    // PATH is set in this process; the guest must see no variable at all.
    let read_env = fixture(&sandbox, "read-env").await;
    let report = run(
        &sandbox,
        &read_env,
        &Grants::default(),
        json!({"name": "PATH"}),
    )
    .await;
    match &report.outcome {
        Outcome::Succeeded { output } => {
            assert_eq!(output["value"], json!(null));
            assert_eq!(output["vars"], json!(0));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn ungranted_host_is_denied_and_granted_host_is_reached() {
    let sandbox = sandbox();
    let fetch = fixture(&sandbox, "fetch").await;
    let server = echo_http_server().await;
    let url = format!("http://{server}/hello");

    let report = run(&sandbox, &fetch, &Grants::default(), json!({"url": url})).await;
    let port = server.rsplit_once(':').unwrap().1;
    match stop(&report.outcome) {
        SandboxStop::CapabilityDenied { capability, detail } => {
            assert_eq!(capability, &format!("http:127.0.0.1:{port}"));
            assert!(detail.contains("http-request-denied"), "{detail}");
        }
        other => panic!("expected capability denied, got {other:?}"),
    }

    let grants = Grants {
        http_hosts: vec![server.parse().unwrap()],
        ..Grants::default()
    };
    let report = run(&sandbox, &fetch, &grants, json!({"url": url})).await;
    match &report.outcome {
        Outcome::Succeeded { output } => assert_eq!(output["status"], json!(200)),
        other => panic!("{other:?}"),
    }
    assert!(report.denials.is_empty());
}

#[tokio::test]
async fn key_value_store_needs_a_grant_and_persists_across_attempts() {
    let sandbox = sandbox();
    let kv = fixture(&sandbox, "kv").await;
    let set = json!({"op": "set", "key": "cursor", "value": "42"});
    let report = run(&sandbox, &kv, &Grants::default(), set.clone()).await;
    assert!(
        matches!(stop(&report.outcome), SandboxStop::CapabilityDenied { capability, .. } if capability == "kv"),
        "{:?}",
        report.outcome
    );

    let grants = Grants {
        kv: true,
        ..Grants::default()
    };
    let report = run(&sandbox, &kv, &grants, set).await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);
    let report = run(
        &sandbox,
        &kv,
        &grants,
        json!({"op": "get", "key": "cursor"}),
    )
    .await;
    match &report.outcome {
        Outcome::Succeeded { output } => {
            assert!(output.to_string().contains("42"), "{output}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn log_records_are_captured_per_attempt() {
    let sandbox = sandbox();
    let log = fixture(&sandbox, "log").await;
    let report = run(&sandbox, &log, &Grants::default(), json!({"message": "hi"})).await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);
    let levels: Vec<_> = report.logs.iter().map(|r| r.level).collect();
    use weft_sandbox::LogLevel::*;
    for level in [Trace, Debug, Info, Warn, Error] {
        assert!(levels.contains(&level), "{level:?} missing from {levels:?}");
    }
    assert_eq!(report.stdout.text, "out: hi\n");
    assert_eq!(report.stderr.text, "err: hi\n");
}

#[tokio::test]
async fn output_that_is_not_json_is_invalid_output() {
    let sandbox = sandbox();
    let bad = fixture(&sandbox, "bad-output").await;
    let report = run(&sandbox, &bad, &Grants::default(), json!({})).await;
    assert!(
        matches!(stop(&report.outcome), SandboxStop::InvalidOutput { .. }),
        "{:?}",
        report.outcome
    );
}

#[tokio::test]
async fn plugin_errors_are_reported_as_given() {
    let sandbox = sandbox();
    let fail = fixture(&sandbox, "fail").await;
    let input = json!({"code": "not-found", "message": "no such device", "retryable": true});
    let report = run(&sandbox, &fail, &Grants::default(), input).await;
    match &report.outcome {
        Outcome::Failed { error } => {
            assert_eq!(error.code, "not-found");
            assert_eq!(error.message, "no such device");
            assert!(error.retryable);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn host_keeps_serving_after_every_stop() {
    let sandbox = sandbox();
    let echo = plugin(&sandbox, "echo").await;
    let tight = StepLimitsOverride {
        fuel: Some(20_000_000),
        deadline_ms: Some(200),
        memory_bytes: Some(16 << 20),
        ..Default::default()
    };
    for name in ["spin", "alloc", "recurse", "panic", "bad-output"] {
        let bad = fixture(&sandbox, name).await;
        let mut req = request(json!({"message": "x"}));
        req.limits = tight;
        let report = sandbox.run(&bad, &Grants::default(), &req).await.unwrap();
        assert!(!report.outcome.is_success(), "{name} succeeded");
        let report = run(&sandbox, &echo, &Grants::default(), json!({"after": name})).await;
        assert_eq!(
            report.outcome,
            Outcome::Succeeded {
                output: json!({"after": name})
            }
        );
    }
}
