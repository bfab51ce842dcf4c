//! The compiled form of an expression: a tree whose paths are already bound to where they are
//! read from (task, worker, worker built-in, clock), so evaluation does no name lookups beyond
//! the attribute keys themselves.
//!
//! `AND` and `OR` chains are n-ary nodes, so a long flat chain is a wide node rather than a deep
//! tree: only parentheses and `NOT` add depth, and the parser bounds those.

use std::fmt;

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Or(Box<[Node]>),
    And(Box<[Node]>),
    Not(Box<Node>),
    Compare { left: Operand, op: CmpOp, right: Operand },
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Literal(Literal),
    Array(Box<[Literal]>),
    Path(Path),
}

/// A constant written in the expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Number(Number),
    Str(Box<str>),
}

/// A number as written or as found in JSON. Integers stay exact; anything else is a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Int(i64),
    Float(f64),
}

/// The comparison operators, aliases folded in (`=` is `==`, `>-` is `HAS`, `<-` is `IN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
    Has,
    In,
    NotIn,
}

/// An attribute reference, bound at compile time to where it is read from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    pub(crate) source: PathSource,
    /// The keys and indices to walk, after the prefix that chose `source`.
    pub(crate) segments: Box<[Segment]>,
    /// The path as written, normalised (`a.b[2]`), for display and error messages.
    pub(crate) text: Box<str>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    Key(Box<str>),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathSource {
    /// Task attributes, walked from the root.
    Task,
    /// `task.x` in a filter: the literal `task` key when the attributes have one, otherwise `x`
    /// (the Flex-generated `"Sales" IN task.skillsNeeded` must work). `segments` excludes `task`.
    TaskPrefixFallback,
    /// Worker attributes, walked from the root.
    Worker,
    /// `worker.x` in a queue expression: the literal `worker` key when present, otherwise `x`.
    WorkerPrefixFallback,
    /// `worker.sid` and friends; falls back to the attribute of the same name when the caller
    /// did not supply the built-in.
    WorkerBuiltin(WorkerBuiltin),
    Clock(ClockVar),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerBuiltin {
    Sid,
    FriendlyName,
    ActivitySid,
    ActivityName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClockVar {
    /// `HHMM` as an integer: 830 for 08:30.
    CurrentTime,
    /// `"08"`: Twilio documents it as a string; numeric strings compare numerically anyway.
    CurrentHour,
    /// `"05"`.
    CurrentMin,
    /// `"Mon"` ... `"Sun"`.
    DayOfWeek,
}

impl Number {
    /// Parses `[-]digits[.digits]`; leading zeros are allowed (`0800` is 800).
    pub(crate) fn parse(text: &str) -> Option<Number> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = match digits.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (digits, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
            return None;
        }
        if fraction.is_none()
            && let Ok(int) = text.parse::<i64>()
        {
            return Some(Number::Int(int));
        }
        text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Number::Float)
    }

    pub(crate) fn from_json(number: &serde_json::Number) -> Number {
        match number.as_i64() {
            Some(int) => Number::Int(int),
            None => Number::Float(number.as_f64().unwrap_or(f64::NAN)),
        }
    }

    pub(crate) fn compare(self, other: Number) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Int(int) => int as f64,
            Number::Float(float) => float,
        }
    }
}

impl CmpOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Contains => "CONTAINS",
            CmpOp::Has => "HAS",
            CmpOp::In => "IN",
            CmpOp::NotIn => "NOT IN",
        }
    }
}

/// Renders the canonical form: keywords in upper case, strings double-quoted, every nested
/// group parenthesised. Parsing the rendered text gives back the same tree.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Or(items) => write_joined(f, items, " OR "),
            Node::And(items) => write_joined(f, items, " AND "),
            Node::Not(inner) => match **inner {
                Node::Compare { .. } | Node::Not(_) => write!(f, "NOT {inner}"),
                _ => write!(f, "NOT ({inner})"),
            },
            Node::Compare { left, op, right } => write!(f, "{left} {} {right}", op.as_str()),
        }
    }
}

fn write_joined(f: &mut fmt::Formatter<'_>, items: &[Node], separator: &str) -> fmt::Result {
    for (idx, item) in items.iter().enumerate() {
        if idx > 0 {
            f.write_str(separator)?;
        }
        match item {
            Node::Or(_) | Node::And(_) => write!(f, "({item})")?,
            _ => write!(f, "{item}")?,
        }
    }
    Ok(())
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Literal(literal) => write!(f, "{literal}"),
            Operand::Array(items) => {
                f.write_str("[")?;
                for (idx, item) in items.iter().enumerate() {
                    if idx > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Operand::Path(path) => f.write_str(&path.text),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(value) => write!(f, "{value}"),
            Literal::Number(Number::Int(int)) => write!(f, "{int}"),
            // Display never uses an exponent; add `.0` so that the text reads back as a float.
            Literal::Number(Number::Float(float)) if float.fract() == 0.0 => write!(f, "{float}.0"),
            Literal::Number(Number::Float(float)) => write!(f, "{float}"),
            // There are no escapes: pick the quote the string does not contain.
            Literal::Str(text) if text.contains('"') => write!(f, "'{text}'"),
            Literal::Str(text) => write!(f, "\"{text}\""),
        }
    }
}
