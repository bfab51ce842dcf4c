//! `explain(task, worker)`: why this worker is or is not being offered this task, naming the
//! first reason in the order the engine checks them, with the failing condition and the values
//! it saw. Answers the question every contact-center admin asks ("why is nobody getting this
//! call?") without reading logs.

use std::fmt;

use super::engine::Engine;
use super::model::{ReservationStatus, Task, TaskStatus, Worker};
use super::sid::Sid;
use super::workflow::{Position, Step, clock};
use super::{Millis, RoutingError};
use crate::expr::{Expression, Scope};

/// The first reason, in checking order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Explanation {
    /// The task is not waiting for a worker any more.
    TaskNotWaiting { status: &'static str },
    /// The worker has a pending reservation for the task right now.
    Offered { reservation: Sid },
    /// The worker is not a member of the queue the task waits in.
    NotInQueue { queue: String, failing: Condition },
    /// The worker's activity is not an available one.
    ActivityUnavailable { activity: String },
    /// The worker has switched this task's channel off.
    ChannelUnavailable { channel: String },
    /// The worker's capacity on the task's channel is used up (pending offers count).
    CapacityFull { channel: String, busy: u32, capacity: u32 },
    /// The worker rejected this task; it is not offered to them again.
    RejectedThisTask,
    /// The step routes to a known worker, and it is someone else.
    NotTheKnownWorker { reference: String },
    /// The step's target expression is false for this worker.
    TargetExpressionFalse { step: String, failing: Condition },
    /// Nothing stands in the way: the worker gets the task when it is their turn.
    Eligible { waiting_for: String },
    /// A transfer's question: this is the agent who transfers it.
    TransferringAgent,
}

/// The first false clause of an expression, with the values its attributes had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub clause: String,
    pub values: Vec<(String, String)>,
}

impl Engine {
    /// Why `worker` is or is not being offered `task` at `now`.
    pub fn explain(&self, task: Sid, worker: Sid, now: Millis) -> Result<Explanation, RoutingError> {
        let task_ref = self.task(task).ok_or(RoutingError::not_found(task))?;
        let worker_ref = self.worker(worker).ok_or(RoutingError::not_found(worker))?;
        if !task_ref.status.is_waiting() {
            return Ok(Explanation::TaskNotWaiting { status: task_ref.status.as_str() });
        }
        let offer =
            task_ref.reservations.iter().filter_map(|&sid| self.reservation(sid)).find(|reservation| {
                reservation.status == ReservationStatus::Pending
                    && self.reservation_worker(reservation).sid == worker
            });
        if let Some(offer) = offer {
            return Ok(Explanation::Offered { reservation: offer.sid });
        }
        let Some(queue) = self.task_queue(task_ref) else {
            return Ok(Explanation::TaskNotWaiting { status: task_ref.status.as_str() });
        };
        let facts = self.facts(worker_ref);
        let transferred_to = task_ref.transfer.and_then(|transfer| transfer.worker);
        if transferred_to.is_some_and(|to| to != worker) {
            return Ok(Explanation::NotTheKnownWorker { reference: "the transfer".to_owned() });
        }
        if transferred_to.is_none() && !self.queue_members(queue).contains(&worker) {
            let failing = first_false(&queue.target_expression, &Scope::worker(facts));
            return Ok(Explanation::NotInQueue { queue: queue.friendly_name.clone(), failing });
        }
        if let Some(unready) = self.unready(worker_ref, task_ref.channel) {
            return Ok(unready);
        }
        if task_ref.rejected_by.iter().any(|&idx| self.workers[idx].sid == worker) {
            return Ok(Explanation::RejectedThisTask);
        }
        let Step::At { position, .. } = task_ref.step else {
            return Ok(Explanation::TaskNotWaiting { status: task_ref.status.as_str() });
        };
        let workflow = &self.workflows[task_ref.workflow];
        if let Some(target) = workflow.config.target(position) {
            if let Some(known) = &target.known_worker
                && self.known_worker(task_ref, known) != self.worker_position(worker)
            {
                let (super::workflow::KnownWorker::Sid(path)
                | super::workflow::KnownWorker::FriendlyName(path)) = known;
                let reference = format!("task.{}", path.join("."));
                return Ok(Explanation::NotTheKnownWorker { reference });
            }
            if let Some(expression) = &target.expression {
                let scope = Scope::task_and_worker(&task_ref.attributes, facts).at(clock(now));
                if !expression.evaluate(&scope) {
                    let step = step_name(
                        workflow.config.filters.get(step_filter(position)).map(|f| f.name.as_str()),
                        position,
                    );
                    return Ok(Explanation::TargetExpressionFalse {
                        step,
                        failing: first_false(expression, &scope),
                    });
                }
            }
        }
        Ok(Explanation::Eligible { waiting_for: self.turn(task_ref) })
    }

    /// Whether `worker` could take `task`'s call or conversation if it were transferred to them
    /// now: `None` if so, else the first reason not.
    pub fn explain_transfer(&self, task: Sid, worker: Sid) -> Result<Option<Explanation>, RoutingError> {
        let task_ref = self.task(task).ok_or(RoutingError::not_found(task))?;
        let worker_ref = self.worker(worker).ok_or(RoutingError::not_found(worker))?;
        if task_ref.status != TaskStatus::Assigned {
            return Ok(Some(Explanation::TaskNotWaiting { status: task_ref.status.as_str() }));
        }
        if task_ref.assigned_worker.map(|idx| self.workers[idx].sid) == Some(worker) {
            return Ok(Some(Explanation::TransferringAgent));
        }
        Ok(self.unready(worker_ref, task_ref.channel))
    }

    /// Why `worker` could not take a task on `channel` now: their activity, the channel
    /// switched off, or no capacity left; `None` if they could.
    pub(super) fn unready(&self, worker: &Worker, channel: usize) -> Option<Explanation> {
        let activity = self.worker_activity(worker);
        if !activity.available {
            return Some(Explanation::ActivityUnavailable { activity: activity.friendly_name.clone() });
        }
        let name = &self.channels[channel].unique_name;
        let state = worker.channels[channel];
        if !state.available {
            return Some(Explanation::ChannelUnavailable { channel: name.clone() });
        }
        if state.busy >= state.capacity {
            let (busy, capacity) = (state.busy, state.capacity);
            return Some(Explanation::CapacityFull { channel: name.clone(), busy, capacity });
        }
        None
    }

    /// What an eligible worker is waiting for.
    fn turn(&self, task: &Task) -> String {
        if task.status == TaskStatus::Reserved {
            return "the task is offered to another worker; if that offer ends unaccepted, it is routed again".to_owned();
        }
        "the task is routed to the longest-idle eligible worker; it is this worker's turn once the workers ahead are busy"
            .to_owned()
    }
}

fn step_filter(position: Position) -> usize {
    match position {
        Position::Target { filter, .. } => filter,
        Position::Default | Position::Transfer { .. } => usize::MAX,
    }
}

fn step_name(filter_name: Option<&str>, position: Position) -> String {
    match position {
        Position::Target { filter, target } => match filter_name {
            Some(name) if !name.is_empty() => {
                format!("filter {} ({name:?}), step {}", filter + 1, target + 1)
            }
            _ => format!("filter {}, step {}", filter + 1, target + 1),
        },
        Position::Default => "the default filter".to_owned(),
        Position::Transfer { .. } => "a transfer".to_owned(),
    }
}

/// The first top-level clause that is false, with the values of its attributes.
fn first_false(expression: &Expression, scope: &Scope<'_>) -> Condition {
    let clauses = expression.clauses();
    let failing = clauses.iter().find(|clause| !clause.evaluate(scope)).unwrap_or(expression);
    Condition { clause: failing.to_string(), values: failing.path_values(scope) }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is false", self.clause)?;
        if !self.values.is_empty() {
            let values: Vec<String> =
                self.values.iter().map(|(path, value)| format!("{path} is {value}")).collect();
            write!(f, " ({})", values.join(", "))?;
        }
        Ok(())
    }
}

impl Explanation {
    /// The reason as a word for programs (`activity_unavailable`...).
    pub fn code(&self) -> &'static str {
        match self {
            Explanation::TaskNotWaiting { .. } => "task_not_waiting",
            Explanation::Offered { .. } => "offered",
            Explanation::NotInQueue { .. } => "not_in_queue",
            Explanation::ActivityUnavailable { .. } => "activity_unavailable",
            Explanation::ChannelUnavailable { .. } => "channel_unavailable",
            Explanation::CapacityFull { .. } => "capacity_full",
            Explanation::RejectedThisTask => "rejected_this_task",
            Explanation::NotTheKnownWorker { .. } => "not_the_known_worker",
            Explanation::TargetExpressionFalse { .. } => "target_expression_false",
            Explanation::Eligible { .. } => "eligible",
            Explanation::TransferringAgent => "transferring_agent",
        }
    }

    /// The failing condition, for the reasons that have one.
    pub fn condition(&self) -> Option<&Condition> {
        match self {
            Explanation::NotInQueue { failing, .. } | Explanation::TargetExpressionFalse { failing, .. } => {
                Some(failing)
            }
            _ => None,
        }
    }

    /// The reason alone, without saying what it stands in the way of.
    pub fn reason(&self) -> String {
        match self {
            Explanation::TaskNotWaiting { status } => format!("the task is {status}, not waiting"),
            Explanation::Offered { reservation } => format!("reservation {reservation} is pending"),
            Explanation::NotInQueue { queue, failing } => {
                format!("not in queue {queue:?}, whose target workers expression {failing}")
            }
            Explanation::ActivityUnavailable { activity } => {
                format!("activity {activity:?} is not an available activity")
            }
            Explanation::ChannelUnavailable { channel } => format!("the {channel} channel is switched off"),
            Explanation::CapacityFull { channel, busy, capacity } => {
                format!("{channel} capacity is full ({busy} of {capacity}, pending offers included)")
            }
            Explanation::RejectedThisTask => "the worker rejected this task".to_owned(),
            Explanation::NotTheKnownWorker { reference } => {
                format!("this step routes only to the worker named by {reference}")
            }
            Explanation::TargetExpressionFalse { step, failing } => {
                let level = failing.values.iter().any(|(path, _)| path.contains("levels."));
                let lead = if level { "level too low: " } else { "" };
                format!("{lead}the target expression of {step}: {failing}")
            }
            Explanation::Eligible { waiting_for } => waiting_for.clone(),
            Explanation::TransferringAgent => "this agent is the one transferring it".to_owned(),
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lead = match self {
            Explanation::Offered { .. } => "offered now",
            Explanation::Eligible { .. } => "eligible",
            _ => "not offered",
        };
        write!(f, "{lead}: {}", self.reason())
    }
}
