//! Supervisors in a call's conference, as Flex's barge-coach plugin puts them there
//! (`../shared/reference/voice-api.md` §5.4): a supervisor's phone joins the agent's conference
//! as a participant labelled `supervisor-{worker}`, **monitoring** (muted: they hear both, nobody
//! hears them), **whispering** (coaching the agent's leg: only the agent hears them) or
//! **barged in** (everyone hears everyone), and may switch between these or leave. Pure like the
//! call's other decisions: the provider requests come back as actions.
//!
//! A supervisor never ends the conference by leaving it; when the call ends, their leg is hung
//! up with the conference.

use crate::routing::Sid;
use crate::twiml::Response;

use super::call::{Action, Call, Decision, Fallback, ProviderRequest, Stage};
use super::conference::ControlRefused;

/// How a supervisor takes part in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuperviseMode {
    /// Listens, muted.
    Monitor,
    /// Coaches the agent: only the agent hears them.
    Whisper,
    /// Talks with both.
    Barge,
}

/// A supervisor in the conference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervision {
    /// `supervisor-{worker}`, or `supervisor-admin`.
    pub label: String,
    pub mode: SuperviseMode,
}

impl SuperviseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SuperviseMode::Monitor => "monitor",
            SuperviseMode::Whisper => "whisper",
            SuperviseMode::Barge => "barge",
        }
    }

    pub fn parse(text: &str) -> Option<SuperviseMode> {
        [SuperviseMode::Monitor, SuperviseMode::Whisper, SuperviseMode::Barge]
            .into_iter()
            .find(|mode| mode.as_str() == text)
    }

    /// The participant's flags: muted, coaching.
    pub fn flags(self) -> (bool, bool) {
        match self {
            SuperviseMode::Monitor => (true, false),
            SuperviseMode::Whisper => (false, true),
            SuperviseMode::Barge => (false, false),
        }
    }
}

/// The participant label of a supervisor: one per worker, so that a repeated request never
/// calls them twice.
pub fn label(worker: Option<Sid>) -> String {
    worker.map_or_else(|| "supervisor-admin".to_owned(), |worker| format!("supervisor-{worker}"))
}

/// Forgets the supervisor `label` (their leg is gone).
pub fn forget(call: &mut Call, label: &str) {
    if let Stage::Conference(bridge) = &mut call.stage {
        bridge.supervisors.retain(|supervision| supervision.label != label);
    }
}

/// The supervisor `label` takes part in the call of `task` as `mode` (joining, reached at `to`,
/// if not in it yet), or leaves it (`mode` none).
pub fn supervise(
    call: &mut Call,
    task: Sid,
    label: &str,
    to: Option<&str>,
    mode: Option<SuperviseMode>,
) -> Result<Decision, ControlRefused> {
    let is_the_calls_task = call.task == task;
    let Stage::Conference(bridge) = &mut call.stage else { return Err(ControlRefused::NotInConference) };
    // Leaving needs nothing more; joining and switching need the agent on the call.
    let agent = match (&bridge.agent_call, bridge.talking && is_the_calls_task) {
        (Some(agent), true) => agent.clone(),
        _ if mode.is_none() => String::new(),
        _ => return Err(ControlRefused::NotTalking),
    };
    let present = bridge.supervisors.iter().position(|supervision| supervision.label == label);
    let request = match (present, mode) {
        (None, None) => return Err(ControlRefused::NotSupervising),
        (Some(at), None) => {
            bridge.supervisors.remove(at);
            ProviderRequest::RemoveParticipant { label: label.to_owned() }
        }
        (Some(at), Some(mode)) if bridge.supervisors[at].mode == mode => {
            return Err(ControlRefused::Already(match mode {
                SuperviseMode::Monitor => "monitored by you",
                SuperviseMode::Whisper => "coached by you",
                SuperviseMode::Barge => "joined by you",
            }));
        }
        (Some(at), Some(mode)) => {
            bridge.supervisors[at].mode = mode;
            ProviderRequest::Supervise { label: label.to_owned(), mode, agent }
        }
        (None, Some(mode)) => {
            let to = to.ok_or(ControlRefused::NoPhone)?;
            bridge.supervisors.push(Supervision { label: label.to_owned(), mode });
            ProviderRequest::CallSupervisor { to: to.to_owned(), label: label.to_owned(), mode, agent }
        }
    };
    Ok(Decision::answer(Response::default())
        .with(Action::Save)
        .with(Action::Provider { request, fallback: Fallback::Report }))
}
