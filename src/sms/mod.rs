//! Text conversations (DESIGN §1, SMS): a customer texts one of Switchboard's numbers, walks
//! the same IVR flows as callers (each reply one `<Message>`, keywords allowed), and is then
//! routed as a task on the `sms` channel; once an agent accepts, the customer's texts join the
//! conversation and the agent's replies leave through a durable outbox that
//! `outbound::messages` delivers to the provider's REST API.
//!
//! A conversation is keyed by (customer, number) and changed by one request at a time (its
//! lock), and every change is durable before the answer. A provider's retry of a MessageSid is
//! answered as the first time, without acting twice. STOP silences everything to the customer
//! (queued replies included) until START.
//!
//! Messages are stored in pages (`pages.rs`): the conversation held in memory and rewritten
//! with each text has only the newest ones; older ones are read back when an agent asks.
//!
//! A conversation ends when its task is completed, however it was completed: the customer gets
//! the closing text once ([`Sms::close_completed`]).

mod pages;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, broadcast, watch};

use crate::config::SmsSettings;
use crate::ivr::{self, CallState, Caller, Effect, Input, Medium};
use crate::live::{self, ExecuteError, LiveEngine};
use crate::locks::{KeyedGuard, KeyedLocks};
use crate::routing::{Command, Engine, Event, EventType, Millis, RoutingError, Sid, TaskStatus};
use crate::store::{
    ConversationRecord, ConversationV1, ConversationV2, KeyedWrite, MediaV1, MessagePageRecord,
    MessagePageV1, MessageV1, OutboxRecord, OutboxV1, Store, StoreError,
};
use crate::twiml::{Response, Verb};
use crate::voice::Ivr;

/// The parameters of an incoming-message webhook that Switchboard reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageParams {
    pub message_sid: String,
    pub from: String,
    pub to: String,
    pub body: String,
    /// Pictures and other media (`NumMedia`, `MediaUrlN`, `MediaContentTypeN`).
    pub media: Vec<MediaV1>,
}

impl MessageParams {
    pub fn from_params(params: &[(String, String)]) -> MessageParams {
        let get = |name: &str| {
            params.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap_or_default()
        };
        let count = get("NumMedia").parse::<usize>().unwrap_or(0).min(MAX_MEDIA);
        let media = (0..count)
            .map(|n| MediaV1 {
                url: get(&format!("MediaUrl{n}")),
                content_type: get(&format!("MediaContentType{n}")),
            })
            // Only web addresses: an agent's page links them.
            .filter(|media| is_web_url(&media.url))
            .collect();
        MessageParams {
            message_sid: get("MessageSid"),
            from: get("From"),
            to: get("To"),
            body: get("Body"),
            media,
        }
    }

    /// The channel the text came on: WhatsApp (`whatsapp:` addresses), else SMS.
    pub fn channel(&self) -> Channel {
        if self.from.starts_with(WHATSAPP) { Channel::WhatsApp } else { Channel::Sms }
    }
}

/// How a customer texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Sms,
    /// `whatsapp:+E.164` addresses. Routed on the built-in `whatsapp` task channel (Flex
    /// routes them on `chat`; their own channel gives agents a capacity and supervisors
    /// figures for WhatsApp apart), with Flex's `channelType: "whatsapp"`.
    WhatsApp,
}

impl Channel {
    /// The channel's name in the IVR (`channel` in `when` expressions and lookups).
    pub fn name(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::WhatsApp => "whatsapp",
        }
    }

    /// The TaskRouter task channel its conversations are routed on.
    pub fn task_channel(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::WhatsApp => "whatsapp",
        }
    }
}

/// The prefix of WhatsApp addresses.
pub const WHATSAPP: &str = "whatsapp:";
/// The most media a message carries (Twilio's limit).
pub const MAX_MEDIA: usize = 10;

/// The task channels text conversations are routed on (`chat` by those written before
/// WhatsApp had its own).
pub const TEXT_TASK_CHANNELS: [&str; 3] = ["sms", "chat", "whatsapp"];

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// A change could not be made durable: the server stops.
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the conversation's state (closed, opted out...).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// A stored page of a conversation's messages is missing or unreadable.
    #[error("{0}")]
    Damaged(String),
}

/// The longest text the provider takes (Twilio: 1,600 characters).
pub const MAX_BODY: usize = 1_600;
/// Inbound MessageSids remembered per conversation, to answer retries.
const ANSWERED_KEPT: usize = 20;
/// Sent (and refused) outbox entries are deleted after this long.
const OUTBOX_KEPT: Millis = 24 * 3600 * 1000;
/// A conversation still in the IVR is forgotten after a day without a text.
const IDLE_FORGOTTEN: Millis = 24 * 3600 * 1000;
/// The longest wait between two attempts at a reply.
const RETRY_MAX: Millis = 5 * 60 * 1000;

const STOP_WORDS: [&str; 6] = ["stop", "stopall", "unsubscribe", "cancel", "end", "quit"];
const START_WORDS: [&str; 3] = ["start", "yes", "unstop"];
const HELP_WORDS: [&str; 2] = ["help", "info"];
const STOPPED: &str = "You will receive no more messages from us. Reply START to resume.";
const STARTED: &str = "You can text us again. Reply HELP for help.";
const HELP: &str = "Answer our last message to go on: the number or word of an option, or what we asked for. \
                    Reply STOP to stop messages.";
const TECHNICAL_DIFFICULTY: &str = "Sorry, we cannot take your message right now. Please try again later.";

/// What the SMS webhook and the agents' conversation API share.
pub struct Sms {
    live: Arc<LiveEngine>,
    ivr: Arc<Ivr>,
    settings: SmsSettings,
    conversations: KeyedLocks<ConversationV2>,
    /// The conversation (key) of each routed task.
    by_task: Mutex<HashMap<Sid, String>>,
    /// Every outbox entry not yet pruned, by id.
    outbox: Mutex<BTreeMap<u64, OutboxV1>>,
    last_outbox_id: AtomicU64,
    /// Woken when a reply is queued.
    outbox_changed: Notify,
    /// Held while an existing outbox entry is read, changed and written (a delivery outcome,
    /// STOP's cancellation), so that neither overwrites the other.
    outbox_writes: tokio::sync::Mutex<()>,
    /// What agents watching a conversation see live.
    events: broadcast::Sender<ConversationEvent>,
    /// Set when the server stops, which ends the live streams.
    stopping: watch::Sender<bool>,
    /// Bytes of conversations, pages and outbox entries handed to the store (keys and values).
    bytes_written: AtomicU64,
    /// Reply attempts scheduled again since the start (monitoring).
    retries: AtomicU64,
    /// The engine's events from the moment the conversations were loaded, for
    /// [`Sms::close_completed`] (taken when it starts).
    completions: Mutex<Option<broadcast::Receiver<Event>>>,
    /// The tasks found completed, with their conversations still open, when the conversations
    /// were loaded: still closed if the catch-up after a restart purges the task first.
    due: Mutex<Vec<Sid>>,
}

/// A change an agent watching conversation `task` sees: a new message, or a reply's delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationEvent {
    pub task: Sid,
    pub message: Option<MessageV1>,
    pub delivery: Option<OutboxV1>,
}

/// A conversation as the agent sees it: the messages, and each reply's delivery.
#[derive(Debug, Clone)]
pub struct ConversationView {
    pub task: Sid,
    /// The conversation's state, with only the newest messages.
    pub conversation: ConversationV2,
    /// Every message, oldest first.
    pub messages: Vec<MessageV1>,
    pub deliveries: HashMap<u64, OutboxV1>,
}

/// What the outbox deliverer should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Send(Box<OutboxV1>),
    /// Nothing due before then.
    WaitUntil(Millis),
    /// Nothing queued.
    Idle,
}

impl Sms {
    /// Loads the stored conversations and outbox. Call it before the engine catches up with the
    /// deadlines missed while stopped, which may purge completed tasks whose conversations are
    /// still to be closed.
    pub fn open(live: Arc<LiveEngine>, ivr: Arc<Ivr>, settings: &SmsSettings) -> Result<Sms, StoreError> {
        let completions = live.subscribe();
        let conversations: Vec<ConversationV2> =
            live.stored::<ConversationRecord>()?.into_iter().map(ConversationRecord::into_current).collect();
        let due = live.read(|engine| {
            let completed =
                |task: &Sid| engine.task(*task).is_some_and(|t| t.status == TaskStatus::Completed);
            conversations.iter().filter_map(|c| c.task).filter(completed).collect()
        });
        let by_task = conversations
            .iter()
            .filter_map(|c| Some((c.task?, ConversationV1::key(&c.customer, &c.number))))
            .collect();
        let outbox: BTreeMap<u64, OutboxV1> =
            live.stored::<OutboxRecord>()?.into_iter().map(|OutboxRecord::V1(m)| (m.id, m)).collect();
        let last_outbox_id = outbox.keys().next_back().copied().unwrap_or(0);
        Ok(Sms {
            live,
            ivr,
            settings: settings.clone(),
            conversations: KeyedLocks::new(
                conversations.into_iter().map(|c| (ConversationV1::key(&c.customer, &c.number), c)),
            ),
            by_task: Mutex::new(by_task),
            outbox: Mutex::new(outbox),
            last_outbox_id: AtomicU64::new(last_outbox_id),
            outbox_changed: Notify::new(),
            outbox_writes: tokio::sync::Mutex::new(()),
            events: broadcast::channel(1024).0,
            stopping: watch::channel(false).0,
            bytes_written: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            completions: Mutex::new(Some(completions)),
            due: Mutex::new(due),
        })
    }

    /// `POST /sms/incoming`: a customer's text. Answers the TwiML to send back (a `<Message>`,
    /// or nothing).
    pub async fn incoming(&self, params: &MessageParams, now: Millis) -> Result<Response, SmsError> {
        let arrived = tokio::time::Instant::now();
        let key = ConversationV1::key(&params.from, &params.to);
        let mut conversation = self.conversations.lock(&key).await;
        if let Some(answer) = conversation.as_ref().and_then(|c| answered(c, &params.message_sid)) {
            return Ok(answer);
        }
        // A conversation whose task is completed ends first, with its closing text (usually
        // `close_completed` did it already); this text then starts a new one.
        if let Some(task) =
            conversation.as_ref().and_then(|c| c.task).filter(|&task| self.task_completed(task))
        {
            self.close_locked(&mut conversation, task, now).await?;
        }
        // STOP cancels queued replies: no delivery outcome may be written in between.
        let stopping = STOP_WORDS.contains(&params.body.trim().to_lowercase().as_str());
        let _outbox_writes = if stopping { Some(self.outbox_writes.lock().await) } else { None };
        // Worked on a copy: the stored conversation changes only once the new one is durable.
        // Its flow is chosen when a walk starts (in `handle`): STOP, START and a text for the
        // agent need none.
        let mut record =
            conversation.as_ref().cloned().unwrap_or_else(|| fresh(&params.from, &params.to, ""));
        let (response, writes) = self.handle(&mut record, params, (now, arrived)).await?;
        remember(&mut record, &params.message_sid, &response);
        self.save(&mut conversation, record, writes).await?;
        Ok(response)
    }

    /// Acts on one inbound text; returns the answer and outbox entries to write with the
    /// conversation.
    async fn handle(
        &self,
        record: &mut ConversationV2,
        params: &MessageParams,
        (now, arrived): (Millis, tokio::time::Instant),
    ) -> Result<(Response, Vec<OutboxV1>), SmsError> {
        let word = params.body.trim().to_lowercase();
        if STOP_WORDS.contains(&word.as_str()) {
            record.stopped = true;
            let canceled = self.cancel_queued(&record.customer, &record.number);
            return Ok((text(STOPPED), canceled));
        }
        // "yes" is an ordinary word unless the customer had opted out.
        if START_WORDS.contains(&word.as_str()) && record.stopped {
            record.stopped = false;
            return Ok((text(STARTED), Vec::new()));
        }
        // With an agent, "help" is for the agent to answer.
        if HELP_WORDS.contains(&word.as_str()) && !record.stopped && record.task.is_none() {
            return Ok((text(HELP), Vec::new()));
        }
        // A conversation with an agent: the text joins it.
        if let Some(task) = record.task {
            let status = self.live.read(|engine| engine.task(task).map(|task| task.status));
            if status.is_some_and(|status| {
                status.is_waiting() || status == TaskStatus::Assigned || status == TaskStatus::Wrapping
            }) {
                record.messages.push(customer_message(now, params));
                return Ok((Response::default(), Vec::new()));
            }
            // The task ended without the conversation being closed here: start again.
            self.lock_by_task().remove(&task);
            *record = ConversationV2 {
                stopped: record.stopped,
                answered: record.answered.clone(),
                ..fresh(&record.customer, &record.number, &record.flow)
            };
        }
        record.messages.push(customer_message(now, params));
        if record.stopped {
            return Ok((Response::default(), Vec::new()));
        }
        let flows = self.ivr.flows();
        // A walk under way carries on in its flow; a new one (or one whose file a reload took
        // away) starts in the flow that answers the number now.
        let under_way =
            record.menu.as_ref().and(flows.get(&record.flow)).map(|flow| (record.flow.clone(), flow));
        let Some((flow_name, flow)) = under_way
            .or_else(|| flows.for_number(&record.number).map(|(name, flow)| (name.to_owned(), flow)))
        else {
            tracing::warn!(to = %record.number, "no IVR flow answers this number, and there is no main.toml");
            return Ok((text(TECHNICAL_DIFFICULTY), Vec::new()));
        };
        record.flow = flow_name;
        let (state, input) = match &record.menu {
            None => {
                // A new walk through the IVR: the conversation starts with this text (the next
                // write deletes the pages before it). Starting never routes a text (the start
                // menu is sent), so no task is created before that write.
                record.messages = record.messages.split_off(record.messages.len() - 1);
                record.pages = 0;
                (CallState::new(flow, live::timestamp(now)), Input::Start)
            }
            Some(menu) => (
                CallState {
                    menu: menu.clone(),
                    failures: record.failures,
                    language: record.language.clone(),
                    path: record.path.clone(),
                    memory: ivr::Memory::decode(&record.memory),
                },
                Input::Text(params.body.clone()),
            ),
        };
        let caller = Caller {
            from: &params.from,
            to: &params.to,
            channel: params.channel().name(),
            now: live::timestamp(now),
        };
        let step = self.ivr.walk(flow, state, input, Medium::Text, &caller, arrived).await;
        record.menu = Some(step.state.menu.clone());
        record.failures = step.state.failures;
        record.language = step.state.language.clone();
        record.path = step.state.path.clone();
        record.memory = step.state.memory.encode();
        match step.effect {
            Effect::Continue => {
                record_replies(record, &step.response, now);
                Ok((step.response, Vec::new()))
            }
            Effect::Hangup => {
                // The walk ended (goodbye): the next text starts a new one.
                record.menu = None;
                record.messages.clear();
                record.pages = 0;
                Ok((step.response, Vec::new()))
            }
            // The walk makes its lookups itself.
            Effect::Lookup(_) => Ok((step.response, Vec::new())),
            Effect::Route(request) => {
                // What the flow said on the way, then the confirmation.
                let mut confirmation = step.response;
                confirmation.verbs.extend(text(&self.settings.confirmation).verbs);
                let confirmation = Response::new(crate::voice::flows::joined_messages(confirmation.verbs));
                // Kept to go back to should the route be refused: its retry must not be told
                // an agent will text.
                let unrouted = ConversationV2 { menu: None, ..record.clone() };
                record_replies(record, &confirmation, now);
                // Written with the task: a crash after it must not make the provider's retry
                // of this text look like a message for the agent.
                remember(record, &params.message_sid, &confirmation);
                if let Err(err) = self.route(record, request, params.channel()).await {
                    return match err {
                        SmsError::Conflict(reason) => {
                            tracing::error!(%reason, customer = %record.customer, "a text conversation could not be routed");
                            *record = unrouted;
                            Ok((text(TECHNICAL_DIFFICULTY), Vec::new()))
                        }
                        other => Err(other),
                    };
                }
                Ok((confirmation, Vec::new()))
            }
        }
    }

    /// Adds the built-in channels a workspace made before them lacks (`whatsapp`), so that its
    /// first WhatsApp conversation is routed like every later one.
    async fn add_missing_channels(&self) -> Result<(), SmsError> {
        for new in self.live.read(Engine::missing_built_in_channels) {
            let name = new.unique_name.clone();
            match self.live.execute(Command::CreateTaskChannel(new)).await {
                Ok(_) => tracing::info!(channel = %name, "built-in task channel added to the workspace"),
                Err(ExecuteError::Storage(err)) => return Err(SmsError::Storage(err)),
                // Another conversation added it meanwhile; anything else is the route's refusal.
                Err(ExecuteError::Refused(err)) => {
                    if self.live.read(|engine| engine.task_channel_by_key(&name).is_none()) {
                        return Err(SmsError::Conflict(format!(
                            "task channel {name} could not be added: {err}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates the conversation's task, with the conversation stored in the same write.
    async fn route(
        &self,
        record: &mut ConversationV2,
        request: ivr::RouteRequest,
        channel: Channel,
    ) -> Result<(), SmsError> {
        let extra = [
            ("channel", json!(channel.name())),
            // Flex's name for the kind of conversation (`sms`, `whatsapp`).
            ("channelType", json!(channel.name())),
            ("from", json!(record.customer)),
            ("to", json!(record.number)),
            ("ivr_flow", json!(record.flow)),
            ("conversation", conversation_attribute(&self.recent_messages(record)?)),
        ];
        self.add_missing_channels().await?;
        let task =
            self.live.read(|engine| request.into_task(engine.workflows(), channel.task_channel(), &extra));
        let command = Command::CreateTask(task.map_err(SmsError::Conflict)?);
        let base = record.clone();
        let created = self
            .live
            .execute_with(command, |task| ConversationRecord::V2(ConversationV2 { task, menu: None, ..base }))
            .await;
        match created {
            Ok((task, stored)) => {
                *record = stored.into_current();
                if let Some(task) = task {
                    self.lock_by_task().insert(task, ConversationV1::key(&record.customer, &record.number));
                }
                Ok(())
            }
            Err(ExecuteError::Storage(err)) => Err(SmsError::Storage(err)),
            Err(ExecuteError::Refused(err)) => {
                Err(SmsError::Conflict(format!("the IVR's task was refused: {err}")))
            }
        }
    }

    /// The conversation of `task`, every message read back, with the delivery of each reply.
    pub async fn conversation(&self, task: Sid) -> Result<ConversationView, SmsError> {
        // Held while the pages are read: a close meanwhile would delete them.
        let guard = self.by_task(task).await?;
        let conversation = guard.as_ref().cloned().ok_or_else(|| not_found(task))?;
        let mut messages = self.read_pages(&conversation, 0..conversation.pages)?;
        drop(guard);
        messages.extend(conversation.messages.iter().cloned());
        let outbox = self.lock_outbox();
        let deliveries = messages
            .iter()
            .filter_map(|m| m.outbox)
            .filter_map(|id| outbox.get(&id).map(|entry| (id, entry.clone())))
            .collect();
        Ok(ConversationView { task, conversation, messages, deliveries })
    }

    /// Whether `task` has a conversation (an error saying why not otherwise), without reading
    /// its messages.
    pub async fn check_conversation(&self, task: Sid) -> Result<(), SmsError> {
        self.by_task(task).await.map(drop)
    }

    /// The bytes of conversations, their pages and outbox entries written so far (keys and
    /// values handed to the store), for tests and diagnostics.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// The messages of `conversation`'s sealed pages `range`, oldest first.
    fn read_pages(
        &self,
        conversation: &ConversationV2,
        range: std::ops::Range<u32>,
    ) -> Result<Vec<MessageV1>, SmsError> {
        let mut messages = Vec::new();
        for page in range {
            let key = MessagePageV1::key(&conversation.customer, &conversation.number, page);
            match self.live.stored_one::<MessagePageRecord>(&key)? {
                Some(MessagePageRecord::V1(page)) => messages.extend(page.messages),
                None => return Err(SmsError::Damaged(format!("page {key} of a conversation is missing"))),
            }
        }
        Ok(messages)
    }

    /// The newest messages of `conversation`, enough for its task attribute: the open page and,
    /// while they are fewer than the attribute takes, the pages before it.
    fn recent_messages(&self, conversation: &ConversationV2) -> Result<Vec<MessageV1>, SmsError> {
        let mut recent = conversation.messages.clone();
        let mut page = conversation.pages;
        while page > 0 && recent.iter().map(attribute_cost).sum::<usize>() <= ATTRIBUTE_BUDGET {
            page -= 1;
            let mut older = self.read_pages(conversation, page..page + 1)?;
            older.append(&mut recent);
            recent = older;
        }
        Ok(recent)
    }

    /// An agent's reply in the conversation of `task`: stored with the conversation and queued
    /// for the provider, durably, before it is acknowledged.
    /// The agent's reply `body` (may be empty with `media`), with the URLs of `media` to send.
    pub async fn reply(
        &self,
        task: Sid,
        body: &str,
        media: &[String],
        now: Millis,
    ) -> Result<OutboxV1, SmsError> {
        check_reply(body, media)?;
        let mut conversation = self.by_task(task).await?;
        let mut record = conversation.as_ref().cloned().ok_or_else(|| not_found(task))?;
        let status = self.live.read(|engine| engine.task(task).map(|task| task.status));
        if !matches!(status, Some(TaskStatus::Assigned | TaskStatus::Wrapping)) {
            return Err(SmsError::Conflict(format!(
                "task {task} is {}; replies go to conversations an agent accepted",
                status.map_or("gone", TaskStatus::as_str)
            )));
        }
        if record.stopped {
            return Err(SmsError::Conflict(
                "the customer texted STOP: nothing can be sent until they text START".into(),
            ));
        }
        let mut entry = self.new_outbox(&record.customer, &record.number, body, now);
        entry.task = Some(task);
        entry.media = media.to_vec();
        let attached =
            media.iter().map(|url| MediaV1 { url: url.clone(), content_type: String::new() }).collect();
        record.messages.push(MessageV1 {
            outbox: Some(entry.id),
            media: attached,
            ..message(now, "agent", body)
        });
        self.save(&mut conversation, record, vec![entry.clone()]).await?;
        Ok(entry)
    }

    /// The agent closes the conversation of `task`: the task is completed, the customer gets
    /// the closing text, and their next text starts at the IVR again. Answers once the closing
    /// text is queued durably. A conversation closed already (its task completed another way)
    /// is not an error: there is nothing more to do.
    pub async fn close(&self, task: Sid, disposition: Option<&str>, now: Millis) -> Result<(), SmsError> {
        let mut conversation = match self.by_task(task).await {
            Ok(conversation) => conversation,
            Err(SmsError::NotFound(_)) if self.is_closed_text_task(task) => return Ok(()),
            Err(err) => return Err(err),
        };
        let completion = self
            .live
            .read(|engine| Command::agent_completion(engine, task, disposition, "conversation closed"));
        let refused = |err: RoutingError| match err {
            RoutingError::Invalid { .. } => SmsError::Invalid(err.to_string()),
            err => SmsError::Conflict(err.to_string()),
        };
        match self.live.execute(completion.map_err(refused)?).await {
            Ok(_) => {}
            Err(ExecuteError::Storage(err)) => return Err(SmsError::Storage(err)),
            // Completed already (through another API, and the conversation not closed yet).
            Err(ExecuteError::Refused(_)) if self.task_completed(task) => {}
            Err(ExecuteError::Refused(err)) => return Err(refused(err)),
        }
        self.close_locked(&mut conversation, task, now).await
    }

    /// The one rule for ending a text conversation: once its task is completed (by the close
    /// above, the agent API, the REST API's task or reservation update, whatever completes it),
    /// the customer gets the closing text once and the conversation ends.
    ///
    /// Runs until `stop` completes, acting on the engine's `task.completed` events. First, and
    /// again whenever it fell behind the events, it closes every conversation whose task is
    /// completed: those a crash (or a lagging event stream) left open. An event arrives only
    /// once its completion is on disk, and this writes after it in the store's order, so the
    /// closing text is never on disk without the completion; a completion on disk without its
    /// closing is closed by that first pass.
    pub async fn close_completed(&self, stop: impl Future<Output = ()>) -> Result<(), SmsError> {
        let Some(mut events) = self.lock_completions().take() else { return Ok(()) };
        self.close_all_completed().await?;
        // Only the start-up pass needs the completions found at open.
        self.lock_due().clear();
        tokio::pin!(stop);
        loop {
            let event = tokio::select! {
                () = &mut stop => return Ok(()),
                event = events.recv() => event,
            };
            match event {
                Ok(Event { event_type: EventType::TaskCompleted, task: Some(task), .. }) => {
                    if let Ok(mut conversation) = self.by_task(task).await {
                        self.close_locked(&mut conversation, task, live::now()).await?;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the text conversations fell behind the engine's events");
                    self.close_all_completed().await?;
                }
                Err(RecvError::Closed) => return Ok(()),
            }
        }
    }

    /// Closes the conversation of every completed task.
    async fn close_all_completed(&self) -> Result<(), SmsError> {
        let tasks: Vec<Sid> = self.lock_by_task().keys().copied().collect();
        for task in tasks.into_iter().filter(|&task| self.task_completed(task)) {
            if let Ok(mut conversation) = self.by_task(task).await {
                self.close_locked(&mut conversation, task, live::now()).await?;
            }
        }
        Ok(())
    }

    /// Ends `conversation`, whose task `task` is completed, if it is still open: the closing
    /// text (unless the customer opted out) and the conversation's end in one atomic write, so
    /// that the conversation still open is what says the closing text is still due.
    async fn close_locked(
        &self,
        conversation: &mut KeyedGuard<'_, ConversationV2>,
        task: Sid,
        now: Millis,
    ) -> Result<(), SmsError> {
        let Some(record) = conversation.as_ref().filter(|c| c.task == Some(task)).cloned() else {
            return Ok(());
        };
        let closing = (!record.stopped)
            .then(|| self.new_outbox(&record.customer, &record.number, &self.settings.closing, now));
        // Only an opt-out outlives the conversation.
        let next = record.stopped.then(|| ConversationV2 {
            stopped: true,
            ..fresh(&record.customer, &record.number, &record.flow)
        });
        let closing: Vec<OutboxV1> = closing.into_iter().collect();
        let parties = (record.customer.as_str(), record.number.as_str());
        self.write(pages::writes(parties, record.pages, next.as_ref(), &[], &closing)?).await?;
        **conversation = next;
        self.publish(closing);
        // Last: whoever finds no conversation for the task finds its closing text queued.
        self.lock_by_task().remove(&task);
        Ok(())
    }

    /// Whether `task` is completed, or was when the conversations were loaded (the catch-up at
    /// start may have purged it since).
    fn task_completed(&self, task: Sid) -> bool {
        self.lock_due().contains(&task)
            || self.live.read(|engine| engine.task(task).map(|task| task.status))
                == Some(TaskStatus::Completed)
    }

    /// Whether `task` is a completed task on the `sms` channel (whose conversation is closed).
    fn is_closed_text_task(&self, task: Sid) -> bool {
        self.live.read(|engine| {
            engine.task(task).is_some_and(|found| {
                found.status == TaskStatus::Completed
                    && TEXT_TASK_CHANNELS.contains(&engine.task_channel(found).unique_name.as_str())
            })
        })
    }

    /// Forgets conversations left in the IVR (no task) with no text for a day; an opt-out is
    /// kept whatever its age.
    pub async fn sweep(&self, now: Millis) -> Result<(), SmsError> {
        for key in self.conversations.keys() {
            let mut conversation = self.conversations.lock(&key).await;
            let idle = conversation.as_ref().filter(|c| {
                c.task.is_none()
                    && !c.stopped
                    && c.messages.last().is_none_or(|m| now - m.at > IDLE_FORGOTTEN)
            });
            if let Some(idle) = idle {
                let parties = (idle.customer.as_str(), idle.number.as_str());
                let forget = pages::writes(parties, idle.pages, None, &[], &[])?;
                self.write(forget).await?;
                *conversation = None;
            }
        }
        Ok(())
    }

    /// The changes of every conversation, from now on (filter by task).
    pub fn subscribe(&self) -> broadcast::Receiver<ConversationEvent> {
        self.events.subscribe()
    }

    /// Completes when the server is stopping: live streams end then.
    pub async fn stopping(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|&stopping| stopping).await;
    }

    /// Ends the live streams (the server is stopping).
    pub fn stop_streams(&self) {
        self.stopping.send_replace(true);
    }

    /// The next reply to deliver, or when to look again.
    /// Replies of one conversation leave in order: only the oldest queued one of each
    /// (customer, number) may go, even when a later one would be due sooner.
    pub fn next_outgoing(&self, now: Millis) -> Outgoing {
        let outbox = self.lock_outbox();
        let mut heads: HashMap<(&str, &str), &OutboxV1> = HashMap::new();
        for entry in outbox.values().filter(|entry| entry.status == "queued") {
            // Ids grow, so the first seen of a pair is its oldest.
            heads.entry((entry.to.as_str(), entry.from.as_str())).or_insert(entry);
        }
        match heads.into_values().min_by_key(|entry| (entry.next_attempt_at, entry.id)) {
            Some(entry) if entry.next_attempt_at <= now => Outgoing::Send(Box::new(entry.clone())),
            Some(entry) => Outgoing::WaitUntil(entry.next_attempt_at),
            None => Outgoing::Idle,
        }
    }

    /// Completes when a reply is queued (or may have become due).
    pub async fn outbox_changed(&self) {
        self.outbox_changed.notified().await;
    }

    /// The provider accepted reply `id` as `provider_sid`.
    pub async fn delivered(
        &self,
        id: u64,
        provider_sid: Option<String>,
        now: Millis,
    ) -> Result<(), SmsError> {
        self.update_outbox(id, |entry| {
            entry.status = "sent".into();
            entry.attempts += 1;
            entry.attempt_started = None;
            entry.provider_sid = provider_sid;
            entry.last_error = None;
            entry.next_attempt_at = now;
        })
        .await?;
        self.prune_outbox(now).await
    }

    /// The provider refused reply `id` for good (a 400 or 422: the message itself is wrong).
    pub async fn refused(&self, id: u64, error: String, now: Millis) -> Result<(), SmsError> {
        tracing::warn!(id, %error, "the provider refused a reply for good");
        self.update_outbox(id, |entry| {
            entry.status = "failed".into();
            entry.attempts += 1;
            entry.attempt_started = None;
            entry.last_error = Some(error);
            entry.next_attempt_at = now;
        })
        .await
    }

    /// Reply `id` is about to be sent: noted durably first, so that after a crash or a lost
    /// answer the provider is asked before it is sent again.
    pub async fn attempting(&self, id: u64, now: Millis) -> Result<(), SmsError> {
        self.update_outbox(id, |entry| entry.attempt_started = Some(now)).await
    }

    /// The provider SIDs of the replies it took: a reply found at the provider is matched only
    /// to a message not already one of these.
    pub fn provider_sids(&self) -> std::collections::HashSet<String> {
        self.lock_outbox().values().filter_map(|entry| entry.provider_sid.clone()).collect()
    }

    /// Reply `id` could not be delivered now: try again later, waiting twice as long each time.
    /// `answered`: the provider answered (it did not take the reply); otherwise it may have.
    pub async fn retry_later(
        &self,
        id: u64,
        error: String,
        answered: bool,
        now: Millis,
    ) -> Result<(), SmsError> {
        let initial = i64::try_from(self.settings.retry_initial_ms).unwrap_or(i64::MAX).max(1);
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.update_outbox(id, |entry| {
            if answered {
                entry.attempt_started = None;
            }
            entry.attempts += 1;
            let wait = initial.saturating_mul(1 << entry.attempts.saturating_sub(1).min(20)).min(RETRY_MAX);
            tracing::info!(id, attempts = entry.attempts, wait_ms = wait, %error, "a reply will be sent again");
            entry.last_error = Some(error);
            entry.next_attempt_at = now.saturating_add(wait);
        })
        .await
    }

    /// The outbox's entries by status, and the retries since the start (monitoring).
    pub fn outbox_figures(&self) -> crate::metrics::OutboxFigures {
        let mut figures = crate::metrics::OutboxFigures {
            retries: self.retries.load(Ordering::Relaxed),
            ..crate::metrics::OutboxFigures::default()
        };
        for entry in self.lock_outbox().values() {
            match entry.status.as_str() {
                "queued" => figures.queued += 1,
                "sent" => figures.sent += 1,
                "canceled" => figures.canceled += 1,
                _ => figures.failed += 1,
            }
        }
        figures
    }

    /// Every outbox entry (tests and diagnostics).
    pub fn outbox(&self) -> Vec<OutboxV1> {
        self.lock_outbox().values().cloned().collect()
    }

    /// Applies a delivery outcome to reply `id`, if it is still queued (STOP may have canceled
    /// it meanwhile: that stays).
    async fn update_outbox(&self, id: u64, change: impl FnOnce(&mut OutboxV1)) -> Result<(), SmsError> {
        let _writing = self.outbox_writes.lock().await;
        let Some(mut entry) = self.lock_outbox().get(&id).cloned().filter(|entry| entry.status == "queued")
        else {
            return Ok(());
        };
        change(&mut entry);
        let (key, value) = Store::encode(&OutboxRecord::V1(entry.clone()))?;
        self.write(vec![(key, Some(value))]).await?;
        if let Some(task) = entry.task {
            let _nobody_watching =
                self.events.send(ConversationEvent { task, message: None, delivery: Some(entry.clone()) });
        }
        self.lock_outbox().insert(id, entry);
        Ok(())
    }

    /// Deletes delivered and refused replies older than a day.
    /// (The newest entry is never deleted: its id is where numbering resumes after a restart.)
    async fn prune_outbox(&self, now: Millis) -> Result<(), SmsError> {
        let old: Vec<u64> = {
            let outbox = self.lock_outbox();
            let newest = outbox.keys().next_back().copied();
            outbox
                .values()
                .filter(|entry| entry.status != "queued" && now - entry.next_attempt_at > OUTBOX_KEPT)
                .map(|entry| entry.id)
                .filter(|&id| Some(id) != newest)
                .collect()
        };
        if old.is_empty() {
            return Ok(());
        }
        let deletes =
            old.iter().map(|&id| (Store::key_of::<OutboxRecord>(&OutboxV1::key(id)), None)).collect();
        self.write(deletes).await?;
        let mut outbox = self.lock_outbox();
        for id in old {
            outbox.remove(&id);
        }
        Ok(())
    }

    fn new_outbox(&self, to: &str, from: &str, body: &str, now: Millis) -> OutboxV1 {
        OutboxV1 {
            id: self.last_outbox_id.fetch_add(1, Ordering::SeqCst) + 1,
            to: to.to_owned(),
            from: from.to_owned(),
            body: body.to_owned(),
            media: Vec::new(),
            status: "queued".to_owned(),
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            provider_sid: None,
            created_at: now,
            task: None,
            attempt_started: None,
        }
    }

    /// Marks the queued replies from `number` to `customer` canceled (they texted STOP to it);
    /// returns them, to be written with the conversation.
    fn cancel_queued(&self, customer: &str, number: &str) -> Vec<OutboxV1> {
        let outbox = self.lock_outbox();
        outbox
            .values()
            .filter(|entry| entry.status == "queued" && entry.to == customer && entry.from == number)
            .map(|entry| OutboxV1 {
                status: "canceled".into(),
                last_error: Some("the customer texted STOP".into()),
                ..entry.clone()
            })
            .collect()
    }

    /// Writes the conversation and outbox entries in one atomic write, then makes them the
    /// current state.
    async fn save(
        &self,
        conversation: &mut KeyedGuard<'_, ConversationV2>,
        mut record: ConversationV2,
        outbox: Vec<OutboxV1>,
    ) -> Result<(), SmsError> {
        // The messages this change added: after those the stored conversation had, if it is
        // still the same one (a new walk or task starts a new one).
        let known = match conversation.as_ref() {
            Some(old) if old.task == record.task && old.pages == record.pages => old.messages.len(),
            _ => 0,
        };
        let added: Vec<MessageV1> = record.messages.iter().skip(known).cloned().collect();
        let stored_pages = conversation.as_ref().map_or(0, |old| old.pages);
        let sealed = pages::seal(&mut record);
        let parties = (record.customer.as_str(), record.number.as_str());
        self.write(pages::writes(parties, stored_pages, Some(&record), &sealed, &outbox)?).await?;
        if let Some(task) = record.task {
            let new_outbox: Vec<u64> = added.iter().filter_map(|m| m.outbox).collect();
            for message in &added {
                let delivery =
                    message.outbox.and_then(|id| outbox.iter().find(|entry| entry.id == id)).cloned();
                let event = ConversationEvent { task, message: Some(message.clone()), delivery };
                let _nobody_watching = self.events.send(event);
            }
            // Earlier replies whose delivery changed here (canceled by STOP).
            for entry in outbox.iter().filter(|entry| !new_outbox.contains(&entry.id)) {
                let event = ConversationEvent { task, message: None, delivery: Some(entry.clone()) };
                let _nobody_watching = self.events.send(event);
            }
        }
        **conversation = Some(record);
        self.publish(outbox);
        Ok(())
    }

    /// Hands `writes` to the store as one atomic write, and answers once it is durable.
    async fn write(&self, writes: Vec<KeyedWrite>) -> Result<(), StoreError> {
        self.bytes_written.fetch_add(pages::size(&writes), Ordering::Relaxed);
        self.live.put_together(writes).await
    }

    fn publish(&self, entries: Vec<OutboxV1>) {
        if entries.is_empty() {
            return;
        }
        let mut outbox = self.lock_outbox();
        for entry in entries {
            outbox.insert(entry.id, entry);
        }
        drop(outbox);
        self.outbox_changed.notify_one();
    }

    async fn by_task(&self, task: Sid) -> Result<KeyedGuard<'_, ConversationV2>, SmsError> {
        let key = self.lock_by_task().get(&task).cloned().ok_or_else(|| not_found(task))?;
        let conversation = self.conversations.lock(&key).await;
        if conversation.as_ref().and_then(|c| c.task) != Some(task) {
            return Err(not_found(task));
        }
        Ok(conversation)
    }

    fn lock_by_task(&self) -> MutexGuard<'_, HashMap<Sid, String>> {
        self.by_task.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_completions(&self) -> MutexGuard<'_, Option<broadcast::Receiver<Event>>> {
        self.completions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_due(&self) -> MutexGuard<'_, Vec<Sid>> {
        self.due.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_outbox(&self) -> MutexGuard<'_, BTreeMap<u64, OutboxV1>> {
        self.outbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn fresh(customer: &str, number: &str, flow: &str) -> ConversationV2 {
    ConversationV2 {
        customer: customer.to_owned(),
        number: number.to_owned(),
        flow: flow.to_owned(),
        menu: None,
        failures: 0,
        language: String::new(),
        path: Vec::new(),
        memory: String::new(),
        task: None,
        pages: 0,
        messages: Vec::new(),
        stopped: false,
        answered: Vec::new(),
    }
}

/// Remembers that `message_sid` was answered `response` (the last few only).
fn remember(record: &mut ConversationV2, message_sid: &str, response: &Response) {
    if message_sid.is_empty() || record.answered.iter().any(|(sid, _)| sid == message_sid) {
        return;
    }
    record.answered.push((message_sid.to_owned(), response.to_xml()));
    let excess = record.answered.len().saturating_sub(ANSWERED_KEPT);
    record.answered.drain(..excess);
}

/// The most the conversation attribute takes (its [`attribute_cost`]): task attributes are
/// capped (4 KiB in all), and the agent reads the whole conversation through its API anyway.
const ATTRIBUTE_BUDGET: usize = 2_000;
/// The most of a message's body the conversation attribute shows, in characters.
const ATTRIBUTE_BODY: usize = 300;

/// The messages so far as a task attribute, the latest that fit.
fn conversation_attribute(messages: &[MessageV1]) -> serde_json::Value {
    let mut kept = Vec::new();
    let mut used = 0;
    for message in messages.iter().rev() {
        used += attribute_cost(message);
        if used > ATTRIBUTE_BUDGET {
            break;
        }
        let body: String = message.body.chars().take(ATTRIBUTE_BODY).collect();
        kept.push(json!({"author": message.author, "body": body}));
    }
    kept.reverse();
    serde_json::Value::Array(kept)
}

/// What `message` takes of the conversation attribute's budget: its bytes as JSON, where a
/// quote takes two and a control character up to six.
fn attribute_cost(message: &MessageV1) -> usize {
    let as_json = |c: char| match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        '\0'..='\u{1f}' => 6,
        c => c.len_utf8(),
    };
    let body: usize = message.body.chars().take(ATTRIBUTE_BODY).map(as_json).sum();
    body + message.author.len() + 24
}

fn answered(conversation: &ConversationV2, message_sid: &str) -> Option<Response> {
    if message_sid.is_empty() {
        return None;
    }
    let xml = &conversation.answered.iter().find(|(sid, _)| sid == message_sid)?.1;
    // Stored as sent; parsed back to answer the retry the same.
    let verbs = crate::twiml::parse(xml).ok()?;
    let messages = verbs
        .into_iter()
        .filter(|verb| verb.name == "Message")
        .map(|verb| Verb::Message(ivr::message(verb.text)));
    Some(Response::new(messages.collect()))
}

/// The Switchboard texts in `response`, added to the conversation.
fn record_replies(record: &mut ConversationV2, response: &Response, now: Millis) {
    for verb in &response.verbs {
        if let Verb::Message(sent) = verb {
            record.messages.push(message(now, "switchboard", &sent.body));
        }
    }
}

fn message(at: Millis, author: &str, body: &str) -> MessageV1 {
    MessageV1 { at, author: author.to_owned(), body: body.to_owned(), outbox: None, media: Vec::new() }
}

fn text(body: &str) -> Response {
    Response::new(vec![Verb::Message(ivr::message(body.to_owned()))])
}

/// A customer's text as the conversation keeps it, with its media.
fn customer_message(at: Millis, params: &MessageParams) -> MessageV1 {
    MessageV1 { media: params.media.clone(), ..message(at, "customer", &params.body) }
}

/// Whether `url` is a media address a message may carry: http or https, at most 2,000 bytes.
fn is_web_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://")) && url.len() <= 2_000
}

/// A reply has a body, or media (http or https URLs, at most [`MAX_MEDIA`]), or both.
fn check_reply(body: &str, media: &[String]) -> Result<(), SmsError> {
    if media.len() > MAX_MEDIA {
        return Err(SmsError::Invalid(format!(
            "{} MediaUrl given; a message carries at most {MAX_MEDIA}",
            media.len()
        )));
    }
    if let Some(url) = media.iter().find(|url| !is_web_url(url)) {
        return Err(SmsError::Invalid(format!("MediaUrl {url:?} is not an http:// or https:// URL")));
    }
    if media.is_empty() { check_body(body) } else { check_length(body) }
}

fn check_body(body: &str) -> Result<(), SmsError> {
    if body.trim().is_empty() {
        return Err(SmsError::Invalid("Body is empty".into()));
    }
    check_length(body)
}

fn check_length(body: &str) -> Result<(), SmsError> {
    let length = body.chars().count();
    if length > MAX_BODY {
        return Err(SmsError::Invalid(format!(
            "Body has {length} characters; the most a text takes is {MAX_BODY}"
        )));
    }
    Ok(())
}

fn not_found(task: Sid) -> SmsError {
    SmsError::NotFound(format!("no text conversation has task {task}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message's cost is exactly what it adds to the attribute as JSON (with its comma).
    fn check_cost(body: &str) {
        let message = MessageV1 { media: Vec::new(), ..message(0, "customer", body) };
        let written = serde_json::to_string(&conversation_attribute(std::slice::from_ref(&message))).unwrap();
        // `[` and `]` around the one message, less the comma it would take among others.
        assert_eq!(attribute_cost(&message), written.len() - 2 + 1, "{body:?}: {written}");
    }

    #[test]
    fn a_messages_cost_is_its_length_as_json() {
        check_cost("hello");
        check_cost("");
        check_cost("say \"hi\" \\ back");
        check_cost("\u{1b}[31m\0\u{1}\u{7f}");
        check_cost("tab\tnew\nline\r\u{8}\u{c}");
        check_cost("ü€𝄞 <b>&</b>");
        check_cost(&"\u{1b}".repeat(500));
    }

    /// Messages full of what JSON escapes stay within the budget (they took four times it).
    #[test]
    fn the_conversation_attribute_stays_within_its_budget_as_json() {
        let messages: Vec<MessageV1> =
            (0..20).map(|n| message(n, "customer", &format!("I said {}", "\u{1b}".repeat(300)))).collect();
        let written = serde_json::to_string(&conversation_attribute(&messages)).unwrap();
        assert!(written.len() <= ATTRIBUTE_BUDGET + 2, "{} bytes", written.len());
    }
}
