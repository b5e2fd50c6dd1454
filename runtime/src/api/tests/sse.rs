//! The event history and its live stream: every event in order, with no gap and no repeat,
//! across reconnects that continue with `after=` or `Last-Event-ID`.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Harness, fixture, plugin};
use crate::access::Role;

/// One SSE message: its `id`, `event` and parsed `data`.
#[derive(Debug)]
struct Message {
    id: u64,
    event: String,
    data: Value,
}

/// An open event stream, read frame by frame.
struct Stream {
    body: Body,
    buffer: String,
}

impl Stream {
    async fn open(h: &Harness, job: &str, query: &str, last_event_id: Option<u64>) -> Stream {
        let mut request = h
            .request(
                Method::GET,
                &format!("/api/v1/jobs/{job}/events{query}"),
                Some(Role::Viewer),
            )
            .header(header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = h
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Stream {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next message; `None` once the server ended the stream.
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut event = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                let (Some(id), Some(event)) = (id, event) else {
                    continue; // a keep-alive comment
                };
                return Some(Message {
                    id,
                    event,
                    data: serde_json::from_str(&data).unwrap(),
                });
            }
            let frame = tokio::time::timeout(std::time::Duration::from_secs(60), self.body.frame())
                .await
                .expect("the stream moves on")?
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }
}

/// A workflow whose job takes a while (a step retries with a pause) and has many events.
async fn slow_workflow(h: &Harness) {
    h.approve(plugin("echo")).await;
    h.approve(fixture("fail")).await;
    h.apply(json!({
        "name": "bumpy", "version": 1,
        "steps": [
            {"id": "a", "plugin": "echo@0", "input": {"n": 1}},
            {"id": "b", "plugin": "weft-fixture-fail@0", "depends_on": ["a"], "on_failure": "continue",
             "input": {"code": "flaky", "retryable": true},
             "retry": {"max_attempts": 3, "initial_interval_ms": 100, "jitter": 0}},
            {"id": "c", "plugin": "echo@0", "depends_on": ["a"], "input": {"n": 3}},
            {"id": "d", "plugin": "echo@0", "depends_on": ["b", "c"], "input": {"n": 4}}
        ]
    }))
    .await;
}

#[tokio::test]
async fn the_stream_delivers_every_event_in_order_across_reconnects() {
    let h = Harness::new().await;
    slow_workflow(&h).await;
    let job = h.start("bumpy", json!({})).await;

    let mut received = Vec::new();
    // First connection: a few events, then the client goes away mid-job.
    let mut stream = Stream::open(&h, &job, "", None).await;
    for _ in 0..3 {
        received.push(stream.next().await.expect("an event"));
    }
    drop(stream);
    // Second: continue after the last event seen, with `after=`.
    let last = received.last().unwrap().id;
    let mut stream = Stream::open(&h, &job, &format!("?after={last}"), None).await;
    for _ in 0..4 {
        received.push(stream.next().await.expect("an event"));
    }
    drop(stream);
    // Third: continue with `Last-Event-ID`, as browsers do, until the stream ends.
    let last = received.last().unwrap().id;
    let mut stream = Stream::open(&h, &job, "", Some(last)).await;
    while let Some(message) = stream.next().await {
        received.push(message);
    }

    let stored = h
        .get(&format!("/api/v1/jobs/{job}/events"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(stored["finished"], true);
    let stored = stored["events"].as_array().unwrap();
    let ids: Vec<u64> = received.iter().map(|m| m.id).collect();
    let expected: Vec<u64> = (1..=stored.len() as u64).collect();
    assert_eq!(ids, expected, "every event once, in order");
    for (message, event) in received.iter().zip(stored) {
        assert_eq!(&message.data, event);
        assert_eq!(message.event, event["type"].as_str().unwrap());
    }
    let types: Vec<&str> = received.iter().map(|m| m.event.as_str()).collect();
    assert!(types.contains(&"step_retrying"), "{types:?}");
    assert!(
        types.last().unwrap().starts_with("job_"),
        "the stream ends with the job"
    );
}

#[tokio::test]
async fn a_finished_job_streams_its_history_and_ends() {
    let h = Harness::new().await;
    h.approve(plugin("echo")).await;
    h.apply(super::echo_workflow("hello", &[])).await;
    let job = h.start("hello", json!({})).await;
    h.finished(&job).await;
    let mut stream = Stream::open(&h, &job, "?after=2", None).await;
    let mut ids = Vec::new();
    while let Some(message) = stream.next().await {
        ids.push(message.id);
    }
    assert_eq!(ids.first(), Some(&3));
    assert_eq!(ids.last().copied(), Some(ids.len() as u64 + 2));
}

#[tokio::test]
async fn the_history_is_paged_by_sequence() {
    let h = Harness::new().await;
    h.approve(plugin("echo")).await;
    h.apply(super::echo_workflow("hello", &[])).await;
    let job = h.start("hello", json!({})).await;
    h.finished(&job).await;
    let all = h
        .get(&format!("/api/v1/jobs/{job}/events"))
        .await
        .expect(StatusCode::OK)
        .json();
    let count = all["events"].as_array().unwrap().len() as u64;
    assert_eq!(all["last_sequence"], count);
    assert_eq!(all["events"][0]["type"], "job_created");
    let page = h
        .get(&format!("/api/v1/jobs/{job}/events?after=1&limit=2"))
        .await
        .expect(StatusCode::OK)
        .json();
    let sequences: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, [2, 3]);

    for (query, parameter) in [("after=-1", "after"), ("limit=0", "limit")] {
        let problem = h
            .get(&format!("/api/v1/jobs/{job}/events?{query}"))
            .await
            .expect(StatusCode::BAD_REQUEST)
            .problem();
        assert_eq!(problem["parameter"], parameter);
    }
    let missing = h
        .get("/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/events")
        .await
        .expect(StatusCode::NOT_FOUND)
        .problem();
    assert_eq!(missing["parameter"], "id");
}
