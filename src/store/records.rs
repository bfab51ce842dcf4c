//! The on-disk format: versioned records, converted by hand from and to the routing types
//! (which stay free of serde, so that the format changes only here, on purpose).
//!
//! Every record is a JSON document tagged with its version (`{"v1": {...}}`): readable in a
//! dump, and a later version can be added beside the old one and converted on read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ivr::CallState;
use crate::routing::{
    ActivityState, ChannelState, Command, Event, EventFacts, Millis, NewAssigned, NewTask, NewTaskChannel,
    NewTaskQueue, NewTransfer, NewWorker, NewWorkflow, Position, QueueState, ReservationState,
    ReservationStatus, Sid, Skill, Snapshot, Step, TaskChanges, TaskChannelChanges, TaskOrder,
    TaskQueueChanges, TaskState, TaskStatus, TaskStatusChange, Timer, TimerKey, TransferMode, TransferOf,
    TransferTarget, WorkerChannel, WorkerState, WorkflowChanges, WorkflowState, WorkspaceChanges,
    WorkspaceSettings, WrapUpRules,
};
use crate::voice::supervise::{SuperviseMode, Supervision};
use crate::voice::transfer::Transfer;
use crate::voice::{Bridge, Call, Stage};

/// A logged command with the time it ran at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandRecord {
    V1 { at: Millis, command: CommandV1 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandV1 {
    Advance,
    CreateActivity {
        friendly_name: String,
        available: bool,
    },
    ConfigureWorkspace {
        default_activity: Sid,
        timeout_activity: Sid,
        prioritize_queue_order: OrderV1,
    },
    /// A workspace update through the REST API; `None` leaves a setting as it is.
    UpdateWorkspace {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        friendly_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default_activity: Option<Sid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_activity: Option<Sid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_callback_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        events_filter: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prioritize_queue_order: Option<OrderV1>,
    },
    CreateTaskChannel {
        friendly_name: String,
        unique_name: String,
        channel_optimized_routing: bool,
        /// Absent for 1 (every channel made through the API); a built-in channel added to an
        /// older workspace has its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default_capacity: Option<u32>,
    },
    UpdateTaskChannel {
        channel: Sid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        friendly_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel_optimized_routing: Option<bool>,
    },
    CreateSkill {
        name: String,
        levels: Option<(u32, u32)>,
    },
    DeleteSkill {
        name: String,
    },
    CreateWorker {
        friendly_name: String,
        attributes: Value,
        activity: Option<Sid>,
    },
    UpdateWorkerAttributes {
        worker: Sid,
        attributes: Value,
    },
    SetWorkerActivity {
        worker: Sid,
        activity: Sid,
        reject_pending: bool,
    },
    SetWorkerChannel {
        worker: Sid,
        channel: String,
        capacity: Option<u32>,
        available: Option<bool>,
    },
    SetWorkerSkills {
        worker: Sid,
        skills: Vec<(String, Option<u32>)>,
        /// Absent in records written before switched-off skills: they were kept as they were.
        #[serde(default)]
        disabled: Option<Vec<(String, Option<u32>)>>,
    },
    CreateTaskQueue {
        friendly_name: String,
        target_workers: String,
        task_order: OrderV1,
        max_reserved_workers: u32,
        /// Absent in records written before wrap-up rules, and when there are none.
        #[serde(default, skip_serializing_if = "is_zero")]
        wrap_up_limit: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        dispositions: Vec<String>,
    },
    UpdateTaskQueue {
        queue: Sid,
        target_workers: Option<String>,
        max_reserved_workers: Option<u32>,
        #[serde(default)]
        friendly_name: Option<String>,
        #[serde(default)]
        task_order: Option<OrderV1>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wrap_up_limit: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dispositions: Option<Vec<String>>,
    },
    UpdateWorkflow {
        workflow: Sid,
        friendly_name: Option<String>,
        configuration: Option<String>,
        task_reservation_timeout: Option<u32>,
        re_evaluate_tasks: bool,
    },
    Delete {
        resource: Sid,
    },
    CreateWorkflow {
        friendly_name: String,
        configuration: String,
        task_reservation_timeout: u32,
    },
    CreateTask {
        attributes: Value,
        priority: Option<i64>,
        timeout: Option<u32>,
        workflow: Option<Sid>,
        channel: Option<String>,
    },
    /// Attributes, priority and status in one command (earlier logs hold `update_task_attributes`,
    /// `wrap_up`, `complete` and `cancel` for the same updates, and still replay).
    UpdateTask {
        task: Sid,
        attributes: Option<Value>,
        priority: Option<i64>,
        status: Option<TaskStatusChangeV1>,
    },
    UpdateTaskAttributes {
        task: Sid,
        attributes: Value,
    },
    Unanswered {
        reservation: Sid,
    },
    Accept {
        reservation: Sid,
    },
    Reject {
        reservation: Sid,
        activity: Option<Sid>,
    },
    WrapUp {
        task: Sid,
    },
    Complete {
        task: Sid,
        reason: String,
    },
    Dispose {
        task: Sid,
        outcome: String,
        reason: String,
    },
    Transfer {
        task: Sid,
        to: TransferTargetV1,
        mode: ModeV1,
        priority: Option<i64>,
    },
    CreateAssigned {
        worker: Sid,
        attributes: Value,
        channel: String,
    },
    Cancel {
        task: Sid,
        reason: String,
    },
}

/// The status a task update sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatusChangeV1 {
    Canceled { reason: String },
    Wrapping,
    Completed { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderV1 {
    Fifo,
    Lifo,
}

/// A call in progress, as stored: enough to answer its next webhook after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallRecord {
    V1(CallV1),
}

/// The first call format, converted from and to [`Call`] below: the call's stage is spread
/// over `task`, `bridged`, `voicemail`, `message_left` and `ended_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallV1 {
    pub call_sid: String,
    pub from: String,
    pub to: String,
    /// The IVR flow (file stem) the call walks.
    pub flow: String,
    pub menu: String,
    pub failures: u32,
    pub language: String,
    pub path: Vec<String>,
    /// The routing task, once the IVR routed the caller.
    pub task: Option<Sid>,
    /// When the caller was put in line, and when their last hold-loop request came (ms since
    /// the epoch; `last_seen` is kept current in memory only).
    pub started_at: Millis,
    pub last_seen: Millis,
    /// When the caller last heard their position announced.
    pub announced_at: Option<Millis>,
    /// The reservation whose worker the call was bridged to, while the Dial is in progress.
    pub bridged: Option<Sid>,
    /// The caller was offered to leave a voicemail: their hang-up does not cancel the task
    /// at once, since the recording may still be on its way.
    pub voicemail: bool,
    /// The message is stored with the task.
    #[serde(default)]
    pub message_left: bool,
    /// When the provider reported the call over, if it did before the recording arrived.
    #[serde(default)]
    pub ended_at: Option<Millis>,
    /// Bridged in a conference (`voice.bridge = "conference"`); absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference: Option<BridgeV1>,
    /// The task the conference is named after, once a transfer moved the call to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<Sid>,
    /// A callback's customer to be called again then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Millis>,
}

/// A call bridged in a conference ([`Bridge`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeV1 {
    pub reservation: Option<Sid>,
    /// Absent in records written before it was kept.
    #[serde(default)]
    pub caller_moved: bool,
    pub agent_call: Option<String>,
    pub conference: Option<String>,
    pub talking: bool,
    pub on_hold: bool,
    pub muted: bool,
    pub recording: Option<String>,
    /// A transfer under way; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<CallTransferV1>,
    /// Supervisors in the conference, by label; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supervisors: Vec<(String, SuperviseMode)>,
}

/// A transfer under way in a call's conference ([`Transfer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallTransferV1 {
    pub from_task: Sid,
    pub from_reservation: Sid,
    pub from_call: Option<String>,
    pub mode: ModeV1,
    pub outside_call: Option<String>,
    #[serde(default)]
    pub outside_joined: bool,
}

/// A record kept under a key of its own, beside the command log: a call, a conversation, an
/// outgoing message. Written with [`crate::store::Store::put`], in the next group.
pub trait Keyed: Serialize + for<'de> Deserialize<'de> {
    /// The key prefix of this kind of record.
    const PREFIX: &'static [u8];
    /// The rest of the key.
    fn id(&self) -> String;
}

impl Keyed for CallRecord {
    const PREFIX: &'static [u8] = b"v:";

    fn id(&self) -> String {
        let CallRecord::V1(call) = self;
        call.call_sid.clone()
    }
}

/// A text conversation between a customer and one of Switchboard's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationRecord {
    V1(ConversationV1),
    V2(ConversationV2),
}

/// The first conversation format: every message inline, so the record grew with each text and
/// was rewritten whole. Still read (as a [`ConversationV2`] with no sealed pages); the next
/// change writes it as V2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationV1 {
    /// The customer's number.
    pub customer: String,
    /// Switchboard's number they text.
    pub number: String,
    /// The IVR flow (file stem) and the customer's place in it, while they are choosing.
    pub flow: String,
    pub menu: Option<String>,
    pub failures: u32,
    pub language: String,
    pub path: Vec<String>,
    /// The routing task, once the IVR routed the conversation.
    pub task: Option<Sid>,
    /// Every message of the current conversation, oldest first.
    pub messages: Vec<MessageV1>,
    /// The customer texted STOP: nothing is sent to them until START.
    pub stopped: bool,
    /// The last inbound MessageSids and what they were answered, so a provider's retry is
    /// answered the same and handled once.
    pub answered: Vec<(String, String)>,
}

/// A conversation's head: its state and its newest messages. Older messages are sealed in
/// [`MessagePageRecord`]s, written once and never rewritten, so a text costs the head (bounded)
/// and, now and then, one page. The SMS module keeps conversations in memory in this shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationV2 {
    /// The customer's number.
    pub customer: String,
    /// Switchboard's number they text.
    pub number: String,
    /// The IVR flow (file stem) and the customer's place in it, while they are choosing.
    pub flow: String,
    pub menu: Option<String>,
    pub failures: u32,
    pub language: String,
    pub path: Vec<String>,
    /// The customer's IVR variables and task settings, as `ivr::Memory` encodes them (JSON);
    /// empty when there are none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub memory: String,
    /// The routing task, once the IVR routed the conversation.
    pub task: Option<Sid>,
    /// How many pages of older messages are sealed: pages `0..pages`, oldest first.
    pub pages: u32,
    /// The messages after the sealed pages (the open page), oldest first.
    pub messages: Vec<MessageV1>,
    /// The customer texted STOP: nothing is sent to them until START.
    pub stopped: bool,
    /// The last inbound MessageSids and what they were answered, so a provider's retry is
    /// answered the same and handled once.
    pub answered: Vec<(String, String)>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageV1 {
    pub at: Millis,
    /// `customer`, `agent` or `switchboard` (IVR prompts, confirmations).
    pub author: String,
    pub body: String,
    /// For outgoing messages sent through the outbox, its entry.
    pub outbox: Option<u64>,
    /// Pictures and other media sent with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaV1>,
}

/// A picture (or other media) sent with a text: where the provider keeps it, and its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaV1 {
    pub url: String,
    /// `image/jpeg`...; empty when the provider did not say.
    #[serde(default)]
    pub content_type: String,
}

impl ConversationV1 {
    /// The key of a conversation: the customer and the number they text.
    pub fn key(customer: &str, number: &str) -> String {
        format!("{customer}|{number}")
    }
}

impl ConversationRecord {
    /// The conversation in the current format.
    pub fn into_current(self) -> ConversationV2 {
        match self {
            ConversationRecord::V1(old) => ConversationV2 {
                customer: old.customer,
                number: old.number,
                flow: old.flow,
                menu: old.menu,
                failures: old.failures,
                language: old.language,
                path: old.path,
                memory: String::new(),
                task: old.task,
                pages: 0,
                messages: old.messages,
                stopped: old.stopped,
                answered: old.answered,
            },
            ConversationRecord::V2(conversation) => conversation,
        }
    }
}

impl Keyed for ConversationRecord {
    const PREFIX: &'static [u8] = b"k:";

    fn id(&self) -> String {
        let (customer, number) = match self {
            ConversationRecord::V1(c) => (&c.customer, &c.number),
            ConversationRecord::V2(c) => (&c.customer, &c.number),
        };
        ConversationV1::key(customer, number)
    }
}

/// A sealed page of a conversation's older messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessagePageRecord {
    V1(MessagePageV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePageV1 {
    pub customer: String,
    pub number: String,
    /// Its place among the conversation's pages, from 0.
    pub page: u32,
    /// Oldest first.
    pub messages: Vec<MessageV1>,
}

impl MessagePageV1 {
    /// The key of page `page` of the conversation of `customer` and `number`: the conversation's
    /// key and the page number, zero-padded so that a conversation's pages sort in order.
    pub fn key(customer: &str, number: &str, page: u32) -> String {
        format!("{}|{page:010}", ConversationV1::key(customer, number))
    }
}

impl Keyed for MessagePageRecord {
    const PREFIX: &'static [u8] = b"p:";

    fn id(&self) -> String {
        let MessagePageRecord::V1(page) = self;
        MessagePageV1::key(&page.customer, &page.number, page.page)
    }
}

/// An agent's sign-in secret, kept only as a keyed digest: the secret itself is shown once, to
/// the admin who issued it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentRecord {
    V1(AgentV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentV1 {
    pub worker: Sid,
    /// Hex HMAC-SHA1 of the secret, keyed by the worker's SID.
    pub secret_digest: String,
    pub issued_at: Millis,
}

impl AgentRecord {
    pub fn worker(&self) -> Sid {
        let AgentRecord::V1(agent) = self;
        agent.worker
    }
}

impl Keyed for AgentRecord {
    const PREFIX: &'static [u8] = b"a:";

    fn id(&self) -> String {
        let AgentRecord::V1(agent) = self;
        agent.worker.to_string()
    }
}

/// A browser session that was signed out, kept until it would have expired: a copy of its
/// cookie is refused, after a restart too. Only its nonce is kept, not the cookie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignOutRecord {
    V1(SignOutV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOutV1 {
    /// The session's random nonce (32 hex digits), which the cookie carries.
    pub nonce: String,
    /// Whose session it was: the account SID (admin) or the worker's SID (agent).
    pub subject: String,
    /// When the session would have expired; the record is deleted after that.
    pub expires: Millis,
}

impl Keyed for SignOutRecord {
    const PREFIX: &'static [u8] = b"n:";

    fn id(&self) -> String {
        let SignOutRecord::V1(signed_out) = self;
        signed_out.nonce.clone()
    }
}

/// A REST request made with an `Idempotency-Key`, written in the same atomic group as the
/// command it ran: a client that retries it (after a failover, say) gets what it made the
/// first time instead of making it again. Kept a day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnceRecord {
    V1(OnceV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnceV1 {
    /// The route and the client's key.
    pub key: String,
    /// The SHA-1 of the command (without its time): the same key with another request is
    /// refused.
    pub fingerprint: String,
    /// What the command created, if anything.
    pub created: Option<Sid>,
    /// When it ran.
    pub at: Millis,
}

impl Keyed for OnceRecord {
    const PREFIX: &'static [u8] = b"i:";

    fn id(&self) -> String {
        let OnceRecord::V1(once) = self;
        once.key.clone()
    }
}

/// A message to send through the provider's REST API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxRecord {
    V1(OutboxV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxV1 {
    /// Increasing: the send order.
    pub id: u64,
    pub to: String,
    pub from: String,
    pub body: String,
    /// URLs of media to send with it (`MediaUrl`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<String>,
    /// `queued` (not yet accepted by the provider), `sent` (accepted; `provider_sid` set),
    /// `failed` (refused for good, with `last_error`), `canceled` (the customer texted STOP).
    pub status: String,
    pub attempts: u32,
    /// When to try again, for a queued message.
    pub next_attempt_at: Millis,
    pub last_error: Option<String>,
    pub provider_sid: Option<String>,
    pub created_at: Millis,
    /// The conversation's task, for the agent's live view.
    #[serde(default)]
    pub task: Option<Sid>,
    /// When an attempt whose outcome is not known yet started (a crash, or an answer lost on
    /// the way, leave it set): before sending again, the provider is asked whether it took it.
    #[serde(default)]
    pub attempt_started: Option<Millis>,
}

impl OutboxV1 {
    /// The key of outbox entry `id`: zero-padded, so keys sort in send order.
    pub fn key(id: u64) -> String {
        format!("{id:020}")
    }
}

impl Keyed for OutboxRecord {
    const PREFIX: &'static [u8] = b"o:";

    fn id(&self) -> String {
        let OutboxRecord::V1(message) = self;
        OutboxV1::key(message.id)
    }
}

/// An event as stored for the Events API and callbacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventRecord {
    V1 {
        sequence: u64,
        timestamp: Millis,
        event_type: String,
        resource: Sid,
        task: Option<Sid>,
        worker: Option<Sid>,
        reservation: Option<Sid>,
        queue: Option<Sid>,
        workflow: Option<Sid>,
        activity: Option<Sid>,
        reason: Option<String>,
        /// The task's channel, on `task.created`; absent in older records.
        #[serde(default)]
        channel: Option<Sid>,
        /// The task's disposition, on `task.completed`; absent in older records and without one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
    },
}

/// The engine's state at one point of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotRecord {
    V1(Box<SnapshotV1>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotV1 {
    pub salt: u64,
    pub next_sid: u64,
    pub workspace_sid: Sid,
    pub friendly_name: String,
    pub default_activity: Sid,
    pub timeout_activity: Sid,
    pub prioritize_queue_order: OrderV1,
    /// The workspace's `EventCallbackUrl` and `EventsFilter` once set through the REST API;
    /// absent before (the settings `events.callback_url` and `events.callback_filter` apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_callback_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_filter: Option<String>,
    pub activities: Vec<(Sid, String, bool)>,
    pub channels: Vec<ChannelRecord>,
    pub skills: Vec<(String, Option<(u32, u32)>)>,
    pub workers: Vec<WorkerV1>,
    pub queues: Vec<QueueV1>,
    pub workflows: Vec<WorkflowV1>,
    pub tasks: Vec<TaskV1>,
    pub reservations: Vec<ReservationV1>,
    pub timers: Vec<(Millis, u64, TimerV1)>,
    pub timer_seq: u64,
    pub task_seq: u64,
    pub event_seq: u64,
}

/// A task channel in a snapshot: its fields by name since channels are made through the REST
/// API (`V2`); before, a (SID, unique name, default capacity) triple (`V1`), still read, whose
/// friendly name is its unique name and whose dates are the workspace's oldest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChannelRecord {
    V2(ChannelV2),
    V1(Sid, String, u32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelV2 {
    pub sid: Sid,
    pub unique_name: String,
    pub friendly_name: String,
    pub default_capacity: u32,
    pub channel_optimized_routing: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerV1 {
    pub sid: Sid,
    pub friendly_name: String,
    pub attributes: Value,
    pub activity: Sid,
    /// (capacity, busy, available) per channel.
    pub channels: Vec<(u32, u32, bool)>,
    pub last_assignment: Option<Millis>,
    pub available_since: Millis,
    pub activity_changed_at: Millis,
    pub created_at: Millis,
    /// Absent in records written before it was kept: then the creation time.
    #[serde(default)]
    pub updated_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueV1 {
    pub sid: Sid,
    pub friendly_name: String,
    pub target_workers: String,
    pub task_order: OrderV1,
    pub max_reserved_workers: u32,
    pub created_at: Millis,
    /// Absent in records written before it was kept: then the creation time.
    #[serde(default)]
    pub updated_at: Option<Millis>,
    /// Absent in records written before wrap-up rules, and when there are none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wrap_up_limit: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dispositions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowV1 {
    pub sid: Sid,
    pub friendly_name: String,
    pub configuration: String,
    pub task_reservation_timeout: u32,
    pub created_at: Millis,
    /// Absent in records written before it was kept: then the creation time.
    #[serde(default)]
    pub updated_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskV1 {
    pub sid: Sid,
    pub seq: u64,
    pub attributes: Value,
    pub priority: i64,
    pub channel: Sid,
    pub workflow: Sid,
    pub status: String,
    pub reason: Option<String>,
    pub created_at: Millis,
    /// Absent in records written before it was kept: then the creation time.
    #[serde(default)]
    pub updated_at: Option<Millis>,
    pub virtual_start: Millis,
    pub ttl: u32,
    pub step: StepV1,
    pub queue: Option<Sid>,
    pub queue_entered_at: Option<Millis>,
    pub reservations: Vec<Sid>,
    pub rejected_by: Vec<Sid>,
    pub assignment_count: u32,
    pub step_timer: Option<(Millis, u64)>,
    pub ttl_timer: Option<(Millis, u64)>,
    pub skip_check_pending: bool,
    pub step_expired: bool,
    pub assigned_worker: Option<Sid>,
    /// Set on a task made by a transfer; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferV1>,
}

/// What a task made by a transfer keeps of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferV1 {
    pub from: Sid,
    pub mode: ModeV1,
    pub worker: Option<Sid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTargetV1 {
    Queue(Sid),
    Worker(Sid),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeV1 {
    Cold,
    Warm,
}

impl From<TransferMode> for ModeV1 {
    fn from(mode: TransferMode) -> ModeV1 {
        match mode {
            TransferMode::Cold => ModeV1::Cold,
            TransferMode::Warm => ModeV1::Warm,
        }
    }
}

impl From<ModeV1> for TransferMode {
    fn from(mode: ModeV1) -> TransferMode {
        match mode {
            ModeV1::Cold => TransferMode::Cold,
            ModeV1::Warm => TransferMode::Warm,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepV1 {
    At {
        /// `None` for the default filter.
        target: Option<(usize, usize)>,
        /// The queue a transfer put the task in, outside the filters; absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transfer_queue: Option<Sid>,
        deadline: Option<Millis>,
        filter_entered_at: Millis,
        timed_out_of_a_filter: bool,
    },
    TimedOut,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservationV1 {
    pub sid: Sid,
    pub task: Sid,
    pub worker: Sid,
    pub queue: Sid,
    pub status: String,
    pub created_at: Millis,
    /// Absent in records written before it was kept: then the creation time.
    #[serde(default)]
    pub updated_at: Option<Millis>,
    pub timeout_at: Millis,
    pub timer: Option<(Millis, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerV1 {
    ReservationTimeout(Sid),
    StepTimeout(Sid),
    TaskTtl(Sid),
    Purge(Sid),
    WrapUpLimit(Sid),
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// A record that does not decode into a valid routing value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

impl From<TaskOrder> for OrderV1 {
    fn from(order: TaskOrder) -> OrderV1 {
        match order {
            TaskOrder::Fifo => OrderV1::Fifo,
            TaskOrder::Lifo => OrderV1::Lifo,
        }
    }
}

impl From<OrderV1> for TaskOrder {
    fn from(order: OrderV1) -> TaskOrder {
        match order {
            OrderV1::Fifo => TaskOrder::Fifo,
            OrderV1::Lifo => TaskOrder::Lifo,
        }
    }
}

impl CommandRecord {
    pub fn new(at: Millis, command: &Command) -> CommandRecord {
        let command = match command.clone() {
            Command::Advance => CommandV1::Advance,
            Command::CreateActivity { friendly_name, available } => {
                CommandV1::CreateActivity { friendly_name, available }
            }
            Command::ConfigureWorkspace { default_activity, timeout_activity, prioritize_queue_order } => {
                CommandV1::ConfigureWorkspace {
                    default_activity,
                    timeout_activity,
                    prioritize_queue_order: prioritize_queue_order.into(),
                }
            }
            Command::UpdateWorkspace(changes) => CommandV1::UpdateWorkspace {
                friendly_name: changes.friendly_name,
                default_activity: changes.default_activity,
                timeout_activity: changes.timeout_activity,
                event_callback_url: changes.event_callback_url,
                events_filter: changes.events_filter,
                prioritize_queue_order: changes.prioritize_queue_order.map(OrderV1::from),
            },
            Command::CreateTaskChannel(new) => CommandV1::CreateTaskChannel {
                friendly_name: new.friendly_name,
                unique_name: new.unique_name,
                channel_optimized_routing: new.channel_optimized_routing,
                default_capacity: Some(new.default_capacity).filter(|&capacity| capacity != 1),
            },
            Command::UpdateTaskChannel { channel, changes } => CommandV1::UpdateTaskChannel {
                channel,
                friendly_name: changes.friendly_name,
                channel_optimized_routing: changes.channel_optimized_routing,
            },
            Command::CreateSkill { name, levels } => CommandV1::CreateSkill { name, levels },
            Command::DeleteSkill { name } => CommandV1::DeleteSkill { name },
            Command::CreateWorker(new) => CommandV1::CreateWorker {
                friendly_name: new.friendly_name,
                attributes: new.attributes,
                activity: new.activity,
            },
            Command::UpdateWorkerAttributes { worker, attributes } => {
                CommandV1::UpdateWorkerAttributes { worker, attributes }
            }
            Command::SetWorkerActivity { worker, activity, reject_pending } => {
                CommandV1::SetWorkerActivity { worker, activity, reject_pending }
            }
            Command::SetWorkerChannel { worker, channel, capacity, available } => {
                CommandV1::SetWorkerChannel { worker, channel, capacity, available }
            }
            Command::SetWorkerSkills { worker, skills, disabled } => {
                CommandV1::SetWorkerSkills { worker, skills, disabled }
            }
            Command::CreateTaskQueue(new) => CommandV1::CreateTaskQueue {
                friendly_name: new.friendly_name,
                target_workers: new.target_workers,
                task_order: new.task_order.into(),
                max_reserved_workers: new.max_reserved_workers,
                wrap_up_limit: new.wrap_up.limit_seconds,
                dispositions: new.wrap_up.dispositions,
            },
            Command::UpdateTaskQueue { queue, changes } => CommandV1::UpdateTaskQueue {
                queue,
                target_workers: changes.target_workers,
                max_reserved_workers: changes.max_reserved_workers,
                friendly_name: changes.friendly_name,
                task_order: changes.task_order.map(OrderV1::from),
                wrap_up_limit: changes.wrap_up_limit,
                dispositions: changes.dispositions,
            },
            Command::UpdateWorkflow { workflow, changes } => CommandV1::UpdateWorkflow {
                workflow,
                friendly_name: changes.friendly_name,
                configuration: changes.configuration,
                task_reservation_timeout: changes.task_reservation_timeout,
                re_evaluate_tasks: changes.re_evaluate_tasks,
            },
            Command::Delete { resource } => CommandV1::Delete { resource },
            Command::CreateWorkflow(new) => CommandV1::CreateWorkflow {
                friendly_name: new.friendly_name,
                configuration: new.configuration,
                task_reservation_timeout: new.task_reservation_timeout,
            },
            Command::CreateTask(new) => CommandV1::CreateTask {
                attributes: new.attributes,
                priority: new.priority,
                timeout: new.timeout,
                workflow: new.workflow,
                channel: new.channel,
            },
            Command::UpdateTask { task, changes } => CommandV1::UpdateTask {
                task,
                attributes: changes.attributes,
                priority: changes.priority,
                status: changes.status.map(|status| match status {
                    TaskStatusChange::Canceled { reason } => TaskStatusChangeV1::Canceled { reason },
                    TaskStatusChange::Wrapping => TaskStatusChangeV1::Wrapping,
                    TaskStatusChange::Completed { reason } => TaskStatusChangeV1::Completed { reason },
                }),
            },
            Command::UpdateTaskAttributes { task, attributes } => {
                CommandV1::UpdateTaskAttributes { task, attributes }
            }
            Command::Accept { reservation } => CommandV1::Accept { reservation },
            Command::Unanswered { reservation } => CommandV1::Unanswered { reservation },
            Command::Reject { reservation, activity } => CommandV1::Reject { reservation, activity },
            Command::WrapUp { task } => CommandV1::WrapUp { task },
            Command::Complete { task, reason } => CommandV1::Complete { task, reason },
            Command::Dispose { task, outcome, reason } => CommandV1::Dispose { task, outcome, reason },
            Command::Transfer(NewTransfer { task, to, mode, priority }) => {
                let to = match to {
                    TransferTarget::Queue(queue) => TransferTargetV1::Queue(queue),
                    TransferTarget::Worker(worker) => TransferTargetV1::Worker(worker),
                };
                CommandV1::Transfer { task, to, mode: mode.into(), priority }
            }
            Command::CreateAssigned(NewAssigned { worker, attributes, channel }) => {
                CommandV1::CreateAssigned { worker, attributes, channel }
            }
            Command::Cancel { task, reason } => CommandV1::Cancel { task, reason },
        };
        CommandRecord::V1 { at, command }
    }

    /// The command and the time it ran at.
    pub fn into_command(self) -> (Millis, Command) {
        let CommandRecord::V1 { at, command } = self;
        let command = match command {
            CommandV1::Advance => Command::Advance,
            CommandV1::CreateActivity { friendly_name, available } => {
                Command::CreateActivity { friendly_name, available }
            }
            CommandV1::ConfigureWorkspace { default_activity, timeout_activity, prioritize_queue_order } => {
                Command::ConfigureWorkspace {
                    default_activity,
                    timeout_activity,
                    prioritize_queue_order: prioritize_queue_order.into(),
                }
            }
            CommandV1::UpdateWorkspace {
                friendly_name,
                default_activity,
                timeout_activity,
                event_callback_url,
                events_filter,
                prioritize_queue_order,
            } => Command::UpdateWorkspace(WorkspaceChanges {
                friendly_name,
                default_activity,
                timeout_activity,
                event_callback_url,
                events_filter,
                prioritize_queue_order: prioritize_queue_order.map(TaskOrder::from),
            }),
            CommandV1::CreateTaskChannel {
                friendly_name,
                unique_name,
                channel_optimized_routing,
                default_capacity,
            } => Command::CreateTaskChannel(NewTaskChannel {
                friendly_name,
                unique_name,
                channel_optimized_routing,
                default_capacity: default_capacity.unwrap_or(1),
            }),
            CommandV1::UpdateTaskChannel { channel, friendly_name, channel_optimized_routing } => {
                Command::UpdateTaskChannel {
                    channel,
                    changes: TaskChannelChanges { friendly_name, channel_optimized_routing },
                }
            }
            CommandV1::CreateSkill { name, levels } => Command::CreateSkill { name, levels },
            CommandV1::DeleteSkill { name } => Command::DeleteSkill { name },
            CommandV1::CreateWorker { friendly_name, attributes, activity } => {
                Command::CreateWorker(NewWorker { friendly_name, attributes, activity })
            }
            CommandV1::UpdateWorkerAttributes { worker, attributes } => {
                Command::UpdateWorkerAttributes { worker, attributes }
            }
            CommandV1::SetWorkerActivity { worker, activity, reject_pending } => {
                Command::SetWorkerActivity { worker, activity, reject_pending }
            }
            CommandV1::SetWorkerChannel { worker, channel, capacity, available } => {
                Command::SetWorkerChannel { worker, channel, capacity, available }
            }
            CommandV1::SetWorkerSkills { worker, skills, disabled } => {
                Command::SetWorkerSkills { worker, skills, disabled }
            }
            CommandV1::CreateTaskQueue {
                friendly_name,
                target_workers,
                task_order,
                max_reserved_workers,
                wrap_up_limit,
                dispositions,
            } => Command::CreateTaskQueue(NewTaskQueue {
                friendly_name,
                target_workers,
                task_order: task_order.into(),
                max_reserved_workers,
                wrap_up: WrapUpRules { limit_seconds: wrap_up_limit, dispositions },
            }),
            CommandV1::UpdateTaskQueue {
                queue,
                target_workers,
                max_reserved_workers,
                friendly_name,
                task_order,
                wrap_up_limit,
                dispositions,
            } => Command::UpdateTaskQueue {
                queue,
                changes: TaskQueueChanges {
                    friendly_name,
                    target_workers,
                    task_order: task_order.map(TaskOrder::from),
                    max_reserved_workers,
                    wrap_up_limit,
                    dispositions,
                },
            },
            CommandV1::UpdateWorkflow {
                workflow,
                friendly_name,
                configuration,
                task_reservation_timeout,
                re_evaluate_tasks,
            } => Command::UpdateWorkflow {
                workflow,
                changes: WorkflowChanges {
                    friendly_name,
                    configuration,
                    task_reservation_timeout,
                    re_evaluate_tasks,
                },
            },
            CommandV1::Delete { resource } => Command::Delete { resource },
            CommandV1::CreateWorkflow { friendly_name, configuration, task_reservation_timeout } => {
                Command::CreateWorkflow(NewWorkflow {
                    friendly_name,
                    configuration,
                    task_reservation_timeout,
                })
            }
            CommandV1::CreateTask { attributes, priority, timeout, workflow, channel } => {
                Command::CreateTask(NewTask { attributes, priority, timeout, workflow, channel })
            }
            CommandV1::UpdateTask { task, attributes, priority, status } => Command::UpdateTask {
                task,
                changes: TaskChanges {
                    attributes,
                    priority,
                    status: status.map(|status| match status {
                        TaskStatusChangeV1::Canceled { reason } => TaskStatusChange::Canceled { reason },
                        TaskStatusChangeV1::Wrapping => TaskStatusChange::Wrapping,
                        TaskStatusChangeV1::Completed { reason } => TaskStatusChange::Completed { reason },
                    }),
                },
            },
            CommandV1::UpdateTaskAttributes { task, attributes } => {
                Command::UpdateTaskAttributes { task, attributes }
            }
            CommandV1::Accept { reservation } => Command::Accept { reservation },
            CommandV1::Unanswered { reservation } => Command::Unanswered { reservation },
            CommandV1::Reject { reservation, activity } => Command::Reject { reservation, activity },
            CommandV1::WrapUp { task } => Command::WrapUp { task },
            CommandV1::Complete { task, reason } => Command::Complete { task, reason },
            CommandV1::Dispose { task, outcome, reason } => Command::Dispose { task, outcome, reason },
            CommandV1::Transfer { task, to, mode, priority } => {
                let to = match to {
                    TransferTargetV1::Queue(queue) => TransferTarget::Queue(queue),
                    TransferTargetV1::Worker(worker) => TransferTarget::Worker(worker),
                };
                Command::Transfer(NewTransfer { task, to, mode: mode.into(), priority })
            }
            CommandV1::CreateAssigned { worker, attributes, channel } => {
                Command::CreateAssigned(NewAssigned { worker, attributes, channel })
            }
            CommandV1::Cancel { task, reason } => Command::Cancel { task, reason },
        };
        (at, command)
    }
}

impl EventRecord {
    /// What the cumulative statistics count of the stored event, if anything.
    pub fn facts(&self) -> Option<EventFacts> {
        let EventRecord::V1 { timestamp, event_type, task, queue, workflow, channel, outcome, .. } = self;
        EventFacts::new(*timestamp, event_type, *task, *queue, *workflow, *channel, outcome.as_deref())
    }
}

impl From<&Event> for EventRecord {
    fn from(event: &Event) -> EventRecord {
        EventRecord::V1 {
            sequence: event.sequence,
            timestamp: event.timestamp,
            event_type: event.event_type.as_str().to_owned(),
            resource: event.resource,
            task: event.task,
            worker: event.worker,
            reservation: event.reservation,
            queue: event.queue,
            workflow: event.workflow,
            activity: event.activity,
            reason: event.reason.clone(),
            channel: event.channel,
            outcome: event.outcome.clone(),
        }
    }
}

fn task_status(text: &str) -> Result<TaskStatus, RecordError> {
    [
        TaskStatus::Pending,
        TaskStatus::Reserved,
        TaskStatus::Assigned,
        TaskStatus::Wrapping,
        TaskStatus::Completed,
        TaskStatus::Canceled,
    ]
    .into_iter()
    .find(|status| status.as_str() == text)
    .ok_or_else(|| RecordError(format!("unknown task status {text:?}")))
}

fn reservation_status(text: &str) -> Result<ReservationStatus, RecordError> {
    [
        ReservationStatus::Pending,
        ReservationStatus::Accepted,
        ReservationStatus::Rejected,
        ReservationStatus::Timeout,
        ReservationStatus::Canceled,
        ReservationStatus::Rescinded,
        ReservationStatus::Wrapping,
        ReservationStatus::Completed,
    ]
    .into_iter()
    .find(|status| status.as_str() == text)
    .ok_or_else(|| RecordError(format!("unknown reservation status {text:?}")))
}

impl From<&Call> for CallV1 {
    fn from(call: &Call) -> CallV1 {
        let (bridged, voicemail, message_left, ended_at) = match call.stage {
            Stage::Waiting | Stage::Conference(_) => (None, false, false, None),
            Stage::Dialing { reservation } => (Some(reservation), false, false, None),
            Stage::Voicemail { left, ended_at } => (None, true, left, ended_at),
        };
        let conference = match &call.stage {
            Stage::Conference(bridge) => Some(BridgeV1 {
                reservation: bridge.reservation,
                caller_moved: bridge.caller_moved,
                agent_call: bridge.agent_call.clone(),
                conference: bridge.conference.clone(),
                talking: bridge.talking,
                on_hold: bridge.on_hold,
                muted: bridge.muted,
                recording: bridge.recording.clone(),
                transfer: bridge.transfer.as_ref().map(|transfer| CallTransferV1 {
                    from_task: transfer.from_task,
                    from_reservation: transfer.from_reservation,
                    from_call: transfer.from_call.clone(),
                    mode: transfer.mode.into(),
                    outside_call: transfer.outside_call.clone(),
                    outside_joined: transfer.outside_joined,
                }),
                supervisors: bridge.supervisors.iter().map(|s| (s.label.clone(), s.mode)).collect(),
            }),
            _ => None,
        };
        CallV1 {
            call_sid: call.sid.clone(),
            from: call.from.clone(),
            to: call.to.clone(),
            flow: call.flow.clone(),
            menu: call.place.menu.clone(),
            failures: call.place.failures,
            language: call.place.language.clone(),
            path: call.place.path.clone(),
            task: Some(call.task),
            started_at: call.started_at,
            last_seen: call.last_seen,
            announced_at: call.announced_at,
            bridged,
            voicemail,
            message_left,
            ended_at,
            conference,
            room: call.room,
            retry_at: call.retry_at,
        }
    }
}

impl CallV1 {
    /// The call this record holds; none for a record that the first stores wrote before the
    /// IVR routed the call (without a task).
    pub fn into_call(self) -> Option<Call> {
        let stage = match (self.conference, self.bridged, self.voicemail) {
            (Some(bridge), _, _) => Stage::Conference(Bridge {
                reservation: bridge.reservation,
                caller_moved: bridge.caller_moved,
                agent_call: bridge.agent_call,
                conference: bridge.conference,
                talking: bridge.talking,
                on_hold: bridge.on_hold,
                muted: bridge.muted,
                recording: bridge.recording,
                transfer: bridge.transfer.map(|transfer| {
                    Box::new(Transfer {
                        from_task: transfer.from_task,
                        from_reservation: transfer.from_reservation,
                        from_call: transfer.from_call,
                        mode: transfer.mode.into(),
                        outside_call: transfer.outside_call,
                        outside_joined: transfer.outside_joined,
                    })
                }),
                supervisors: bridge
                    .supervisors
                    .into_iter()
                    .map(|(label, mode)| Supervision { label, mode })
                    .collect(),
            }),
            (None, Some(reservation), _) => Stage::Dialing { reservation },
            (None, None, true) => Stage::Voicemail { left: self.message_left, ended_at: self.ended_at },
            (None, None, false) => Stage::Waiting,
        };
        Some(Call {
            sid: self.call_sid,
            from: self.from,
            to: self.to,
            flow: self.flow,
            place: CallState {
                menu: self.menu,
                failures: self.failures,
                language: self.language,
                path: self.path,
                // Its variables went into the task's attributes when it was routed.
                memory: crate::ivr::Memory::default(),
            },
            task: self.task?,
            started_at: self.started_at,
            last_seen: self.last_seen,
            announced_at: self.announced_at,
            stage,
            dial_fallback: false,
            room: self.room,
            retry_at: self.retry_at,
        })
    }
}

impl From<&Snapshot> for SnapshotRecord {
    fn from(s: &Snapshot) -> SnapshotRecord {
        SnapshotRecord::V1(Box::new(SnapshotV1 {
            salt: s.salt,
            next_sid: s.next_sid,
            workspace_sid: s.workspace_sid,
            friendly_name: s.settings.friendly_name.clone(),
            default_activity: s.settings.default_activity,
            timeout_activity: s.settings.timeout_activity,
            prioritize_queue_order: s.settings.prioritize_queue_order.into(),
            event_callback_url: s.settings.event_callback_url.clone(),
            events_filter: s.settings.events_filter.clone(),
            activities: s.activities.iter().map(activity_record).collect(),
            channels: s.channels.iter().map(channel_record).collect(),
            skills: s.skills.iter().map(skill_record).collect(),
            workers: s.workers.iter().map(worker_record).collect(),
            queues: s.queues.iter().map(queue_record).collect(),
            workflows: s.workflows.iter().map(workflow_record).collect(),
            tasks: s.tasks.iter().map(task_record).collect(),
            reservations: s.reservations.iter().map(reservation_record).collect(),
            timers: s.timers.iter().map(timer_record).collect(),
            timer_seq: s.timer_seq,
            task_seq: s.task_seq,
            event_seq: s.event_seq,
        }))
    }
}

/// Encodes a snapshot exactly as its [`SnapshotRecord`] would be, converting one entity at a
/// time: a whole `SnapshotRecord` is a second deep copy of the state (attributes included),
/// held for as long as the encoding takes, and at the soak's size that copy alone was the
/// swing in resident memory at every snapshot.
pub struct SnapshotEncoding<'a>(pub &'a Snapshot);

impl Serialize for SnapshotEncoding<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_variant("SnapshotRecord", 0, "v1", &SnapshotFields(self.0))
    }
}

struct SnapshotFields<'a>(&'a Snapshot);

impl Serialize for SnapshotFields<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let s = self.0;
        let mut fields = serializer.serialize_struct("SnapshotV1", 19)?;
        fields.serialize_field("salt", &s.salt)?;
        fields.serialize_field("next_sid", &s.next_sid)?;
        fields.serialize_field("workspace_sid", &s.workspace_sid)?;
        fields.serialize_field("friendly_name", &s.settings.friendly_name)?;
        fields.serialize_field("default_activity", &s.settings.default_activity)?;
        fields.serialize_field("timeout_activity", &s.settings.timeout_activity)?;
        fields
            .serialize_field("prioritize_queue_order", &OrderV1::from(s.settings.prioritize_queue_order))?;
        // Absent until set, as `SnapshotV1` writes them.
        if let Some(url) = &s.settings.event_callback_url {
            fields.serialize_field("event_callback_url", url)?;
        }
        if let Some(filter) = &s.settings.events_filter {
            fields.serialize_field("events_filter", filter)?;
        }
        fields.serialize_field("activities", &Each(&s.activities, activity_record))?;
        fields.serialize_field("channels", &Each(&s.channels, channel_record))?;
        fields.serialize_field("skills", &Each(&s.skills, skill_record))?;
        fields.serialize_field("workers", &Each(&s.workers, worker_record))?;
        fields.serialize_field("queues", &Each(&s.queues, queue_record))?;
        fields.serialize_field("workflows", &Each(&s.workflows, workflow_record))?;
        fields.serialize_field("tasks", &Each(&s.tasks, task_record))?;
        fields.serialize_field("reservations", &Each(&s.reservations, reservation_record))?;
        fields.serialize_field("timers", &Each(&s.timers, timer_record))?;
        fields.serialize_field("timer_seq", &s.timer_seq)?;
        fields.serialize_field("task_seq", &s.task_seq)?;
        fields.serialize_field("event_seq", &s.event_seq)?;
        fields.end()
    }
}

/// A list encoded as the records `convert` makes of its items, one at a time.
struct Each<'a, T, R>(&'a [T], fn(&T) -> R);

impl<T, R: Serialize> Serialize for Each<'_, T, R> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(self.1))
    }
}

fn activity_record(a: &ActivityState) -> (Sid, String, bool) {
    (a.sid, a.friendly_name.clone(), a.available)
}

fn channel_record(c: &ChannelState) -> ChannelRecord {
    ChannelRecord::V2(ChannelV2 {
        sid: c.sid,
        unique_name: c.unique_name.clone(),
        friendly_name: c.friendly_name.clone(),
        default_capacity: c.default_capacity,
        channel_optimized_routing: c.channel_optimized_routing,
        created_at: c.created_at,
        updated_at: c.updated_at,
    })
}

fn skill_record(skill: &Skill) -> (String, Option<(u32, u32)>) {
    (skill.name.clone(), skill.levels)
}

fn worker_record(w: &WorkerState) -> WorkerV1 {
    WorkerV1 {
        sid: w.sid,
        friendly_name: w.friendly_name.clone(),
        attributes: Value::clone(&w.attributes),
        activity: w.activity,
        channels: w.channels.iter().map(|c| (c.capacity, c.busy, c.available)).collect(),
        last_assignment: w.last_assignment,
        available_since: w.available_since,
        activity_changed_at: w.activity_changed_at,
        created_at: w.created_at,
        updated_at: Some(w.updated_at),
    }
}

fn queue_record(q: &QueueState) -> QueueV1 {
    QueueV1 {
        sid: q.sid,
        friendly_name: q.friendly_name.clone(),
        target_workers: q.target_workers.clone(),
        task_order: q.task_order.into(),
        max_reserved_workers: q.max_reserved_workers,
        created_at: q.created_at,
        updated_at: Some(q.updated_at),
        wrap_up_limit: q.wrap_up.limit_seconds,
        dispositions: q.wrap_up.dispositions.clone(),
    }
}

fn workflow_record(w: &WorkflowState) -> WorkflowV1 {
    WorkflowV1 {
        sid: w.sid,
        friendly_name: w.friendly_name.clone(),
        configuration: w.configuration.clone(),
        task_reservation_timeout: w.task_reservation_timeout,
        created_at: w.created_at,
        updated_at: Some(w.updated_at),
    }
}

fn task_record(t: &TaskState) -> TaskV1 {
    let step = match t.step {
        Step::At { position, deadline, filter_entered_at, timed_out_of_a_filter } => StepV1::At {
            target: match position {
                Position::Target { filter, target } => Some((filter, target)),
                Position::Default | Position::Transfer { .. } => None,
            },
            transfer_queue: match position {
                Position::Transfer { queue } => Some(queue),
                _ => None,
            },
            deadline,
            filter_entered_at,
            timed_out_of_a_filter,
        },
        Step::TimedOut => StepV1::TimedOut,
        Step::Skipped => StepV1::Skipped,
    };
    TaskV1 {
        sid: t.sid,
        seq: t.seq,
        attributes: Value::clone(&t.attributes),
        priority: t.priority,
        channel: t.channel,
        workflow: t.workflow,
        status: t.status.as_str().to_owned(),
        reason: t.reason.clone(),
        created_at: t.created_at,
        updated_at: Some(t.updated_at),
        virtual_start: t.virtual_start,
        ttl: t.ttl,
        step,
        queue: t.queue,
        queue_entered_at: t.queue_entered_at,
        reservations: t.reservations.clone(),
        rejected_by: t.rejected_by.clone(),
        assignment_count: t.assignment_count,
        step_timer: t.step_timer,
        ttl_timer: t.ttl_timer,
        skip_check_pending: t.skip_check_pending,
        step_expired: t.step_expired,
        assigned_worker: t.assigned_worker,
        transfer: t.transfer.map(|transfer| TransferV1 {
            from: transfer.from,
            mode: transfer.mode.into(),
            worker: transfer.worker,
        }),
    }
}

fn reservation_record(r: &ReservationState) -> ReservationV1 {
    ReservationV1 {
        sid: r.sid,
        task: r.task,
        worker: r.worker,
        queue: r.queue,
        status: r.status.as_str().to_owned(),
        created_at: r.created_at,
        updated_at: Some(r.updated_at),
        timeout_at: r.timeout_at,
        timer: r.timer,
    }
}

fn timer_record(&((at, seq), timer): &(TimerKey, Timer)) -> (Millis, u64, TimerV1) {
    let timer = match timer {
        Timer::ReservationTimeout(sid) => TimerV1::ReservationTimeout(sid),
        Timer::StepTimeout(sid) => TimerV1::StepTimeout(sid),
        Timer::TaskTtl(sid) => TimerV1::TaskTtl(sid),
        Timer::Purge(sid) => TimerV1::Purge(sid),
        Timer::WrapUpLimit(sid) => TimerV1::WrapUpLimit(sid),
    };
    (at, seq, timer)
}

impl SnapshotRecord {
    pub fn into_snapshot(self) -> Result<Snapshot, RecordError> {
        let SnapshotRecord::V1(s) = self;
        let step = |step: StepV1| match step {
            StepV1::At { target, transfer_queue, deadline, filter_entered_at, timed_out_of_a_filter } => {
                Step::At {
                    position: match (transfer_queue, target) {
                        (Some(queue), _) => Position::Transfer { queue },
                        (None, Some((filter, target))) => Position::Target { filter, target },
                        (None, None) => Position::Default,
                    },
                    deadline,
                    filter_entered_at,
                    timed_out_of_a_filter,
                }
            }
            StepV1::TimedOut => Step::TimedOut,
            StepV1::Skipped => Step::Skipped,
        };
        let skills = s
            .skills
            .into_iter()
            .map(|(name, levels)| Skill::new(&name, levels).map_err(|err| RecordError(err.to_string())))
            .collect::<Result<_, _>>()?;
        // A channel written before channels had dates was made with the workspace, whose oldest
        // resource is as old as it.
        let oldest = s.workers.iter().map(|w| w.created_at);
        let oldest = oldest.chain(s.queues.iter().map(|q| q.created_at));
        let oldest = oldest.chain(s.workflows.iter().map(|w| w.created_at)).min().unwrap_or(0);
        Ok(Snapshot {
            salt: s.salt,
            next_sid: s.next_sid,
            workspace_sid: s.workspace_sid,
            settings: WorkspaceSettings {
                friendly_name: s.friendly_name,
                default_activity: s.default_activity,
                timeout_activity: s.timeout_activity,
                prioritize_queue_order: s.prioritize_queue_order.into(),
                event_callback_url: s.event_callback_url,
                events_filter: s.events_filter,
            },
            activities: s
                .activities
                .into_iter()
                .map(|(sid, friendly_name, available)| ActivityState { sid, friendly_name, available })
                .collect(),
            channels: s
                .channels
                .into_iter()
                .map(|channel| match channel {
                    ChannelRecord::V2(c) => ChannelState {
                        sid: c.sid,
                        unique_name: c.unique_name,
                        friendly_name: c.friendly_name,
                        default_capacity: c.default_capacity,
                        channel_optimized_routing: c.channel_optimized_routing,
                        created_at: c.created_at,
                        updated_at: c.updated_at,
                    },
                    ChannelRecord::V1(sid, unique_name, default_capacity) => ChannelState {
                        sid,
                        friendly_name: unique_name.clone(),
                        unique_name,
                        default_capacity,
                        channel_optimized_routing: false,
                        created_at: oldest,
                        updated_at: oldest,
                    },
                })
                .collect(),
            skills,
            workers: s
                .workers
                .into_iter()
                .map(|w| WorkerState {
                    sid: w.sid,
                    friendly_name: w.friendly_name,
                    attributes: w.attributes.into(),
                    activity: w.activity,
                    channels: w
                        .channels
                        .into_iter()
                        .map(|(capacity, busy, available)| WorkerChannel { capacity, busy, available })
                        .collect(),
                    last_assignment: w.last_assignment,
                    available_since: w.available_since,
                    activity_changed_at: w.activity_changed_at,
                    created_at: w.created_at,
                    updated_at: w.updated_at.unwrap_or(w.created_at),
                })
                .collect(),
            queues: s
                .queues
                .into_iter()
                .map(|q| QueueState {
                    sid: q.sid,
                    friendly_name: q.friendly_name,
                    target_workers: q.target_workers,
                    task_order: q.task_order.into(),
                    max_reserved_workers: q.max_reserved_workers,
                    wrap_up: WrapUpRules { limit_seconds: q.wrap_up_limit, dispositions: q.dispositions },
                    created_at: q.created_at,
                    updated_at: q.updated_at.unwrap_or(q.created_at),
                })
                .collect(),
            workflows: s
                .workflows
                .into_iter()
                .map(|w| WorkflowState {
                    sid: w.sid,
                    friendly_name: w.friendly_name,
                    configuration: w.configuration,
                    task_reservation_timeout: w.task_reservation_timeout,
                    created_at: w.created_at,
                    updated_at: w.updated_at.unwrap_or(w.created_at),
                })
                .collect(),
            tasks: s
                .tasks
                .into_iter()
                .map(|t| {
                    Ok(TaskState {
                        sid: t.sid,
                        seq: t.seq,
                        attributes: t.attributes.into(),
                        priority: t.priority,
                        channel: t.channel,
                        workflow: t.workflow,
                        status: task_status(&t.status)?,
                        reason: t.reason,
                        created_at: t.created_at,
                        updated_at: t.updated_at.unwrap_or(t.created_at),
                        virtual_start: t.virtual_start,
                        ttl: t.ttl,
                        step: step(t.step),
                        queue: t.queue,
                        queue_entered_at: t.queue_entered_at,
                        reservations: t.reservations,
                        rejected_by: t.rejected_by,
                        assignment_count: t.assignment_count,
                        step_timer: t.step_timer,
                        ttl_timer: t.ttl_timer,
                        skip_check_pending: t.skip_check_pending,
                        step_expired: t.step_expired,
                        assigned_worker: t.assigned_worker,
                        transfer: t.transfer.map(|transfer| TransferOf {
                            from: transfer.from,
                            mode: transfer.mode.into(),
                            worker: transfer.worker,
                        }),
                    })
                })
                .collect::<Result<_, RecordError>>()?,
            reservations: s
                .reservations
                .into_iter()
                .map(|r| {
                    Ok(ReservationState {
                        sid: r.sid,
                        task: r.task,
                        worker: r.worker,
                        queue: r.queue,
                        status: reservation_status(&r.status)?,
                        created_at: r.created_at,
                        updated_at: r.updated_at.unwrap_or(r.created_at),
                        timeout_at: r.timeout_at,
                        timer: r.timer,
                    })
                })
                .collect::<Result<_, RecordError>>()?,
            timers: s
                .timers
                .into_iter()
                .map(|(at, seq, timer)| {
                    let timer = match timer {
                        TimerV1::ReservationTimeout(sid) => Timer::ReservationTimeout(sid),
                        TimerV1::StepTimeout(sid) => Timer::StepTimeout(sid),
                        TimerV1::TaskTtl(sid) => Timer::TaskTtl(sid),
                        TimerV1::Purge(sid) => Timer::Purge(sid),
                        TimerV1::WrapUpLimit(sid) => Timer::WrapUpLimit(sid),
                    };
                    ((at, seq), timer)
                })
                .collect(),
            timer_seq: s.timer_seq,
            task_seq: s.task_seq,
            event_seq: s.event_seq,
        })
    }
}
