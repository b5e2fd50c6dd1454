//! The [`Host`] compiled into components: every call goes through the generated WIT
//! bindings to the daemon. Also home of the glue that [`export_task!`](crate::export_task)
//! expands to.

#[allow(
    unsafe_code,
    missing_docs,
    missing_debug_implementations,
    unused_qualifications,
    clippy::all
)]
pub mod bindings;
pub(crate) mod guest;
mod http;

use self::bindings::weft::plugin::{kv, log};
use super::Host;
use crate::http::{HttpError, Request, Response};
use crate::kv::KvError;
use crate::log::Level;

/// The daemon, reached through the component's imports. Holds nothing: the component
/// instance is the connection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WasiBackend;

impl Host for WasiBackend {
    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::log(level, message);
    }

    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        kv::get(key).map_err(kv_error)
    }

    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        kv::set(key, value).map_err(kv_error)
    }

    fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        kv::delete(key).map_err(kv_error)
    }

    fn kv_list_prefix(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        kv::list_prefix(prefix).map_err(kv_error)
    }

    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        http::send(request)
    }
}

fn kv_error(error: kv::KvError) -> KvError {
    match error {
        kv::KvError::Denied => KvError::Denied,
        kv::KvError::InvalidKey(reason) => KvError::InvalidKey(reason),
        kv::KvError::QuotaExceeded(reason) => KvError::QuotaExceeded(reason),
        kv::KvError::Internal(reason) => KvError::Internal(reason),
    }
}
