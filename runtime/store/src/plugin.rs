//! The plugin catalogue's records: [`PluginRecord`] (what was uploaded and what an operator
//! allowed it to do) and [`PutPlugin`] (what storing an upload did).
//!
//! A plugin build is identified by its digest; its name and version are what the component
//! says about itself, and each name and version belongs to one build only. The component's
//! bytes are stored next to the record, by digest, and never change.

use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_domain::{CatalogueEntry, PluginDigest, PluginName, Timestamp};

use crate::error::StoreError;

/// One uploaded plugin build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// Layout version of the record; see [`crate::RECORD_FORMAT_VERSION`].
    pub format_version: u32,
    /// Digest of the component's bytes.
    pub digest: PluginDigest,
    /// The name the component describes itself with.
    pub name: PluginName,
    /// The version the component describes itself with.
    pub version: Version,
    /// What the plugin says it does.
    pub description: String,
    /// JSON Schema of a task's input, if the plugin declares one.
    pub input_schema: Option<Value>,
    /// JSON Schema of a task's output, if the plugin declares one.
    pub output_schema: Option<Value>,
    /// The capabilities the plugin asks for.
    pub requested: RequestedCapabilities,
    /// The capabilities and limits an operator granted.
    pub grants: PluginGrants,
    /// Whether jobs may run the plugin.
    pub status: PluginStatus,
    /// Size of the component, in bytes.
    pub size_bytes: u64,
    /// When the component was uploaded.
    pub uploaded_at: Timestamp,
    /// When an operator last approved the plugin.
    pub approved_at: Option<Timestamp>,
}

impl PluginRecord {
    /// The record as the domain's plugin resolution sees it.
    pub fn catalogue_entry(&self) -> CatalogueEntry {
        CatalogueEntry {
            name: self.name.clone(),
            version: self.version.clone(),
            digest: self.digest.clone(),
        }
    }
}

/// The capabilities a plugin asks for in its metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedCapabilities {
    /// Hosts the plugin wants to reach over HTTP.
    pub http_hosts: Vec<String>,
    /// Whether the plugin wants the key-value store.
    pub kv: bool,
}

/// What an operator allowed a plugin to do, and the limits its attempts run under. `None`
/// limits mean the daemon's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginGrants {
    /// Hosts the plugin may reach over HTTP.
    pub http_hosts: Vec<String>,
    /// Whether the plugin may use the key-value store.
    pub kv: bool,
    /// Fuel limit of one attempt.
    pub fuel: Option<u64>,
    /// Deadline of one attempt, in milliseconds.
    pub deadline_ms: Option<u64>,
    /// Memory limit of one attempt, in bytes.
    pub memory_bytes: Option<u64>,
}

/// Whether jobs may run a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginStatus {
    /// Uploaded, waiting for an operator to approve it.
    Pending,
    /// Jobs may run it.
    Approved,
    /// An operator withdrew it; new jobs may not run it.
    Disabled,
}

/// What [`crate::Store::put_plugin`] did.
// Returned once per upload and matched at once; boxing the record would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum PutPlugin {
    /// The plugin was stored.
    Created,
    /// A build with the same digest was already stored; nothing changed. Holds the stored
    /// record.
    Existing(PluginRecord),
    /// Another build already has this name and version; nothing was stored.
    Conflict {
        /// Digest of the stored build.
        existing: PluginDigest,
    },
}

/// Sorts plugin records as [`crate::Store::plugins`] lists them: by name, then version.
pub(crate) fn sort_plugins(records: &mut [PluginRecord]) {
    records.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
}

/// The error of an update that would change a plugin's name or version.
pub(crate) fn renamed_plugin(record: &PluginRecord) -> StoreError {
    StoreError::Conflict(format!(
        "plugin {} cannot be renamed to {}@{}",
        record.digest, record.name, record.version
    ))
}
