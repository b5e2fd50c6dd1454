//! `/api/v1/tokens`: admins create, list and revoke API tokens. A token's secret is in the
//! answer to its creation and nowhere else; the daemon keeps only its digest.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, Denied, Location, Problem};
use super::extract::{JsonBody, PathParams};
use crate::access::{Role, TokenError, TokenInfo};

/// A token to create.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for (1 to 100 characters).
    pub name: String,
    /// What it allows.
    pub role: Role,
}

/// A new token, with its secret: shown once.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The secret to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// What is stored about it.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Every token, without secrets.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenList {
    /// The tokens; the bootstrap admin token first.
    pub tokens: Vec<TokenInfo>,
}

/// Path of one token.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    /// The token's id.
    pub id: String,
}

fn token_error(error: TokenError) -> ApiError {
    match error {
        TokenError::NotFound(_) => ApiError::NotFound {
            detail: error.to_string(),
            at: Location::parameter("id"),
        },
        TokenError::Bootstrap => ApiError::Conflict(error.to_string()),
        TokenError::InvalidName => ApiError::Unprocessable {
            detail: error.to_string(),
            at: Location::body("/name"),
        },
        TokenError::File { .. } => ApiError::Internal(error.to_string()),
    }
}

/// Creates a token. The answer holds its secret, which cannot be read again.
#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "create_token", tag = "tokens",
    security(("bearer" = ["admin"])), request_body = CreateToken,
    responses(
        (status = 201, description = "Created", body = CreatedToken),
        (status = 422, description = "Invalid name or role", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn create(
    admin: Admin,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let (info, token) = state
        .tokens
        .create(&request.name, request.role)
        .map_err(token_error)?;
    tracing::info!(token = admin.token(), created = %info.id, role = %info.role, "token created");
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info })))
}

/// Every token, without secrets.
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "list_tokens", tag = "tokens",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "The tokens", body = TokenList), Denied))]
pub async fn list(_: Admin, State(state): State<AppState>) -> Json<TokenList> {
    Json(TokenList {
        tokens: state.tokens.list(),
    })
}

/// Revokes a token: it stops working at once. The bootstrap token cannot be revoked here
/// (409): change `WEFT_ADMIN_TOKEN` or `DIR/admin.token` and restart.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", operation_id = "revoke_token", tag = "tokens",
    security(("bearer" = ["admin"])), params(TokenPath),
    responses(
        (status = 200, description = "Revoked", body = TokenInfo),
        (status = 404, description = "No such token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The bootstrap token", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn revoke(
    admin: Admin,
    State(state): State<AppState>,
    PathParams(path): PathParams<TokenPath>,
) -> Result<Json<TokenInfo>, ApiError> {
    let revoked = state.tokens.revoke(&path.id).map_err(token_error)?;
    tracing::info!(token = admin.token(), revoked = %revoked.id, "token revoked");
    Ok(Json(revoked))
}
