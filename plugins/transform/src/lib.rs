//! The `transform` plugin: reshapes JSON with a jq query.
//!
//! The input is `{ "query": ..., "data": ... }`. The output is the one value the query
//! yields; when it yields several, an array of them in order; when it yields none, null.

mod query;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use weft_sdk::{Context, Task, TaskError};

pub use self::query::QueryError;

/// Code of the error for a query that does not parse or names something undefined.
pub const INVALID_QUERY: &str = "invalid-query";

/// Code of the error for a query that failed while running.
pub const QUERY_FAILED: &str = "query-failed";

/// Reshapes JSON with a jq query.
#[derive(Debug)]
pub struct Transform;

/// A query and the document it runs over.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// A jq query, such as `.items | map({id, name})`.
    pub query: String,
    /// The JSON document the query runs over; null when absent.
    #[serde(default)]
    pub data: Value,
}

impl Task for Transform {
    type Input = Input;
    type Output = Value;

    const DESCRIPTION: Option<&'static str> = Some(
        "Reshapes JSON with a jq query: input {query, data}. The output is the query's \
         result; an array of its results in order when it yields several, null when none.",
    );

    fn run(input: Input, ctx: &Context) -> Result<Value, TaskError> {
        let mut results = query::evaluate(&input.query, input.data).map_err(|error| {
            let message = error.to_string();
            match error {
                QueryError::Invalid(_) => TaskError::new(INVALID_QUERY, message),
                QueryError::Failed(_) => TaskError::new(QUERY_FAILED, message),
            }
        })?;
        ctx.log()
            .debug(format_args!("the query yielded {} values", results.len()));
        Ok(match results.len() {
            0 => Value::Null,
            1 => results.remove(0),
            _ => Value::Array(results),
        })
    }
}

weft_sdk::export_task!(Transform);

#[cfg(test)]
mod tests;
