//! Compiles and runs one jq query over one JSON document.
//!
//! Owns the translation between jq's world and the plugin's: JSON in and out, and jq's
//! load, compile and runtime errors into [`QueryError`] messages that point at the
//! offending part of the query.

use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, compile, data};
use jaq_json::Val;
use serde::Deserialize;
use serde_json::Value;

/// How much of the query an error message quotes where it went wrong, in characters.
const QUOTED_QUERY_CHARS: usize = 24;

/// Why a query produced no result.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse or names something undefined.
    #[error("invalid query: {0}")]
    Invalid(String),
    /// The query raised an error, or produced something that is not JSON, while running.
    #[error("the query failed: {0}")]
    Failed(String),
}

/// Runs `query` over `data` and returns every value it yields, in order.
pub fn evaluate(query: &str, data: Value) -> Result<Vec<Value>, QueryError> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: query,
                path: (),
            },
        )
        .map_err(|errors| QueryError::Invalid(describe_load_errors(query, errors)))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| QueryError::Invalid(describe_compile_errors(errors)))?;

    let input = Val::deserialize(data)
        .map_err(|error| QueryError::Failed(format!("the data is not usable: {error}")))?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
    filter
        .id
        .run((ctx, input))
        .map(|result| match result {
            Ok(value) => to_json(&value),
            Err(exception) => Err(QueryError::Failed(match exception.get_err() {
                Ok(error) => error.to_string(),
                Err(exception) => match exception.get_halt() {
                    Ok(exit_code) => format!("the query halted with exit code {exit_code}"),
                    Err(_) => "the query raised an unexpected exception".to_owned(),
                },
            })),
        })
        .collect()
}

/// jq values are a superset of JSON (byte strings, NaN); anything beyond JSON is an error.
fn to_json(value: &Val) -> Result<Value, QueryError> {
    let text = value.to_string();
    serde_json::from_str(&text)
        .map_err(|_| QueryError::Failed(format!("the query produced `{text}`, which is not json")))
}

fn describe_load_errors(query: &str, errors: load::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_file, error) in errors {
        match error {
            load::Error::Io(failures) => {
                messages.extend(
                    failures
                        .into_iter()
                        .map(|(path, reason)| format!("cannot import `{path}`: {reason}")),
                );
            }
            load::Error::Lex(failures) => {
                messages.extend(
                    failures
                        .into_iter()
                        .map(|(expected, found)| expected_at(query, expected.as_str(), found)),
                );
            }
            load::Error::Parse(failures) => {
                messages.extend(
                    failures
                        .into_iter()
                        .map(|(expected, found)| expected_at(query, expected.as_str(), found)),
                );
            }
        }
    }
    messages.join("; ")
}

fn describe_compile_errors(errors: compile::Errors<&str, ()>) -> String {
    let messages: Vec<String> = errors
        .into_iter()
        .flat_map(|(_file, failures)| failures)
        .map(|(name, undefined)| match undefined {
            compile::Undefined::Filter(arity) => format!("undefined filter `{name}/{arity}`"),
            other => format!("undefined {} `{name}`", other.as_str()),
        })
        .collect();
    messages.join("; ")
}

/// "expected X at character N, found `...`", where `found` is a slice of `query`.
fn expected_at(query: &str, expected: &str, found: &str) -> String {
    // jq's errors carry the offending slice of the query; its address gives its position.
    let offset = (found.as_ptr() as usize).wrapping_sub(query.as_ptr() as usize);
    let Some(before) = query.get(..offset) else {
        return format!("expected {expected}");
    };
    let position = before.chars().count() + 1;
    if found.is_empty() {
        return format!("expected {expected} at the end of the query (character {position})");
    }
    let quoted: String = found.chars().take(QUOTED_QUERY_CHARS).collect();
    format!("expected {expected} at character {position}, found `{quoted}`")
}
