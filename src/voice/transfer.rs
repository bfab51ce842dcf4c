//! Transfers of a call bridged in a conference, pure like the rest of the call's decisions: to
//! another agent or a task queue (a new task for the same call, `Engine::transfer`), or to an
//! outside number. The conference keeps its first task's name, so whoever joins later joins
//! the same room.
//!
//! ```text
//!  talking with A ──transfer──▶ caller on hold, task T2 routed ──B joins──▶ cold: caller and B
//!        ▲                          │ (warm: A stays)               warm: A and B talk, then
//!        └──cancel, or T2 ended untaken (warm)                          A leaves: caller and B
//! ```
//!
//! Before the transferring agent's leg can leave without ending the call, its participant is
//! set not to end the conference on exit ([`ProviderRequest::KeepConference`]); the caller keeps
//! ending it (they hang up: everyone leaves), and so does whoever takes the transfer. What the
//! transferring agent had is kept in [`Transfer`] until they leave, so that a canceled or
//! untaken warm transfer puts the call back exactly as it was.

use crate::routing::{Command, Sid, TaskStatus, TransferMode};
use crate::twiml::{DialTarget, Response};

use super::call::{Action, Bridge, Call, Context, Decision, Fallback, ProviderRequest, Seen, Stage};
use super::conference::ControlRefused;

/// Where an agent sends their call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTo {
    Queue(Sid),
    Worker(Sid),
    /// A phone number, SIP address or `client:` identity, outside the contact center.
    Outside(DialTarget),
}

/// A transfer under way in the call's conference: what the transferring agent had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The task transferred, and its accepted reservation.
    pub from_task: Sid,
    pub from_reservation: Sid,
    /// The transferring agent's leg, while they are in the conference.
    pub from_call: Option<String>,
    pub mode: TransferMode,
    /// A warm transfer to an outside number: that party's leg, once placed...
    pub outside_call: Option<String>,
    /// ...and whether they answered and joined (the agent may leave them with the caller).
    pub outside_joined: bool,
}

/// The agent's leg's label in the conference for a consultation with an outside number.
pub fn outside_label(task: Sid) -> String {
    format!("outside-{task}")
}

/// Checks that the agent of `task` talks with the caller and no transfer is under way: the
/// reservation and leg they have.
pub fn check(call: &Call, task: Sid) -> Result<(Sid, String), ControlRefused> {
    let Stage::Conference(bridge) = &call.stage else { return Err(ControlRefused::NotInConference) };
    if bridge.transfer.is_some() {
        return Err(ControlRefused::Transferring);
    }
    match (&bridge.reservation, &bridge.agent_call) {
        (Some(reservation), Some(agent)) if bridge.talking && call.task == task => {
            Ok((*reservation, agent.clone()))
        }
        _ => Err(ControlRefused::NotTalking),
    }
}

/// The transfer task `to_task` exists (or, to an outside number, the consultation begins): the
/// call is now about it, the caller on hold, and the transferring agent's place kept.
pub fn started(call: &mut Call, to_task: Option<Sid>, mode: TransferMode) {
    let room = call.room.unwrap_or(call.task);
    let Stage::Conference(bridge) = &mut call.stage else { return };
    let (Some(reservation), from_call) = (bridge.reservation, bridge.agent_call.clone()) else { return };
    bridge.transfer = Some(Box::new(Transfer {
        from_task: call.task,
        from_reservation: reservation,
        from_call,
        mode,
        outside_call: None,
        outside_joined: false,
    }));
    bridge.reservation = None;
    bridge.agent_call = None;
    bridge.talking = false;
    bridge.on_hold = true;
    bridge.muted = false;
    call.room = Some(room);
    if let Some(task) = to_task {
        call.task = task;
    }
}

/// A cold transfer (or a warm one the agent completes): the transferring agent leaves (their
/// leg hung up unless it ended already) and their task moves to wrap-up. The caller comes off
/// hold if someone talks with them now.
pub fn agent_leaves(call: &mut Call, hang_up: bool) -> Decision {
    let nothing = Decision::answer(Response::default());
    let Stage::Conference(bridge) = &mut call.stage else { return nothing };
    let Some(transfer) = bridge.transfer.as_mut() else { return nothing };
    let from_task = transfer.from_task;
    let leg = transfer.from_call.take().filter(|_| hang_up);
    let mut decision = nothing.with(Action::Save).with(Action::Execute {
        command: Command::WrapUp { task: from_task },
        why: "the agent transferred the call",
    });
    if let Some(outside) = transfer.outside_call.clone() {
        // The outside party now stays with the caller alone: either hanging up ends it.
        bridge.agent_call = Some(outside.clone());
        bridge.talking = true;
        bridge.transfer = None;
        decision = decision.with(Action::Provider {
            request: ProviderRequest::EndConferenceOnExit { call_sid: outside, end: true },
            fallback: Fallback::Report,
        });
    } else if bridge.talking {
        bridge.transfer = None;
        // Called in while the transferring agent stayed: now their leaving ends it.
        if let Some(taker) = bridge.agent_call.clone() {
            decision = decision.with(Action::Provider {
                request: ProviderRequest::EndConferenceOnExit { call_sid: taker, end: true },
                fallback: Fallback::Report,
            });
        }
    }
    if let Some(call_sid) = leg {
        decision = decision.with(Action::Provider {
            request: ProviderRequest::HangUpAgent { call_sid },
            fallback: Fallback::Report,
        });
    }
    if bridge.talking && bridge.on_hold {
        bridge.on_hold = false;
        decision = decision.with(Action::Provider {
            request: ProviderRequest::HoldCaller(false),
            fallback: Fallback::Report,
        });
    }
    decision
}

/// The transfer ends without anyone taking it (canceled by the agent, or a warm transfer's
/// agent did not take it): the transferring agent talks with the caller again, as before.
/// Whoever was being called in is hung up (their reservation is ended through the engine by
/// the caller of this).
pub fn back_to_agent(call: &mut Call) -> Decision {
    let nothing = Decision::answer(Response::default());
    let Stage::Conference(bridge) = &mut call.stage else { return nothing };
    let Some(transfer) = bridge.transfer.take() else { return nothing };
    let Some(agent) = transfer.from_call.clone() else {
        // The transferring agent left already: nobody to come back to.
        bridge.transfer = Some(transfer);
        return nothing;
    };
    let mut decision = nothing.with(Action::Save);
    for call_sid in [bridge.agent_call.take(), transfer.outside_call.clone()].into_iter().flatten() {
        decision = decision.with(Action::Provider {
            request: ProviderRequest::HangUpAgent { call_sid },
            fallback: Fallback::Report,
        });
    }
    *bridge = Bridge {
        reservation: Some(transfer.from_reservation),
        agent_call: Some(agent.clone()),
        talking: true,
        on_hold: false,
        ..bridge.clone()
    };
    call.task = transfer.from_task;
    decision
        .with(Action::Provider { request: ProviderRequest::HoldCaller(false), fallback: Fallback::Report })
        .with(Action::Provider {
            request: ProviderRequest::EndConferenceOnExit { call_sid: agent, end: true },
            fallback: Fallback::Report,
        })
}

/// The outside party of a warm transfer is being called in: noted, so that the agent can
/// leave them with the caller, or cancel.
pub fn on_outside_called(call: &mut Call, call_sid: &str) -> Decision {
    let Stage::Conference(Bridge { transfer: Some(transfer), .. }) = &mut call.stage else {
        return Decision::answer(Response::default());
    };
    transfer.outside_call = Some(call_sid.to_owned());
    Decision::answer(Response::default()).with(Action::Save)
}

/// Whoever takes the transfer joined the conference: after a cold transfer they and the
/// caller talk; after a warm one the two agents talk while the caller holds, until the first
/// leaves.
pub fn taker_joined(call: &mut Call) -> Decision {
    let nothing = Decision::answer(Response::default());
    let Stage::Conference(bridge) = &mut call.stage else { return nothing };
    let Some(transfer) = &bridge.transfer else { return nothing };
    if transfer.from_call.is_some() && transfer.mode == TransferMode::Warm {
        return nothing.with(Action::Save);
    }
    bridge.transfer = None;
    bridge.on_hold = false;
    nothing
        .with(Action::Save)
        .with(Action::Provider { request: ProviderRequest::HoldCaller(false), fallback: Fallback::Report })
}

/// The transfer's task ended (its events, once durable) without anyone taking it: the call
/// comes back to the transferring agent if they are still there; otherwise nobody is left
/// for the caller, who is told so rather than left on hold.
pub fn on_task_ended(call: &mut Call, seen: &Seen, cx: Context<'_>) -> Decision {
    let nothing = Decision::answer(Response::default());
    let ended_untaken = matches!(seen.status, Some(TaskStatus::Canceled) | None);
    let Stage::Conference(Bridge { transfer: Some(transfer), .. }) = &call.stage else { return nothing };
    match (ended_untaken, transfer.from_call.is_some()) {
        (false, _) => nothing,
        (true, true) => back_to_agent(call),
        (true, false) => {
            let sorry = super::call::goodbye(cx.flow, &call.place.language, super::call::SORRY_GOODBYE);
            if let Stage::Conference(bridge) = &mut call.stage {
                bridge.transfer = None;
            }
            nothing.with(Action::Save).with(Action::Provider {
                request: ProviderRequest::MoveCaller(sorry),
                fallback: Fallback::Report,
            })
        }
    }
}

/// The outside party of a warm transfer answered and joined the conference.
pub fn on_outside_joined(call: &mut Call) -> Decision {
    let Stage::Conference(Bridge { transfer: Some(transfer), .. }) = &mut call.stage else {
        return Decision::answer(Response::default());
    };
    transfer.outside_joined = true;
    Decision::answer(Response::default()).with(Action::Save)
}

/// Whether whoever takes the transfer joins a consultation with the transferring agent (and
/// so must not end the conference by leaving it, until that agent has left).
pub fn consulting(call: &Call) -> bool {
    matches!(&call.stage, Stage::Conference(Bridge { transfer: Some(transfer), .. })
        if transfer.mode == TransferMode::Warm && transfer.from_call.is_some())
}

/// The transferring agent's own leg ended (they hung up during the transfer): their task
/// wraps up, and the transfer goes on without them.
pub fn on_agent_hung_up(call: &mut Call, reservation: Sid) -> Option<Decision> {
    let Stage::Conference(bridge) = &mut call.stage else { return None };
    let transfer = bridge.transfer.as_ref().filter(|transfer| transfer.from_reservation == reservation)?;
    if transfer.from_call.is_none() {
        // Left already (the leg's end after `agent_leaves`).
        return Some(Decision::answer(Response::default()));
    }
    Some(agent_leaves(call, false))
}
