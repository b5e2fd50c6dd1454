//! Checks a job's input against its workflow before the engine is asked to start it, so that
//! errors point at the offending member: the fields the workflow requires, and the JSON
//! Schema it declares (`input.schema`), which the engine leaves to the API.
//!
//! Compiled schemas are cached per workflow version; versions never change once stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use weft_domain::WorkflowName;

use super::AppState;
use super::error::{ApiError, Location};

/// A compiled input schema; `None` for a workflow version without one.
type Compiled = Option<Arc<jsonschema::Validator>>;

/// Compiled input schemas by workflow version.
#[derive(Debug, Default)]
pub struct SchemaCache(Mutex<HashMap<(WorkflowName, u32), Compiled>>);

fn pointer_escape(field: &str) -> String {
    field.replace('~', "~0").replace('/', "~1")
}

/// Checks `input` against version `version` (the latest if `None`) of `workflow`. A missing
/// or unreadable workflow passes: the engine reports it.
pub fn check(
    state: &AppState,
    workflow: &WorkflowName,
    version: Option<u32>,
    input: &Value,
) -> Result<(), ApiError> {
    let Some(definition) = state.engine.definition(workflow, version)? else {
        return Ok(());
    };
    let spec = definition.input();
    for field in &spec.required {
        if input.get(field).is_none() {
            return Err(ApiError::Unprocessable {
                detail: format!("workflow {workflow} requires the input field `{field}`"),
                at: Location::body(format!("/input/{}", pointer_escape(field))),
            });
        }
    }
    let Some(validator) = validator(state, workflow, definition.version(), spec.schema.as_ref())?
    else {
        return Ok(());
    };
    if let Some(error) = validator.iter_errors(input).next() {
        return Err(ApiError::Unprocessable {
            detail: format!("the input does not match the workflow's schema: {error}"),
            at: Location::body(format!("/input{}", error.instance_path())),
        });
    }
    Ok(())
}

fn validator(
    state: &AppState,
    workflow: &WorkflowName,
    version: u32,
    schema: Option<&Value>,
) -> Result<Compiled, ApiError> {
    let key = (workflow.clone(), version);
    let mut cache = state
        .input_schemas
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(cached) = cache.get(&key) {
        return Ok(cached.clone());
    }
    let compiled = match schema {
        None => None,
        Some(schema) => Some(Arc::new(jsonschema::validator_for(schema).map_err(|e| {
            ApiError::Unprocessable {
                detail: format!(
                    "workflow {workflow} version {version} declares an input schema that does not compile: {e}"
                ),
                at: Location::Request,
            }
        })?)),
    };
    cache.insert(key, compiled.clone());
    Ok(compiled)
}
