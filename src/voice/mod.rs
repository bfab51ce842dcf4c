//! The caller's journey (DESIGN §1, voice): what each voice webhook does to the call, the
//! routing task and the store, and the TwiML it answers. No HTTP here: `http::voice` checks
//! signatures, parses the provider's form and renders what these functions return.
//!
//! Until the IVR routes a caller nothing is stored: their place in the flow travels in the
//! signed action URL. A routed call is a [`Call`], stored (as a `CallV1` record) in the same
//! atomic group as its task's creation and changed by one webhook at a time (a lock per call),
//! so a provider's retries and concurrent callbacks of the same call never create a second
//! task. What each webhook does to a routed call is decided in [`call`], without I/O; this
//! module is the shell that reads the engine, holds the call's lock and carries it out.

pub mod call;
pub mod callback;
pub mod conference;
pub mod flows;
pub mod supervise;
#[cfg(test)]
mod tests;
pub mod transfer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::json;

use crate::config::VoiceSettings;
use crate::ivr::{self, CallState, Effect, Flow, Input};
use crate::live::{self, ExecuteError, LiveEngine};
use crate::locks::{KeyedGuard, KeyedLocks};
use crate::outbound::voice_api::{
    self, CallUpdate, NewParticipant, ParticipantUpdate, RecordingStatus, VoiceApi, VoiceApiError,
};
use crate::routing::{Command, Millis, ReservationStatus, Sid, SidKind, TaskStatus};
use crate::store::{CallRecord, CallV1, StoreError};
use crate::twiml::{self, DialTarget, Response, Verb};
pub use call::{Accepted, Action, Bridge, Call, Context, Decision, ProviderRequest, Seen, Stage};
pub use flows::{Flows, FlowsError, Ivr, Reloaded};

/// Where the provider posts each webhook; TwiML refers to them by path.
pub mod paths {
    pub const INCOMING: &str = "/voice/incoming";
    pub const IVR: &str = "/voice/ivr";
    pub const WAIT: &str = "/voice/wait";
    pub const DIAL_STATUS: &str = "/voice/dial-status";
    pub const STATUS: &str = "/voice/status";
    pub const VOICEMAIL: &str = "/voice/voicemail";
    /// The agent's leg's status callback (conference bridging).
    pub const AGENT_LEG: &str = "/voice/agent-leg";
    /// The conference's events.
    pub const CONFERENCE: &str = "/voice/conference";
    /// The caller's `<Dial><Conference>` action.
    pub const CONFERENCE_ENDED: &str = "/voice/conference-ended";
    /// The recording's status callback.
    pub const RECORDING: &str = "/voice/recording";
    pub const FALLBACK: &str = "/voice/fallback";
    /// An outbound call's TwiML, fetched when the customer answers (`?task=`).
    pub const OUTBOUND: &str = "/voice/outbound";
}

/// The parameters of a voice webhook that Switchboard reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallParams {
    pub call_sid: String,
    pub from: String,
    pub to: String,
    /// Keys pressed in a Gather.
    pub digits: Option<String>,
    /// What the caller said in a Gather that listens for speech.
    pub speech_result: Option<String>,
    /// The call's status (status callbacks).
    pub call_status: Option<String>,
    /// How the `<Dial>` to the agent ended (its action).
    pub dial_call_status: Option<String>,
    /// A recorded message (a `<Record>` action).
    pub recording_url: Option<String>,
    pub recording_duration: Option<u32>,
    /// The flow and the place in it, from the action URL of the menu the caller answers.
    pub ivr: Option<(String, CallState)>,
    /// The caller's CallSid, from the query of a callback about another leg or the
    /// conference (`?call=`).
    pub caller: Option<String>,
    /// The reservation an agent's leg was placed for (`?reservation=`).
    pub reservation: Option<Sid>,
    /// The task an outbound call was placed for (`?task=`).
    pub task: Option<Sid>,
    /// A conference's event.
    pub conference_event: Option<conference::ConferenceEvent>,
    /// A recording's status callback.
    pub recording: Option<RecordingParams>,
}

/// A recording's status callback (`RecordingSid`, `RecordingUrl`, `RecordingStatus`,
/// `RecordingDuration`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingParams {
    pub sid: String,
    pub url: String,
    pub status: String,
    pub duration: u32,
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
                memory: get("memory").map(|memory| memory_from_url(&memory)).unwrap_or_default(),
            };
            (flow, state)
        });
        CallParams {
            call_sid: get("CallSid").unwrap_or_default(),
            from: get("From").unwrap_or_default(),
            to: get("To").unwrap_or_default(),
            digits: get("Digits"),
            speech_result: get("SpeechResult").filter(|speech| !speech.trim().is_empty()),
            call_status: get("CallStatus"),
            dial_call_status: get("DialCallStatus"),
            recording_url: get("RecordingUrl"),
            recording_duration: get("RecordingDuration").and_then(|duration| duration.parse().ok()),
            ivr,
            caller: get("call"),
            reservation: get("reservation").and_then(|sid| Sid::parse(&sid, SidKind::Reservation).ok()),
            task: get("task").and_then(|sid| Sid::parse(&sid, SidKind::Task).ok()),
            conference_event: get("StatusCallbackEvent").zip(get("ConferenceSid")).map(
                |(event, conference)| conference::ConferenceEvent {
                    event,
                    conference,
                    call_sid: get("CallSid"),
                    muted: get("Muted").map(|muted| muted == "true"),
                    hold: get("Hold").map(|hold| hold == "true"),
                },
            ),
            recording: get("RecordingSid").zip(get("RecordingStatus")).map(|(sid, status)| RecordingParams {
                sid,
                url: get("RecordingUrl").unwrap_or_default(),
                status,
                duration: get("RecordingDuration").and_then(|duration| duration.parse().ok()).unwrap_or(0),
            }),
        }
    }
}

/// The action URL of a step: `/voice/ivr` with the flow and the caller's place in it, their
/// variables included (at most [`ivr::MAX_CARRIED`] bytes of JSON). The provider posts the
/// caller's answer there, signed over the whole URL, so the place in the IVR needs no storage
/// and cannot be forged.
fn ivr_action(flow: &str, state: &CallState) -> String {
    let path = state.path.join(",");
    let failures = state.failures.to_string();
    let mut params = vec![("flow", flow), ("menu", state.menu.as_str())];
    // What is absent reads as its default: every byte of this URL travels twice per step.
    if state.failures > 0 {
        params.push(("failures", failures.as_str()));
    }
    params.push(("language", state.language.as_str()));
    if !path.is_empty() {
        params.push(("path", path.as_str()));
    }
    let mut url = format!("{}?{}", paths::IVR, serde_urlencoded::to_string(params).unwrap_or_default());
    // Last, and not percent-encoded: URL-safe base64 needs none.
    memory_in_url(&state.memory, &mut url);
    url
}

/// A caller's variables as the action URL carries them: their JSON in unpadded URL-safe
/// base64, a third longer than the JSON where percent-encoding would double it, and with
/// nothing for the TwiML writer to escape.
fn memory_in_url(memory: &ivr::Memory, url: &mut String) {
    let json = memory.encode();
    if !json.is_empty() {
        url.push_str("&memory=");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(json, url);
    }
}

/// The variables [`memory_in_url`] wrote (the URL is signed, so nothing else arrives).
fn memory_from_url(text: &str) -> ivr::Memory {
    ivr::Memory::decode_bytes(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).unwrap_or_default(),
    )
}

/// Why an agent's control of their call was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The task has no call Switchboard holds (not a call, or over).
    #[error("this task has no call in progress")]
    NoCall,
    #[error(transparent)]
    Refused(conference::ControlRefused),
    /// The provider did not do it.
    #[error(transparent)]
    Provider(VoiceApiError),
    /// The routing engine refused (a transfer to someone who cannot take it now...).
    #[error(transparent)]
    Routing(crate::routing::RoutingError),
    #[error(transparent)]
    Voice(#[from] VoiceError),
}

/// Why a recording's audio cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("task {task} has no recording {recording}")]
    NotOfTask { task: Sid, recording: String },
    #[error(
        "recordings are fetched through the provider's Voice API, which needs voice.bridge = \"conference\""
    )]
    NoApi,
    #[error(transparent)]
    Provider(VoiceApiError),
}

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("the IVR flows cannot be loaded:\n{0}")]
    Flows(#[from] FlowsError),
    /// A change could not be made durable: the server stops.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// What the voice webhooks share: the shell around [`call`]'s decisions, which reads the
/// engine, takes the call's lock and carries the decided actions out.
pub struct Voice {
    live: Arc<LiveEngine>,
    ivr: Arc<Ivr>,
    settings: VoiceSettings,
    /// The stored calls, one lock per call.
    calls: KeyedLocks<Call>,
    /// Records of calls stored before the IVR routed them, which the first stores wrote:
    /// nothing more will come for them, and the first sweep deletes them.
    unrouted: Mutex<Vec<String>>,
    /// Callbacks whose next try is due, made once the sweep lets go of their calls' locks.
    due_callbacks: Mutex<Vec<(Sid, String)>>,
    /// Per queue, how often callers leave it for an agent: the estimated wait.
    pace: Mutex<HashMap<Sid, Pace>>,
    /// Where the provider reaches this server: `voice.public_url`, or else the listener's
    /// address once bound ([`Voice::listening_on`]).
    base_url: std::sync::OnceLock<String>,
    /// The provider's Voice API, with conference bridging.
    api: Option<VoiceApi>,
    /// What the agent page shows of each task's call in a conference, kept as each is stored.
    /// Each task's view of its call, with the call's SID.
    views: Mutex<HashMap<Sid, (String, conference::CallView)>>,
    /// The task whose call's view changed.
    view_changes: tokio::sync::broadcast::Sender<Sid>,
    /// How many times a view changed: with the engine's event count, how the agent page tells a
    /// newer state from an older one that arrives late.
    views_changed: std::sync::atomic::AtomicU64,
}

/// The mean time between two callers of a queue being connected (an exponential moving
/// average), from the calls this process saw.
#[derive(Debug, Clone, Copy)]
struct Pace {
    last: Millis,
    mean_gap: Option<f64>,
}

impl Voice {
    /// Loads the flows of `settings.ivr_dir` and the calls that were in progress.
    pub fn open(
        live: Arc<LiveEngine>,
        ivr: Arc<Ivr>,
        settings: &VoiceSettings,
        api: Option<VoiceApi>,
    ) -> Result<Voice, VoiceError> {
        // Hold loops were interrupted by the restart: each caller gets a fresh abandon window.
        let now = live::now();
        let (mut calls, mut unrouted) = (Vec::new(), Vec::new());
        for CallRecord::V1(record) in live.stored::<CallRecord>()? {
            let sid = record.call_sid.clone();
            match record.into_call() {
                Some(call) => calls.push((sid, Call { last_seen: now, ..call })),
                None => unrouted.push(sid),
            }
        }
        let views = calls
            .iter()
            .flat_map(|(_, call)| {
                conference::views(call).into_iter().map(|(task, view)| (task, (call.sid.clone(), view)))
            })
            .collect();
        Ok(Voice {
            live,
            ivr,
            settings: settings.clone(),
            calls: KeyedLocks::new(calls),
            unrouted: Mutex::new(unrouted),
            due_callbacks: Mutex::new(Vec::new()),
            pace: Mutex::new(HashMap::new()),
            base_url: match settings.public_url.as_str() {
                "" => std::sync::OnceLock::new(),
                configured => std::sync::OnceLock::from(configured.to_owned()),
            },
            api,
            views: Mutex::new(views),
            view_changes: tokio::sync::broadcast::channel(1024).0,
            views_changed: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The agent page's view of the call of `task`, while it is bridged in a conference.
    pub fn call_view(&self, task: Sid) -> Option<conference::CallView> {
        self.lock_views().get(&task).map(|(_, view)| view.clone())
    }

    /// The tasks whose calls change as the agent page shows them.
    pub fn subscribe_views(&self) -> tokio::sync::broadcast::Receiver<Sid> {
        self.view_changes.subscribe()
    }

    fn lock_views(&self) -> std::sync::MutexGuard<'_, HashMap<Sid, (String, conference::CallView)>> {
        self.views.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `call` (durable when this returns), then shows it as it now is.
    async fn save(&self, call: &Call) -> Result<(), StoreError> {
        self.live.put(&CallRecord::V1(CallV1::from(call))).await?;
        self.show(&call.sid, conference::views(call));
        Ok(())
    }

    /// Shows the call `call_sid` to the agent pages of the tasks in `views`, and no longer to
    /// those of its other tasks (a transfer moved on, or the call is over).
    fn show(&self, call_sid: &str, views: Vec<(Sid, conference::CallView)>) {
        let mut changed = Vec::new();
        {
            let mut shown = self.lock_views();
            shown.retain(|task, (call, _)| {
                let keep = call != call_sid || views.iter().any(|(current, _)| current == task);
                if !keep {
                    changed.push(*task);
                }
                keep
            });
            for (task, view) in views {
                if shown.get(&task).map(|(_, shown)| shown) != Some(&view) {
                    shown.insert(task, (call_sid.to_owned(), view));
                    changed.push(task);
                }
            }
        }
        for task in changed {
            self.views_changed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = self.view_changes.send(task);
        }
    }

    /// How many times a call's view changed since the start.
    pub fn views_changed(&self) -> u64 {
        self.views_changed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The IVR flows in use, and what walks calls (and texts) through them.
    pub fn ivr_flows(&self) -> &Ivr {
        &self.ivr
    }

    /// The server listens on `address`: the base of the URLs given to the provider, unless
    /// `voice.public_url` says otherwise.
    pub fn listening_on(&self, address: std::net::SocketAddr) {
        let _ = self.base_url.set(format!("http://{address}"));
    }

    /// `POST /voice/incoming`: a new call hears its flow's first menu. Nothing is stored: the
    /// caller's place in the IVR travels in the signed action URL until the IVR routes them.
    /// A retry of a call already in line is answered with the hold loop.
    pub async fn incoming(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let arrived = tokio::time::Instant::now();
        let mut guard = self.calls.lock(&params.call_sid).await;
        if guard.is_some() {
            return self.decide(&mut guard, now, call::on_wait).await;
        }
        let flows = self.ivr.flows();
        let Some((name, flow)) = flows.for_number(&params.to) else {
            tracing::warn!(to = %params.to, "no IVR flow answers this number, and there is no main.toml");
            return Ok(technical_difficulty());
        };
        let state = CallState::new(flow, live::timestamp(now));
        self.walk(&mut guard, params, (name, flow), state, Input::Start, (now, arrived)).await
    }

    /// `POST /voice/ivr?flow=..&menu=..`: the caller pressed keys (or said something, or
    /// nothing, or left a message, or a forwarded call ended) at a step. A route creates the
    /// task and stores the call, once.
    /// `place` is `params.ivr`, handed over: the caller's variables are not copied.
    pub async fn ivr(
        &self,
        params: &CallParams,
        place: Option<(String, CallState)>,
        now: Millis,
    ) -> Result<Response, VoiceError> {
        let arrived = tokio::time::Instant::now();
        let mut guard = self.calls.lock(&params.call_sid).await;
        if guard.is_some() {
            // A retry of the step that routed the call: it is already in line.
            return self.decide(&mut guard, now, call::on_wait).await;
        }
        let flows = self.ivr.flows();
        let position = place.and_then(|(name, state)| {
            let (name, flow) = flows.iter().find(|(known, _)| **known == name)?;
            Some((name.as_str(), flow, state))
        });
        let Some((name, flow, state)) = position.or_else(|| {
            // No (or an unknown) flow in the URL, e.g. a flow file renamed meanwhile: start over.
            let (name, flow) = flows.for_number(&params.to)?;
            Some((name, flow, CallState::new(flow, live::timestamp(now))))
        }) else {
            return Ok(technical_difficulty());
        };
        let input = match (&params.recording_url, &params.dial_call_status, &params.speech_result) {
            (Some(url), _, _) => {
                Input::Recording { url: url.clone(), duration: params.recording_duration.unwrap_or(0) }
            }
            (None, Some(status), _) => Input::Dialed(status.clone()),
            (None, None, Some(speech)) if params.digits.as_deref().is_none_or(str::is_empty) => {
                Input::Speech(speech.clone())
            }
            _ => Input::Digits(params.digits.clone().unwrap_or_default()),
        };
        self.walk(&mut guard, params, (name, flow), state, input, (now, arrived)).await
    }

    /// Walks the call one step through its flow; a route creates the task and stores the call.
    async fn walk(
        &self,
        guard: &mut KeyedGuard<'_, Call>,
        params: &CallParams,
        (name, flow): (&str, &Flow),
        state: CallState,
        input: Input,
        (now, arrived): (Millis, tokio::time::Instant),
    ) -> Result<Response, VoiceError> {
        let caller =
            ivr::Caller { from: &params.from, to: &params.to, channel: "voice", now: live::timestamp(now) };
        let action = |state: &CallState| ivr_action(name, state);
        let step = self.ivr.walk(flow, state, input, ivr::Medium::Voice(&action), &caller, arrived).await;
        let Effect::Route(request) = step.effect else { return Ok(step.response) };
        // A voicemail menu routes with the message already recorded.
        let stage =
            if request.voicemail { Stage::Voicemail { left: true, ended_at: None } } else { Stage::Waiting };
        let new_call = NewCall { params, flow: name, place: step.state, stage, now };
        let Some(mut routed) = self.create_task(new_call, request).await? else {
            return Ok(technical_difficulty());
        };
        let seen = self.seen(routed.task, now);
        let cx = self.context(flow, now);
        let response = call::routed(&mut routed, &seen, step.response, cx);
        **guard = Some(routed);
        Ok(response)
    }

    /// `POST /voice/wait`: the hold loop. Announces the caller's place in line, holds, and asks
    /// again; once an agent accepted, bridges the caller to them.
    pub async fn wait(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let mut guard = self.calls.lock(&params.call_sid).await;
        if guard.is_none() {
            return Ok(call::goodbye_plain(call::SORRY_GOODBYE));
        }
        let digits = params.digits.as_deref();
        self.decide(&mut guard, now, |call, seen, cx| call::on_wait_keys(call, seen, digits, cx)).await
    }

    /// `POST /voice/dial-status`: how the call to the agent ended.
    pub async fn dial_status(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let mut guard = self.calls.lock(&params.call_sid).await;
        if guard.is_none() {
            return Ok(Response::new(vec![Verb::Hangup]));
        }
        let status = params.dial_call_status.as_deref().unwrap_or("");
        self.decide(&mut guard, now, |call, seen, cx| call::on_dial_status(call, seen, status, cx)).await
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
        let mut guard = self.calls.lock(&params.call_sid).await;
        if guard.is_none() {
            return Ok(Response::default());
        }
        let unanswered = never_answered(params.call_status.as_deref().unwrap_or_default());
        self.decide(&mut guard, now, |call, seen, cx| call::on_call_over(call, seen, unanswered, cx)).await
    }

    /// `POST /voice/voicemail`: the message a waiting caller left; the task keeps its place in
    /// line as a call-back and carries the recording.
    pub async fn voicemail(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let mut guard = self.calls.lock(&params.call_sid).await;
        if guard.is_none() {
            return Ok(Response::new(vec![Verb::Hangup]));
        }
        let recording =
            params.recording_url.as_deref().map(|url| (url, params.recording_duration.unwrap_or(0)));
        self.decide(&mut guard, now, |call, seen, cx| call::on_voicemail(call, seen, recording, cx)).await
    }

    /// `POST /voice/agent-leg?call=…&reservation=…`: the agent's leg's status callback.
    pub async fn agent_leg(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let (Some(caller), Some(reservation)) = (&params.caller, params.reservation) else {
            tracing::info!(call_sid = %params.call_sid, "an agent leg's callback without its call: ignored");
            return Ok(Response::default());
        };
        let status = params.call_status.clone().unwrap_or_default();
        self.on_known_call(caller, now, |call, seen, _| {
            conference::on_agent_leg(call, reservation, &status, seen)
        })
        .await
    }

    /// `POST /voice/conference?call=…`: the conference's events.
    pub async fn conference_event(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let (Some(caller), Some(event)) = (&params.caller, &params.conference_event) else {
            tracing::info!("a conference callback without its call or event: ignored");
            return Ok(Response::default());
        };
        self.on_known_call(caller, now, |call, _, cx| conference::on_conference_event(call, event, cx)).await
    }

    /// `POST /voice/conference-ended`: the caller's `<Dial><Conference>` is over.
    pub async fn conference_ended(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let mut guard = self.calls.lock(&params.call_sid).await;
        if guard.is_none() {
            return Ok(Response::new(vec![Verb::Hangup]));
        }
        self.decide(&mut guard, now, conference::on_conference_ended).await
    }

    /// `POST /voice/recording?call=…`: a recording's status. A completed one is stored with
    /// the task (`conversations.media`, as Flex keeps it), for the agent and admin pages.
    pub async fn recording(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let Some(caller) = &params.caller else { return Ok(Response::default()) };
        let Some(recording) = &params.recording else { return Ok(Response::default()) };
        let mut guard = self.calls.lock(caller).await;
        let task = match guard.as_ref() {
            Some(call) => call.task,
            None => {
                // The call is over (a recording completes after the hang-up): its task is
                // found by the call SID it carries.
                let task = self.live.read(|engine| {
                    engine
                        .tasks()
                        .find(|task| task.attributes["call_sid"] == caller.as_str())
                        .map(|task| task.sid)
                });
                let Some(task) = task else {
                    tracing::info!(call_sid = %caller, "a recording of an unknown call: ignored");
                    return Ok(Response::default());
                };
                task
            }
        };
        if recording.status != "completed" {
            return Ok(Response::default());
        }
        self.attach_recording(task, recording).await?;
        if guard.is_some() {
            self.decide(&mut guard, now, |call, _, _| conference::on_recording(call, None)).await?;
        }
        Ok(Response::default())
    }

    /// After a restart with conference bridging: each stored call is brought up to date with
    /// what the provider says of it ([`conference::reconcile`]). A call the provider cannot be
    /// asked about is left as it was: its callbacks and the hold loop's poll carry it on.
    pub async fn reconcile(&self, now: Millis) -> Result<(), VoiceError> {
        if self.api.is_none() {
            return Ok(());
        }
        for call_sid in self.calls.keys() {
            let mut guard = self.calls.lock(&call_sid).await;
            let Some(call) = guard.as_ref() else { continue };
            let found = match self.find(call).await {
                Ok(found) => found,
                Err(err) => {
                    tracing::warn!(%call_sid, %err, "the provider could not say where a call stands; its callbacks will");
                    continue;
                }
            };
            tracing::info!(%call_sid, ?found, "a call in progress before the restart, as the provider has it");
            self.decide(&mut guard, now, |call, seen, cx| conference::reconcile(call, seen, &found, cx))
                .await?;
        }
        // Callback requests accepted while Switchboard was down, or just before it stopped:
        // their customers were never called (their status says so), and are now.
        let accepted_callbacks: Vec<(Sid, String)> = self.live.read(|engine| {
            engine
                .tasks()
                .filter(|task| task.status == TaskStatus::Assigned)
                .filter_map(|task| Some((task.sid, callback::never_tried(&task.attributes)?.to_owned())))
                .collect()
        });
        for (task, number) in accepted_callbacks {
            if let Err(err) = self.call_out(task, &number).await {
                tracing::warn!(%task, %err, "a callback accepted before the restart could not be called");
            }
        }
        Ok(())
    }

    /// What the provider says of `call`: whether its caller is still there, and who is in the
    /// task's conference.
    async fn find(&self, call: &Call) -> Result<conference::Found, VoiceApiError> {
        let Some(api) = &self.api else { return Ok(conference::Found::default()) };
        let gone = |err: &VoiceApiError| err.code() == Some(voice_api::codes::NOT_FOUND);
        let caller_over = match api.fetch_call(&call.sid).await {
            Ok(caller) => {
                matches!(caller.status.as_str(), "completed" | "busy" | "failed" | "no-answer" | "canceled")
            }
            Err(err) if gone(&err) => true,
            Err(err) => return Err(err),
        };
        let mut found = conference::Found { caller_over, ..conference::Found::default() };
        let Stage::Conference(bridge) = &call.stage else { return Ok(found) };
        let Some(room) = api.active_conference(&conference::room(call)).await? else { return Ok(found) };
        let room = &room.sid;
        let participant = |label: String| async move {
            match api.fetch_participant(room, &label).await {
                Ok(participant) => Ok(Some(participant)),
                Err(err) if gone(&err) => Ok(None),
                Err(err) => Err(err),
            }
        };
        found.caller_on_hold = participant(conference::CUSTOMER.to_owned()).await?.map(|caller| caller.hold);
        if let Some(leg) = bridge.transfer.as_ref().and_then(|transfer| transfer.from_call.clone()) {
            let present = participant(leg).await?.is_some_and(|agent| agent.status == "connected");
            found.transferring_agent_present = Some(present);
        }
        if let Some(reservation) = bridge.reservation {
            found.agent = participant(conference::agent_label(reservation)).await?.map(|agent| {
                conference::FoundAgent {
                    joined: agent.status == "connected",
                    muted: agent.muted,
                    call_sid: agent.call_sid,
                }
            });
        }
        found.conference = Some(room.clone());
        Ok(found)
    }

    /// Follows the durable events: an accepted reservation of a voice task whose caller waits
    /// connects them at once (conference bridging). Each accept is connected on a task of its
    /// own (the call's lock keeps one call's steps in order), so that one slow provider answer
    /// does not hold up the other callers; at most [`CONNECTING_AT_ONCE`] at a time. Runs until
    /// the events end.
    pub async fn follow_accepts(
        self: Arc<Self>,
        mut events: tokio::sync::broadcast::Receiver<crate::routing::Event>,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTING_AT_ONCE));
        let mut connecting = tokio::task::JoinSet::new();
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                // Missed accepts are still connected by the callers' next hold-loop request.
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "accepted calls fell behind; the hold loop connects them");
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            while connecting.try_join_next().is_some() {}
            let canceled = event.event_type == crate::routing::EventType::TaskCanceled;
            if event.event_type != crate::routing::EventType::ReservationAccepted && !canceled {
                continue;
            }
            let Some(task) = event.task else { continue };
            let Some(caller) = self.caller_of(task) else { continue };
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            let voice = self.clone();
            connecting.spawn(async move {
                let _slot = slot;
                let mut guard = voice.calls.lock(&caller).await;
                let about_this_task = guard.as_ref().is_some_and(|call| call.task == task);
                if !about_this_task && !canceled && guard.is_none() {
                    drop(guard);
                    // A callback request accepted: the customer is called, with the agent.
                    if let Some(number) = voice.callback_number(task) {
                        if let Err(err) = voice.call_out(task, &number).await {
                            tracing::error!(%err, %task, "calling a callback's customer failed");
                        }
                    }
                    return;
                }
                let outcome = match (about_this_task, canceled) {
                    (false, _) => return,
                    (true, false) => voice.decide(&mut guard, live::now(), conference::on_accepted).await,
                    // A transfer's task ended untaken: back to its first agent, if still there.
                    (true, true) => voice.decide(&mut guard, live::now(), transfer::on_task_ended).await,
                };
                if let Err(err) = outcome {
                    tracing::error!(%err, call_sid = %caller, "following the routing of a call failed");
                }
            });
        }
        while connecting.join_next().await.is_some() {}
    }

    /// An agent's control of the call of `task` (hold, mute, hang up, record): refused when
    /// the call is not bridged in a conference, or the provider did not do it.
    pub async fn control(&self, task: Sid, control: conference::Control) -> Result<(), ControlError> {
        self.act(task, |call| conference::control(call, control)).await
    }

    /// A supervisor (`label`) monitors, coaches or barges into the call of `task` (their phone,
    /// `to`, called in if they are not in it yet), or leaves it (`mode` none).
    pub async fn supervise(
        &self,
        task: Sid,
        label: &str,
        to: Option<&str>,
        mode: Option<supervise::SuperviseMode>,
    ) -> Result<(), ControlError> {
        match self.act(task, |call| supervise::supervise(call, task, label, to, mode)).await {
            // Their leg is gone (hung up, never answered): forgotten, and called in again.
            Err(ControlError::Provider(err))
                if err.code() == Some(voice_api::codes::NOT_FOUND) && mode.is_some() =>
            {
                self.act(task, |call| {
                    supervise::forget(call, label);
                    supervise::supervise(call, task, label, to, mode)
                })
                .await
            }
            done => done,
        }
    }

    /// The calls in progress as the supervisor view shows them: each task's own view of its
    /// call (not a transferring agent's), with the call's SID.
    pub fn live_calls(&self) -> Vec<(Sid, String, conference::CallView)> {
        let views = self.lock_views();
        let mut calls: Vec<(Sid, String, conference::CallView)> = views
            .iter()
            .filter(|(_, (_, view))| view.transfer.is_none())
            .map(|(task, (call, view))| (*task, call.clone(), view.clone()))
            .collect();
        calls.sort_by(|a, b| a.1.cmp(&b.1));
        calls
    }

    /// Carries out what `decide` makes of the call of `task` (its provider requests in order),
    /// then stores it; nothing changes if the provider refuses one.
    async fn act(
        &self,
        task: Sid,
        decide: impl FnOnce(&mut Call) -> Result<Decision, conference::ControlRefused>,
    ) -> Result<(), ControlError> {
        let caller = self.caller_of(task).ok_or(ControlError::NoCall)?;
        let mut guard = self.calls.lock(&caller).await;
        // The call is this task's only while it is the call's task: not once transferred.
        let Some(current) = guard.as_mut().filter(|call| call.task == task) else {
            return Err(ControlError::NoCall);
        };
        let before = current.stage.clone();
        let Decision { actions, .. } = decide(current).map_err(ControlError::Refused)?;
        for action in actions {
            let Action::Provider { request, .. } = action else { continue };
            let flow = self.flow_of(current);
            let cx = self.context(&flow, live::now());
            match self.provide(current, &request, cx).await {
                Ok(Provided::Recording(sid)) => {
                    conference::on_recording(current, sid);
                }
                Ok(_) => {}
                Err(err) => {
                    // Not done: the call stays as it was.
                    current.stage = before;
                    return Err(ControlError::Provider(err));
                }
            }
        }
        self.save(current).await.map_err(VoiceError::Storage)?;
        Ok(())
    }

    /// Transfers the call of `task`, whose agent talks with the caller, to a queue, an agent
    /// or an outside number: the new task's SID, for a queue or an agent. Nothing changes when
    /// it is refused (the provider's steps taken so far are undone).
    ///
    /// Order, for a restart at any point: the agent's leg is set not to end the conference and
    /// the caller is held (both undone on a refusal); the new task and the call's new state are
    /// stored in one write; only then does a cold transfer's agent leave. A warm transfer to an
    /// outside number stores the consultation before the number is called.
    pub async fn transfer(
        &self,
        task: Sid,
        to: transfer::TransferTo,
        mode: crate::routing::TransferMode,
    ) -> Result<Option<Sid>, ControlError> {
        use crate::routing::{NewTransfer, TransferMode, TransferTarget};
        use transfer::TransferTo;
        let caller = self.caller_of(task).ok_or(ControlError::NoCall)?;
        let mut guard = self.calls.lock(&caller).await;
        let Some(current) = guard.as_mut() else { return Err(ControlError::NoCall) };
        let (_, agent_leg) = transfer::check(current, task).map_err(ControlError::Refused)?;
        let now = live::now();
        if let (TransferTo::Outside(target), TransferMode::Cold) = (&to, mode) {
            // The caller leaves the conference for the number; the conference ends, and the
            // agent's leg with it.
            let dial = twiml::Dial {
                target: target.clone(),
                action: None,
                method: None,
                timeout: Some(self.settings.dial_timeout),
                caller_id: Some(current.to.clone()),
                answer_on_bridge: Some(true),
            };
            let twiml = Response::new(vec![Verb::Dial(dial), Verb::Hangup]);
            let flow = self.flow_of(current);
            let cx = self.context(&flow, now);
            self.provide(current, &ProviderRequest::MoveCaller(twiml), cx)
                .await
                .map_err(ControlError::Provider)?;
            transfer::started(current, None, mode);
            self.decide(&mut guard, now, |call, _, _| transfer::agent_leaves(call, false)).await?;
            return Ok(None);
        }
        let undo = [
            ProviderRequest::EndConferenceOnExit { call_sid: agent_leg.clone(), end: true },
            ProviderRequest::HoldCaller(false),
        ];
        // Held whatever the call's state says: hold follows the provider's events, which may
        // not have caught up with a hold just undone.
        let was_on_hold = matches!(&current.stage, Stage::Conference(bridge) if bridge.on_hold);
        let steps = [
            ProviderRequest::EndConferenceOnExit { call_sid: agent_leg, end: false },
            ProviderRequest::HoldCaller(true),
        ];
        for (done, step) in steps.iter().enumerate() {
            let flow = self.flow_of(current);
            let cx = self.context(&flow, now);
            if let Err(err) = self.provide(current, step, cx).await {
                self.undo(current, &undo[..done]).await;
                return Err(ControlError::Provider(err));
            }
        }
        let target = match &to {
            TransferTo::Queue(queue) => Some(TransferTarget::Queue(*queue)),
            TransferTo::Worker(worker) => Some(TransferTarget::Worker(*worker)),
            TransferTo::Outside(_) => None,
        };
        let created = match target {
            Some(to) => {
                let command = Command::Transfer(NewTransfer { task, to, mode, priority: None });
                let mut moved = current.clone();
                let stored = self
                    .live
                    .execute_with(command, |created| {
                        transfer::started(&mut moved, created, mode);
                        CallRecord::V1(CallV1::from(&moved))
                    })
                    .await;
                match stored {
                    Ok((created, _)) => {
                        *current = moved;
                        self.show(&current.sid, conference::views(current));
                        created
                    }
                    Err(ExecuteError::Refused(err)) => {
                        self.undo(current, &undo[..if was_on_hold { 1 } else { 2 }]).await;
                        return Err(ControlError::Routing(err));
                    }
                    Err(ExecuteError::Storage(err)) => {
                        return Err(ControlError::Voice(VoiceError::Storage(err)));
                    }
                }
            }
            None => {
                transfer::started(current, None, mode);
                self.save(current).await.map_err(VoiceError::Storage)?;
                None
            }
        };
        if let TransferTo::Outside(target) = &to {
            let request = ProviderRequest::CallOutside {
                to: conference::address_of(target),
                label: transfer::outside_label(task),
            };
            self.decide(&mut guard, now, move |_, _, _| {
                Decision::answer(Response::default())
                    .with(Action::Provider { request, fallback: call::Fallback::Report })
            })
            .await?;
        }
        if mode == TransferMode::Cold {
            self.decide(&mut guard, now, |call, _, _| transfer::agent_leaves(call, true)).await?;
        }
        Ok(created)
    }

    /// Calls the customer `to` for `task`, assigned to the agent who asks (an outbound call,
    /// or calling back a voicemail), into a conference named after the task, and calls the
    /// agent in: their phone joins first, the customer when they answer. Caller ID:
    /// `voice.caller_id`, else the number the task came in on. The call is stored (and its SID
    /// kept in the task's attributes, as `call_sid`) before the agent is called, so that it is
    /// an inbound call's equal from then on: hold, recording, transfers, supervisors.
    pub async fn call_out(&self, task: Sid, to: &str) -> Result<String, ControlError> {
        use conference::ControlRefused as Refused;
        // One call out per task at a time (a double click, two tabs): the second finds the
        // first's call.
        let _calling_out = self.calls.lock(&format!("call-out:{task}")).await;
        let refused = ControlError::Refused;
        let Some(api) = &self.api else { return Err(refused(Refused::NotInConference)) };
        let now = live::now();
        let seen = self.seen(task, now);
        let accepted = match (seen.status, &seen.accepted) {
            (Some(TaskStatus::Assigned), Some(accepted)) => accepted.clone(),
            _ => return Err(refused(Refused::NotAssigned)),
        };
        let agent_to = conference::agent_address(&accepted).ok_or(refused(Refused::NoPhone))?;
        let attributes =
            self.live.read(|engine| engine.task(task).map(|task| serde_json::Value::clone(&task.attributes)));
        let Some(mut attributes) = attributes else { return Err(ControlError::NoCall) };
        if attributes["call_sid"].as_str().is_some_and(|sid| self.calls.keys().iter().any(|key| key == sid)) {
            return Err(refused(Refused::CallInProgress));
        }
        // A call back comes from the number the customer called; a new call needs the setting.
        let came_in_on = (attributes["direction"] != "outbound").then(|| attributes["to"].as_str()).flatten();
        let from = match self.settings.caller_id.as_str() {
            "" => came_in_on.unwrap_or_default().to_owned(),
            configured => configured.to_owned(),
        };
        if from.is_empty() {
            return Err(refused(Refused::NoCallerId));
        }
        let base = self.base_url.get().map_or("", String::as_str);
        let new = voice_api::NewCall {
            to: to.to_owned(),
            from: from.clone(),
            url: format!("{base}{}?task={task}", paths::OUTBOUND),
            status_callback: Some(format!("{base}{}", paths::STATUS)),
            status_callback_events: vec!["initiated", "ringing", "answered", "completed"],
            timeout: Some(self.settings.dial_timeout),
        };
        // A callback's try is counted, durably, before the call is placed: a stop in between
        // never calls the customer twice (the restart calls only requests never tried; a lost
        // call that answers is adopted by `/voice/outbound`).
        if let Some(callback) = attributes.get_mut("callback").and_then(|callback| callback.as_object_mut()) {
            let attempts = callback.get("attempts").and_then(serde_json::Value::as_u64).unwrap_or(0);
            callback.insert("attempts".to_owned(), json!(attempts + 1));
            callback.insert("status".to_owned(), json!("calling"));
            callback.insert("last_attempt_at".to_owned(), json!(live::timestamp(now).to_string()));
            let command = Command::UpdateTaskAttributes { task, attributes };
            match self.live.execute(command).await {
                Ok(_) => {}
                Err(ExecuteError::Storage(err)) => return Err(ControlError::Voice(VoiceError::Storage(err))),
                Err(ExecuteError::Refused(err)) => return Err(ControlError::Routing(err)),
            }
        }
        let customer = match api.create_call(&new).await {
            Ok(customer) => customer,
            Err(err) => {
                // Not placed: a callback is left for the agent to try by hand.
                if attributes_of_callback(&self.live, task) {
                    let unplaced = json!({"status": "unanswered", "next_attempt_at": null});
                    self.mark_callback(task, unplaced).await.map_err(ControlError::Voice)?;
                }
                return Err(ControlError::Provider(err));
            }
        };
        // Held from now: the call's first callbacks wait until it is stored.
        let mut guard = self.calls.lock(&customer.sid).await;
        self.hold_outbound(&mut guard, task, &customer.sid, to, &from, &accepted, now).await?;
        // Callbacks sent before the call was held were answered as about an unknown call: a
        // customer already gone ends it now, instead of the agent being called in for nobody.
        let status = api.fetch_call(&customer.sid).await.map(|found| found.status).unwrap_or_default();
        if never_answered(&status) || status == "completed" {
            let unanswered = never_answered(&status);
            self.decide(&mut guard, now, |call, seen, cx| call::on_call_over(call, seen, unanswered, cx))
                .await?;
            return Ok(customer.sid);
        }
        self.call_agent_in(&mut guard, &accepted, agent_to, now).await?;
        Ok(customer.sid)
    }

    /// Stores the outbound call `call_sid` of `task` (to `customer`, from `ours`) in the lock
    /// `guard` holds, its SID kept in the task's attributes (`call_sid`), in one write.
    #[allow(clippy::too_many_arguments)]
    async fn hold_outbound(
        &self,
        guard: &mut KeyedGuard<'_, Call>,
        task: Sid,
        call_sid: &str,
        customer: &str,
        ours: &str,
        accepted: &Accepted,
        now: Millis,
    ) -> Result<(), ControlError> {
        let attributes =
            self.live.read(|engine| engine.task(task).map(|task| serde_json::Value::clone(&task.attributes)));
        let Some(mut attributes) = attributes else { return Err(ControlError::NoCall) };
        // The task's own direction and numbers stay: a call back may be tried again.
        attributes["call_sid"] = json!(call_sid);
        let flows = self.ivr.flows();
        let (flow_name, flow) = flows
            .for_number(ours)
            .or_else(|| flows.iter().next().map(|(name, flow)| (name.as_str(), flow)))
            .expect("a folder of flows holds at least one (checked at load)");
        // As for a caller: `from` the customer, `to` the contact center's number, which every
        // leg Switchboard places for this call comes from.
        let call = Call {
            sid: call_sid.to_owned(),
            from: customer.to_owned(),
            to: ours.to_owned(),
            flow: flow_name.to_owned(),
            place: CallState::new(flow, live::timestamp(now)),
            task,
            started_at: now,
            last_seen: now,
            announced_at: None,
            // The customer's TwiML takes them in when they answer.
            stage: Stage::Conference(Bridge {
                reservation: Some(accepted.reservation),
                caller_moved: true,
                ..Bridge::default()
            }),
            dial_fallback: false,
            room: None,
            retry_at: None,
        };
        let command = Command::UpdateTaskAttributes { task, attributes };
        let stored = self.live.execute_with(command, |_| CallRecord::V1(CallV1::from(&call))).await;
        match stored {
            Ok(_) => {}
            Err(ExecuteError::Storage(err)) => return Err(ControlError::Voice(VoiceError::Storage(err))),
            Err(ExecuteError::Refused(err)) => return Err(ControlError::Routing(err)),
        }
        **guard = Some(call);
        Ok(())
    }

    /// Calls the accepting agent at `to` into the held call's conference.
    async fn call_agent_in(
        &self,
        guard: &mut KeyedGuard<'_, Call>,
        accepted: &Accepted,
        to: String,
        now: Millis,
    ) -> Result<(), ControlError> {
        let request = ProviderRequest::CallAgent {
            reservation: accepted.reservation,
            to,
            label: conference::agent_label(accepted.reservation),
        };
        self.decide(guard, now, move |_, _, _| {
            Decision::answer(Response::default())
                .with(Action::Save)
                .with(Action::Provider { request, fallback: call::Fallback::Report })
        })
        .await?;
        Ok(())
    }

    /// `POST /voice/outbound?task=…`: the customer of an outbound call answered; they join the
    /// task's conference, where their agent is. A call Switchboard placed but did not get to
    /// store (it stopped in between) is adopted now, if its task still waits for it.
    pub async fn outbound_answered(&self, params: &CallParams, now: Millis) -> Result<Response, VoiceError> {
        let mut guard = self.calls.lock(&params.call_sid).await;
        if let Some(call) = guard.as_ref() {
            let flow = self.flow_of(call);
            let cx = self.context(&flow, now);
            return Ok(conference::join(call, cx));
        }
        let lost = params.task.and_then(|task| {
            let seen = self.seen(task, now);
            let waits = self.live.read(|engine| {
                engine.task(task).is_some_and(|task| task.attributes["callback"]["status"] == "calling")
            });
            let accepted = seen.accepted.filter(|_| waits && seen.status == Some(TaskStatus::Assigned))?;
            Some((task, accepted))
        });
        let Some((task, accepted)) = lost else {
            tracing::warn!(call_sid = %params.call_sid, "an outbound call Switchboard does not hold answered: hung up");
            return Ok(Response::new(vec![Verb::Hangup]));
        };
        let Some(agent_to) = conference::agent_address(&accepted) else {
            return Ok(Response::new(vec![Verb::Hangup]));
        };
        tracing::info!(call_sid = %params.call_sid, %task, "a callback's call placed before a stop answered: adopted");
        let adopted = self
            .hold_outbound(&mut guard, task, &params.call_sid, &params.to, &params.from, &accepted, now)
            .await;
        if let Err(err) = adopted {
            tracing::warn!(%err, "the callback's call could not be adopted");
            return Ok(Response::new(vec![Verb::Hangup]));
        }
        let response =
            guard.as_ref().map(|call| conference::join(call, self.context(&self.flow_of(call), now)));
        if let Err(err) = self.call_agent_in(&mut guard, &accepted, agent_to, now).await {
            tracing::warn!(%err, "the agent of an adopted callback could not be called");
        }
        Ok(response.unwrap_or_default())
    }

    /// The transferring agent of `task` leaves the caller with whoever took the transfer
    /// (`leave`), or cancels it and talks with the caller again.
    pub async fn end_transfer(&self, task: Sid, leave: bool) -> Result<(), ControlError> {
        let caller = self.caller_of(task).ok_or(ControlError::NoCall)?;
        let mut guard = self.calls.lock(&caller).await;
        let Some(current) = guard.as_mut() else { return Err(ControlError::NoCall) };
        let Stage::Conference(bridge) = &current.stage else {
            return Err(ControlError::Refused(conference::ControlRefused::NotInConference));
        };
        let Some(under_way) = bridge
            .transfer
            .clone()
            .filter(|transfer| transfer.from_task == task && transfer.from_call.is_some())
        else {
            return Err(ControlError::Refused(conference::ControlRefused::NoTransfer));
        };
        let joined = bridge.talking || under_way.outside_joined;
        let now = live::now();
        if leave {
            if !joined {
                return Err(ControlError::Refused(conference::ControlRefused::NotJoinedYet));
            }
            self.decide(&mut guard, now, |call, _, _| transfer::agent_leaves(call, true)).await?;
            return Ok(());
        }
        if bridge.talking && under_way.outside_call.is_none() {
            // Taken already: the two agents talk; the transferring one may only leave.
            return Err(ControlError::Refused(conference::ControlRefused::Transferring));
        }
        let taker_task = (current.task != task).then_some(current.task);
        if let Some(taker_task) = taker_task {
            // Waiting: canceled. Accepted (their phone ringing), or accepted meanwhile: their
            // task is over, without counting against them as an unanswered call would.
            let waiting = self.seen(taker_task, now).status.is_some_and(TaskStatus::is_waiting);
            if waiting {
                let cancel = Command::Cancel { task: taker_task, reason: "transfer canceled".to_owned() };
                self.execute(current, cancel, "the transfer was canceled").await?;
            }
            if self.seen(taker_task, now).status == Some(TaskStatus::Assigned) {
                let over = Command::Complete { task: taker_task, reason: "transfer canceled".to_owned() };
                self.execute(current, over, "the transfer was canceled").await?;
            }
        }
        self.decide(&mut guard, now, |call, _, _| transfer::back_to_agent(call)).await?;
        Ok(())
    }

    /// Puts back what a refused transfer's first steps changed, as far as the provider lets.
    async fn undo(&self, current: &Call, steps: &[ProviderRequest]) {
        for step in steps.iter().rev() {
            let flow = self.flow_of(current);
            let cx = self.context(&flow, live::now());
            if let Err(err) = self.provide(current, step, cx).await {
                tracing::warn!(call_sid = %current.sid, %err, "a refused transfer could not be undone at the provider");
            }
        }
    }

    /// The audio (WAV) of `recording`, a recording of `task`'s call that its attributes list
    /// (`conversations.media`), fetched from the provider for the agent and admin pages.
    pub async fn recording_audio(&self, task: Sid, recording: &str) -> Result<Vec<u8>, RecordingError> {
        let listed = self.live.read(|engine| {
            engine.task(task).is_some_and(|task| {
                recordings_of(&task.attributes).any(|media| media["sid"].as_str() == Some(recording))
            })
        });
        if !listed {
            return Err(RecordingError::NotOfTask { task, recording: recording.to_owned() });
        }
        let api = self.api.as_ref().ok_or(RecordingError::NoApi)?;
        api.recording_audio(recording).await.map_err(RecordingError::Provider)
    }

    /// The CallSid of `task`'s caller (the `call_sid` its attributes carry), for a voice task.
    fn caller_of(&self, task: Sid) -> Option<String> {
        self.live.read(|engine| {
            engine.task(task).and_then(|task| task.attributes["call_sid"].as_str().map(str::to_owned))
        })
    }

    /// Runs `decision` on the call `caller` if it is known; callbacks about unknown calls are
    /// answered, logged and change nothing.
    async fn on_known_call(
        &self,
        caller: &str,
        now: Millis,
        decision: impl FnOnce(&mut Call, &Seen, Context<'_>) -> Decision,
    ) -> Result<Response, VoiceError> {
        let mut guard = self.calls.lock(caller).await;
        if guard.is_none() {
            tracing::info!(call_sid = %caller, "a callback about an unknown call: ignored");
            return Ok(Response::default());
        }
        self.decide(&mut guard, now, decision).await?;
        Ok(Response::default())
    }

    /// Merges `attribute`'s fields into the task's `callback` attribute.
    async fn mark_callback(&self, task: Sid, attribute: serde_json::Value) -> Result<(), VoiceError> {
        let attributes =
            self.live.read(|engine| engine.task(task).map(|task| serde_json::Value::clone(&task.attributes)));
        let Some(mut attributes) = attributes else { return Ok(()) };
        if !attributes["callback"].is_object() {
            attributes["callback"] = json!({});
        }
        if let (Some(callback), Some(fields)) =
            (attributes["callback"].as_object_mut(), attribute.as_object())
        {
            callback.extend(fields.clone());
        }
        match self.live.execute(Command::UpdateTaskAttributes { task, attributes }).await {
            Ok(_) => Ok(()),
            Err(ExecuteError::Storage(err)) => Err(VoiceError::Storage(err)),
            Err(ExecuteError::Refused(err)) => {
                tracing::warn!(%err, %task, "the callback's progress could not be kept with its task");
                Ok(())
            }
        }
    }

    /// The number to call back for `task`, if it is a callback request not yet being called.
    fn callback_number(&self, task: Sid) -> Option<String> {
        self.live.read(|engine| callback::never_tried(&engine.task(task)?.attributes).map(str::to_owned))
    }

    fn lock_due_callbacks(&self) -> std::sync::MutexGuard<'_, Vec<(Sid, String)>> {
        self.due_callbacks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores a completed recording with its task, under `conversations.media`.
    async fn attach_recording(&self, task: Sid, recording: &RecordingParams) -> Result<(), VoiceError> {
        let attributes =
            self.live.read(|engine| engine.task(task).map(|task| serde_json::Value::clone(&task.attributes)));
        let Some(mut attributes) = attributes else { return Ok(()) };
        let media = json!({
            "type": "VoiceRecording",
            "url": recording.url,
            "sid": recording.sid,
            "duration": recording.duration,
        });
        if !attributes["conversations"].is_object() {
            attributes["conversations"] = json!({});
        }
        let list = &mut attributes["conversations"]["media"];
        if !list.is_array() {
            *list = json!([]);
        }
        if list.as_array().is_some_and(|list| list.iter().any(|item| item["sid"] == recording.sid.as_str())) {
            return Ok(());
        }
        if let Some(list) = list.as_array_mut() {
            list.push(media);
        }
        match self.live.execute(Command::UpdateTaskAttributes { task, attributes }).await {
            Ok(_) => Ok(()),
            Err(ExecuteError::Storage(err)) => Err(VoiceError::Storage(err)),
            Err(ExecuteError::Refused(err)) => {
                tracing::warn!(%err, %task, "the recording could not be stored with its task");
                Ok(())
            }
        }
    }

    /// Cancels the tasks of callers whose hold loop stopped (no request for
    /// `abandon_after` seconds, and no status callback), and forgets calls long over.
    pub async fn sweep(&self, now: Millis) -> Result<(), VoiceError> {
        let unrouted =
            std::mem::take(&mut *self.unrouted.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for call_sid in unrouted {
            self.live.delete::<CallRecord>(&call_sid).await?;
        }
        for call_sid in self.calls.keys() {
            let mut guard = self.calls.lock(&call_sid).await;
            if guard.is_some() {
                self.decide(&mut guard, now, call::on_sweep).await?;
            }
        }
        let due = std::mem::take(&mut *self.lock_due_callbacks());
        for (task, number) in due {
            if let Err(err) = self.call_out(task, &number).await {
                tracing::warn!(%task, %err, "a callback's next try could not be made");
            }
        }
        Ok(())
    }

    /// Runs `decision` on the locked call (there is one) with what the engine shows of its
    /// task, carries out its actions in order and answers its TwiML. A provider request that
    /// fails replaces the rest with what its fallback decides (`conference::on_provider_failed`).
    async fn decide(
        &self,
        guard: &mut KeyedGuard<'_, Call>,
        now: Millis,
        decision: impl FnOnce(&mut Call, &Seen, Context<'_>) -> Decision,
    ) -> Result<Response, VoiceError> {
        let Some(current) = guard.as_mut() else { return Ok(call::goodbye_plain(call::SORRY_GOODBYE)) };
        let seen = self.seen(current.task, now);
        let flow = self.flow_of(current);
        let cx = self.context(&flow, now);
        let Decision { mut response, actions } = decision(current, &seen, cx);
        let mut actions: std::collections::VecDeque<Action> = actions.into();
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Execute { command, why } => self.execute(current, command, why).await?,
                Action::Connected { reservation, queue, waited } => {
                    if let Some(queue) = queue {
                        self.record_pace(queue, now);
                    }
                    tracing::info!(call_sid = %current.sid, %reservation, waited_ms = waited, "bridging the caller to the accepting agent");
                }
                Action::AttachVoicemail { url, duration } => {
                    self.attach_voicemail(current.task, &url, duration).await?
                }
                Action::Save => self.save(current).await?,
                Action::MarkCallback { attribute } => self.mark_callback(current.task, attribute).await?,
                Action::CallBackAgain { task, number } => self.lock_due_callbacks().push((task, number)),
                Action::Forget => {
                    self.live.delete::<CallRecord>(&current.sid).await?;
                    self.show(&current.sid, Vec::new());
                    **guard = None;
                    break;
                }
                Action::Provider { request, fallback } => match self.provide(current, &request, cx).await {
                    Ok(provided) => {
                        // What the provider did is noted (and stored) before the next request.
                        let noted = match provided {
                            Provided::Done => Vec::new(),
                            Provided::CallerMoved => conference::on_caller_moved(current).actions,
                            Provided::AgentCalled { call_sid, conference } => {
                                conference::on_agent_called(current, &call_sid, &conference).actions
                            }
                            Provided::Recording(sid) => conference::on_recording(current, sid).actions,
                            Provided::OutsideCalled { call_sid } => {
                                transfer::on_outside_called(current, &call_sid).actions
                            }
                        };
                        for action in noted.into_iter().rev() {
                            actions.push_front(action);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(call_sid = %current.sid, %err, ?fallback, "the provider did not carry out a request");
                        let failure = conference::Failure { code: err.code() };
                        let mut instead = conference::on_provider_failed(current, fallback, failure, cx);
                        if current.dial_fallback && current.stage == Stage::Waiting {
                            // Back in the hold loop: bridged with `<Dial>` as without conferences,
                            // by this answer when it goes to the caller's own request.
                            let seen = self.seen(current.task, now);
                            let dial = call::on_wait(current, &seen, cx);
                            instead.actions.extend(dial.actions);
                            instead.response = dial.response;
                        }
                        response = instead.response;
                        actions = instead.actions.into();
                    }
                },
            }
        }
        Ok(response)
    }

    /// Carries out `request` for `current` through the provider's Voice API.
    async fn provide(
        &self,
        current: &Call,
        request: &ProviderRequest,
        cx: Context<'_>,
    ) -> Result<Provided, VoiceApiError> {
        let Some(api) = &self.api else {
            return Err(VoiceApiError::Unreachable {
                operation: "control the call",
                reason: "voice.bridge is not \"conference\": no Voice API client".to_owned(),
            });
        };
        let bridge = match &current.stage {
            Stage::Conference(bridge) => bridge.clone(),
            _ => Bridge::default(),
        };
        let in_conference = |what: &'static str| {
            bridge.conference.clone().ok_or(VoiceApiError::Refused {
                operation: what,
                status: 409,
                code: None,
                message: "the conference is not known yet".to_owned(),
            })
        };
        let base = cx.base_url;
        match request {
            ProviderRequest::MoveCaller(twiml) => {
                api.update_call(&current.sid, &CallUpdate::Twiml(twiml.to_xml())).await?;
                Ok(Provided::CallerMoved)
            }
            ProviderRequest::CallAgent { reservation, to, label } => {
                let callback_query = serde_urlencoded::to_string([
                    ("call", current.sid.as_str()),
                    ("reservation", reservation.to_string().as_str()),
                ])
                .unwrap_or_default();
                let new = NewParticipant {
                    status_callback: Some(format!("{base}{}?{callback_query}", paths::AGENT_LEG)),
                    status_callback_events: vec!["initiated", "ringing", "answered", "completed"],
                    // The agent hanging up ends the call for the caller too; not while they
                    // consult with an agent transferring the call to them.
                    end_conference_on_exit: Some(!transfer::consulting(current)),
                    conference_status_callback: Some(format!(
                        "{base}{}?call={}",
                        paths::CONFERENCE,
                        current.sid
                    )),
                    conference_status_callback_events: vec!["start", "end", "join", "leave", "mute", "hold"],
                    ..self.participant(current, to, label)
                };
                match api.create_participant(&new).await {
                    Ok(agent) => Ok(Provided::AgentCalled {
                        call_sid: agent.call_sid,
                        conference: agent.conference_sid,
                    }),
                    // Placed already (a repeat after a retry or a restart): found by its label.
                    Err(err) if err.code() == Some(voice_api::codes::LABEL_IN_USE) => {
                        let room = api.active_conference(&new.conference).await?.ok_or(err)?;
                        let agent = api.fetch_participant(&room.sid, label).await?;
                        Ok(Provided::AgentCalled {
                            call_sid: agent.call_sid,
                            conference: agent.conference_sid,
                        })
                    }
                    Err(err) => Err(err),
                }
            }
            ProviderRequest::HangUpAgent { call_sid } => {
                match api.update_call(call_sid, &CallUpdate::HangUp).await {
                    Err(err)
                        if matches!(
                            err.code(),
                            Some(voice_api::codes::CALL_NOT_IN_PROGRESS | voice_api::codes::NOT_FOUND)
                        ) =>
                    {
                        Ok(Provided::Done)
                    }
                    outcome => outcome.map(|_| Provided::Done),
                }
            }
            ProviderRequest::HangUpCaller => {
                api.update_call(&current.sid, &CallUpdate::HangUp).await?;
                Ok(Provided::Done)
            }
            ProviderRequest::HoldCaller(on) => {
                let hold_url =
                    Some(self.settings.hold_music_url.clone()).filter(|url| !url.is_empty() && *on);
                let update = ParticipantUpdate { hold: Some(*on), hold_url, ..ParticipantUpdate::default() };
                api.update_participant(&in_conference("hold the caller")?, &current.sid, &update).await?;
                Ok(Provided::Done)
            }
            ProviderRequest::MuteAgent(on) => {
                let agent = bridge.agent_call.clone().unwrap_or_default();
                let update = ParticipantUpdate { muted: Some(*on), ..ParticipantUpdate::default() };
                api.update_participant(&in_conference("mute the agent")?, &agent, &update).await?;
                Ok(Provided::Done)
            }
            ProviderRequest::Record(true) => {
                let callback = format!("{base}{}?call={}", paths::RECORDING, current.sid);
                let recording = api.start_recording(&current.sid, &callback).await?;
                Ok(Provided::Recording(Some(recording.sid)))
            }
            ProviderRequest::EndConferenceOnExit { call_sid, end } => {
                let update =
                    ParticipantUpdate { end_conference_on_exit: Some(*end), ..ParticipantUpdate::default() };
                let room = in_conference("keep the conference going")?;
                match api.update_participant(&room, call_sid, &update).await {
                    // Gone already: nothing left to change.
                    Err(err) if err.code() == Some(voice_api::codes::NOT_FOUND) => Ok(Provided::Done),
                    outcome => outcome.map(|_| Provided::Done),
                }
            }
            ProviderRequest::CallOutside { to, label } => {
                // Not ending the conference by leaving, until the agent leaves them with the caller.
                let new = self.participant(current, to, label);
                let outside = api.create_participant(&new).await?;
                Ok(Provided::OutsideCalled { call_sid: outside.call_sid })
            }
            ProviderRequest::CallSupervisor { to, label, mode, agent } => {
                let (muted, coaching) = mode.flags();
                let new = NewParticipant {
                    muted: Some(muted),
                    coaching: Some(coaching),
                    call_sid_to_coach: coaching.then(|| agent.clone()),
                    ..self.participant(current, to, label)
                };
                api.create_participant(&new).await?;
                Ok(Provided::Done)
            }
            ProviderRequest::Supervise { label, mode, agent } => {
                let (muted, coaching) = mode.flags();
                let update = ParticipantUpdate {
                    muted: Some(muted),
                    coaching: Some(coaching),
                    call_sid_to_coach: coaching.then(|| agent.clone()),
                    ..ParticipantUpdate::default()
                };
                api.update_participant(&in_conference("supervise the call")?, label, &update).await?;
                Ok(Provided::Done)
            }
            ProviderRequest::RemoveParticipant { label } => {
                api.remove_participant(&in_conference("leave the call")?, label).await?;
                Ok(Provided::Done)
            }
            ProviderRequest::Record(false) => {
                let current_recording =
                    bridge.recording.clone().unwrap_or_else(|| "Twilio.CURRENT".to_owned());
                api.update_recording(&current.sid, &current_recording, RecordingStatus::Stopped).await?;
                Ok(Provided::Recording(None))
            }
        }
    }

    /// A leg that `to` is called on into `current`'s conference as `label`: early media, no
    /// beep, starting the conference but not ending it by leaving, no callbacks.
    fn participant(&self, current: &Call, to: &str, label: &str) -> NewParticipant {
        NewParticipant {
            conference: conference::room(current),
            from: current.to.clone(),
            to: to.to_owned(),
            label: Some(label.to_owned()),
            timeout: Some(self.settings.dial_timeout),
            status_callback: None,
            status_callback_events: Vec::new(),
            early_media: Some(true),
            muted: None,
            coaching: None,
            call_sid_to_coach: None,
            start_conference_on_enter: Some(true),
            end_conference_on_exit: Some(false),
            beep: Some("false"),
            wait_url: None,
            conference_status_callback: None,
            conference_status_callback_events: Vec::new(),
            conference_record: None,
            conference_recording_status_callback: None,
        }
    }

    /// What the engine shows of `task` to a decision.
    fn seen(&self, task: Sid, now: Millis) -> Seen {
        let mut seen = self.live.read(|engine| {
            let Some(task) = engine.task(task) else { return Seen::default() };
            let accepted = (task.status == TaskStatus::Assigned)
                .then(|| {
                    task.reservations.iter().rev().find_map(|sid| {
                        engine.reservation(*sid).filter(|r| r.status == ReservationStatus::Accepted)
                    })
                })
                .flatten()
                .map(|reservation| Accepted {
                    reservation: reservation.sid,
                    target: engine.reservation_worker(reservation).attributes["contact_uri"]
                        .as_str()
                        .and_then(DialTarget::from_contact_uri),
                    queue: engine.task_queue(task).map(|queue| queue.sid),
                    waited: now - task.created_at,
                });
            Seen {
                status: Some(task.status),
                accepted,
                position: engine.queue_position(task),
                mean_gap: None,
                callback: callback::state_of(&task.attributes),
            }
        });
        if let Some((queue, _)) = seen.position {
            seen.mean_gap = self.lock_pace().get(&queue).and_then(|pace| pace.mean_gap);
        }
        seen
    }

    fn context<'a>(&'a self, flow: &'a Flow, now: Millis) -> Context<'a> {
        let base_url = self.base_url.get().map_or("", String::as_str);
        Context { flow, settings: &self.settings, base_url, now }
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
        call: NewCall<'_>,
        request: ivr::RouteRequest,
    ) -> Result<Option<Call>, VoiceError> {
        let NewCall { params, flow, place, stage, now } = call;
        let extra = [
            ("call_sid", json!(params.call_sid)),
            ("from", json!(params.from)),
            ("to", json!(params.to)),
            ("ivr_flow", json!(flow)),
        ];
        let task = self.live.read(|engine| request.into_task(engine.workflows(), "voice", &extra));
        let command = match task {
            Ok(task) => Command::CreateTask(task),
            Err(err) => {
                tracing::error!(%flow, %err, "the IVR's task cannot be created");
                return Ok(None);
            }
        };
        let stored = self
            .live
            .execute_with(command, |task| {
                CallRecord::V1(CallV1::from(&Call {
                    sid: params.call_sid.clone(),
                    from: params.from.clone(),
                    to: params.to.clone(),
                    flow: flow.to_owned(),
                    place,
                    task: task.expect("a task creation that succeeds names the task"),
                    started_at: now,
                    last_seen: now,
                    announced_at: None,
                    stage,
                    dial_fallback: false,
                    room: None,
                    retry_at: None,
                }))
            })
            .await;
        match stored {
            Ok((_, CallRecord::V1(record))) => Ok(record.into_call()),
            Err(ExecuteError::Storage(err)) => Err(VoiceError::Storage(err)),
            Err(ExecuteError::Refused(err)) => {
                tracing::error!(%flow, %err, "the IVR's task was refused");
                Ok(None)
            }
        }
    }

    /// Stores the caller's message with their task.
    async fn attach_voicemail(&self, task: Sid, url: &str, duration: u32) -> Result<(), VoiceError> {
        let attributes =
            self.live.read(|engine| engine.task(task).map(|task| serde_json::Value::clone(&task.attributes)));
        let Some(mut attributes) = attributes else { return Ok(()) };
        attributes["voicemail"] = json!({"url": url, "duration": duration});
        match self.live.execute(Command::UpdateTaskAttributes { task, attributes }).await {
            Ok(_) => Ok(()),
            Err(ExecuteError::Storage(err)) => Err(VoiceError::Storage(err)),
            Err(ExecuteError::Refused(err)) => {
                tracing::warn!(%err, %task, "the voicemail could not be stored with its task");
                Ok(())
            }
        }
    }

    /// The flow a call walks; the numbers' flow when its own file is gone (renamed while the
    /// caller held), so that the call still sounds like the line they called.
    fn flow_of(&self, call: &Call) -> Arc<Flow> {
        let flows = self.ivr.flows();
        flows
            .shared(&call.flow)
            .or_else(|| flows.for_number(&call.to).and_then(|(name, _)| flows.shared(name)))
            .or_else(|| flows.iter().next().and_then(|(name, _)| flows.shared(name)))
            .expect("a folder of flows holds at least one (checked at load)")
    }

    /// Runs `command` for `call`; a refusal (the state moved on meanwhile, say) is logged, not
    /// an error for the caller.
    async fn execute(&self, call: &Call, command: Command, why: &str) -> Result<(), VoiceError> {
        tracing::info!(call_sid = %call.sid, task = %call.task, why);
        match self.live.execute(command).await {
            Ok(_) => Ok(()),
            Err(ExecuteError::Storage(err)) => Err(VoiceError::Storage(err)),
            Err(ExecuteError::Refused(err)) => {
                tracing::info!(%err, why, "a call's change no longer applied");
                Ok(())
            }
        }
    }

    fn lock_pace(&self) -> std::sync::MutexGuard<'_, HashMap<Sid, Pace>> {
        self.pace.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stored call, if any (tests and diagnostics).
    pub async fn call_record(&self, call_sid: &str) -> Option<Call> {
        self.calls.lock(call_sid).await.clone()
    }
}

/// What a provider request gave back.
/// How many accepted calls are connected at the same time (each a few provider requests).
const CONNECTING_AT_ONCE: usize = 64;

/// The call recordings a task's attributes list (`conversations.media`, as Flex keeps them).
pub fn recordings_of(attributes: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    attributes["conversations"]["media"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|media| media["type"] == "VoiceRecording")
}

enum Provided {
    Done,
    /// The caller's call now runs the TwiML that takes them into the conference.
    CallerMoved,
    /// The agent's leg was placed, in this conference.
    AgentCalled {
        call_sid: String,
        conference: String,
    },
    /// The recording started (its SID) or stopped.
    Recording(Option<String>),
    /// An outside party is being called into the conference (a warm transfer to them).
    OutsideCalled {
        call_sid: String,
    },
}

/// A call the IVR is routing, before its task exists.
struct NewCall<'a> {
    params: &'a CallParams,
    flow: &'a str,
    place: CallState,
    stage: Stage,
    now: Millis,
}

/// What every webhook answers when Switchboard itself failed.
/// Whether `task` is a callback request.
fn attributes_of_callback(live: &LiveEngine, task: Sid) -> bool {
    live.read(|engine| engine.task(task).is_some_and(|task| task.attributes["callback"].is_object()))
}

/// A call's final status that says it was never answered.
fn never_answered(status: &str) -> bool {
    matches!(status, "busy" | "failed" | "no-answer" | "canceled")
}

pub fn technical_difficulty() -> Response {
    call::goodbye_plain(call::TECHNICAL_DIFFICULTY)
}
