//! Recursive-descent parser from tokens to an [`Expr`], following the grammar in the parent
//! module.

use serde_json::Value;

use super::lexer::{Token, tokenize};
use super::{CompareOp, Expr, ExprSyntaxError};

/// Deepest nesting of parentheses, lists and `not`; conditions are short, and a bound keeps a
/// hostile definition from exhausting the stack.
const MAX_DEPTH: usize = 64;

/// Parses a whole expression.
pub(super) fn parse(source: &str) -> Result<Expr, ExprSyntaxError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser {
        tokens,
        position: 0,
        end: source.len(),
        depth: 0,
    };
    if parser.tokens.is_empty() {
        return Err(ExprSyntaxError {
            offset: 0,
            message: "empty expression".to_owned(),
        });
    }
    let expr = parser.or()?;
    match parser.tokens.get(parser.position) {
        None => Ok(expr),
        Some((offset, token)) => Err(ExprSyntaxError {
            offset: *offset,
            message: format!(
                "unexpected {} after a complete expression",
                token.describe()
            ),
        }),
    }
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    position: usize,
    /// Length of the source, the offset reported for "ended too early".
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position).map(|(_, token)| token)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.position)
            .map_or(self.end, |(offset, _)| *offset)
    }

    fn error(&self, message: String) -> ExprSyntaxError {
        ExprSyntaxError {
            offset: self.offset(),
            message,
        }
    }

    /// Consumes the next token if it equals `expected`.
    fn eat(&mut self, expected: &Token) -> bool {
        let matches = self.peek() == Some(expected);
        if matches {
            self.position += 1;
        }
        matches
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.peek().cloned();
        self.position += usize::from(token.is_some());
        token
    }

    fn nested<T>(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<T, ExprSyntaxError>,
    ) -> Result<T, ExprSyntaxError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("expression nests deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let result = parse(self);
        self.depth -= 1;
        result
    }

    fn or(&mut self) -> Result<Expr, ExprSyntaxError> {
        let mut left = self.and()?;
        while self.eat(&Token::Or) {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprSyntaxError> {
        let mut left = self.not()?;
        while self.eat(&Token::And) {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ExprSyntaxError> {
        if self.eat(&Token::Not) {
            return self.nested(|parser| Ok(Expr::Not(Box::new(parser.not()?))));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ExprSyntaxError> {
        let left = self.operand()?;
        let Some(op) = self.comparison_operator() else {
            return Ok(left);
        };
        let right = self.operand()?;
        if self.comparison_operator().is_some() {
            self.position -= 1;
            return Err(self.error("comparisons cannot be chained; use `and`".to_owned()));
        }
        Ok(Expr::Compare {
            op,
            left: Box::new(left),
            right: Box::new(right),
        })
    }

    /// Consumes a comparison operator, including the two-token `not in`.
    fn comparison_operator(&mut self) -> Option<CompareOp> {
        let op = match self.peek()? {
            Token::Eq => CompareOp::Eq,
            Token::Ne => CompareOp::Ne,
            Token::Lt => CompareOp::Lt,
            Token::Le => CompareOp::Le,
            Token::Gt => CompareOp::Gt,
            Token::Ge => CompareOp::Ge,
            Token::In => CompareOp::In,
            Token::Not
                if self.tokens.get(self.position + 1).map(|(_, t)| t) == Some(&Token::In) =>
            {
                self.position += 1;
                CompareOp::NotIn
            }
            _ => return None,
        };
        self.position += 1;
        Some(op)
    }

    fn operand(&mut self) -> Result<Expr, ExprSyntaxError> {
        let offset = self.offset();
        let describe = |token: Option<Token>| match token {
            Some(token) => format!("expected a value but found {}", token.describe()),
            None => "expected a value but the expression ended".to_owned(),
        };
        match self.next() {
            Some(Token::Number(number)) => Ok(Expr::Literal(Value::Number(number))),
            Some(Token::String(text)) => Ok(Expr::Literal(Value::String(text))),
            Some(Token::True) => Ok(Expr::Literal(Value::Bool(true))),
            Some(Token::False) => Ok(Expr::Literal(Value::Bool(false))),
            Some(Token::Null) => Ok(Expr::Literal(Value::Null)),
            Some(Token::Reference(reference)) => Ok(Expr::Reference(reference)),
            Some(Token::LeftParen) => self.nested(|parser| {
                let inner = parser.or()?;
                parser.expect(&Token::RightParen)?;
                Ok(inner)
            }),
            Some(Token::LeftBracket) => self.nested(Parser::list),
            other => Err(ExprSyntaxError {
                offset,
                message: describe(other),
            }),
        }
    }

    /// The rest of a list after `[`.
    fn list(&mut self) -> Result<Expr, ExprSyntaxError> {
        let mut items = Vec::new();
        if self.eat(&Token::RightBracket) {
            return Ok(Expr::List(items));
        }
        loop {
            items.push(self.operand()?);
            if self.eat(&Token::RightBracket) {
                return Ok(Expr::List(items));
            }
            self.expect(&Token::Comma)?;
        }
    }

    fn expect(&mut self, expected: &Token) -> Result<(), ExprSyntaxError> {
        if self.eat(expected) {
            return Ok(());
        }
        let found = self
            .peek()
            .map_or_else(|| "the end".to_owned(), Token::describe);
        Err(self.error(format!(
            "expected {} but found {found}",
            expected.describe()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(source: &str) -> String {
        fn show(expr: &Expr) -> String {
            match expr {
                Expr::Literal(value) => value.to_string(),
                Expr::Reference(reference) => format!("${{{reference}}}"),
                Expr::List(items) => {
                    format!("[{}]", items.iter().map(show).collect::<Vec<_>>().join(","))
                }
                Expr::Not(inner) => format!("(not {})", show(inner)),
                Expr::And(l, r) => format!("({} and {})", show(l), show(r)),
                Expr::Or(l, r) => format!("({} or {})", show(l), show(r)),
                Expr::Compare { op, left, right } => {
                    format!("({} {} {})", show(left), op.as_str(), show(right))
                }
            }
        }
        show(&parse(source).unwrap_or_else(|e| panic!("{source}: {e}")))
    }

    #[test]
    fn precedence_is_or_and_not_comparison() {
        assert_eq!(
            shape("1 == 1 or 2 < 3 and not true"),
            "((1 == 1) or ((2 < 3) and (not true)))"
        );
        assert_eq!(
            shape("!(true || false) && null != 1"),
            "((not (true or false)) and (null != 1))"
        );
        assert_eq!(
            shape("not ${index} in [1, 'a']"),
            "(not (${index} in [1,\"a\"]))"
        );
        assert_eq!(shape("${index} not in []"), "(${index} not in [])");
    }

    #[test]
    fn syntax_errors_say_where() {
        let error = |source: &str| parse(source).unwrap_err().to_string();
        assert_eq!(error(""), "empty expression at byte 0");
        assert_eq!(
            error("1 =="),
            "expected a value but the expression ended at byte 4"
        );
        assert_eq!(
            error("1 == 2 == 3"),
            "comparisons cannot be chained; use `and` at byte 7"
        );
        assert_eq!(error("(1 == 2"), "expected `)` but found the end at byte 7");
        assert_eq!(
            error("true false"),
            "unexpected `false` after a complete expression at byte 5"
        );
        assert_eq!(
            error("[1 2]"),
            "expected `,` but found number `2` at byte 3"
        );
        assert_eq!(error("== 1"), "expected a value but found `==` at byte 0");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).unwrap_err().message.contains("nests deeper"));
        let fine = format!("{}true{}", "(".repeat(10), ")".repeat(10));
        assert!(parse(&fine).is_ok());
    }
}
