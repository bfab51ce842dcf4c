//! Conference bridging's decisions (`voice.bridge = "conference"`), pure like the rest of
//! [`super::call`]: the caller is moved into a conference named after the task the moment an
//! agent accepts, and the agent's phone is called into it through the provider's Voice API, as
//! Flex's `conference` instruction does (`../shared/reference/voice-api.md` §5.1). What
//! follows comes back as callbacks: the agent's leg (`/voice/agent-leg`), the conference's
//! events (`/voice/conference`) and the end of the caller's `<Dial>` (`/voice/conference-ended`).
//!
//! Nothing reaches the provider before the call's new stage is stored (`Save` comes first in
//! every decision), and every request says what the call does if it fails ([`Fallback`]): a
//! caller the provider could not move stays in the hold loop and is bridged with `<Dial>` on
//! its next request, so no call is stranded when the API is down.

use crate::config::{BridgeMode, RecordMode};
use crate::routing::{Command, Sid, TaskStatus};
use crate::twiml::{self, DialTarget, Method, Response, Verb};

use super::call::{
    Accepted, Action, Bridge, Call, Context, Decision, Fallback, ProviderRequest, Seen, Stage,
};
use super::paths;

/// The caller's participant label in the conference.
pub const CUSTOMER: &str = "customer";

/// The conference's name: the task's SID, as Flex names it (the first task's, after a
/// transfer).
pub fn room(call: &Call) -> String {
    call.room.unwrap_or(call.task).to_string()
}

/// The agent's participant label: one per reservation, so that a repeated request (a retry,
/// or after a restart) is refused by the provider instead of ringing the agent twice.
pub fn agent_label(reservation: Sid) -> String {
    format!("agent-{reservation}")
}

/// The TwiML that takes the caller into the task's conference: hold music until the agent
/// joins, the conference's events to `/voice/conference`, and `/voice/conference-ended` when
/// it is over for them. URLs are absolute: a Calls update refuses relative ones (15004).
pub fn join(call: &Call, cx: Context<'_>) -> Response {
    let base = cx.base_url;
    let wait_url = if cx.settings.hold_music_url.is_empty() {
        // Twilio's own hold music when none is configured, rather than silence.
        None
    } else {
        Some(cx.settings.hold_music_url.clone())
    };
    let conference = twiml::Conference {
        name: room(call),
        start_conference_on_enter: Some(true),
        // The caller leaving ends it for the agent too (their leg is hung up with it).
        end_conference_on_exit: Some(true),
        beep: Some("false".to_owned()),
        wait_method: wait_url.as_ref().map(|_| Method::Get),
        wait_url,
        status_callback: Some(format!("{base}{}?call={}", paths::CONFERENCE, call.sid)),
        status_callback_event: Some("start end join leave mute hold".to_owned()),
        status_callback_method: Some(Method::Post),
        participant_label: Some(CUSTOMER.to_owned()),
    };
    Response::new(vec![Verb::Dial(twiml::Dial {
        target: DialTarget::Conference(conference),
        action: Some(format!("{base}{}", paths::CONFERENCE_ENDED)),
        method: Some(Method::Post),
        timeout: None,
        caller_id: None,
        answer_on_bridge: None,
    })])
}

/// Where the provider reaches the accepting worker: their `contact_uri` as Participants
/// create takes it; none when it is not one a phone can be called at.
pub fn agent_address(accepted: &Accepted) -> Option<String> {
    accepted.target.as_ref().filter(|target| !matches!(target, DialTarget::Conference(_))).map(address_of)
}

/// A phone, client or SIP address as Participants create takes it in `To`.
pub fn address_of(target: &DialTarget) -> String {
    match target {
        DialTarget::Number(number) => number.clone(),
        DialTarget::Client(identity) => format!("client:{identity}"),
        DialTarget::Sip(uri) => uri.clone(),
        DialTarget::Conference(conference) => conference.name.clone(),
    }
}

/// The event path: an agent accepted (the `reservation.accepted` event, once durable) the task
/// of a caller who waits, in the hold loop or alone in the conference.
pub fn on_accepted(call: &mut Call, seen: &Seen, cx: Context<'_>) -> Decision {
    let nothing = Decision::answer(Response::default());
    if cx.settings.bridge != BridgeMode::Conference || call.dial_fallback {
        return nothing;
    }
    let (Some(TaskStatus::Assigned), Some(accepted)) = (seen.status, &seen.accepted) else { return nothing };
    match (&call.stage, agent_address(accepted)) {
        (Stage::Waiting | Stage::Conference(_), Some(to)) => connect(call, accepted, to, false, cx),
        (Stage::Conference(bridge), None) if bridge.reservation.is_none() => nothing.with(Action::Execute {
            command: Command::Unanswered { reservation: accepted.reservation },
            why: "the accepting worker has no usable contact_uri: routing the call to the next agent",
        }),
        // In the hold loop: its next request deals with it, as without conferences.
        _ => nothing,
    }
}

/// Connects the caller to the accepting agent at `to`: the stage is stored, then the caller
/// moved (unless `answered_by_poll`: the caller's own hold-loop request is answered with the
/// conference instead) and the agent called in. A repeat (the accept seen twice, or a poll
/// after the event) changes nothing.
pub fn connect(
    call: &mut Call,
    accepted: &Accepted,
    to: String,
    answered_by_poll: bool,
    cx: Context<'_>,
) -> Decision {
    let request = ProviderRequest::CallAgent {
        reservation: accepted.reservation,
        to,
        label: agent_label(accepted.reservation),
    };
    let connected = Action::Connected {
        reservation: accepted.reservation,
        queue: accepted.queue,
        waited: accepted.waited,
    };
    match &mut call.stage {
        Stage::Waiting => {
            call.stage = Stage::Conference(Bridge {
                reservation: Some(accepted.reservation),
                // The poll's own answer takes the caller in.
                caller_moved: answered_by_poll,
                ..Bridge::default()
            });
            let decision = Decision::answer(join(call, cx)).with(connected).with(Action::Save);
            if answered_by_poll {
                // Not answered yet: should the agent's call fail, the poll answers `<Dial>`.
                decision.with(Action::Provider { request, fallback: Fallback::DialAsBefore })
            } else {
                let move_caller = ProviderRequest::MoveCaller(join(call, cx));
                decision
                    .with(Action::Provider { request: move_caller, fallback: Fallback::DialAsBefore })
                    .with(Action::Provider { request, fallback: Fallback::NextAgent })
            }
        }
        Stage::Conference(bridge) if bridge.reservation.is_none() => {
            bridge.reservation = Some(accepted.reservation);
            bridge.agent_call = None;
            // The caller is in the conference already: should the call fail, the next agent.
            Decision::answer(join(call, cx))
                .with(connected)
                .with(Action::Save)
                .with(Action::Provider { request, fallback: Fallback::NextAgent })
        }
        // Already connecting this agent, or another: a repeat.
        _ => Decision::answer(join(call, cx)),
    }
}

/// How a provider request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Twilio's error code, when the provider refused with one.
    pub code: Option<u32>,
}

/// The provider did not carry out a request: the call does what the request's fallback says.
/// The shell drops the decision's remaining actions and carries these out instead.
pub fn on_provider_failed(
    call: &mut Call,
    fallback: Fallback,
    failure: Failure,
    cx: Context<'_>,
) -> Decision {
    // 21220 or 20404 about the caller: their call is over, and its status callback ends it.
    let caller_gone = matches!(failure.code, Some(21220 | 20404));
    match (fallback, &mut call.stage) {
        (Fallback::DialAsBefore, Stage::Conference(_)) if !caller_gone => {
            // Back in the hold loop, which bridges with `<Dial>` from now on: the poll that
            // asked (or the caller's next one) answers it.
            call.stage = Stage::Waiting;
            call.dial_fallback = true;
            Decision::answer(Response::default()).with(Action::Save)
        }
        (Fallback::NextAgent, Stage::Conference(bridge)) => {
            let Some(reservation) = bridge.reservation.take() else {
                return Decision::answer(join(call, cx));
            };
            bridge.agent_call = None;
            Decision::answer(join(call, cx)).with(Action::Save).with(Action::Execute {
                command: Command::Unanswered { reservation },
                why: "the agent could not be called: routing the call to the next agent",
            })
        }
        _ => Decision::answer(Response::default()),
    }
}

/// The provider moved the caller into the conference: stored before the agent is called
/// (the decision's next action), which is what makes calling them again after a crash safe
/// exactly when this was not stored.
pub fn on_caller_moved(call: &mut Call) -> Decision {
    let Stage::Conference(bridge) = &mut call.stage else { return Decision::answer(Response::default()) };
    bridge.caller_moved = true;
    Decision::answer(Response::default()).with(Action::Save)
}

/// The provider placed the agent's leg (Participants create answered): noted, so that its
/// callbacks and the agent page's controls find it.
pub fn on_agent_called(call: &mut Call, agent_call: &str, conference: &str) -> Decision {
    let Stage::Conference(bridge) = &mut call.stage else { return Decision::answer(Response::default()) };
    bridge.agent_call = Some(agent_call.to_owned());
    bridge.conference = Some(conference.to_owned());
    Decision::answer(Response::default()).with(Action::Save)
}

/// `/voice/agent-leg?call=…&reservation=…`: the agent's leg's status callback.
pub fn on_agent_leg(call: &mut Call, reservation: Sid, call_status: &str, seen: &Seen) -> Decision {
    let nothing = Decision::answer(Response::default());
    if matches!(call_status, "completed" | "busy" | "no-answer" | "failed" | "canceled")
        && let Some(decision) = super::transfer::on_agent_hung_up(call, reservation)
    {
        return decision;
    }
    let Stage::Conference(bridge) = &mut call.stage else { return nothing };
    if bridge.reservation != Some(reservation) {
        // An earlier agent's leg, already dealt with.
        return nothing;
    }
    match call_status {
        "busy" | "no-answer" | "failed" | "canceled" => {
            bridge.reservation = None;
            bridge.agent_call = None;
            nothing.with(Action::Save).with(Action::Execute {
                command: Command::Unanswered { reservation },
                why: "the agent did not answer: routing the call to the next agent",
            })
        }
        "completed" if bridge.talking => {
            // The agent hung up: the conference ended with them (endConferenceOnExit), and the
            // caller's Dial reports it; the task moves to after-call work now. Taking a warm
            // transfer, they hung up on the consultation: the call is back with its first agent.
            bridge.talking = false;
            let wrap_up = Command::WrapUp { task: call.task };
            let wrapped = nothing
                .with(Action::Save)
                .with(Action::Execute { command: wrap_up, why: "the agent hung up" });
            if super::transfer::consulting(call) {
                let back = super::transfer::back_to_agent(call);
                return Decision { actions: [wrapped.actions, back.actions].concat(), ..back };
            }
            wrapped
        }
        "completed" if seen.status == Some(TaskStatus::Assigned) => {
            // Answered, then hung up before joining: as if not answered.
            bridge.reservation = None;
            bridge.agent_call = None;
            nothing.with(Action::Save).with(Action::Execute {
                command: Command::Unanswered { reservation },
                why: "the agent hung up before joining: routing the call to the next agent",
            })
        }
        _ => nothing,
    }
}

/// A conference event (`StatusCallbackEvent`) about the call's conference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceEvent {
    pub event: String,
    pub conference: String,
    /// The participant's call, for participant events.
    pub call_sid: Option<String>,
    pub muted: Option<bool>,
    pub hold: Option<bool>,
}

/// `/voice/conference?call=…`: the conference's events. The agent joining starts the talk (and
/// the recording, with `voice.record = "all"`); hold and mute follow what the provider did.
pub fn on_conference_event(call: &mut Call, event: &ConferenceEvent, cx: Context<'_>) -> Decision {
    let nothing = Decision::answer(Response::default());
    let caller = call.sid.clone();
    let Stage::Conference(bridge) = &mut call.stage else { return nothing };
    bridge.conference.get_or_insert_with(|| event.conference.clone());
    let about_caller = event.call_sid.as_deref() == Some(caller.as_str());
    let about_transferring_agent = bridge.transfer.as_ref().is_some_and(|transfer| {
        event.call_sid.is_some() && [&transfer.from_call, &transfer.outside_call].contains(&&event.call_sid)
    });
    let about_agent = event.call_sid.is_some()
        && !about_caller
        && !about_transferring_agent
        && bridge.agent_call.as_ref().is_none_or(|agent| Some(agent) == event.call_sid.as_ref());
    let about_outside = bridge
        .transfer
        .as_ref()
        .is_some_and(|transfer| transfer.outside_call.is_some() && transfer.outside_call == event.call_sid);
    match event.event.as_str() {
        "participant-join" if about_outside => super::transfer::on_outside_joined(call),
        "participant-join" if about_agent && bridge.reservation.is_some() => {
            bridge.talking = true;
            bridge.agent_call = event.call_sid.clone();
            let transferred = bridge.transfer.is_some();
            let decision =
                if transferred { super::transfer::taker_joined(call) } else { nothing.with(Action::Save) };
            let Stage::Conference(bridge) = &mut call.stage else { return decision };
            if cx.settings.record == RecordMode::All && bridge.recording.is_none() {
                decision.with(Action::Provider {
                    request: ProviderRequest::Record(true),
                    fallback: Fallback::Report,
                })
            } else {
                decision
            }
        }
        "participant-hold" | "participant-unhold" if about_caller => {
            bridge.on_hold = event.event == "participant-hold";
            nothing.with(Action::Save)
        }
        "participant-mute" | "participant-unmute" if about_agent => {
            bridge.muted = event.event == "participant-mute";
            nothing.with(Action::Save)
        }
        _ => nothing,
    }
}

/// `/voice/conference-ended`: the caller's `<Dial><Conference>` is over. After a talk the call
/// ends (the task is wrapping up already, or now). Otherwise the caller most likely hung up
/// (the provider reports the Dial before the call's end, and ignores this answer): nothing
/// changes, so that the status callback still finds the agent's ringing leg to hang up; a
/// caller still on the line goes back through the hold loop, which takes them in again.
pub fn on_conference_ended(call: &mut Call, seen: &Seen, _cx: Context<'_>) -> Decision {
    let talked = matches!(&call.stage, Stage::Conference(bridge) if bridge.talking);
    if !talked && seen.status != Some(TaskStatus::Wrapping) {
        let url = paths::WAIT.to_owned();
        return Decision::answer(Response::new(vec![Verb::Redirect { url, method: Some(Method::Post) }]));
    }
    let hang_up = Decision::answer(Response::new(vec![Verb::Hangup]));
    let hang_up = match seen.status {
        Some(TaskStatus::Assigned) => hang_up.with(Action::Execute {
            command: Command::WrapUp { task: call.task },
            why: "the conference ended",
        }),
        _ => hang_up,
    };
    hang_up.with(Action::Forget)
}

/// The caller's call is over during conference bridging: the agent's leg is hung up too, still
/// ringing or alone in the conference (an outbound call the customer never answered).
pub fn agent_to_hang_up(call: &Call) -> Option<Action> {
    let Stage::Conference(bridge) = &call.stage else { return None };
    let call_sid = bridge.agent_call.clone()?;
    Some(Action::Provider { request: ProviderRequest::HangUpAgent { call_sid }, fallback: Fallback::Report })
}

/// What an agent can do to their call from the agent page or API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Hold(bool),
    Mute(bool),
    HangUp,
    Record(bool),
}

/// Why a control is refused (a 409 for the agent page).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefused {
    #[error("the call is not bridged in a conference (voice.bridge = \"conference\")")]
    NotInConference,
    #[error("the agent has not joined the call yet")]
    NotTalking,
    #[error("the call is already {0}")]
    Already(&'static str),
    #[error("the call is being transferred: cancel or finish that first")]
    Transferring,
    #[error("the call is not being transferred")]
    NoTransfer,
    #[error("whoever takes the transfer has not joined yet: cancel it, or wait")]
    NotJoinedYet,
    #[error("you are not in this call")]
    NotSupervising,
    #[error("no phone to call you on: give To, or a contact_uri in your attributes")]
    NoPhone,
    #[error("the task is not assigned to you")]
    NotAssigned,
    #[error("the task has a call in progress")]
    CallInProgress,
    #[error("no caller ID to call from: set voice.caller_id")]
    NoCallerId,
}

/// An agent's control of their call: the provider request to make, and the state to keep
/// once it is made (the conference's events confirm hold and mute later).
pub fn control(call: &mut Call, control: Control) -> Result<Decision, ControlRefused> {
    let Stage::Conference(bridge) = &mut call.stage else { return Err(ControlRefused::NotInConference) };
    if bridge.transfer.is_some() {
        // The transferring agent cancels or completes it; until then the call is not theirs to
        // hang up, nor the taker's.
        return Err(ControlRefused::Transferring);
    }
    let request = match control {
        Control::HangUp => ProviderRequest::HangUpCaller,
        _ if !bridge.talking => return Err(ControlRefused::NotTalking),
        Control::Hold(on) if bridge.on_hold == on => {
            return Err(ControlRefused::Already(if on { "on hold" } else { "off hold" }));
        }
        Control::Hold(on) => {
            bridge.on_hold = on;
            ProviderRequest::HoldCaller(on)
        }
        Control::Mute(on) if bridge.muted == on => {
            return Err(ControlRefused::Already(if on { "muted" } else { "unmuted" }));
        }
        Control::Mute(on) => {
            bridge.muted = on;
            ProviderRequest::MuteAgent(on)
        }
        Control::Record(on) if bridge.recording.is_some() == on => {
            return Err(ControlRefused::Already(if on { "being recorded" } else { "not being recorded" }));
        }
        Control::Record(on) => ProviderRequest::Record(on),
    };
    Ok(Decision::answer(Response::default())
        .with(Action::Save)
        .with(Action::Provider { request, fallback: Fallback::Report }))
}

/// The provider started recording the call (`sid`), or stopped it (`None`).
pub fn on_recording(call: &mut Call, sid: Option<String>) -> Decision {
    let Stage::Conference(bridge) = &mut call.stage else { return Decision::answer(Response::default()) };
    bridge.recording = sid;
    Decision::answer(Response::default()).with(Action::Save)
}

/// What the provider says of a call when Switchboard starts again ([`reconcile`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The caller's call is over (or unknown to the provider).
    pub caller_over: bool,
    /// The task's conference, while it is active.
    pub conference: Option<String>,
    /// The caller's participant in it: on hold or not.
    pub caller_on_hold: Option<bool>,
    /// The accepting agent's participant in it, found by its label.
    pub agent: Option<FoundAgent>,
    /// During a transfer, whether the transferring agent is still in it.
    pub transferring_agent_present: Option<bool>,
}

/// The agent's participant, as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundAgent {
    pub call_sid: String,
    /// Answered and in the conference (`connected`), rather than still ringing.
    pub joined: bool,
    pub muted: bool,
}

/// After a restart: the call carries on from what the provider says happened while Switchboard
/// was down (callbacks sent then were lost). An agent is called again only when the stored
/// call proves they never were (the caller was not yet moved); one who was called but is no
/// longer in the conference did not answer, or hung up.
pub fn reconcile(call: &mut Call, seen: &Seen, found: &Found, cx: Context<'_>) -> Decision {
    if found.caller_over {
        if let Stage::Conference(bridge) = &mut call.stage
            && bridge.agent_call.is_none()
        {
            // A leg still ringing for a caller who is gone is hung up.
            bridge.agent_call = found.agent.as_ref().map(|agent| agent.call_sid.clone());
        }
        return super::call::on_call_ended(call, seen, cx);
    }
    if !matches!(call.stage, Stage::Conference(_)) {
        // Accepted while the caller waited in the hold loop: connected now, not at their next poll.
        return on_accepted(call, seen, cx);
    }
    let transfer = reconcile_transfer(call, seen, found, cx);
    // What was found of the legs was about the call before the transfer moved on.
    if !transfer.actions.is_empty() {
        return transfer;
    }
    reconcile_bridge(call, seen, found, cx)
}

/// A transfer under way before the restart carries on: a cold one's agent still in the
/// conference leaves now; a transferring agent gone meanwhile is done with their task; an
/// untaken warm transfer comes back to its agent.
fn reconcile_transfer(call: &mut Call, seen: &Seen, found: &Found, cx: Context<'_>) -> Decision {
    let nothing = Decision::answer(Response::default());
    let Stage::Conference(Bridge { transfer: Some(transfer), .. }) = &call.stage else { return nothing };
    if transfer.from_call.is_none() {
        return nothing;
    }
    match (found.transferring_agent_present, transfer.mode) {
        (Some(false), _) => super::transfer::agent_leaves(call, false),
        (_, crate::routing::TransferMode::Cold) => super::transfer::agent_leaves(call, true),
        _ => super::transfer::on_task_ended(call, seen, cx),
    }
}

/// [`reconcile`] for the caller's and the called agent's legs.
fn reconcile_bridge(call: &mut Call, seen: &Seen, found: &Found, cx: Context<'_>) -> Decision {
    let Stage::Conference(bridge) = &mut call.stage else { return Decision::answer(Response::default()) };
    if !bridge.caller_moved {
        // Stopped between storing the accept and moving the caller: the agent was never called.
        call.stage = Stage::Waiting;
        let decision = on_accepted(call, seen, cx);
        return if call.stage == Stage::Waiting { decision.with(Action::Save) } else { decision };
    }
    if let Some(conference) = &found.conference {
        bridge.conference = Some(conference.clone());
    }
    if let Some(on_hold) = found.caller_on_hold {
        bridge.on_hold = on_hold;
    }
    let nothing = Decision::answer(Response::default());
    let Some(reservation) = bridge.reservation else {
        // Accepted while Switchboard was down, or before it called the agent in: now.
        if seen.status == Some(TaskStatus::Assigned) && seen.accepted.is_some() {
            let decision = on_accepted(call, seen, cx);
            return Decision { actions: [vec![Action::Save], decision.actions].concat(), ..decision };
        }
        return nothing.with(Action::Save);
    };
    match &found.agent {
        Some(agent) => {
            bridge.agent_call = Some(agent.call_sid.clone());
            bridge.muted = agent.muted;
            if !agent.joined || bridge.talking {
                return nothing.with(Action::Save);
            }
            // Answered while Switchboard was down: as if the join had been reported.
            let joined = ConferenceEvent {
                event: "participant-join".to_owned(),
                conference: found.conference.clone().unwrap_or_default(),
                call_sid: Some(agent.call_sid.clone()),
                muted: Some(agent.muted),
                hold: None,
            };
            on_conference_event(call, &joined, cx)
        }
        // Never heard of: stopped between storing the accept and hearing that the agent's leg
        // was placed (an outbound call stores its agent before calling them). Called now; a
        // leg placed meanwhile is found by its label instead of ringing twice.
        None if bridge.agent_call.is_none() && !bridge.talking => {
            match seen.accepted.as_ref().filter(|accepted| accepted.reservation == reservation) {
                Some(accepted) if seen.status == Some(TaskStatus::Assigned) => {
                    match agent_address(accepted) {
                        Some(to) => {
                            let request = ProviderRequest::CallAgent {
                                reservation,
                                to,
                                label: agent_label(reservation),
                            };
                            nothing
                                .with(Action::Save)
                                .with(Action::Provider { request, fallback: Fallback::NextAgent })
                        }
                        None => on_agent_leg(call, reservation, "failed", seen),
                    }
                }
                _ => on_agent_leg(call, reservation, "failed", seen),
            }
        }
        // Gone: hung up after talking, or never answered.
        None => {
            let status = if bridge.talking { "completed" } else { "failed" };
            on_agent_leg(call, reservation, status, seen)
        }
    }
}

/// What the agent page shows of a call bridged in a conference, and which controls it offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallView {
    /// `waiting` (for the next agent), `calling` (the agent's phone), `ringing`, `talking`;
    /// `transferring` for the agent who transfers it, until they leave.
    pub state: &'static str,
    pub on_hold: bool,
    pub muted: bool,
    pub recording: bool,
    /// For the transferring agent: the transfer under way.
    pub transfer: Option<TransferView>,
    /// For the supervisor view only (agents are not told who listens).
    #[serde(skip)]
    pub supervisors: Vec<super::supervise::Supervision>,
}

/// A transfer as its agent's page shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TransferView {
    /// `COLD` or `WARM`.
    pub mode: &'static str,
    /// Whoever takes it is in the conference (the agent may leave them with the caller).
    pub joined: bool,
    /// To an outside number.
    pub outside: bool,
}

/// The call as the agent page shows it; none unless it is bridged in a conference.
pub fn view(call: &Call) -> Option<CallView> {
    let Stage::Conference(bridge) = &call.stage else { return None };
    let state = match bridge {
        Bridge { talking: true, .. } => "talking",
        Bridge { reservation: None, .. } => "waiting",
        Bridge { agent_call: None, .. } => "calling",
        Bridge { .. } => "ringing",
    };
    Some(CallView {
        state,
        on_hold: bridge.on_hold,
        muted: bridge.muted,
        recording: bridge.recording.is_some(),
        transfer: None,
        supervisors: bridge.supervisors.clone(),
    })
}

/// Every task's view of the call: its own task's, and during a transfer the transferring
/// agent's (while they are in the conference).
pub fn views(call: &Call) -> Vec<(Sid, CallView)> {
    let mut views: Vec<(Sid, CallView)> = view(call).map(|view| (call.task, view)).into_iter().collect();
    if let Stage::Conference(bridge) = &call.stage
        && let Some(transfer) = bridge.transfer.as_ref().filter(|transfer| transfer.from_call.is_some())
    {
        let outside = transfer.outside_call.is_some();
        views.push((
            transfer.from_task,
            CallView {
                state: "transferring",
                on_hold: bridge.on_hold,
                muted: false,
                recording: bridge.recording.is_some(),
                transfer: Some(TransferView {
                    mode: transfer.mode.as_str(),
                    joined: bridge.talking || transfer.outside_joined,
                    outside,
                }),
                supervisors: Vec::new(),
            },
        ));
    }
    views
}
