//! The daemon's settings, in two stages: [`RawConfig`] is the optional TOML file as written
//! (every field optional, unknown fields refused), and [`DaemonConfig`] is the validated
//! whole, with the data directory and listen address from flags or the environment.
//!
//! ```toml
//! workers = 16                    # attempts running at once
//! attempt_threads = 2             # threads that run them; default: half the cores, at least 1
//! max_unfinished_jobs = 100000    # more answer 429
//! max_component_bytes = 33554432  # largest plugin upload
//! max_request_body_bytes = 1048576
//! drain_grace_ms = 30000          # on SIGTERM, how long running attempts may take
//! auto_approve = false            # local development only
//! cache_capacity_bytes = 134217728
//! group_commit_linger_us = 500    # under many concurrent commits, how long a flush waits for more
//!
//! [concurrency]                   # running tasks at once, by name
//! per_workflow = { "disk-erase" = 10 }
//! per_plugin = { http = 32 }
//! per_queue = { bulk = 4 }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Most workers: the sandbox reserves this many instance slots.
const MAX_WORKERS: usize = 256;

/// Most threads for attempts.
const MAX_ATTEMPT_THREADS: usize = 1024;

/// Largest plugin upload that can be allowed: 1 GiB.
const MAX_COMPONENT_BYTES: usize = 1024 * 1024 * 1024;

/// Why the settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("{path}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A value is out of range.
    #[error("`{field}` {detail}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

/// Concurrency limits by name, as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConcurrency {
    /// Running tasks per workflow.
    #[serde(default)]
    pub per_workflow: HashMap<String, usize>,
    /// Running tasks per plugin.
    #[serde(default)]
    pub per_plugin: HashMap<String, usize>,
    /// Running tasks per named queue.
    #[serde(default)]
    pub per_queue: HashMap<String, usize>,
}

/// The config file as written; see the module documentation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Attempts running at once.
    pub workers: Option<usize>,
    /// Threads that run attempts.
    pub attempt_threads: Option<usize>,
    /// Unfinished jobs accepted at once.
    pub max_unfinished_jobs: Option<usize>,
    /// Largest plugin upload, in bytes.
    pub max_component_bytes: Option<usize>,
    /// Largest other request body, in bytes.
    pub max_request_body_bytes: Option<usize>,
    /// On SIGTERM, how long running attempts may take to finish, in milliseconds.
    pub drain_grace_ms: Option<u64>,
    /// Approve uploaded plugins with what they request (local development only).
    pub auto_approve: Option<bool>,
    /// Memory the store may use to cache pages, in bytes.
    pub cache_capacity_bytes: Option<u64>,
    /// How long a flush waits for more commits to share it, in microseconds, while many
    /// commits are concurrent.
    pub group_commit_linger_us: Option<u64>,
    /// Concurrency limits.
    #[serde(default)]
    pub concurrency: RawConcurrency,
}

impl RawConfig {
    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            detail: e.to_string(),
        })
    }
}

/// The daemon's validated settings.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where everything is kept: `db/` (the store), `artifacts/` (compiled plugins),
    /// `tokens.json`, and `admin.token` when generated.
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Attempts running at once.
    pub workers: usize,
    /// Threads that run attempts, on a runtime of their own.
    pub attempt_threads: usize,
    /// Unfinished jobs accepted at once.
    pub max_unfinished_jobs: usize,
    /// Largest plugin upload, in bytes.
    pub max_component_bytes: usize,
    /// Largest other request body, in bytes.
    pub max_request_body_bytes: usize,
    /// On SIGTERM, how long running attempts may take to finish, in milliseconds.
    pub drain_grace_ms: u64,
    /// Approve uploaded plugins with what they request.
    pub auto_approve: bool,
    /// Memory the store may use to cache pages, in bytes.
    pub cache_capacity_bytes: u64,
    /// How long a flush waits for more commits to share it, in microseconds, while many
    /// commits are concurrent.
    pub group_commit_linger_us: u64,
    /// Concurrency limits by name.
    pub concurrency: RawConcurrency,
    /// The bootstrap admin token from `WEFT_ADMIN_TOKEN`, if set.
    pub admin_token: Option<String>,
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::Invalid {
            field,
            detail: format!("must be between {min} and {max}, got {value}"),
        });
    }
    Ok(value)
}

impl DaemonConfig {
    /// Validates the settings: `listen` is `IP:PORT`, the file's values are in range, and
    /// missing ones take their defaults.
    pub fn new(
        data_dir: PathBuf,
        listen: &str,
        raw: RawConfig,
        admin_token: Option<String>,
    ) -> Result<DaemonConfig, ConfigError> {
        let listen = listen.parse().map_err(|e| ConfigError::Invalid {
            field: "listen",
            detail: format!("must be IP:PORT, such as 127.0.0.1:8080 ({e})"),
        })?;
        let defaults = crate::engine::EngineConfig::default();
        let api = crate::api::ApiConfig::default();
        for (field, limits) in [
            ("concurrency.per_workflow", &raw.concurrency.per_workflow),
            ("concurrency.per_plugin", &raw.concurrency.per_plugin),
            ("concurrency.per_queue", &raw.concurrency.per_queue),
        ] {
            if let Some((name, _)) = limits.iter().find(|(_, n)| **n == 0) {
                return Err(ConfigError::Invalid {
                    field,
                    detail: format!("of `{name}` must be at least 1"),
                });
            }
        }
        Ok(DaemonConfig {
            data_dir,
            listen,
            workers: in_range(
                "workers",
                raw.workers.unwrap_or(defaults.workers),
                1,
                MAX_WORKERS,
            )?,
            attempt_threads: in_range(
                "attempt_threads",
                raw.attempt_threads
                    .unwrap_or_else(super::default_attempt_threads),
                1,
                MAX_ATTEMPT_THREADS,
            )?,
            max_unfinished_jobs: in_range(
                "max_unfinished_jobs",
                raw.max_unfinished_jobs
                    .unwrap_or(defaults.max_unfinished_jobs),
                1,
                100_000_000,
            )?,
            max_component_bytes: in_range(
                "max_component_bytes",
                raw.max_component_bytes.unwrap_or(api.max_component_bytes),
                1024,
                MAX_COMPONENT_BYTES,
            )?,
            max_request_body_bytes: in_range(
                "max_request_body_bytes",
                raw.max_request_body_bytes
                    .unwrap_or(api.max_request_body_bytes),
                1024,
                64 * 1024 * 1024,
            )?,
            drain_grace_ms: in_range(
                "drain_grace_ms",
                raw.drain_grace_ms.unwrap_or(30_000),
                0,
                3_600_000,
            )?,
            auto_approve: raw.auto_approve.unwrap_or(false),
            cache_capacity_bytes: in_range(
                "cache_capacity_bytes",
                raw.cache_capacity_bytes.unwrap_or(128 * 1024 * 1024),
                1024 * 1024,
                1 << 40,
            )?,
            group_commit_linger_us: in_range(
                "group_commit_linger_us",
                raw.group_commit_linger_us.unwrap_or(
                    weft_store::SledConfig::default()
                        .group_commit_linger
                        .as_micros() as u64,
                ),
                0,
                100_000,
            )?,
            concurrency: raw.concurrency,
            admin_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_an_empty_file() {
        let config =
            DaemonConfig::new("d".into(), "127.0.0.1:0", RawConfig::default(), None).unwrap();
        assert!(!config.auto_approve);
        assert_eq!(config.max_component_bytes, 32 * 1024 * 1024);
        assert_eq!(config.listen.port(), 0);
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(config.attempt_threads, (cores / 2).max(1));
    }

    #[test]
    fn files_are_strict_and_values_checked() {
        let raw: RawConfig = toml::from_str(
            "workers = 8\nattempt_threads = 3\nauto_approve = true\n[concurrency]\nper_queue = { bulk = 2 }",
        )
        .unwrap();
        let config = DaemonConfig::new("d".into(), "127.0.0.1:8080", raw, None).unwrap();
        assert_eq!(config.workers, 8);
        assert_eq!(config.attempt_threads, 3);
        assert!(config.auto_approve);
        assert_eq!(config.concurrency.per_queue["bulk"], 2);

        assert!(toml::from_str::<RawConfig>("wrokers = 8").is_err());
        let zero = RawConfig {
            workers: Some(0),
            ..RawConfig::default()
        };
        let error = DaemonConfig::new("d".into(), "127.0.0.1:8080", zero, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`workers` must be between 1 and 256, got 0"
        );
        let no_threads = RawConfig {
            attempt_threads: Some(0),
            ..RawConfig::default()
        };
        let error = DaemonConfig::new("d".into(), "127.0.0.1:8080", no_threads, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`attempt_threads` must be between 1 and 1024, got 0"
        );
        let error =
            DaemonConfig::new("d".into(), "localhost", RawConfig::default(), None).unwrap_err();
        assert!(
            error.to_string().starts_with("`listen` must be IP:PORT"),
            "{error}"
        );
    }
}
