//! The key-value capability offered to plugins, behind a trait the daemon implements on its
//! own storage. [`MemoryKv`] serves tests and the standalone sandbox.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Whose keys a call touches: a plugin sees only keys of its own name and namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KvScope {
    /// Plugin name.
    pub plugin: String,
    /// Namespace chosen by the daemon (the workflow of the job).
    pub namespace: String,
}

/// Why a key-value call failed; mirrors `weft:plugin/kv.kv-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The plugin was not granted the key-value store.
    #[error("key-value store not granted")]
    Denied,
    /// The key is not acceptable.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A size limit was reached.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The backing store failed.
    #[error("key-value store failed: {0}")]
    Internal(String),
}

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value accepted, in bytes. Plugins keep small state here, not payloads.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// Storage behind the key-value capability.
pub trait KvStore: Send + Sync + std::fmt::Debug {
    /// The value under `key` in `scope`.
    fn get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Stores `value` under `key` in `scope`.
    fn set(&self, scope: &KvScope, key: &str, value: Vec<u8>) -> Result<(), KvError>;
    /// Removes `key` from `scope`.
    fn delete(&self, scope: &KvScope, key: &str) -> Result<(), KvError>;
    /// Keys of `scope` starting with `prefix`, in byte order.
    fn list_prefix(&self, scope: &KvScope, prefix: &str) -> Result<Vec<String>, KvError>;
}

/// Checks a key against the rules every store shares.
pub fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::InvalidKey("key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::InvalidKey(format!(
            "key is {} bytes, the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// Checks a value against the size limit.
pub fn check_value(value: &[u8]) -> Result<(), KvError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvError::QuotaExceeded(format!(
            "value is {} bytes, the limit is {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

/// A key-value store in memory.
#[derive(Debug, Default)]
pub struct MemoryKv {
    entries: Mutex<BTreeMap<(KvScope, String), Vec<u8>>>,
}

impl MemoryKv {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<(KvScope, String), Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated: every operation
        // is a single map call.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl KvStore for MemoryKv {
    fn get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        Ok(self
            .entries()
            .get(&(scope.clone(), key.to_owned()))
            .cloned())
    }

    fn set(&self, scope: &KvScope, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        check_key(key)?;
        check_value(&value)?;
        self.entries()
            .insert((scope.clone(), key.to_owned()), value);
        Ok(())
    }

    fn delete(&self, scope: &KvScope, key: &str) -> Result<(), KvError> {
        check_key(key)?;
        self.entries().remove(&(scope.clone(), key.to_owned()));
        Ok(())
    }

    fn list_prefix(&self, scope: &KvScope, prefix: &str) -> Result<Vec<String>, KvError> {
        let start = (scope.clone(), prefix.to_owned());
        Ok(self
            .entries()
            .range(start..)
            .take_while(|((s, k), _)| s == scope && k.starts_with(prefix))
            .map(|((_, k), _)| k.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(plugin: &str) -> KvScope {
        KvScope {
            plugin: plugin.into(),
            namespace: "wf".into(),
        }
    }

    #[test]
    fn scopes_do_not_see_each_other() {
        let kv = MemoryKv::default();
        kv.set(&scope("a"), "k1", b"1".to_vec()).unwrap();
        kv.set(&scope("a"), "k2", b"2".to_vec()).unwrap();
        kv.set(&scope("b"), "k1", b"3".to_vec()).unwrap();
        assert_eq!(kv.get(&scope("b"), "k1").unwrap(), Some(b"3".to_vec()));
        assert_eq!(kv.list_prefix(&scope("a"), "k").unwrap(), ["k1", "k2"]);
        kv.delete(&scope("a"), "k1").unwrap();
        assert_eq!(kv.list_prefix(&scope("a"), "").unwrap(), ["k2"]);
    }

    #[test]
    fn rejects_bad_keys_and_large_values() {
        let kv = MemoryKv::default();
        assert!(matches!(
            kv.get(&scope("a"), ""),
            Err(KvError::InvalidKey(_))
        ));
        let big = vec![0; MAX_VALUE_BYTES + 1];
        assert!(matches!(
            kv.set(&scope("a"), "k", big),
            Err(KvError::QuotaExceeded(_))
        ));
    }
}
