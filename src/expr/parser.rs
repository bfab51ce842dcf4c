//! Recursive-descent parser: tokens to [`Node`], with paths bound to their context.
//!
//! Grammar (keywords case-insensitive; `&&`, `||` and `NOT` are extensions to Twilio's syntax):
//!
//! ```text
//! or_expr    := and_expr { (OR | "||") and_expr }
//! and_expr   := not_expr { (AND | "&&") not_expr }
//! not_expr   := NOT not_expr | "(" or_expr ")" | comparison
//! comparison := operand cmp_op operand
//! cmp_op     := "==" | "=" | "!=" | ">" | ">=" | "<" | "<=" | CONTAINS
//!             | HAS | ">-" | IN | "<-" | NOT IN
//! operand    := string | number | TRUE | FALSE | NULL | "[" [constant {"," constant}] "]" | path
//! path       := name { "." name | "[" digits "]" }
//! ```
//!
//! Only parentheses and `NOT` recurse; both count against [`MAX_DEPTH`], so hostile input gets
//! an error instead of overflowing the stack.

use super::Context;
use super::ast::{ClockVar, CmpOp, Literal, Node, Operand, Path, PathSource, Segment, WorkerBuiltin};
use super::error::{ErrorKind, ExprError};
use super::lexer::{Tok, Token, tokenize};

/// The deepest nesting of parentheses and `NOT` accepted. Real routing expressions nest two or
/// three levels; the bound keeps evaluation and drop recursion shallow.
pub const MAX_DEPTH: usize = 64;

pub(crate) fn parse(source: &str, context: Option<Context>) -> Result<Node, ExprError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser { source, tokens, pos: 0, depth: 0, context };
    let node = parser.or_expr()?;
    match parser.peek() {
        Tok::Eof => Ok(node),
        _ => Err(parser.unexpected("AND, OR or the end of the expression")),
    }
}

struct Parser<'s> {
    source: &'s str,
    tokens: Vec<Token<'s>>,
    pos: usize,
    depth: usize,
    /// `None` when only the syntax is checked: every path is then read as a bare attribute.
    context: Option<Context>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keyword {
    And,
    Or,
    Not,
    In,
    Has,
    Contains,
    True,
    False,
    Null,
}

fn keyword(word: &str) -> Option<Keyword> {
    const KEYWORDS: [(&str, Keyword); 9] = [
        ("and", Keyword::And),
        ("or", Keyword::Or),
        ("not", Keyword::Not),
        ("in", Keyword::In),
        ("has", Keyword::Has),
        ("contains", Keyword::Contains),
        ("true", Keyword::True),
        ("false", Keyword::False),
        ("null", Keyword::Null),
    ];
    KEYWORDS.iter().find(|(text, _)| word.eq_ignore_ascii_case(text)).map(|&(_, kw)| kw)
}

impl<'s> Parser<'s> {
    fn peek(&self) -> &Tok<'s> {
        &self.tokens[self.pos].tok
    }

    fn peek_keyword(&self) -> Option<Keyword> {
        match self.peek() {
            Tok::Word(word) => keyword(word),
            _ => None,
        }
    }

    fn advance(&mut self) -> Token<'s> {
        let token = self.tokens[self.pos].clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn error_at(&self, kind: ErrorKind, byte_offset: usize) -> ExprError {
        ExprError::new(kind, self.source, byte_offset)
    }

    fn unexpected(&self, expected: &'static str) -> ExprError {
        let token = &self.tokens[self.pos];
        let kind = match token.tok {
            Tok::Eof => ErrorKind::UnexpectedEnd { expected },
            _ => {
                ErrorKind::UnexpectedToken { expected, found: self.source[token.start..token.end].to_owned() }
            }
        };
        self.error_at(kind, token.start)
    }

    /// Consumes the token that opens a nesting level (`(` or `NOT`), failing past [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), ExprError> {
        let opener = self.advance();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(ErrorKind::TooDeep { limit: MAX_DEPTH }, opener.start));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Node, ExprError> {
        self.chain(&Tok::OrOr, Keyword::Or, Self::and_expr, Node::Or)
    }

    fn and_expr(&mut self) -> Result<Node, ExprError> {
        self.chain(&Tok::AndAnd, Keyword::And, Self::not_expr, Node::And)
    }

    /// Parses `operand { separator operand }` into one n-ary node (or the operand alone), where
    /// the separator is `symbol` or `keyword`. Iterative, so long chains do not recurse.
    fn chain(
        &mut self,
        symbol: &Tok<'_>,
        keyword: Keyword,
        operand: fn(&mut Self) -> Result<Node, ExprError>,
        build: fn(Box<[Node]>) -> Node,
    ) -> Result<Node, ExprError> {
        let mut items = vec![operand(self)?];
        while self.peek() == symbol || self.peek_keyword() == Some(keyword) {
            self.advance();
            items.push(operand(self)?);
        }
        Ok(if items.len() == 1 { items.pop().expect("one item") } else { build(items.into()) })
    }

    fn not_expr(&mut self) -> Result<Node, ExprError> {
        if self.peek_keyword() == Some(Keyword::Not) {
            self.enter()?;
            let inner = self.not_expr()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        if matches!(self.peek(), Tok::LParen) {
            self.enter()?;
            let inner = self.or_expr()?;
            if !matches!(self.peek(), Tok::RParen) {
                return Err(self.unexpected("`)`"));
            }
            self.advance();
            self.depth -= 1;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Node, ExprError> {
        let left_start = self.tokens[self.pos].start;
        let left = self.operand()?;
        let op = match self.comparison_operator() {
            Some(op) => op,
            None if matches!(self.peek(), Tok::Eof | Tok::RParen)
                || matches!(self.peek_keyword(), Some(Keyword::And | Keyword::Or)) =>
            {
                let operand = self.source[left_start..self.tokens[self.pos - 1].end].to_owned();
                return Err(self.error_at(ErrorKind::MissingOperator { operand }, left_start));
            }
            None => return Err(self.unexpected("a comparison operator")),
        };
        let right = self.operand()?;
        Ok(Node::Compare { left, op, right })
    }

    fn comparison_operator(&mut self) -> Option<CmpOp> {
        let op = match (self.peek(), self.peek_keyword()) {
            (Tok::Cmp(op), _) => *op,
            (_, Some(Keyword::Has)) => CmpOp::Has,
            (_, Some(Keyword::In)) => CmpOp::In,
            (_, Some(Keyword::Contains)) => CmpOp::Contains,
            (_, Some(Keyword::Not)) => {
                let next = &self.tokens[(self.pos + 1).min(self.tokens.len() - 1)].tok;
                match next {
                    Tok::Word(word) if keyword(word) == Some(Keyword::In) => {
                        self.advance();
                        CmpOp::NotIn
                    }
                    _ => return None,
                }
            }
            _ => return None,
        };
        self.advance();
        Some(op)
    }

    fn operand(&mut self) -> Result<Operand, ExprError> {
        if matches!(self.peek(), Tok::LBracket) {
            return self.array();
        }
        if let Some(literal) = self.literal() {
            return Ok(Operand::Literal(literal));
        }
        match self.peek() {
            Tok::Word(_) => self.path().map(Operand::Path),
            _ => Err(self.unexpected("a value (a string, number, true, false, null, array or attribute)")),
        }
    }

    /// Consumes a constant if the next token is one.
    fn literal(&mut self) -> Option<Literal> {
        let literal = match (self.peek(), self.peek_keyword()) {
            (Tok::Str(text), _) => Literal::Str((*text).into()),
            (Tok::Number(number), _) => Literal::Number(*number),
            (_, Some(Keyword::True)) => Literal::Bool(true),
            (_, Some(Keyword::False)) => Literal::Bool(false),
            (_, Some(Keyword::Null)) => Literal::Null,
            _ => return None,
        };
        self.advance();
        Some(literal)
    }

    fn array(&mut self) -> Result<Operand, ExprError> {
        self.advance();
        let mut items = Vec::new();
        if matches!(self.peek(), Tok::RBracket) {
            self.advance();
            return Ok(Operand::Array(items.into()));
        }
        loop {
            match self.literal() {
                Some(literal) => items.push(literal),
                None if matches!(self.peek(), Tok::Word(_) | Tok::LBracket) => {
                    let token = &self.tokens[self.pos];
                    let found = self.source[token.start..token.end].to_owned();
                    return Err(self.error_at(ErrorKind::NonConstantInArray { found }, token.start));
                }
                None => return Err(self.unexpected("a constant")),
            }
            match self.peek() {
                Tok::Comma => {
                    self.advance();
                }
                Tok::RBracket => {
                    self.advance();
                    return Ok(Operand::Array(items.into()));
                }
                _ => return Err(self.unexpected("`,` or `]`")),
            }
        }
    }

    fn path(&mut self) -> Result<Path, ExprError> {
        let start = self.tokens[self.pos].start;
        let mut segments = Vec::new();
        let mut text = String::new();
        let Tok::Word(first) = self.advance().tok else { unreachable!("path starts with a word") };
        segments.push(Segment::Key(first.into()));
        text.push_str(first);
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.advance();
                    match self.peek() {
                        Tok::Word(word) => {
                            let word = *word;
                            self.advance();
                            segments.push(Segment::Key(word.into()));
                            text.push('.');
                            text.push_str(word);
                        }
                        _ => return Err(self.unexpected("an attribute name after `.`")),
                    }
                }
                Tok::LBracket => {
                    self.advance();
                    let token = &self.tokens[self.pos];
                    let digits = &self.source[token.start..token.end];
                    if !matches!(token.tok, Tok::Number(_)) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(self.unexpected("an array index (0, 1, 2...)"));
                    }
                    let index = digits.parse::<usize>().map_err(|_| {
                        let kind = ErrorKind::IndexTooLarge { text: digits.to_owned() };
                        self.error_at(kind, token.start)
                    })?;
                    self.advance();
                    if !matches!(self.peek(), Tok::RBracket) {
                        return Err(self.unexpected("`]`"));
                    }
                    self.advance();
                    segments.push(Segment::Index(index));
                    text.push_str(&format!("[{index}]"));
                }
                _ => break,
            }
        }
        self.bind(segments, text, start)
    }

    /// Decides where a path is read from, per context (see [`Context`]).
    fn bind(&self, mut segments: Vec<Segment>, text: String, start: usize) -> Result<Path, ExprError> {
        let first = match &segments[0] {
            Segment::Key(key) => key.clone(),
            Segment::Index(_) => unreachable!("paths start with a name"),
        };
        let rest_is_empty = segments.len() == 1;
        let make = |source, segments: Vec<Segment>| Path {
            source,
            segments: segments.into(),
            text: text.clone().into(),
        };
        let Some(context) = self.context else {
            return Ok(make(PathSource::Task, segments));
        };
        if &*first == "taskrouter" {
            if context == Context::Queue {
                return Err(self.error_at(ErrorKind::ClockInQueue { path: text.clone() }, start));
            }
            let var = self.bind_clock(&segments, &text, start)?;
            return Ok(make(PathSource::Clock(var), vec![]));
        }
        match (context, &*first) {
            (Context::Queue, "worker") if !rest_is_empty => {
                segments.remove(0);
                match builtin(&segments) {
                    Some(builtin) => Ok(make(PathSource::WorkerBuiltin(builtin), segments)),
                    None => Ok(make(PathSource::WorkerPrefixFallback, segments)),
                }
            }
            (Context::Queue, _) => Ok(make(PathSource::Worker, segments)),
            (Context::Filter, "task") if !rest_is_empty => {
                segments.remove(0);
                Ok(make(PathSource::TaskPrefixFallback, segments))
            }
            (Context::Filter, _) => Ok(make(PathSource::Task, segments)),
            (Context::Target, "task" | "worker") if rest_is_empty => {
                let root = if &*first == "task" { "task" } else { "worker" };
                Err(self.error_at(ErrorKind::IncompletePath { root }, start))
            }
            (Context::Target, "task") => {
                segments.remove(0);
                Ok(make(PathSource::Task, segments))
            }
            (Context::Target, "worker") => {
                segments.remove(0);
                match builtin(&segments) {
                    Some(builtin) => Ok(make(PathSource::WorkerBuiltin(builtin), segments)),
                    None => Ok(make(PathSource::Worker, segments)),
                }
            }
            (Context::Target, _) => {
                Err(self.error_at(ErrorKind::BareAttributeInTarget { path: text.clone() }, start))
            }
        }
    }

    fn bind_clock(&self, segments: &[Segment], text: &str, start: usize) -> Result<ClockVar, ExprError> {
        let var = match segments {
            [_, Segment::Key(name)] => match &**name {
                "currentTime" => Some(ClockVar::CurrentTime),
                "currentHour" => Some(ClockVar::CurrentHour),
                "currentMin" => Some(ClockVar::CurrentMin),
                "dayOfWeek" => Some(ClockVar::DayOfWeek),
                _ => None,
            },
            _ => None,
        };
        var.ok_or_else(|| self.error_at(ErrorKind::UnknownClockVariable { path: text.to_owned() }, start))
    }
}

/// `worker.sid`, `worker.friendly_name`, `worker.activity_sid`, `worker.activity_name`.
fn builtin(segments_after_worker: &[Segment]) -> Option<WorkerBuiltin> {
    match segments_after_worker {
        [Segment::Key(name)] => match &**name {
            "sid" => Some(WorkerBuiltin::Sid),
            "friendly_name" => Some(WorkerBuiltin::FriendlyName),
            "activity_sid" => Some(WorkerBuiltin::ActivitySid),
            "activity_name" => Some(WorkerBuiltin::ActivityName),
            _ => None,
        },
        _ => None,
    }
}
