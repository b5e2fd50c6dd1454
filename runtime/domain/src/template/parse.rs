//! Parsing of template strings and of the references inside `${...}`.
//!
//! The grammar is small enough for a hand-written scanner: a template is text with `${...}`
//! holes, and a reference is a root name followed by a path (see the parent module).

use crate::id::StepId;

use super::{JobField, JsonPath, PathSegment, Reference, StepAttribute, Template, TextPart};

/// Why a template string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateSyntaxError {
    /// A `${` without its closing `}`.
    #[error("unterminated `${{` at byte {offset}")]
    Unterminated {
        /// Byte offset of the `${` in the template.
        offset: usize,
    },
    /// The text inside `${...}` is not a reference.
    #[error("invalid reference `${{{reference}}}`: {reason}")]
    Reference {
        /// The text between the braces.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parses a whole template string.
pub(super) fn parse_template(source: &str) -> Result<Template, TemplateSyntaxError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = source;
    while let Some(dollar) = rest.find('$') {
        literal.push_str(&rest[..dollar]);
        let after = &rest[dollar..];
        if let Some(escaped) = after.strip_prefix("$${") {
            literal.push_str("${");
            rest = escaped;
        } else if let Some(hole) = after.strip_prefix("${") {
            let offset = source.len() - after.len();
            let close = hole
                .find('}')
                .ok_or(TemplateSyntaxError::Unterminated { offset })?;
            let reference = parse_reference(&hole[..close])?;
            if !literal.is_empty() {
                parts.push(TextPart::Literal(std::mem::take(&mut literal)));
            }
            parts.push(TextPart::Reference(reference));
            rest = &hole[close + 1..];
        } else {
            literal.push('$');
            rest = &after[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(TextPart::Literal(literal));
    }
    match parts.as_slice() {
        [TextPart::Reference(reference)] => Ok(Template::Whole(reference.clone())),
        _ => Ok(Template::Text(parts)),
    }
}

/// Parses the text between `${` and `}`.
pub(crate) fn parse_reference(text: &str) -> Result<Reference, TemplateSyntaxError> {
    let invalid = |reason: String| TemplateSyntaxError::Reference {
        reference: text.to_owned(),
        reason,
    };
    let mut cursor = Cursor { rest: text.trim() };
    let root = cursor.identifier();
    let reference = match root {
        "workflow" => {
            cursor.expect_field("input").map_err(invalid)?;
            Reference::WorkflowInput(cursor.path().map_err(invalid)?)
        }
        "steps" => parse_step_reference(&mut cursor).map_err(invalid)?,
        "item" => Reference::Item(cursor.path().map_err(invalid)?),
        "index" => Reference::Index,
        "job" => {
            let field = match cursor.field().map_err(invalid)? {
                "id" => JobField::Id,
                "workflow" => JobField::Workflow,
                "version" => JobField::Version,
                other => {
                    return Err(invalid(format!(
                        "unknown job field `{other}`; expected `id`, `workflow` or `version`"
                    )));
                }
            };
            Reference::Job(field)
        }
        "" => return Err(invalid("empty reference".to_owned())),
        other => {
            return Err(invalid(format!(
                "unknown root `{other}`; expected `workflow`, `steps`, `item`, `index` or `job`"
            )));
        }
    };
    cursor.finish().map_err(invalid)?;
    Ok(reference)
}

fn parse_step_reference(cursor: &mut Cursor<'_>) -> Result<Reference, String> {
    let step = StepId::new(cursor.field()?).map_err(|error| error.to_string())?;
    let attribute = match cursor.field()? {
        "output" => {
            return Ok(Reference::StepOutput {
                step,
                path: cursor.path()?,
            });
        }
        "status" => StepAttribute::Status,
        "succeeded_count" => StepAttribute::SucceededCount,
        "failed_count" => StepAttribute::FailedCount,
        other => {
            return Err(format!(
                "unknown step field `{other}`; expected `output`, `status`, `succeeded_count` or `failed_count`"
            ));
        }
    };
    Ok(Reference::StepAttribute { step, attribute })
}

/// A position in the text of a reference.
struct Cursor<'a> {
    rest: &'a str,
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl<'a> Cursor<'a> {
    /// Takes the longest run of identifier characters (possibly empty).
    fn identifier(&mut self) -> &'a str {
        let end = self
            .rest
            .find(|c| !is_identifier_char(c))
            .unwrap_or(self.rest.len());
        let (identifier, rest) = self.rest.split_at(end);
        self.rest = rest;
        identifier
    }

    /// Takes `.name` and returns `name`.
    fn field(&mut self) -> Result<&'a str, String> {
        let Some(rest) = self.rest.strip_prefix('.') else {
            return Err(match self.rest.chars().next() {
                Some(c) => format!("expected `.` but found `{c}`"),
                None => "ends too early".to_owned(),
            });
        };
        self.rest = rest;
        match self.identifier() {
            "" => Err("expected a name after `.`".to_owned()),
            name => Ok(name),
        }
    }

    fn expect_field(&mut self, expected: &str) -> Result<(), String> {
        match self.field()? {
            name if name == expected => Ok(()),
            other => Err(format!("expected `{expected}` but found `{other}`")),
        }
    }

    /// Takes `.field` and `[index]` segments until the end of the text.
    fn path(&mut self) -> Result<JsonPath, String> {
        let mut segments = Vec::new();
        while let Some(c) = self.rest.chars().next() {
            match c {
                '.' => segments.push(PathSegment::Field(self.field()?.to_owned())),
                '[' => segments.push(PathSegment::Index(self.index()?)),
                other => return Err(format!("unexpected `{other}` in path")),
            }
        }
        Ok(JsonPath(segments))
    }

    /// Takes `[digits]`.
    fn index(&mut self) -> Result<usize, String> {
        let inner = &self.rest[1..];
        let close = inner.find(']').ok_or("unclosed `[`")?;
        let digits = &inner[..close];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("index `[{digits}]` must be a non-negative integer"));
        }
        let index = digits
            .parse()
            .map_err(|_| format!("index `[{digits}]` is too large"))?;
        self.rest = &inner[close + 1..];
        Ok(index)
    }

    fn finish(&self) -> Result<(), String> {
        match self.rest.chars().next() {
            None => Ok(()),
            Some(c) => Err(format!("unexpected `{c}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(text: &str) -> Reference {
        parse_reference(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_every_kind_of_reference() {
        let cases = [
            "workflow.input",
            "workflow.input.machines[0].name",
            "steps.erase.output",
            "steps.erase.output.disks[12]",
            "steps.erase.status",
            "steps.erase.failed_count",
            "steps.erase.succeeded_count",
            "item",
            "item.site",
            "index",
            "job.id",
            "job.workflow",
            "job.version",
        ];
        for text in cases {
            assert_eq!(reference(text).to_string(), text);
        }
        assert_eq!(reference("  item.a-b_c  ").to_string(), "item.a-b_c");
    }

    #[test]
    fn explains_bad_references() {
        let error = |text: &str| parse_reference(text).unwrap_err().to_string();
        assert_eq!(
            error("wf.input"),
            "invalid reference `${wf.input}`: unknown root `wf`; expected `workflow`, `steps`, `item`, `index` or `job`"
        );
        assert!(error("workflow.inputs").contains("expected `input` but found `inputs`"));
        assert!(error("steps.Erase.output").contains("must start with a lowercase letter"));
        assert!(error("steps.erase.result").contains("unknown step field `result`"));
        assert!(error("steps.erase.status.x").contains("unexpected `.`"));
        assert!(error("item[x]").contains("must be a non-negative integer"));
        assert!(error("item[1").contains("unclosed `[`"));
        assert!(error("item.").contains("expected a name after `.`"));
        assert!(error("").contains("empty reference"));
        assert!(error("job.owner").contains("unknown job field"));
    }

    #[test]
    fn whole_string_reference_is_kept_whole() {
        let template = parse_template("${item}").unwrap();
        assert_eq!(
            template,
            Template::Whole(Reference::Item(JsonPath::default()))
        );
    }

    #[test]
    fn text_with_references_and_escapes() {
        let template = parse_template("http://x/${item.id}?cost=$5&raw=$${not}").unwrap();
        let Template::Text(parts) = &template else {
            panic!("expected text")
        };
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[2],
            TextPart::Literal("?cost=$5&raw=${not}".to_owned())
        );
        assert_eq!(
            template.to_string(),
            "http://x/${item.id}?cost=$5&raw=$${not}"
        );
        assert_eq!(template.references().count(), 1);
    }

    #[test]
    fn unterminated_hole_reports_its_offset() {
        let error = parse_template("abc ${item").unwrap_err();
        assert_eq!(error, TemplateSyntaxError::Unterminated { offset: 4 });
    }

    #[test]
    fn plain_text_is_a_template_without_references() {
        let template = parse_template("hello").unwrap();
        assert_eq!(
            template,
            Template::Text(vec![TextPart::Literal("hello".to_owned())])
        );
        assert_eq!(parse_template("").unwrap(), Template::Text(vec![]));
    }
}
