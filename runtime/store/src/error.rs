//! [`StoreError`]: how every storage operation fails.
//!
//! The variants separate what a caller can act on: a missing record ([`StoreError::NotFound`]),
//! a write that contradicts what is stored ([`StoreError::Conflict`]), a record this build
//! cannot read ([`StoreError::Corrupt`]), a caller bug ([`StoreError::Invalid`]), and a failure of the storage itself
//! ([`StoreError::Backend`]), which is the only one worth retrying.

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The storage itself failed: I/O, or the database engine reported an error.
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// A stored record does not decode, or has a format version this build does not read.
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt {
        /// Which record, such as `job 01ARYZ6S410000000000000000`.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The record to change does not exist.
    #[error("record not found")]
    NotFound,
    /// The write contradicts what is stored; nothing was changed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The records given to a write do not fit together (an event of another job, sequences
    /// out of order): a bug in the caller. Nothing was changed.
    #[error("invalid write: {0}")]
    Invalid(String),
}

impl StoreError {
    /// A [`StoreError::Corrupt`] for the record described by `what`.
    pub(crate) fn corrupt(what: impl Into<String>, detail: impl ToString) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        StoreError::Backend(error.to_string())
    }
}
