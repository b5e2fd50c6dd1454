//! Templates: the `${...}` references that step inputs, `for_each`, `when` and the workflow
//! output use to read the job's data.
//!
//! A reference names one value:
//!
//! | reference | value |
//! | --- | --- |
//! | `${workflow.input.a.b}` | a field of the job's input document |
//! | `${steps.<id>.output.path}` | (part of) a finished step's output; `null` if it has none |
//! | `${steps.<id>.status}` | the step's state as a string, such as `"skipped"` |
//! | `${steps.<id>.succeeded_count}` | items that succeeded (0 or 1 for a step without `for_each`) |
//! | `${steps.<id>.failed_count}` | items that failed (0 or 1 for a step without `for_each`) |
//! | `${item}`, `${item.x}` | the current element, inside a `for_each` step's `input` |
//! | `${index}` | the current element's position, from 0 |
//! | `${job.id}`, `${job.workflow}`, `${job.version}` | the job's metadata |
//!
//! Paths continue with `.field` (letters, digits, `_` and `-`) and `[index]`. Whitespace just
//! inside the braces is ignored, and `$${` writes a literal `${`.
//!
//! A string that is exactly one reference keeps the JSON type of the value (`"${item}"` can
//! render as an object); a reference inside a longer string is rendered as text: strings as
//! they are, other values as compact JSON. Templates are parsed once, when a definition is
//! validated, into the [`Template`] and [`ValueTemplate`] trees; rendering walks the tree and
//! reports a reference to something missing as a [`RenderError`] that names the reference,
//! which the engine turns into a failure of the step.

mod parse;
pub(crate) mod scope;
mod value;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::StepId;

pub use parse::TemplateSyntaxError;
pub(crate) use parse::parse_reference;
pub use scope::{ItemView, JobView, RenderError, Scope, StepView, resolve};
pub use value::{ReferenceSite, ValueTemplate};

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// `.name`: a field of an object.
    Field(String),
    /// `[n]`: an element of an array.
    Index(usize),
}

/// A path into a JSON document, such as `.machines[0].name`; empty means the whole document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JsonPath(pub Vec<PathSegment>);

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.0 {
            match segment {
                PathSegment::Field(name) => write!(f, ".{name}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A counter or attribute of a step that templates can read besides its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepAttribute {
    /// `status`: the step's state.
    Status,
    /// `succeeded_count`: how many items succeeded.
    SucceededCount,
    /// `failed_count`: how many items failed.
    FailedCount,
}

impl StepAttribute {
    fn as_str(self) -> &'static str {
        match self {
            StepAttribute::Status => "status",
            StepAttribute::SucceededCount => "succeeded_count",
            StepAttribute::FailedCount => "failed_count",
        }
    }
}

/// A field of the job's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobField {
    /// `job.id`: the job id as a string.
    Id,
    /// `job.workflow`: the workflow name.
    Workflow,
    /// `job.version`: the workflow version, a number.
    Version,
}

impl JobField {
    fn as_str(self) -> &'static str {
        match self {
            JobField::Id => "id",
            JobField::Workflow => "workflow",
            JobField::Version => "version",
        }
    }
}

/// What one `${...}` names; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// `workflow.input<path>`.
    WorkflowInput(JsonPath),
    /// `steps.<id>.output<path>`.
    StepOutput {
        /// The step whose output is read.
        step: StepId,
        /// Where in the output.
        path: JsonPath,
    },
    /// `steps.<id>.status`, `.succeeded_count` or `.failed_count`.
    StepAttribute {
        /// The step that is read.
        step: StepId,
        /// Which attribute.
        attribute: StepAttribute,
    },
    /// `item<path>`: the current element of a `for_each` list.
    Item(JsonPath),
    /// `index`: the position of the current element.
    Index,
    /// `job.<field>`.
    Job(JobField),
}

impl Reference {
    /// The step this reference reads, if any.
    pub fn step(&self) -> Option<&StepId> {
        match self {
            Reference::StepOutput { step, .. } | Reference::StepAttribute { step, .. } => {
                Some(step)
            }
            _ => None,
        }
    }

    /// Whether the reference only makes sense inside a `for_each` step's input.
    pub fn needs_item(&self) -> bool {
        matches!(self, Reference::Item(_) | Reference::Index)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::WorkflowInput(path) => write!(f, "workflow.input{path}"),
            Reference::StepOutput { step, path } => write!(f, "steps.{step}.output{path}"),
            Reference::StepAttribute { step, attribute } => {
                write!(f, "steps.{step}.{}", attribute.as_str())
            }
            Reference::Item(path) => write!(f, "item{path}"),
            Reference::Index => f.write_str("index"),
            Reference::Job(field) => write!(f, "job.{}", field.as_str()),
        }
    }
}

/// A piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TextPart {
    /// Text copied as it is (escapes already resolved).
    Literal(String),
    /// A reference rendered as text.
    Reference(Reference),
}

/// A parsed template string.
///
/// Serialized as its text form, so a definition written back out reads like its source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Template {
    /// The whole string is one reference: renders to the referenced value, of any JSON type.
    Whole(Reference),
    /// Text with zero or more references: renders to a string.
    Text(Vec<TextPart>),
}

impl Template {
    /// Parses a template string.
    pub fn parse(source: &str) -> Result<Template, TemplateSyntaxError> {
        parse::parse_template(source)
    }

    /// Every reference in the template, in order.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        let (whole, parts) = match self {
            Template::Whole(reference) => (Some(reference), &[][..]),
            Template::Text(parts) => (None, parts.as_slice()),
        };
        whole
            .into_iter()
            .chain(parts.iter().filter_map(|part| match part {
                TextPart::Reference(reference) => Some(reference),
                TextPart::Literal(_) => None,
            }))
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Template::Whole(reference) => write!(f, "${{{reference}}}"),
            Template::Text(parts) => parts.iter().try_for_each(|part| match part {
                TextPart::Literal(text) => f.write_str(&text.replace("${", "$${")),
                TextPart::Reference(reference) => write!(f, "${{{reference}}}"),
            }),
        }
    }
}

impl TryFrom<String> for Template {
    type Error = TemplateSyntaxError;
    fn try_from(source: String) -> Result<Self, TemplateSyntaxError> {
        Template::parse(&source)
    }
}

impl From<Template> for String {
    fn from(template: Template) -> String {
        template.to_string()
    }
}
