//! Job identifiers: 128 bits that sort by creation time, as bytes and as text.
//!
//! A [`JobId`] is a 48-bit millisecond timestamp followed by 80 random bits, written as 26
//! characters of Crockford base32 (the layout of a ULID). Because the timestamp comes first
//! and both encodings are big-endian, listing jobs in key order lists them oldest first, which
//! the store relies on for its job index. The domain does not draw randomness: callers pass the
//! random bits in, or use a [`JobIdGenerator`] that also keeps ids strictly increasing within
//! one process.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Crockford's base32 alphabet: digits and uppercase letters without I, L, O and U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Length of the text form: 128 bits in 5-bit characters, rounded up.
pub const JOB_ID_LEN: usize = 26;

/// Largest timestamp that fits the 48-bit time field (the year 10889).
const MAX_TIME_MS: u64 = (1 << 48) - 1;

/// Why a string is not a job id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobIdError {
    /// Wrong number of characters.
    #[error("job id `{value}` must be {JOB_ID_LEN} characters long")]
    Length {
        /// The offending string.
        value: String,
    },
    /// A character outside Crockford's base32 alphabet.
    #[error("job id `{value}` contains `{character}`, which is not Crockford base32")]
    Character {
        /// The offending string.
        value: String,
        /// The first character outside the alphabet.
        character: char,
    },
    /// The value needs more than 128 bits (the first character is above `7`).
    #[error("job id `{value}` is out of range")]
    Overflow {
        /// The offending string.
        value: String,
    },
}

/// Identifier of a job; see the module documentation for its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct JobId(u128);

// By hand rather than `into = "String"`, which would allocate the text to serialize it.
impl Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.text();
        serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
    }
}

impl JobId {
    /// Builds an id from its creation time and 80 random bits. Times past the 48-bit range
    /// are clamped to its end.
    pub fn from_parts(created_at: Timestamp, random: [u8; 10]) -> Self {
        let time = u128::from(created_at.as_unix_ms().min(MAX_TIME_MS));
        let mut bits = [0u8; 16];
        bits[6..].copy_from_slice(&random);
        JobId((time << 80) | u128::from_be_bytes(bits))
    }

    /// The creation time encoded in the id.
    pub fn created_at(self) -> Timestamp {
        // The shift leaves 48 bits, which always fit in a u64.
        Timestamp::from_unix_ms((self.0 >> 80) as u64)
    }

    /// The 16 big-endian bytes, for storage keys that sort by creation time.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The id whose [`JobId::to_bytes`] is `bytes`.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        JobId(u128::from_be_bytes(bytes))
    }

    /// The next id in sort order, or `None` for the largest possible id.
    fn successor(self) -> Option<JobId> {
        self.0.checked_add(1).map(JobId)
    }
}

impl JobId {
    /// The 26-character form, as ASCII bytes.
    fn text(self) -> [u8; JOB_ID_LEN] {
        let mut text = [0u8; JOB_ID_LEN];
        for (position, slot) in text.iter_mut().enumerate() {
            let shift = 5 * (JOB_ID_LEN - 1 - position);
            *slot = ALPHABET[((self.0 >> shift) & 0x1f) as usize];
        }
        text
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every byte comes from ALPHABET, which is ASCII.
        f.write_str(std::str::from_utf8(&self.text()).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for JobId {
    type Err = JobIdError;

    /// Parses the 26-character form. Lowercase letters are accepted and mean the same as
    /// uppercase ones; the canonical form printed by [`fmt::Display`] is uppercase.
    fn from_str(value: &str) -> Result<Self, JobIdError> {
        if value.len() != JOB_ID_LEN {
            return Err(JobIdError::Length {
                value: value.to_owned(),
            });
        }
        let mut bits: u128 = 0;
        for (position, character) in value.chars().enumerate() {
            let upper = character.to_ascii_uppercase();
            let digit = ALPHABET
                .iter()
                .position(|&a| char::from(a) == upper)
                .ok_or_else(|| JobIdError::Character {
                    value: value.to_owned(),
                    character,
                })?;
            if position == 0 && digit > 7 {
                return Err(JobIdError::Overflow {
                    value: value.to_owned(),
                });
            }
            bits = (bits << 5) | digit as u128;
        }
        Ok(JobId(bits))
    }
}

impl TryFrom<String> for JobId {
    type Error = JobIdError;
    fn try_from(value: String) -> Result<Self, JobIdError> {
        value.parse()
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.to_string()
    }
}

/// Hands out job ids that strictly increase, even for jobs created in the same millisecond or
/// after the wall clock stepped back.
///
/// When the new id would not sort after the previous one, the generator returns the previous
/// id plus one instead, as ULID's monotonic mode does.
#[derive(Debug, Default, Clone)]
pub struct JobIdGenerator {
    last: Option<JobId>,
}

impl JobIdGenerator {
    /// A generator that has handed out nothing yet.
    pub fn new() -> Self {
        JobIdGenerator::default()
    }

    /// A generator that continues after `last`, for a daemon that restarts and reads the
    /// newest stored id.
    pub fn after(last: JobId) -> Self {
        JobIdGenerator { last: Some(last) }
    }

    /// The next id for a job created at `now`, using `random` for the random bits.
    pub fn generate(&mut self, now: Timestamp, random: [u8; 10]) -> JobId {
        let fresh = JobId::from_parts(now, random);
        let id = match self.last {
            Some(last) if fresh <= last => last.successor().unwrap_or(last),
            _ => fresh,
        };
        self.last = Some(id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_known_value() {
        let id = JobId::from_parts(Timestamp::from_unix_ms(1_469_918_176_385), [0; 10]);
        assert_eq!(id.to_string(), "01ARYZ6S410000000000000000");
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        assert_eq!("01aryz6s410000000000000000".parse::<JobId>().unwrap(), id);
        assert_eq!(id.created_at(), Timestamp::from_unix_ms(1_469_918_176_385));
    }

    #[test]
    fn rejects_malformed_text() {
        assert!(matches!(
            "01ARYZ".parse::<JobId>(),
            Err(JobIdError::Length { .. })
        ));
        let with_u = "01ARYZ6S41000000000000000U";
        assert!(matches!(
            with_u.parse::<JobId>(),
            Err(JobIdError::Character { .. })
        ));
        let too_big = "81ARYZ6S410000000000000000";
        assert!(matches!(
            too_big.parse::<JobId>(),
            Err(JobIdError::Overflow { .. })
        ));
    }

    #[test]
    fn sorts_by_time_as_bytes_and_text() {
        let older = JobId::from_parts(Timestamp::from_unix_ms(1_000), [0xff; 10]);
        let newer = JobId::from_parts(Timestamp::from_unix_ms(1_001), [0; 10]);
        assert!(older < newer);
        assert!(older.to_bytes() < newer.to_bytes());
        assert!(older.to_string() < newer.to_string());
        assert_eq!(JobId::from_bytes(newer.to_bytes()), newer);
    }

    #[test]
    fn generator_is_strictly_monotonic() {
        let mut generator = JobIdGenerator::new();
        let t = Timestamp::from_unix_ms(5_000);
        let a = generator.generate(t, [9; 10]);
        let b = generator.generate(t, [1; 10]);
        let c = generator.generate(Timestamp::from_unix_ms(4_000), [0; 10]);
        assert!(a < b && b < c);
        let d = generator.generate(Timestamp::from_unix_ms(6_000), [0; 10]);
        assert!(c < d);
        assert_eq!(d.created_at(), Timestamp::from_unix_ms(6_000));
    }

    #[test]
    fn serde_uses_text() {
        let id = JobId::from_parts(Timestamp::from_unix_ms(1), [7; 10]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<JobId>(&json).unwrap(), id);
    }
}
