//! The caller's journey (DESIGN §1, voice): what each voice webhook does to the call, the
//! routing task and the store, and the TwiML it answers. No HTTP here: `http::voice` checks
//! signatures, parses the provider's form and renders what these functions return.
//!
//! Until the IVR routes a caller nothing is stored: their place in the flow travels in the
//! signed action URL. A routed call is one [`CallV1`] record, written in the same atomic group
//! as its task's creation and changed by one webhook at a time (a lock per call), so a
//! provider's retries and concurrent callbacks of the same call never create a second task.

pub mod flows;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::config::VoiceSettings;
use crate::ivr::{self, CallState, Effect, Flow, Input};
use crate::live::{self, ExecuteError, LiveEngine};
use crate::locks::{KeyedGuard, KeyedLocks};
use crate::routing::{Command, Millis, ReservationStatus, Sid, TaskStatus};
use crate::store::{CallRecord, CallV1, StoreError};
use crate::twiml::{self, DialTarget, Method, Response, Verb};
pub use flows::{Flows, FlowsError};

/// Where the provider posts each webhook; TwiML refers to them by path.
pub mod paths {
    pub const INCOMING: &str = "/voice/incoming";
    pub const IVR: &str = "/voice/ivr";
    pub const WAIT: &str = "/voice/wait";
    pub const DIAL_STATUS: &str = "/voice/dial-status";
    pub const STATUS: &str = "/voice/status";
    pub const VOICEMAIL: &str = "/voice/voicemail";
    pub const FALLBACK: &str = "/voice/fallback";
}

/// The parameters of a voice webhook that Switchboard reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallParams {
    pub call_sid: String,
    pub from: String,
    pub to: String,
    /// Keys pressed in a Gather.
    pub digits: Option<String>,
    /// The call's status (status callbacks).
    pub call_status: Option<String>,
    /// How the `<Dial>` to the agent ended (its action).
    pub dial_call_status: Option<String>,
    /// A recorded message (a `<Record>` action).
    pub recording_url: Option<String>,
    pub recording_duration: Option<u32>,
    /// The flow and the place in it, from the action URL of the menu the caller answers.
    pub ivr: Option<(String, CallState)>,
}

impl CallParams {
    /// Reads the webhook parameters (form and query, in one list).
    pub fn from_params(params: &[(String, String)]) -> CallParams {
        let get = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        let ivr = get("flow").zip(get("menu")).map(|(flow, menu)| {
            let state = CallState {
                menu,
                failures: get("failures").and_then(|failures| failures.parse().ok()).unwrap_or(0),
                language: get("language").unwrap_or_default(),
                path: get("path")
                    .filter(|path| !path.is_empty())
                    .map(|path| path.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
            };
            (flow, state)
        });
        CallParams {
            call_sid: get("CallSid").unwrap_or_default(),
            from: get("From").unwrap_or_default(),
            to: get("To").unwrap_or_default(),
            digits: get("Digits"),
            call_status: get("CallStatus"),
            dial_call_status: get("DialCallStatus"),
            recording_url: get("RecordingUrl"),
            recording_duration: get("RecordingDuration").and_then(|duration| duration.parse().ok()),
            ivr,
        }
    }
}

/// The action URL of a menu: `/voice/ivr` with the flow and the caller's place in it. The
/// provider posts the caller's answer there, signed over the whole URL, so the place in the
/// IVR needs no storage and cannot be forged.
fn ivr_action(flow: &str, state: &CallState) -> String {
    let path = state.path.join(",");
    let failures = state.failures.to_string();
    let query = serde_urlencoded::to_string([
        ("flow", flow),
        ("menu", state.menu.as_str()),
        ("failures", failures.as_str()),
        ("language", state.language.as_str()),
        ("path", path.as_str()),
    ])
    .unwrap_or_default();
    format!("{}?{query}", paths::IVR)
}

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("the IVR flows cannot be loaded:\n{0}")]
    Flows(#[from] FlowsError),
    /// A change could not be made durable: the server stops.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// What the voice webhooks share.
pub struct Voice {
    live: Arc<LiveEngine>,
    flows: Arc<Flows>,
    settings: VoiceSettings,
    /// The stored calls, one lock per call.
    calls: KeyedLocks<CallV1>,
    /// Per queue, how often callers leave it for an agent: the estimated wait.
    pace: Mutex<HashMap<Sid, Pace>>,
}

/// The mean time between two callers of a queue being connected (an exponential moving
/// average), from the calls this process saw.
#[derive(Debug, Clone, Copy)]
struct Pace {
    last: Millis,
    mean_gap: Option<f64>,
}

const SORRY_GOODBYE: &str = "Sorry, no one can take your call right now. Please call again later. Goodbye.";
const TECHNICAL_DIFFICULTY: &str =
    "Sorry, we are having technical difficulties. Please call again later. Goodbye.";
const VOICEMAIL_OFFER: &str =
    "Sorry, all our agents are still busy. Please leave a message after the tone, and we will call you back.";
const MESSAGE_TAKEN: &str = "Thank you. We will call you back. Goodbye.";
const STILL_TRYING: &str = "Please hold, we are connecting you to the next available agent.";
const PLEASE_HOLD: &str = "Please hold for the next available agent.";
/// Calls with no webhook for this long, and no task waiting, are forgotten.
const FORGET_AFTER: Millis = 4 * 3600 * 1000;

impl Voice {
    /// Loads the flows of `settings.ivr_dir` and the calls that were in progress.
    pub fn open(
        live: Arc<LiveEngine>,
        flows: Arc<Flows>,
        settings: &VoiceSettings,
    ) -> Result<Voice, VoiceError> {
        let calls = live
            .stored::<CallRecord>()?
            .into_iter()
            .map(|CallRecord::V1(call)| (call.call_sid.clone(), call));
        // Hold loops were interrupted by the restart: each caller gets a fresh abandon window.
        let now = live::now();
        let calls = KeyedLocks::new(calls.into_iter().map(|(sid, mut call)| {
            call.last_seen = now;
            (sid, call)
        }));
        Ok(Voice { live, flows, settings: settings.clone(), calls, pace: Mutex::new(HashMap::new()) })
    }

    pub fn flows(&self) -> &Flows {
        &self.flows
    }

    /// `POST /voice/incoming`: a new call hears its flow's first menu. Nothing is stored: the
    /// caller's place in the IVR travels in the signed action URL until the IVR routes them.
    /// A retry of a call already in line is answered with the hold loop.
    pub async fn incoming(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let mut call = self.calls.lock(&params.call_sid).await;
        if call.is_some() {
            return self.wait_with(&mut call, now).await;
        }
        let Some((name, flow)) = self.flows.for_number(&params.to) else {
            tracing::warn!(to = %params.to, "no IVR flow answers this number, and there is no main.toml");
            return Ok(technical_difficulty());
        };
        let state = CallState::new(flow, live::timestamp(now));
        Ok(ivr::step(flow, &state, &Input::Start, ivr::Medium::Voice(&|state| ivr_action(name, state)))
            .response)
    }

    /// `POST /voice/ivr?flow=..&menu=..`: the caller pressed keys (or nothing, or left a
    /// message) in a menu. A route creates the task and stores the call, once.
    pub async fn ivr(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let mut call = self.calls.lock(&params.call_sid).await;
        if call.is_some() {
            // A retry of the step that routed the call: it is already in line.
            return self.wait_with(&mut call, now).await;
        }
        let position = params.ivr.as_ref().and_then(|(name, state)| {
            let (name, flow) = self.flows.iter().find(|(known, _)| *known == name)?;
            Some((name.as_str(), flow, state.clone()))
        });
        let Some((name, flow, state)) = position.or_else(|| {
            // No (or an unknown) flow in the URL, e.g. a flow file renamed meanwhile: start over.
            let (name, flow) = self.flows.for_number(&params.to)?;
            Some((name, flow, CallState::new(flow, live::timestamp(now))))
        }) else {
            return Ok(technical_difficulty());
        };
        let input = match (&params.recording_url, &params.digits) {
            (Some(url), _) => {
                Input::Recording { url: url.clone(), duration: params.recording_duration.unwrap_or(0) }
            }
            (None, digits) => Input::Digits(digits.clone().unwrap_or_default()),
        };
        let step = ivr::step(flow, &state, &input, ivr::Medium::Voice(&|state| ivr_action(name, state)));
        let Effect::Route(request) = step.effect else { return Ok(step.response) };
        let mut record = CallV1 {
            call_sid: params.call_sid.clone(),
            from: params.from.clone(),
            to: params.to.clone(),
            flow: name.to_owned(),
            menu: String::new(),
            failures: 0,
            language: String::new(),
            path: Vec::new(),
            task: None,
            started_at: now,
            last_seen: now,
            announced_at: None,
            bridged: None,
            // A voicemail menu routes with the message already recorded.
            voicemail: request.voicemail,
            message_left: request.voicemail,
            ended_at: None,
        };
        set_state(&mut record, step.state);
        let Some(mut record) = self.create_task(record, request).await? else {
            return Ok(technical_difficulty());
        };
        let response = if record.voicemail {
            step.response
        } else {
            self.hold(flow, &mut record, Some(PLEASE_HOLD), now)
        };
        *call = Some(record);
        Ok(response)
    }

    /// `POST /voice/wait`: the hold loop. Announces the caller's place in line, holds, and asks
    /// again; once an agent accepted, bridges the caller to them.
    pub async fn wait(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let mut call = self.calls.lock(&params.call_sid).await;
        if call.is_none() {
            return Ok(goodbye(None, SORRY_GOODBYE));
        }
        self.wait_with(&mut call, now).await
    }

    async fn wait_with(
        &self,
        call: &mut KeyedGuard<'_, CallV1>,
        now: Millis,
    ) -> Result<Response, VoiceError> {
        let Some(record) = call.as_mut() else { return Ok(goodbye(None, SORRY_GOODBYE)) };
        let flow = self.flow_of(record).clone();
        record.last_seen = now;
        let Some(task_sid) = record.task else {
            // Calls are stored once routed; a record without a task is not written any more.
            return self.forget(call, technical_difficulty()).await;
        };
        enum Next {
            Hold,
            Bridge { reservation: Sid, target: Option<DialTarget>, queue: Option<Sid>, waited: Millis },
            Gone,
        }
        let next = self.live.read(|engine| {
            let Some(task) = engine.task(task_sid) else { return Next::Gone };
            match task.status {
                TaskStatus::Pending | TaskStatus::Reserved => Next::Hold,
                TaskStatus::Assigned => {
                    let accepted = task.reservations.iter().rev().find_map(|sid| {
                        engine.reservation(*sid).filter(|r| r.status == ReservationStatus::Accepted)
                    });
                    match accepted {
                        Some(reservation) => {
                            let worker = engine.reservation_worker(reservation);
                            let target = worker.attributes["contact_uri"]
                                .as_str()
                                .and_then(DialTarget::from_contact_uri);
                            Next::Bridge {
                                reservation: reservation.sid,
                                target,
                                queue: engine.task_queue(task).map(|queue| queue.sid),
                                waited: now - task.created_at,
                            }
                        }
                        None => Next::Gone,
                    }
                }
                _ => Next::Gone,
            }
        });
        match next {
            Next::Gone if record.voicemail => self.forget(call, goodbye(Some(&flow), MESSAGE_TAKEN)).await,
            Next::Gone => {
                let language = record.language.clone();
                self.forget(call, goodbye_in(&flow, &language, SORRY_GOODBYE)).await
            }
            Next::Bridge { reservation, target: None, .. } => {
                tracing::warn!(%reservation, "the accepting worker has no usable contact_uri: routing the call to the next agent");
                // Nothing stored changes: the call was not bridged, and still waits.
                self.execute(Command::Unanswered { reservation }).await?;
                Ok(self.hold(&flow, record, Some(STILL_TRYING), now))
            }
            Next::Bridge { reservation, target: Some(target), queue, waited } => {
                if record.bridged != Some(reservation) {
                    if let Some(queue) = queue {
                        self.record_pace(queue, now);
                    }
                    tracing::info!(call_sid = %record.call_sid, %reservation, waited_ms = waited, "bridging the caller to the accepting agent");
                    // Durable: after a restart, the Dial's outcome must still find its agent.
                    record.bridged = Some(reservation);
                    self.live.put(&CallRecord::V1(record.clone())).await?;
                }
                let dial = twiml::Dial {
                    target,
                    action: Some(paths::DIAL_STATUS.to_owned()),
                    method: Some(Method::Post),
                    timeout: Some(self.settings.dial_timeout),
                    caller_id: None,
                    // The caller hears ringing, not silence, until the agent picks up.
                    answer_on_bridge: Some(true),
                };
                Ok(Response::new(vec![Verb::Dial(dial)]))
            }
            Next::Hold => {
                let waited = now - record.started_at;
                if self.settings.voicemail_after > 0
                    && waited >= Millis::from(self.settings.voicemail_after) * 1000
                    && !record.voicemail
                {
                    record.voicemail = true;
                    self.live.put(&CallRecord::V1(record.clone())).await?;
                    return Ok(Response::new(vec![
                        Verb::Say(ivr::say(&flow, &record.language, VOICEMAIL_OFFER)),
                        Verb::Record(ivr::record(paths::VOICEMAIL, ivr::DEFAULT_MAX_LENGTH)),
                    ]));
                }
                // `last_seen` and `announced_at` only need to live in memory (a restart gives
                // every caller a fresh abandon window), so a poll writes nothing.
                Ok(self.hold(&flow, record, None, now))
            }
        }
    }

    /// `POST /voice/dial-status`: how the call to the agent ended.
    pub async fn dial_status(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let mut call = self.calls.lock(&params.call_sid).await;
        let Some(record) = call.as_mut() else { return Ok(Response::new(vec![Verb::Hangup])) };
        let Some(reservation) = record.bridged.take() else {
            // Not bridged (a retry of this callback, say): carry on holding.
            return self.wait_with(&mut call, now).await;
        };
        let status = params.dial_call_status.as_deref().unwrap_or("");
        match status {
            // `completed`: the agent and the caller talked and the call is over. `canceled`:
            // the caller hung up while the agent's phone rang, which is not the agent's doing.
            // Either way the task moves to after-call work, where the agent closes it.
            "completed" | "answered" | "canceled" => {
                if let Some(task) = record.task {
                    self.wrap_up(task).await?;
                }
                self.forget(&mut call, Response::new(vec![Verb::Hangup])).await
            }
            _ => {
                tracing::info!(call_sid = %record.call_sid, %reservation, status, "the agent did not answer: routing the call to the next agent");
                self.execute(Command::Unanswered { reservation }).await?;
                self.live.put(&CallRecord::V1(record.clone())).await?;
                // The caller was in the Dial, not polling: their hold loop starts again now.
                record.last_seen = now;
                let flow = self.flow_of(record).clone();
                Ok(self.hold(&flow, record, Some(STILL_TRYING), now))
            }
        }
    }

    /// `POST /voice/status`: the call's status callback. A caller who hangs up while waiting
    /// cancels the task (and its pending offers); a call that ends while bridged wraps up.
    pub async fn status(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let ended = matches!(
            params.call_status.as_deref(),
            Some("completed" | "busy" | "failed" | "no-answer" | "canceled")
        );
        if !ended {
            return Ok(Response::default());
        }
        let mut call = self.calls.lock(&params.call_sid).await;
        let Some(record) = call.as_mut() else { return Ok(Response::default()) };
        if record.voicemail && !record.message_left {
            // Hanging up is how most callers end a message, and the recording's own request
            // may come after this one: keep the call for it (the sweep ends the wait).
            record.ended_at = Some(now);
            self.live.put(&CallRecord::V1(record.clone())).await?;
            return Ok(Response::default());
        }
        if let Some(task) = record.task {
            let status = self.live.read(|engine| engine.task(task).map(|task| task.status));
            match status {
                Some(status) if status.is_waiting() && !record.voicemail => {
                    self.cancel(task, "caller hung up").await?;
                }
                Some(TaskStatus::Assigned) => self.wrap_up(task).await?,
                _ => {}
            }
        }
        self.forget(&mut call, Response::default()).await
    }

    /// `POST /voice/voicemail`: the message a waiting caller left; the task keeps its place in
    /// line as a call-back and carries the recording.
    pub async fn voicemail(&self, params: &CallParams) -> Result<Response, VoiceError> {
        let mut call = self.calls.lock(&params.call_sid).await;
        let Some(record) = call.as_mut() else { return Ok(Response::new(vec![Verb::Hangup])) };
        let flow = self.flow_of(record).clone();
        let Some(task) = record.task else {
            return self.forget(&mut call, Response::new(vec![Verb::Hangup])).await;
        };
        let Some(url) = params.recording_url.as_ref().filter(|url| !url.is_empty()) else {
            // Nothing recorded: the caller left without a message, and without waiting.
            self.cancel_if_waiting(task, "hung up before leaving a message").await?;
            return self.forget(&mut call, Response::new(vec![Verb::Hangup])).await;
        };
        let attributes =
            self.live.read(|engine| engine.task(task).map(|task| serde_json::Value::clone(&task.attributes)));
        if let Some(mut attributes) = attributes {
            attributes["voicemail"] = json!({"url": url, "duration": params.recording_duration.unwrap_or(0)});
            match self.live.execute(Command::UpdateTaskAttributes { task, attributes }).await {
                Ok(_) => {}
                Err(ExecuteError::Storage(err)) => return Err(VoiceError::Storage(err)),
                Err(ExecuteError::Refused(err)) => {
                    tracing::warn!(%err, %task, "the voicemail could not be stored with its task")
                }
            }
        }
        record.voicemail = true;
        record.message_left = true;
        let thanks = goodbye_in(&flow, &record.language, MESSAGE_TAKEN);
        if record.ended_at.is_some() {
            // The call was reported over already: nothing more will come for it.
            return self.forget(&mut call, thanks).await;
        }
        self.live.put(&CallRecord::V1(record.clone())).await?;
        Ok(thanks)
    }

    /// Cancels the tasks of callers whose hold loop stopped (no request for
    /// `abandon_after` seconds, and no status callback), and forgets calls long over.
    pub async fn sweep(&self, now: Millis) -> Result<(), VoiceError> {
        let abandon_after = Millis::from(self.settings.abandon_after) * 1000;
        for call_sid in self.calls.keys() {
            let mut call = self.calls.lock(&call_sid).await;
            let Some(record) = call.as_ref() else { continue };
            let idle = now - record.last_seen;
            let waiting = record.task.and_then(|task| {
                self.live.read(|engine| engine.task(task).map(|task| (task.sid, task.status)))
            });
            match waiting {
                Some((task, status))
                    if status.is_waiting()
                        && record.voicemail
                        && !record.message_left
                        && (record.ended_at.is_some_and(|ended| now - ended > abandon_after)
                            || idle > abandon_after + Millis::from(ivr::DEFAULT_MAX_LENGTH) * 1000) =>
                {
                    tracing::info!(call_sid = %record.call_sid, %task, "the caller hung up without leaving a message: canceling the task");
                    self.cancel(task, "hung up before leaving a message").await?;
                    self.forget(&mut call, Response::default()).await?;
                }
                Some((task, status))
                    if status.is_waiting()
                        && !record.voicemail
                        && record.bridged.is_none()
                        && idle > abandon_after =>
                {
                    tracing::info!(call_sid = %record.call_sid, %task, idle_ms = idle, "the hold loop stopped: canceling the task");
                    self.cancel(task, "hold loop abandoned").await?;
                    self.forget(&mut call, Response::default()).await?;
                }
                Some((_, status)) if status.is_waiting() || status == TaskStatus::Assigned => {}
                _ if idle > FORGET_AFTER => {
                    self.forget(&mut call, Response::default()).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The hold TwiML: an optional notice, the place in line when due, music or silence, and
    /// the loop back to `/voice/wait`.
    fn hold(&self, flow: &Flow, record: &mut CallV1, notice: Option<&str>, now: Millis) -> Response {
        let mut verbs = Vec::new();
        if let Some(notice) = notice {
            verbs.push(Verb::Say(ivr::say(flow, &record.language, notice)));
        }
        let due = record
            .announced_at
            .is_none_or(|at| now - at >= Millis::from(self.settings.announce_every) * 1000);
        if due && let Some(announcement) = record.task.and_then(|task| self.announcement(task)) {
            verbs.push(Verb::Say(ivr::say(flow, &record.language, &announcement)));
            record.announced_at = Some(now);
        }
        if self.settings.hold_music_url.is_empty() {
            verbs.push(Verb::Pause { length: Some(self.settings.wait_seconds.max(1)) });
        } else {
            verbs.push(Verb::Play(twiml::Play { url: self.settings.hold_music_url.clone(), repeat: None }));
        }
        verbs.push(Verb::Redirect { url: paths::WAIT.to_owned(), method: Some(Method::Post) });
        Response::new(verbs)
    }

    /// "You are number 3 in line. The estimated wait is about 2 minutes."
    fn announcement(&self, task: Sid) -> Option<String> {
        let (queue, position) =
            self.live.read(|engine| engine.task(task).and_then(|task| engine.queue_position(task)))?;
        let place = match position {
            1 => "You are next in line.".to_owned(),
            n => format!("You are number {n} in line."),
        };
        let mean_gap = self.lock_pace().get(&queue).and_then(|pace| pace.mean_gap);
        Some(match mean_gap {
            Some(gap) => {
                let minutes = ((gap * position as f64) / 60_000.0).ceil().max(1.0) as u64;
                let unit = if minutes == 1 { "minute" } else { "minutes" };
                format!("{place} The estimated wait is about {minutes} {unit}.")
            }
            None => place,
        })
    }

    fn record_pace(&self, queue: Sid, now: Millis) {
        let mut pace = self.lock_pace();
        let entry = pace.entry(queue).or_insert(Pace { last: now, mean_gap: None });
        if entry.last < now {
            let gap = (now - entry.last) as f64;
            // Recent connections count most; one slow hour should not stick forever.
            entry.mean_gap = Some(entry.mean_gap.map_or(gap, |mean| 0.8 * mean + 0.2 * gap));
        }
        entry.last = now;
    }

    /// Creates the call's task and stores the call with it, in one atomic write (a crash
    /// between the two would leave a task no call record knows, and a retry would make a
    /// second one). None when the task was refused (logged).
    async fn create_task(
        &self,
        record: CallV1,
        request: ivr::RouteRequest,
    ) -> Result<Option<CallV1>, VoiceError> {
        let extra = [
            ("call_sid", json!(record.call_sid)),
            ("from", json!(record.from)),
            ("to", json!(record.to)),
            ("ivr_flow", json!(record.flow)),
        ];
        let task = self.live.read(|engine| request.into_task(engine.workflows(), "voice", &extra));
        let flow = record.flow.clone();
        let command = match task {
            Ok(task) => Command::CreateTask(task),
            Err(err) => {
                tracing::error!(%flow, %err, "the IVR's task cannot be created");
                return Ok(None);
            }
        };
        let stored = self.live.execute_with(command, |task| CallRecord::V1(CallV1 { task, ..record })).await;
        match stored {
            Ok((_, CallRecord::V1(record))) => Ok(Some(record)),
            Err(ExecuteError::Storage(err)) => Err(VoiceError::Storage(err)),
            Err(ExecuteError::Refused(err)) => {
                tracing::error!(%flow, %err, "the IVR's task was refused");
                Ok(None)
            }
        }
    }

    /// Cancels `task` if it still waits for an agent.
    async fn cancel_if_waiting(&self, task: Sid, reason: &str) -> Result<(), VoiceError> {
        let waiting = self.live.read(|engine| engine.task(task).is_some_and(|task| task.status.is_waiting()));
        if waiting {
            self.cancel(task, reason).await?;
        }
        Ok(())
    }

    /// The flow a call walks; the numbers' flow when its own file is gone (renamed while the
    /// caller held), so that the call still sounds like the line they called.
    fn flow_of(&self, record: &CallV1) -> &Flow {
        self.flows
            .get(&record.flow)
            .or_else(|| self.flows.for_number(&record.to).map(|(_, flow)| flow))
            .or_else(|| self.flows.iter().next().map(|(_, flow)| flow))
            .expect("a folder of flows holds at least one (checked at load)")
    }

    async fn cancel(&self, task: Sid, reason: &str) -> Result<(), VoiceError> {
        self.execute(Command::Cancel { task, reason: reason.to_owned() }).await
    }

    async fn wrap_up(&self, task: Sid) -> Result<(), VoiceError> {
        self.execute(Command::WrapUp { task }).await
    }

    /// Runs `command`; a refusal (the state moved on meanwhile, say) is logged, not an error
    /// for the caller.
    async fn execute(&self, command: Command) -> Result<(), VoiceError> {
        match self.live.execute(command).await {
            Ok(_) => Ok(()),
            Err(ExecuteError::Storage(err)) => Err(VoiceError::Storage(err)),
            Err(ExecuteError::Refused(err)) => {
                tracing::info!(%err, "a call's change no longer applied");
                Ok(())
            }
        }
    }

    /// Forgets the call (durably) and answers `response`.
    async fn forget(
        &self,
        call: &mut KeyedGuard<'_, CallV1>,
        response: Response,
    ) -> Result<Response, VoiceError> {
        if let Some(record) = call.take() {
            self.live.delete::<CallRecord>(&record.call_sid).await?;
        }
        Ok(response)
    }

    fn lock_pace(&self) -> std::sync::MutexGuard<'_, HashMap<Sid, Pace>> {
        self.pace.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stored record of a call, if any (tests and diagnostics).
    pub async fn call_record(&self, call_sid: &str) -> Option<CallV1> {
        self.calls.lock(call_sid).await.clone()
    }
}

/// What every webhook answers when Switchboard itself failed.
pub fn technical_difficulty() -> Response {
    goodbye(None, TECHNICAL_DIFFICULTY)
}

fn goodbye(flow: Option<&Flow>, text: &str) -> Response {
    let say = match flow {
        Some(flow) => ivr::say(flow, &flow.language, text),
        None => twiml::Say { text: text.to_owned(), ..twiml::Say::default() },
    };
    Response::new(vec![Verb::Say(say), Verb::Hangup])
}

fn goodbye_in(flow: &Flow, language: &str, text: &str) -> Response {
    Response::new(vec![Verb::Say(ivr::say(flow, language, text)), Verb::Hangup])
}

fn set_state(record: &mut CallV1, state: CallState) {
    record.menu = state.menu;
    record.failures = state.failures;
    record.language = state.language;
    record.path = state.path;
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::{self, awkward_text};

    #[test]
    fn the_place_in_the_ivr_round_trips_through_the_action_url() {
        let state = CallState {
            menu: "support & billing".into(),
            failures: 2,
            language: "es-MX".into(),
            path: vec!["9".into(), "2".into()],
        };
        let action = ivr_action("main.toml", &state);
        assert_eq!(
            action,
            "/voice/ivr?flow=main.toml&menu=support+%26+billing&failures=2&language=es-MX&path=9%2C2"
        );

        let query: Vec<(String, String)> =
            serde_urlencoded::from_str(action.split_once('?').unwrap().1).unwrap();
        let params = CallParams::from_params(&query);

        assert_eq!(params.ivr, Some(("main.toml".to_owned(), state)));
        assert_eq!(CallParams::from_params(&[]).ivr, None, "no flow in the URL: start over");
    }

    proptest! {
        #![proptest_config(fuzzing::config(1_000))]

        /// Fuzz target (see `crate::fuzzing`): any flow and menu name, language and count of
        /// failures comes back from the action URL as it went in.
        #[test]
        fn fuzz_the_place_in_the_ivr_round_trips(
            flow in awkward_text(),
            menu in awkward_text(),
            failures in any::<u32>(),
            language in awkward_text(),
            path in prop::collection::vec(
                prop::sample::select(vec!["0", "1", "9", "*", "#"]).prop_map(str::to_owned),
                0..6,
            ),
        ) {
            let state = CallState { menu, failures, language, path };
            let action = ivr_action(&flow, &state);
            let query: Vec<(String, String)> =
                serde_urlencoded::from_str(action.split_once('?').unwrap().1).unwrap();
            prop_assert_eq!(CallParams::from_params(&query).ivr, Some((flow, state)));
        }
    }
}
