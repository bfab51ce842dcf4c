//! The TaskRouter expression language: compile once, evaluate many times. Pure: no I/O, no
//! clock (the time of day is a [`Clock`] value passed in by the caller).
//!
//! An expression is compiled for one [`Context`], which decides what a path names:
//!
//! | context  | used by                      | bare path         | prefixes                                   |
//! |----------|------------------------------|-------------------|--------------------------------------------|
//! | `Queue`  | a task queue's target workers | worker attribute  | `worker.x`: `x` unless the worker has a literal `worker` key; `worker.sid` etc.: built-ins |
//! | `Filter` | a workflow filter            | task attribute    | `task.x`: `x` unless the task has a literal `task` key; `taskrouter.*`: clock |
//! | `Target` | a workflow target            | an error          | `task.x`, `worker.x`, `worker.sid` etc., `taskrouter.*` |
//!
//! Worker built-ins are `sid`, `friendly_name`, `activity_sid` and `activity_name`. The clock
//! variables are `taskrouter.currentTime` (`HHMM` as an integer), `currentHour` and `currentMin`
//! (two-digit strings, which compare numerically with numbers) and `dayOfWeek` (`Mon`...`Sun`),
//! all in UTC. The evaluation rules are tabulated in `eval.rs`.
//!
//! ```
//! use serde_json::json;
//! use switchboard::expr::{Context, Expression, Scope, WorkerFacts};
//!
//! let queue = Expression::parse(r#"routing.skills HAS "Sales""#, Context::Queue).unwrap();
//! let attributes = json!({"routing": {"skills": ["Sales"], "levels": {"Sales": 3}}});
//! assert!(queue.evaluate(&Scope::worker(WorkerFacts::attributes_only(&attributes))));
//! ```

mod ast;
mod error;
mod eval;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzz;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

pub use error::{ErrorKind, ExprError};
pub use parser::MAX_DEPTH;

/// Where an expression is used; decides what its paths name (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// A task queue's `target_workers`: evaluated against one worker.
    Queue,
    /// A workflow filter's `expression`: evaluated against one task.
    Filter,
    /// A workflow target's `expression`: evaluated against one task and one worker.
    Target,
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    root: ast::Node,
    context: Context,
}

/// What an expression is evaluated against. Missing parts read as NULL. Built with
/// [`Scope::task`], [`Scope::worker`] or [`Scope::task_and_worker`], once per document: the
/// constructors note whether the attributes have a literal `task` / `worker` key, so that each
/// evaluation of a `task.x` path does not look for one again.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    task: Option<&'a Value>,
    worker: Option<WorkerFacts<'a>>,
    clock: Option<Clock>,
    task_has_task_key: bool,
    worker_has_worker_key: bool,
}

/// A worker as expressions see it: its attributes plus the built-in fields.
///
/// A built-in left as `None` falls back to the attribute of the same name, so a bare attributes
/// document (as in the conformance vectors) behaves as users expect.
#[derive(Debug, Clone, Copy)]
pub struct WorkerFacts<'a> {
    pub attributes: &'a Value,
    pub sid: Option<&'a str>,
    pub friendly_name: Option<&'a str>,
    pub activity_sid: Option<&'a str>,
    pub activity_name: Option<&'a str>,
}

/// The UTC time of day that `taskrouter.currentTime` and friends read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    hour: u8,
    minute: u8,
    /// 0 for Monday ... 6 for Sunday.
    weekday_from_monday: u8,
}

impl Expression {
    /// Compiles `source` for `context`. Errors name the column and can draw a caret
    /// ([`ExprError::snippet`]).
    pub fn parse(source: &str, context: Context) -> Result<Expression, ExprError> {
        let root = parser::parse(source, Some(context))?;
        Ok(Expression { root, context })
    }

    /// Checks only the syntax, for callers that do not know yet where the expression will be
    /// used: every path is accepted as a bare attribute.
    pub fn check_syntax(source: &str) -> Result<(), ExprError> {
        parser::parse(source, None).map(drop)
    }

    /// Whether the expression holds in `scope`.
    pub fn evaluate(&self, scope: &Scope<'_>) -> bool {
        eval::evaluate(&self.root, scope)
    }

    pub fn context(&self) -> Context {
        self.context
    }

    /// The top-level `AND` clauses (the expression itself when it is not an `AND`), so that a
    /// caller can say which condition failed.
    pub fn clauses(&self) -> Vec<Expression> {
        match &self.root {
            ast::Node::And(items) => {
                items.iter().map(|item| Expression { root: item.clone(), context: self.context }).collect()
            }
            _ => vec![self.clone()],
        }
    }

    /// Every attribute path in the expression with its value in `scope` as text: JSON for
    /// values, `missing` when the attribute is absent.
    pub fn path_values(&self, scope: &Scope<'_>) -> Vec<(String, String)> {
        let mut values = Vec::new();
        eval::path_values(&self.root, scope, &mut values);
        values
    }

    /// For an expression of the form `"<text>" IN <path>` (the workflow expression Flex
    /// generates for a skill), the text and the path. Lets a caller with many such expressions
    /// on one path index them by text instead of evaluating each.
    pub fn as_text_in_path(&self) -> Option<(&str, TextInPath<'_>)> {
        match &self.root {
            ast::Node::Compare {
                left: ast::Operand::Literal(ast::Literal::Str(text)),
                op: ast::CmpOp::In,
                right: ast::Operand::Path(path),
            } => Some((text, TextInPath(path))),
            _ => None,
        }
    }
}

/// The path of a `"<text>" IN <path>` expression (see [`Expression::as_text_in_path`]).
#[derive(Debug, Clone, Copy)]
pub struct TextInPath<'e>(&'e ast::Path);

impl<'e> TextInPath<'e> {
    /// Whether two expressions test the same path in the same way.
    pub fn same_path(self, other: TextInPath<'_>) -> bool {
        self.0 == other.0
    }

    /// The strings `"<text>" IN <path>` can be true for: the elements of the array at the path
    /// (none when it is not an array). `None` when an element is not a string, because a
    /// number can equal a numeric text; the caller must then evaluate the expressions.
    pub fn candidate_texts<'a>(self, scope: &Scope<'a>) -> Option<Vec<&'a str>>
    where
        'e: 'a,
    {
        eval::string_elements(self.0, scope)
    }
}

/// The canonical text: upper-case keywords, double-quoted strings, nested groups in
/// parentheses. It parses back to the same expression.
impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

impl<'a> Scope<'a> {
    /// A scope holding only task attributes (filter context).
    pub fn task(attributes: &'a Value) -> Scope<'a> {
        Scope {
            task: Some(attributes),
            task_has_task_key: attributes.get("task").is_some(),
            ..Scope::default()
        }
    }

    /// A scope holding only a worker (queue context).
    pub fn worker(worker: WorkerFacts<'a>) -> Scope<'a> {
        Scope {
            worker: Some(worker),
            worker_has_worker_key: worker.attributes.get("worker").is_some(),
            ..Scope::default()
        }
    }

    /// A scope holding a task and a worker (target context).
    pub fn task_and_worker(task: &'a Value, worker: WorkerFacts<'a>) -> Scope<'a> {
        Scope { task: Some(task), task_has_task_key: task.get("task").is_some(), ..Scope::worker(worker) }
    }

    /// The same scope, with the clock set.
    pub fn at(self, clock: Clock) -> Scope<'a> {
        Scope { clock: Some(clock), ..self }
    }
}

impl<'a> WorkerFacts<'a> {
    /// A worker known only by its attributes; built-ins fall back to attributes.
    pub fn attributes_only(attributes: &'a Value) -> WorkerFacts<'a> {
        WorkerFacts { attributes, sid: None, friendly_name: None, activity_sid: None, activity_name: None }
    }
}

impl Clock {
    /// The UTC time of day at `seconds` since the Unix epoch (negative values are before 1970).
    pub fn from_unix_seconds(seconds: i64) -> Clock {
        let second_of_day = seconds.rem_euclid(86_400);
        let days = seconds.div_euclid(86_400);
        // 1970-01-01 was a Thursday: 3 days after a Monday.
        let weekday_from_monday = (days + 3).rem_euclid(7);
        Clock {
            hour: (second_of_day / 3600) as u8,
            minute: (second_of_day % 3600 / 60) as u8,
            weekday_from_monday: weekday_from_monday as u8,
        }
    }
}

impl FromStr for Context {
    type Err = String;

    fn from_str(text: &str) -> Result<Context, String> {
        match text.to_ascii_lowercase().as_str() {
            "queue" => Ok(Context::Queue),
            "filter" => Ok(Context::Filter),
            "target" => Ok(Context::Target),
            _ => Err(format!("unknown context `{text}`: use queue, filter or target")),
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Context::Queue => "queue",
            Context::Filter => "filter",
            Context::Target => "target",
        })
    }
}
