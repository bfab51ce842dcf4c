//! Cumulative statistics with the fields of TaskRouter's CumulativeStatistics (reference §6.3)
//! for the workspace, a task queue or a workflow, computed from events over a window of time.
//!
//! The events come oldest first. Those before the window are not counted, but they say what
//! each task was doing when the window opened: when it was created, its workflow, the queue it
//! is in and since when. That is how events naming only the task (`task.canceled`,
//! `task.completed`, `task.deleted`) are counted for its queue and workflow.
//!
//! Wait durations count from the task's creation, as TaskRouter's do, in whole seconds. A task
//! created before the oldest event given has no known wait: its events are counted, its waits
//! are not.
//!
//! This is the reference computation, one pass over the events per question. The server keeps
//! the same figures per minute as events happen (`counters.rs`, which reuses `observe` and
//! `count` below), and a property test checks that both agree.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::Millis;
use super::event::{Event, EventType};
use super::sid::Sid;

/// What the statistics are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Workspace,
    Queue(Sid),
    Workflow(Sid),
}

/// The interval counted, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub start: Millis,
    pub end: Millis,
}

/// The events that the statistics count or learn from; every other event is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountedEvent {
    WorkflowEntered,
    WorkflowTimeout,
    WorkflowSkipped,
    TaskQueueEntered,
    TaskQueueMoved,
    TaskCreated,
    TaskCanceled,
    TaskCompleted,
    TaskDeleted,
    /// `task.transfer-initiated`, about the task transferred.
    TaskTransferred,
    Reservation(ReservationEvent),
}

/// A reservation made, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationEvent {
    Created,
    Accepted,
    Rejected,
    TimedOut,
    Canceled,
    Rescinded,
}

/// The engine's event for each counted event; TaskRouter's name is its `as_str` (reference
/// §6.2).
const COUNTED_EVENTS: [(EventType, CountedEvent); 16] = [
    (EventType::WorkflowEntered, CountedEvent::WorkflowEntered),
    (EventType::WorkflowTimeout, CountedEvent::WorkflowTimeout),
    (EventType::WorkflowSkipped, CountedEvent::WorkflowSkipped),
    (EventType::TaskQueueEntered, CountedEvent::TaskQueueEntered),
    (EventType::TaskQueueMoved, CountedEvent::TaskQueueMoved),
    (EventType::TaskCreated, CountedEvent::TaskCreated),
    (EventType::TaskCanceled, CountedEvent::TaskCanceled),
    (EventType::TaskCompleted, CountedEvent::TaskCompleted),
    (EventType::TaskDeleted, CountedEvent::TaskDeleted),
    (EventType::TaskTransferInitiated, CountedEvent::TaskTransferred),
    (EventType::ReservationCreated, CountedEvent::Reservation(ReservationEvent::Created)),
    (EventType::ReservationAccepted, CountedEvent::Reservation(ReservationEvent::Accepted)),
    (EventType::ReservationRejected, CountedEvent::Reservation(ReservationEvent::Rejected)),
    (EventType::ReservationTimeout, CountedEvent::Reservation(ReservationEvent::TimedOut)),
    (EventType::ReservationCanceled, CountedEvent::Reservation(ReservationEvent::Canceled)),
    (EventType::ReservationRescinded, CountedEvent::Reservation(ReservationEvent::Rescinded)),
];

/// What the statistics need of one event, whether it comes from the engine ([`Event`]) or from
/// the stored history (where the type is TaskRouter's name for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFacts {
    pub timestamp: Millis,
    pub event: CountedEvent,
    pub task: Sid,
    /// For `task-queue.moved`, the queue the task left (the engine's convention).
    pub queue: Option<Sid>,
    pub workflow: Option<Sid>,
    /// The task's channel, on `task.created`.
    pub channel: Option<Sid>,
    /// The task's disposition, on `task.completed`.
    pub outcome: Option<Arc<str>>,
}

impl EventFacts {
    /// The facts of an event of type `event_type` (`reservation.accepted`...), or `None` for an
    /// event that no statistic counts or that names no task.
    pub fn new(
        timestamp: Millis,
        event_type: &str,
        task: Option<Sid>,
        queue: Option<Sid>,
        workflow: Option<Sid>,
        channel: Option<Sid>,
        outcome: Option<&str>,
    ) -> Option<EventFacts> {
        let event = COUNTED_EVENTS.iter().find(|(kind, _)| kind.as_str() == event_type)?.1;
        let outcome = outcome.map(Arc::from);
        Some(EventFacts { timestamp, event, task: task?, queue, workflow, channel, outcome })
    }

    /// [`EventFacts::new`] for the engine's own events (their type compared, not its name).
    pub fn from_event(event: &Event) -> Option<EventFacts> {
        let Event { timestamp, event_type, task, queue, workflow, channel, outcome, .. } = event;
        let event = COUNTED_EVENTS.iter().find(|(kind, _)| kind == event_type)?.1;
        Some(EventFacts {
            timestamp: *timestamp,
            event,
            task: (*task)?,
            queue: *queue,
            workflow: *workflow,
            channel: *channel,
            outcome: outcome.as_deref().map(Arc::from),
        })
    }
}

/// Cumulative statistics over one window, for one [`Scope`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CumulativeStatistics {
    pub window: Window,
    /// The workspace and a workflow count tasks created (TaskRouter's `tasks_created` and
    /// `tasks_entered`); a queue counts tasks entering it, not one re-entering the queue it is
    /// already in (re-routed after an attribute update or an unanswered call).
    pub tasks_entered: u64,
    pub tasks_canceled: u64,
    pub tasks_completed: u64,
    /// Tasks deleted through the API (`task.deleted`).
    pub tasks_deleted: u64,
    /// Moves from one queue to another; a queue counts the tasks that left it.
    pub tasks_moved: u64,
    /// Transfers to another agent or queue; a queue counts those of the tasks it served.
    pub tasks_transferred: u64,
    /// Tasks that fell off the end of their workflow (`workflow.timeout`) or skipped its last
    /// step (`workflow.skipped`): either way the task is canceled without being assigned.
    pub tasks_timed_out_in_workflow: u64,
    pub reservations_created: u64,
    pub reservations_accepted: u64,
    pub reservations_rejected: u64,
    /// Offers that were not answered in time, and accepted calls that went unanswered (both
    /// are `reservation.timeout`).
    pub reservations_timed_out: u64,
    pub reservations_canceled: u64,
    pub reservations_rescinded: u64,
    /// From task creation to each accepted reservation.
    pub wait_until_accepted: WaitDurations,
    /// From task creation to its cancellation.
    pub wait_until_canceled: WaitDurations,
    /// For a queue only: from entering the queue to each accepted reservation.
    pub wait_in_queue_until_accepted: WaitDurations,
    /// One per threshold asked for, in ascending order.
    pub split_by_wait_time: Vec<WaitSplit>,
    /// Completed tasks by disposition (`conversations.outcome`); those without one are not here.
    pub completed_by_outcome: BTreeMap<Arc<str>, u64>,
}

/// Waits in whole seconds: how many, and their total, shortest and longest (all 0 when none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitDurations {
    pub count: u64,
    pub total: i64,
    pub min: i64,
    pub max: i64,
}

/// Cancellations and acceptances whose wait from task creation was under a threshold
/// (`below`) or at least that (`above`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitSplit {
    /// Seconds.
    pub threshold: u32,
    pub below: SplitCounts,
    pub above: SplitCounts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SplitCounts {
    pub tasks_canceled: u64,
    pub reservations_accepted: u64,
}

impl WaitDurations {
    /// The mean, rounded to the nearest second (TaskRouter gives whole seconds).
    pub fn avg(&self) -> i64 {
        match i64::try_from(self.count) {
            Ok(count) if count > 0 => (self.total + count / 2) / count,
            _ => 0,
        }
    }

    fn add(&mut self, wait: Millis) {
        let seconds = wait.max(0) / 1000;
        self.min = if self.count == 0 { seconds } else { self.min.min(seconds) };
        self.max = self.max.max(seconds);
        self.total += seconds;
        self.count += 1;
    }

    /// Adds the waits of `other`, as if each had been added here.
    fn merge(&mut self, other: &WaitDurations) {
        if other.count == 0 {
            return;
        }
        self.min = if self.count == 0 { other.min } else { self.min.min(other.min) };
        self.max = self.max.max(other.max);
        self.total += other.total;
        self.count += other.count;
    }
}

/// What is known of a task from the events seen so far.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TaskTrack {
    pub(super) created_at: Option<Millis>,
    pub(super) workflow: Option<Sid>,
    pub(super) queue: Option<Sid>,
    pub(super) queue_entered_at: Option<Millis>,
}

/// One event as counted: the queue and workflow it counts for, and the task's waits then.
#[derive(Debug, Clone)]
pub(super) struct Counted {
    pub(super) event: CountedEvent,
    pub(super) outcome: Option<Arc<str>>,
    pub(super) queue: Option<Sid>,
    pub(super) workflow: Option<Sid>,
    pub(super) since_created: Option<Millis>,
    pub(super) since_queue_entered: Option<Millis>,
}

/// The cumulative statistics of `scope` over `window`, from `events` oldest first (events
/// after the window are ignored), with a split at each of `split_thresholds` seconds.
pub fn cumulative_statistics(
    events: impl IntoIterator<Item = EventFacts>,
    window: Window,
    scope: Scope,
    split_thresholds: &[u32],
) -> CumulativeStatistics {
    let mut statistics = CumulativeStatistics::empty(window, split_thresholds);
    let mut tasks: HashMap<Sid, TaskTrack> = HashMap::new();
    for facts in events.into_iter().filter(|facts| facts.timestamp <= window.end) {
        let counted = observe(tasks.entry(facts.task).or_default(), &facts);
        if let Some(counted) = counted.filter(|_| facts.timestamp >= window.start) {
            statistics.count(&counted, scope);
        }
    }
    statistics
}

/// Learns from one event of a task; `None` when the event itself counts for nothing (it only
/// says where the task is).
pub(super) fn observe(track: &mut TaskTrack, facts: &EventFacts) -> Option<Counted> {
    let at = facts.timestamp;
    track.workflow = facts.workflow.or(track.workflow);
    let mut counts = true;
    match facts.event {
        CountedEvent::WorkflowEntered | CountedEvent::TaskCreated => {
            track.created_at.get_or_insert(at);
            counts = facts.event == CountedEvent::TaskCreated;
        }
        CountedEvent::TaskQueueEntered => {
            counts = track.queue != facts.queue;
            if counts {
                track.queue = facts.queue;
                track.queue_entered_at = Some(at);
            }
        }
        // Out of its workflow, the task is in no queue: neither this nor its cancellation is
        // the queue's.
        CountedEvent::WorkflowTimeout | CountedEvent::WorkflowSkipped => {
            track.queue = None;
            track.queue_entered_at = None;
        }
        // The history may begin after the task entered its queue: the reservation says which.
        CountedEvent::Reservation(_) => track.queue = track.queue.or(facts.queue),
        _ => {}
    }
    let counted = Counted {
        event: facts.event,
        outcome: facts.outcome.clone(),
        queue: facts.queue.or(track.queue),
        workflow: track.workflow,
        since_created: track.created_at.map(|created| at - created),
        since_queue_entered: track.queue_entered_at.map(|entered| at - entered),
    };
    counts.then_some(counted)
}

impl CumulativeStatistics {
    /// Nothing counted yet over `window`, with a split at each of `split_thresholds` seconds
    /// (ascending, each once).
    pub(super) fn empty(window: Window, split_thresholds: &[u32]) -> CumulativeStatistics {
        let thresholds: BTreeSet<u32> = split_thresholds.iter().copied().collect();
        CumulativeStatistics {
            window,
            split_by_wait_time: thresholds
                .into_iter()
                .map(|threshold| WaitSplit { threshold, ..WaitSplit::default() })
                .collect(),
            ..CumulativeStatistics::default()
        }
    }

    /// Adds the counts and waits of `other` (not its window or split), as if its events had
    /// been counted here.
    pub(super) fn merge(&mut self, other: &CumulativeStatistics) {
        self.tasks_entered += other.tasks_entered;
        self.tasks_canceled += other.tasks_canceled;
        self.tasks_completed += other.tasks_completed;
        self.tasks_deleted += other.tasks_deleted;
        self.tasks_moved += other.tasks_moved;
        self.tasks_transferred += other.tasks_transferred;
        self.tasks_timed_out_in_workflow += other.tasks_timed_out_in_workflow;
        self.reservations_created += other.reservations_created;
        self.reservations_accepted += other.reservations_accepted;
        self.reservations_rejected += other.reservations_rejected;
        self.reservations_timed_out += other.reservations_timed_out;
        self.reservations_canceled += other.reservations_canceled;
        self.reservations_rescinded += other.reservations_rescinded;
        self.wait_until_accepted.merge(&other.wait_until_accepted);
        self.wait_until_canceled.merge(&other.wait_until_canceled);
        self.wait_in_queue_until_accepted.merge(&other.wait_in_queue_until_accepted);
        for (outcome, count) in &other.completed_by_outcome {
            *self.completed_by_outcome.entry(outcome.clone()).or_default() += count;
        }
    }

    /// Counts one event for `scope`, if it is the scope's.
    pub(super) fn count(&mut self, counted: &Counted, scope: Scope) {
        let in_scope = match scope {
            Scope::Workspace => true,
            Scope::Queue(queue) => counted.queue == Some(queue),
            Scope::Workflow(workflow) => counted.workflow == Some(workflow),
        };
        if !in_scope {
            return;
        }
        let for_queue = matches!(scope, Scope::Queue(_));
        match counted.event {
            CountedEvent::TaskCreated if !for_queue => self.tasks_entered += 1,
            CountedEvent::TaskQueueEntered if for_queue => self.tasks_entered += 1,
            CountedEvent::WorkflowEntered | CountedEvent::TaskCreated | CountedEvent::TaskQueueEntered => {}
            CountedEvent::TaskQueueMoved => self.tasks_moved += 1,
            CountedEvent::WorkflowTimeout | CountedEvent::WorkflowSkipped => {
                self.tasks_timed_out_in_workflow += 1;
            }
            CountedEvent::TaskCanceled => {
                self.tasks_canceled += 1;
                if let Some(wait) = counted.since_created {
                    self.wait_until_canceled.add(wait);
                    self.split(wait, |counts| counts.tasks_canceled += 1);
                }
            }
            CountedEvent::TaskCompleted => {
                self.tasks_completed += 1;
                if let Some(outcome) = &counted.outcome {
                    *self.completed_by_outcome.entry(outcome.clone()).or_default() += 1;
                }
            }
            CountedEvent::TaskDeleted => self.tasks_deleted += 1,
            CountedEvent::TaskTransferred => self.tasks_transferred += 1,
            CountedEvent::Reservation(ReservationEvent::Created) => self.reservations_created += 1,
            CountedEvent::Reservation(ReservationEvent::Accepted) => {
                self.reservations_accepted += 1;
                if let Some(wait) = counted.since_created {
                    self.wait_until_accepted.add(wait);
                    self.split(wait, |counts| counts.reservations_accepted += 1);
                }
                if let Some(wait) = counted.since_queue_entered.filter(|_| for_queue) {
                    self.wait_in_queue_until_accepted.add(wait);
                }
            }
            CountedEvent::Reservation(ReservationEvent::Rejected) => self.reservations_rejected += 1,
            CountedEvent::Reservation(ReservationEvent::TimedOut) => self.reservations_timed_out += 1,
            CountedEvent::Reservation(ReservationEvent::Canceled) => self.reservations_canceled += 1,
            CountedEvent::Reservation(ReservationEvent::Rescinded) => self.reservations_rescinded += 1,
        }
    }

    fn split(&mut self, wait: Millis, count: impl Fn(&mut SplitCounts)) {
        for split in &mut self.split_by_wait_time {
            let below = wait < i64::from(split.threshold) * 1000;
            count(if below { &mut split.below } else { &mut split.above });
        }
    }
}

/// The scripts, renderings and summaries of these tests, shared with `counters.rs`'s.
#[cfg(test)]
pub(super) mod tests {
    use expect_test::{Expect, expect};
    use serde_json::json;

    use super::*;
    use crate::routing::sid::SidKind;
    use crate::routing::{Engine, NewTask, NewTaskQueue, NewWorker, NewWorkflow, TaskOrder, WrapUpRules};

    /// `T1`, `Q2`, `W1`, `C1`: the task, queue, workflow or task channel numbered so.
    pub(in crate::routing) fn sid(name: &str) -> Sid {
        let kind = match &name[..1] {
            "T" => SidKind::Task,
            "Q" => SidKind::TaskQueue,
            "W" => SidKind::Workflow,
            "C" => SidKind::TaskChannel,
            _ => panic!("{name} is not T1, Q1, W1 or C1"),
        };
        let number: u64 = name[1..].parse().unwrap();
        Sid::parse(&format!("{}{number:032x}", kind.prefix()), kind).unwrap()
    }

    /// `Q2` for a queue SID ending in 2 (the engine's SIDs end with a counter).
    fn name(sid: Sid) -> String {
        let letter = if sid.kind() == SidKind::TaskQueue { "Q" } else { "W" };
        format!("{letter}{}", u64::from_str_radix(&sid.to_string()[18..], 16).unwrap())
    }

    /// One event a line (or between semicolons): seconds, TaskRouter's event type, then the
    /// task, queue, workflow and channel it names (`12 reservation.accepted T1 Q1 W1`), and a
    /// completed task's disposition after `=` (`30 task.completed T1 =Sale`).
    /// `create T1 Q1 W1 C2` stands for the three events of a task created into a queue (on
    /// channel 2), as the engine emits them. Events that no statistic counts are dropped, as
    /// [`EventFacts::new`] drops them.
    pub(in crate::routing) fn script(text: &str) -> Vec<EventFacts> {
        let mut events = Vec::new();
        for line in text.split(['\n', ';']).map(str::trim).filter(|line| !line.is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = (words[0].parse::<f64>().unwrap() * 1000.0) as Millis;
            let named =
                |letter: &str| words[2..].iter().find(|word| word.starts_with(letter)).map(|w| sid(w));
            let (task, queue, workflow, channel) = (named("T"), named("Q"), named("W"), named("C"));
            let outcome = words[2..].iter().find_map(|word| word.strip_prefix('='));
            if words[1] == "create" {
                events.extend(EventFacts::new(at, "workflow.entered", task, None, workflow, None, None));
                events.extend(EventFacts::new(at, "task-queue.entered", task, queue, workflow, None, None));
                events.extend(EventFacts::new(at, "task.created", task, None, workflow, channel, None));
            } else {
                events.extend(EventFacts::new(at, words[1], task, queue, workflow, channel, outcome));
            }
        }
        events
    }

    /// The fields that are not zero; a wait as its one value when there is one.
    pub(in crate::routing) fn fields(s: &CumulativeStatistics) -> String {
        let tasks = [
            ("entered", s.tasks_entered),
            ("canceled", s.tasks_canceled),
            ("completed", s.tasks_completed),
            ("deleted", s.tasks_deleted),
            ("moved", s.tasks_moved),
            ("transferred", s.tasks_transferred),
            ("timed_out_in_workflow", s.tasks_timed_out_in_workflow),
        ];
        let reservations = [
            ("created", s.reservations_created),
            ("accepted", s.reservations_accepted),
            ("rejected", s.reservations_rejected),
            ("timed_out", s.reservations_timed_out),
            ("canceled", s.reservations_canceled),
            ("rescinded", s.reservations_rescinded),
        ];
        let mut parts = Vec::new();
        for (group, counts) in [("tasks", &tasks[..]), ("reservations", &reservations[..])] {
            let shown: Vec<String> =
                counts.iter().filter(|(_, n)| *n > 0).map(|(field, n)| format!("{field}={n}")).collect();
            if !shown.is_empty() {
                parts.push(format!("{group} {}", shown.join(" ")));
            }
        }
        let waits = [
            ("until accepted", s.wait_until_accepted),
            ("until canceled", s.wait_until_canceled),
            ("in queue", s.wait_in_queue_until_accepted),
        ];
        for (wait, d) in waits.iter().filter(|(_, d)| d.count > 0) {
            parts.push(match d.count {
                1 => format!("{wait} {}", d.total),
                n => format!("{wait} n={n} avg={} min={} max={} total={}", d.avg(), d.min, d.max, d.total),
            });
        }
        if !s.completed_by_outcome.is_empty() {
            let outcomes: Vec<String> =
                s.completed_by_outcome.iter().map(|(outcome, n)| format!("{outcome:?}={n}")).collect();
            parts.push(format!("dispositions {}", outcomes.join(" ")));
        }
        for split in &s.split_by_wait_time {
            let side = |c: SplitCounts| {
                format!("canceled={} accepted={}", c.tasks_canceled, c.reservations_accepted)
            };
            parts.push(format!(
                "{}s: below {}, above {}",
                split.threshold,
                side(split.below),
                side(split.above)
            ));
        }
        parts.join("; ")
    }

    /// The statistics (`statistics_of` a scope) of the workspace and of each queue and workflow
    /// the events name, one line each, the scopes with the same figures on one line.
    pub(in crate::routing) fn summary(
        events: &[EventFacts],
        statistics_of: impl Fn(Scope) -> CumulativeStatistics,
    ) -> String {
        let named: BTreeSet<Sid> =
            events.iter().flat_map(|facts| [facts.queue, facts.workflow]).flatten().collect();
        let scopes = named.into_iter().map(|sid| {
            let scope =
                if sid.kind() == SidKind::TaskQueue { Scope::Queue(sid) } else { Scope::Workflow(sid) };
            (name(sid), scope)
        });
        let mut lines: Vec<(Vec<String>, String)> = Vec::new();
        for (label, scope) in std::iter::once(("workspace".to_owned(), Scope::Workspace)).chain(scopes) {
            let figures = fields(&statistics_of(scope));
            match lines.iter_mut().find(|(_, same)| *same == figures) {
                Some((labels, _)) => labels.push(label),
                None => lines.push((vec![label], figures)),
            }
        }
        let lines: Vec<String> =
            lines.iter().map(|(labels, figures)| format!("{}: {figures}", labels.join(", "))).collect();
        lines.join("\n")
    }

    /// Computes the statistics of `events` over `window` (seconds, both ends included) and
    /// compares them, for every scope, with `expected`.
    fn check(events: &[EventFacts], window: (i64, i64), thresholds: &[u32], expected: Expect) {
        let window = Window { start: window.0 * 1000, end: window.1 * 1000 };
        let statistics_of = |scope| cumulative_statistics(events.iter().cloned(), window, scope, thresholds);
        expected.assert_eq(&summary(events, statistics_of));
    }

    #[test]
    fn a_task_accepted_then_completed_counts_for_its_queue_and_workflow() {
        let events = script(
            "0 create T1 Q1 W1
             2 reservation.created T1 Q1 W1
             5 reservation.accepted T1 Q1 W1
             60 task.completed T1",
        );
        check(
            &events,
            (0, 100),
            &[],
            expect![[r#"
                workspace, W1: tasks entered=1 completed=1; reservations created=1 accepted=1; until accepted 5
                Q1: tasks entered=1 completed=1; reservations created=1 accepted=1; until accepted 5; in queue 5"#]],
        );
    }

    #[test]
    fn events_that_no_statistic_counts_are_left_out() {
        let events = script(
            "0 create T1 Q1 W1
             1 workflow.target-matched T1 Q1 W1
             3 task.updated T1
             4 task.wrapup T1
             5 worker.activity.update",
        );
        assert_eq!(events.len(), 3, "{events:?}");
        check(&events, (0, 100), &[], expect!["workspace, Q1, W1: tasks entered=1"]);
    }

    #[test]
    fn events_before_the_window_are_not_counted_but_waits_start_at_creation() {
        let events = script(
            "0 create T1 Q1 W1
             10 reservation.created T1 Q1 W1
             30 reservation.accepted T1 Q1 W1",
        );
        check(
            &events,
            (20, 100),
            &[],
            expect![[r#"
                workspace, W1: reservations accepted=1; until accepted 30
                Q1: reservations accepted=1; until accepted 30; in queue 30"#]],
        );
    }

    #[test]
    fn events_after_the_window_are_not_counted() {
        let events = script(
            "0 create T1 Q1 W1
             30 reservation.created T1 Q1 W1
             31 task.canceled T1",
        );
        check(&events, (0, 30), &[], expect!["workspace, Q1, W1: tasks entered=1; reservations created=1"]);
    }

    #[test]
    fn both_ends_of_the_window_are_included() {
        let events = script("10 create T1 Q1 W1; 20 task.canceled T1");
        check(
            &events,
            (10, 20),
            &[],
            expect!["workspace, Q1, W1: tasks entered=1 canceled=1; until canceled 10"],
        );
    }

    #[test]
    fn every_way_a_reservation_ends_is_counted() {
        let events = script(
            "0 create T1 Q1 W1
             1 reservation.created T1 Q1 W1
             2 reservation.rejected T1 Q1 W1
             3 reservation.created T1 Q1 W1
             23 reservation.timeout T1 Q1 W1
             24 reservation.created T1 Q1 W1
             24 reservation.created T1 Q1 W1
             26 reservation.accepted T1 Q1 W1
             26 reservation.rescinded T1 Q1 W1
             30 create T2 Q1 W1
             31 reservation.created T2 Q1 W1
             32 reservation.canceled T2 Q1 W1
             32 task.canceled T2",
        );
        check(
            &events,
            (0, 100),
            &[],
            expect![[r#"
                workspace, W1: tasks entered=2 canceled=1; reservations created=5 accepted=1 rejected=1 timed_out=1 canceled=1 rescinded=1; until accepted 26; until canceled 2
                Q1: tasks entered=2 canceled=1; reservations created=5 accepted=1 rejected=1 timed_out=1 canceled=1 rescinded=1; until accepted 26; until canceled 2; in queue 26"#]],
        );
    }

    #[test]
    fn a_cancellation_counts_for_the_queue_the_task_waited_in() {
        let events = script("0 create T1 Q1 W1; 0 create T2 Q2 W1; 45 task.canceled T1");
        check(
            &events,
            (0, 100),
            &[],
            expect![[r#"
                workspace, W1: tasks entered=2 canceled=1; until canceled 45
                Q1: tasks entered=1 canceled=1; until canceled 45
                Q2: tasks entered=1"#]],
        );
    }

    #[test]
    fn completed_and_transferred_tasks_count_in_the_queue_they_were_served_from() {
        let events = script(
            "0 create T1 Q1 W1; 0 create T2 Q1 W1; 0 create T3 Q2 W1
             5 reservation.accepted T1 Q1 W1; 6 reservation.accepted T2 Q1 W1; 7 reservation.accepted T3 Q2 W1
             30 task.transfer-initiated T3
             60 task.completed T1 =Sale; 61 task.completed T2 =Sale; 62 task.completed T3",
        );
        check(
            &events,
            (0, 100),
            &[],
            expect![[r#"
                workspace, W1: tasks entered=3 completed=3 transferred=1; reservations accepted=3; until accepted n=3 avg=6 min=5 max=7 total=18; dispositions "Sale"=2
                Q1: tasks entered=2 completed=2; reservations accepted=2; until accepted n=2 avg=6 min=5 max=6 total=11; in queue n=2 avg=6 min=5 max=6 total=11; dispositions "Sale"=2
                Q2: tasks entered=1 completed=1 transferred=1; reservations accepted=1; until accepted 7; in queue 7"#]],
        );
    }

    #[test]
    fn a_move_counts_for_the_queue_left_and_the_wait_in_queue_restarts() {
        let events = script(
            "0 create T1 Q1 W1
             10 task-queue.timeout T1 Q1
             10 task-queue.moved T1 Q1
             10 task-queue.entered T1 Q2 W1
             14 reservation.created T1 Q2 W1
             15 reservation.accepted T1 Q2 W1",
        );
        check(
            &events,
            (0, 100),
            &[],
            expect![[r#"
                workspace, W1: tasks entered=1 moved=1; reservations created=1 accepted=1; until accepted 15
                Q1: tasks entered=1 moved=1
                Q2: tasks entered=1; reservations created=1 accepted=1; until accepted 15; in queue 5"#]],
        );
    }

    #[test]
    fn re_entering_the_same_queue_is_not_a_new_entry() {
        // Re-routed after an attribute update or an unanswered call, to the queue it was in.
        let events = script(
            "0 create T1 Q1 W1
             5 task-queue.entered T1 Q1 W1
             8 reservation.accepted T1 Q1 W1",
        );
        check(
            &events,
            (0, 100),
            &[],
            expect![[r#"
                workspace, W1: tasks entered=1; reservations accepted=1; until accepted 8
                Q1: tasks entered=1; reservations accepted=1; until accepted 8; in queue 8"#]],
        );
    }

    #[test]
    fn a_task_timed_out_of_its_workflow_is_canceled_by_the_workflow_not_the_queue() {
        let events = script(
            "0 create T1 Q1 W1
             30 task-queue.timeout T1 Q1
             30 workflow.timeout T1 W1
             30 task.canceled T1
             40 create T2 Q1 W1
             40 workflow.skipped T2 W1
             40 task.canceled T2",
        );
        check(
            &events,
            (0, 100),
            &[],
            expect![[r#"
                workspace, W1: tasks entered=2 canceled=2 timed_out_in_workflow=2; until canceled n=2 avg=15 min=0 max=30 total=30
                Q1: tasks entered=2"#]],
        );
    }

    #[test]
    fn a_task_created_past_every_step_times_out_at_once() {
        // The engine's order: workflow.entered, workflow.timeout, task.created, task.canceled.
        let events = script(
            "0 workflow.entered T1 W1
             0 workflow.timeout T1 W1
             0 task.created T1 W1
             0 task.canceled T1",
        );
        check(
            &events,
            (0, 100),
            &[],
            expect!["workspace, W1: tasks entered=1 canceled=1 timed_out_in_workflow=1; until canceled 0"],
        );
    }

    #[test]
    fn a_deleted_task_counts_for_its_queue_and_workflow() {
        let events = script("0 create T1 Q1 W1; 5 task.canceled T1; 9 task.deleted T1");
        check(
            &events,
            (0, 100),
            &[],
            expect!["workspace, Q1, W1: tasks entered=1 canceled=1 deleted=1; until canceled 5"],
        );
    }

    #[test]
    fn a_task_older_than_the_history_is_counted_without_waits() {
        // Only its reservation is known: that is where its completion counts.
        let events = script("50 reservation.accepted T1 Q1 W1; 80 task.completed T1");
        check(
            &events,
            (0, 100),
            &[],
            expect!["workspace, Q1, W1: tasks completed=1; reservations accepted=1"],
        );
    }

    #[test]
    fn wait_durations_are_whole_seconds_and_the_average_is_rounded() {
        let events = script(
            "0 create T1 Q1 W1
             0 create T2 Q1 W1
             0 create T3 Q1 W1
             2.9 reservation.accepted T1 Q1 W1
             3 reservation.accepted T2 Q1 W1
             6 reservation.accepted T3 Q1 W1",
        );
        check(
            &events,
            (0, 100),
            &[],
            expect![[r#"
                workspace, W1: tasks entered=3; reservations accepted=3; until accepted n=3 avg=4 min=2 max=6 total=11
                Q1: tasks entered=3; reservations accepted=3; until accepted n=3 avg=4 min=2 max=6 total=11; in queue n=3 avg=4 min=2 max=6 total=11"#]],
        );
    }

    #[test]
    fn split_by_wait_time_counts_below_and_at_or_above_each_threshold() {
        let events = script(
            "0 create T1 Q1 W1
             0 create T2 Q1 W1
             0 create T3 Q1 W1
             0 create T4 Q1 W1
             4.5 reservation.accepted T1 Q1 W1
             5 reservation.accepted T2 Q1 W1
             9 task.canceled T3
             12 task.canceled T4",
        );
        check(
            &events,
            (0, 100),
            &[10, 5, 10],
            expect![[r#"
                workspace, W1: tasks entered=4 canceled=2; reservations accepted=2; until accepted n=2 avg=5 min=4 max=5 total=9; until canceled n=2 avg=11 min=9 max=12 total=21; 5s: below canceled=0 accepted=1, above canceled=2 accepted=1; 10s: below canceled=1 accepted=2, above canceled=1 accepted=0
                Q1: tasks entered=4 canceled=2; reservations accepted=2; until accepted n=2 avg=5 min=4 max=5 total=9; until canceled n=2 avg=11 min=9 max=12 total=21; in queue n=2 avg=5 min=4 max=5 total=9; 5s: below canceled=0 accepted=1, above canceled=2 accepted=1; 10s: below canceled=1 accepted=2, above canceled=1 accepted=0"#]],
        );
    }

    #[test]
    fn each_workflow_counts_its_own_tasks() {
        let events = script(
            "0 create T1 Q1 W1
             0 create T2 Q1 W2
             7 reservation.accepted T2 Q1 W2
             9 task.completed T2",
        );
        check(
            &events,
            (0, 100),
            &[],
            expect![[r#"
                workspace: tasks entered=2 completed=1; reservations accepted=1; until accepted 7
                Q1: tasks entered=2 completed=1; reservations accepted=1; until accepted 7; in queue 7
                W1: tasks entered=1
                W2: tasks entered=1 completed=1; reservations accepted=1; until accepted 7"#]],
        );
    }

    /// The engine's own events, with the fields it gives each, say what the scripts say.
    #[test]
    fn the_engine_s_events_feed_the_statistics() {
        let mut engine = Engine::new("Test", 7, 0);
        let new_queue = NewTaskQueue {
            friendly_name: "Sales".to_owned(),
            target_workers: "1==1".to_owned(),
            task_order: TaskOrder::Fifo,
            max_reserved_workers: 1,
            wrap_up: WrapUpRules::default(),
        };
        let queue = engine.create_task_queue(new_queue, 0).unwrap();
        let configuration =
            format!(r#"{{"task_routing": {{"filters": [], "default_filter": {{"queue": "{queue}"}}}}}}"#);
        let new_workflow =
            NewWorkflow { friendly_name: "All".to_owned(), configuration, task_reservation_timeout: 30 };
        engine.create_workflow(new_workflow, 0).unwrap();
        let available = engine.activity_by_name("Available").unwrap().sid;
        let new_worker =
            NewWorker { friendly_name: "ann".to_owned(), attributes: json!({}), activity: Some(available) };
        engine.create_worker(new_worker, 0).unwrap();
        let new_task = || NewTask {
            attributes: json!({}),
            priority: None,
            timeout: None,
            workflow: None,
            channel: None,
        };
        let first = engine.create_task(new_task(), 1000).unwrap();
        let second = engine.create_task(new_task(), 2000).unwrap();
        let offered = engine.task(first).unwrap().reservations[0];
        engine.accept(offered, 4000).unwrap();
        engine.cancel(second, "hung up", 20_000).unwrap();
        engine.complete(first, "done", 60_000).unwrap();
        let facts: Vec<EventFacts> = engine.take_events().iter().filter_map(EventFacts::from_event).collect();
        check(
            &facts,
            (0, 100),
            &[],
            expect![[r#"
                workspace, W12: tasks entered=2 canceled=1 completed=1; reservations created=1 accepted=1; until accepted 3; until canceled 18
                Q11: tasks entered=2 canceled=1 completed=1; reservations created=1 accepted=1; until accepted 3; until canceled 18; in queue 3"#]],
        );
    }
}
