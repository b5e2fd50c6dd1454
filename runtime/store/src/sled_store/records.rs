//! The bytes of a job's head and chunk records (see [`super::jobs`]): length-prefixed JSON
//! sections, and the events in them.
//!
//! Stored events leave out what every event of the record shares: the job id (the key says
//! it) and the record format version (the store's format says it). Events stored whole, as
//! before, read the same; a format version newer than this build's, or another job's id,
//! reads as corrupt.

use serde::{Deserialize, Serialize};
use weft_domain::job::Outline;
use weft_domain::{Event, EventKind, FORMAT_VERSION, JobId, Timestamp};

use super::codec::{decode, encode};
use super::keys;
use crate::error::StoreError;

/// The JSON of no events.
pub(super) const EMPTY_ARRAY: &[u8] = b"[]";

/// Two JSON arrays as serde_json writes them (no whitespace around the brackets), joined into
/// one.
pub(super) fn join_arrays(first: &[u8], second: &[u8]) -> Vec<u8> {
    if first == EMPTY_ARRAY {
        return second.to_vec();
    }
    if second == EMPTY_ARRAY {
        return first.to_vec();
    }
    let mut joined = Vec::with_capacity(first.len() + second.len());
    joined.extend_from_slice(&first[..first.len().saturating_sub(1)]);
    joined.push(b',');
    joined.extend_from_slice(second.get(1..).unwrap_or_default());
    joined
}

/// Length of the header of a head or chunk record: the length of its events' JSON, little-endian.
pub(super) const HEADER_LEN: usize = 4;

pub(super) fn describe_chunk(id: JobId, last: u64) -> String {
    format!("chunk {last} of job {id}")
}

pub(super) fn describe_head(id: JobId) -> String {
    format!("latest commit of job {id}")
}

/// What a record of a job's tree is, by its key: a chunk or the head.
pub(super) fn describe_record(id: JobId, key: &[u8]) -> String {
    match keys::commit_last(key) {
        Ok(u64::MAX) => describe_head(id),
        Ok(last) => describe_chunk(id, last),
        Err(_) => format!("a record of job {id}"),
    }
}

/// `section` preceded by its length.
pub(super) fn push_section(
    bytes: &mut Vec<u8>,
    section: &[u8],
    what: impl Fn() -> String,
) -> Result<(), StoreError> {
    let length = u32::try_from(section.len())
        .map_err(|_| StoreError::Invalid(format!("{} is too large", what())))?;
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(section);
    Ok(())
}

/// A chunk record's bytes: the length of its events' JSON, then that JSON (an array).
pub(super) fn encode_chunk(
    events_json: &[u8],
    what: impl Fn() -> String,
) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + events_json.len());
    push_section(&mut bytes, events_json, what)?;
    Ok(bytes)
}

/// A head record's bytes: its events as in a chunk, then the same for the fan-out tasks it
/// holds ([`super::fan_outs`]), then the job's outline as JSON.
pub(super) fn encode_head(
    events_json: &[u8],
    tasks_json: &[u8],
    outline: Outline<'_>,
    what: impl Fn() -> String,
) -> Result<Vec<u8>, StoreError> {
    let mut bytes =
        Vec::with_capacity(2 * HEADER_LEN + events_json.len() + tasks_json.len() + 2048);
    push_section(&mut bytes, events_json, &what)?;
    push_section(&mut bytes, tasks_json, &what)?;
    serde_json::to_writer(&mut bytes, &outline)
        .map_err(|e| StoreError::Invalid(format!("cannot encode {}: {e}", what())))?;
    Ok(bytes)
}

/// A head or chunk record split into its events' JSON and the rest (empty in a chunk).
pub(super) fn split_commit(
    bytes: &[u8],
    what: impl Fn() -> String,
) -> Result<(&[u8], &[u8]), StoreError> {
    let malformed = || StoreError::corrupt(what(), "the record is truncated");
    let header = bytes.get(..HEADER_LEN).ok_or_else(malformed)?;
    let length = u32::from_le_bytes(header.try_into().map_err(|_| malformed())?) as usize;
    let rest = &bytes[HEADER_LEN..];
    if rest.len() < length {
        return Err(malformed());
    }
    Ok(rest.split_at(length))
}

/// The sections of a head record, each JSON.
pub(super) struct HeadSections<'a> {
    /// The events since the last chunk: an array.
    pub events: &'a [u8],
    /// The fan-out tasks the head holds: an array.
    pub tasks: &'a [u8],
    /// The job's outline.
    pub outline: &'a [u8],
}

/// A head record split into its sections.
pub(super) fn split_head(
    bytes: &[u8],
    what: impl Fn() -> String,
) -> Result<HeadSections<'_>, StoreError> {
    let (events, rest) = split_commit(bytes, &what)?;
    let (tasks, outline) = split_commit(rest, &what)?;
    if outline.is_empty() {
        return Err(StoreError::corrupt(what(), "it does not hold the job"));
    }
    Ok(HeadSections {
        events,
        tasks,
        outline,
    })
}

/// An event as stored, borrowed.
#[derive(Serialize)]
struct StoredEventRef<'a> {
    sequence: u64,
    at: Timestamp,
    #[serde(flatten)]
    kind: &'a EventKind,
}

/// An event as stored, read back; the fields it shares with its record may be there too.
#[derive(Deserialize)]
struct StoredEvent {
    #[serde(default)]
    format_version: Option<u32>,
    #[serde(default)]
    job_id: Option<JobId>,
    sequence: u64,
    at: Timestamp,
    #[serde(flatten)]
    kind: EventKind,
}

/// Events as stored, serialized one by one, without a list of them in between.
struct StoredEvents<'a>(&'a [Event]);

impl Serialize for StoredEvents<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|event| StoredEventRef {
            sequence: event.sequence,
            at: event.at,
            kind: &event.kind,
        }))
    }
}

/// The JSON array of `events` as stored.
pub(super) fn encode_events(
    events: &[Event],
    what: impl FnOnce() -> String,
) -> Result<Vec<u8>, StoreError> {
    encode(&StoredEvents(events), what)
}

/// The events of job `id` in a stored JSON array.
pub(super) fn decode_events(
    bytes: &[u8],
    id: JobId,
    what: impl Fn() -> String,
) -> Result<Vec<Event>, StoreError> {
    let stored: Vec<StoredEvent> = decode(bytes, &what)?;
    stored
        .into_iter()
        .map(|event| {
            if let Some(version) = event.format_version
                && (version == 0 || version > FORMAT_VERSION)
            {
                return Err(StoreError::corrupt(
                    what(),
                    format!(
                        "record format version {version} is not supported (this build reads 1 to {FORMAT_VERSION})"
                    ),
                ));
            }
            if event.job_id.is_some_and(|other| other != id) {
                return Err(StoreError::corrupt(what(), "it holds another job's event"));
            }
            Ok(Event::new(id, event.sequence, event.at, event.kind))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use weft_domain::StepId;

    use super::*;

    fn id(n: u8) -> JobId {
        JobId::from_parts(Timestamp::from_unix_ms(5), [n; 10])
    }

    fn events(job: JobId) -> Vec<Event> {
        let step = StepId::new("erase").unwrap();
        vec![
            Event::new(job, 1, Timestamp::from_unix_ms(7), EventKind::JobStarted),
            Event::new(
                job,
                2,
                Timestamp::from_unix_ms(8),
                EventKind::StepStarted {
                    step,
                    item: Some(3),
                    attempt: 1,
                },
            ),
        ]
    }

    #[test]
    fn stored_events_leave_out_what_their_record_says() {
        let stored = encode_events(&events(id(1)), String::new).unwrap();
        let json: Value = serde_json::from_slice(&stored).unwrap();
        assert_eq!(
            json,
            json!([
                {"sequence": 1, "at": 7, "type": "job_started"},
                {"sequence": 2, "at": 8, "type": "step_started", "step": "erase", "item": 3, "attempt": 1}
            ])
        );
        assert_eq!(
            decode_events(&stored, id(1), String::new).unwrap(),
            events(id(1))
        );
    }

    #[test]
    fn events_stored_whole_read_the_same_unless_they_do_not_fit() {
        let whole = serde_json::to_vec(&events(id(1))).unwrap();
        assert_eq!(
            decode_events(&whole, id(1), || "chunk".to_owned()).unwrap(),
            events(id(1))
        );
        match decode_events(&whole, id(2), || "chunk".to_owned()) {
            Err(StoreError::Corrupt { detail, .. }) => {
                assert!(detail.contains("another job"), "{detail}");
            }
            other => panic!("expected another job's events to be corrupt, got {other:?}"),
        }
        let mut newer: Value = serde_json::from_slice(&whole).unwrap();
        newer[1]["format_version"] = json!(FORMAT_VERSION + 1);
        let newer = serde_json::to_vec(&newer).unwrap();
        match decode_events(&newer, id(1), || "chunk".to_owned()) {
            Err(StoreError::Corrupt { detail, .. }) => {
                assert!(detail.contains("is not supported"), "{detail}");
            }
            other => panic!("expected a newer format to be corrupt, got {other:?}"),
        }
    }
}
