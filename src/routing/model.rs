//! The routing model: activities, task channels, workers, task queues, workflows, tasks and
//! reservations, as the engine keeps them. Fields that only the engine may change are
//! `pub(super)`; readers get accessors.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::Millis;
use super::sid::Sid;
use super::workflow::{Step, WorkflowConfig};
use crate::expr::Expression;

/// Limits from reference §7.1, so that a configuration valid here is valid on Twilio.
pub const MAX_ATTRIBUTES_BYTES: usize = 4096;
pub const MAX_FRIENDLY_NAME_CHARS: usize = 64;
pub const MAX_PRIORITY: i64 = i32::MAX as i64;
pub const MAX_RESERVED_WORKERS: u32 = 50;
pub const MAX_RESERVATION_TIMEOUT: u32 = 86_400;
pub const DEFAULT_TASK_TTL: u32 = 86_400;
pub const MAX_TASK_TTL: u32 = 1_209_600;
pub const MAX_ASSIGNMENTS: u32 = 1_000;
/// A worker's capacity on one channel, at most (Switchboard's limit; TaskRouter states none).
pub const MAX_CHANNEL_CAPACITY: u32 = 50;
/// Task channels per workspace: a worker's ready channels are one 64-bit set.
pub const MAX_TASK_CHANNELS: usize = 64;
/// Completed and canceled tasks stay readable this long, then are purged (as on Twilio).
pub const PURGE_AFTER: Millis = 5 * 60 * 1000;
/// Limits of a queue's wrap-up rules: a day, and a list an agent can read at a glance.
pub const MAX_WRAP_UP_SECONDS: u32 = 86_400;
pub const MAX_DISPOSITIONS: usize = 50;
pub const MAX_DISPOSITION_CHARS: usize = 64;
/// Why a task completed by itself at its queue's wrap-up limit (the task's `reason`).
pub const WRAP_UP_LIMIT_REASON: &str = "wrap-up time limit reached";

#[derive(Debug, Clone)]
pub struct Activity {
    pub sid: Sid,
    /// The SID as text, for expressions (`worker.activity_sid`) without a per-evaluation format.
    pub(super) sid_text: String,
    pub friendly_name: String,
    pub available: bool,
}

/// A task channel (`voice`, `sms`...) and the capacity new workers get on it.
#[derive(Debug, Clone)]
pub struct TaskChannel {
    pub sid: Sid,
    /// What tasks name it by (`TaskChannel=voice`); never changes.
    pub unique_name: String,
    pub friendly_name: String,
    /// The capacity a worker gets on it when either is created (TaskRouter's is 1; Switchboard's
    /// built-in `sms` and `chat` channels give 3).
    pub default_capacity: u32,
    /// TaskRouter's flag to prefer the workers idle longest. Switchboard always does (the
    /// longest-idle order), so it is kept and shown, and changes nothing.
    pub channel_optimized_routing: bool,
    pub created_at: Millis,
    /// The last change (`date_updated`).
    pub updated_at: Millis,
}

/// A worker's or a task's attributes: shared and never changed in place (an update replaces
/// them whole), so that exporting a snapshot under the engine lock copies a pointer, not the
/// document: at 100,000 tasks that copy was most of the export's time.
pub type Attributes = Arc<Value>;

#[derive(Debug, Clone)]
pub struct Worker {
    pub sid: Sid,
    /// The SID as text, for expressions (`worker.sid`) without a per-evaluation format.
    pub(super) sid_text: String,
    pub friendly_name: String,
    pub attributes: Attributes,
    pub(super) activity: usize,
    /// One per task channel, in the engine's channel order.
    pub(super) channels: Vec<WorkerChannel>,
    /// When the worker last accepted a reservation: the "longest idle" key.
    pub(super) last_assignment: Option<Millis>,
    /// When the worker last moved to an available activity; the idle key until a first accept.
    pub(super) available_since: Millis,
    pub(super) activity_changed_at: Millis,
    /// Indexes of the queues whose target expression the worker matches.
    pub(super) queues: Vec<usize>,
    /// The key under which the worker sits in its queues' ready sets...
    pub(super) ready_key: Millis,
    /// ...and the channels whose ready sets it is in.
    pub(super) ready_channels: ChannelSet,
    pub(super) dirty: bool,
    pub created_at: Millis,
    /// The last change (`date_updated`).
    pub updated_at: Millis,
}

/// A small set of channel indexes (a workspace has at most 64 task channels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelSet(u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerChannel {
    pub capacity: u32,
    /// Pending reservations plus assigned and wrapping tasks on this channel.
    pub busy: u32,
    pub available: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskOrder {
    Fifo,
    Lifo,
}

#[derive(Debug, Clone)]
pub struct TaskQueue {
    pub sid: Sid,
    pub friendly_name: String,
    pub target_workers: String,
    pub(super) target_expression: Expression,
    pub task_order: TaskOrder,
    pub max_reserved_workers: u32,
    pub wrap_up: WrapUpRules,
    /// Every worker matching `target_workers`, whatever its activity.
    pub(super) members: BTreeSet<usize>,
    /// Per channel: members that could take a task on it now (available activity, channel
    /// available, spare capacity), by idle key then index: the longest idle come first.
    pub(super) ready: Vec<BTreeSet<(Millis, usize)>>,
    /// Pending tasks in this queue, in the order they are served.
    pub(super) waiting: BTreeSet<WaitKey>,
    /// Every task in this queue not yet completed or canceled (pending, reserved, assigned,
    /// wrapping): what the queue's real-time statistics count, without a scan of every task the
    /// engine keeps (ended ones stay 5 minutes, until purged).
    pub(super) live: BTreeSet<Sid>,
    pub created_at: Millis,
    /// The last change (`date_updated`).
    pub updated_at: Millis,
}

/// The after-call work a queue's tasks get (a Switchboard setting; TaskRouter has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrapUpRules {
    /// Seconds a task may stay wrapping before it completes by itself and frees the agent
    /// (Asterisk's `wrapuptime`); 0: until the agent completes it.
    pub limit_seconds: u32,
    /// The codes an agent picks one of to complete a task, kept in its attributes as
    /// `conversations.outcome` (what Flex Insights reads); none: the agent is not asked.
    pub dispositions: Vec<String>,
}

/// Orders a queue's waiting tasks: FIFO by priority (high first) then age; LIFO newest first,
/// priority ignored (reference §4.2). The task sequence breaks ties deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WaitKey {
    pub(super) rank: (i64, i64, i64),
    pub(super) task: Sid,
}

#[derive(Debug, Clone)]
pub struct Workflow {
    pub sid: Sid,
    pub friendly_name: String,
    pub configuration: String,
    pub(super) config: WorkflowConfig,
    pub task_reservation_timeout: u32,
    pub created_at: Millis,
    /// The last change (`date_updated`).
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    Pending,
    Reserved,
    Assigned,
    Wrapping,
    Completed,
    Canceled,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub sid: Sid,
    pub(super) seq: u64,
    pub attributes: Attributes,
    pub priority: i64,
    pub(super) channel: usize,
    pub(super) workflow: usize,
    pub status: TaskStatus,
    pub reason: Option<String>,
    pub created_at: Millis,
    /// The last change (`date_updated`).
    pub updated_at: Millis,
    pub virtual_start: Millis,
    pub ttl: u32,
    pub(super) step: Step,
    pub(super) queue: Option<usize>,
    pub queue_entered_at: Option<Millis>,
    pub(super) wait_key: Option<WaitKey>,
    /// Every reservation made for the task, oldest first.
    pub reservations: Vec<Sid>,
    pub(super) rejected_by: Vec<usize>,
    pub(super) assignment_count: u32,
    pub(super) step_timer: Option<TimerKey>,
    pub(super) ttl_timer: Option<TimerKey>,
    /// Set on entering a step: `skip_if` is evaluated after the first assignment attempt.
    pub(super) skip_check_pending: bool,
    /// The step timed out while a reservation was pending; the move happens when it ends.
    pub(super) step_expired: bool,
    pub(super) dirty: bool,
    pub(super) assigned_worker: Option<usize>,
    /// Set on a task made by a transfer: it waits in the queue the transfer named, outside its
    /// workflow's filters.
    pub transfer: Option<TransferOf>,
}

/// Cold: the transferring agent leaves at once. Warm: they talk to whoever takes the transfer
/// first, and may cancel it until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferMode {
    Cold,
    Warm,
}

/// Where a transfer goes: anyone of a queue, or one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferTarget {
    Queue(Sid),
    Worker(Sid),
}

/// What a task made by a transfer keeps of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferOf {
    /// The task transferred (its call's or conversation's earlier task).
    pub from: Sid,
    pub mode: TransferMode,
    /// The one worker it is offered to, while that offer lasts; none for a transfer to a queue
    /// (or a cold one to a worker who did not take it: it waits in the queue then).
    pub worker: Option<Sid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    Pending,
    Accepted,
    Rejected,
    Timeout,
    Canceled,
    Rescinded,
    Wrapping,
    Completed,
}

#[derive(Debug, Clone)]
pub struct Reservation {
    pub sid: Sid,
    pub task: Sid,
    pub(super) worker: usize,
    pub(super) queue: usize,
    pub status: ReservationStatus,
    pub created_at: Millis,
    /// The last change (`date_updated`).
    pub updated_at: Millis,
    pub timeout_at: Millis,
    pub(super) timer: Option<TimerKey>,
}

/// A scheduled deadline: when, and a sequence number that keeps equal times in order.
pub type TimerKey = (Millis, u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    ReservationTimeout(Sid),
    StepTimeout(Sid),
    TaskTtl(Sid),
    Purge(Sid),
    /// The queue's wrap-up limit, counted from when the task began wrapping.
    WrapUpLimit(Sid),
}

impl Timer {
    /// The task a step, TTL or purge timer is about.
    pub(super) fn task(self) -> Option<Sid> {
        match self {
            Timer::StepTimeout(task)
            | Timer::TaskTtl(task)
            | Timer::Purge(task)
            | Timer::WrapUpLimit(task) => Some(task),
            Timer::ReservationTimeout(_) => None,
        }
    }
}

impl Activity {
    pub(super) fn new(sid: Sid, friendly_name: &str, available: bool) -> Activity {
        Activity { sid, sid_text: sid.to_string(), friendly_name: friendly_name.to_owned(), available }
    }
}

impl Worker {
    /// When the worker last changed activity (`date_status_changed`).
    pub fn activity_changed_at(&self) -> Millis {
        self.activity_changed_at
    }
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Reserved => "reserved",
            TaskStatus::Assigned => "assigned",
            TaskStatus::Wrapping => "wrapping",
            TaskStatus::Completed => "completed",
            TaskStatus::Canceled => "canceled",
        }
    }

    pub fn is_waiting(self) -> bool {
        matches!(self, TaskStatus::Pending | TaskStatus::Reserved)
    }

    /// Completed or canceled: nothing more happens to the task.
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Canceled)
    }
}

impl ReservationStatus {
    /// Ended: neither an open offer nor a task in hand.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ReservationStatus::Pending | ReservationStatus::Accepted | ReservationStatus::Wrapping
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Pending => "pending",
            ReservationStatus::Accepted => "accepted",
            ReservationStatus::Rejected => "rejected",
            ReservationStatus::Timeout => "timeout",
            ReservationStatus::Canceled => "canceled",
            ReservationStatus::Rescinded => "rescinded",
            ReservationStatus::Wrapping => "wrapping",
            ReservationStatus::Completed => "completed",
        }
    }
}

impl TransferMode {
    /// As TaskRouter's transfer objects spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferMode::Cold => "COLD",
            TransferMode::Warm => "WARM",
        }
    }
}

impl TaskOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskOrder::Fifo => "FIFO",
            TaskOrder::Lifo => "LIFO",
        }
    }
}

impl ChannelSet {
    pub(super) fn insert(&mut self, channel: usize) {
        self.0 |= 1 << channel;
    }

    pub(super) fn difference(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 & !other.0)
    }

    pub(super) fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            let channel = bits.trailing_zeros();
            (channel < 64).then(|| {
                bits &= bits - 1;
                channel as usize
            })
        })
    }
}

impl WorkerChannel {
    pub(super) fn has_room(&self) -> bool {
        self.available && self.busy < self.capacity
    }
}
