//! The CLI's HTTP client of the daemon's API: where the daemon is, which token to send, how
//! its problem answers read, and the event stream (SSE) reader.

use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use weft::access::ADMIN_TOKEN_FILE;
use weft::api::Problem;

use super::output::Output;

/// Where the daemon is, how to authenticate, and how to print.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// URL of the daemon.
    #[arg(
        long,
        global = true,
        env = "WEFT_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// API token. Without one, the admin token in the local data directory (`WEFT_DATA_DIR`,
    /// or `./weft-data`) is used if it can be read.
    #[arg(long, global = true, env = "WEFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Output format: `text` for people, `json` for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

impl Connection {
    /// A client for the daemon.
    pub fn client(&self) -> Result<Client> {
        let token = self.token.clone().or_else(local_admin_token);
        Client::new(&self.server, token)
    }
}

/// The bootstrap admin token of a daemon running from the local data directory, if any.
fn local_admin_token() -> Option<String> {
    let dir = std::env::var_os("WEFT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("weft-data"));
    let token = std::fs::read_to_string(dir.join(ADMIN_TOKEN_FILE)).ok()?;
    Some(token.trim().to_owned()).filter(|t| !t.is_empty())
}

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiFailure {
    /// The HTTP status.
    pub status: StatusCode,
    /// The problem body, when the answer had one.
    pub problem: Option<Problem>,
    /// The raw body otherwise.
    pub body: String,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(problem) = &self.problem else {
            return write!(
                f,
                "the daemon answered {}: {}",
                self.status,
                self.body.trim()
            );
        };
        write!(f, "{}: {}", problem.title.to_lowercase(), problem.detail)?;
        if let Some(pointer) = problem.pointer.as_ref().filter(|p| !p.is_empty()) {
            write!(f, " (at {pointer})")?;
        }
        // Every 401 and 403 is about the authorization header: saying so adds nothing.
        let about_token = matches!(
            self.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        );
        if let Some(parameter) = problem.parameter.as_ref().filter(|_| !about_token) {
            write!(f, " (parameter {parameter})")?;
        }
        for p in problem.problems.iter().flatten() {
            write!(f, "\n  {} {}: {}", p.path, p.code, p.message)?;
        }
        if self.status == StatusCode::UNAUTHORIZED {
            write!(f, "\n  give a token with --token or WEFT_TOKEN")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiFailure {}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the daemon at `server` (`http://host:port`).
    pub fn new(server: &str, token: Option<String>) -> Result<Client> {
        let base = server.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            anyhow::bail!("--server must be a URL such as http://127.0.0.1:8080, not `{server}`");
        }
        let http = reqwest::Client::builder()
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Client { base, token, http })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send(&self, builder: RequestBuilder) -> Result<reqwest::Response> {
        let response = builder
            .send()
            .await
            .with_context(|| format!("cannot reach the daemon at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let problem = serde_json::from_str::<Problem>(&body).ok();
        Err(ApiFailure {
            status,
            problem,
            body,
        }
        .into())
    }

    async fn json<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T> {
        let response = self.send(builder).await?;
        let text = response.text().await.context("reading the answer")?;
        serde_json::from_str(&text).with_context(|| format!("unexpected answer: {text}"))
    }

    /// `GET path` with query parameters, as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        self.json(self.request(Method::GET, path).query(query))
            .await
    }

    /// `POST path` with a JSON body, as `T`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.json(self.request(Method::POST, path).json(body)).await
    }

    /// `POST path` with a raw body of `content_type`, as `T`.
    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<T> {
        let builder = self
            .request(Method::POST, path)
            .header(header::CONTENT_TYPE, content_type)
            .body(body);
        self.json(builder).await
    }

    /// `DELETE path`, as `T`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json(self.request(Method::DELETE, path)).await
    }

    /// Opens the live event stream of job `id` after sequence `after`.
    pub async fn event_stream(&self, id: &str, after: u64) -> Result<EventStream> {
        let builder = self
            .request(Method::GET, &format!("/api/v1/jobs/{id}/events"))
            .query(&[("after", after.to_string())])
            .header(header::ACCEPT, "text/event-stream");
        let response = self.send(builder).await?;
        Ok(EventStream {
            response,
            buffer: String::new(),
        })
    }
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// The `id` field: the event's sequence number.
    pub id: Option<String>,
    /// The `event` field: the event's type.
    pub event: Option<String>,
    /// The `data` field: the event as JSON.
    pub data: String,
}

/// Reads server-sent events from a response.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<SseMessage>> {
        loop {
            if let Some(message) = take_message(&mut self.buffer) {
                if message.data.is_empty() && message.event.is_none() {
                    // A keep-alive comment.
                    continue;
                }
                return Ok(Some(message));
            }
            match self
                .response
                .chunk()
                .await
                .context("reading the event stream")?
            {
                Some(chunk) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                None => return Ok(None),
            }
        }
    }
}

/// Removes the first complete message (up to a blank line) from `buffer` and parses it.
fn take_message(buffer: &mut String) -> Option<SseMessage> {
    let normalized = buffer.replace("\r\n", "\n");
    let end = normalized.find("\n\n")?;
    let block = normalized[..end].to_owned();
    *buffer = normalized[end + 2..].to_owned();
    let mut message = SseMessage::default();
    let mut data = Vec::new();
    for line in block.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => message.id = Some(value.to_owned()),
            "event" => message.event = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    message.data = data.join("\n");
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_split_on_blank_lines_and_comments_skipped() {
        let mut buffer =
            ": keep-alive\n\nid: 3\nevent: step_started\ndata: {\"a\":1}\n\nid: 4\r\n".to_owned();
        assert_eq!(take_message(&mut buffer), Some(SseMessage::default()));
        assert_eq!(
            take_message(&mut buffer),
            Some(SseMessage {
                id: Some("3".into()),
                event: Some("step_started".into()),
                data: "{\"a\":1}".into(),
            })
        );
        assert_eq!(take_message(&mut buffer), None);
        assert_eq!(buffer, "id: 4\n");
    }
}
