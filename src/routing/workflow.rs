//! Workflow configuration (reference §3.1): parsed from TaskRouter's JSON into a compiled form,
//! with every mistake reported by filter, target and field (and column, for expressions).
//!
//! The walk itself (which filter and target a task is in, and its deadline) is
//! [`WorkflowConfig::first_step`] and [`WorkflowConfig::next_step`]; they are pure functions of
//! the configuration, the task's attributes, the position and the time.

use std::collections::HashMap;

use serde_json::Value;

use super::sid::{Sid, SidKind};
use super::{Millis, RoutingError};
use crate::expr::{Clock, Context, Expression, Scope};

/// A compiled workflow configuration.
#[derive(Debug, Clone)]
pub struct WorkflowConfig {
    pub filters: Vec<Filter>,
    pub default_filter: Option<DefaultTarget>,
    /// Runs of consecutive `"<text>" IN <path>` filters on one path (one per skill, as the
    /// onboarding guide builds them), indexed by text so that finding the first match is one
    /// lookup per array element instead of one evaluation per filter.
    text_runs: Vec<TextRun>,
}

/// Filters `first..=last` all read `"<text>" IN <same path>`.
#[derive(Debug, Clone)]
struct TextRun {
    first: usize,
    last: usize,
    /// Text to the indexes of the filters testing it, ascending.
    filters_by_text: HashMap<String, Vec<usize>>,
}

/// Shorter runs are evaluated one by one: the index would not pay for itself.
const MIN_TEXT_RUN: usize = 4;

#[derive(Debug, Clone)]
pub struct Filter {
    /// `filter_friendly_name`, shown in error messages and explanations.
    pub name: String,
    pub expression: Expression,
    pub targets: Vec<Target>,
}

/// One routing step. `queue` is resolved (inherited from the previous target when omitted).
#[derive(Debug, Clone)]
pub struct Target {
    pub queue: Sid,
    pub priority: Option<i64>,
    /// Seconds; deadlines add up along the filter's targets (reference §3.2.5).
    pub timeout: Option<u32>,
    pub expression: Option<Expression>,
    pub order_by: Vec<OrderClause>,
    pub skip_if: Option<Expression>,
    pub known_worker: Option<KnownWorker>,
}

#[derive(Debug, Clone)]
pub struct DefaultTarget {
    pub queue: Sid,
    pub priority: Option<i64>,
}

/// `worker.<path> ASC|DESC`: integer worker attributes, missing values last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderClause {
    pub path: Vec<String>,
    pub descending: bool,
}

/// Known-agent routing: the task attribute naming the one worker this step may reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownWorker {
    Sid(Vec<String>),
    FriendlyName(Vec<String>),
}

/// Where a task stands in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Target {
        filter: usize,
        target: usize,
    },
    Default,
    /// Put in this queue by a transfer, outside the workflow's filters: no expression, no
    /// timeout (TaskRouter's transfers to a queue bypass target expressions too).
    Transfer {
        queue: Sid,
    },
}

/// The outcome of a walk: a step to wait in, or the end of the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    At {
        position: Position,
        /// When this step times out; `None` for a terminal step.
        deadline: Option<Millis>,
        /// When the current filter was entered (deadlines add up from here).
        filter_entered_at: Millis,
        /// Whether the task timed out of a filter's last target; such a task never goes to the
        /// default filter (reference §3.2.7).
        timed_out_of_a_filter: bool,
    },
    /// Fell out of the workflow after the last step timed out (`workflow.timeout`).
    TimedOut,
    /// Skipped out of the last step with nowhere to go (`workflow.skipped`).
    Skipped,
}

const TARGET_KEYS: &[&str] = &[
    "queue",
    "priority",
    "timeout",
    "expression",
    "order_by",
    "skip_if",
    "known_worker_sid",
    "known_worker_friendly_name",
];

impl WorkflowConfig {
    /// Parses a configuration. `queue_exists` says whether a task queue SID is known.
    pub fn parse(json: &str, queue_exists: impl Fn(Sid) -> bool) -> Result<WorkflowConfig, RoutingError> {
        let invalid = |location: &str, message: String| RoutingError::InvalidWorkflow {
            location: location.to_owned(),
            message,
        };
        let root: Value = serde_json::from_str(json)
            .map_err(|err| invalid("configuration", format!("not valid JSON: {err}")))?;
        // The wrapper is canonical; one Twilio example omits it, so a bare `filters` is accepted.
        let routing = root.get("task_routing").unwrap_or(&root);
        let Some(routing) = routing.as_object() else {
            return Err(invalid("configuration", "expected a JSON object with `task_routing`".to_owned()));
        };
        if let Some(key) = routing.keys().find(|key| !["filters", "default_filter"].contains(&key.as_str())) {
            return Err(invalid(
                "task_routing",
                format!("unknown key `{key}` (expected filters, default_filter)"),
            ));
        }
        let filters = match routing.get("filters") {
            None => Vec::new(),
            Some(Value::Array(filters)) => filters
                .iter()
                .enumerate()
                .map(|(idx, filter)| parse_filter(idx, filter, &queue_exists))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(invalid("task_routing.filters", "expected an array of filters".to_owned()));
            }
        };
        let default_filter = match routing.get("default_filter") {
            None | Some(Value::Null) => None,
            Some(Value::Object(object)) => {
                let location = "default_filter";
                if let Some(key) = object.keys().find(|key| !["queue", "priority"].contains(&key.as_str())) {
                    return Err(invalid(location, format!("unknown key `{key}` (expected queue, priority)")));
                }
                let queue = match object.get("queue") {
                    Some(queue) => parse_queue(location, queue, &queue_exists)?,
                    None => return Err(invalid(location, "`queue` is required".to_owned())),
                };
                let priority =
                    object.get("priority").map(|p| parse_integer(location, "priority", p)).transpose()?;
                Some(DefaultTarget { queue, priority })
            }
            Some(_) => return Err(invalid("default_filter", "expected an object with `queue`".to_owned())),
        };
        if filters.is_empty() && default_filter.is_none() {
            return Err(invalid(
                "task_routing",
                "has neither filters nor a default_filter, so no task could be routed".to_owned(),
            ));
        }
        let text_runs = text_runs(&filters);
        Ok(WorkflowConfig { filters, default_filter, text_runs })
    }

    pub fn target(&self, position: Position) -> Option<&Target> {
        match position {
            Position::Target { filter, target } => self.filters.get(filter)?.targets.get(target),
            Position::Default | Position::Transfer { .. } => None,
        }
    }

    /// Where a new task starts: the first matching filter's first target, else the default.
    /// `since` is when the task's clock started (its creation): step deadlines add up from
    /// there, so re-walking an updated task does not restart its escalation.
    pub fn first_step(&self, attributes: &Value, since: Millis, now: Millis) -> Step {
        self.enter_filter_from(0, attributes, since, now, false)
    }

    /// Walks on from `step` past every step whose deadline is already over at `now`: a task
    /// that comes back from a long offer, or whose attributes changed, lands in the step its
    /// age says, never in one that has already timed out.
    pub fn settle(&self, mut step: Step, attributes: &Value, now: Millis) -> Step {
        while let Step::At { deadline: Some(deadline), .. } = step {
            if deadline > now {
                break;
            }
            step = self.next_step(step, attributes, now, false);
        }
        step
    }

    /// Where a task goes when its step at `position` times out (or is skipped, `skipped`):
    /// the filter's next target, else the next matching filter, else the default filter if
    /// the task never timed out of a filter (skipping out does not count), else the end.
    pub fn next_step(&self, from: Step, attributes: &Value, now: Millis, skipped: bool) -> Step {
        let Step::At { position, filter_entered_at, timed_out_of_a_filter, .. } = from else {
            return from;
        };
        let Position::Target { filter, target } = position else {
            return if skipped { Step::Skipped } else { Step::TimedOut };
        };
        if target + 1 < self.filters[filter].targets.len() {
            return Step::At {
                position: Position::Target { filter, target: target + 1 },
                deadline: self.deadline(filter, target + 1, filter_entered_at),
                filter_entered_at,
                timed_out_of_a_filter,
            };
        }
        match self.enter_filter_from(filter + 1, attributes, now, now, timed_out_of_a_filter || !skipped) {
            Step::TimedOut if skipped => Step::Skipped,
            step => step,
        }
    }

    fn enter_filter_from(
        &self,
        start: usize,
        attributes: &Value,
        entered_at: Millis,
        now: Millis,
        timed_out_of_a_filter: bool,
    ) -> Step {
        let scope = Scope::task(attributes).at(clock(now));
        let mut idx = start;
        while idx < self.filters.len() {
            let matched = match self.text_runs.iter().find(|run| (run.first..=run.last).contains(&idx)) {
                Some(run) => match self.first_match_in_run(run, idx, &scope) {
                    Some(found) => Some(found),
                    None => {
                        idx = run.last + 1;
                        continue;
                    }
                },
                None => self.filters[idx].expression.evaluate(&scope).then_some(idx),
            };
            if let Some(idx) = matched {
                return Step::At {
                    position: Position::Target { filter: idx, target: 0 },
                    deadline: self.deadline(idx, 0, entered_at),
                    filter_entered_at: entered_at,
                    timed_out_of_a_filter,
                };
            }
            idx += 1;
        }
        match &self.default_filter {
            Some(_) if !timed_out_of_a_filter => Step::At {
                position: Position::Default,
                deadline: None,
                filter_entered_at: entered_at,
                timed_out_of_a_filter,
            },
            _ => Step::TimedOut,
        }
    }

    /// The first filter from `from` to the end of `run` that matches, by looking the task's
    /// texts up in the run's index (or evaluating each when the array holds non-strings).
    fn first_match_in_run(&self, run: &TextRun, from: usize, scope: &Scope<'_>) -> Option<usize> {
        let (_, path) =
            self.filters[run.first].expression.as_text_in_path().expect("runs hold text-in-path filters");
        match path.candidate_texts(scope) {
            Some(texts) => texts
                .iter()
                .filter_map(|text| run.filters_by_text.get(*text)?.iter().find(|&&idx| idx >= from).copied())
                .min(),
            None => (from..=run.last).find(|&idx| self.filters[idx].expression.evaluate(scope)),
        }
    }

    /// The deadline of `target` in `filter`: the sum of timeouts up to it, from filter entry;
    /// `None` when the target has no timeout (it is terminal).
    fn deadline(&self, filter: usize, target: usize, filter_entered_at: Millis) -> Option<Millis> {
        let targets = &self.filters[filter].targets;
        targets[target].timeout?;
        let seconds: i64 = targets[..=target].iter().map(|t| i64::from(t.timeout.unwrap_or(0))).sum();
        Some(filter_entered_at.saturating_add(seconds.saturating_mul(1000)))
    }

    /// The priority a task takes on entering `position`, if the step sets one.
    pub fn priority_at(&self, position: Position) -> Option<i64> {
        match position {
            Position::Target { .. } => self.target(position)?.priority,
            Position::Default => self.default_filter.as_ref()?.priority,
            Position::Transfer { .. } => None,
        }
    }

    /// Whether any target or the default filter routes to `queue`.
    pub fn names_queue(&self, queue: Sid) -> bool {
        let targets = self.filters.iter().flat_map(|filter| &filter.targets);
        targets
            .map(|target| target.queue)
            .chain(self.default_filter.as_ref().map(|default| default.queue))
            .any(|q| q == queue)
    }

    pub fn queue_at(&self, position: Position) -> Option<Sid> {
        match position {
            Position::Target { .. } => self.target(position).map(|target| target.queue),
            Position::Default => self.default_filter.as_ref().map(|default| default.queue),
            Position::Transfer { queue } => Some(queue),
        }
    }
}

/// Finds the runs of at least [`MIN_TEXT_RUN`] consecutive `"<text>" IN <path>` filters on one path.
fn text_runs(filters: &[Filter]) -> Vec<TextRun> {
    let mut runs = Vec::new();
    let mut idx = 0;
    while idx < filters.len() {
        let Some((_, path)) = filters[idx].expression.as_text_in_path() else {
            idx += 1;
            continue;
        };
        let mut last = idx;
        while let Some((_, next)) =
            filters.get(last + 1).and_then(|filter| filter.expression.as_text_in_path())
        {
            if !next.same_path(path) {
                break;
            }
            last += 1;
        }
        if last + 1 - idx >= MIN_TEXT_RUN {
            let mut filters_by_text: HashMap<String, Vec<usize>> = HashMap::new();
            for (filter_idx, filter) in filters.iter().enumerate().take(last + 1).skip(idx) {
                let (text, _) = filter.expression.as_text_in_path().expect("checked above");
                filters_by_text.entry(text.to_owned()).or_default().push(filter_idx);
            }
            runs.push(TextRun { first: idx, last, filters_by_text });
        }
        idx = last + 1;
    }
    runs
}

/// The UTC clock for `taskrouter.*` at `now`.
pub(crate) fn clock(now: Millis) -> Clock {
    Clock::from_unix_seconds(now.div_euclid(1000))
}

fn filter_location(idx: usize, name: &str) -> String {
    if name.is_empty() { format!("filter {}", idx + 1) } else { format!("filter {} ({name:?})", idx + 1) }
}

fn parse_filter(
    idx: usize,
    filter: &Value,
    queue_exists: &impl Fn(Sid) -> bool,
) -> Result<Filter, RoutingError> {
    let invalid = |location: &str, message: String| RoutingError::InvalidWorkflow {
        location: location.to_owned(),
        message,
    };
    let Some(object) = filter.as_object() else {
        return Err(invalid(&filter_location(idx, ""), "expected an object".to_owned()));
    };
    let name = object.get("filter_friendly_name").and_then(Value::as_str).unwrap_or("").to_owned();
    let location = filter_location(idx, &name);
    if let Some(key) =
        object.keys().find(|key| !["filter_friendly_name", "expression", "targets"].contains(&key.as_str()))
    {
        return Err(invalid(
            &location,
            format!("unknown key `{key}` (expected filter_friendly_name, expression, targets)"),
        ));
    }
    let expression = match object.get("expression") {
        Some(Value::String(source)) => parse_expression(&location, "expression", source, Context::Filter)?,
        Some(_) => return Err(invalid(&location, "`expression` must be a string".to_owned())),
        None => {
            return Err(invalid(
                &location,
                "`expression` is required (use \"1==1\" to match every task)".to_owned(),
            ));
        }
    };
    let targets = match object.get("targets") {
        Some(Value::Array(targets)) if !targets.is_empty() => targets,
        _ => return Err(invalid(&location, "`targets` must be a non-empty array".to_owned())),
    };
    let mut parsed: Vec<Target> = Vec::with_capacity(targets.len());
    for (target_idx, target) in targets.iter().enumerate() {
        let target_location = format!("{location}, target {}", target_idx + 1);
        let inherited = parsed.last().map(|previous| previous.queue);
        parsed.push(parse_target(&target_location, target, inherited, queue_exists)?);
    }
    Ok(Filter { name, expression, targets: parsed })
}

fn parse_target(
    location: &str,
    target: &Value,
    inherited_queue: Option<Sid>,
    queue_exists: &impl Fn(Sid) -> bool,
) -> Result<Target, RoutingError> {
    let invalid = |message: String| RoutingError::InvalidWorkflow { location: location.to_owned(), message };
    let Some(object) = target.as_object() else { return Err(invalid("expected an object".to_owned())) };
    if let Some(key) = object.keys().find(|key| !TARGET_KEYS.contains(&key.as_str())) {
        return Err(invalid(format!("unknown key `{key}` (expected one of {})", TARGET_KEYS.join(", "))));
    }
    let queue = match (object.get("queue"), inherited_queue) {
        (Some(queue), _) => parse_queue(location, queue, queue_exists)?,
        (None, Some(inherited)) => inherited,
        (None, None) => return Err(invalid("`queue` is required on the first target".to_owned())),
    };
    let priority = object.get("priority").map(|p| parse_integer(location, "priority", p)).transpose()?;
    if priority.is_some_and(|p| !(0..=i64::from(i32::MAX)).contains(&p)) {
        return Err(invalid("`priority` must be between 0 and 2147483647".to_owned()));
    }
    let timeout = match object.get("timeout").map(|t| parse_integer(location, "timeout", t)).transpose()? {
        Some(seconds) if !(1..=i64::from(u32::MAX)).contains(&seconds) => {
            return Err(invalid("`timeout` must be a positive number of seconds".to_owned()));
        }
        seconds => seconds.map(|s| s as u32),
    };
    let string = |key: &str| match object.get(key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(_) => Err(invalid(format!("`{key}` must be a string"))),
    };
    let expression = string("expression")?
        .map(|source| parse_expression(location, "expression", source, Context::Target))
        .transpose()?;
    let skip_if = string("skip_if")?
        .map(|source| parse_expression(location, "skip_if", source, Context::Filter))
        .transpose()?;
    let order_by =
        string("order_by")?.map(|text| parse_order_by(location, text)).transpose()?.unwrap_or_default();
    let known_worker = match (string("known_worker_sid")?, string("known_worker_friendly_name")?) {
        (Some(_), Some(_)) => {
            return Err(invalid("give known_worker_sid or known_worker_friendly_name, not both".to_owned()));
        }
        (Some(reference), None) => {
            Some(KnownWorker::Sid(parse_task_reference(location, "known_worker_sid", reference)?))
        }
        (None, Some(reference)) => Some(KnownWorker::FriendlyName(parse_task_reference(
            location,
            "known_worker_friendly_name",
            reference,
        )?)),
        (None, None) => None,
    };
    Ok(Target { queue, priority, timeout, expression, order_by, skip_if, known_worker })
}

fn parse_queue(
    location: &str,
    queue: &Value,
    queue_exists: &impl Fn(Sid) -> bool,
) -> Result<Sid, RoutingError> {
    let invalid = |message: String| RoutingError::InvalidWorkflow { location: location.to_owned(), message };
    let Some(text) = queue.as_str() else {
        return Err(invalid("`queue` must be a task queue SID string".to_owned()));
    };
    let sid = Sid::parse(text, SidKind::TaskQueue).map_err(|err| invalid(format!("queue: {err}")))?;
    if !queue_exists(sid) {
        return Err(invalid(format!("queue {sid} does not exist")));
    }
    Ok(sid)
}

/// Integers, also written as strings (`"10"`), as Twilio's examples do both.
fn parse_integer(location: &str, key: &str, value: &Value) -> Result<i64, RoutingError> {
    let parsed = match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| RoutingError::InvalidWorkflow {
        location: location.to_owned(),
        message: format!("`{key}` must be a whole number, found {value}"),
    })
}

fn parse_expression(
    location: &str,
    key: &str,
    source: &str,
    context: Context,
) -> Result<Expression, RoutingError> {
    Expression::parse(source, context).map_err(|err| RoutingError::InvalidWorkflow {
        location: location.to_owned(),
        message: format!("{key}: {err}\n{}", err.snippet()),
    })
}

fn parse_order_by(location: &str, text: &str) -> Result<Vec<OrderClause>, RoutingError> {
    let invalid = |message: String| RoutingError::InvalidWorkflow { location: location.to_owned(), message };
    text.split(',')
        .map(|clause| {
            let mut words = clause.split_whitespace();
            let (Some(path), direction, None) = (words.next(), words.next(), words.next()) else {
                return Err(invalid(format!(
                    "order_by: `{}` is not `worker.<attribute> ASC|DESC`",
                    clause.trim()
                )));
            };
            let descending = match direction.map(str::to_ascii_uppercase).as_deref() {
                None | Some("ASC") => false,
                Some("DESC") => true,
                Some(other) => return Err(invalid(format!("order_by: `{other}` is neither ASC nor DESC"))),
            };
            let segments: Vec<String> = match path.strip_prefix("worker.") {
                Some(rest) if rest.split('.').all(is_name) => rest.split('.').map(str::to_owned).collect(),
                _ => {
                    return Err(invalid(format!(
                        "order_by: `{path}` must be a worker attribute, like worker.routing.levels.Sales"
                    )));
                }
            };
            Ok(OrderClause { path: segments, descending })
        })
        .collect()
}

fn parse_task_reference(location: &str, key: &str, reference: &str) -> Result<Vec<String>, RoutingError> {
    match reference.strip_prefix("task.") {
        Some(rest) if rest.split('.').all(is_name) => Ok(rest.split('.').map(str::to_owned).collect()),
        _ => Err(RoutingError::InvalidWorkflow {
            location: location.to_owned(),
            message: format!(
                "`{key}` must name a task attribute, like \"task.agent_sid\", found {reference:?}"
            ),
        }),
    }
}

fn is_name(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What any text must do when it is read as a workflow configuration: the check behind the
/// workflow fuzz targets, shared by the proptest targets (`tests`) and cargo fuzz's `workflow`
/// target (`crate::fuzzing`, `fuzz/`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzz {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::{Millis, Position, RoutingError, Sid, SidKind, Step, WorkflowConfig};

    pub(crate) const QUEUE: &str = "WQ00000000000000000000000000000001";

    /// The queues the fuzzed configurations may name that exist.
    pub(crate) const KNOWN_QUEUES: [&str; 2] = [QUEUE, "WQ00000000000000000000000000000002"];

    fn known_queue(sid: Sid) -> bool {
        KNOWN_QUEUES.iter().any(|known| Sid::parse(known, SidKind::TaskQueue) == Ok(sid))
    }

    /// A walk to take through a configuration: the task's attributes, when it entered, and
    /// moments at which it is settled (`true`) or moved on (skipping its step or not).
    pub(crate) type Walk = (Value, Millis, Vec<(Millis, bool, bool)>);

    /// `text` is a configuration or a refusal that names the place (filter, target, field) and
    /// the mistake; a configuration is walked along each of `walks` (see [`check_walk`]).
    pub(crate) fn check_text(text: &str, walks: &[Walk]) -> Result<(), TestCaseError> {
        let config = match WorkflowConfig::parse(text, known_queue) {
            Ok(config) => config,
            Err(err) => return assert_clear_refusal(&err),
        };
        for (attributes, since, moments) in walks {
            check_walk(&config, attributes, *since, moments)?;
        }
        Ok(())
    }

    /// The walk of a configuration, for any attributes and at any moments, stays on the
    /// configuration's positions and ends.
    fn check_walk(
        config: &WorkflowConfig,
        attributes: &Value,
        since: Millis,
        moments: &[(Millis, bool, bool)],
    ) -> Result<(), TestCaseError> {
        // Random walks: settling at a moment leaves a step that is not yet over.
        let mut step = config.first_step(attributes, since, moments.first().map_or(since, |moment| moment.0));
        assert_step_fits(config, step)?;
        for &(now, settle, skipped) in moments {
            step = if settle {
                let settled = config.settle(step, attributes, now);
                if let Step::At { deadline: Some(deadline), .. } = settled {
                    prop_assert!(deadline > now, "{:?} settled at {}", settled, now);
                }
                settled
            } else {
                config.next_step(step, attributes, now, skipped)
            };
            assert_step_fits(config, step)?;
        }
        // Every timeout moves on, so a task falls out after at most every position once.
        let targets: usize = config.filters.iter().map(|filter| filter.targets.len()).sum();
        let positions = targets + 1;
        let mut step = config.first_step(attributes, since, since);
        for _ in 0..positions {
            step = config.next_step(step, attributes, since, false);
        }
        prop_assert_eq!(step, Step::TimedOut);
        Ok(())
    }

    /// A refusal says where and what.
    fn assert_clear_refusal(err: &RoutingError) -> Result<(), TestCaseError> {
        match err {
            RoutingError::InvalidWorkflow { location, message } => {
                prop_assert!(!location.is_empty() && !message.is_empty(), "{:?}", err);
            }
            other => prop_assert!(false, "not a configuration error: {:?}", other),
        }
        Ok(())
    }

    /// A step the walk returns names a position of this configuration, with a deadline when
    /// (and only when) that target has a timeout, never before the filter was entered.
    fn assert_step_fits(config: &WorkflowConfig, step: Step) -> Result<(), TestCaseError> {
        let Step::At { position, deadline, filter_entered_at, .. } = step else { return Ok(()) };
        prop_assert!(config.queue_at(position).is_some(), "{:?}", step);
        let _ = config.priority_at(position);
        match position {
            Position::Target { .. } => {
                let target = config.target(position).expect("has a queue, so it exists");
                prop_assert_eq!(deadline.is_some(), target.timeout.is_some(), "{:?}", step);
            }
            Position::Default => prop_assert_eq!(deadline, None),
            Position::Transfer { .. } => prop_assert!(false, "a walk never leads to a transfer's position"),
        }
        prop_assert!(deadline.is_none_or(|deadline| deadline >= filter_entered_at), "{:?}", step);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::fuzz::{KNOWN_QUEUES, QUEUE, check_text};
    use super::*;
    use crate::fuzzing;

    /// A configuration with one filter per expression, all to the same queue.
    fn config(expressions: &[String]) -> WorkflowConfig {
        let filters: Vec<Value> = expressions
            .iter()
            .map(|expression| json!({"expression": expression, "targets": [{"queue": QUEUE}]}))
            .collect();
        let json = json!({"task_routing": {"filters": filters}}).to_string();
        WorkflowConfig::parse(&json, |_| true).unwrap()
    }

    fn expression() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => (0..6u8).prop_map(|n| format!(r#""S{n}" IN task.skills"#)),
            1 => (0..6u8).prop_map(|n| format!(r#""{n}" IN task.skills"#)),
            1 => (0..6u8).prop_map(|n| format!(r#""S{n}" IN other"#)),
            1 => Just("priority > 3".to_owned()),
        ]
    }

    fn skills() -> impl Strategy<Value = Value> {
        let element = prop_oneof![
            4 => (0..7u8).prop_map(|n| json!(format!("S{n}"))),
            1 => (0..6u8).prop_map(|n| json!(n)),
            1 => (0..6u8).prop_map(|n| json!(n.to_string())),
        ];
        prop_oneof![
            8 => prop::collection::vec(element, 0..4).prop_map(Value::Array),
            1 => Just(json!("S1")),
            1 => Just(Value::Null),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn the_text_index_finds_the_same_filter_as_evaluating_each(
            expressions in prop::collection::vec(expression(), 1..24),
            skills in skills(),
            other in skills(),
            priority in 0..6i64,
            start in 0..24usize,
        ) {
            let indexed = config(&expressions);
            let plain = WorkflowConfig { text_runs: Vec::new(), ..indexed.clone() };
            let attributes = json!({"skills": skills, "other": other, "priority": priority});
            let start = start.min(expressions.len());
            prop_assert_eq!(
                indexed.enter_filter_from(start, &attributes, 0, 0, false),
                plain.enter_filter_from(start, &attributes, 0, 0, false)
            );
        }
    }

    /// Values a mutation puts in a configuration: queue SIDs known, unknown and of the wrong
    /// kind, numbers in and out of every range (also as strings), expressions that compile in
    /// some contexts only or not at all, and any JSON.
    fn workflow_value() -> BoxedStrategy<Value> {
        prop_oneof![
            2 => prop::sample::select(vec![
                KNOWN_QUEUES[1],
                "WQ0000000000000000000000000000000f",
                "WK00000000000000000000000000000001",
                " 10 ",
                "-1",
                "4294967296",
                "2147483648",
                "1e3",
                "task.x == worker.y",
                "worker.level >= task.level",
                "taskrouter.currentHour >= 9 AND taskrouter.dayOfWeek != 'Sun'",
                "x HAS 1 OR y IN ['a', 2] OR NOT (z CONTAINS 'q')",
                "skill-level > 1",
                "((((",
                "worker.level DESC, worker.a",
                "worker.x up",
                "task.agent_sid",
                "task.",
            ])
            .prop_map(Value::from),
            1 => expression().prop_map(Value::from),
            1 => fuzzing::edge_number(),
            2 => fuzzing::json_value(),
        ]
        .boxed()
    }

    /// A JSON object of the entries that are there.
    fn object(entries: Vec<(&str, Option<Value>)>) -> Value {
        Value::Object(entries.into_iter().filter_map(|(key, value)| Some((key.to_owned(), value?))).collect())
    }

    /// A valid target: a known queue (always on a filter's first target), and now and then a
    /// priority, a timeout, an expression, an order, a skip condition or a known worker.
    fn target_value(first: bool) -> impl Strategy<Value = Value> {
        let sometimes = |p: f64, value: BoxedStrategy<Value>| prop::option::weighted(p, value);
        (
            sometimes(0.5, prop::sample::select(KNOWN_QUEUES.to_vec()).prop_map(Value::from).boxed()),
            sometimes(0.3, (0..20i64).prop_map(Value::from).boxed()),
            sometimes(0.7, prop_oneof![4 => 1..120u32, 1 => Just(u32::MAX)].prop_map(Value::from).boxed()),
            sometimes(0.2, Just(json!("worker.level >= task.level")).boxed()),
            sometimes(0.1, Just(json!("worker.level DESC, worker.a")).boxed()),
            sometimes(0.1, Just(json!("priority > 3")).boxed()),
            sometimes(0.05, Just(json!("task.agent_sid")).boxed()),
        )
            .prop_map(
                move |(queue, priority, timeout, expression, order_by, skip_if, known_worker_sid)| {
                    let queue = if first { queue.or(Some(json!(QUEUE))) } else { queue };
                    object(vec![
                        ("queue", queue),
                        ("priority", priority),
                        ("timeout", timeout),
                        ("expression", expression),
                        ("order_by", order_by),
                        ("skip_if", skip_if),
                        ("known_worker_sid", known_worker_sid),
                    ])
                },
            )
    }

    fn filter_value() -> impl Strategy<Value = Value> {
        let targets = (target_value(true), prop::collection::vec(target_value(false), 0..3))
            .prop_map(|(first, rest)| Value::Array([first].into_iter().chain(rest).collect()));
        (prop::option::weighted(0.5, fuzzing::awkward_text()), expression(), targets).prop_map(
            |(name, expression, targets)| {
                object(vec![
                    ("filter_friendly_name", name.map(Value::from)),
                    ("expression", Some(Value::from(expression))),
                    ("targets", Some(targets)),
                ])
            },
        )
    }

    /// Workflow configurations as TaskRouter documents them (wrapped in `task_routing` or
    /// bare), valid, then changed by up to three mutations.
    fn configuration_value() -> impl Strategy<Value = Value> {
        let default_filter = (prop::sample::select(KNOWN_QUEUES.to_vec()), prop::option::of(0..20i64))
            .prop_map(|(queue, priority)| {
                object(vec![("queue", Some(json!(queue))), ("priority", priority.map(Value::from))])
            });
        let routing =
            (prop::collection::vec(filter_value(), 0..10), prop::option::weighted(0.7, default_filter))
                .prop_map(|(filters, default_filter)| {
                    object(vec![("filters", Some(Value::Array(filters))), ("default_filter", default_filter)])
                });
        (routing, any::<bool>(), fuzzing::mutations(workflow_value())).prop_map(
            |(routing, wrapped, mutations)| {
                let configuration = if wrapped { json!({"task_routing": routing}) } else { routing };
                fuzzing::mutated(configuration, mutations)
            },
        )
    }

    /// Moments of a task's life: near the epoch (where deadlines are), anywhere, or at the ends.
    fn moment() -> impl Strategy<Value = Millis> {
        prop_oneof![
            4 => 0..10_000_000i64,
            1 => any::<i64>(),
            1 => prop::sample::select(vec![i64::MIN, i64::MAX]),
        ]
    }

    /// Task attributes: any JSON, or the shape the generated filters read.
    fn task_attributes() -> impl Strategy<Value = Value> {
        prop_oneof![
            fuzzing::json_value(),
            (skills(), skills(), fuzzing::edge_number()).prop_map(|(skills, other, priority)| {
                json!({"skills": skills, "other": other, "priority": priority})
            }),
        ]
    }

    proptest! {
        #![proptest_config(fuzzing::config(1_000))]

        /// Fuzz target (see `crate::fuzzing`): any text is a configuration or a refusal that
        /// names the place (filter, target, field) and the mistake.
        #[test]
        fn fuzz_workflow_configuration_from_arbitrary_text(
            text in prop_oneof![
                any::<String>(),
                fuzzing::json_value().prop_map(|value| value.to_string()),
                fuzzing::deeply_nested_json(),
                configuration_value().prop_map(|value| value.to_string()),
            ],
        ) {
            check_text(&text, &[])?;
        }

        /// Fuzz target: the walk of any configuration that parses, for any attributes and at
        /// any moments, stays on the configuration's positions and ends.
        #[test]
        fn fuzz_workflow_walk_of_random_configurations(
            configuration in configuration_value(),
            attributes in task_attributes(),
            since in moment(),
            moments in prop::collection::vec((moment(), any::<bool>(), any::<bool>()), 1..12),
        ) {
            check_text(&configuration.to_string(), &[(attributes, since, moments)])?;
        }
    }

    #[test]
    fn a_run_of_skill_filters_is_indexed() {
        let expressions: Vec<String> = (0..6).map(|n| format!(r#""S{n}" IN task.skills"#)).collect();
        let config = config(&expressions);
        assert_eq!(config.text_runs.len(), 1);
        assert_eq!((config.text_runs[0].first, config.text_runs[0].last), (0, 5));
        let step = config.first_step(&json!({"skills": ["S9", "S4", "S2"]}), 0, 0);
        assert!(
            matches!(step, Step::At { position: Position::Target { filter: 2, target: 0 }, .. }),
            "{step:?}"
        );
    }
}
