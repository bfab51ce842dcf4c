//! `switchboard provider`: a telephony provider in one process, for trying Switchboard without
//! a phone and as the real provider of the integration tests. It holds live calls and
//! conferences in memory, runs their TwiML as Twilio does, serves the subset of Twilio's Voice
//! REST API that Switchboard uses (with Basic auth checked) and posts signed webhooks and
//! status callbacks with Twilio's parameter names. Callers and agents' phones are scripted
//! through its control API (`/emulator/...`, see `http::emulator`).
//!
//! What it copies from Twilio, and from where (`../shared/reference/voice-api.md`, `twiml.md`):
//! - TwiML (`twiml.md` §4): `Say`, `Play` (noted in the call's transcript), `Pause` (waited),
//!   `Gather` (answered with the caller's next scripted keys, or nothing after its `timeout`),
//!   `Redirect`, `Record` (a recording of the time it lasted), `Hangup`, `Reject`, and `Dial`
//!   with `Number`, `Client` and `Sip` (the agent's scripted phone rings; `DialCallStatus` to
//!   the action) or `Conference` (joined until it ends, the call is moved or hangs up). A
//!   document that ends hangs up; verbs after an action-taking verb are not reached.
//! - Calls (§2): create (`Url`, `StatusCallback` with its events, `Timeout`), update with `Url`
//!   or `Twiml` (the running TwiML stops at once; a call in a conference leaves it with
//!   `participant_updated_via_api`; 21220 unless in progress) or `Status` (`completed` hangs up
//!   any call, `canceled` only one not yet answered), fetch.
//! - Conferences and participants (§3): a conference is created by the first `Dial` or
//!   participant naming it (`init`), starts with two participants one of whom starts it
//!   (`conference-start`), ends when a participant with `endConferenceOnExit` leaves or the
//!   last one does, or by `Status=completed` (everyone else's `Dial` then continues). Events
//!   `start end join leave mute hold modify` with `SequenceNumber`, the first participant's
//!   callback winning. Participants create (by SID or friendly name, `Label` unique, 16026),
//!   update (`Hold`, `HoldUrl`, `Muted`, `Coaching`, `CallSidToCoach`, `EndConferenceOnExit`),
//!   remove, fetch (by call SID or label; one still being called in is found with the status
//!   `queued`, `ringing` or `connecting`); their calls' status callbacks `initiated ringing answered completed`.
//!   Who hears whom follows hold, mute and coaching ([`Conference::hearing`]), for tests to check.
//! - Recordings (§4): `Calls/{CA}/Recordings` create (21220 unless in progress) and update
//!   (`paused`, `in-progress`, `stopped`, `Twilio.CURRENT`); the `recordingStatusCallback` with
//!   `RecordingSid`, `RecordingUrl`, `RecordingStatus`, `RecordingDuration`; the recording
//!   itself served as a WAV file (silence of the recorded length) at its URL.
//! - Webhooks (`twiml.md` §1 to §3): form POSTs signed with X-Twilio-Signature over the URL and
//!   parameters, with `CallSid`, `AccountSid`, `From`, `To`, `CallStatus`, `Direction`,
//!   `ApiVersion`; errors in Twilio's JSON (`code`, `message`, `more_info`, `status`).
//!
//! What it leaves out: audio (speech is text in a transcript), SMS, queues (`Enqueue`), AMD,
//! `Dial` to several numbers at once, conference announcements, `speaker` events, coaching's
//! the fallback URL, CPS metering
//! and the `participant-leave` of a participant whose call never connected (its call's status
//! callback reports it). The control API can take the REST API out of service for a while
//! (503 with Twilio's 20503) while calls and webhooks go on. Time runs `time_scale` times as fast as the wall clock's, so that
//! tests need not wait out rings and pauses.

pub mod legs;
pub mod rest;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::outbound::webhooks::Poster;

/// How the emulator is set up.
#[derive(Debug, Clone)]
pub struct EmulatorSettings {
    /// The account whose REST API it serves; Basic auth takes this SID and the token.
    pub account_sid: String,
    /// Checks the REST API's Basic auth and signs every webhook.
    pub auth_token: String,
    /// The number's voice webhook: where an incoming call's TwiML comes from.
    pub voice_url: String,
    /// The number's status callback.
    pub status_callback: String,
    /// The emulator's own base URL, for recording URLs (set once listening).
    pub public_url: String,
    /// Emulated seconds per wall-clock second: 10 makes a 5 s pause last 0.5 s.
    pub time_scale: f64,
}

/// What an agent's (or any dialled) phone does when called.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneScript {
    /// Seconds of ringing before it answers; none: it never does (no answer).
    pub answer_after: Option<f64>,
    /// It is busy: the call fails at once with `busy`.
    #[serde(default)]
    pub busy: bool,
    /// Seconds it talks once answered before hanging up; none: until hung up otherwise.
    pub hang_up_after: Option<f64>,
}

impl Default for PhoneScript {
    /// A phone answered after a second of ringing, kept until hung up.
    fn default() -> PhoneScript {
        PhoneScript { answer_after: Some(1.0), busy: false, hang_up_after: None }
    }
}

/// A call's state, as Twilio names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Failed => "failed",
            CallStatus::Canceled => "canceled",
        }
    }

    pub fn is_over(self) -> bool {
        !matches!(self, CallStatus::Queued | CallStatus::Ringing | CallStatus::InProgress)
    }
}

/// What interrupts a call's TwiML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interruption {
    /// Calls update with `Url`: fetch this and run it instead.
    Redirect(String),
    /// Calls update with `Twiml`.
    Twiml(String),
    /// Hung up (by the caller, the far end, the API, or its conference ending it).
    HangUp,
}

/// One call leg.
#[derive(Debug)]
pub struct Leg {
    pub sid: String,
    pub parent: Option<String>,
    pub from: String,
    pub to: String,
    /// `inbound`, `outbound-api` or `outbound-dial`.
    pub direction: &'static str,
    /// The label it joins its conference with (Participants create).
    pub label: Option<String>,
    pub status: CallStatus,
    /// Where its status callbacks go, and for which of `initiated ringing answered completed`
    /// (`completed` always).
    pub status_callback: Option<(String, Vec<String>)>,
    /// Keys the caller will press, one entry per Gather.
    pub keys: VecDeque<String>,
    /// What the caller hears and does, one line each.
    pub transcript: Vec<String>,
    /// The conference it is being called into (its SID) and as which participant, listed by
    /// the API while its phone rings, as Twilio lists a participant before it connects.
    pub joining: Option<(String, Participant)>,
    /// The conference it is in (its SID).
    pub conference: Option<String>,
    /// Set by the API or the control API; the leg's runner acts on it at its next wait.
    pub interruption: Option<Interruption>,
    /// Woken whenever something happens to the leg (keys, an interruption, its conference).
    pub changed: watch::Sender<u64>,
    pub created: Instant,
    pub answered: Option<Instant>,
    /// The recording in progress, if any.
    pub recording: Option<String>,
    /// When its TwiML first took it out of the hold loop toward an agent (a `Dial` to a phone,
    /// or into a conference), on the wall clock: what the benchmarks time an accept against.
    pub bridged_at: Option<std::time::SystemTime>,
}

/// A conference participant.
#[derive(Debug, Clone)]
pub struct Participant {
    pub call_sid: String,
    pub label: Option<String>,
    pub muted: bool,
    pub hold: bool,
    pub coaching: bool,
    pub call_sid_to_coach: Option<String>,
    pub start_conference_on_enter: bool,
    pub end_conference_on_exit: bool,
}

impl Conference {
    /// Who each participant hears, as Twilio mixes a conference: nobody on hold is heard or
    /// hears anyone (they hear the hold music); nobody muted is heard; a coach is heard only by
    /// the participant they coach (a whisper). Call SIDs, each list in the participants' order.
    pub fn hearing(&self) -> Vec<(String, Vec<String>)> {
        self.participants
            .iter()
            .map(|listener| {
                let heard = self.participants.iter().filter(|speaker| {
                    speaker.call_sid != listener.call_sid
                        && !listener.hold
                        && !speaker.hold
                        && !speaker.muted
                        && (!speaker.coaching
                            || speaker.call_sid_to_coach.as_ref() == Some(&listener.call_sid))
                });
                (listener.call_sid.clone(), heard.map(|speaker| speaker.call_sid.clone()).collect())
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConferenceStatus {
    Init,
    InProgress,
    Completed,
}

impl ConferenceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConferenceStatus::Init => "init",
            ConferenceStatus::InProgress => "in-progress",
            ConferenceStatus::Completed => "completed",
        }
    }
}

#[derive(Debug)]
pub struct Conference {
    pub sid: String,
    pub friendly_name: String,
    pub status: ConferenceStatus,
    pub participants: Vec<Participant>,
    /// The first participant's `statusCallback` and its events (`start`, `join`...).
    pub status_callback: Option<(String, Vec<String>)>,
    pub sequence: u64,
    pub reason_ended: Option<&'static str>,
    pub call_sid_ending: Option<String>,
}

#[derive(Debug)]
pub struct Recording {
    pub sid: String,
    pub call_sid: String,
    pub status: &'static str,
    pub started: Instant,
    /// Emulated time recorded so far, not counting pauses.
    pub recorded: Duration,
    /// When the current stretch of recording started (none while paused).
    pub running_since: Option<Instant>,
    pub callback: Option<(String, Vec<String>)>,
}

/// Everything the emulator holds. Behind one mutex, never held across an await.
#[derive(Default)]
pub struct World {
    next_sid: u64,
    pub legs: HashMap<String, Leg>,
    pub conferences: HashMap<String, Conference>,
    pub recordings: HashMap<String, Recording>,
    /// Scripted phones by address (`client:alice`, `+15550001111`, `sip:...`).
    pub phones: HashMap<String, PhoneScript>,
    /// What a phone without a script of its own does (by default: answer after a second).
    pub every_phone: PhoneScript,
    /// Every REST request received: method, path and parameter names (for the tests).
    pub requests: Vec<(String, String, Vec<String>)>,
    /// Until then the REST API is out of service (503, Twilio's 20503), while calls go on and
    /// webhooks are still sent: an outage of the provider's API alone.
    pub api_down_until: Option<Instant>,
}

impl World {
    /// A new SID with Twilio's prefix: `CA`, `CF`, `RE`.
    pub fn sid(&mut self, prefix: &str) -> String {
        self.next_sid += 1;
        format!("{prefix}{:032x}", 0xe0_0000_0000_u64 + self.next_sid)
    }

    /// The active (not completed) conference named `name`.
    pub fn active_conference(&self, name: &str) -> Option<&Conference> {
        self.conferences.values().find(|conference| {
            conference.friendly_name == name && conference.status != ConferenceStatus::Completed
        })
    }

    /// Wakes the runner of `call_sid`, and its parent's (which waits on a dialled leg).
    pub fn wake(&self, call_sid: &str) {
        if let Some(leg) = self.legs.get(call_sid) {
            leg.changed.send_modify(|n| *n += 1);
            if let Some(parent) = leg.parent.as_ref().and_then(|parent| self.legs.get(parent)) {
                parent.changed.send_modify(|n| *n += 1);
            }
        }
    }

    /// Interrupts `call_sid`'s TwiML (a hang-up wins over a redirect).
    pub fn interrupt(&mut self, call_sid: &str, interruption: Interruption) {
        if let Some(leg) = self.legs.get_mut(call_sid) {
            if leg.interruption != Some(Interruption::HangUp) {
                leg.interruption = Some(interruption);
            }
        }
        self.wake(call_sid);
    }
}

/// A webhook or callback to post: the URL and the form (signed when posted).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub url: String,
    pub params: Vec<(String, String)>,
}

/// The emulator, shared by its HTTP routes and its call runners.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    settings: EmulatorSettings,
    world: Mutex<World>,
    poster: Poster,
    /// Callbacks, posted one at a time in the order they happened.
    callbacks: mpsc::UnboundedSender<Outgoing>,
}

impl Emulator {
    /// Starts the emulator's callback sender (on the current tokio runtime).
    pub fn new(settings: EmulatorSettings) -> Emulator {
        let poster = Poster::new(settings.auth_token.clone());
        let (callbacks, mut queue) = mpsc::unbounded_channel::<Outgoing>();
        let sender = poster.clone();
        tokio::spawn(async move {
            while let Some(outgoing) = queue.recv().await {
                if let Err(err) = sender.post(&outgoing.url, &outgoing.params).await {
                    tracing::warn!(url = %outgoing.url, %err, "a callback was not taken");
                }
            }
        });
        Emulator {
            inner: Arc::new(Inner { settings, world: Mutex::new(World::default()), poster, callbacks }),
        }
    }

    pub fn settings(&self) -> &EmulatorSettings {
        &self.inner.settings
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.inner.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn poster(&self) -> &Poster {
        &self.inner.poster
    }

    /// Queues a callback, after those already queued.
    pub fn callback(&self, url: &str, params: Vec<(String, String)>) {
        let _ = self.inner.callbacks.send(Outgoing { url: url.to_owned(), params });
    }

    /// Emulated time as wall-clock time.
    pub fn wall(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds / self.inner.settings.time_scale.max(1e-6)).max(0.0))
    }

    /// Wall-clock time as emulated seconds.
    pub fn emulated(&self, elapsed: Duration) -> f64 {
        elapsed.as_secs_f64() * self.inner.settings.time_scale
    }

    /// The form every webhook of `leg` carries.
    pub fn call_params(&self, leg: &Leg) -> Vec<(String, String)> {
        let mut params = vec![
            ("AccountSid".to_owned(), self.inner.settings.account_sid.clone()),
            ("CallSid".to_owned(), leg.sid.clone()),
            ("From".to_owned(), leg.from.clone()),
            ("To".to_owned(), leg.to.clone()),
            ("CallStatus".to_owned(), leg.status.as_str().to_owned()),
            ("Direction".to_owned(), leg.direction.to_owned()),
            ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
        ];
        if let Some(parent) = &leg.parent {
            params.push(("ParentCallSid".to_owned(), parent.clone()));
        }
        params
    }

    /// Starts an incoming call from `from` to `to` that will press `keys`, one entry per
    /// Gather; answers its SID.
    pub fn incoming_call(&self, from: &str, to: &str, keys: Vec<String>) -> String {
        let sid = {
            let mut world = self.world();
            let sid = world.sid("CA");
            let status_callback =
                Some((self.inner.settings.status_callback.clone(), vec!["completed".to_owned()]));
            let leg = new_leg(&sid, None, from, to, "inbound", status_callback);
            world.legs.insert(
                sid.clone(),
                Leg {
                    keys: keys.into(),
                    status: CallStatus::InProgress,
                    answered: Some(Instant::now()),
                    ..leg
                },
            );
            sid
        };
        let url = self.inner.settings.voice_url.clone();
        let emulator = self.clone();
        let call_sid = sid.clone();
        tokio::spawn(async move { legs::run(emulator, call_sid, legs::Next::Fetch(url, Vec::new())).await });
        sid
    }

    /// Adds keys for the caller's next Gathers.
    pub fn press(&self, call_sid: &str, keys: &str) -> bool {
        let mut world = self.world();
        let Some(leg) = world.legs.get_mut(call_sid) else { return false };
        leg.keys.push_back(keys.to_owned());
        world.wake(call_sid);
        true
    }

    /// The caller (or the far end) hangs up.
    pub fn hang_up(&self, call_sid: &str) -> bool {
        let mut world = self.world();
        if world.legs.get(call_sid).is_none_or(|leg| leg.status.is_over()) {
            return false;
        }
        world.interrupt(call_sid, Interruption::HangUp);
        true
    }

    /// Scripts what the phone at `address` does when called.
    pub fn script_phone(&self, address: &str, script: PhoneScript) {
        self.world().phones.insert(address.to_owned(), script);
    }

    /// What every phone without a script of its own does.
    pub fn script_every_phone(&self, script: PhoneScript) {
        self.world().every_phone = script;
    }
}

/// A leg as it starts: queued, nothing pressed or heard.
pub fn new_leg(
    sid: &str,
    parent: Option<String>,
    from: &str,
    to: &str,
    direction: &'static str,
    status_callback: Option<(String, Vec<String>)>,
) -> Leg {
    Leg {
        sid: sid.to_owned(),
        parent,
        from: from.to_owned(),
        to: to.to_owned(),
        direction,
        label: None,
        status: CallStatus::Queued,
        status_callback,
        keys: VecDeque::new(),
        transcript: Vec::new(),
        joining: None,
        conference: None,
        interruption: None,
        changed: watch::channel(0).0,
        created: Instant::now(),
        answered: None,
        recording: None,
        bridged_at: None,
    }
}
