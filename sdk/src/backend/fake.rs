//! The in-memory [`Host`] compiled outside WebAssembly: a key-value map, a list of log
//! records, and canned HTTP responses. [`FakeHost`](crate::testing::FakeHost) is its public
//! face; this module holds the state and implements the calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Host;
use crate::http::{HttpError, Method, Request, Response};
use crate::kv::KvError;
use crate::log::Level;
use crate::testing::{LogRecord, RecordedRequest};

/// Longest key the daemon's store accepts, in bytes.
const MAX_KEY_BYTES: usize = 512;

/// A canned answer to one method and URL.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) answer: Result<Response, HttpError>,
}

/// Everything a fake host remembers, shared by the [`FakeHost`](crate::testing::FakeHost)
/// and every context it hands out.
#[derive(Debug, Default)]
pub(crate) struct FakeState {
    /// `None` when the test withholds the key-value store.
    pub(crate) kv: Option<BTreeMap<String, Vec<u8>>>,
    pub(crate) logs: Vec<LogRecord>,
    pub(crate) routes: Vec<Route>,
    pub(crate) requests: Vec<RecordedRequest>,
}

/// A handle on shared [`FakeState`].
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeBackend {
    state: Arc<Mutex<FakeState>>,
}

impl FakeBackend {
    pub(crate) fn state(&self) -> MutexGuard<'_, FakeState> {
        // A test that panicked while holding the lock has failed already; the state is
        // still worth reading for the next assertion.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_kv<T>(
        &self,
        key: &str,
        call: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> T,
    ) -> Result<T, KvError> {
        if key.is_empty() {
            return Err(KvError::InvalidKey("the key is empty".to_owned()));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(KvError::InvalidKey(format!(
                "the key is longer than {MAX_KEY_BYTES} bytes"
            )));
        }
        let mut state = self.state();
        let kv = state.kv.as_mut().ok_or(KvError::Denied)?;
        Ok(call(kv))
    }
}

impl Host for FakeBackend {
    fn log(&self, level: Level, message: &str) {
        self.state().logs.push(LogRecord {
            level,
            message: message.to_owned(),
        });
    }

    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.with_kv(key, |kv| kv.get(key).cloned())
    }

    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.with_kv(key, |kv| {
            kv.insert(key.to_owned(), value.to_vec());
        })
    }

    fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        self.with_kv(key, |kv| {
            kv.remove(key);
        })
    }

    fn kv_list_prefix(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let mut state = self.state();
        let kv = state.kv.as_mut().ok_or(KvError::Denied)?;
        Ok(kv
            .range(prefix.to_owned()..)
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        let mut state = self.state();
        state.requests.push(RecordedRequest {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
            timeout: request.timeout,
        });
        state
            .routes
            .iter()
            .find(|route| route.method == request.method && route.url == request.url)
            .map(|route| route.answer.clone())
            .unwrap_or_else(|| {
                Err(HttpError::Connection(format!(
                    "the fake host has no response for {} {}",
                    request.method, request.url
                )))
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::kv::KvError;
    use crate::testing::FakeHost;

    #[test]
    fn the_fake_store_behaves_like_the_daemons() {
        let host = FakeHost::new()
            .with_kv_value("b/2", "two")
            .with_kv_value("a", "one");
        let ctx = host.context();
        let kv = ctx.kv();
        kv.set("b/1", "uno").unwrap();
        assert_eq!(kv.list_prefix("b/").unwrap(), ["b/1", "b/2"]);
        assert_eq!(kv.list_prefix("").unwrap(), ["a", "b/1", "b/2"]);
        kv.delete("missing").unwrap();
        assert!(matches!(kv.get(""), Err(KvError::InvalidKey(_))));
        assert!(matches!(
            kv.set(&"k".repeat(513), "v"),
            Err(KvError::InvalidKey(_))
        ));
        assert_eq!(host.kv_value("b/1"), Some(b"uno".to_vec()));
    }

    #[test]
    fn a_withheld_store_denies_every_call() {
        let ctx = FakeHost::new().without_kv().context();
        assert_eq!(ctx.kv().get("a"), Err(KvError::Denied));
        assert_eq!(ctx.kv().list_prefix("a"), Err(KvError::Denied));
        let error = crate::TaskError::from(ctx.kv().set("a", "b").unwrap_err());
        assert_eq!(error.code(), "kv-denied");
        assert!(!error.is_retryable());
    }
}
