//! The second stage of reading a definition: raw values are normalized (defaults filled in)
//! and checked against every rule of the format, producing a [`WorkflowDefinition`] or the
//! full list of problems.
//!
//! Checks run even after earlier ones failed, on whatever could be read, so one submission
//! reports everything: a step with a bad timeout still has its templates checked, and a graph
//! with an unknown dependency is still searched for cycles.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::expr::Condition;
use crate::graph::{GraphProblem, StepGraph};
use crate::id::{StepId, WorkflowName};
use crate::plugin_ref::{PluginCatalogue, PluginRef};
use crate::pointer::JsonPointer;
use crate::retry::RetryPolicy;
use crate::template::{Reference, ValueTemplate};

use super::ranges::{in_range, optional_in_range, out_of_range, read_for_each, read_retry};
use super::raw::{self, RawDefinition, StepEntry};
use super::{
    DEFAULT_TIMEOUT_MS, ForEach, InputSpec, MAX_FUEL, MAX_MEMORY_BYTES, MAX_STEPS, MAX_TIMEOUT_MS,
    MIN_MEMORY_BYTES, OnFailure, Problem, ProblemKind, Problems, StepDefinition,
    WorkflowDefinition,
};

/// Reads and validates `document`; plugin references are resolved when `catalogue` is given.
pub(super) fn validate(
    document: Value,
    catalogue: Option<&dyn PluginCatalogue>,
) -> Result<WorkflowDefinition, Problems> {
    let mut problems = Vec::new();
    let document = raw::read(document, &mut problems);
    let header = document
        .definition
        .map(|definition| Header::read(definition, &mut problems));
    let steps_present = document.steps.is_some();
    let drafts: Vec<StepDraft> = document
        .steps
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, entry)| StepDraft::read(index, entry, catalogue, &mut problems))
        .collect();
    let steps_at = JsonPointer::root().field("steps");
    if steps_present && drafts.is_empty() {
        let message = "a workflow needs at least one step".to_owned();
        problems.push(Problem::new(steps_at, ProblemKind::Rule { message }));
    } else if drafts.len() > MAX_STEPS {
        problems.push(out_of_range(
            steps_at,
            "the number of steps",
            drafts.len(),
            1,
            MAX_STEPS,
        ));
    }
    let graph = build_graph(&drafts, &mut problems);
    for draft in &drafts {
        draft.check_references(&graph, &mut problems);
    }
    let output_at = JsonPointer::root().field("output");
    let output = header
        .as_ref()
        .and_then(|h| h.output.as_ref())
        .map(|value| compile(value, &output_at, &mut problems));
    if let Some(Some(output)) = &output {
        for (relative, site) in output.references() {
            check_reference(
                site.reference,
                None,
                ItemScope::Absent,
                &graph,
                &output_at.join(&relative),
                &mut problems,
            );
        }
    }
    match header {
        Some(header) if problems.is_empty() => {
            assemble(header, drafts, graph, output.flatten()).ok_or_else(|| Problems(problems))
        }
        _ => Err(Problems(problems)),
    }
}

/// The top level of a definition, validated.
struct Header {
    name: Option<WorkflowName>,
    version: u32,
    description: Option<String>,
    input: InputSpec,
    /// Compiled after the steps, so that problems are listed in document order.
    output: Option<Value>,
}

impl Header {
    fn read(raw: RawDefinition, problems: &mut Vec<Problem>) -> Header {
        let root = JsonPointer::root();
        let name = WorkflowName::new(raw.name)
            .map_err(|e| problems.push(Problem::new(root.field("name"), e)))
            .ok();
        let version = in_range(
            raw.version,
            (1, u32::MAX),
            "version",
            root.field("version"),
            problems,
        )
        .unwrap_or(0);
        let mut input = InputSpec::default();
        if let Some(raw_input) = raw.input {
            let at = root.field("input");
            for (index, field) in raw_input.required.iter().enumerate() {
                let message = if field.is_empty() {
                    "a required field name cannot be empty".to_owned()
                } else if raw_input.required[..index].contains(field) {
                    format!("required field `{field}` is listed twice")
                } else {
                    continue;
                };
                problems.push(Problem::new(
                    at.field("required").index(index),
                    ProblemKind::Rule { message },
                ));
            }
            if let Some(schema) = &raw_input.schema
                && !(schema.is_object() || schema.is_boolean())
            {
                let message = "schema must be a JSON Schema: an object or a boolean".to_owned();
                problems.push(Problem::new(
                    at.field("schema"),
                    ProblemKind::InvalidValue { message },
                ));
            }
            input = InputSpec {
                required: raw_input.required,
                schema: raw_input.schema,
            };
        }
        Header {
            name,
            version,
            description: raw.description,
            input,
            output: raw.output,
        }
    }
}

/// Compiles a JSON template, reporting each bad string at `at` plus its relative pointer.
fn compile(value: &Value, at: &JsonPointer, problems: &mut Vec<Problem>) -> Option<ValueTemplate> {
    match ValueTemplate::compile(value) {
        Ok(template) => Some(template),
        Err(errors) => {
            problems.extend(
                errors
                    .into_iter()
                    .map(|(relative, error)| Problem::new(at.join(&relative), error)),
            );
            None
        }
    }
}

/// A step as far as it could be validated; the fields are `None` where a problem was reported.
struct StepDraft {
    at: JsonPointer,
    id: Option<StepId>,
    /// Valid dependency ids with their positions in `depends_on`.
    depends_on: Vec<(usize, StepId)>,
    description: Option<String>,
    plugin: Option<PluginRef>,
    input: Option<ValueTemplate>,
    when: Option<Option<Condition>>,
    for_each: Option<Option<ForEach>>,
    /// Whether `${item}` may appear in the input: the step has `for_each`, even an invalid one.
    input_items: ItemScope,
    retry: Option<RetryPolicy>,
    timeout_ms: Option<u64>,
    fuel: Option<Option<u64>>,
    memory_bytes: Option<Option<u64>>,
    on_failure: OnFailure,
}

impl StepDraft {
    fn read(
        index: usize,
        entry: StepEntry,
        catalogue: Option<&dyn PluginCatalogue>,
        problems: &mut Vec<Problem>,
    ) -> Self {
        let at = JsonPointer::root().field("steps").index(index);
        let raw = match entry {
            StepEntry::Read(raw) => *raw,
            StepEntry::Unreadable { id, depends_on } => {
                let id = id.and_then(|id| StepId::new(id).ok());
                let depends_on = depends_on
                    .into_iter()
                    .enumerate()
                    .filter_map(|(j, d)| Some((j, StepId::new(d).ok()?)))
                    .collect();
                return StepDraft::unreadable(at, id, depends_on);
            }
        };
        let mut report =
            |path: JsonPointer, kind: ProblemKind| problems.push(Problem::new(path, kind));
        let id = StepId::new(raw.id.as_str())
            .map_err(|e| report(at.field("id"), e.into()))
            .ok();
        let mut depends_on = Vec::new();
        for (position, dependency) in raw.depends_on.iter().enumerate() {
            match StepId::new(dependency.as_str()) {
                Ok(dependency) => depends_on.push((position, dependency)),
                Err(error) => report(at.field("depends_on").index(position), error.into()),
            }
        }
        let plugin = match raw.plugin.parse::<PluginRef>() {
            Ok(plugin) => match catalogue.map(|c| c.resolve(&plugin)) {
                Some(Err(error)) => {
                    report(at.field("plugin"), error.into());
                    None
                }
                _ => Some(plugin),
            },
            Err(error) => {
                report(at.field("plugin"), error.into());
                None
            }
        };
        let when = match raw.when.as_deref().map(Condition::parse) {
            None => Some(None),
            Some(Ok(condition)) => Some(Some(condition)),
            Some(Err(error)) => {
                report(at.field("when"), error.into());
                None
            }
        };
        let input_items = match raw.for_each {
            Some(_) => ItemScope::Present,
            None => ItemScope::Absent,
        };
        let for_each = read_for_each(&raw, &at, problems);
        let input = compile(
            raw.input
                .as_ref()
                .unwrap_or(&Value::Object(Default::default())),
            &at.field("input"),
            problems,
        );
        let retry = read_retry(raw.retry.unwrap_or_default(), &at.field("retry"), problems);
        let timeout_ms = in_range(
            raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            (1, MAX_TIMEOUT_MS),
            "timeout_ms",
            at.field("timeout_ms"),
            problems,
        );
        let fuel = optional_in_range(raw.fuel, (1, MAX_FUEL), "fuel", at.field("fuel"), problems);
        let memory_bytes = optional_in_range(
            raw.memory_bytes,
            (MIN_MEMORY_BYTES, MAX_MEMORY_BYTES),
            "memory_bytes",
            at.field("memory_bytes"),
            problems,
        );
        StepDraft {
            at,
            id,
            depends_on,
            description: raw.description,
            plugin,
            input,
            when,
            for_each,
            input_items,
            retry,
            timeout_ms,
            fuel,
            memory_bytes,
            on_failure: raw.on_failure.unwrap_or_default(),
        }
    }

    fn unreadable(at: JsonPointer, id: Option<StepId>, depends_on: Vec<(usize, StepId)>) -> Self {
        StepDraft {
            at,
            id,
            depends_on,
            description: None,
            plugin: None,
            input: None,
            when: None,
            for_each: None,
            input_items: ItemScope::Absent,
            retry: None,
            timeout_ms: None,
            fuel: None,
            memory_bytes: None,
            on_failure: OnFailure::Fail,
        }
    }

    /// Checks every reference in the step's templates against the graph.
    fn check_references(&self, graph: &StepGraph, problems: &mut Vec<Problem>) {
        let owner = self.id.as_ref();
        if let Some(input) = &self.input {
            let at = self.at.field("input");
            for (relative, site) in input.references() {
                check_reference(
                    site.reference,
                    owner,
                    self.input_items,
                    graph,
                    &at.join(&relative),
                    problems,
                );
            }
        }
        if let Some(Some(condition)) = &self.when {
            for reference in condition.expr().references() {
                check_reference(
                    reference,
                    owner,
                    ItemScope::Absent,
                    graph,
                    &self.at.field("when"),
                    problems,
                );
            }
        }
        if let Some(Some(for_each)) = &self.for_each {
            for reference in for_each.items.references() {
                check_reference(
                    reference,
                    owner,
                    ItemScope::Absent,
                    graph,
                    &self.at.field("for_each"),
                    problems,
                );
            }
        }
    }

    /// The finished step, when every part of it is valid.
    fn finish(self) -> Option<StepDefinition> {
        Some(StepDefinition {
            id: self.id?,
            description: self.description,
            plugin: self.plugin?,
            depends_on: self.depends_on.into_iter().map(|(_, id)| id).collect(),
            input: self.input?,
            when: self.when?,
            for_each: self.for_each?,
            retry: self.retry?,
            timeout_ms: self.timeout_ms?,
            fuel: self.fuel?,
            memory_bytes: self.memory_bytes?,
            on_failure: self.on_failure,
        })
    }
}

/// Builds the graph of the steps whose ids are valid, reporting its problems at the pointers
/// of the definition.
fn build_graph(drafts: &[StepDraft], problems: &mut Vec<Problem>) -> StepGraph {
    let with_ids: Vec<&StepDraft> = drafts.iter().filter(|d| d.id.is_some()).collect();
    let entries: Vec<(StepId, Vec<StepId>)> = with_ids
        .iter()
        .filter_map(|d| {
            Some((
                d.id.clone()?,
                d.depends_on.iter().map(|(_, id)| id.clone()).collect(),
            ))
        })
        .collect();
    let (graph, graph_problems) = StepGraph::new_lenient(&entries);
    for GraphProblem {
        step_index,
        dependency_index,
        error,
    } in graph_problems
    {
        let draft = with_ids[step_index];
        let at = match (&error, dependency_index) {
            (crate::graph::GraphError::DuplicateId { .. }, _) => draft.at.field("id"),
            (_, Some(position)) => draft
                .at
                .field("depends_on")
                .index(draft.depends_on[position].0),
            (_, None) => draft.at.field("depends_on"),
        };
        problems.push(Problem::new(at, error));
    }
    graph
}

/// Whether a template is rendered for one item of a `for_each` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemScope {
    /// In the `input` of a `for_each` step: `${item}` and `${index}` are available.
    Present,
    /// Everywhere else.
    Absent,
}

/// Checks one reference found at `at`. `owner` is the step whose template it is (`None` for the
/// workflow output, which may read any step); `items` says whether `${item}` is in scope.
fn check_reference(
    reference: &Reference,
    owner: Option<&StepId>,
    items: ItemScope,
    graph: &StepGraph,
    at: &JsonPointer,
    problems: &mut Vec<Problem>,
) {
    if reference.needs_item() && items == ItemScope::Absent {
        problems.push(Problem::new(
            at.clone(),
            ProblemKind::ItemOutsideForEach {
                reference: reference.to_string(),
            },
        ));
    }
    let Some(step) = reference.step() else { return };
    if !graph.contains(step) {
        let kind = ProblemKind::UnknownStep {
            reference: reference.to_string(),
            step: step.to_string(),
        };
        problems.push(Problem::new(at.clone(), kind));
    } else if let Some(owner) = owner
        && !graph.is_ancestor(step, owner)
    {
        let kind = ProblemKind::NotAnAncestor {
            reference: reference.to_string(),
            step: owner.to_string(),
            referenced: step.to_string(),
        };
        problems.push(Problem::new(at.clone(), kind));
    }
}

/// Puts a fully valid definition together.
fn assemble(
    header: Header,
    drafts: Vec<StepDraft>,
    graph: StepGraph,
    output: Option<ValueTemplate>,
) -> Option<WorkflowDefinition> {
    let steps: Vec<StepDefinition> = drafts
        .into_iter()
        .map(StepDraft::finish)
        .collect::<Option<_>>()?;
    let index: BTreeMap<StepId, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| (step.id.clone(), i))
        .collect();
    Some(WorkflowDefinition {
        name: header.name?,
        version: header.version,
        description: header.description,
        input: header.input,
        steps,
        output,
        graph,
        index,
    })
}
