//! Layout versions of the records the store owns (plugin records, job metadata, definitions),
//! checked on every write and every read.
//!
//! Jobs and events carry the domain's own `FORMAT_VERSION`, which the domain checks when they
//! are deserialized. A record newer than this build is refused as [`StoreError::Corrupt`]
//! rather than misread; a release that changes a layout bumps the version and migrates older
//! records.

use crate::error::StoreError;

/// Layout version of [`crate::PluginRecord`], [`crate::JobMeta`] and stored definitions.
pub const RECORD_FORMAT_VERSION: u32 = 1;

/// Refuses to write a record whose layout this build does not write.
pub(crate) fn check_written(what: &str, format_version: u32) -> Result<(), StoreError> {
    if format_version == RECORD_FORMAT_VERSION {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} has format version {format_version}, this build writes {RECORD_FORMAT_VERSION}"
        )))
    }
}

/// Refuses a stored record whose layout this build does not read.
pub(crate) fn check_read(what: &str, format_version: u32) -> Result<(), StoreError> {
    if (1..=RECORD_FORMAT_VERSION).contains(&format_version) {
        Ok(())
    } else {
        Err(StoreError::corrupt(
            what,
            format!(
                "record format version {format_version} is not supported (this build reads 1 to {RECORD_FORMAT_VERSION})"
            ),
        ))
    }
}
