//! Weft's integration tests: one binary, a module per topic.
//!
//! Plugins and fixtures are real components built by `cargo xtask build-plugins` (which
//! `cargo xtask test` runs first); their directories come from `WEFT_PLUGIN_DIR` and
//! `WEFT_FIXTURE_DIR`, defaulting to `target/plugins` and `target/test-plugins`.

mod daemon;
mod support;

mod artifact_cache;
mod cli;
mod crash;
mod engine;
mod first_party_plugins;
mod sandbox_stops;
mod without_sdk;
