//! [`Response`]: a complete HTTP response, body included.
//!
//! The client reads the whole body before returning, so a response is plain data. Its
//! builder methods exist for tests, which hand canned responses to the
//! [`FakeHost`](crate::testing::FakeHost).

use serde::de::DeserializeOwned;

use super::HttpError;

/// A complete HTTP response.
///
/// ```
/// use serde_json::json;
/// use weft_sdk::http::Response;
///
/// let response = Response::new(200).with_json(json!({ "id": 7 }));
/// assert!(response.is_success());
/// assert_eq!(response.header("Content-Type"), Some("application/json"));
/// assert_eq!(response.json::<serde_json::Value>().unwrap()["id"], 7);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header; names are kept as given and compared without regard to case.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(self, body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: body.into(),
            ..self
        }
    }

    /// Replaces the body with `value` as JSON and sets `content-type: application/json`.
    pub fn with_json(self, value: serde_json::Value) -> Self {
        self.with_header("content-type", "application/json")
            .with_body(value.to_string())
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is in `200..=299`.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// All headers in the order received, as `(name, value)`; a header sent several times
    /// appears several times. Values that are not UTF-8 are decoded lossily.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The first value of the header `name`, compared without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Whether the `content-type` header names JSON (`application/json` or any `+json`
    /// media type).
    pub fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|content_type| {
            let media_type = content_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            media_type == "application/json" || media_type.ends_with("+json")
        })
    }

    /// The body as bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out of the response.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(&self.body)
            .map_err(|error| HttpError::Decode(format!("the body is not utf-8: {error}")))
    }

    /// The body decoded from JSON. A decoding failure names the offending field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        let mut deserializer = serde_json::Deserializer::from_slice(&self.body);
        let value = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|error| HttpError::Decode(describe_json_error(&error)))?;
        deserializer.end().map_err(|error| {
            HttpError::Decode(format!("the body is not one json value: {error}"))
        })?;
        Ok(value)
    }
}

fn describe_json_error(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = error.path().to_string();
    if path == "." {
        format!("the body is not the expected json: {}", error.inner())
    } else {
        format!("the body's `{path}` is not as expected: {}", error.inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        id: u32,
    }

    #[test]
    fn json_decoding_errors_name_the_field() {
        let response = Response::new(200).with_body(r#"{"id": "seven"}"#);
        let error = response.json::<Item>().unwrap_err();
        assert!(error.to_string().contains("`id`"), "{error}");
    }

    #[test]
    fn recognizes_json_media_types() {
        let json = |content_type| Response::new(200).with_header("Content-Type", content_type);
        assert!(json("application/json; charset=utf-8").is_json());
        assert!(json("application/problem+json").is_json());
        assert!(!json("text/plain").is_json());
        assert!(!Response::new(200).is_json());
    }
}
