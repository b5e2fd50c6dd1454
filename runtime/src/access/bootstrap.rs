//! The first admin token: from `WEFT_ADMIN_TOKEN`, or generated on the first start and kept
//! in `DIR/admin.token` (mode 0600) for the operator to read. The token itself is never logged.

use std::path::{Path, PathBuf};

use super::tokens::{generate_secret, write_private_file};

/// Environment variable that sets the bootstrap admin token.
pub const ADMIN_TOKEN_ENV: &str = "WEFT_ADMIN_TOKEN";

/// File of the data directory that holds a generated bootstrap admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Shortest bootstrap token accepted from the environment: shorter ones are guessable.
const MIN_TOKEN_CHARS: usize = 16;

/// Where the bootstrap admin token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapToken {
    /// `WEFT_ADMIN_TOKEN`.
    Environment,
    /// `DIR/admin.token`, written by an earlier start.
    File(PathBuf),
    /// Generated now and written to this file.
    Generated(PathBuf),
}

/// Why the bootstrap token could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// `WEFT_ADMIN_TOKEN` is too short.
    #[error("{ADMIN_TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters")]
    TooShort,
    /// The token file is empty.
    #[error("{0} is empty; delete it to generate a new admin token")]
    EmptyFile(PathBuf),
    /// The token file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The bootstrap admin token's secret and where it came from: `from_environment` (the value
/// of [`ADMIN_TOKEN_ENV`]) if set, else `dir/admin.token`, generated if missing.
pub fn bootstrap(
    dir: &Path,
    from_environment: Option<String>,
) -> Result<(String, BootstrapToken), BootstrapError> {
    if let Some(secret) = from_environment {
        let secret = secret.trim().to_owned();
        if secret.chars().count() < MIN_TOKEN_CHARS {
            return Err(BootstrapError::TooShort);
        }
        return Ok((secret, BootstrapToken::Environment));
    }
    let path = dir.join(ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = text.trim().to_owned();
            if secret.is_empty() {
                return Err(BootstrapError::EmptyFile(path));
            }
            Ok((secret, BootstrapToken::File(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = generate_secret();
            write_private_file(&path, format!("{secret}\n").as_bytes()).map_err(|source| {
                BootstrapError::File {
                    path: path.clone(),
                    source,
                }
            })?;
            Ok((secret, BootstrapToken::Generated(path)))
        }
        Err(source) => Err(BootstrapError::File { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_start_generates_a_private_token_file_and_later_starts_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, source) = bootstrap(dir.path(), None).unwrap();
        let path = dir.path().join(ADMIN_TOKEN_FILE);
        assert_eq!(source, BootstrapToken::Generated(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, source) = bootstrap(dir.path(), None).unwrap();
        assert_eq!(again, secret);
        assert_eq!(source, BootstrapToken::File(path));
    }

    #[test]
    fn the_environment_wins_and_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, source) =
            bootstrap(dir.path(), Some("a-long-enough-admin-token".into())).unwrap();
        assert_eq!(secret, "a-long-enough-admin-token");
        assert_eq!(source, BootstrapToken::Environment);
        assert!(!dir.path().join(ADMIN_TOKEN_FILE).exists());
        assert!(matches!(
            bootstrap(dir.path(), Some("short".into())),
            Err(BootstrapError::TooShort)
        ));
    }
}
