//! The routing engine: TaskRouter's model and semantics as a pure state machine. No I/O and no
//! clock: every command takes `now` (milliseconds since the Unix epoch) and returns its outcome;
//! what happened is read as [`Event`]s; deadlines are data ([`Engine::next_deadline`],
//! [`Engine::advance`]).
//!
//! - `sid.rs`: TaskRouter-shaped SIDs, minted deterministically.
//! - `model.rs`: activities, channels, workers, queues, workflows, tasks, reservations, limits.
//! - `workflow.rs`: workflow configuration parsing and the pure walk (filters, targets,
//!   cumulative deadlines, default filter).
//! - `engine.rs`: commands, the assignment algorithm from both sides, timers.
//! - `event.rs`: events with TaskRouter's names.
//! - `command.rs`: every change as a value, for the durable log and its replay.
//! - `snapshot.rs`: the whole state as plain data, and back (exact round trip).
//! - `skill.rs`: the skills catalogue and Flex's `routing.skills` / `routing.levels` layout.
//! - `stats.rs`: real-time statistics for queues, workflows and the workspace.
//! - `cumulative.rs`: cumulative statistics over a window, computed from events.
//! - `counters.rs`: the same statistics kept per minute as events happen, summed per question.
//! - `removal.rs`: deleting activities, workers, queues, workflows, task channels (by
//!   rebuilding from an edited snapshot) and tasks.
//! - `channels.rs`: task channels (create, change) and the workspace's settings.
//! - `explain.rs`: why a worker is or is not offered a task.

mod command;
mod counters;
mod cumulative;
mod engine;
mod event;
mod explain;
mod model;
mod sid;
mod skill;
mod stats;
mod waiting;
mod worker_stats;
mod workflow;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use workflow::fuzz as workflow_fuzz;

#[cfg(test)]
mod tests;

pub use command::Command;
pub use counters::{StatisticsCounters, TaskSeed, Totals, TotalsGroup};
pub use cumulative::{
    CountedEvent, CumulativeStatistics, EventFacts, ReservationEvent, Scope, SplitCounts, WaitDurations,
    WaitSplit, Window, cumulative_statistics,
};
pub use engine::snapshot::{
    ActivityState, ChannelState, QueueState, ReservationState, Snapshot, TaskState, WorkerState,
    WorkflowState,
};
pub use engine::{
    Engine, NewAssigned, NewTask, NewTaskChannel, NewTaskQueue, NewTransfer, NewWorker, NewWorkflow,
    TaskChanges, TaskChannelChanges, TaskQueueChanges, TaskStatusChange, WorkflowChanges, WorkspaceChanges,
    WorkspaceSettings, validate_attributes,
};
pub use event::{Event, EventType};
pub use explain::{Condition, Explanation};
pub use model::{
    Activity, MAX_CHANNEL_CAPACITY, MAX_PRIORITY, MAX_TASK_TTL, MAX_WRAP_UP_SECONDS, Reservation,
    ReservationStatus, Task, TaskChannel, TaskOrder, TaskQueue, TaskStatus, Timer, TimerKey, TransferMode,
    TransferOf, TransferTarget, WRAP_UP_LIMIT_REASON, Worker, WorkerChannel, Workflow, WrapUpRules,
};
pub use sid::{Sid, SidError, SidKind, SidMap};
pub use skill::{Skill, assign_skills};
pub use stats::{ActivityCount, QueueCensus, QueueStatistics, TaskStatistics, WorkspaceStatistics};
pub use waiting::{WaitingAt, WaitingHistory};
pub use worker_stats::{ReservationCounts, StayDurations, WorkerCumulative, WorkerHistory};
pub use workflow::{Position, Step};

/// Milliseconds since the Unix epoch: the engine's only notion of time, always passed in.
pub type Millis = i64;

/// Why a command was refused. A refused command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// No resource has this SID.
    #[error("{kind} {sid} does not exist", kind = sid.kind())]
    NotFound { sid: Sid },
    /// A field's value is out of range or malformed.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// A queue's target expression does not compile.
    #[error("{field}: {message}")]
    InvalidExpression { field: &'static str, message: String },
    /// A workflow configuration mistake, located by filter and target.
    #[error("workflow configuration, {location}: {message}")]
    InvalidWorkflow { location: String, message: String },
    /// The command does not fit the resource's state (completing a pending task...).
    #[error("{message}")]
    Conflict { message: String },
    /// Accepting or rejecting a reservation that is no longer pending (rescinded, timed out...).
    #[error("reservation {sid} is {status}, no longer pending")]
    ReservationNotPending { sid: Sid, status: &'static str },
    /// Deleting a resource that something still uses (a task channel with open tasks on it).
    #[error("{message}")]
    InUse { message: String },
}

impl RoutingError {
    pub(crate) fn not_found(sid: Sid) -> RoutingError {
        RoutingError::NotFound { sid }
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> RoutingError {
        RoutingError::Invalid { field, message: message.into() }
    }

    pub(crate) fn conflict(message: impl Into<String>) -> RoutingError {
        RoutingError::Conflict { message: message.into() }
    }

    pub(crate) fn in_use(message: impl Into<String>) -> RoutingError {
        RoutingError::InUse { message: message.into() }
    }
}
