//! How a workflow step names the plugin it runs, and how that name is resolved to one exact
//! plugin build.
//!
//! A [`PluginRef`] is written `name@1` (newest `1.x.y`), `name@1.2` (newest `1.2.y`),
//! `name@1.2.3` (exactly that version) or `sha256:<64 hex>` (exactly that build). Resolution
//! looks it up in a catalogue of uploaded plugins ([`CatalogueEntry`]) and picks the highest
//! matching version; pre-release versions match only when named exactly. The result, a
//! [`ResolvedPlugin`], is recorded in the job so that later uploads never change what the job
//! runs.

use std::fmt;
use std::str::FromStr;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::id::{IdError, PluginDigest, PluginName};

/// Which versions of a named plugin a reference accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionRequirement {
    /// `name@1`: any release with this major version.
    Major(u64),
    /// `name@1.2`: any release with this major and minor version.
    MajorMinor(u64, u64),
    /// `name@1.2.3`: exactly this version (which may be a pre-release such as `1.2.3-rc.1`).
    Exact(Version),
}

impl VersionRequirement {
    /// Whether `version` satisfies the requirement.
    pub fn matches(&self, version: &Version) -> bool {
        match self {
            VersionRequirement::Major(major) => version.pre.is_empty() && version.major == *major,
            VersionRequirement::MajorMinor(major, minor) => {
                version.pre.is_empty() && version.major == *major && version.minor == *minor
            }
            VersionRequirement::Exact(exact) => version == exact,
        }
    }
}

impl fmt::Display for VersionRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionRequirement::Major(major) => write!(f, "{major}"),
            VersionRequirement::MajorMinor(major, minor) => write!(f, "{major}.{minor}"),
            VersionRequirement::Exact(version) => write!(f, "{version}"),
        }
    }
}

/// A step's reference to a plugin; see the module documentation for the syntax.
///
/// Serialized as its text form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PluginRef {
    /// A plugin name and the versions it accepts.
    Named {
        /// The plugin's name.
        name: PluginName,
        /// Which versions are acceptable.
        requirement: VersionRequirement,
    },
    /// One exact build, by content digest.
    Digest(PluginDigest),
}

/// Why a string is not a plugin reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginRefError {
    /// No `@` between name and version.
    #[error("plugin reference `{value}` must be `name@version` or `sha256:<digest>`")]
    MissingVersion {
        /// The offending string.
        value: String,
    },
    /// The name or digest is malformed.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The version part is not `1`, `1.2` or a full semantic version.
    #[error(
        "plugin version `{version}` must be a major version, `major.minor`, or a full semantic version"
    )]
    BadVersion {
        /// The version part as written.
        version: String,
    },
}

fn parse_number(part: &str) -> Option<u64> {
    let digits_only = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    // Leading zeros are rejected, as semantic versioning does.
    let canonical = part == "0" || !part.starts_with('0');
    if digits_only && canonical {
        part.parse().ok()
    } else {
        None
    }
}

fn parse_requirement(version: &str) -> Result<VersionRequirement, PluginRefError> {
    let bad = || PluginRefError::BadVersion {
        version: version.to_owned(),
    };
    let parts: Vec<&str> = version.split('.').collect();
    match parts.as_slice() {
        [major] => parse_number(major)
            .map(VersionRequirement::Major)
            .ok_or_else(bad),
        [major, minor] => match (parse_number(major), parse_number(minor)) {
            (Some(major), Some(minor)) => Ok(VersionRequirement::MajorMinor(major, minor)),
            _ => Err(bad()),
        },
        _ => Version::parse(version)
            .map(VersionRequirement::Exact)
            .map_err(|_| bad()),
    }
}

impl FromStr for PluginRef {
    type Err = PluginRefError;

    fn from_str(value: &str) -> Result<Self, PluginRefError> {
        if value.starts_with(crate::id::DIGEST_PREFIX) {
            return Ok(PluginRef::Digest(PluginDigest::new(value)?));
        }
        let Some((name, version)) = value.split_once('@') else {
            return Err(PluginRefError::MissingVersion {
                value: value.to_owned(),
            });
        };
        Ok(PluginRef::Named {
            name: PluginName::new(name)?,
            requirement: parse_requirement(version)?,
        })
    }
}

impl TryFrom<String> for PluginRef {
    type Error = PluginRefError;
    fn try_from(value: String) -> Result<Self, PluginRefError> {
        value.parse()
    }
}

impl From<PluginRef> for String {
    fn from(plugin: PluginRef) -> String {
        plugin.to_string()
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginRef::Named { name, requirement } => write!(f, "{name}@{requirement}"),
            PluginRef::Digest(digest) => write!(f, "{digest}"),
        }
    }
}

/// One uploaded plugin build, as the catalogue lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueEntry {
    /// The name the plugin describes itself with.
    pub name: PluginName,
    /// The version the plugin describes itself with.
    pub version: Version,
    /// Digest of the component's bytes.
    pub digest: PluginDigest,
}

/// The exact plugin build a step of a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolvedPlugin {
    /// The plugin's name.
    pub name: PluginName,
    /// The version that was chosen.
    pub version: Version,
    /// Digest of the build that runs.
    pub digest: PluginDigest,
}

impl From<&CatalogueEntry> for ResolvedPlugin {
    fn from(entry: &CatalogueEntry) -> Self {
        ResolvedPlugin {
            name: entry.name.clone(),
            version: entry.version.clone(),
            digest: entry.digest.clone(),
        }
    }
}

/// Why a reference resolves to nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No build of a plugin with this name was uploaded.
    #[error("unknown plugin `{name}`")]
    UnknownPlugin {
        /// The name that was looked up.
        name: PluginName,
    },
    /// Builds exist, but none has a matching version.
    #[error("no version of plugin `{name}` matches `{requirement}` (available: {})", list_versions(.available))]
    NoMatchingVersion {
        /// The name that was looked up.
        name: PluginName,
        /// The requirement that nothing satisfied.
        requirement: VersionRequirement,
        /// Every version of the plugin in the catalogue, highest first.
        available: Vec<Version>,
    },
    /// No uploaded build has this digest.
    #[error("no plugin with digest `{digest}`")]
    UnknownDigest {
        /// The digest that was looked up.
        digest: PluginDigest,
    },
}

fn list_versions(versions: &[Version]) -> String {
    versions
        .iter()
        .map(Version::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl PluginRef {
    /// Picks the build this reference names among `catalogue`: the highest matching version for
    /// a named reference, the build with that digest for a digest reference.
    pub fn resolve<'a>(
        &self,
        catalogue: impl IntoIterator<Item = &'a CatalogueEntry>,
    ) -> Result<ResolvedPlugin, ResolveError> {
        match self {
            PluginRef::Digest(digest) => catalogue
                .into_iter()
                .find(|entry| entry.digest == *digest)
                .map(ResolvedPlugin::from)
                .ok_or_else(|| ResolveError::UnknownDigest {
                    digest: digest.clone(),
                }),
            PluginRef::Named { name, requirement } => {
                let mut same_name: Vec<&CatalogueEntry> = catalogue
                    .into_iter()
                    .filter(|entry| entry.name == *name)
                    .collect();
                if same_name.is_empty() {
                    return Err(ResolveError::UnknownPlugin { name: name.clone() });
                }
                // Highest version first; equal versions keep catalogue order.
                same_name.sort_by(|a, b| b.version.cmp(&a.version));
                match same_name
                    .iter()
                    .find(|entry| requirement.matches(&entry.version))
                {
                    Some(entry) => Ok(ResolvedPlugin::from(*entry)),
                    None => Err(ResolveError::NoMatchingVersion {
                        name: name.clone(),
                        requirement: requirement.clone(),
                        available: same_name.iter().map(|e| e.version.clone()).collect(),
                    }),
                }
            }
        }
    }
}

/// Where plugin references are resolved: the catalogue of uploaded plugins.
///
/// Implemented for a slice of [`CatalogueEntry`]; the store can implement it over its index.
pub trait PluginCatalogue {
    /// Resolves `plugin` as [`PluginRef::resolve`] describes.
    fn resolve(&self, plugin: &PluginRef) -> Result<ResolvedPlugin, ResolveError>;
}

impl PluginCatalogue for [CatalogueEntry] {
    fn resolve(&self, plugin: &PluginRef) -> Result<ResolvedPlugin, ResolveError> {
        plugin.resolve(self)
    }
}

impl PluginCatalogue for Vec<CatalogueEntry> {
    fn resolve(&self, plugin: &PluginRef) -> Result<ResolvedPlugin, ResolveError> {
        plugin.resolve(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> PluginDigest {
        PluginDigest::new(format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn entry(name: &str, version: &str, n: u8) -> CatalogueEntry {
        CatalogueEntry {
            name: PluginName::new(name).unwrap(),
            version: Version::parse(version).unwrap(),
            digest: digest(n),
        }
    }

    fn catalogue() -> Vec<CatalogueEntry> {
        vec![
            entry("http", "1.0.0", 1),
            entry("http", "1.2.0", 2),
            entry("http", "1.10.1", 3),
            entry("http", "2.0.0-rc.1", 4),
            entry("http", "1.2.7", 5),
            entry("disk-erase", "0.3.0", 6),
        ]
    }

    fn resolve(reference: &str) -> Result<ResolvedPlugin, ResolveError> {
        reference
            .parse::<PluginRef>()
            .unwrap()
            .resolve(&catalogue())
    }

    #[test]
    fn parses_every_form_and_prints_it_back() {
        for text in ["http@1", "http@1.2", "http@1.2.3", "http@2.0.0-rc.1"] {
            assert_eq!(text.parse::<PluginRef>().unwrap().to_string(), text);
        }
        let by_digest = format!("{}", digest(9));
        assert_eq!(
            by_digest.parse::<PluginRef>().unwrap(),
            PluginRef::Digest(digest(9))
        );
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "http",
            "http@",
            "http@v1",
            "http@01",
            "Http@1",
            "http@1.2.3.4",
            "sha256:abc",
        ] {
            assert!(bad.parse::<PluginRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn highest_matching_version_wins() {
        assert_eq!(resolve("http@1").unwrap().version.to_string(), "1.10.1");
        assert_eq!(resolve("http@1.2").unwrap().version.to_string(), "1.2.7");
        assert_eq!(resolve("http@1.2.0").unwrap().digest, digest(2));
        assert_eq!(resolve("http@2.0.0-rc.1").unwrap().digest, digest(4));
        assert_eq!(
            resolve(digest(6).as_str()).unwrap().name.as_str(),
            "disk-erase"
        );
    }

    #[test]
    fn explains_failed_resolution() {
        assert_eq!(
            resolve("nope@1").unwrap_err().to_string(),
            "unknown plugin `nope`"
        );
        assert_eq!(
            resolve("http@2").unwrap_err().to_string(),
            "no version of plugin `http` matches `2` (available: 2.0.0-rc.1, 1.10.1, 1.2.7, 1.2.0, 1.0.0)"
        );
        assert!(matches!(
            resolve(digest(42).as_str()),
            Err(ResolveError::UnknownDigest { .. })
        ));
    }
}
