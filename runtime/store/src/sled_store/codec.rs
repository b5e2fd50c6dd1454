//! Values in the sled trees: JSON, so records are simple to inspect and to migrate.
//!
//! Records the store owns (plugin records, job metadata, definitions) have their
//! `format_version` read first, so that a record of an unknown layout is reported as such
//! rather than as whatever field failed to decode. Jobs and events check their own version as
//! the domain deserializes them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::format::{RECORD_FORMAT_VERSION, check_read};

/// A workflow definition as stored: the submitted document with a layout version.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredDefinition {
    pub format_version: u32,
    pub document: Value,
}

impl StoredDefinition {
    pub fn new(document: &Value) -> Self {
        StoredDefinition {
            format_version: RECORD_FORMAT_VERSION,
            document: document.clone(),
        }
    }
}

/// Just the version of a record, to check before decoding the rest.
#[derive(Deserialize)]
struct Versioned {
    format_version: u32,
}

/// The JSON of `value`; `what` names it in the error.
pub(super) fn encode<T: Serialize>(
    value: &T,
    what: impl FnOnce() -> String,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value)
        .map_err(|e| StoreError::Invalid(format!("cannot encode {}: {e}", what())))
}

/// Decodes JSON; `what` names the record in the error.
pub(super) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(what(), e))
}

/// Decodes a record the store owns, checking its format version first.
pub(super) fn decode_versioned<T: DeserializeOwned>(
    bytes: &[u8],
    what: impl Fn() -> String,
) -> Result<T, StoreError> {
    let Versioned { format_version } = decode(bytes, &what)?;
    check_read(&what(), format_version)?;
    decode(bytes, what)
}
