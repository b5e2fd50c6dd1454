//! Extractors whose failures are problem responses naming the fault: request bodies read
//! under a size limit ([`JsonBody`], [`RawBody`]), JSON that must fit its type exactly
//! (unknown fields are refused; the pointer says where), and path and query parameters.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::{ApiError, Location};

/// Reads a body of at most `limit_bytes`.
pub async fn read_body(request: Request, limit_bytes: usize) -> Result<Bytes, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit_bytes as u64) {
        return Err(ApiError::PayloadTooLarge { limit_bytes });
    }
    axum::body::to_bytes(request.into_body(), limit_bytes)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::PayloadTooLarge { limit_bytes }
            } else {
                ApiError::BadRequest {
                    detail: format!("cannot read the request body: {e}"),
                    at: Location::body(""),
                }
            }
        })
}

/// The media type of a request, without parameters, lowercased; `None` without the header.
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// A JSON request body that must deserialize into `T` (whose unknown fields are refused with
/// `#[serde(deny_unknown_fields)]`). An empty body is read as `{}`, so a body whose fields are
/// all optional may be left out.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let media = media_type(request.headers());
        let bytes = read_body(request, state.config.max_request_body_bytes).await?;
        if bytes.is_empty() {
            return parse_json(b"{}").map(JsonBody);
        }
        if media.as_deref() != Some("application/json") {
            return Err(ApiError::UnsupportedMediaType {
                expected: "application/json",
            });
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as a `T`; errors point at the offending member.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let pointer = pointer_of(e.path());
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest {
                detail: format!("the body is not valid JSON: {inner}"),
                at: Location::body(""),
            }
        } else {
            ApiError::Unprocessable {
                detail: inner.to_string(),
                at: Location::body(pointer),
            }
        }
    })?;
    deserializer.end().map_err(|e| ApiError::BadRequest {
        detail: format!("the body is not valid JSON: {e}"),
        at: Location::body(""),
    })?;
    Ok(value)
}

/// A JSON pointer for a `serde_path_to_error` path.
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => pointer.push('?'),
        }
    }
    pointer
}

/// Path parameters; a path that does not fit `T` is a 400.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParams(value))
            .map_err(|e| ApiError::BadRequest {
                detail: e.body_text(),
                at: Location::Request,
            })
    }
}

/// Query parameters; a query that does not fit `T` (an unknown parameter, say) is a 400.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryParams(value))
            .map_err(|e| ApiError::BadRequest {
                detail: e.body_text(),
                at: Location::Request,
            })
    }
}

/// Parses a path or query parameter, naming it in the error.
pub fn parse_param<T>(name: &str, value: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| ApiError::BadRequest {
        detail: format!("`{name}` is invalid: {e}"),
        at: Location::parameter(name),
    })
}
