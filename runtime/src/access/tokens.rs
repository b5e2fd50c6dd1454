//! [`Tokens`]: the API tokens, kept as SHA-256 digests in a file of the data directory.
//!
//! A token is `weft_` followed by 64 hex digits (32 random bytes). Only its digest is stored,
//! so a leaked `tokens.json` grants nothing; the secret is returned once, by
//! [`Tokens::create`]. Tokens are high-entropy random strings, so an unsalted digest is enough
//! (there is nothing to guess by brute force), and lookups by digest take constant time in the
//! secret.
//!
//! The file is rewritten whole on every change: written to a temporary file with mode 0600,
//! synced, and renamed over the old one, so a crash leaves either the old or the new list.
//! Token changes are rare; the whole list lives in memory.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::role::Role;

/// Name of the token file in the data directory.
pub const TOKENS_FILE: &str = "tokens.json";

/// Id under which the bootstrap admin token is listed. It cannot be revoked through the API:
/// it is set by `WEFT_ADMIN_TOKEN` or `DIR/admin.token`, and changed there.
pub const BOOTSTRAP_TOKEN_ID: &str = "bootstrap";

/// Layout version of `tokens.json`.
const FILE_FORMAT_VERSION: u32 = 1;

/// Prefix of every token Weft generates, so that secret scanners can recognize them.
const TOKEN_PREFIX: &str = "weft_";

/// Random bytes in a generated token.
const TOKEN_RANDOM_BYTES: usize = 32;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No token has this id.
    #[error("no token {0}")]
    NotFound(String),
    /// The bootstrap token cannot be revoked through the API.
    #[error(
        "the bootstrap token is set by WEFT_ADMIN_TOKEN or DIR/admin.token and cannot be revoked here"
    )]
    Bootstrap,
    /// A token name is empty or too long.
    #[error("a token name must be 1 to 100 characters")]
    InvalidName,
    /// The token file could not be read or written.
    #[error("token file {path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// What is known about a token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// The token's id, used to revoke it.
    pub id: String,
    /// What the token is for, as its creator described it.
    pub name: String,
    /// What the token allows.
    pub role: Role,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at: u64,
}

/// The caller a valid token identifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's id.
    pub token_id: String,
    /// The token's role.
    pub role: Role,
}

/// One stored token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredToken {
    #[serde(flatten)]
    info: TokenInfo,
    /// Hex SHA-256 digest of the secret.
    sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    format_version: u32,
    tokens: Vec<StoredToken>,
}

#[derive(Debug, Default)]
struct State {
    tokens: Vec<StoredToken>,
    by_digest: HashMap<String, usize>,
}

impl State {
    fn new(tokens: Vec<StoredToken>) -> Self {
        let by_digest = tokens
            .iter()
            .enumerate()
            .map(|(index, token)| (token.sha256.clone(), index))
            .collect();
        State { tokens, by_digest }
    }
}

/// The API tokens; see the module documentation.
#[derive(Debug)]
pub struct Tokens {
    /// Where the list is kept; `None` keeps it in memory only (tests).
    path: Option<PathBuf>,
    /// Digest of the bootstrap admin token.
    bootstrap_digest: String,
    state: RwLock<State>,
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random token secret.
pub(super) fn generate_secret() -> String {
    let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

fn generate_id() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!("tok_{}", hex::encode(bytes))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Tokens {
    /// The tokens stored in `dir/tokens.json` (none if the file does not exist yet), with
    /// `bootstrap_secret` as the bootstrap admin token.
    pub fn open(dir: &Path, bootstrap_secret: &str) -> Result<Tokens, TokenError> {
        let path = dir.join(TOKENS_FILE);
        let tokens = match fs::read(&path) {
            Ok(bytes) => {
                let file: TokenFile =
                    serde_json::from_slice(&bytes).map_err(|e| TokenError::File {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?;
                if file.format_version != FILE_FORMAT_VERSION {
                    return Err(TokenError::File {
                        path,
                        detail: format!(
                            "format version {} is not supported (this build reads {FILE_FORMAT_VERSION})",
                            file.format_version
                        ),
                    });
                }
                file.tokens
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(TokenError::File {
                    path,
                    detail: e.to_string(),
                });
            }
        };
        Ok(Tokens {
            path: Some(path),
            bootstrap_digest: digest(bootstrap_secret),
            state: RwLock::new(State::new(tokens)),
        })
    }

    /// Tokens kept in memory only, with `bootstrap_secret` as the admin token: for tests.
    pub fn in_memory(bootstrap_secret: &str) -> Tokens {
        Tokens {
            path: None,
            bootstrap_digest: digest(bootstrap_secret),
            state: RwLock::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The caller that `secret` identifies, if it is a valid token.
    pub fn authenticate(&self, secret: &str) -> Option<Caller> {
        let digest = digest(secret);
        if digest == self.bootstrap_digest {
            return Some(Caller {
                token_id: BOOTSTRAP_TOKEN_ID.to_owned(),
                role: Role::Admin,
            });
        }
        let state = self.read();
        let token = &state.tokens[*state.by_digest.get(&digest)?];
        Some(Caller {
            token_id: token.info.id.clone(),
            role: token.info.role,
        })
    }

    /// Creates a token; returns what is stored about it and its secret, which is not kept.
    pub fn create(&self, name: &str, role: Role) -> Result<(TokenInfo, String), TokenError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(TokenError::InvalidName);
        }
        let secret = generate_secret();
        let info = TokenInfo {
            id: generate_id(),
            name: name.to_owned(),
            role,
            created_at: now_ms(),
        };
        let mut state = self.write();
        let mut tokens = state.tokens.clone();
        tokens.push(StoredToken {
            info: info.clone(),
            sha256: digest(&secret),
        });
        self.save(&tokens)?;
        *state = State::new(tokens);
        Ok((info, secret))
    }

    /// Every token, the bootstrap one first, then by creation.
    pub fn list(&self) -> Vec<TokenInfo> {
        let bootstrap = TokenInfo {
            id: BOOTSTRAP_TOKEN_ID.to_owned(),
            name: "bootstrap admin token".to_owned(),
            role: Role::Admin,
            created_at: 0,
        };
        std::iter::once(bootstrap)
            .chain(self.read().tokens.iter().map(|t| t.info.clone()))
            .collect()
    }

    /// Revokes a token: it stops working at once.
    pub fn revoke(&self, id: &str) -> Result<TokenInfo, TokenError> {
        if id == BOOTSTRAP_TOKEN_ID {
            return Err(TokenError::Bootstrap);
        }
        let mut state = self.write();
        let mut tokens = state.tokens.clone();
        let index = tokens
            .iter()
            .position(|t| t.info.id == id)
            .ok_or_else(|| TokenError::NotFound(id.to_owned()))?;
        let removed = tokens.remove(index);
        self.save(&tokens)?;
        *state = State::new(tokens);
        Ok(removed.info)
    }

    /// Replaces the file with `tokens`, atomically.
    fn save(&self, tokens: &[StoredToken]) -> Result<(), TokenError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = TokenFile {
            format_version: FILE_FORMAT_VERSION,
            tokens: tokens.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("token lists serialize");
        write_private_file(path, &bytes).map_err(|e| TokenError::File {
            path: path.clone(),
            detail: e.to_string(),
        })
    }
}

/// Writes `bytes` to `path` atomically, readable by the owner only (mode 0600 on Unix).
pub(super) fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)?;
    // The rename is durable once the directory is synced.
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "weft_bootstrap_secret_for_tests";

    #[test]
    fn the_bootstrap_token_is_an_admin() {
        let tokens = Tokens::in_memory(ADMIN);
        let caller = tokens.authenticate(ADMIN).unwrap();
        assert_eq!(caller.role, Role::Admin);
        assert_eq!(caller.token_id, BOOTSTRAP_TOKEN_ID);
        assert!(tokens.authenticate("weft_other").is_none());
        assert!(matches!(
            tokens.revoke(BOOTSTRAP_TOKEN_ID),
            Err(TokenError::Bootstrap)
        ));
    }

    #[test]
    fn created_tokens_work_until_revoked_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::open(dir.path(), ADMIN).unwrap();
        let (info, secret) = tokens.create("ci", Role::Operator).unwrap();
        assert!(secret.starts_with(TOKEN_PREFIX));
        assert_eq!(tokens.authenticate(&secret).unwrap().role, Role::Operator);

        let reopened = Tokens::open(dir.path(), ADMIN).unwrap();
        assert_eq!(reopened.authenticate(&secret).unwrap().token_id, info.id);
        let stored = fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(!stored.contains(&secret), "the secret is not stored");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(TOKENS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        reopened.revoke(&info.id).unwrap();
        assert!(reopened.authenticate(&secret).is_none());
        let again = Tokens::open(dir.path(), ADMIN).unwrap();
        assert!(again.authenticate(&secret).is_none());
        assert!(matches!(
            again.revoke(&info.id),
            Err(TokenError::NotFound(_))
        ));
    }

    #[test]
    fn names_must_not_be_empty() {
        let tokens = Tokens::in_memory(ADMIN);
        assert!(matches!(
            tokens.create("  ", Role::Viewer),
            Err(TokenError::InvalidName)
        ));
    }
}
