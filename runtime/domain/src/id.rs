//! Names and identifiers that travel between layers: [`StepId`], [`WorkflowName`],
//! [`PluginName`] and [`PluginDigest`].
//!
//! Each is a newtype over a shared string (`Arc<str>`, so that cloning one, which the engine
//! does for every step it moves, costs no allocation) that can only be built by parsing, so
//! holding one proves it is well formed. They serialize as plain strings and validate again when deserialized, so a
//! corrupted record fails loudly at the storage edge instead of deep inside the engine.
//! Job identifiers live in [`crate::job_id`] because they also carry time.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Longest step id, workflow name or plugin name. Names appear in URLs, log lines and storage
/// keys; a bound keeps all of those predictable.
pub const MAX_NAME_LEN: usize = 64;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("{kind} is empty")]
    Empty {
        /// What was being parsed, such as `step id`.
        kind: &'static str,
    },
    /// The string is longer than [`MAX_NAME_LEN`].
    #[error("{kind} `{value}` is longer than {max} characters")]
    TooLong {
        /// What was being parsed.
        kind: &'static str,
        /// The offending string.
        value: String,
        /// The limit.
        max: usize,
    },
    /// The first character is not a lowercase ASCII letter.
    #[error("{kind} `{value}` must start with a lowercase letter")]
    BadStart {
        /// What was being parsed.
        kind: &'static str,
        /// The offending string.
        value: String,
    },
    /// A character outside the allowed set.
    #[error("{kind} `{value}` contains `{character}`; allowed are {allowed}")]
    BadCharacter {
        /// What was being parsed.
        kind: &'static str,
        /// The offending string.
        value: String,
        /// The first character that is not allowed.
        character: char,
        /// Human-readable description of the allowed characters.
        allowed: &'static str,
    },
    /// Not `sha256:` followed by 64 lowercase hexadecimal digits.
    #[error("plugin digest `{value}` must be `sha256:` followed by 64 lowercase hex digits")]
    BadDigest {
        /// The offending string.
        value: String,
    },
}

/// Checks the shape shared by step ids, workflow names and plugin names: a lowercase letter,
/// then lowercase letters, digits and the characters in `extra`.
fn check_name(
    kind: &'static str,
    value: &str,
    extra: &[char],
    allowed: &'static str,
) -> Result<(), IdError> {
    let mut chars = value.chars();
    let Some(first) = chars.next() else {
        return Err(IdError::Empty { kind });
    };
    if value.len() > MAX_NAME_LEN {
        return Err(IdError::TooLong {
            kind,
            value: value.to_owned(),
            max: MAX_NAME_LEN,
        });
    }
    if !first.is_ascii_lowercase() {
        return Err(IdError::BadStart {
            kind,
            value: value.to_owned(),
        });
    }
    let bad = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c)));
    match bad {
        Some(character) => Err(IdError::BadCharacter {
            kind,
            value: value.to_owned(),
            character,
            allowed,
        }),
        None => Ok(()),
    }
}

/// Declares a validated string newtype with parsing, display and string serde.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(Arc<str>);

        // By hand rather than `into = "String"`, which would copy the text to serialize it.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl $name {
            /// Validates `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                let check: fn(&str) -> Result<(), IdError> = $check;
                check(&value)?;
                Ok($name(value.into()))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                $name::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                $name::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// Identifier of a step within a workflow definition: a lowercase letter, then lowercase
    /// letters, digits, `-` and `_`, at most [`MAX_NAME_LEN`] characters.
    StepId,
    |v| check_name("step id", v, &['-', '_'], "lowercase letters, digits, `-` and `_`")
);

string_id!(
    /// Name of a workflow: a lowercase letter, then lowercase letters, digits, `-` and `_`,
    /// at most [`MAX_NAME_LEN`] characters. Together with a version number it names one
    /// definition.
    WorkflowName,
    |v| check_name("workflow name", v, &['-', '_'], "lowercase letters, digits, `-` and `_`")
);

string_id!(
    /// Name of a plugin as the plugin describes itself: a lowercase letter, then lowercase
    /// letters, digits and `-`, at most [`MAX_NAME_LEN`] characters.
    PluginName,
    |v| check_name("plugin name", v, &['-'], "lowercase letters, digits and `-`")
);

/// Prefix of every plugin digest; the hash algorithm is part of the identifier so that another
/// one can be added later without ambiguity.
pub const DIGEST_PREFIX: &str = "sha256:";

fn check_digest(value: &str) -> Result<(), IdError> {
    let hex = value.strip_prefix(DIGEST_PREFIX);
    let valid = hex.is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if valid {
        Ok(())
    } else {
        Err(IdError::BadDigest {
            value: value.to_owned(),
        })
    }
}

string_id!(
    /// Content address of a plugin component: `sha256:` followed by 64 lowercase hexadecimal
    /// digits of the SHA-256 of its bytes. A job records the digest of every plugin it runs, so
    /// uploading a newer version never changes what a running job executes.
    PluginDigest,
    check_digest
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids_follow_the_documented_alphabet() {
        for ok in ["a", "inventory", "erase-disks_2", "x9"] {
            assert!(StepId::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(StepId::new(""), Err(IdError::Empty { kind: "step id" }));
        assert!(matches!(
            StepId::new("Erase"),
            Err(IdError::BadStart { .. })
        ));
        assert!(matches!(
            StepId::new("9lives"),
            Err(IdError::BadStart { .. })
        ));
        let err = StepId::new("a.b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "step id `a.b` contains `.`; allowed are lowercase letters, digits, `-` and `_`"
        );
        assert!(matches!(
            StepId::new("a".repeat(65)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn plugin_names_reject_underscore() {
        assert!(PluginName::new("disk-erase").is_ok());
        assert!(matches!(
            PluginName::new("disk_erase"),
            Err(IdError::BadCharacter { .. })
        ));
    }

    #[test]
    fn digests_are_lowercase_sha256() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(PluginDigest::new(format!("sha256:{hex}")).is_ok());
        assert!(PluginDigest::new(format!("sha256:{}", hex.to_uppercase())).is_err());
        assert!(PluginDigest::new(format!("sha512:{hex}")).is_err());
        assert!(PluginDigest::new(format!("sha256:{}", &hex[1..])).is_err());
    }

    #[test]
    fn serde_validates_strings() {
        let id: StepId = serde_json::from_str("\"erase\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"erase\"");
        assert!(serde_json::from_str::<StepId>("\"Erase\"").is_err());
    }
}
