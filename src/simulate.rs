//! `switchboard simulate`: a workspace and a timeline of what callers and agents do, run through
//! the routing engine on a virtual clock, with every event printed as one JSON line.
//!
//! ```toml
//! start = "2026-11-23T09:00:00Z"   # optional: the clock at t = 0 (for taskrouter.* filters)
//! until = 120                      # optional: run the clock to here after the last entry
//! # [workspace] ... optional; the default is switchboard.toml's (the onboarding guide's)
//!
//! [[timeline]]
//! at = 0
//! set_activity = { worker = "alice", activity = "Available" }
//!
//! [[timeline]]
//! at = 1
//! create_task = { name = "call-1", workflow = "Sales and Support Workflow", channel = "voice", attributes = { skillsNeeded = ["Sales"] } }
//!
//! [[timeline]]
//! at = 3
//! accept = "alice"           # the worker's oldest pending reservation
//! ```
//!
//! Other actions: `reject = "alice"` (with `activity = "Break"` to move her), `wrap_up`,
//! `complete` and `cancel` (a task name, with an optional `reason`), and
//! `set_skills = { worker = "bob", skills = ["Sales"], levels = { Sales = 3 } }`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::routing::{Engine, Event, Millis, NewTask, ReservationStatus, Sid};
use crate::workspace::{WorkspaceFile, line_of};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    /// RFC 3339 time at t = 0; default 2026-01-05T09:00:00Z (a Monday morning).
    start: Option<Spanned<String>>,
    /// Seconds: run the clock to here after the last entry.
    until: Option<f64>,
    #[serde(default)]
    workspace: Option<WorkspaceFile>,
    #[serde(default)]
    timeline: Vec<Spanned<Entry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// Seconds since the start; entries must be in time order.
    at: f64,
    create_task: Option<TaskSpec>,
    accept: Option<String>,
    reject: Option<String>,
    /// With `reject`: the activity the worker moves to.
    activity: Option<String>,
    wrap_up: Option<String>,
    complete: Option<String>,
    cancel: Option<String>,
    /// With `complete` or `cancel`.
    reason: Option<String>,
    set_activity: Option<ActivityChange>,
    set_skills: Option<SkillsChange>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskSpec {
    /// How the task is called in the output; default T1, T2...
    name: Option<String>,
    #[serde(default)]
    attributes: toml::Table,
    priority: Option<i64>,
    timeout: Option<u32>,
    channel: Option<String>,
    /// Needed when the workspace has several workflows.
    workflow: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivityChange {
    worker: String,
    activity: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SkillsChange {
    worker: String,
    skills: Vec<String>,
    #[serde(default)]
    levels: BTreeMap<String, u32>,
}

/// One printed event. Names first for people, SIDs after for tools.
#[derive(Debug, Serialize)]
struct Line {
    t: f64,
    sequence: u64,
    #[serde(rename = "type")]
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_sid: Option<String>,
}

/// A scenario mistake, with its 1-based line when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|line| format!("{line}: ")).unwrap_or_default())]
pub struct SimulateError {
    pub line: Option<usize>,
    pub message: String,
}

/// The default clock at t = 0: Monday 2026-01-05 09:00 UTC, inside usual business hours.
const DEFAULT_START: Millis = 1_767_603_600_000;

/// Runs the scenario in `source` and returns the events, one JSON document per line.
pub fn run(source: &str) -> Result<Vec<String>, SimulateError> {
    let scenario: Scenario = toml::from_str(source).map_err(|err| SimulateError {
        line: err.span().map(|span| line_of(source, span.start)),
        message: err.message().to_owned(),
    })?;
    let start = match &scenario.start {
        None => DEFAULT_START,
        Some(text) => {
            text.get_ref().parse::<jiff::Timestamp>().map(|timestamp| timestamp.as_millisecond()).map_err(
                |err| located(source, text.span(), format!("start is not an RFC 3339 time: {err}")),
            )?
        }
    };
    let default_workspace;
    let (workspace, workspace_source) = match &scenario.workspace {
        Some(workspace) => (workspace, source),
        None => {
            default_workspace = WorkspaceFile::default();
            (&default_workspace, include_str!("../switchboard.toml"))
        }
    };
    let engine = workspace.build(workspace_source, 0, start).map_err(|err| SimulateError {
        line: err.line.filter(|_| scenario.workspace.is_some()),
        message: format!("[workspace] {}", err.message),
    })?;
    let mut simulation = Simulation {
        engine,
        start,
        task_names: HashMap::new(),
        task_sids: HashMap::new(),
        lines: Vec::new(),
    };
    let mut previous_at = 0.0;
    for entry in &scenario.timeline {
        let span = entry.span();
        let entry = entry.get_ref();
        if !entry.at.is_finite() || entry.at < 0.0 {
            return Err(located(
                source,
                span,
                format!("at = {} is not a number of seconds from the start", entry.at),
            ));
        }
        if entry.at < previous_at {
            return Err(located(
                source,
                span,
                format!("at = {} comes before the previous entry's {previous_at}", entry.at),
            ));
        }
        previous_at = entry.at;
        let now = start + (entry.at * 1000.0).round() as Millis;
        simulation.engine.advance(now);
        simulation.drain();
        simulation
            .apply(entry, now)
            .map_err(|message| located(source, span, format!("at t={}: {message}", entry.at)))?;
        simulation.drain();
    }
    if let Some(until) = scenario.until {
        simulation.engine.advance(start + (until * 1000.0).round() as Millis);
        simulation.drain();
    }
    Ok(simulation.lines)
}

struct Simulation {
    engine: Engine,
    start: Millis,
    task_names: HashMap<Sid, String>,
    task_sids: HashMap<String, Sid>,
    lines: Vec<String>,
}

impl Simulation {
    fn apply(&mut self, entry: &Entry, now: Millis) -> Result<(), String> {
        let actions = [
            entry.create_task.is_some(),
            entry.accept.is_some(),
            entry.reject.is_some(),
            entry.wrap_up.is_some(),
            entry.complete.is_some(),
            entry.cancel.is_some(),
            entry.set_activity.is_some(),
            entry.set_skills.is_some(),
        ];
        if actions.iter().filter(|&&action| action).count() != 1 {
            return Err("give exactly one action: create_task, accept, reject, wrap_up, complete, cancel, set_activity or set_skills".into());
        }
        let engine_error = |err: crate::routing::RoutingError| err.to_string();
        if let Some(spec) = &entry.create_task {
            return self.create_task(spec, now);
        }
        if let Some(worker) = &entry.accept {
            let reservation = self.oldest_offer(worker)?;
            return self.engine.accept(reservation, now).map_err(engine_error);
        }
        if let Some(worker) = &entry.reject {
            let reservation = self.oldest_offer(worker)?;
            let activity = entry.activity.as_deref().map(|name| self.activity(name)).transpose()?;
            return self.engine.reject(reservation, activity, now).map_err(engine_error);
        }
        if let Some(task) = &entry.wrap_up {
            return self.engine.wrap_up(self.task(task)?, now).map_err(engine_error);
        }
        if let Some(task) = &entry.complete {
            let reason = entry.reason.as_deref().unwrap_or("completed");
            return self.engine.complete(self.task(task)?, reason, now).map_err(engine_error);
        }
        if let Some(task) = &entry.cancel {
            let reason = entry.reason.as_deref().unwrap_or("canceled");
            return self.engine.cancel(self.task(task)?, reason, now).map_err(engine_error);
        }
        if let Some(change) = &entry.set_activity {
            let (worker, activity) = (self.worker(&change.worker)?, self.activity(&change.activity)?);
            return self.engine.set_worker_activity(worker, activity, false, now).map_err(engine_error);
        }
        if let Some(change) = &entry.set_skills {
            let worker = self.worker(&change.worker)?;
            let skills: Vec<(String, Option<u32>)> = change
                .skills
                .iter()
                .map(|skill| (skill.clone(), change.levels.get(skill).copied()))
                .collect();
            return self.engine.set_worker_skills(worker, &skills, None, now).map_err(engine_error);
        }
        Ok(())
    }

    fn create_task(&mut self, spec: &TaskSpec, now: Millis) -> Result<(), String> {
        let name = spec.name.clone().unwrap_or_else(|| format!("T{}", self.task_names.len() + 1));
        if self.task_sids.contains_key(&name) {
            return Err(format!("a task named {name:?} exists"));
        }
        let workflow = match &spec.workflow {
            Some(name) => Some(
                self.engine
                    .workflows()
                    .iter()
                    .find(|workflow| &workflow.friendly_name == name)
                    .map(|workflow| workflow.sid)
                    .ok_or_else(|| format!("no workflow named {name:?}"))?,
            ),
            None if self.engine.workflows().len() > 1 => {
                let names: Vec<String> =
                    self.engine.workflows().iter().map(|w| format!("{:?}", w.friendly_name)).collect();
                return Err(format!("create_task needs `workflow`: one of {}", names.join(", ")));
            }
            None => None,
        };
        let attributes = serde_json::to_value(&spec.attributes).map_err(|err| err.to_string())?;
        let new = NewTask {
            attributes,
            priority: spec.priority,
            timeout: spec.timeout,
            workflow,
            channel: spec.channel.clone(),
        };
        // Its events are drained after this returns, so they already carry the name.
        let sid = self.engine.create_task(new, now).map_err(|err| err.to_string())?;
        self.task_names.insert(sid, name.clone());
        self.task_sids.insert(name, sid);
        Ok(())
    }

    fn oldest_offer(&self, worker: &str) -> Result<Sid, String> {
        let worker_sid = self.worker(worker)?;
        let mut offers: Vec<(Millis, Sid)> = self
            .task_sids
            .values()
            .filter_map(|&task| self.engine.task(task))
            .flat_map(|task| task.reservations.iter().filter_map(|&sid| self.engine.reservation(sid)))
            .filter(|reservation| {
                reservation.status == ReservationStatus::Pending
                    && self.engine.reservation_worker(reservation).sid == worker_sid
            })
            .map(|reservation| (reservation.created_at, reservation.sid))
            .collect();
        offers.sort_unstable();
        offers.first().map(|&(_, sid)| sid).ok_or_else(|| format!("{worker} has no pending reservation"))
    }

    fn worker(&self, name: &str) -> Result<Sid, String> {
        self.engine
            .worker_by_name(name)
            .map(|worker| worker.sid)
            .ok_or_else(|| format!("no worker named {name:?}"))
    }

    fn activity(&self, name: &str) -> Result<Sid, String> {
        self.engine
            .activity_by_name(name)
            .map(|activity| activity.sid)
            .ok_or_else(|| format!("no activity named {name:?}"))
    }

    fn task(&self, name: &str) -> Result<Sid, String> {
        self.task_sids.get(name).copied().ok_or_else(|| format!("no task named {name:?}"))
    }

    fn drain(&mut self) {
        for event in self.engine.take_events() {
            let line = self.line(&event);
            self.lines.push(serde_json::to_string(&line).expect("a line serializes"));
        }
    }

    fn line(&self, event: &Event) -> Line {
        let engine = &self.engine;
        let task =
            event.task.map(|sid| self.task_names.get(&sid).cloned().unwrap_or_else(|| sid.to_string()));
        Line {
            t: (event.timestamp - self.start) as f64 / 1000.0,
            sequence: event.sequence,
            event_type: event.event_type.as_str(),
            task,
            worker: event.worker.and_then(|sid| engine.worker(sid)).map(|w| w.friendly_name.clone()),
            queue: event.queue.and_then(|sid| engine.queue(sid)).map(|q| q.friendly_name.clone()),
            workflow: event.workflow.and_then(|sid| engine.workflow(sid)).map(|w| w.friendly_name.clone()),
            activity: event
                .activity
                .and_then(|sid| engine.activities().iter().find(|activity| activity.sid == sid))
                .map(|activity| activity.friendly_name.clone()),
            reason: event.reason.clone(),
            task_sid: event.task.map(|sid| sid.to_string()),
            worker_sid: event.worker.map(|sid| sid.to_string()),
            reservation_sid: event.reservation.map(|sid| sid.to_string()),
            queue_sid: event.queue.map(|sid| sid.to_string()),
        }
    }
}

fn located(source: &str, span: Range<usize>, message: String) -> SimulateError {
    SimulateError { line: Some(line_of(source, span.start)), message }
}
