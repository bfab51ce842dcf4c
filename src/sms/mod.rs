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

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::json;
use tokio::sync::{Notify, broadcast, watch};

use crate::config::SmsSettings;
use crate::ivr::{self, CallState, Effect, Input, Medium};
use crate::live::{self, ExecuteError, LiveEngine};
use crate::locks::{KeyedGuard, KeyedLocks};
use crate::routing::{Command, Millis, Sid, TaskStatus};
use crate::store::{
    ConversationRecord, ConversationV1, KeyedWrite, MessageV1, OutboxRecord, OutboxV1, Store, StoreError,
};
use crate::twiml::{Response, Verb};
use crate::voice::Flows;

/// The parameters of an incoming-message webhook that Switchboard reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageParams {
    pub message_sid: String,
    pub from: String,
    pub to: String,
    pub body: String,
}

impl MessageParams {
    pub fn from_params(params: &[(String, String)]) -> MessageParams {
        let get = |name: &str| {
            params.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap_or_default()
        };
        MessageParams { message_sid: get("MessageSid"), from: get("From"), to: get("To"), body: get("Body") }
    }
}

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
const HELP: &str =
    "Reply with the number (or word) of an option to reach the right team. Reply STOP to stop messages.";
const TECHNICAL_DIFFICULTY: &str = "Sorry, we cannot take your message right now. Please try again later.";

/// What the SMS webhook and the agents' conversation API share.
pub struct Sms {
    live: Arc<LiveEngine>,
    flows: Arc<Flows>,
    settings: SmsSettings,
    conversations: KeyedLocks<ConversationV1>,
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
    pub conversation: ConversationV1,
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
    /// Loads the stored conversations and outbox.
    pub fn open(live: Arc<LiveEngine>, flows: Arc<Flows>, settings: &SmsSettings) -> Result<Sms, StoreError> {
        let conversations: Vec<ConversationV1> =
            live.stored::<ConversationRecord>()?.into_iter().map(|ConversationRecord::V1(c)| c).collect();
        let by_task = conversations
            .iter()
            .filter_map(|c| Some((c.task?, ConversationV1::key(&c.customer, &c.number))))
            .collect();
        let outbox: BTreeMap<u64, OutboxV1> =
            live.stored::<OutboxRecord>()?.into_iter().map(|OutboxRecord::V1(m)| (m.id, m)).collect();
        let last_outbox_id = outbox.keys().next_back().copied().unwrap_or(0);
        Ok(Sms {
            live,
            flows,
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
        })
    }

    /// `POST /sms/incoming`: a customer's text. Answers the TwiML to send back (a `<Message>`,
    /// or nothing).
    pub async fn incoming(&self, params: &MessageParams, now: Millis) -> Result<Response, SmsError> {
        let key = ConversationV1::key(&params.from, &params.to);
        let mut conversation = self.conversations.lock(&key).await;
        if let Some(answer) = conversation.as_ref().and_then(|c| answered(c, &params.message_sid)) {
            return Ok(answer);
        }
        let Some((flow_name, _)) = self.flows.for_number(&params.to) else {
            tracing::warn!(to = %params.to, "no IVR flow answers this number, and there is no main.toml");
            return Ok(text(TECHNICAL_DIFFICULTY));
        };
        // STOP cancels queued replies: no delivery outcome may be written in between.
        let stopping = STOP_WORDS.contains(&params.body.trim().to_lowercase().as_str());
        let _outbox_writes = if stopping { Some(self.outbox_writes.lock().await) } else { None };
        // Worked on a copy: the stored conversation changes only once the new one is durable.
        let mut record =
            conversation.as_ref().cloned().unwrap_or_else(|| fresh(&params.from, &params.to, flow_name));
        let (response, writes) = self.handle(&mut record, params, now).await?;
        remember(&mut record, &params.message_sid, &response);
        self.save(&mut conversation, record, writes).await?;
        Ok(response)
    }

    /// Acts on one inbound text; returns the answer and outbox entries to write with the
    /// conversation.
    async fn handle(
        &self,
        record: &mut ConversationV1,
        params: &MessageParams,
        now: Millis,
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
                record.messages.push(message(now, "customer", &params.body));
                return Ok((Response::default(), Vec::new()));
            }
            // The task ended without the conversation being closed here: start again.
            self.lock_by_task().remove(&task);
            *record = ConversationV1 {
                stopped: record.stopped,
                answered: record.answered.clone(),
                ..fresh(&record.customer, &record.number, &record.flow)
            };
        }
        record.messages.push(message(now, "customer", &params.body));
        if record.stopped {
            return Ok((Response::default(), Vec::new()));
        }
        let Some(flow) =
            self.flows.get(&record.flow).or_else(|| self.flows.for_number(&record.number).map(|(_, f)| f))
        else {
            return Ok((text(TECHNICAL_DIFFICULTY), Vec::new()));
        };
        let (state, input) = match &record.menu {
            None => {
                // A new walk through the IVR: the conversation starts with this text.
                record.messages = record.messages.split_off(record.messages.len() - 1);
                (CallState::new(flow, live::timestamp(now)), Input::Start)
            }
            Some(menu) => (
                CallState {
                    menu: menu.clone(),
                    failures: record.failures,
                    language: record.language.clone(),
                    path: record.path.clone(),
                },
                Input::Text(params.body.clone()),
            ),
        };
        let step = ivr::step(flow, &state, &input, Medium::Text);
        record.menu = Some(step.state.menu.clone());
        record.failures = step.state.failures;
        record.language = step.state.language.clone();
        record.path = step.state.path.clone();
        match step.effect {
            Effect::Continue => {
                record_replies(record, &step.response, now);
                Ok((step.response, Vec::new()))
            }
            Effect::Hangup => {
                // The walk ended (goodbye): the next text starts a new one.
                record.menu = None;
                record.messages.clear();
                Ok((step.response, Vec::new()))
            }
            Effect::Route(request) => {
                let confirmation = text(&self.settings.confirmation);
                record_replies(record, &confirmation, now);
                // Written with the task: a crash after it must not make the provider's retry
                // of this text look like a message for the agent.
                remember(record, &params.message_sid, &confirmation);
                if let Err(err) = self.route(record, request).await {
                    return match err {
                        SmsError::Conflict(reason) => {
                            tracing::error!(%reason, customer = %record.customer, "a text conversation could not be routed");
                            record.menu = None;
                            Ok((text(TECHNICAL_DIFFICULTY), Vec::new()))
                        }
                        other => Err(other),
                    };
                }
                Ok((confirmation, Vec::new()))
            }
        }
    }

    /// Creates the conversation's task, with the conversation stored in the same write.
    async fn route(&self, record: &mut ConversationV1, request: ivr::RouteRequest) -> Result<(), SmsError> {
        let extra = [
            ("channel", json!("sms")),
            ("from", json!(record.customer)),
            ("to", json!(record.number)),
            ("ivr_flow", json!(record.flow)),
            ("conversation", conversation_attribute(&record.messages)),
        ];
        let task = self.live.read(|engine| request.into_task(engine.workflows(), "sms", &extra));
        let command = Command::CreateTask(task.map_err(SmsError::Conflict)?);
        let base = record.clone();
        let created = self
            .live
            .execute_with(command, |task| ConversationRecord::V1(ConversationV1 { task, menu: None, ..base }))
            .await;
        match created {
            Ok((task, ConversationRecord::V1(stored))) => {
                *record = stored;
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

    /// The conversation of `task`, with the delivery of each reply.
    pub async fn conversation(&self, task: Sid) -> Result<ConversationView, SmsError> {
        let (conversation, _) = self.by_task(task).await?;
        let conversation = conversation.as_ref().cloned().ok_or_else(|| not_found(task))?;
        let outbox = self.lock_outbox();
        let deliveries = conversation
            .messages
            .iter()
            .filter_map(|m| m.outbox)
            .filter_map(|id| outbox.get(&id).map(|entry| (id, entry.clone())))
            .collect();
        Ok(ConversationView { task, conversation, deliveries })
    }

    /// An agent's reply in the conversation of `task`: stored with the conversation and queued
    /// for the provider, durably, before it is acknowledged.
    pub async fn reply(&self, task: Sid, body: &str, now: Millis) -> Result<OutboxV1, SmsError> {
        check_body(body)?;
        let (mut conversation, _) = self.by_task(task).await?;
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
        record.messages.push(MessageV1 { outbox: Some(entry.id), ..message(now, "agent", body) });
        self.save(&mut conversation, record, vec![entry.clone()]).await?;
        Ok(entry)
    }

    /// The agent closes the conversation of `task`: the task is completed, the customer gets
    /// the closing text, and their next text starts at the IVR again.
    pub async fn close(&self, task: Sid, now: Millis) -> Result<(), SmsError> {
        let (mut conversation, key) = self.by_task(task).await?;
        let record = conversation.as_ref().cloned().ok_or_else(|| not_found(task))?;
        match self.live.execute(Command::Complete { task, reason: "conversation closed".into() }).await {
            Ok(_) => {}
            Err(ExecuteError::Storage(err)) => return Err(SmsError::Storage(err)),
            // Completed already (through the REST API, or by a close cut short by a crash):
            // closing the conversation is still due.
            Err(ExecuteError::Refused(_))
                if self.live.read(|engine| engine.task(task).map(|task| task.status))
                    == Some(TaskStatus::Completed) => {}
            Err(ExecuteError::Refused(err)) => return Err(SmsError::Conflict(err.to_string())),
        }
        let closing = (!record.stopped)
            .then(|| self.new_outbox(&record.customer, &record.number, &self.settings.closing, now));
        // Only an opt-out outlives the conversation.
        let next = record.stopped.then(|| ConversationV1 {
            stopped: true,
            ..fresh(&record.customer, &record.number, &record.flow)
        });
        self.lock_by_task().remove(&task);
        let closing: Vec<OutboxV1> = closing.into_iter().collect();
        self.live.put_together(writes(&key, next.as_ref(), &closing)?).await?;
        *conversation = next;
        self.publish(closing);
        Ok(())
    }

    /// Forgets conversations left in the IVR (no task) with no text for a day; an opt-out is
    /// kept whatever its age.
    pub async fn sweep(&self, now: Millis) -> Result<(), SmsError> {
        for key in self.conversations.keys() {
            let mut conversation = self.conversations.lock(&key).await;
            let idle = conversation.as_ref().is_some_and(|c| {
                c.task.is_none()
                    && !c.stopped
                    && c.messages.last().is_none_or(|m| now - m.at > IDLE_FORGOTTEN)
            });
            if idle {
                self.live.delete::<ConversationRecord>(&key).await?;
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
        self.live.put(&OutboxRecord::V1(entry.clone())).await?;
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
        self.live.put_together(deletes).await?;
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
        conversation: &mut KeyedGuard<'_, ConversationV1>,
        record: ConversationV1,
        outbox: Vec<OutboxV1>,
    ) -> Result<(), SmsError> {
        let key = ConversationV1::key(&record.customer, &record.number);
        self.live.put_together(writes(&key, Some(&record), &outbox)?).await?;
        let known = conversation.as_ref().map_or(0, |old| old.messages.len());
        if let Some(task) = record.task {
            let new_outbox: Vec<u64> = record.messages.iter().skip(known).filter_map(|m| m.outbox).collect();
            for message in record.messages.iter().skip(known) {
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

    async fn by_task(&self, task: Sid) -> Result<(KeyedGuard<'_, ConversationV1>, String), SmsError> {
        let key = self.lock_by_task().get(&task).cloned().ok_or_else(|| not_found(task))?;
        let conversation = self.conversations.lock(&key).await;
        if conversation.as_ref().and_then(|c| c.task) != Some(task) {
            return Err(not_found(task));
        }
        Ok((conversation, key))
    }

    fn lock_by_task(&self) -> MutexGuard<'_, HashMap<Sid, String>> {
        self.by_task.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_outbox(&self) -> MutexGuard<'_, BTreeMap<u64, OutboxV1>> {
        self.outbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One atomic write: conversation `key` stored (or, `None`, deleted) with `outbox` entries.
fn writes(
    key: &str,
    conversation: Option<&ConversationV1>,
    outbox: &[OutboxV1],
) -> Result<Vec<KeyedWrite>, StoreError> {
    let mut writes = vec![match conversation {
        Some(conversation) => {
            let (key, value) = Store::encode(&ConversationRecord::V1(conversation.clone()))?;
            (key, Some(value))
        }
        None => (Store::key_of::<ConversationRecord>(key), None),
    }];
    for entry in outbox {
        let (key, value) = Store::encode(&OutboxRecord::V1(entry.clone()))?;
        writes.push((key, Some(value)));
    }
    Ok(writes)
}

fn fresh(customer: &str, number: &str, flow: &str) -> ConversationV1 {
    ConversationV1 {
        customer: customer.to_owned(),
        number: number.to_owned(),
        flow: flow.to_owned(),
        menu: None,
        failures: 0,
        language: String::new(),
        path: Vec::new(),
        task: None,
        messages: Vec::new(),
        stopped: false,
        answered: Vec::new(),
    }
}

/// Remembers that `message_sid` was answered `response` (the last few only).
fn remember(record: &mut ConversationV1, message_sid: &str, response: &Response) {
    if message_sid.is_empty() || record.answered.iter().any(|(sid, _)| sid == message_sid) {
        return;
    }
    record.answered.push((message_sid.to_owned(), response.to_xml()));
    let excess = record.answered.len().saturating_sub(ANSWERED_KEPT);
    record.answered.drain(..excess);
}

/// The messages so far as a task attribute, the latest that fit: task attributes are capped
/// (4 KiB in all), and the agent reads the whole conversation through its API anyway.
fn conversation_attribute(messages: &[MessageV1]) -> serde_json::Value {
    const BUDGET: usize = 2_000;
    let mut kept = Vec::new();
    let mut used = 0;
    for message in messages.iter().rev() {
        let body: String = message.body.chars().take(300).collect();
        used += body.len() + message.author.len() + 24;
        if used > BUDGET {
            break;
        }
        kept.push(json!({"author": message.author, "body": body}));
    }
    kept.reverse();
    serde_json::Value::Array(kept)
}

fn answered(conversation: &ConversationV1, message_sid: &str) -> Option<Response> {
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
fn record_replies(record: &mut ConversationV1, response: &Response, now: Millis) {
    for verb in &response.verbs {
        if let Verb::Message(sent) = verb {
            record.messages.push(message(now, "switchboard", &sent.body));
        }
    }
}

fn message(at: Millis, author: &str, body: &str) -> MessageV1 {
    MessageV1 { at, author: author.to_owned(), body: body.to_owned(), outbox: None }
}

fn text(body: &str) -> Response {
    Response::new(vec![Verb::Message(ivr::message(body.to_owned()))])
}

fn check_body(body: &str) -> Result<(), SmsError> {
    let length = body.chars().count();
    if body.trim().is_empty() {
        return Err(SmsError::Invalid("Body is empty".into()));
    }
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
