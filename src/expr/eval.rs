//! Evaluation: the NULL and type rules of TaskRouter (reference §2.5, DESIGN §3) in one place.
//!
//! The rules, as a table a reviewer can check:
//!
//! | case                                   | result                                      |
//! |----------------------------------------|---------------------------------------------|
//! | missing key                            | NULL                                        |
//! | `NULL == null`                         | true; NULL compared with anything else: false |
//! | `a != b`                               | exactly `NOT (a == b)` (missing `!= "v"` is true) |
//! | number vs numeric string (`"6" > 5`)   | compared as numbers                         |
//! | string vs string                       | byte-wise, case-sensitive                   |
//! | any other mix of types                 | false                                       |
//! | scalar operator with an array side     | false (`==`, `<`, `CONTAINS`...)            |
//! | `HAS`, `IN`, `NOT IN` without an array | false                                       |
//! | `x NOT IN array`                       | no element equals `x` (right side must be an array) |
//!
//! Nothing here allocates: values borrow from the attributes and from the compiled expression.

use std::cmp::Ordering;

use serde_json::Value;

use super::ast::{ClockVar, CmpOp, Literal, Node, Number, Operand, Path, PathSource, Segment, WorkerBuiltin};
use super::{Clock, Scope};

/// A resolved operand.
#[derive(Clone, Copy)]
enum Val<'a> {
    Null,
    Bool(bool),
    Num(Number),
    Str(&'a str),
    JsonArray(&'a [Value]),
    LiteralArray(&'a [Literal]),
    /// A JSON object: only equal to nothing, but not NULL (so `x != null` holds).
    Object,
}

pub(crate) fn evaluate(node: &Node, scope: &Scope<'_>) -> bool {
    match node {
        Node::Or(items) => items.iter().any(|item| evaluate(item, scope)),
        Node::And(items) => items.iter().all(|item| evaluate(item, scope)),
        Node::Not(inner) => !evaluate(inner, scope),
        Node::Compare { left, op, right } => compare(resolve(left, scope), *op, resolve(right, scope)),
    }
}

fn compare(left: Val<'_>, op: CmpOp, right: Val<'_>) -> bool {
    match op {
        CmpOp::Eq => equal(left, right),
        CmpOp::Ne => !equal(left, right),
        CmpOp::Gt => order(left, right) == Some(Ordering::Greater),
        CmpOp::Ge => matches!(order(left, right), Some(Ordering::Greater | Ordering::Equal)),
        CmpOp::Lt => order(left, right) == Some(Ordering::Less),
        CmpOp::Le => matches!(order(left, right), Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Contains => match (left, right) {
            (Val::Str(haystack), Val::Str(needle)) => haystack.contains(needle),
            _ => false,
        },
        CmpOp::Has => is_scalar(right) && array_contains(left, right) == Some(true),
        CmpOp::In => is_scalar(left) && array_contains(right, left) == Some(true),
        CmpOp::NotIn => is_scalar(left) && array_contains(right, left) == Some(false),
    }
}

fn is_scalar(value: Val<'_>) -> bool {
    !matches!(value, Val::JsonArray(_) | Val::LiteralArray(_))
}

/// `Some(found)` when `array` is an array, `None` otherwise.
fn array_contains(array: Val<'_>, needle: Val<'_>) -> Option<bool> {
    match array {
        Val::JsonArray(items) => Some(items.iter().any(|item| equal(from_json(item), needle))),
        Val::LiteralArray(items) => Some(items.iter().any(|item| equal(from_literal(item), needle))),
        _ => None,
    }
}

fn equal(left: Val<'_>, right: Val<'_>) -> bool {
    match (left, right) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(a), Val::Bool(b)) => a == b,
        (Val::Str(a), Val::Str(b)) => a == b,
        _ => numbers(left, right).is_some_and(|(a, b)| a.compare(b) == Some(Ordering::Equal)),
    }
}

fn order(left: Val<'_>, right: Val<'_>) -> Option<Ordering> {
    match (left, right) {
        (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
        _ => numbers(left, right).and_then(|(a, b)| a.compare(b)),
    }
}

/// Both sides as numbers when both are numbers, or one is a number and the other a numeric
/// string (`"6"` against `5`). Two strings stay strings, even if both look numeric.
fn numbers(left: Val<'_>, right: Val<'_>) -> Option<(Number, Number)> {
    match (left, right) {
        (Val::Num(a), Val::Num(b)) => Some((a, b)),
        (Val::Num(a), Val::Str(b)) => Some((a, Number::parse(b)?)),
        (Val::Str(a), Val::Num(b)) => Some((Number::parse(a)?, b)),
        _ => None,
    }
}

fn resolve<'a>(operand: &'a Operand, scope: &Scope<'a>) -> Val<'a> {
    match operand {
        Operand::Literal(literal) => from_literal(literal),
        Operand::Array(items) => Val::LiteralArray(items),
        Operand::Path(path) => resolve_path(path, scope),
    }
}

/// Collects `(path as written, value as text)` for every path in `node`, without duplicates.
pub(super) fn path_values(node: &Node, scope: &Scope<'_>, out: &mut Vec<(String, String)>) {
    match node {
        Node::Or(items) | Node::And(items) => items.iter().for_each(|item| path_values(item, scope, out)),
        Node::Not(inner) => path_values(inner, scope, out),
        Node::Compare { left, right, .. } => {
            for operand in [left, right] {
                if let Operand::Path(path) = operand
                    && !out.iter().any(|(text, _)| **text == *path.text)
                {
                    out.push((path.text.to_string(), describe(resolve_path(path, scope))));
                }
            }
        }
    }
}

fn describe(value: Val<'_>) -> String {
    match value {
        Val::Null => "missing".to_owned(),
        Val::Bool(value) => value.to_string(),
        Val::Num(Number::Int(int)) => int.to_string(),
        Val::Num(Number::Float(float)) => float.to_string(),
        Val::Str(text) => Value::from(text).to_string(),
        Val::JsonArray(items) => Value::from(items.to_vec()).to_string(),
        Val::LiteralArray(_) => "an array".to_owned(),
        Val::Object => "an object".to_owned(),
    }
}

/// The elements of the array at `path` if all are strings; an empty list if it is not an array.
pub(super) fn string_elements<'a>(path: &'a Path, scope: &Scope<'a>) -> Option<Vec<&'a str>> {
    match resolve_path(path, scope) {
        Val::JsonArray(items) => items.iter().map(Value::as_str).collect(),
        _ => Some(Vec::new()),
    }
}

fn resolve_path<'a>(path: &'a Path, scope: &Scope<'a>) -> Val<'a> {
    let worker_attributes = scope.worker.map(|worker| worker.attributes);
    match path.source {
        PathSource::Task => walk(scope.task, &path.segments),
        PathSource::Worker => walk(worker_attributes, &path.segments),
        PathSource::TaskPrefixFallback => {
            walk_prefixed(scope.task, "task", scope.task_has_task_key, &path.segments)
        }
        PathSource::WorkerPrefixFallback => {
            walk_prefixed(worker_attributes, "worker", scope.worker_has_worker_key, &path.segments)
        }
        PathSource::WorkerBuiltin(builtin) => {
            let Some(worker) = scope.worker else { return Val::Null };
            let supplied = match builtin {
                WorkerBuiltin::Sid => worker.sid,
                WorkerBuiltin::FriendlyName => worker.friendly_name,
                WorkerBuiltin::ActivitySid => worker.activity_sid,
                WorkerBuiltin::ActivityName => worker.activity_name,
            };
            match supplied {
                Some(text) => Val::Str(text),
                None => walk(Some(worker.attributes), &path.segments),
            }
        }
        PathSource::Clock(var) => scope.clock.map_or(Val::Null, |clock| clock_value(clock, var)),
    }
}

/// `task.x` where the attributes may or may not have a literal `task` key (`has_prefix_key`,
/// noted when the scope was built).
fn walk_prefixed<'a>(
    root: Option<&'a Value>,
    prefix: &str,
    has_prefix_key: bool,
    segments: &[Segment],
) -> Val<'a> {
    match root.filter(|_| has_prefix_key).and_then(|root| root.get(prefix)) {
        Some(literal_prefix) => walk(Some(literal_prefix), segments),
        None => walk(root, segments),
    }
}

fn walk<'a>(root: Option<&'a Value>, segments: &[Segment]) -> Val<'a> {
    let mut current = match root {
        Some(root) => root,
        None => return Val::Null,
    };
    for segment in segments {
        let next = match segment {
            Segment::Key(key) => current.as_object().and_then(|object| object.get(&**key)),
            Segment::Index(index) => current.as_array().and_then(|array| array.get(*index)),
        };
        match next {
            Some(value) => current = value,
            None => return Val::Null,
        }
    }
    from_json(current)
}

fn from_json(value: &Value) -> Val<'_> {
    match value {
        Value::Null => Val::Null,
        Value::Bool(value) => Val::Bool(*value),
        Value::Number(number) => Val::Num(Number::from_json(number)),
        Value::String(text) => Val::Str(text),
        Value::Array(items) => Val::JsonArray(items),
        Value::Object(_) => Val::Object,
    }
}

fn from_literal(literal: &Literal) -> Val<'_> {
    match literal {
        Literal::Null => Val::Null,
        Literal::Bool(value) => Val::Bool(*value),
        Literal::Number(number) => Val::Num(*number),
        Literal::Str(text) => Val::Str(text),
    }
}

fn clock_value(clock: Clock, var: ClockVar) -> Val<'static> {
    const TWO_DIGITS: [&str; 60] = [
        "00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32", "33",
        "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48", "49", "50",
        "51", "52", "53", "54", "55", "56", "57", "58", "59",
    ];
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    match var {
        ClockVar::CurrentTime => Val::Num(Number::Int(i64::from(clock.hour) * 100 + i64::from(clock.minute))),
        ClockVar::CurrentHour => Val::Str(TWO_DIGITS[usize::from(clock.hour)]),
        ClockVar::CurrentMin => Val::Str(TWO_DIGITS[usize::from(clock.minute)]),
        ClockVar::DayOfWeek => Val::Str(DAYS[usize::from(clock.weekday_from_monday)]),
    }
}
