//! A loaded plugin: its identity, its self-description, and its pre-linked component.

use serde::{Deserialize, Serialize};

use crate::bindings::TaskPre;
use crate::digest::Digest;
use crate::state::StepState;
use crate::validate::ValidationError;

/// What a plugin says about itself through `describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Name: lowercase letters, digits and `-`, starting with a letter.
    pub name: String,
    /// Semantic version.
    pub version: semver::Version,
    /// What it does.
    pub description: String,
    /// JSON Schema of its input, if published.
    pub input_schema: Option<serde_json::Value>,
    /// JSON Schema of its output, if published.
    pub output_schema: Option<serde_json::Value>,
    /// Capabilities it requests (not holds).
    pub capabilities: Capabilities,
}

/// Capabilities a plugin requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Hosts it wants to reach over HTTP.
    pub http_hosts: Vec<String>,
    /// Whether it wants the key-value store.
    pub kv: bool,
}

/// A validated, compiled plugin, ready to run steps.
#[derive(Clone)]
pub struct Plugin {
    pub(crate) digest: Digest,
    pub(crate) size_bytes: usize,
    pub(crate) info: PluginInfo,
    pub(crate) pre: TaskPre<StepState>,
}

impl Plugin {
    /// The sha256 of the component bytes.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Size of the component, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// What the plugin said about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("digest", &self.digest)
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .finish_non_exhaustive()
    }
}

/// Why a plugin could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The component failed an admission check.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// `describe` did not complete.
    #[error("describe failed: {0}")]
    DescribeFailed(String),
    /// `describe` returned something unusable.
    #[error("invalid plugin description: {0}")]
    BadDescription(String),
    /// The host failed (disk, compilation cache).
    #[error("host error while loading the plugin: {0}")]
    Host(String),
}

/// Checks a plugin name: lowercase letters, digits and `-`, starting with a letter, at most
/// 64 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if starts_well && rest_ok && name.len() <= 64 && !name.ends_with('-') {
        Ok(())
    } else {
        Err(format!(
            "plugin name {name:?} must be 1 to 64 lowercase letters, digits and '-', starting with a letter"
        ))
    }
}

/// Turns the WIT record into a [`PluginInfo`], checking every field.
pub fn info_from_wit(raw: crate::bindings::types::PluginInfo) -> Result<PluginInfo, LoadError> {
    let bad = LoadError::BadDescription;
    check_name(&raw.name).map_err(bad)?;
    let version = semver::Version::parse(&raw.version)
        .map_err(|e| bad(format!("version {:?} is not semver: {e}", raw.version)))?;
    let schema = |field: &str, text: Option<String>| match text {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| bad(format!("{field} is not JSON: {e}"))),
    };
    Ok(PluginInfo {
        input_schema: schema("input-schema", raw.input_schema)?,
        output_schema: schema("output-schema", raw.output_schema)?,
        name: raw.name,
        version,
        description: raw.description,
        capabilities: Capabilities {
            http_hosts: raw.capabilities.http_hosts,
            kv: raw.capabilities.kv,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        assert!(check_name("http").is_ok());
        assert!(check_name("disk-erase2").is_ok());
        for bad in ["", "Http", "1x", "a_b", "x-", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad} accepted");
        }
    }
}
