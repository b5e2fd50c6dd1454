//! Problems found while validating a workflow definition, each located by a JSON pointer.
//!
//! Validation reports every problem it finds rather than stopping at the first, so an author
//! fixes a definition in one round trip. The `code` of a problem is stable and meant for
//! programs (the HTTP API puts it in its problem body); the message is for people.

use std::fmt;

use serde::Serialize;

use crate::expr::ExprSyntaxError;
use crate::graph::GraphError;
use crate::id::IdError;
use crate::plugin_ref::{PluginRefError, ResolveError};
use crate::pointer::JsonPointer;
use crate::template::TemplateSyntaxError;

/// What is wrong at one place in a definition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProblemKind {
    /// The document is not valid JSON or YAML.
    #[error("{message}")]
    Syntax {
        /// The parser's message.
        message: String,
    },
    /// A field the format does not define.
    #[error("unknown field `{field}`")]
    UnknownField {
        /// The field's name.
        field: String,
    },
    /// A required field is absent.
    #[error("{message}")]
    MissingField {
        /// Which field, as the parser says it.
        message: String,
    },
    /// A value of the wrong type or shape.
    #[error("{message}")]
    InvalidValue {
        /// What is wrong with it.
        message: String,
    },
    /// A malformed name or id.
    #[error(transparent)]
    InvalidId(#[from] IdError),
    /// A malformed plugin reference.
    #[error(transparent)]
    InvalidPluginRef(#[from] PluginRefError),
    /// A plugin reference that the catalogue cannot resolve.
    #[error(transparent)]
    UnknownPlugin(#[from] ResolveError),
    /// A problem with the step graph: duplicate id, unknown or repeated dependency, cycle.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A template string that does not parse.
    #[error(transparent)]
    InvalidTemplate(#[from] TemplateSyntaxError),
    /// A `when` condition that does not parse.
    #[error("invalid expression: {0}")]
    InvalidExpression(#[from] ExprSyntaxError),
    /// A template reads a step that does not exist.
    #[error("`${{{reference}}}` refers to unknown step `{step}`")]
    UnknownStep {
        /// The reference as written.
        reference: String,
        /// The missing step.
        step: String,
    },
    /// A template reads a step that is not an ancestor of the step it is in.
    #[error(
        "`${{{reference}}}` reads step `{referenced}`, which step `{step}` does not depend on (directly or indirectly)"
    )]
    NotAnAncestor {
        /// The reference as written.
        reference: String,
        /// The step whose template it is.
        step: String,
        /// The step it reads.
        referenced: String,
    },
    /// `${item}` or `${index}` where there is no current item.
    #[error("`${{{reference}}}` is only available in the `input` of a step with `for_each`")]
    ItemOutsideForEach {
        /// The reference as written.
        reference: String,
    },
    /// A number outside its allowed range.
    #[error("{field} must be between {min} and {max}, got {value}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value found.
        value: String,
        /// Smallest allowed value.
        min: String,
        /// Largest allowed value.
        max: String,
    },
    /// A field that only makes sense together with another one.
    #[error("`{field}` is only allowed together with `{requires}`")]
    RequiresField {
        /// The field that is out of place.
        field: &'static str,
        /// The field it needs.
        requires: &'static str,
    },
    /// Any other rule of the format.
    #[error("{message}")]
    Rule {
        /// Which rule, as a sentence.
        message: String,
    },
}

impl ProblemKind {
    /// The stable machine-readable code of the problem.
    pub fn code(&self) -> &'static str {
        match self {
            ProblemKind::Syntax { .. } => "syntax",
            ProblemKind::UnknownField { .. } => "unknown_field",
            ProblemKind::MissingField { .. } => "missing_field",
            ProblemKind::InvalidValue { .. } => "invalid_value",
            ProblemKind::InvalidId(_) => "invalid_id",
            ProblemKind::InvalidPluginRef(_) => "invalid_plugin_ref",
            ProblemKind::UnknownPlugin(_) => "unknown_plugin",
            ProblemKind::Graph(GraphError::DuplicateId { .. }) => "duplicate_id",
            ProblemKind::Graph(GraphError::UnknownDependency { .. }) => "unknown_dependency",
            ProblemKind::Graph(GraphError::RepeatedDependency { .. }) => "repeated_dependency",
            ProblemKind::Graph(GraphError::Cycle { .. }) => "cycle",
            ProblemKind::InvalidTemplate(_) => "invalid_template",
            ProblemKind::InvalidExpression(_) => "invalid_expression",
            ProblemKind::UnknownStep { .. } => "unknown_step",
            ProblemKind::NotAnAncestor { .. } => "not_an_ancestor",
            ProblemKind::ItemOutsideForEach { .. } => "item_outside_for_each",
            ProblemKind::OutOfRange { .. } => "out_of_range",
            ProblemKind::RequiresField { .. } => "requires_field",
            ProblemKind::Rule { .. } => "rule",
        }
    }
}

/// One problem and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where in the document, such as `/steps/2/depends_on/0`.
    pub path: JsonPointer,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: JsonPointer, kind: impl Into<ProblemKind>) -> Self {
        Problem {
            path,
            kind: kind.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.path, self.kind.code(), self.kind)
    }
}

/// Serialized as `{"path": ..., "code": ..., "message": ...}`.
impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Problem", 3)?;
        out.serialize_field("path", &self.path)?;
        out.serialize_field("code", self.kind.code())?;
        out.serialize_field("message", &self.kind.to_string())?;
        out.end()
    }
}

/// Every problem found in a definition, in document order; never empty.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid workflow definition: ")?;
        let lines: Vec<String> = self.0.iter().map(Problem::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_print_path_code_and_message() {
        let problem = Problem::new(
            JsonPointer::root().field("steps").index(0).field("retryy"),
            ProblemKind::UnknownField {
                field: "retryy".to_owned(),
            },
        );
        assert_eq!(
            problem.to_string(),
            "/steps/0/retryy unknown_field: unknown field `retryy`"
        );
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"path": "/steps/0/retryy", "code": "unknown_field", "message": "unknown field `retryy`"})
        );
    }
}
