//! A routed call and what each voice webhook decides for it: pure functions from the call,
//! what the engine shows of its task ([`Seen`]), the webhook and `now` to the TwiML to answer
//! and the [`Action`]s for the shell (`voice::Voice`) to carry out, in order. No I/O, no clock,
//! no logging here: every effect, and the reason for it, comes back as data, so each journey
//! can be tested one step per line (`voice/tests.rs`).
//!
//! A call's [`Stage`] says what it is doing now; each webhook moves it along:
//!
//! ```text
//!   routed ──▶ Waiting ──(an agent accepted, a poll)──▶ Dialing ──(Dial ended: completed)──▶ forgotten
//!                 │  ▲                                      │
//!                 │  └──────(Dial ended: no answer, busy)───┘
//!                 └──(waited voice.voicemail_after)──▶ Voicemail ──(message stored)──▶ forgotten
//! ```
//!
//! A status callback that reports the call over cancels a waiting task or wraps up an
//! assigned one, and forgets the call.

use crate::config::{BridgeMode, VoiceSettings};
use crate::ivr::{self, CallState, Flow};
use crate::routing::{Command, Millis, Sid, TaskStatus};
use crate::twiml::{self, DialTarget, Method, Response, Verb};

use super::{conference, paths};

/// A caller whom the IVR routed: stored from the moment their task exists until the call is
/// over and nothing more can come for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub sid: String,
    pub from: String,
    pub to: String,
    /// The IVR flow (file stem) the call walks.
    pub flow: String,
    /// Where the IVR left the caller: their language, and the keys they pressed.
    pub place: CallState,
    /// The routing task the IVR created.
    pub task: Sid,
    /// When the caller was put in line.
    pub started_at: Millis,
    /// When their last hold-loop request came. Kept current in memory only: a restart gives
    /// every caller a fresh abandon window, so a poll writes nothing.
    pub last_seen: Millis,
    /// When the caller last heard their place in line.
    pub announced_at: Option<Millis>,
    pub stage: Stage,
    /// The provider's API failed to move this caller into a conference: they are bridged with
    /// `<Dial>` instead, as without conferences. In memory only: a restart tries again.
    pub dial_fallback: bool,
    /// The task the conference is named after, once a transfer made `task` another one.
    pub room: Option<Sid>,
    /// A callback's customer to be called again then (the last try went unanswered).
    pub retry_at: Option<Millis>,
}

/// What a routed call is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// In the hold loop, polling `/voice/wait` until an agent accepts.
    Waiting,
    /// In a `<Dial>` to the worker of this accepted reservation; its action reports the outcome.
    Dialing { reservation: Sid },
    /// Offered to leave a message. The caller's hang-up does not cancel the task at once: the
    /// recording may come after the status callback (`ended_at`: when that came).
    Voicemail { left: bool, ended_at: Option<Millis> },
    /// In (or on the way into) the task's conference (`voice.bridge = "conference"`).
    Conference(Bridge),
}

/// A call bridged in a conference: who is called in, who talks, what is held and recorded.
/// Stored: after a restart, each callback still finds the leg it is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bridge {
    /// The reservation whose worker is called in, or talks; none while the caller waits in the
    /// conference for the next agent (the last one did not answer).
    pub reservation: Option<Sid>,
    /// The caller is in the conference, or on the way in: stored before the agent is called,
    /// so that after a crash an agent is only called again when they certainly were not.
    pub caller_moved: bool,
    /// The agent's call leg, once the provider placed it.
    pub agent_call: Option<String>,
    /// The conference's SID, once the provider named it.
    pub conference: Option<String>,
    /// The agent joined: they and the caller talk.
    pub talking: bool,
    /// The caller is on hold.
    pub on_hold: bool,
    /// The agent is muted.
    pub muted: bool,
    /// The recording in progress.
    pub recording: Option<String>,
    /// A transfer under way: the agent and queue fields above are about its taker then.
    pub transfer: Option<Box<super::transfer::Transfer>>,
    /// Supervisors in the conference (monitoring, whispering or barged in).
    pub supervisors: Vec<super::supervise::Supervision>,
}

/// What the engine shows of a call's task when a webhook comes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// None once the task is gone (purged).
    pub status: Option<TaskStatus>,
    /// The accepted reservation, while the task is assigned.
    pub accepted: Option<Accepted>,
    /// The caller's queue and place in it (1 = next), while they wait.
    pub position: Option<(Sid, usize)>,
    /// The mean time between two callers of that queue being connected, in ms.
    pub mean_gap: Option<f64>,
    /// The task asks to be called back, and how far that went.
    pub callback: Option<super::callback::CallbackState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub reservation: Sid,
    /// Where to reach the worker: their `contact_uri`, if it is one a `<Dial>` can call.
    pub target: Option<DialTarget>,
    pub queue: Option<Sid>,
    /// Since the task was created.
    pub waited: Millis,
}

/// A side effect of a decision, carried out by the shell in order, before the answer leaves.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Runs a routing command. A refusal (the state moved on meanwhile) is logged with `why`.
    Execute { command: Command, why: &'static str },
    /// The caller is being connected to an agent (the estimated wait learns from it).
    Connected { reservation: Sid, queue: Option<Sid>, waited: Millis },
    /// Stores the caller's message with the task (in its attributes, under `voicemail`).
    AttachVoicemail { url: String, duration: u32 },
    /// Stores the call as it now is.
    Save,
    /// Deletes the stored call: nothing more will come for it.
    Forget,
    /// Asks the provider (its Voice API) to act on the call; should it fail, `fallback` says
    /// what the call does instead (see [`super::conference::on_provider_failed`]).
    Provider { request: ProviderRequest, fallback: Fallback },
    /// Merges `attribute`'s fields into the task's `callback` attribute.
    MarkCallback { attribute: serde_json::Value },
    /// Calls a callback's customer again, once the call's lock is let go.
    CallBackAgain { task: Sid, number: String },
}

/// What Switchboard asks of the provider for a call in conference bridging.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderRequest {
    /// Moves the caller, wherever their TwiML is, into the task's conference (Calls update
    /// with this TwiML).
    MoveCaller(Response),
    /// Calls the worker at `to` into the task's conference (Participants create, labelled with
    /// the reservation so that a repeat can never ring them twice).
    CallAgent { reservation: Sid, to: String, label: String },
    /// Hangs up the agent's leg (ringing or talking).
    HangUpAgent { call_sid: String },
    /// Hangs up the caller.
    HangUpCaller,
    /// Puts the caller on hold (music) or back.
    HoldCaller(bool),
    /// Mutes or unmutes the agent.
    MuteAgent(bool),
    /// Starts recording the caller's call (both parties), or stops the recording.
    Record(bool),
    /// Whether this participant leaving ends the conference for everyone.
    EndConferenceOnExit { call_sid: String, end: bool },
    /// Calls an outside party into the conference, for a warm transfer to them.
    CallOutside { to: String, label: String },
    /// Calls a supervisor at `to` into the conference as `label`, listening as `mode` says
    /// (coaching the agent's leg `agent` when whispering).
    CallSupervisor { to: String, label: String, mode: super::supervise::SuperviseMode, agent: String },
    /// Changes how the supervisor `label` takes part.
    Supervise { label: String, mode: super::supervise::SuperviseMode, agent: String },
    /// Hangs up the participant `label`.
    RemoveParticipant { label: String },
}

/// What a call does when a provider request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Back to the hold loop, to be bridged with `<Dial>` on its next request as without
    /// conferences: the caller was not moved, so nothing is stranded.
    DialAsBefore,
    /// The agent could not be called: their reservation ends as unanswered and the caller
    /// waits in the conference for the next agent.
    NextAgent,
    /// Nothing changes; the failure is logged (and, for the agent page, reported).
    Report,
}

/// A decision: the TwiML to answer, once the actions are carried out.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub response: Response,
    pub actions: Vec<Action>,
}

impl Decision {
    pub(super) fn answer(response: Response) -> Decision {
        Decision { response, actions: Vec::new() }
    }

    pub(super) fn with(mut self, action: Action) -> Decision {
        self.actions.push(action);
        self
    }
}

/// What every decision reads besides the call.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub flow: &'a Flow,
    pub settings: &'a VoiceSettings,
    /// Where the provider reaches Switchboard (`voice.public_url`, or the listener's), for the
    /// absolute URLs of TwiML sent through the API.
    pub base_url: &'a str,
    pub now: Millis,
}

pub const SORRY_GOODBYE: &str =
    "Sorry, no one can take your call right now. Please call again later. Goodbye.";
pub const TECHNICAL_DIFFICULTY: &str =
    "Sorry, we are having technical difficulties. Please call again later. Goodbye.";
const VOICEMAIL_OFFER: &str =
    "Sorry, all our agents are still busy. Please leave a message after the tone, and we will call you back.";
const MESSAGE_TAKEN: &str = "Thank you. We will call you back. Goodbye.";
const STILL_TRYING: &str = "Please hold, we are connecting you to the next available agent.";
const PLEASE_HOLD: &str = "Please hold for the next available agent.";
/// Calls with no webhook for this long, and no task waiting, are forgotten.
pub const FORGET_AFTER: Millis = 4 * 3600 * 1000;

/// The IVR just routed the caller (the call is stored with its task): they hear the hold loop,
/// or, when the IVR took a message, the IVR's own goodbye.
pub fn routed(call: &mut Call, seen: &Seen, ivr_response: Response, cx: Context<'_>) -> Response {
    match call.stage {
        Stage::Voicemail { .. } => ivr_response,
        // What the flow said on the way to the route, then the hold loop.
        _ => {
            let mut verbs = ivr_response.verbs;
            verbs.extend(hold(call, seen, Some(PLEASE_HOLD), cx).verbs);
            Response::new(verbs)
        }
    }
}

/// `/voice/wait` with the keys the caller pressed in the hold loop: the callback key asks to
/// be called back; anything else is the hold loop as ever.
pub fn on_wait_keys(call: &mut Call, seen: &Seen, digits: Option<&str>, cx: Context<'_>) -> Decision {
    match digits.and_then(|digits| super::callback::on_key(call, seen, digits, cx)) {
        Some(decision) => decision,
        None => on_wait(call, seen, cx),
    }
}

/// `/voice/wait` (and a retry of the request that routed the call): hold, offer voicemail,
/// or bridge the caller to the agent who accepted.
pub fn on_wait(call: &mut Call, seen: &Seen, cx: Context<'_>) -> Decision {
    call.last_seen = cx.now;
    match (seen.status, &seen.accepted) {
        (Some(TaskStatus::Pending | TaskStatus::Reserved), _) => {
            let waited = cx.now - call.started_at;
            let offer_voicemail = cx.settings.voicemail_after > 0
                && waited >= Millis::from(cx.settings.voicemail_after) * 1000
                && !matches!(call.stage, Stage::Voicemail { .. });
            if !offer_voicemail {
                return Decision::answer(hold(call, seen, None, cx));
            }
            call.stage = Stage::Voicemail { left: false, ended_at: None };
            let offer = Response::new(vec![
                Verb::Say(ivr::say(cx.flow, &call.place.language, VOICEMAIL_OFFER)),
                Verb::Record(ivr::record(paths::VOICEMAIL, ivr::DEFAULT_MAX_LENGTH)),
            ]);
            Decision::answer(offer).with(Action::Save)
        }
        (Some(TaskStatus::Assigned), Some(accepted)) => {
            if cx.settings.bridge == BridgeMode::Conference
                && !call.dial_fallback
                && let Some(to) = conference::agent_address(accepted)
            {
                return conference::connect(call, accepted, to, true, cx);
            }
            let Some(target) = accepted.target.clone() else {
                // Nothing stored changes: the call was not bridged, and still waits.
                let response = hold(call, seen, Some(STILL_TRYING), cx);
                return Decision::answer(response).with(Action::Execute {
                    command: Command::Unanswered { reservation: accepted.reservation },
                    why: "the accepting worker has no usable contact_uri: routing the call to the next agent",
                });
            };
            let dial = twiml::Dial {
                target,
                action: Some(paths::DIAL_STATUS.to_owned()),
                method: Some(Method::Post),
                timeout: Some(cx.settings.dial_timeout),
                caller_id: None,
                // The caller hears ringing, not silence, until the agent picks up.
                answer_on_bridge: Some(true),
            };
            let decision = Decision::answer(Response::new(vec![Verb::Dial(dial)]));
            let dialing = Stage::Dialing { reservation: accepted.reservation };
            if call.stage == dialing {
                return decision;
            }
            // Durable: after a restart, the Dial's outcome must still find its agent.
            call.stage = dialing;
            let connected = Action::Connected {
                reservation: accepted.reservation,
                queue: accepted.queue,
                waited: accepted.waited,
            };
            decision.with(connected).with(Action::Save)
        }
        // Over, purged, or assigned without an accepted reservation: nothing left to wait for.
        _ => {
            let goodbye = match call.stage {
                Stage::Voicemail { .. } => goodbye(cx.flow, &cx.flow.language, MESSAGE_TAKEN),
                _ => goodbye(cx.flow, &call.place.language, SORRY_GOODBYE),
            };
            Decision::answer(goodbye).with(Action::Forget)
        }
    }
}

/// `/voice/dial-status`: how the `<Dial>` to the agent ended (`DialCallStatus`).
pub fn on_dial_status(call: &mut Call, seen: &Seen, dial_call_status: &str, cx: Context<'_>) -> Decision {
    let Stage::Dialing { reservation } = call.stage else {
        // Not dialing (a retry of this callback, say): carry on holding.
        return on_wait(call, seen, cx);
    };
    call.stage = Stage::Waiting;
    match dial_call_status {
        // `completed`: the agent and the caller talked and the call is over. `canceled`: the
        // caller hung up while the agent's phone rang, which is not the agent's doing. Either
        // way the task moves to after-call work, where the agent closes it.
        "completed" | "answered" | "canceled" => Decision::answer(Response::new(vec![Verb::Hangup]))
            .with(Action::Execute {
                command: Command::WrapUp { task: call.task },
                why: "the call with the agent ended",
            })
            .with(Action::Forget),
        _ => {
            // The caller was in the Dial, not polling: their hold loop starts again now.
            call.last_seen = cx.now;
            let response = hold(call, seen, Some(STILL_TRYING), cx);
            Decision::answer(response)
                .with(Action::Execute {
                    command: Command::Unanswered { reservation },
                    why: "the agent did not answer: routing the call to the next agent",
                })
                .with(Action::Save)
        }
    }
}

/// `/voice/status` with a `CallStatus` that says the call is over: a waiting task is canceled,
/// an assigned one wraps up, and the call is forgotten; but a caller offered voicemail is kept
/// until their recording comes (or [`on_sweep`] gives up on it).
pub fn on_call_ended(call: &mut Call, seen: &Seen, cx: Context<'_>) -> Decision {
    let nothing = Decision::answer(Response::default());
    if let Stage::Voicemail { left: false, .. } = call.stage {
        // Hanging up is how most callers end a message, and the recording's own request may
        // come after this one.
        call.stage = Stage::Voicemail { left: false, ended_at: Some(cx.now) };
        return nothing.with(Action::Save);
    }
    let voicemail = matches!(call.stage, Stage::Voicemail { .. });
    let follow_up = match seen.status {
        Some(status) if status.is_waiting() && !voicemail => {
            Some(Command::Cancel { task: call.task, reason: "caller hung up".to_owned() })
        }
        Some(TaskStatus::Assigned) => Some(Command::WrapUp { task: call.task }),
        _ => None,
    };
    let decision = match follow_up {
        Some(command) => nothing.with(Action::Execute { command, why: "the call ended" }),
        None => nothing,
    };
    // Hung up during a transfer: the transferring agent's task is over too.
    let decision = match &call.stage {
        Stage::Conference(Bridge { transfer: Some(transfer), .. }) if transfer.from_call.is_some() => {
            let command = Command::WrapUp { task: transfer.from_task };
            decision.with(Action::Execute { command, why: "the caller hung up during a transfer" })
        }
        _ => decision,
    };
    let decision = match conference::agent_to_hang_up(call) {
        Some(hang_up_agent) => decision.with(hang_up_agent),
        None => decision,
    };
    decision.with(Action::Forget)
}

/// The caller's call is over; `unanswered` when it never was (busy, no answer, failed): a
/// callback's customer is then tried again, or given up on.
pub fn on_call_over(call: &mut Call, seen: &Seen, unanswered: bool, cx: Context<'_>) -> Decision {
    match (unanswered, seen.callback) {
        (true, Some(_)) => super::callback::on_unanswered(call, seen, cx),
        _ => on_call_ended(call, seen, cx),
    }
}

/// `/voice/voicemail`: the `<Record>` of a caller offered voicemail ended; `recording` is its
/// URL and duration, none when nothing was recorded.
pub fn on_voicemail(
    call: &mut Call,
    seen: &Seen,
    recording: Option<(&str, u32)>,
    cx: Context<'_>,
) -> Decision {
    let Some((url, duration)) = recording.filter(|(url, _)| !url.is_empty()) else {
        // The caller left without a message, and without waiting.
        let decision = Decision::answer(Response::new(vec![Verb::Hangup]));
        let decision = match seen.status {
            Some(status) if status.is_waiting() => {
                decision.with(cancel(call, "hung up before leaving a message"))
            }
            _ => decision,
        };
        return decision.with(Action::Forget);
    };
    let ended_at = match call.stage {
        Stage::Voicemail { ended_at, .. } => ended_at,
        _ => None,
    };
    call.stage = Stage::Voicemail { left: true, ended_at };
    let thanks = goodbye(cx.flow, &call.place.language, MESSAGE_TAKEN);
    let attach = Action::AttachVoicemail { url: url.to_owned(), duration };
    // A call reported over already: nothing more will come for it.
    let keep = if ended_at.is_some() { Action::Forget } else { Action::Save };
    Decision::answer(thanks).with(attach).with(keep)
}

/// The periodic sweep: cancels the tasks of callers whose hold loop stopped (no request for
/// `voice.abandon_after`, and no status callback) or who hung up without leaving the message
/// they were offered, and forgets calls long over. The response is not used.
pub fn on_sweep(call: &mut Call, seen: &Seen, cx: Context<'_>) -> Decision {
    if let Some(retry) = super::callback::on_sweep(call, seen, cx) {
        return retry;
    }
    let abandon_after = Millis::from(cx.settings.abandon_after) * 1000;
    let idle = cx.now - call.last_seen;
    let nothing = Decision::answer(Response::default());
    let waiting = seen.status.is_some_and(TaskStatus::is_waiting);
    match call.stage {
        Stage::Voicemail { left: false, ended_at }
            if waiting
                && (ended_at.is_some_and(|ended| cx.now - ended > abandon_after)
                    || idle > abandon_after + Millis::from(ivr::DEFAULT_MAX_LENGTH) * 1000) =>
        {
            nothing.with(cancel(call, "hung up before leaving a message")).with(Action::Forget)
        }
        Stage::Waiting if waiting && idle > abandon_after => {
            nothing.with(cancel(call, "hold loop abandoned")).with(Action::Forget)
        }
        _ if waiting || seen.status == Some(TaskStatus::Assigned) => nothing,
        _ if idle > FORGET_AFTER => nothing.with(Action::Forget),
        _ => nothing,
    }
}

fn cancel(call: &Call, reason: &'static str) -> Action {
    Action::Execute { command: Command::Cancel { task: call.task, reason: reason.to_owned() }, why: reason }
}

/// The hold TwiML: an optional notice, the place in line when due, music or silence, and the
/// loop back to `/voice/wait`.
fn hold(call: &mut Call, seen: &Seen, notice: Option<&str>, cx: Context<'_>) -> Response {
    let language = &call.place.language;
    let mut verbs = Vec::new();
    if let Some(notice) = notice {
        verbs.push(Verb::Say(ivr::say(cx.flow, language, notice)));
    }
    let due =
        call.announced_at.is_none_or(|at| cx.now - at >= Millis::from(cx.settings.announce_every) * 1000);
    if due && let Some(announcement) = announcement(seen) {
        verbs.push(Verb::Say(ivr::say(cx.flow, language, &announcement)));
        call.announced_at = Some(cx.now);
    }
    if cx.settings.hold_music_url.is_empty() {
        verbs.push(Verb::Pause { length: Some(cx.settings.wait_seconds.max(1)) });
    } else {
        verbs.push(Verb::Play(twiml::Play { url: cx.settings.hold_music_url.clone(), repeat: None }));
    }
    if let Some(offer) = super::callback::offer(call, seen, cx) {
        let announce = call.announced_at == Some(cx.now);
        return Response::new(super::callback::hold_with_offer(offer, verbs, announce, call, cx));
    }
    verbs.push(Verb::Redirect { url: paths::WAIT.to_owned(), method: Some(Method::Post) });
    Response::new(verbs)
}

/// "You are number 3 in line. The estimated wait is about 2 minutes."
fn announcement(seen: &Seen) -> Option<String> {
    let (_, position) = seen.position?;
    let place = match position {
        1 => "You are next in line.".to_owned(),
        n => format!("You are number {n} in line."),
    };
    Some(match seen.mean_gap {
        Some(gap) => {
            let minutes = ((gap * position as f64) / 60_000.0).ceil().max(1.0) as u64;
            let unit = if minutes == 1 { "minute" } else { "minutes" };
            format!("{place} The estimated wait is about {minutes} {unit}.")
        }
        None => place,
    })
}

/// Says `text` in `language` (the flow's voice for it), then hangs up.
pub fn goodbye(flow: &Flow, language: &str, text: &str) -> Response {
    Response::new(vec![Verb::Say(ivr::say(flow, language, text)), Verb::Hangup])
}

/// Says `text` in the default voice, then hangs up: for a call no flow is known for.
pub fn goodbye_plain(text: &str) -> Response {
    Response::new(vec![
        Verb::Say(twiml::Say { text: text.to_owned(), ..twiml::Say::default() }),
        Verb::Hangup,
    ])
}
