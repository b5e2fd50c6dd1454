//! Splits an expression into tokens, each with its byte offset for error messages.

use serde_json::Number;

use crate::template::{Reference, parse_reference};

use super::ExprSyntaxError;

/// One token of an expression.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Number(Number),
    String(String),
    True,
    False,
    Null,
    Reference(Reference),
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    Comma,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Not,
    In,
}

impl Token {
    /// How the token reads in an error message.
    pub(super) fn describe(&self) -> String {
        match self {
            Token::Number(n) => format!("number `{n}`"),
            Token::String(s) => format!("string {s:?}"),
            Token::Reference(r) => format!("`${{{r}}}`"),
            other => format!("`{}`", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Token::True => "true",
            Token::False => "false",
            Token::Null => "null",
            Token::LeftParen => "(",
            Token::RightParen => ")",
            Token::LeftBracket => "[",
            Token::RightBracket => "]",
            Token::Comma => ",",
            Token::Eq => "==",
            Token::Ne => "!=",
            Token::Lt => "<",
            Token::Le => "<=",
            Token::Gt => ">",
            Token::Ge => ">=",
            Token::And => "and",
            Token::Or => "or",
            Token::Not => "not",
            Token::In => "in",
            Token::Number(_) | Token::String(_) | Token::Reference(_) => "value",
        }
    }
}

/// Tokenizes `source`; every token comes with its byte offset.
pub(super) fn tokenize(source: &str) -> Result<Vec<(usize, Token)>, ExprSyntaxError> {
    let mut tokens = Vec::new();
    let mut offset = 0;
    while offset < source.len() {
        let rest = &source[offset..];
        let Some(c) = rest.chars().next() else { break };
        if c.is_whitespace() {
            offset += c.len_utf8();
            continue;
        }
        let (token, length) = next_token(rest, offset)?;
        tokens.push((offset, token));
        offset += length;
    }
    Ok(tokens)
}

fn error(offset: usize, message: impl Into<String>) -> ExprSyntaxError {
    ExprSyntaxError {
        offset,
        message: message.into(),
    }
}

/// Reads the token at the start of `rest`, which begins at `offset` in the source.
fn next_token(rest: &str, offset: usize) -> Result<(Token, usize), ExprSyntaxError> {
    const SYMBOLS: [(&str, Token); 14] = [
        ("==", Token::Eq),
        ("!=", Token::Ne),
        ("<=", Token::Le),
        (">=", Token::Ge),
        ("&&", Token::And),
        ("||", Token::Or),
        ("<", Token::Lt),
        (">", Token::Gt),
        ("!", Token::Not),
        ("(", Token::LeftParen),
        (")", Token::RightParen),
        ("[", Token::LeftBracket),
        ("]", Token::RightBracket),
        (",", Token::Comma),
    ];
    if let Some((symbol, token)) = SYMBOLS.iter().find(|(symbol, _)| rest.starts_with(symbol)) {
        return Ok((token.clone(), symbol.len()));
    }
    let first = rest.chars().next().unwrap_or(' ');
    if let Some(inner) = rest.strip_prefix("${") {
        let close = inner
            .find('}')
            .ok_or_else(|| error(offset, "unterminated `${`"))?;
        let reference =
            parse_reference(&inner[..close]).map_err(|e| error(offset, e.to_string()))?;
        return Ok((Token::Reference(reference), close + 3));
    }
    if first == '"' || first == '\'' {
        return string(rest, offset, first);
    }
    if first.is_ascii_digit()
        || (first == '-' && rest[1..].starts_with(|c: char| c.is_ascii_digit()))
    {
        return number(rest, offset);
    }
    if first.is_ascii_alphabetic() {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let token = match &rest[..end] {
            "true" => Token::True,
            "false" => Token::False,
            "null" => Token::Null,
            "and" => Token::And,
            "or" => Token::Or,
            "not" => Token::Not,
            "in" => Token::In,
            word => {
                return Err(error(
                    offset,
                    format!(
                        "unknown word `{word}`; references are written `${{...}}` and strings in quotes"
                    ),
                ));
            }
        };
        return Ok((token, end));
    }
    Err(error(offset, format!("unexpected `{first}`")))
}

/// Reads a quoted string with `\\`, `\"`, `\'`, `\n`, `\t` escapes.
fn string(rest: &str, offset: usize, quote: char) -> Result<(Token, usize), ExprSyntaxError> {
    let mut text = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((Token::String(text), at + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => text.push('\n'),
                Some((_, 't')) => text.push('\t'),
                Some((_, escaped @ ('\\' | '"' | '\''))) => text.push(escaped),
                Some((at, other)) => {
                    return Err(error(offset + at, format!("unknown escape `\\{other}`")));
                }
                None => break,
            },
            c => text.push(c),
        }
    }
    Err(error(offset, "unterminated string"))
}

/// Reads a JSON number.
fn number(rest: &str, offset: usize) -> Result<(Token, usize), ExprSyntaxError> {
    let end = rest
        .char_indices()
        .skip(1)
        .find(|&(at, c)| {
            let after_exponent = matches!(c, '+' | '-') && rest[..at].ends_with(['e', 'E']);
            !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E') || after_exponent)
        })
        .map_or(rest.len(), |(at, _)| at);
    let text = &rest[..end];
    let number: Number = serde_json::from_str(text)
        .map_err(|_| error(offset, format!("invalid number `{text}`")))?;
    Ok((Token::Number(number), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<Token> {
        tokenize(source)
            .unwrap()
            .into_iter()
            .map(|(_, token)| token)
            .collect()
    }

    #[test]
    fn reads_every_token_kind() {
        let tokens =
            kinds("${index} >= -2.5e+3 and 'it''s' != \"a\\\"b\" or not null in [true, false]");
        assert_eq!(tokens.len(), 17);
        assert_eq!(
            tokens[2],
            Token::Number(serde_json::from_str("-2.5e+3").unwrap())
        );
        assert_eq!(tokens[4], Token::String("it".to_owned()));
        assert_eq!(tokens[5], Token::String("s".to_owned()));
        assert_eq!(tokens[7], Token::String("a\"b".to_owned()));
    }

    #[test]
    fn errors_carry_offsets() {
        assert_eq!(tokenize("1 == foo").unwrap_err().offset, 5);
        assert_eq!(tokenize("'abc").unwrap_err().message, "unterminated string");
        assert_eq!(tokenize("1 # 2").unwrap_err().message, "unexpected `#`");
        assert_eq!(
            tokenize("1.2.3").unwrap_err().message,
            "invalid number `1.2.3`"
        );
        assert!(
            tokenize("${nope} == 1")
                .unwrap_err()
                .message
                .contains("unknown root `nope`")
        );
    }
}
