//! Events with TaskRouter's names (reference §6.2), numbered in the order they happened.
//!
//! An event names the resources involved by SID; the shell looks up names and attributes when
//! it renders an event for a callback or a log, so that routing does not copy attributes.

use super::Millis;
use super::sid::Sid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// 1, 2, 3... in the order the engine produced them; never reused.
    pub sequence: u64,
    pub timestamp: Millis,
    pub event_type: EventType,
    /// The resource the event is about.
    pub resource: Sid,
    pub task: Option<Sid>,
    pub worker: Option<Sid>,
    pub reservation: Option<Sid>,
    pub queue: Option<Sid>,
    pub workflow: Option<Sid>,
    pub activity: Option<Sid>,
    /// Cancel or completion reason, for task events.
    pub reason: Option<String>,
    /// The task's channel, on `task.created` (so that statistics by channel outlive the task).
    pub channel: Option<Sid>,
    /// On `task.completed`, the task's disposition (`conversations.outcome`), for the statistics.
    pub outcome: Option<String>,
}

/// The event types the engine produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ActivityCreated,
    ActivityDeleted,
    WorkerCreated,
    WorkerDeleted,
    WorkerActivityUpdate,
    WorkerAttributesUpdate,
    WorkerCapacityUpdate,
    WorkerChannelAvailabilityUpdate,
    TaskQueueCreated,
    TaskQueueDeleted,
    TaskQueueExpressionUpdated,
    TaskQueueEntered,
    TaskQueueTimeout,
    TaskQueueMoved,
    WorkflowCreated,
    WorkflowDeleted,
    WorkflowUpdated,
    WorkflowEntered,
    WorkflowTargetMatched,
    WorkflowTimeout,
    WorkflowSkipped,
    TaskCreated,
    TaskUpdated,
    TaskCanceled,
    TaskWrapup,
    TaskCompleted,
    TaskDeleted,
    /// On the task transferred, when its transfer task is made.
    TaskTransferInitiated,
    /// A cold transfer's agent did not take it: it waits in the queue now.
    TaskTransferAttemptFailed,
    /// The transfer task ended untaken (a warm transfer's agent did not take it, or its TTL).
    TaskTransferFailed,
    TaskTransferCanceled,
    /// Someone accepted the transfer task.
    TaskTransferCompleted,
    ReservationCreated,
    ReservationAccepted,
    ReservationRejected,
    ReservationTimeout,
    ReservationCanceled,
    ReservationRescinded,
    ReservationWrapup,
    ReservationCompleted,
    TaskChannelCreated,
    TaskChannelUpdated,
    TaskChannelDeleted,
    /// The workspace's settings changed (its name, default or timeout activity, callback...).
    WorkspaceUpdated,
}

impl EventType {
    /// Every event type, for the names a workspace's `EventsFilter` may list.
    pub const ALL: [EventType; 44] = [
        EventType::ActivityCreated,
        EventType::ActivityDeleted,
        EventType::WorkerCreated,
        EventType::WorkerDeleted,
        EventType::WorkerActivityUpdate,
        EventType::WorkerAttributesUpdate,
        EventType::WorkerCapacityUpdate,
        EventType::WorkerChannelAvailabilityUpdate,
        EventType::TaskQueueCreated,
        EventType::TaskQueueDeleted,
        EventType::TaskQueueExpressionUpdated,
        EventType::TaskQueueEntered,
        EventType::TaskQueueTimeout,
        EventType::TaskQueueMoved,
        EventType::WorkflowCreated,
        EventType::WorkflowDeleted,
        EventType::WorkflowUpdated,
        EventType::WorkflowEntered,
        EventType::WorkflowTargetMatched,
        EventType::WorkflowTimeout,
        EventType::WorkflowSkipped,
        EventType::TaskCreated,
        EventType::TaskUpdated,
        EventType::TaskCanceled,
        EventType::TaskWrapup,
        EventType::TaskCompleted,
        EventType::TaskDeleted,
        EventType::TaskTransferInitiated,
        EventType::TaskTransferAttemptFailed,
        EventType::TaskTransferFailed,
        EventType::TaskTransferCanceled,
        EventType::TaskTransferCompleted,
        EventType::ReservationCreated,
        EventType::ReservationAccepted,
        EventType::ReservationRejected,
        EventType::ReservationTimeout,
        EventType::ReservationCanceled,
        EventType::ReservationRescinded,
        EventType::ReservationWrapup,
        EventType::ReservationCompleted,
        EventType::TaskChannelCreated,
        EventType::TaskChannelUpdated,
        EventType::TaskChannelDeleted,
        EventType::WorkspaceUpdated,
    ];

    /// The event type TaskRouter names `name` (`task.created`).
    pub fn named(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// TaskRouter's name for the event, as sent in `EventType`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ActivityCreated => "activity.created",
            EventType::ActivityDeleted => "activity.deleted",
            EventType::WorkerCreated => "worker.created",
            EventType::WorkerDeleted => "worker.deleted",
            EventType::WorkerActivityUpdate => "worker.activity.update",
            EventType::WorkerAttributesUpdate => "worker.attributes.update",
            EventType::WorkerCapacityUpdate => "worker.capacity.update",
            EventType::WorkerChannelAvailabilityUpdate => "worker.channel.availability.update",
            EventType::TaskQueueCreated => "task-queue.created",
            EventType::TaskQueueDeleted => "task-queue.deleted",
            EventType::TaskQueueExpressionUpdated => "task-queue.expression.updated",
            EventType::TaskQueueEntered => "task-queue.entered",
            EventType::TaskQueueTimeout => "task-queue.timeout",
            EventType::TaskQueueMoved => "task-queue.moved",
            EventType::WorkflowCreated => "workflow.created",
            EventType::WorkflowDeleted => "workflow.deleted",
            EventType::WorkflowUpdated => "workflow.updated",
            EventType::WorkflowEntered => "workflow.entered",
            EventType::WorkflowTargetMatched => "workflow.target-matched",
            EventType::WorkflowTimeout => "workflow.timeout",
            EventType::WorkflowSkipped => "workflow.skipped",
            EventType::TaskCreated => "task.created",
            EventType::TaskUpdated => "task.updated",
            EventType::TaskCanceled => "task.canceled",
            EventType::TaskWrapup => "task.wrapup",
            EventType::TaskCompleted => "task.completed",
            EventType::TaskDeleted => "task.deleted",
            EventType::TaskTransferInitiated => "task.transfer-initiated",
            EventType::TaskTransferAttemptFailed => "task.transfer-attempt-failed",
            EventType::TaskTransferFailed => "task.transfer-failed",
            EventType::TaskTransferCanceled => "task.transfer-canceled",
            EventType::TaskTransferCompleted => "task.transfer-completed",
            EventType::ReservationCreated => "reservation.created",
            EventType::ReservationAccepted => "reservation.accepted",
            EventType::ReservationRejected => "reservation.rejected",
            EventType::ReservationTimeout => "reservation.timeout",
            EventType::ReservationCanceled => "reservation.canceled",
            EventType::ReservationRescinded => "reservation.rescinded",
            EventType::ReservationWrapup => "reservation.wrapup",
            EventType::ReservationCompleted => "reservation.completed",
            EventType::TaskChannelCreated => "task-channel.created",
            EventType::TaskChannelUpdated => "task-channel.updated",
            EventType::TaskChannelDeleted => "task-channel.deleted",
            EventType::WorkspaceUpdated => "workspace.updated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EventType;

    #[test]
    fn every_event_type_is_listed_once_and_found_by_its_name() {
        for kind in EventType::ALL {
            assert_eq!(EventType::named(kind.as_str()), Some(kind));
        }
        let mut names: Vec<&str> = EventType::ALL.iter().map(|kind| kind.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert_eq!(EventType::named("task.create"), None);
    }
}
