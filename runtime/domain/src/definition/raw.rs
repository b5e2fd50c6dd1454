//! The first stage of reading a definition: the document as written, before any rule beyond
//! its shape is checked.
//!
//! The raw structs mirror the format field for field and reject unknown fields. To report
//! every problem and not only serde's first one, reading goes in three passes: unknown fields
//! are listed (and removed) using the field tables below, the top level is read without its
//! steps, and then each step is read on its own. Type errors come with the JSON pointer of the
//! offending value. A unit test keeps the field tables equal to what serde accepts.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::pointer::JsonPointer;

use super::OnFailure;
use super::problem::{Problem, ProblemKind};

/// Top-level fields of a definition.
pub(super) const DEFINITION_FIELDS: &[&str] =
    &["name", "version", "description", "input", "steps", "output"];
/// Fields of `input`.
pub(super) const INPUT_FIELDS: &[&str] = &["required", "schema"];
/// Fields of a step.
pub(super) const STEP_FIELDS: &[&str] = &[
    "id",
    "description",
    "plugin",
    "depends_on",
    "input",
    "when",
    "for_each",
    "concurrency",
    "max_failures",
    "retry",
    "timeout_ms",
    "fuel",
    "memory_bytes",
    "on_failure",
];
/// Fields of `retry`.
pub(super) const RETRY_FIELDS: &[&str] = &[
    "max_attempts",
    "initial_interval_ms",
    "multiplier",
    "max_interval_ms",
    "jitter",
    "retry_on",
];
/// Fields of `retry.retry_on`.
pub(super) const RETRY_ON_FIELDS: &[&str] = &["plugin_error", "deadline_exceeded", "trap"];

/// A definition as written, without its steps (read separately).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefinition {
    pub name: String,
    pub version: u32,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input: Option<RawInput>,
    /// Always empty here: [`read`] takes the steps out and reads them one by one.
    #[expect(
        dead_code,
        reason = "declares `steps` to serde, keeping the field table test honest"
    )]
    #[serde(default)]
    pub steps: Vec<RawStep>,
    #[serde(default)]
    pub output: Option<Value>,
}

/// The `input` section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInput {
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default)]
    pub schema: Option<Value>,
}

/// A step as written. Numbers are read as `u64`/`f64` so that range checks, not type errors,
/// report values that are too large.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    pub plugin: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub for_each: Option<String>,
    #[serde(default)]
    pub concurrency: Option<u64>,
    #[serde(default)]
    pub max_failures: Option<u64>,
    #[serde(default)]
    pub retry: Option<RawRetry>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub fuel: Option<u64>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub on_failure: Option<OnFailure>,
}

/// A retry policy as written; absent fields take their defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub max_attempts: Option<u64>,
    pub initial_interval_ms: Option<u64>,
    pub multiplier: Option<f64>,
    pub max_interval_ms: Option<u64>,
    pub jitter: Option<f64>,
    pub retry_on: Option<RawRetryOn>,
}

/// `retry.retry_on` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetryOn {
    pub plugin_error: Option<bool>,
    pub deadline_exceeded: Option<bool>,
    pub trap: Option<bool>,
}

/// A step that could not be read in full still names itself and its dependencies when it can,
/// so that its dependents are not also reported as broken.
#[derive(Debug)]
pub(super) enum StepEntry {
    Read(Box<RawStep>),
    Unreadable {
        id: Option<String>,
        depends_on: Vec<String>,
    },
}

/// The document after the first stage.
#[derive(Debug)]
pub(super) struct RawDocument {
    /// `None` when the top level has a type error (already reported).
    pub definition: Option<RawDefinition>,
    /// `None` when `steps` is absent or not an array (already reported).
    pub steps: Option<Vec<StepEntry>>,
}

/// Reads `document`, adding every problem found to `problems`.
pub(super) fn read(mut document: Value, problems: &mut Vec<Problem>) -> RawDocument {
    let root = JsonPointer::root();
    let Value::Object(top) = &mut document else {
        problems.push(Problem::new(
            root,
            ProblemKind::InvalidValue {
                message: "a workflow definition must be an object".to_owned(),
            },
        ));
        return RawDocument {
            definition: None,
            steps: None,
        };
    };
    remove_unknown(top, DEFINITION_FIELDS, &root, problems);
    if let Some(Value::Object(input)) = top.get_mut("input") {
        remove_unknown(input, INPUT_FIELDS, &root.field("input"), problems);
    }
    let steps_value = top.remove("steps");
    let definition = deserialize::<RawDefinition>(document, &root, problems);
    let steps = match steps_value {
        Some(Value::Array(steps)) => Some(read_steps(steps, problems)),
        Some(_) => {
            let message = "`steps` must be an array".to_owned();
            problems.push(Problem::new(
                root.field("steps"),
                ProblemKind::InvalidValue { message },
            ));
            None
        }
        None => {
            let message = "missing field `steps`".to_owned();
            problems.push(Problem::new(root, ProblemKind::MissingField { message }));
            None
        }
    };
    RawDocument { definition, steps }
}

fn read_steps(steps: Vec<Value>, problems: &mut Vec<Problem>) -> Vec<StepEntry> {
    let base = JsonPointer::root().field("steps");
    steps
        .into_iter()
        .enumerate()
        .map(|(index, mut step)| {
            let at = base.index(index);
            if let Value::Object(fields) = &mut step {
                remove_unknown(fields, STEP_FIELDS, &at, problems);
                if let Some(Value::Object(retry)) = fields.get_mut("retry") {
                    remove_unknown(retry, RETRY_FIELDS, &at.field("retry"), problems);
                    if let Some(Value::Object(retry_on)) = retry.get_mut("retry_on") {
                        remove_unknown(
                            retry_on,
                            RETRY_ON_FIELDS,
                            &at.field("retry").field("retry_on"),
                            problems,
                        );
                    }
                }
            }
            let shell = unreadable_shell(&step);
            match deserialize::<RawStep>(step, &at, problems) {
                Some(raw) => StepEntry::Read(Box::new(raw)),
                None => shell,
            }
        })
        .collect()
}

/// Whatever id and dependencies can be read from a step that does not deserialize.
fn unreadable_shell(step: &Value) -> StepEntry {
    let id = step.get("id").and_then(Value::as_str).map(str::to_owned);
    let depends_on = step
        .get("depends_on")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    StepEntry::Unreadable { id, depends_on }
}

/// Reports and removes fields of `object` that are not in `known`.
fn remove_unknown(
    object: &mut Map<String, Value>,
    known: &[&str],
    at: &JsonPointer,
    problems: &mut Vec<Problem>,
) {
    let unknown: Vec<String> = object
        .keys()
        .filter(|key| !known.contains(&key.as_str()))
        .cloned()
        .collect();
    for field in unknown {
        object.remove(&field);
        problems.push(Problem::new(
            at.field(&field),
            ProblemKind::UnknownField { field },
        ));
    }
}

/// Deserializes `value`, reporting a failure at the pointer of the offending value.
fn deserialize<T: for<'de> Deserialize<'de>>(
    value: Value,
    at: &JsonPointer,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(read) => Some(read),
        Err(error) => {
            let mut path = at.clone();
            for segment in error.path().iter() {
                path = match segment {
                    serde_path_to_error::Segment::Seq { index } => path.index(*index),
                    serde_path_to_error::Segment::Map { key } => path.field(key),
                    serde_path_to_error::Segment::Enum { .. }
                    | serde_path_to_error::Segment::Unknown => path,
                };
            }
            let message = error.into_inner().to_string();
            let kind = if message.starts_with("missing field") {
                ProblemKind::MissingField { message }
            } else {
                ProblemKind::InvalidValue { message }
            };
            problems.push(Problem::new(path, kind));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The fields serde lists when it rejects an unknown one.
    fn accepted_fields<T: for<'de> Deserialize<'de> + std::fmt::Debug>() -> Vec<String> {
        let message = serde_json::from_value::<T>(json!({"__unknown": 1}))
            .unwrap_err()
            .to_string();
        let expected = message
            .split("expected")
            .nth(1)
            .unwrap_or_else(|| panic!("{message}"));
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn field_tables_match_the_raw_structs() {
        assert_eq!(accepted_fields::<RawDefinition>(), DEFINITION_FIELDS);
        assert_eq!(accepted_fields::<RawInput>(), INPUT_FIELDS);
        assert_eq!(accepted_fields::<RawStep>(), STEP_FIELDS);
        assert_eq!(accepted_fields::<RawRetry>(), RETRY_FIELDS);
        assert_eq!(accepted_fields::<RawRetryOn>(), RETRY_ON_FIELDS);
    }

    #[test]
    fn reports_unknown_fields_at_every_level_and_type_errors_per_step() {
        let mut problems = Vec::new();
        let document = read(
            json!({
                "name": "w", "version": 1, "extra": true,
                "input": {"required": [], "shape": {}},
                "steps": [
                    {"id": "a", "plugin": "p@1", "colour": 1, "retry": {"tries": 1, "retry_on": {"oom": true}}},
                    {"id": "b", "plugin": "p@1", "timeout_ms": "5s", "depends_on": ["a"]},
                    {"id": "c", "plugin": "p@1", "concurrency": -1}
                ]
            }),
            &mut problems,
        );
        let found: Vec<String> = problems.iter().map(Problem::to_string).collect();
        assert_eq!(
            found,
            [
                "/extra unknown_field: unknown field `extra`",
                "/input/shape unknown_field: unknown field `shape`",
                "/steps/0/colour unknown_field: unknown field `colour`",
                "/steps/0/retry/tries unknown_field: unknown field `tries`",
                "/steps/0/retry/retry_on/oom unknown_field: unknown field `oom`",
                "/steps/1/timeout_ms invalid_value: invalid type: string \"5s\", expected u64",
                "/steps/2/concurrency invalid_value: invalid value: integer `-1`, expected u64",
            ]
        );
        assert!(document.definition.is_some());
        let steps = document.steps.unwrap();
        assert!(
            matches!(&steps[1], StepEntry::Unreadable { id: Some(id), depends_on } if id == "b" && depends_on == &["a"])
        );
    }

    #[test]
    fn top_level_shape_errors() {
        let mut problems = Vec::new();
        let document = read(json!({"version": "one", "steps": {}}), &mut problems);
        let found: Vec<String> = problems.iter().map(Problem::to_string).collect();
        assert_eq!(
            found,
            [
                "/version invalid_value: invalid type: string \"one\", expected u32",
                "/steps invalid_value: `steps` must be an array",
            ]
        );
        assert!(document.definition.is_none() && document.steps.is_none());
    }
}
