//! Access control: who may call the API, and with which role.
//!
//! Callers present bearer tokens. Each token has a [`Role`]; roles are ordered (`viewer` <
//! `operator` < `admin`) and a route accepts its role and every higher one. Tokens are kept
//! only as SHA-256 digests in `DIR/tokens.json` ([`Tokens`]); the secret is shown once, when it
//! is created. The first admin token comes from [`bootstrap`]: `WEFT_ADMIN_TOKEN`, or a token
//! generated on the first start and written to `DIR/admin.token`.
//!
//! This module knows nothing about HTTP: the API turns a missing or unknown token into 401
//! and a role that is too low into 403.

mod bootstrap;
mod role;
mod tokens;

pub use bootstrap::{ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE, BootstrapError, BootstrapToken, bootstrap};
pub use role::{Role, RoleParseError};
pub use tokens::{BOOTSTRAP_TOKEN_ID, Caller, TOKENS_FILE, TokenError, TokenInfo, Tokens};
