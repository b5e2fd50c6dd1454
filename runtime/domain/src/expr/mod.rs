//! The `when` expression language: a step runs only if its condition evaluates to `true`.
//!
//! ```text
//! condition  := or
//! or         := and (("or" | "||") and)*
//! and        := not (("and" | "&&") not)*
//! not        := ("not" | "!") not | comparison
//! comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") operand)?
//! operand    := literal | "${" reference "}" | "[" (operand ("," operand)*)? "]" | "(" or ")"
//! literal    := number | "string" | 'string' | true | false | null
//! ```
//!
//! Examples: `${steps.erase.failed_count} == 0`,
//! `${workflow.input.env} in ["staging", "prod"] and not ${workflow.input.dry_run}`.
//!
//! Semantics, chosen so that a mistake is an error rather than a silent `false`:
//!
//! - References are the template references of [`crate::template`]; a missing one is an error.
//! - `==` and `!=` compare JSON values; numbers compare by value (`1 == 1.0`). Comparing with
//!   `null` is always allowed; comparing two other values of different types is an error.
//! - `<`, `<=`, `>`, `>=` compare two numbers, or two strings by code point; anything else is
//!   an error.
//! - `a in b` is true when `b` is an array with an element equal to `a`, an object with the
//!   string key `a`, or a string containing the string `a`; `not in` negates it.
//! - `and`, `or` and `not` need booleans (there is no truthiness) and short-circuit, so
//!   `${steps.a.status} == "succeeded" and ${steps.a.output.ok}` never reads the output of a
//!   step that did not succeed.
//! - The whole condition must evaluate to a boolean.
//!
//! Conditions are parsed when the definition is validated; [`Condition`] keeps the parsed tree
//! and the source text, which is what it serializes to.

mod eval;
mod lexer;
mod parser;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::{Reference, Scope};

pub use eval::EvalError;
pub(crate) use eval::type_name;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `not in`
    NotIn,
}

impl CompareOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::In => "in",
            CompareOp::NotIn => "not in",
        }
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number, string, boolean or `null`.
    Literal(Value),
    /// A `${...}` reference.
    Reference(Reference),
    /// `[a, b, ...]`.
    List(Vec<Expr>),
    /// `not e`.
    Not(Box<Expr>),
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a <op> b`.
    Compare {
        /// The operator.
        op: CompareOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
}

impl Expr {
    /// Every reference in the expression, left to right.
    pub fn references(&self) -> Vec<&Reference> {
        let mut found = Vec::new();
        self.collect_references(&mut found);
        found
    }

    fn collect_references<'a>(&'a self, found: &mut Vec<&'a Reference>) {
        match self {
            Expr::Literal(_) => {}
            Expr::Reference(reference) => found.push(reference),
            Expr::List(items) => items.iter().for_each(|item| item.collect_references(found)),
            Expr::Not(inner) => inner.collect_references(found),
            Expr::And(left, right) | Expr::Or(left, right) | Expr::Compare { left, right, .. } => {
                left.collect_references(found);
                right.collect_references(found);
            }
        }
    }
}

/// Why an expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {offset}")]
pub struct ExprSyntaxError {
    /// Byte offset in the expression where the problem was found.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// A step's `when` condition: the parsed expression and its source text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Condition {
    source: String,
    expr: Expr,
}

impl Condition {
    /// Parses a condition.
    pub fn parse(source: &str) -> Result<Condition, ExprSyntaxError> {
        let expr = parser::parse(source)?;
        Ok(Condition {
            source: source.to_owned(),
            expr,
        })
    }

    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed expression.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Evaluates the condition.
    pub fn evaluate(&self, scope: &dyn Scope) -> Result<bool, EvalError> {
        eval::evaluate(&self.expr, scope)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl TryFrom<String> for Condition {
    type Error = ExprSyntaxError;
    fn try_from(source: String) -> Result<Self, ExprSyntaxError> {
        Condition::parse(&source)
    }
}

impl From<Condition> for String {
    fn from(condition: Condition) -> String {
        condition.source
    }
}
