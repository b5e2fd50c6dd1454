//! [`ValueTemplate`]: a JSON document whose strings may hold templates, parsed once and
//! rendered recursively.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::pointer::JsonPointer;

use super::{Reference, RenderError, Scope, Template, TemplateSyntaxError};

/// A JSON document with templates in its strings, such as a step's `input`.
///
/// Parts without any `${` are kept as plain JSON and copied when rendering. Serialized back as
/// the JSON it was compiled from (modulo whitespace inside `${}`).
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTemplate {
    /// JSON without templates.
    Literal(Value),
    /// A string holding at least one `${` (a reference or an escape).
    String(Template),
    /// An array with templates somewhere inside.
    Array(Vec<ValueTemplate>),
    /// An object with templates somewhere inside its values (keys are never templates).
    Object(BTreeMap<String, ValueTemplate>),
}

/// Where a reference occurs inside a [`ValueTemplate`].
#[derive(Debug, Clone, Copy)]
pub struct ReferenceSite<'a> {
    /// The reference.
    pub reference: &'a Reference,
    /// The template string it occurs in.
    pub template: &'a Template,
}

impl ValueTemplate {
    /// Parses every template string in `value`. Errors come with the pointer (relative to
    /// `value`) of the string that failed; all of them are reported.
    pub fn compile(
        value: &Value,
    ) -> Result<ValueTemplate, Vec<(JsonPointer, TemplateSyntaxError)>> {
        let mut errors = Vec::new();
        let template = compile_at(value, &JsonPointer::root(), &mut errors);
        if errors.is_empty() {
            Ok(template)
        } else {
            Err(errors)
        }
    }

    /// Renders the document.
    pub fn render(&self, scope: &dyn Scope) -> Result<Value, RenderError> {
        match self {
            ValueTemplate::Literal(value) => Ok(value.clone()),
            ValueTemplate::String(template) => template.render(scope),
            ValueTemplate::Array(items) => items
                .iter()
                .map(|item| item.render(scope))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            ValueTemplate::Object(fields) => fields
                .iter()
                .map(|(key, value)| Ok((key.clone(), value.render(scope)?)))
                .collect::<Result<_, _>>()
                .map(Value::Object),
        }
    }

    /// Every reference in the document with the pointer (relative to the document) of the
    /// string that holds it, in document order.
    pub fn references(&self) -> Vec<(JsonPointer, ReferenceSite<'_>)> {
        let mut sites = Vec::new();
        self.collect_references(&JsonPointer::root(), &mut sites);
        sites
    }

    fn collect_references<'a>(
        &'a self,
        at: &JsonPointer,
        sites: &mut Vec<(JsonPointer, ReferenceSite<'a>)>,
    ) {
        match self {
            ValueTemplate::Literal(_) => {}
            ValueTemplate::String(template) => {
                sites.extend(template.references().map(|reference| {
                    (
                        at.clone(),
                        ReferenceSite {
                            reference,
                            template,
                        },
                    )
                }))
            }
            ValueTemplate::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    item.collect_references(&at.index(index), sites);
                }
            }
            ValueTemplate::Object(fields) => {
                for (key, value) in fields {
                    value.collect_references(&at.field(key), sites);
                }
            }
        }
    }
}

fn compile_at(
    value: &Value,
    at: &JsonPointer,
    errors: &mut Vec<(JsonPointer, TemplateSyntaxError)>,
) -> ValueTemplate {
    let compiled = match value {
        Value::String(text) if text.contains("${") => match Template::parse(text) {
            Ok(template) => ValueTemplate::String(template),
            Err(error) => {
                errors.push((at.clone(), error));
                ValueTemplate::Literal(value.clone())
            }
        },
        Value::Array(items) => ValueTemplate::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| compile_at(item, &at.index(index), errors))
                .collect(),
        ),
        Value::Object(fields) => ValueTemplate::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), compile_at(value, &at.field(key), errors)))
                .collect(),
        ),
        other => ValueTemplate::Literal(other.clone()),
    };
    collapse(compiled)
}

/// Folds a container whose children are all literal into one literal.
fn collapse(template: ValueTemplate) -> ValueTemplate {
    match template {
        ValueTemplate::Array(items) if items.iter().all(is_literal) => ValueTemplate::Literal(
            Value::Array(items.into_iter().filter_map(into_literal).collect()),
        ),
        ValueTemplate::Object(fields) if fields.values().all(is_literal) => {
            ValueTemplate::Literal(Value::Object(
                fields
                    .into_iter()
                    .filter_map(|(key, value)| into_literal(value).map(|v| (key, v)))
                    .collect(),
            ))
        }
        other => other,
    }
}

fn is_literal(template: &ValueTemplate) -> bool {
    matches!(template, ValueTemplate::Literal(_))
}

fn into_literal(template: ValueTemplate) -> Option<Value> {
    match template {
        ValueTemplate::Literal(value) => Some(value),
        _ => None,
    }
}

impl Serialize for ValueTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ValueTemplate::Literal(value) => value.serialize(serializer),
            ValueTemplate::String(template) => serializer.serialize_str(&template.to_string()),
            ValueTemplate::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                items
                    .iter()
                    .try_for_each(|item| seq.serialize_element(item))?;
                seq.end()
            }
            ValueTemplate::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                fields
                    .iter()
                    .try_for_each(|(key, value)| map.serialize_entry(key, value))?;
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::scope::testing::TestScope;
    use super::*;

    fn render(template: Value, scope: &TestScope) -> Result<Value, RenderError> {
        ValueTemplate::compile(&template).unwrap().render(scope)
    }

    #[test]
    fn whole_string_keeps_the_json_type() {
        let scope = TestScope::new(json!({"n": 3, "flags": [true], "obj": {"a": null}}));
        let rendered = render(
            json!({"n": "${workflow.input.n}", "flags": "${workflow.input.flags}", "o": ["${workflow.input.obj}"]}),
            &scope,
        );
        assert_eq!(
            rendered.unwrap(),
            json!({"n": 3, "flags": [true], "o": [{"a": null}]})
        );
    }

    #[test]
    fn embedded_references_render_as_text() {
        let scope =
            TestScope::new(json!({"id": "d-1", "n": 2, "obj": {"a": [1, "x"]}, "nil": null}))
                .with_item(json!({"name": "m1"}), 4);
        let rendered = render(
            json!(
                "/${workflow.input.id}/${workflow.input.n}/${workflow.input.obj}/${workflow.input.nil}/${item.name}#${index}"
            ),
            &scope,
        );
        assert_eq!(
            rendered.unwrap(),
            json!("/d-1/2/{\"a\":[1,\"x\"]}/null/m1#4")
        );
    }

    #[test]
    fn step_references_read_outputs_and_counters() {
        let scope = TestScope::new(json!({}))
            .with_step(
                "erase",
                crate::state::StepState::Succeeded,
                Some(json!([{"ok": true}])),
                1,
                2,
            )
            .with_step("skipped", crate::state::StepState::Skipped, None, 0, 0);
        let rendered = render(
            json!({
                "first": "${steps.erase.output[0].ok}",
                "failed": "${steps.erase.failed_count}",
                "status": "status=${steps.skipped.status}",
                "none": "${steps.skipped.output}",
                "job": "${job.workflow}@${job.version}"
            }),
            &scope,
        );
        assert_eq!(
            rendered.unwrap(),
            json!({"first": true, "failed": 2, "status": "status=skipped", "none": null, "job": "test@7"})
        );
    }

    #[test]
    fn missing_references_are_errors_naming_them() {
        let scope = TestScope::new(json!({"machines": [1]})).with_step(
            "skipped",
            crate::state::StepState::Skipped,
            None,
            0,
            0,
        );
        let error = |template: Value| render(template, &scope).unwrap_err().to_string();
        assert_eq!(
            error(json!("${workflow.input.device_id}")),
            "`${workflow.input.device_id}` is missing: no field `device_id`"
        );
        assert_eq!(
            error(json!({"a": ["x${workflow.input.machines[3]}"]})),
            "`${workflow.input.machines[3]}` is missing: no element [3] in an array of 1"
        );
        assert_eq!(
            error(json!("${workflow.input.machines.x}")),
            "`${workflow.input.machines.x}` is missing: cannot read field `x` of an array"
        );
        assert_eq!(
            error(json!("${steps.nope.status}")),
            "`${steps.nope.status}` is missing: no step `nope`"
        );
        assert_eq!(
            error(json!("${steps.skipped.output.a}")),
            "`${steps.skipped.output.a}` is missing: step `skipped` has no output (skipped)"
        );
        assert_eq!(
            error(json!("${item}")),
            "`${item}` is missing: not inside a `for_each` step"
        );
    }

    #[test]
    fn compile_reports_every_bad_string_with_its_pointer() {
        let errors =
            ValueTemplate::compile(&json!({"a": "${nope}", "b": [1, "${item"]})).unwrap_err();
        let pointers: Vec<String> = errors
            .iter()
            .map(|(pointer, _)| pointer.as_str().to_owned())
            .collect();
        assert_eq!(pointers, ["/a", "/b/1"]);
    }

    #[test]
    fn literal_subtrees_collapse_and_serialize_back() {
        let source = json!({"method": "DELETE", "h": {"x": [1, 2]}, "url": "http://i/${ workflow.input.id }"});
        let template = ValueTemplate::compile(&source).unwrap();
        let ValueTemplate::Object(fields) = &template else {
            panic!("expected object")
        };
        assert!(matches!(fields["h"], ValueTemplate::Literal(_)));
        let back = serde_json::to_value(&template).unwrap();
        assert_eq!(
            back,
            json!({"method": "DELETE", "h": {"x": [1, 2]}, "url": "http://i/${workflow.input.id}"})
        );
        let sites: Vec<String> = template
            .references()
            .iter()
            .map(|(p, s)| format!("{p} {}", s.reference))
            .collect();
        assert_eq!(sites, ["/url workflow.input.id"]);
    }
}
