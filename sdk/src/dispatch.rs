//! One call of `run` at the JSON level: decode the input, run the task, encode the output.
//!
//! Shared by the component export and by [`testing::run_json`](crate::testing), so that a
//! native test sees exactly the errors the daemon would.

use crate::error::{INVALID_INPUT, INVALID_OUTPUT};
use crate::{Context, Task, TaskError};

/// Runs `T` on a JSON input document and returns its JSON output document.
pub(crate) fn run_json<T: Task>(input: &str, ctx: &Context) -> Result<String, TaskError> {
    let input = decode_input::<T::Input>(input)?;
    let output = T::run(input, ctx)?;
    serde_json::to_string(&output).map_err(|error| {
        TaskError::new(
            INVALID_OUTPUT,
            format!("the output does not encode as json: {error}"),
        )
    })
}

/// Decodes the input, naming the offending field when it does not fit.
fn decode_input<I: serde::de::DeserializeOwned>(input: &str) -> Result<I, TaskError> {
    let mut deserializer = serde_json::Deserializer::from_str(input);
    let decoded = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = if path == "." {
            format!("invalid input: {}", error.inner())
        } else {
            format!("invalid input at `{path}`: {}", error.inner())
        };
        TaskError::new(INVALID_INPUT, message).with_details(serde_json::json!({ "path": path }))
    })?;
    deserializer.end().map_err(|error| {
        TaskError::new(
            INVALID_INPUT,
            format!("invalid input: more than one json value: {error}"),
        )
    })?;
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
    use serde::{Deserialize, Serialize, Serializer};

    use super::*;
    use crate::testing::FakeHost;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Order {
        lines: Vec<Line>,
    }

    #[derive(Debug, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Line {
        quantity: u32,
    }

    struct CountLines;

    impl Task for CountLines {
        type Input = Order;
        type Output = usize;

        fn run(input: Order, _ctx: &Context) -> Result<usize, TaskError> {
            Ok(input.lines.len())
        }
    }

    struct Unencodable;

    impl Serialize for Unencodable {
        fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("cannot encode this"))
        }
    }

    impl JsonSchema for Unencodable {
        fn schema_name() -> Cow<'static, str> {
            "Unencodable".into()
        }

        fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
            json_schema!({})
        }
    }

    struct ReturnsUnencodable;

    impl Task for ReturnsUnencodable {
        type Input = serde_json::Value;
        type Output = Unencodable;

        fn run(_input: serde_json::Value, _ctx: &Context) -> Result<Unencodable, TaskError> {
            Ok(Unencodable)
        }
    }

    fn run(input: &str) -> Result<String, TaskError> {
        run_json::<CountLines>(input, &FakeHost::new().context())
    }

    #[test]
    fn decodes_input_and_encodes_output() {
        assert_eq!(
            run(r#"{"lines": [{"quantity": 1}, {"quantity": 2}]}"#).unwrap(),
            "2"
        );
    }

    #[test]
    fn invalid_input_names_the_offending_field() {
        let error = run(r#"{"lines": [{"quantity": 1}, {"quantity": -2}]}"#).unwrap_err();
        assert_eq!(error.code(), INVALID_INPUT);
        assert!(!error.is_retryable());
        assert!(error.message().contains("`lines[1].quantity`"), "{error}");
        assert_eq!(
            error.details(),
            Some(&serde_json::json!({ "path": "lines[1].quantity" }))
        );

        let error = run(r#"{"lines": []} {}"#).unwrap_err();
        assert_eq!(error.code(), INVALID_INPUT);
        let error = run("not json").unwrap_err();
        assert_eq!(error.code(), INVALID_INPUT);
    }

    #[test]
    fn unencodable_output_is_an_error() {
        let error = run_json::<ReturnsUnencodable>("null", &FakeHost::new().context()).unwrap_err();
        assert_eq!(error.code(), INVALID_OUTPUT);
        assert!(error.message().contains("cannot encode this"), "{error}");
    }
}
