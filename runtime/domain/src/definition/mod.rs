//! Workflow definitions: the documents that say which steps a workflow has, what they run,
//! in what order, and with which limits.
//!
//! A definition is read in three stages. The document (JSON, or YAML with the same structure)
//! is read into raw structs that mirror the format (module `raw`); the raw values are normalized
//! (defaults filled in) and validated into a [`WorkflowDefinition`] (module `validate`), whose ids,
//! plugin references, templates and conditions are already parsed; plugin references are
//! checked against a [`PluginCatalogue`] when a definition is submitted. Every problem is
//! reported, each with a JSON pointer ([`Problems`]).
//!
//! A [`WorkflowDefinition`] serializes to its normalized form: the same format with every
//! default written out. Deserializing runs the whole validation again (without the catalogue),
//! so a stored definition is as trustworthy as a submitted one.
//!
//! The format in brief (see `tests/cases/` for complete examples):
//!
//! ```json
//! {
//!   "name": "decommission-device", "version": 4, "description": "optional",
//!   "input": { "required": ["device_id"], "schema": { "type": "object" } },
//!   "steps": [
//!     { "id": "inventory", "plugin": "http@1", "input": { "url": "http://x/${workflow.input.device_id}" },
//!       "retry": { "max_attempts": 5, "initial_interval_ms": 200, "multiplier": 2.0,
//!                  "max_interval_ms": 10000, "jitter": 0.1,
//!                  "retry_on": { "plugin_error": true, "deadline_exceeded": true, "trap": false } },
//!       "timeout_ms": 5000, "fuel": 1000000, "memory_bytes": 16777216, "on_failure": "fail" },
//!     { "id": "erase", "plugin": "disk-erase@1", "depends_on": ["inventory"],
//!       "for_each": "${workflow.input.machines}", "concurrency": 5, "max_failures": 1,
//!       "input": { "machine": "${item.name}" } },
//!     { "id": "notify", "plugin": "http@1", "depends_on": ["erase"],
//!       "when": "${steps.erase.failed_count} == 0" }
//!   ],
//!   "output": { "erased": "${steps.erase.output}" }
//! }
//! ```

mod problem;
mod ranges;
mod raw;
mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::expr::Condition;
use crate::fanout::FanOutLimits;
use crate::graph::StepGraph;
use crate::id::{StepId, WorkflowName};
use crate::plugin_ref::{PluginCatalogue, PluginRef, ResolvedPlugin};
use crate::pointer::JsonPointer;
use crate::retry::RetryPolicy;
use crate::template::{Template, ValueTemplate};

pub use problem::{Problem, ProblemKind, Problems};

/// Most steps in one definition. Workflows are written by people; a bound keeps validation,
/// the job record and the state machine's per-result work small.
pub const MAX_STEPS: usize = 200;
/// `timeout_ms` of a step that does not set one: one minute.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// Longest `timeout_ms` of one attempt: one hour. Longer work should be split into steps so
/// that a crash does not lose hours of progress.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Largest `fuel` of one attempt, roughly tens of minutes of CPU.
pub const MAX_FUEL: u64 = 1_000_000_000_000;
/// Smallest `memory_bytes`: one WebAssembly page (64 KiB).
pub const MIN_MEMORY_BYTES: u64 = 65_536;
/// Largest `memory_bytes`: the 4 GiB a 32-bit WebAssembly memory can address.
pub const MAX_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The notation of a definition document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// JSON.
    Json,
    /// YAML with the same structure as the JSON form.
    Yaml,
}

/// What the job's input must contain.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct InputSpec {
    /// Top-level fields the input object must have.
    pub required: Vec<String>,
    /// A JSON Schema for the input, kept for the API to check and publish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

/// A step's `for_each`: the list to fan out over and the fan-out's limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ForEach {
    /// A single reference that must render to an array.
    #[serde(rename = "for_each")]
    pub items: Template,
    /// Concurrency and failure budget.
    #[serde(flatten)]
    pub limits: FanOutLimits,
}

/// What a step's failure does to its job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The job fails and its unfinished steps are cancelled (the default).
    #[default]
    Fail,
    /// The job goes on; dependents treat the step like a skipped one.
    Continue,
}

/// One validated step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StepDefinition {
    /// The step's id, unique in the workflow.
    pub id: StepId,
    /// What the step is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The plugin it runs.
    pub plugin: PluginRef,
    /// Steps that must finish first.
    pub depends_on: Vec<StepId>,
    /// The input document, rendered once per attempt target (the step, or each item).
    pub input: ValueTemplate,
    /// Condition under which the step runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Fan-out over a list.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<ForEach>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Deadline of each attempt.
    pub timeout_ms: u64,
    /// Fuel of each attempt; `None` leaves it to the daemon's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Memory limit of each attempt; `None` leaves it to the daemon's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// What the step's failure does to the job.
    pub on_failure: OnFailure,
}

/// A validated workflow definition; see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowDefinition {
    name: WorkflowName,
    version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    input: InputSpec,
    steps: Vec<StepDefinition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<ValueTemplate>,
    #[serde(skip)]
    graph: StepGraph,
    #[serde(skip)]
    index: BTreeMap<StepId, usize>,
}

/// Why a job input does not fit a definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The input is not a JSON object.
    #[error("job input must be an object")]
    NotAnObject,
    /// A required field is absent.
    #[error("job input lacks required field `{field}`")]
    MissingField {
        /// The field.
        field: String,
    },
}

impl WorkflowDefinition {
    /// Reads and validates a definition without checking its plugins.
    pub fn parse(source: &str, format: SourceFormat) -> Result<Self, Problems> {
        WorkflowDefinition::from_value(parse_document(source, format)?)
    }

    /// Validates a definition already parsed into JSON, without checking its plugins.
    pub fn from_value(document: Value) -> Result<Self, Problems> {
        validate::validate(document, None)
    }

    /// Reads and validates a submitted definition, resolving every plugin reference in
    /// `catalogue`. Reports every problem found, structural and plugin alike.
    pub fn validate_submission(
        source: &str,
        format: SourceFormat,
        catalogue: &dyn PluginCatalogue,
    ) -> Result<Self, Problems> {
        validate::validate(parse_document(source, format)?, Some(catalogue))
    }

    /// Resolves every step's plugin, as a job records them when it is created.
    pub fn resolve_plugins(
        &self,
        catalogue: &dyn PluginCatalogue,
    ) -> Result<BTreeMap<StepId, ResolvedPlugin>, Problems> {
        let mut resolved = BTreeMap::new();
        let mut problems = Vec::new();
        for (index, step) in self.steps.iter().enumerate() {
            match catalogue.resolve(&step.plugin) {
                Ok(plugin) => {
                    resolved.insert(step.id.clone(), plugin);
                }
                Err(error) => problems.push(Problem::new(
                    JsonPointer::root()
                        .field("steps")
                        .index(index)
                        .field("plugin"),
                    error,
                )),
            }
        }
        if problems.is_empty() {
            Ok(resolved)
        } else {
            Err(Problems(problems))
        }
    }

    /// Checks that `input` fits the definition's `input.required`. (The JSON Schema, if any,
    /// is checked by the API layer.)
    pub fn check_input(&self, input: &Value) -> Result<(), InputError> {
        let object = input.as_object().ok_or(InputError::NotAnObject)?;
        match self
            .input
            .required
            .iter()
            .find(|field| !object.contains_key(field.as_str()))
        {
            Some(field) => Err(InputError::MissingField {
                field: field.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The workflow's name.
    pub fn name(&self) -> &WorkflowName {
        &self.name
    }

    /// The definition's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// What the workflow is for.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// What the job input must contain.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// The steps in definition order.
    pub fn steps(&self) -> &[StepDefinition] {
        &self.steps
    }

    /// The step with this id.
    pub fn step(&self, id: &StepId) -> Option<&StepDefinition> {
        self.index.get(id).map(|&index| &self.steps[index])
    }

    /// The dependency graph of the steps.
    pub fn graph(&self) -> &StepGraph {
        &self.graph
    }

    /// The template of the job's output.
    pub fn output(&self) -> Option<&ValueTemplate> {
        self.output.as_ref()
    }
}

impl<'de> Deserialize<'de> for WorkflowDefinition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WorkflowDefinition::from_value(Value::deserialize(deserializer)?)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses the document's notation, reporting a syntax error as a problem at the root.
fn parse_document(source: &str, format: SourceFormat) -> Result<Value, Problems> {
    let parsed = match format {
        SourceFormat::Json => serde_json::from_str(source).map_err(|e| e.to_string()),
        SourceFormat::Yaml => serde_norway::from_str(source).map_err(|e| e.to_string()),
    };
    parsed.map_err(|message| {
        Problems(vec![Problem::new(
            JsonPointer::root(),
            ProblemKind::Syntax { message },
        )])
    })
}
