//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Requests go only to the hosts an operator granted the plugin; any other host fails with
//! [`HttpError::Denied`]. The whole response body is read before [`RequestBuilder::send`]
//! returns. This module owns the public request and response types; the wire work lives
//! in the private backend.

mod error;
mod response;
pub(crate) mod url;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::backend::{ActiveHost, Host};

pub use self::error::HttpError;
pub use self::response::Response;
use self::url::Target;

/// An HTTP request method.
///
/// Parses case-insensitively from a string: `"post".parse::<Method>()` is [`Method::Post`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method, as an HTTP token in upper case.
    Other(String),
}

impl Method {
    /// The method as it goes on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
            Self::Options => "OPTIONS",
            Self::Trace => "TRACE",
            Self::Patch => "PATCH",
            Self::Other(method) => method,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = HttpError;

    fn from_str(method: &str) -> Result<Self, HttpError> {
        let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if method.is_empty() || !method.chars().all(is_token_char) {
            return Err(HttpError::InvalidRequest(format!(
                "`{method}` is not an http method"
            )));
        }
        Ok(match method.to_ascii_uppercase().as_str() {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "CONNECT" => Self::Connect,
            "OPTIONS" => Self::Options,
            "TRACE" => Self::Trace,
            "PATCH" => Self::Patch,
            other => Self::Other(other.to_owned()),
        })
    }
}

/// A request ready to send: what the backend receives.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: Method,
    /// The URL as the plugin gave it, for messages and for matching canned responses.
    pub(crate) url: String,
    #[cfg_attr(
        not(target_arch = "wasm32"),
        expect(dead_code, reason = "the fake host matches on the url as given")
    )]
    pub(crate) target: Target,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Bound on each phase: connecting, waiting for the first response byte, and waiting
    /// between two body bytes.
    pub(crate) timeout: Option<Duration>,
}

/// The HTTP client; from [`Context::http`](crate::Context::http).
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// use weft_sdk::http::{Method, Response};
/// use weft_sdk::testing::FakeHost;
///
/// let host = FakeHost::new().with_response(
///     Method::Post,
///     "https://api.example.com/items",
///     Response::new(201).with_json(json!({ "id": 7 })),
/// );
/// let ctx = host.context();
///
/// let response = ctx
///     .http()
///     .post("https://api.example.com/items")
///     .header("authorization", "Bearer secret")
///     .json(&json!({ "name": "widget" }))
///     .timeout(Duration::from_secs(10))
///     .send()
///     .unwrap();
/// assert_eq!(response.status(), 201);
/// assert_eq!(response.json::<serde_json::Value>().unwrap(), json!({ "id": 7 }));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Http<'ctx> {
    host: &'ctx ActiveHost,
}

impl<'ctx> Http<'ctx> {
    pub(crate) fn new(host: &'ctx ActiveHost) -> Self {
        Self { host }
    }

    /// Starts a request with any method.
    pub fn request(&self, method: Method, url: impl Into<String>) -> RequestBuilder<'ctx> {
        RequestBuilder {
            host: self.host,
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Ok(Vec::new()),
            timeout: None,
        }
    }

    /// Starts a `GET` request.
    pub fn get(&self, url: impl Into<String>) -> RequestBuilder<'ctx> {
        self.request(Method::Get, url)
    }

    /// Starts a `HEAD` request.
    pub fn head(&self, url: impl Into<String>) -> RequestBuilder<'ctx> {
        self.request(Method::Head, url)
    }

    /// Starts a `POST` request.
    pub fn post(&self, url: impl Into<String>) -> RequestBuilder<'ctx> {
        self.request(Method::Post, url)
    }

    /// Starts a `PUT` request.
    pub fn put(&self, url: impl Into<String>) -> RequestBuilder<'ctx> {
        self.request(Method::Put, url)
    }

    /// Starts a `PATCH` request.
    pub fn patch(&self, url: impl Into<String>) -> RequestBuilder<'ctx> {
        self.request(Method::Patch, url)
    }

    /// Starts a `DELETE` request.
    pub fn delete(&self, url: impl Into<String>) -> RequestBuilder<'ctx> {
        self.request(Method::Delete, url)
    }
}

/// A request being built; [`RequestBuilder::send`] sends it and waits for the response.
///
/// Mistakes found while building (a body that does not encode as JSON) are reported by
/// `send`, so the builder chains without `?` at every step.
#[derive(Debug)]
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder<'ctx> {
    host: &'ctx ActiveHost,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Result<Vec<u8>, HttpError>,
    timeout: Option<Duration>,
}

impl RequestBuilder<'_> {
    /// Adds a header; adding a name twice sends it twice.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Ok(body.into());
        self
    }

    /// Sets the body to `value` as JSON, and `content-type: application/json` unless a
    /// content type was already set.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.body = serde_json::to_vec(value).map_err(|error| {
            HttpError::InvalidRequest(format!("the body does not encode as json: {error}"))
        });
        if !self.has_header("content-type") {
            self = self.header("content-type", "application/json");
        }
        self
    }

    /// Bounds each phase of the request by `timeout`: connecting, waiting for the first
    /// byte of the response, and waiting between two bytes of its body. Without it, the
    /// daemon's defaults apply.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response.
    ///
    /// A response with an error status is still `Ok`: check [`Response::status`].
    pub fn send(self) -> Result<Response, HttpError> {
        let target = Target::parse(&self.url)?;
        let mut headers = self.headers;
        let body = self.body?;
        let sends_body =
            !body.is_empty() || matches!(self.method, Method::Post | Method::Put | Method::Patch);
        if sends_body && !has_header(&headers, "content-length") {
            headers.push(("content-length".to_owned(), body.len().to_string()));
        }
        let request = Request {
            method: self.method,
            url: self.url,
            target,
            headers,
            body,
            timeout: self.timeout,
        };
        self.host.send(&request)
    }

    fn has_header(&self, name: &str) -> bool {
        has_header(&self.headers, name)
    }
}

fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers
        .iter()
        .any(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_case_insensitively() {
        assert_eq!("post".parse::<Method>().unwrap(), Method::Post);
        assert_eq!(
            "purge".parse::<Method>().unwrap(),
            Method::Other("PURGE".into())
        );
        assert!("GET /".parse::<Method>().is_err());
        assert!("".parse::<Method>().is_err());
    }
}
