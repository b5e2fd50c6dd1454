//! Evaluation of an [`Expr`] against a [`Scope`], with the typing rules of the parent module.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use crate::template::{RenderError, Scope, resolve};

use super::{CompareOp, Expr};

/// A condition that could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A reference names something missing.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The operands of a comparison have types it does not accept.
    #[error("cannot compare {left} with {right} using `{operator}`")]
    TypeMismatch {
        /// The operator.
        operator: &'static str,
        /// The left operand's type, such as `a string`.
        left: &'static str,
        /// The right operand's type.
        right: &'static str,
    },
    /// `and`, `or` or `not` received something other than a boolean.
    #[error("`{operator}` needs booleans but got {found}")]
    NotBoolean {
        /// The operator.
        operator: &'static str,
        /// The type it received.
        found: &'static str,
    },
    /// The right side of `in` is not an array, object or string, or a key is not a string.
    #[error("`{operator}` cannot look for {needle} in {haystack}")]
    BadMembership {
        /// `in` or `not in`.
        operator: &'static str,
        /// The left operand's type.
        needle: &'static str,
        /// The right operand's type.
        haystack: &'static str,
    },
    /// The condition as a whole is not a boolean.
    #[error("condition evaluated to {found}, not a boolean")]
    NotACondition {
        /// The type it evaluated to.
        found: &'static str,
    },
}

/// The JSON type of a value, for error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Evaluates a whole condition to a boolean.
pub(super) fn evaluate(expr: &Expr, scope: &dyn Scope) -> Result<bool, EvalError> {
    match value(expr, scope)?.as_ref() {
        Value::Bool(result) => Ok(*result),
        other => Err(EvalError::NotACondition {
            found: type_name(other),
        }),
    }
}

fn value<'s>(expr: &'s Expr, scope: &'s dyn Scope) -> Result<Cow<'s, Value>, EvalError> {
    let boolean = |b: bool| Ok(Cow::Owned(Value::Bool(b)));
    match expr {
        Expr::Literal(literal) => Ok(Cow::Borrowed(literal)),
        Expr::Reference(reference) => Ok(resolve(reference, scope)?),
        Expr::List(items) => {
            let values = items
                .iter()
                .map(|item| value(item, scope).map(Cow::into_owned));
            Ok(Cow::Owned(Value::Array(values.collect::<Result<_, _>>()?)))
        }
        Expr::Not(inner) => boolean(!truth("not", inner, scope)?),
        Expr::And(left, right) => {
            boolean(truth("and", left, scope)? && truth("and", right, scope)?)
        }
        Expr::Or(left, right) => boolean(truth("or", left, scope)? || truth("or", right, scope)?),
        Expr::Compare { op, left, right } => boolean(compare(
            *op,
            value(left, scope)?.as_ref(),
            value(right, scope)?.as_ref(),
        )?),
    }
}

/// Evaluates an operand of a boolean operator.
fn truth(operator: &'static str, expr: &Expr, scope: &dyn Scope) -> Result<bool, EvalError> {
    match value(expr, scope)?.as_ref() {
        Value::Bool(b) => Ok(*b),
        other => Err(EvalError::NotBoolean {
            operator,
            found: type_name(other),
        }),
    }
}

fn compare(op: CompareOp, left: &Value, right: &Value) -> Result<bool, EvalError> {
    let mismatch = || EvalError::TypeMismatch {
        operator: op.as_str(),
        left: type_name(left),
        right: type_name(right),
    };
    match op {
        CompareOp::Eq | CompareOp::Ne => {
            let same_type = std::mem::discriminant(left) == std::mem::discriminant(right);
            if !same_type && !left.is_null() && !right.is_null() {
                return Err(mismatch());
            }
            Ok(json_equal(left, right) == (op == CompareOp::Eq))
        }
        CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge => {
            let ordering = match (left, right) {
                (Value::Number(a), Value::Number(b)) => number(a).partial_cmp(&number(b)),
                (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                _ => None,
            }
            .ok_or_else(mismatch)?;
            Ok(match op {
                CompareOp::Lt => ordering == Ordering::Less,
                CompareOp::Le => ordering != Ordering::Greater,
                CompareOp::Gt => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            })
        }
        CompareOp::In | CompareOp::NotIn => Ok(contains(op, left, right)? == (op == CompareOp::In)),
    }
}

fn contains(op: CompareOp, needle: &Value, haystack: &Value) -> Result<bool, EvalError> {
    match (needle, haystack) {
        (_, Value::Array(items)) => Ok(items.iter().any(|item| json_equal(needle, item))),
        (Value::String(key), Value::Object(map)) => Ok(map.contains_key(key)),
        (Value::String(part), Value::String(whole)) => Ok(whole.contains(part.as_str())),
        _ => Err(EvalError::BadMembership {
            operator: op.as_str(),
            needle: type_name(needle),
            haystack: type_name(haystack),
        }),
    }
}

fn number(n: &serde_json::Number) -> f64 {
    // Every JSON number has an f64 approximation; exact integers beyond 2^53 are rare in
    // conditions and compare approximately.
    n.as_f64().unwrap_or(f64::NAN)
}

/// JSON equality where numbers compare by value, recursively.
fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a == b || number(a) == number(b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, x)| b.get(key).is_some_and(|y| json_equal(x, y)))
        }
        _ => left == right,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::expr::Condition;
    use crate::state::StepState;
    use crate::template::scope::testing::TestScope;

    fn scope() -> TestScope {
        TestScope::new(
            json!({"env": "prod", "n": 3, "tags": ["a", "b"], "meta": {"k": 1}, "dry": false}),
        )
        .with_step(
            "erase",
            StepState::Succeeded,
            Some(json!({"ok": true})),
            4,
            0,
        )
        .with_step("skipped", StepState::Skipped, None, 0, 0)
    }

    fn eval(source: &str) -> Result<bool, String> {
        Condition::parse(source)
            .unwrap_or_else(|e| panic!("{source}: {e}"))
            .evaluate(&scope())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn comparisons_and_logic() {
        let truths = [
            "${steps.erase.failed_count} == 0",
            "${workflow.input.n} == 3.0",
            "${workflow.input.n} >= 3 and ${workflow.input.n} < 4",
            "'abc' < 'abd'",
            "${workflow.input.env} in ['staging', 'prod']",
            "'b' in ${workflow.input.tags}",
            "'k' in ${workflow.input.meta}",
            "'ro' in ${workflow.input.env}",
            "'z' not in ${workflow.input.tags}",
            "not ${workflow.input.dry} && ${steps.erase.output.ok}",
            "${steps.skipped.output} == null",
            "${steps.skipped.status} == \"skipped\"",
            "[1, 'a'] != null || false",
        ];
        for source in truths {
            assert_eq!(eval(source), Ok(true), "{source}");
        }
        assert_eq!(eval("${workflow.input.n} != 3 or 1 > 2"), Ok(false));
        assert_eq!(eval("[1, 2] == [1.0, 2]"), Ok(true));
    }

    #[test]
    fn boolean_operators_short_circuit() {
        assert_eq!(
            eval("${steps.skipped.status} == 'succeeded' and ${steps.skipped.output.ok}"),
            Ok(false)
        );
        assert_eq!(eval("true or ${workflow.input.missing}"), Ok(true));
    }

    #[test]
    fn type_mismatches_are_errors() {
        assert_eq!(
            eval("${workflow.input.n} == '3'"),
            Err("cannot compare a number with a string using `==`".to_owned())
        );
        assert_eq!(
            eval("'a' < 1"),
            Err("cannot compare a string with a number using `<`".to_owned())
        );
        assert_eq!(
            eval("null < 1"),
            Err("cannot compare null with a number using `<`".to_owned())
        );
        assert_eq!(
            eval("1 and true"),
            Err("`and` needs booleans but got a number".to_owned())
        );
        assert_eq!(
            eval("not 'x'"),
            Err("`not` needs booleans but got a string".to_owned())
        );
        assert_eq!(
            eval("1 in 2"),
            Err("`in` cannot look for a number in a number".to_owned())
        );
        assert_eq!(
            eval("${workflow.input.n}"),
            Err("condition evaluated to a number, not a boolean".to_owned())
        );
    }

    #[test]
    fn missing_references_are_errors() {
        assert_eq!(
            eval("${workflow.input.missing} == 1"),
            Err("`${workflow.input.missing}` is missing: no field `missing`".to_owned())
        );
    }
}
