//! The plugins' key-value capability, stored in the engine's [`Store`].

use std::sync::Arc;

use weft_sandbox::{KvError, KvScope, KvStore};
use weft_store::Store;

/// Serves the sandbox's key-value calls from the store.
#[derive(Debug, Clone)]
pub struct StoreKv {
    store: Arc<dyn Store>,
}

impl StoreKv {
    /// Key-value access backed by `store`.
    pub fn new(store: Arc<dyn Store>) -> StoreKv {
        StoreKv { store }
    }
}

fn scope(scope: &KvScope) -> weft_store::KvScope {
    weft_store::KvScope {
        plugin: scope.plugin.clone(),
        namespace: scope.namespace.clone(),
    }
}

fn internal(e: weft_store::StoreError) -> KvError {
    KvError::Internal(e.to_string())
}

impl KvStore for StoreKv {
    fn get(&self, s: &KvScope, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        weft_sandbox::check_kv_key(key)?;
        self.store.kv_get(&scope(s), key).map_err(internal)
    }

    fn set(&self, s: &KvScope, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        weft_sandbox::check_kv_key(key)?;
        weft_sandbox::check_kv_value(&value)?;
        self.store.kv_set(&scope(s), key, &value).map_err(internal)
    }

    fn delete(&self, s: &KvScope, key: &str) -> Result<(), KvError> {
        weft_sandbox::check_kv_key(key)?;
        self.store.kv_delete(&scope(s), key).map_err(internal)
    }

    fn list_prefix(&self, s: &KvScope, prefix: &str) -> Result<Vec<String>, KvError> {
        self.store
            .kv_list_prefix(&scope(s), prefix)
            .map_err(internal)
    }
}
