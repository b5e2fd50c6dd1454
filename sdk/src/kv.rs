//! The plugin's persistent key-value store.
//!
//! Keys are scoped by the daemon to the plugin and to the workflow of the current job, so a
//! plugin never sees another plugin's keys. Values are bytes; [`Kv::get_json`] and
//! [`Kv::set_json`] store JSON documents. Every call fails with [`KvError::Denied`] unless an
//! operator granted the plugin the key-value store.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::TaskError;
use crate::backend::{ActiveHost, Host};

/// Why a key-value call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The plugin was not granted the key-value store.
    #[error("the key-value store is not granted to this plugin")]
    Denied,
    /// The key is empty, longer than 512 bytes, or not valid for the store.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The value or the namespace is over its size limit.
    #[error("key-value quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The store failed; the call may succeed if tried again.
    #[error("the key-value store failed: {0}")]
    Internal(String),
    /// A value read with [`Kv::get_json`] is not the expected JSON document, or a value
    /// given to [`Kv::set_json`] does not encode as JSON.
    #[error("invalid json value: {0}")]
    InvalidJson(String),
}

impl KvError {
    /// Stable code for this kind of failure, used as the [`TaskError`] code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Denied => "kv-denied",
            Self::InvalidKey(_) => "kv-invalid-key",
            Self::QuotaExceeded(_) => "kv-quota-exceeded",
            Self::Internal(_) => "kv-unavailable",
            Self::InvalidJson(_) => "kv-invalid-json",
        }
    }

    /// Whether the same call may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Internal(_))
    }
}

impl From<KvError> for TaskError {
    fn from(error: KvError) -> Self {
        let message = error.to_string();
        if error.is_retryable() {
            TaskError::retryable(error.code(), message)
        } else {
            TaskError::new(error.code(), message)
        }
    }
}

/// The key-value store; from [`Context::kv`](crate::Context::kv).
///
/// ```
/// # fn main() -> Result<(), weft_sdk::kv::KvError> {
/// # let host = weft_sdk::testing::FakeHost::new();
/// # let ctx = host.context();
/// ctx.kv().set("greeting", b"hello")?;
/// assert_eq!(ctx.kv().get("greeting")?, Some(b"hello".to_vec()));
/// assert_eq!(ctx.kv().list_prefix("greet")?, ["greeting"]);
/// ctx.kv().delete("greeting")?;
/// assert_eq!(ctx.kv().get("greeting")?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Kv<'ctx> {
    host: &'ctx ActiveHost,
}

impl<'ctx> Kv<'ctx> {
    pub(crate) fn new(host: &'ctx ActiveHost) -> Self {
        Self { host }
    }

    /// Returns the value stored under `key`, or `None`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.host.kv_get(key)
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), KvError> {
        self.host.kv_set(key, value.as_ref())
    }

    /// Removes `key`; removing a missing key is not an error.
    pub fn delete(&self, key: &str) -> Result<(), KvError> {
        self.host.kv_delete(key)
    }

    /// Lists the keys that start with `prefix`, in byte order.
    pub fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.host.kv_list_prefix(prefix)
    }

    /// Returns the JSON document stored under `key`, decoded, or `None`.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KvError> {
        let Some(bytes) = self.get(key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| KvError::InvalidJson(format!("value of `{key}`: {error}")))
    }

    /// Stores `value` under `key` as a JSON document.
    pub fn set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), KvError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|error| KvError::InvalidJson(format!("value for `{key}`: {error}")))?;
        self.set(key, bytes)
    }
}
