//! Errors of the expression language: what went wrong, and where, in words a person can act on.
//!
//! Every error carries the 1-based column (in characters, not bytes) of the offending token and
//! the expression it came from, so that callers can show a caret under it ([`ExprError::snippet`])
//! or quote the column in a one-line API message ([`ExprError`]'s `Display`).

use std::fmt;

/// An expression that could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    kind: ErrorKind,
    column: usize,
    expression: String,
}

/// What is wrong with an expression. The `Display` text is the message shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// A character that starts no token (`$`, `-` on its own, a lone `&`...).
    #[error("unexpected character `{found}`{hint}")]
    UnexpectedChar { found: char, hint: &'static str },
    /// A string with no closing quote.
    #[error("this string has no closing {quote}")]
    UnterminatedString { quote: char },
    /// `skill-level`: TaskRouter reads the hyphen as an operator, so such keys cannot be named.
    #[error(
        "hyphens are not allowed in attribute names: `{name}` (TaskRouter cannot reference such a key; rename it, e.g. `{suggestion}`)"
    )]
    HyphenInName { name: String, suggestion: String },
    /// A malformed number such as `1.` or `1.2.3`.
    #[error("`{text}` is not a number (write digits, optionally followed by `.` and digits)")]
    BadNumber { text: String },
    /// An array index that does not fit in memory anyway.
    #[error("array index `{text}` is too large")]
    IndexTooLarge { text: String },
    /// A token that does not fit where it stands.
    #[error("expected {expected}, found `{found}`")]
    UnexpectedToken { expected: &'static str, found: String },
    /// The expression stops where something was still required.
    #[error("expected {expected}, but the expression ends here")]
    UnexpectedEnd { expected: &'static str },
    /// `high_value` on its own: TaskRouter has no truthiness, every condition is a comparison.
    #[error(
        "expected a comparison operator after `{operand}` (==, !=, >, >=, <, <=, HAS, IN, NOT IN, CONTAINS); to test a flag write `{operand} == true`"
    )]
    MissingOperator { operand: String },
    /// More nested parentheses or NOTs than [`super::MAX_DEPTH`].
    #[error("the expression nests more than {limit} levels of parentheses or NOT")]
    TooDeep { limit: usize },
    /// An unprefixed attribute in a workflow target expression.
    #[error(
        "`{path}` names neither the task nor the worker: in a target expression write `task.{path}` or `worker.{path}`"
    )]
    BareAttributeInTarget { path: String },
    /// `task` or `worker` on its own where a value is needed.
    #[error("`{root}` on its own is not a value: write `{root}.<attribute>`")]
    IncompletePath { root: &'static str },
    /// `taskrouter.currentTime` in a queue's target workers: membership is computed once per worker
    /// change, so it cannot depend on the time of day.
    #[error(
        "`{path}`: clock variables cannot be used in a queue expression (queue membership does not change with the time of day); use them in a workflow filter or target"
    )]
    ClockInQueue { path: String },
    /// `taskrouter.something` that is not one of the four clock variables.
    #[error(
        "unknown clock variable `{path}`: use taskrouter.currentTime, taskrouter.currentHour, taskrouter.currentMin or taskrouter.dayOfWeek"
    )]
    UnknownClockVariable { path: String },
    /// A path inside an array literal: arrays hold constants only.
    #[error("array literals hold constants only, found `{found}`")]
    NonConstantInArray { found: String },
}

impl ExprError {
    pub(crate) fn new(kind: ErrorKind, source: &str, byte_offset: usize) -> ExprError {
        let column = source[..byte_offset.min(source.len())].chars().count() + 1;
        ExprError { kind, column, expression: source.to_owned() }
    }

    /// What is wrong, without the position.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The 1-based column, counted in characters, where the problem starts.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The expression with a caret under the offending column, for terminals and logs:
    ///
    /// ```text
    /// skill-level > 3
    ///      ^
    /// ```
    pub fn snippet(&self) -> String {
        // Tabs and other control characters would shift the caret; show them as spaces.
        let line: String = self.expression.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        format!("{line}\n{:>width$}", "^", width = self.column)
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.kind)
    }
}

impl std::error::Error for ExprError {}
