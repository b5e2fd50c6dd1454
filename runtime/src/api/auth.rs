//! Role checks: the extractors [`Viewer`], [`Operator`] and [`Admin`], one of which every
//! `/api/v1` handler takes first, so the role a route requires is in its signature.
//!
//! A request without an `Authorization: Bearer <token>` header, or with a token that is not
//! valid, fails with 401; a valid token of a lower role fails with 403.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::access::{Caller, Role};

/// The caller behind a request, if its token is valid and allows `required`.
fn authorize(parts: &Parts, state: &AppState, required: Role) -> Result<Caller, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized)?;
    let value = header.to_str().map_err(|_| ApiError::Unauthorized)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized);
    }
    let caller = state
        .tokens
        .authenticate(token.trim())
        .ok_or(ApiError::Unauthorized)?;
    if !caller.role.allows(required) {
        return Err(ApiError::Forbidden {
            required,
            actual: caller.role,
        });
    }
    Ok(caller)
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Caller);

        impl $name {
            /// The id of the caller's token, for the audit log.
            pub fn token(&self) -> &str {
                &self.0.token_id
            }
        }

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, Self::Rejection> {
                authorize(parts, state, $role).map($name)
            }
        }
    };
}

/// A caller with at least the `viewer` role. Reading leaves no audit trail, so the caller
/// is not kept.
#[derive(Debug, Clone, Copy)]
pub struct Viewer;

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authorize(parts, state, Role::Viewer).map(|_| Viewer)
    }
}
role_extractor!(
    /// A caller with at least the `operator` role.
    Operator,
    Role::Operator
);
role_extractor!(
    /// A caller with the `admin` role.
    Admin,
    Role::Admin
);
