//! The private seam between the SDK's public types and the daemon.
//!
//! [`Host`] lists every service the SDK asks of the daemon. Exactly one implementation is
//! compiled in, chosen by target: inside a component (`wasm32`) the generated WIT bindings,
//! everywhere else an in-memory fake, so that plugin authors unit-test `run` with plain
//! `cargo test`. Nothing outside this module knows which one it is talking to.

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod fake;
#[cfg(target_arch = "wasm32")]
pub(crate) mod wasi;

use crate::http::{HttpError, Request, Response};
use crate::kv::KvError;
use crate::log::Level;

/// The implementation compiled for this target.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type ActiveHost = fake::FakeBackend;
/// The implementation compiled for this target.
#[cfg(target_arch = "wasm32")]
pub(crate) type ActiveHost = wasi::WasiBackend;

/// What the SDK needs from the daemon, one method per WIT import it uses.
pub(crate) trait Host {
    /// Appends a record to the attempt's log; never fails.
    fn log(&self, level: Level, message: &str);
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn kv_delete(&self, key: &str) -> Result<(), KvError>;
    fn kv_list_prefix(&self, prefix: &str) -> Result<Vec<String>, KvError>;
    /// Sends a request and reads the whole response.
    fn send(&self, request: &Request) -> Result<Response, HttpError>;
}
