//! The `http` plugin: sends one HTTP request and returns the response.
//!
//! It requests no host: which hosts it may reach is decided by the operator who approves
//! it, and a request to any other host fails with `http-request-denied`. A status outside
//! `accept_status` fails the step, retryably for 5xx and 429.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weft_sdk::http::{HttpError, Method, Response};
use weft_sdk::{Context, Task, TaskError};

/// Code of the error for a response whose status is not accepted.
pub const UNEXPECTED_STATUS: &str = "unexpected-status";

/// How much of an unaccepted response's body goes into the error details, in characters.
const ERROR_BODY_PREVIEW_CHARS: usize = 4096;

/// Sends one HTTP request.
#[derive(Debug)]
pub struct HttpRequest;

/// The request to send.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// HTTP method, such as `GET` or `POST`; `GET` when absent.
    #[serde(default = "default_method")]
    pub method: String,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body. A string is sent as it is; any other JSON value is sent as JSON, with
    /// `content-type: application/json` unless `headers` set a content type.
    #[serde(default)]
    pub body: Option<Value>,
    /// Bound on connecting, on waiting for the response, and on each wait between two
    /// bytes of its body, in milliseconds; the daemon's defaults when absent.
    pub timeout_ms: Option<u64>,
    /// Status codes that count as success; `200` to `299` when absent.
    pub accept_status: Option<Vec<u16>>,
}

/// The response received.
#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Output {
    /// Status code.
    pub status: u16,
    /// Response headers, names in lower case; a header received several times has its
    /// values joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// Response body as text; bytes that are not UTF-8 are replaced.
    pub body: String,
    /// The body parsed as JSON, when the response's content type is JSON and the body
    /// parses; otherwise null.
    pub json: Option<Value>,
}

fn default_method() -> String {
    "GET".to_owned()
}

impl Task for HttpRequest {
    type Input = Input;
    type Output = Output;

    fn run(input: Input, ctx: &Context) -> Result<Output, TaskError> {
        let method: Method = input
            .method
            .parse()
            .map_err(|error: HttpError| TaskError::invalid_input(error.to_string()))?;
        let accepted = AcceptedStatus::new(input.accept_status)?;
        let mut request = ctx.http().request(method.clone(), &input.url);
        for (name, value) in &input.headers {
            request = request.header(name, value);
        }
        request = match input.body {
            None => request,
            Some(Value::String(text)) => request.body(text),
            Some(document) => request.json(&document),
        };
        if let Some(timeout_ms) = input.timeout_ms {
            if timeout_ms == 0 {
                return Err(TaskError::invalid_input("`timeout_ms` must be positive"));
            }
            request = request.timeout(Duration::from_millis(timeout_ms));
        }
        let response = request.send().map_err(|error| match error {
            HttpError::InvalidUrl { .. } => TaskError::invalid_input(error.to_string()),
            error => TaskError::from(error),
        })?;
        if !accepted.contains(response.status()) {
            return Err(unexpected_status(&method, &input.url, &response));
        }
        Ok(output(&response))
    }
}

weft_sdk::export_task!(HttpRequest);

/// The statuses that count as success.
enum AcceptedStatus {
    Success,
    Listed(Vec<u16>),
}

impl AcceptedStatus {
    fn new(listed: Option<Vec<u16>>) -> Result<Self, TaskError> {
        match listed {
            None => Ok(Self::Success),
            Some(listed) if listed.is_empty() => Err(TaskError::invalid_input(
                "`accept_status` must list at least one status",
            )),
            Some(listed) => Ok(Self::Listed(listed)),
        }
    }

    fn contains(&self, status: u16) -> bool {
        match self {
            Self::Success => (200..300).contains(&status),
            Self::Listed(listed) => listed.contains(&status),
        }
    }
}

fn unexpected_status(method: &Method, url: &str, response: &Response) -> TaskError {
    let status = response.status();
    let message = format!("{method} {url} answered {status}, which is not an accepted status");
    let body = String::from_utf8_lossy(response.body());
    let body_preview: String = body.chars().take(ERROR_BODY_PREVIEW_CHARS).collect();
    let details = json!({ "status": status, "body": body_preview });
    let error = if status >= 500 || status == 429 {
        TaskError::retryable(UNEXPECTED_STATUS, message)
    } else {
        TaskError::new(UNEXPECTED_STATUS, message)
    };
    error.with_details(details)
}

fn output(response: &Response) -> Output {
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in response.headers() {
        headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    let json = if response.is_json() {
        serde_json::from_slice(response.body()).ok()
    } else {
        None
    };
    Output {
        status: response.status(),
        headers,
        body: String::from_utf8_lossy(response.body()).into_owned(),
        json,
    }
}

#[cfg(test)]
mod tests;
