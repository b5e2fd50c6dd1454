//! What templates read from: the [`Scope`] trait, and how a [`Reference`] is looked up in it.
//!
//! The job record implements a scope (see [`crate::job`]); tests and other callers can supply
//! their own. Lookups never panic: anything missing is a [`RenderError`] naming the reference.

use std::borrow::Cow;

use serde_json::Value;

use crate::id::{StepId, WorkflowName};
use crate::job_id::JobId;
use crate::state::StepState;

use super::{JobField, JsonPath, PathSegment, Reference, StepAttribute, Template, TextPart};

/// The job's metadata as templates see it.
#[derive(Debug, Clone, Copy)]
pub struct JobView<'a> {
    /// The job's id.
    pub id: JobId,
    /// The workflow the job runs.
    pub workflow: &'a WorkflowName,
    /// The workflow's version.
    pub version: u32,
}

/// A step as templates see it.
#[derive(Debug, Clone, Copy)]
pub struct StepView<'a> {
    /// The step's state.
    pub state: StepState,
    /// The step's output, once it succeeded.
    pub output: Option<&'a Value>,
    /// Items (or the single run) that succeeded.
    pub succeeded_count: u64,
    /// Items (or the single run) that failed.
    pub failed_count: u64,
}

/// The current element of a `for_each` list.
#[derive(Debug, Clone, Copy)]
pub struct ItemView<'a> {
    /// The element.
    pub value: &'a Value,
    /// Its position in the list, from 0.
    pub index: u32,
}

/// Everything a template can read.
pub trait Scope {
    /// The job's metadata.
    fn job(&self) -> JobView<'_>;
    /// The job's input document.
    fn workflow_input(&self) -> &Value;
    /// A step of the job, or `None` if the job has no such step.
    fn step(&self, id: &StepId) -> Option<StepView<'_>>;
    /// The current `for_each` element, if rendering for one.
    fn item(&self) -> Option<ItemView<'_>>;
}

/// A template that could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The reference names something that does not exist.
    #[error("`${{{reference}}}` is missing: {reason}")]
    Missing {
        /// The reference, as written without `${}`.
        reference: String,
        /// What was not there.
        reason: String,
    },
}

impl RenderError {
    fn missing(reference: &Reference, reason: impl Into<String>) -> Self {
        RenderError::Missing {
            reference: reference.to_string(),
            reason: reason.into(),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Follows `path` into `root`, explaining the first segment that leads nowhere.
fn follow<'v>(root: &'v Value, path: &JsonPath) -> Result<&'v Value, String> {
    path.0
        .iter()
        .try_fold(root, |value, segment| match (segment, value) {
            (PathSegment::Field(name), Value::Object(map)) => {
                map.get(name).ok_or_else(|| format!("no field `{name}`"))
            }
            (PathSegment::Index(index), Value::Array(items)) => items
                .get(*index)
                .ok_or_else(|| format!("no element [{index}] in an array of {}", items.len())),
            (PathSegment::Field(name), other) => {
                Err(format!("cannot read field `{name}` of {}", kind_of(other)))
            }
            (PathSegment::Index(index), other) => Err(format!(
                "cannot read element [{index}] of {}",
                kind_of(other)
            )),
        })
}

/// Looks up the value a reference names.
pub fn resolve<'s>(
    reference: &Reference,
    scope: &'s dyn Scope,
) -> Result<Cow<'s, Value>, RenderError> {
    let borrowed = |root: &'s Value, path: &JsonPath| {
        follow(root, path)
            .map(Cow::Borrowed)
            .map_err(|reason| RenderError::missing(reference, reason))
    };
    match reference {
        Reference::WorkflowInput(path) => borrowed(scope.workflow_input(), path),
        Reference::StepOutput { step, path } => {
            let view = step_view(reference, step, scope)?;
            match view.output {
                Some(output) => borrowed(output, path),
                None if path.0.is_empty() => Ok(Cow::Owned(Value::Null)),
                None => Err(RenderError::missing(
                    reference,
                    format!("step `{step}` has no output ({})", view.state),
                )),
            }
        }
        Reference::StepAttribute { step, attribute } => {
            let view = step_view(reference, step, scope)?;
            Ok(Cow::Owned(match attribute {
                StepAttribute::Status => Value::from(view.state.as_str()),
                StepAttribute::SucceededCount => Value::from(view.succeeded_count),
                StepAttribute::FailedCount => Value::from(view.failed_count),
            }))
        }
        Reference::Item(path) => match scope.item() {
            Some(item) => borrowed(item.value, path),
            None => Err(RenderError::missing(
                reference,
                "not inside a `for_each` step",
            )),
        },
        Reference::Index => match scope.item() {
            Some(item) => Ok(Cow::Owned(Value::from(item.index))),
            None => Err(RenderError::missing(
                reference,
                "not inside a `for_each` step",
            )),
        },
        Reference::Job(field) => {
            let job = scope.job();
            Ok(Cow::Owned(match field {
                JobField::Id => Value::from(job.id.to_string()),
                JobField::Workflow => Value::from(job.workflow.as_str()),
                JobField::Version => Value::from(job.version),
            }))
        }
    }
}

fn step_view<'s>(
    reference: &Reference,
    step: &StepId,
    scope: &'s dyn Scope,
) -> Result<StepView<'s>, RenderError> {
    scope
        .step(step)
        .ok_or_else(|| RenderError::missing(reference, format!("no step `{step}`")))
}

/// Writes a value into a longer string: strings as they are, anything else as compact JSON.
pub(crate) fn push_as_text(text: &mut String, value: &Value) {
    match value {
        Value::String(s) => text.push_str(s),
        other => text.push_str(&other.to_string()),
    }
}

impl Template {
    /// Renders the template: a whole-string reference keeps its value's JSON type, anything else
    /// becomes a string.
    pub fn render(&self, scope: &dyn Scope) -> Result<Value, RenderError> {
        match self {
            Template::Whole(reference) => Ok(resolve(reference, scope)?.into_owned()),
            Template::Text(parts) => {
                let mut text = String::new();
                for part in parts {
                    match part {
                        TextPart::Literal(literal) => text.push_str(literal),
                        TextPart::Reference(reference) => {
                            push_as_text(&mut text, resolve(reference, scope)?.as_ref())
                        }
                    }
                }
                Ok(Value::String(text))
            }
        }
    }
}

/// A hand-filled [`Scope`] for unit tests of templates and expressions.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::{ItemView, JobView, Scope, StepView};
    use crate::id::{StepId, WorkflowName};
    use crate::job_id::JobId;
    use crate::state::StepState;
    use crate::time::Timestamp;

    /// A step's data in a [`TestScope`].
    #[derive(Debug)]
    struct TestStep {
        state: StepState,
        output: Option<Value>,
        succeeded_count: u64,
        failed_count: u64,
    }

    #[derive(Debug)]
    pub(crate) struct TestScope {
        workflow: WorkflowName,
        input: Value,
        steps: BTreeMap<StepId, TestStep>,
        item: Option<(Value, u32)>,
    }

    impl TestScope {
        pub(crate) fn new(input: Value) -> Self {
            TestScope {
                workflow: WorkflowName::new("test").unwrap(),
                input,
                steps: BTreeMap::new(),
                item: None,
            }
        }

        pub(crate) fn with_step(
            mut self,
            id: &str,
            state: StepState,
            output: Option<Value>,
            succeeded_count: u64,
            failed_count: u64,
        ) -> Self {
            let step = TestStep {
                state,
                output,
                succeeded_count,
                failed_count,
            };
            self.steps.insert(StepId::new(id).unwrap(), step);
            self
        }

        pub(crate) fn with_item(mut self, value: Value, index: u32) -> Self {
            self.item = Some((value, index));
            self
        }
    }

    impl Scope for TestScope {
        fn job(&self) -> JobView<'_> {
            JobView {
                id: JobId::from_parts(Timestamp::from_unix_ms(1), [0; 10]),
                workflow: &self.workflow,
                version: 7,
            }
        }

        fn workflow_input(&self) -> &Value {
            &self.input
        }

        fn step(&self, id: &StepId) -> Option<StepView<'_>> {
            self.steps.get(id).map(|step| StepView {
                state: step.state,
                output: step.output.as_ref(),
                succeeded_count: step.succeeded_count,
                failed_count: step.failed_count,
            })
        }

        fn item(&self) -> Option<ItemView<'_>> {
            self.item.as_ref().map(|(value, index)| ItemView {
                value,
                index: *index,
            })
        }
    }
}
