//! A routed call's journeys through [`super::call`]'s decisions, one webhook per line: what
//! the engine showed, what the caller heard and what the shell was told to do. And the place
//! in the IVR round-tripping through the action URL.

use expect_test::{Expect, expect};
use proptest::prelude::*;

use super::call::{Fallback, ProviderRequest};
use super::*;
use crate::config::{BridgeMode, RecordMode, VoiceSettings};
use crate::fuzzing::{self, awkward_text};
use crate::ivr::load_flow;
use crate::routing::{SidKind, TransferMode};
use crate::twiml;

const FLOW: &str = r#"
start = "main"
language = "en-US"
[menus.main]
say = "Press 1 for sales."
[menus.main.options]
"1" = { route = { skills = ["Sales"] } }
"#;

fn sid(text: &str) -> Sid {
    let kind = match &text[..2] {
        "WT" => SidKind::Task,
        "WR" => SidKind::Reservation,
        _ => SidKind::TaskQueue,
    };
    Sid::parse(&format!("{text:0<34}"), kind).unwrap()
}

/// A call through its webhooks on a clock in seconds, each step logged as one line.
struct Journey {
    call: Option<Call>,
    flow: Flow,
    settings: VoiceSettings,
    now: Millis,
    log: Vec<String>,
}

impl Journey {
    /// A caller the IVR routed at t=0, waiting.
    fn new(settings: VoiceSettings) -> Journey {
        let call = Call {
            sid: "CA1".into(),
            from: "+15550001111".into(),
            to: "+15550002222".into(),
            flow: "main".into(),
            place: CallState {
                menu: "main".into(),
                failures: 0,
                language: "en-US".into(),
                path: vec!["1".into()],
                memory: ivr::Memory::default(),
            },
            task: sid("WT1"),
            started_at: 0,
            last_seen: 0,
            announced_at: None,
            stage: Stage::Waiting,
            dial_fallback: false,
            room: None,
            retry_at: None,
        };
        Journey { call: Some(call), flow: load_flow(FLOW).unwrap(), settings, now: 0, log: Vec::new() }
    }

    fn at(&mut self, seconds: i64) -> &mut Journey {
        self.now = seconds * 1000;
        self
    }

    fn step(
        &mut self,
        hook: &str,
        seen: Seen,
        decide: impl FnOnce(&mut Call, &Seen, Context<'_>) -> Decision,
    ) {
        let call = self.call.as_mut().expect("the call was forgotten");
        let cx = Context {
            flow: &self.flow,
            settings: &self.settings,
            base_url: "https://sb.example.com",
            now: self.now,
        };
        let Decision { response, actions } = decide(call, &seen, cx);
        let mut line = format!("t={} {hook}: {}", self.now / 1000, heard(&response));
        for action in &actions {
            line.push_str(&format!(" | {}", done(action)));
        }
        line.push_str(&format!(" | {}", stage(&call.stage)));
        if actions.contains(&Action::Forget) {
            self.call = None;
        }
        self.log.push(line);
    }

    fn wait(&mut self, seen: Seen) -> &mut Journey {
        self.step("wait", seen, call::on_wait);
        self
    }

    fn dial_status(&mut self, status: &str, seen: Seen) -> &mut Journey {
        self.step(&format!("dial-status {status}"), seen, |call, seen, cx| {
            call::on_dial_status(call, seen, status, cx)
        });
        self
    }

    fn hang_up(&mut self, seen: Seen) -> &mut Journey {
        self.step("status completed", seen, call::on_call_ended);
        self
    }

    fn voicemail(&mut self, recording: Option<(&str, u32)>, seen: Seen) -> &mut Journey {
        self.step("voicemail", seen, |call, seen, cx| call::on_voicemail(call, seen, recording, cx));
        self
    }

    fn sweep(&mut self, seen: Seen) -> &mut Journey {
        self.step("sweep", seen, call::on_sweep);
        self
    }

    /// The reservation.accepted event of the call's task reaches the call (conference bridging).
    fn accepted_event(&mut self, seen: Seen) -> &mut Journey {
        self.step("accepted", seen, conference::on_accepted);
        self
    }

    /// The provider moved the caller into the conference.
    fn caller_moved(&mut self) -> &mut Journey {
        self.step("caller moved", Seen::default(), |call, _, _| conference::on_caller_moved(call));
        self
    }

    /// Switchboard starts again, and the provider says where the call stands.
    fn restart(&mut self, found: conference::Found, seen: Seen) -> &mut Journey {
        self.step("restart", seen, |call, seen, cx| conference::reconcile(call, seen, &found, cx));
        self
    }

    /// The provider placed the agent's leg.
    fn agent_called(&mut self, agent_call: &str) -> &mut Journey {
        self.step(&format!("agent leg {agent_call} placed"), Seen::default(), |call, _, _| {
            conference::on_agent_called(call, agent_call, "CF1")
        });
        self
    }

    /// A provider request of the last step failed; the call falls back.
    fn provider_failed(&mut self, fallback: Fallback, code: Option<u32>) -> &mut Journey {
        self.step(&format!("provider failed ({fallback:?}, {code:?})"), Seen::default(), |call, _, cx| {
            conference::on_provider_failed(call, fallback, conference::Failure { code }, cx)
        });
        self
    }

    fn agent_leg(&mut self, status: &str, seen: Seen) -> &mut Journey {
        self.step(&format!("agent-leg {status}"), seen, |call, seen, _| {
            conference::on_agent_leg(call, sid("WR1"), status, seen)
        });
        self
    }

    fn conference(&mut self, event: &str, call_sid: &str) -> &mut Journey {
        let event = conference::ConferenceEvent {
            event: event.to_owned(),
            conference: "CF1".to_owned(),
            call_sid: Some(call_sid.to_owned()),
            muted: None,
            hold: None,
        };
        self.step(&format!("conference {} {call_sid}", event.event), Seen::default(), |call, _, cx| {
            conference::on_conference_event(call, &event, cx)
        });
        self
    }

    /// The agent transferred the call: the shell stored the transfer task WT2 with the call.
    fn transfer_started(&mut self, mode: TransferMode) -> &mut Journey {
        self.step(&format!("transfer {mode:?}"), Seen::default(), |call, _, _| {
            transfer::started(call, Some(sid("WT2")), mode);
            Decision::answer(Response::default()).with(Action::Save)
        });
        self
    }

    fn agent_leaves(&mut self) -> &mut Journey {
        self.step("the transferring agent leaves", Seen::default(), |call, _, _| {
            transfer::agent_leaves(call, true)
        });
        self
    }

    /// The transfer's task ended (canceled): its events reach the call.
    fn transfer_task_ended(&mut self) -> &mut Journey {
        self.step("transfer task canceled", status(TaskStatus::Canceled), transfer::on_task_ended);
        self
    }

    fn agent_leg_of(&mut self, reservation: &str, status: &str, seen: Seen) -> &mut Journey {
        self.step(&format!("agent-leg of {reservation} {status}"), seen, |call, seen, _| {
            conference::on_agent_leg(call, sid(reservation), status, seen)
        });
        self
    }

    /// An agent accepted a callback request: the customer and the agent are called
    /// (`Voice::call_out` stores the call so, the customer's TwiML taking them in).
    fn called_back(&mut self) -> &mut Journey {
        self.step("called back", Seen::default(), |call, _, _| {
            call.stage = Stage::Conference(Bridge {
                reservation: Some(sid("WR1")),
                caller_moved: true,
                ..Bridge::default()
            });
            Decision::answer(Response::default()).with(Action::Save)
        });
        self
    }

    fn conference_ended(&mut self, seen: Seen) -> &mut Journey {
        self.step("conference-ended", seen, conference::on_conference_ended);
        self
    }

    fn control(&mut self, control: conference::Control) -> &mut Journey {
        let call = self.call.as_mut().expect("the call was forgotten");
        let line = match conference::control(call, control) {
            Ok(Decision { actions, .. }) => {
                actions.iter().map(done).collect::<Vec<_>>().join(" | ")
                    + &format!(" | {}", stage(&call.stage))
            }
            Err(refused) => format!("refused: {refused}"),
        };
        self.log.push(format!("t={} control {control:?}: {line}", self.now / 1000));
        self
    }

    fn check(&mut self, expected: Expect) {
        expected.assert_eq(&self.log.join("\n"));
    }
}

/// A SID without its trailing zeros: `WR1`.
fn short(text: &str) -> String {
    text.trim_end_matches('0').to_owned()
}

fn stage(stage: &Stage) -> String {
    match stage {
        Stage::Dialing { reservation } => format!("Dialing {}", short(&reservation.to_string())),
        Stage::Conference(bridge) => {
            let mut parts = vec![bridge.reservation.map_or("no agent".to_owned(), |r| short(&r.to_string()))];
            if !bridge.caller_moved {
                parts.push("caller not moved".to_owned());
            }
            parts.extend(bridge.agent_call.iter().map(|call| format!("agent leg {call}")));
            for (on, what) in
                [(bridge.talking, "talking"), (bridge.on_hold, "on hold"), (bridge.muted, "muted")]
            {
                if on {
                    parts.push(what.to_owned());
                }
            }
            parts.extend(bridge.recording.iter().map(|sid| format!("recording {sid}")));
            if let Some(transfer) = &bridge.transfer {
                let leg = transfer.from_call.as_deref().unwrap_or("gone");
                parts.push(format!(
                    "transfer of {} from {} (leg {leg}, {:?})",
                    short(&transfer.from_task.to_string()),
                    short(&transfer.from_reservation.to_string()),
                    transfer.mode
                ));
            }
            format!("Conference({})", parts.join(", "))
        }
        other => format!("{other:?}"),
    }
}

/// The task waits in the queue, `place` in line.
fn waiting(place: usize) -> Seen {
    Seen { status: Some(TaskStatus::Pending), position: Some((sid("WQ1"), place)), ..Seen::default() }
}

/// An agent reachable at `contact_uri` accepted reservation WR1.
fn accepted(contact_uri: &str) -> Seen {
    accepted_as(contact_uri, "WR1")
}

/// An agent reachable at `contact_uri` accepted `reservation`.
fn accepted_as(contact_uri: &str, reservation: &str) -> Seen {
    let accepted = Accepted {
        reservation: sid(reservation),
        target: DialTarget::from_contact_uri(contact_uri),
        queue: Some(sid("WQ1")),
        waited: 12_000,
    };
    Seen { status: Some(TaskStatus::Assigned), accepted: Some(accepted), ..Seen::default() }
}

fn status(status: TaskStatus) -> Seen {
    Seen { status: Some(status), ..Seen::default() }
}

/// What the caller hears, briefly.
fn heard(response: &Response) -> String {
    let verbs: Vec<String> = response
        .verbs
        .iter()
        .map(|verb| match verb {
            Verb::Say(say) => format!("say {:?}", say.text),
            Verb::Play(play) => format!("play {}", play.url),
            Verb::Pause { length } => format!("pause {}", length.unwrap_or(1)),
            Verb::Redirect { url, .. } => format!("redirect {url}"),
            Verb::Hangup => "hangup".to_owned(),
            Verb::Record(record) => format!("record to {}", record.action.as_deref().unwrap_or("")),
            Verb::Dial(twiml::Dial { target: DialTarget::Conference(room), action, .. }) => {
                format!("join conference {} then {}", short(&room.name), action.as_deref().unwrap_or("-"))
            }
            Verb::Dial(dial) => format!("dial {:?} ({} s)", dial.target, dial.timeout.unwrap_or(0)),
            Verb::Gather(gather) => {
                let prompts: Vec<String> = gather
                    .prompts
                    .iter()
                    .map(|prompt| match prompt {
                        twiml::Prompt::Say(say) => format!("say {:?}", say.text),
                        twiml::Prompt::Play(play) => format!("play {}", play.url),
                        twiml::Prompt::Pause { length } => format!("pause {}", length.unwrap_or(1)),
                    })
                    .collect();
                format!(
                    "gather a key to {} [{}]",
                    gather.action.as_deref().unwrap_or("-"),
                    prompts.join(", ")
                )
            }
            other => format!("{other:?}"),
        })
        .collect();
    if verbs.is_empty() { "(nothing)".to_owned() } else { verbs.join(", ") }
}

/// What the shell is told to do, briefly.
fn done(action: &Action) -> String {
    match action {
        Action::Execute { command: Command::Cancel { reason, .. }, .. } => format!("cancel ({reason})"),
        Action::Execute { command: Command::Unanswered { .. }, .. } => "unanswered".to_owned(),
        Action::Execute { command: Command::WrapUp { .. }, .. } => "wrap up".to_owned(),
        Action::Execute { command, .. } => format!("{command:?}"),
        Action::Connected { waited, .. } => format!("connected after {} s", waited / 1000),
        Action::AttachVoicemail { url, duration } => format!("attach {url} ({duration} s)"),
        Action::Save => "save".to_owned(),
        Action::MarkCallback { attribute } => format!("callback {attribute}"),
        Action::CallBackAgain { number, .. } => format!("call {number} back again"),
        Action::Forget => "forget".to_owned(),
        Action::Provider { request, fallback } => {
            let request = match request {
                ProviderRequest::MoveCaller(twiml) if heard(twiml).starts_with("join conference") => {
                    "move the caller into the conference".to_owned()
                }
                ProviderRequest::MoveCaller(twiml) => format!("move the caller to: {}", heard(twiml)),
                ProviderRequest::CallAgent { to, label, .. } => format!("call {to} in as {}", short(label)),
                ProviderRequest::EndConferenceOnExit { call_sid, end } => {
                    format!(
                        "{call_sid} leaving {} the conference",
                        if *end { "ends" } else { "does not end" }
                    )
                }
                other => format!("{other:?}"),
            };
            format!("provider: {request} (else {fallback:?})")
        }
    }
}

fn conference_mode() -> VoiceSettings {
    VoiceSettings { bridge: BridgeMode::Conference, ..VoiceSettings::default() }
}

/// `<Dial>` bridging, for providers without conferences.
fn dial_mode() -> VoiceSettings {
    VoiceSettings { bridge: BridgeMode::Dial, ..VoiceSettings::default() }
}

#[test]
fn an_accepted_caller_is_moved_into_the_conference_at_once_and_the_agent_called_in() {
    Journey::new(conference_mode())
        .at(1)
        .wait(waiting(1))
        .at(3)
        .accepted_event(accepted("client:alice"))
        .caller_moved()
        .agent_called("CA9")
        // A hold-loop request in flight when the caller was moved: the same conference.
        .wait(accepted("client:alice"))
        .at(5)
        .conference("participant-join", "CA9")
        .at(60)
        .agent_leg("completed", status(TaskStatus::Wrapping))
        .conference_ended(status(TaskStatus::Wrapping))
        .check(expect![[r#"
            t=1 wait: say "You are next in line.", pause 5, redirect /voice/wait | Waiting
            t=3 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)
            t=3 caller moved: (nothing) | save | Conference(WR1)
            t=3 agent leg CA9 placed: (nothing) | save | Conference(WR1, agent leg CA9)
            t=3 wait: join conference WT1 then https://sb.example.com/voice/conference-ended | Conference(WR1, agent leg CA9)
            t=5 conference participant-join CA9: (nothing) | save | Conference(WR1, agent leg CA9, talking)
            t=60 agent-leg completed: (nothing) | save | wrap up | Conference(WR1, agent leg CA9)
            t=60 conference-ended: hangup | forget | Conference(WR1, agent leg CA9)"#]]);
}

#[test]
fn an_agent_who_does_not_answer_leaves_the_caller_waiting_in_the_conference_for_the_next() {
    Journey::new(conference_mode())
        .at(3)
        .accepted_event(accepted("client:alice"))
        .caller_moved()
        .agent_called("CA9")
        .at(23)
        .agent_leg("no-answer", status(TaskStatus::Pending))
        // A late callback about that leg changes nothing.
        .agent_leg("completed", status(TaskStatus::Pending))
        .at(30)
        .accepted_event(accepted("+15550003333"))
        .check(expect![[r#"
            t=3 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)
            t=3 caller moved: (nothing) | save | Conference(WR1)
            t=3 agent leg CA9 placed: (nothing) | save | Conference(WR1, agent leg CA9)
            t=23 agent-leg no-answer: (nothing) | save | unanswered | Conference(no agent)
            t=23 agent-leg completed: (nothing) | Conference(no agent)
            t=30 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: call +15550003333 in as agent-WR1 (else NextAgent) | Conference(WR1)"#]]);
}

/// What the provider says after a restart: the caller there, in conference CF1, and the agent's
/// leg `agent` (call CA9) ringing or joined.
fn found(agent: Option<bool>) -> conference::Found {
    conference::Found {
        caller_over: false,
        conference: Some("CF1".to_owned()),
        caller_on_hold: Some(false),
        agent: agent.map(|joined| conference::FoundAgent {
            call_sid: "CA9".to_owned(),
            joined,
            muted: false,
        }),
        transferring_agent_present: None,
    }
}

#[test]
fn after_a_restart_an_agent_is_called_again_unless_their_leg_is_known_to_be_placed() {
    let check =
        |before: fn(&mut Journey) -> &mut Journey, found: conference::Found, seen: Seen, expected: Expect| {
            let mut journey = Journey::new(conference_mode());
            before(journey.at(3)).at(9).restart(found, seen);
            journey.log.drain(..journey.log.len() - 1);
            journey.check(expected);
        };
    fn accepted_only(j: &mut Journey) -> &mut Journey {
        j.accepted_event(accepted("client:alice"))
    }
    fn moved(j: &mut Journey) -> &mut Journey {
        accepted_only(j).caller_moved()
    }
    fn ringing(j: &mut Journey) -> &mut Journey {
        moved(j).agent_called("CA9")
    }
    fn talking(j: &mut Journey) -> &mut Journey {
        ringing(j).conference("participant-join", "CA9")
    }
    fn held(j: &mut Journey) -> &mut Journey {
        talking(j).conference("participant-hold", "CA1")
    }
    fn stayed(j: &mut Journey) -> &mut Journey {
        j
    }

    // Accepted while down, or before the follower ran: connected now.
    check(
        stayed,
        conference::Found::default(),
        accepted("client:alice"),
        expect![
            "t=9 restart: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)"
        ],
    );
    check(stayed, conference::Found::default(), waiting(2), expect!["t=9 restart: (nothing) | Waiting"]);
    // Stopped before the caller was moved: the agent was never called, so they are.
    check(
        accepted_only,
        found(None),
        accepted("client:alice"),
        expect![
            "t=9 restart: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)"
        ],
    );
    check(
        accepted_only,
        found(None),
        status(TaskStatus::Canceled),
        expect!["t=9 restart: (nothing) | save | Waiting"],
    );
    // Moved, agent maybe called: found ringing, found joined, or not found (called, as a leg
    // placed before the stop would be found by its label; one known to be placed is not).
    check(
        moved,
        found(Some(false)),
        accepted("client:alice"),
        expect!["t=9 restart: (nothing) | save | Conference(WR1, agent leg CA9)"],
    );
    check(
        moved,
        found(Some(true)),
        accepted("client:alice"),
        expect!["t=9 restart: (nothing) | save | Conference(WR1, agent leg CA9, talking)"],
    );
    check(
        moved,
        found(None),
        accepted("client:alice"),
        expect![
            "t=9 restart: (nothing) | save | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1)"
        ],
    );
    check(
        moved,
        found(None),
        status(TaskStatus::Canceled),
        expect!["t=9 restart: (nothing) | save | unanswered | Conference(no agent)"],
    );
    check(
        ringing,
        found(None),
        accepted("client:alice"),
        expect!["t=9 restart: (nothing) | save | unanswered | Conference(no agent)"],
    );
    // Talking: still, or the agent hung up while Switchboard was down.
    check(
        talking,
        found(Some(true)),
        accepted("client:alice"),
        expect!["t=9 restart: (nothing) | save | Conference(WR1, agent leg CA9, talking)"],
    );
    check(
        talking,
        found(None),
        accepted("client:alice"),
        expect!["t=9 restart: (nothing) | save | wrap up | Conference(WR1, agent leg CA9)"],
    );
    check(
        held,
        found(Some(true)),
        accepted("client:alice"),
        expect!["t=9 restart: (nothing) | save | Conference(WR1, agent leg CA9, talking)"],
    );
    // The caller hung up while Switchboard was down: a leg still ringing is hung up too.
    let caller_over = conference::Found { caller_over: true, ..conference::Found::default() };
    let over_and_ringing = conference::Found { caller_over: true, ..found(Some(false)) };
    check(
        moved,
        over_and_ringing,
        accepted("client:alice"),
        expect![[
            r#"t=9 restart: (nothing) | wrap up | provider: HangUpAgent { call_sid: "CA9" } (else Report) | forget | Conference(WR1, agent leg CA9)"#
        ]],
    );
    check(
        talking,
        caller_over.clone(),
        status(TaskStatus::Wrapping),
        expect![[
            r#"t=9 restart: (nothing) | provider: HangUpAgent { call_sid: "CA9" } (else Report) | forget | Conference(WR1, agent leg CA9, talking)"#
        ]],
    );
    check(
        stayed,
        caller_over,
        waiting(1),
        expect!["t=9 restart: (nothing) | cancel (caller hung up) | forget | Waiting"],
    );
}

#[test]
fn a_caller_who_hangs_up_while_the_agents_phone_rings_hangs_it_up_too() {
    Journey::new(conference_mode())
        .at(3)
        .accepted_event(accepted("client:alice"))
        .caller_moved()
        .agent_called("CA9")
        .at(5)
        .hang_up(status(TaskStatus::Assigned))
        .check(expect![[r#"
            t=3 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)
            t=3 caller moved: (nothing) | save | Conference(WR1)
            t=3 agent leg CA9 placed: (nothing) | save | Conference(WR1, agent leg CA9)
            t=5 status completed: (nothing) | wrap up | provider: HangUpAgent { call_sid: "CA9" } (else Report) | forget | Conference(WR1, agent leg CA9)"#]]);
}

#[test]
fn when_the_provider_cannot_move_the_caller_the_hold_loop_bridges_them_as_before() {
    Journey::new(conference_mode())
        .at(3)
        .accepted_event(accepted("client:alice"))
        .provider_failed(Fallback::DialAsBefore, None)
        .at(4)
        .wait(accepted("client:alice"))
        .check(expect![[r#"
            t=3 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)
            t=3 provider failed (DialAsBefore, None): (nothing) | save | Waiting
            t=4 wait: dial Client("alice") (20 s) | connected after 12 s | save | Dialing WR1"#]]);
    // The caller had hung up meanwhile (21220): their status callback ends the call.
    Journey::new(conference_mode())
        .at(3)
        .accepted_event(accepted("client:alice"))
        .provider_failed(Fallback::DialAsBefore, Some(21220))
        .check(expect![[r#"
            t=3 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)
            t=3 provider failed (DialAsBefore, Some(21220)): (nothing) | Conference(WR1, caller not moved)"#]]);
}

#[test]
fn a_poll_that_finds_the_task_accepted_answers_the_conference_and_calls_the_agent() {
    Journey::new(conference_mode()).at(3).wait(accepted("client:alice")).check(expect!["t=3 wait: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: call client:alice in as agent-WR1 (else DialAsBefore) | Conference(WR1)"]);
}

#[test]
fn an_agent_holds_mutes_and_records_only_once_they_talk() {
    let mut journey = Journey::new(conference_mode());
    journey
        .at(3)
        .control(conference::Control::Hold(true))
        .accepted_event(accepted("client:alice"))
        .caller_moved()
        .agent_called("CA9")
        .control(conference::Control::Hold(true))
        .conference("participant-join", "CA9")
        .control(conference::Control::Hold(true))
        .control(conference::Control::Hold(true))
        .control(conference::Control::Mute(true))
        .control(conference::Control::Record(true));
    journey.check(expect![[r#"
        t=3 control Hold(true): refused: the call is not bridged in a conference (voice.bridge = "conference")
        t=3 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)
        t=3 caller moved: (nothing) | save | Conference(WR1)
        t=3 agent leg CA9 placed: (nothing) | save | Conference(WR1, agent leg CA9)
        t=3 control Hold(true): refused: the agent has not joined the call yet
        t=3 conference participant-join CA9: (nothing) | save | Conference(WR1, agent leg CA9, talking)
        t=3 control Hold(true): save | provider: HoldCaller(true) (else Report) | Conference(WR1, agent leg CA9, talking, on hold)
        t=3 control Hold(true): refused: the call is already on hold
        t=3 control Mute(true): save | provider: MuteAgent(true) (else Report) | Conference(WR1, agent leg CA9, talking, on hold, muted)
        t=3 control Record(true): save | provider: Record(true) (else Report) | Conference(WR1, agent leg CA9, talking, on hold, muted)"#]]);
}

#[test]
fn with_record_all_the_recording_starts_when_the_agent_joins() {
    let settings = VoiceSettings { record: RecordMode::All, ..conference_mode() };
    Journey::new(settings)
        .at(3)
        .accepted_event(accepted("client:alice"))
        .caller_moved()
        .agent_called("CA9")
        .conference("participant-join", "CA1")
        .conference("participant-join", "CA9")
        .check(expect![[r#"
            t=3 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)
            t=3 caller moved: (nothing) | save | Conference(WR1)
            t=3 agent leg CA9 placed: (nothing) | save | Conference(WR1, agent leg CA9)
            t=3 conference participant-join CA1: (nothing) | Conference(WR1, agent leg CA9)
            t=3 conference participant-join CA9: (nothing) | save | provider: Record(true) (else Report) | Conference(WR1, agent leg CA9, talking)"#]]);
}

#[test]
fn a_caller_holds_hears_their_place_then_is_dialed_to_the_agent_who_accepted() {
    Journey::new(dial_mode())
        .wait(waiting(3))
        .at(5)
        .wait(waiting(2))
        .at(31)
        .wait(waiting(1))
        .at(33)
        .wait(accepted("client:alice"))
        .at(34)
        .wait(accepted("client:alice"))
        .at(90)
        .dial_status("completed", status(TaskStatus::Assigned))
        .check(expect![[r#"
            t=0 wait: say "You are number 3 in line.", pause 5, redirect /voice/wait | Waiting
            t=5 wait: pause 5, redirect /voice/wait | Waiting
            t=31 wait: say "You are next in line.", pause 5, redirect /voice/wait | Waiting
            t=33 wait: dial Client("alice") (20 s) | connected after 12 s | save | Dialing WR1
            t=34 wait: dial Client("alice") (20 s) | Dialing WR1
            t=90 dial-status completed: hangup | wrap up | forget | Waiting"#]]);
}

#[test]
fn an_agent_who_does_not_answer_sends_the_caller_back_to_the_hold_loop() {
    Journey::new(dial_mode())
        .at(10)
        .wait(accepted("+15550003333"))
        .at(30)
        .dial_status("no-answer", waiting(1))
        .at(35)
        .dial_status("no-answer", waiting(1))
        .check(expect![[r#"
            t=10 wait: dial Number("+15550003333") (20 s) | connected after 12 s | save | Dialing WR1
            t=30 dial-status no-answer: say "Please hold, we are connecting you to the next available agent.", say "You are next in line.", pause 5, redirect /voice/wait | unanswered | save | Waiting
            t=35 dial-status no-answer: pause 5, redirect /voice/wait | Waiting"#]]);
}

#[test]
fn an_agent_without_a_usable_contact_uri_is_passed_over() {
    Journey::new(dial_mode()).at(10).wait(accepted("mailto:alice")).check(expect![[r#"t=10 wait: say "Please hold, we are connecting you to the next available agent.", pause 5, redirect /voice/wait | unanswered | Waiting"#]]);
}

#[test]
fn hanging_up_cancels_a_waiting_task_and_wraps_up_an_assigned_one() {
    Journey::new(dial_mode())
        .at(10)
        .hang_up(waiting(1))
        .check(expect!["t=10 status completed: (nothing) | cancel (caller hung up) | forget | Waiting"]);
    Journey::new(dial_mode())
        .wait(accepted("client:alice"))
        .at(10)
        .hang_up(status(TaskStatus::Assigned))
        .check(expect![[r#"
            t=0 wait: dial Client("alice") (20 s) | connected after 12 s | save | Dialing WR1
            t=10 status completed: (nothing) | wrap up | forget | Dialing WR1"#]]);
}

#[test]
fn a_caller_who_waited_too_long_is_offered_voicemail_and_their_message_kept() {
    let settings = VoiceSettings { voicemail_after: 60, ..dial_mode() };
    Journey::new(settings.clone())
        .at(30)
        .wait(waiting(2))
        .at(60)
        .wait(waiting(2))
        .at(70)
        .voicemail(Some(("https://example.com/RE1", 9)), waiting(2))
        .check(expect![[r#"
            t=30 wait: say "You are number 2 in line.", pause 5, redirect /voice/wait | Waiting
            t=60 wait: say "Sorry, all our agents are still busy. Please leave a message after the tone, and we will call you back.", record to /voice/voicemail | save | Voicemail { left: false, ended_at: None }
            t=70 voicemail: say "Thank you. We will call you back. Goodbye.", hangup | attach https://example.com/RE1 (9 s) | save | Voicemail { left: true, ended_at: None }"#]]);
    // The hang-up comes before the recording: the call is kept for it, then forgotten.
    Journey::new(settings.clone())
        .at(60)
        .wait(waiting(2))
        .at(70)
        .hang_up(waiting(2))
        .at(71)
        .voicemail(Some(("https://example.com/RE1", 9)), waiting(2))
        .check(expect![[r#"
            t=60 wait: say "Sorry, all our agents are still busy. Please leave a message after the tone, and we will call you back.", record to /voice/voicemail | save | Voicemail { left: false, ended_at: None }
            t=70 status completed: (nothing) | save | Voicemail { left: false, ended_at: Some(70000) }
            t=71 voicemail: say "Thank you. We will call you back. Goodbye.", hangup | attach https://example.com/RE1 (9 s) | forget | Voicemail { left: true, ended_at: Some(70000) }"#]]);
    // It never comes: the sweep cancels the task once voice.abandon_after has passed.
    Journey::new(settings.clone())
        .at(60)
        .wait(waiting(2))
        .at(70)
        .hang_up(waiting(2))
        .at(100)
        .sweep(waiting(2))
        .at(131)
        .sweep(waiting(2))
        .check(expect![[r#"
            t=60 wait: say "Sorry, all our agents are still busy. Please leave a message after the tone, and we will call you back.", record to /voice/voicemail | save | Voicemail { left: false, ended_at: None }
            t=70 status completed: (nothing) | save | Voicemail { left: false, ended_at: Some(70000) }
            t=100 sweep: (nothing) | Voicemail { left: false, ended_at: Some(70000) }
            t=131 sweep: (nothing) | cancel (hung up before leaving a message) | forget | Voicemail { left: false, ended_at: Some(70000) }"#]]);
    // Nothing recorded: the caller left without a message.
    Journey::new(settings).at(60).wait(waiting(2)).at(62).voicemail(None, waiting(2)).check(expect![[r#"
        t=60 wait: say "Sorry, all our agents are still busy. Please leave a message after the tone, and we will call you back.", record to /voice/voicemail | save | Voicemail { left: false, ended_at: None }
        t=62 voicemail: hangup | cancel (hung up before leaving a message) | forget | Voicemail { left: false, ended_at: None }"#]]);
}

#[test]
fn the_sweep_cancels_an_abandoned_hold_loop_and_forgets_calls_long_over() {
    Journey::new(dial_mode()).at(5).wait(waiting(1)).at(60).sweep(waiting(1)).at(66).sweep(waiting(1)).check(
        expect![[r#"
            t=5 wait: say "You are next in line.", pause 5, redirect /voice/wait | Waiting
            t=60 sweep: (nothing) | Waiting
            t=66 sweep: (nothing) | cancel (hold loop abandoned) | forget | Waiting"#]],
    );
    Journey::new(dial_mode())
        .at(10)
        .wait(accepted("client:alice"))
        .at(4 * 3600)
        .sweep(status(TaskStatus::Assigned))
        .at(5 * 3600)
        .sweep(status(TaskStatus::Completed))
        .check(expect![[r#"
            t=10 wait: dial Client("alice") (20 s) | connected after 12 s | save | Dialing WR1
            t=14400 sweep: (nothing) | Dialing WR1
            t=18000 sweep: (nothing) | forget | Dialing WR1"#]]);
}

#[test]
fn a_task_that_ended_while_the_caller_held_says_goodbye() {
    Journey::new(dial_mode()).at(10).wait(status(TaskStatus::Canceled)).check(expect![[r#"t=10 wait: say "Sorry, no one can take your call right now. Please call again later. Goodbye.", hangup | forget | Waiting"#]]);
    Journey::new(dial_mode()).at(10).wait(Seen::default()).check(expect![[r#"t=10 wait: say "Sorry, no one can take your call right now. Please call again later. Goodbye.", hangup | forget | Waiting"#]]);
}

#[test]
fn hold_music_replaces_the_pause() {
    let settings = VoiceSettings { hold_music_url: "https://example.com/music.mp3".into(), ..dial_mode() };
    Journey::new(settings).at(1).wait(waiting(4)).check(expect![[r#"t=1 wait: say "You are number 4 in line.", play https://example.com/music.mp3, redirect /voice/wait | Waiting"#]]);
}

#[test]
fn the_place_in_the_ivr_round_trips_through_the_action_url() {
    let state = CallState {
        menu: "support & billing".into(),
        failures: 2,
        language: "es-MX".into(),
        path: vec!["9".into(), "2".into()],
        memory: ivr::Memory::default(),
    };
    let action = ivr_action("main.toml", &state);
    assert_eq!(
        action,
        "/voice/ivr?flow=main.toml&menu=support+%26+billing&failures=2&language=es-MX&path=9%2C2"
    );
    let query: Vec<(String, String)> = serde_urlencoded::from_str(action.split_once('?').unwrap().1).unwrap();
    assert_eq!(CallParams::from_params(&query).ivr, Some(("main.toml".to_owned(), state.clone())));

    // Variables travel too, as JSON, escaped.
    let mut state = state;
    state.memory.variables.insert("account".into(), serde_json::json!("12&34"));
    state.memory.priority = Some(5);
    let action = ivr_action("main.toml", &state);
    assert!(action.ends_with("&memory=eyJ2Ijp7ImFjY291bnQiOiIxMiYzNCJ9LCJwIjo1fQ"), "{action}");
    let query: Vec<(String, String)> = serde_urlencoded::from_str(action.split_once('?').unwrap().1).unwrap();
    assert_eq!(CallParams::from_params(&query).ivr, Some(("main.toml".to_owned(), state.clone())));

    let query: Vec<(String, String)> = serde_urlencoded::from_str(action.split_once('?').unwrap().1).unwrap();
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
        variables in prop::collection::vec(
            ("[a-z]{1,5}", awkward_text().prop_map(serde_json::Value::from)),
            0..4,
        ),
    ) {
        let memory = ivr::Memory { variables: variables.into_iter().collect(), ..ivr::Memory::default() };
        let state = CallState { menu, failures, language, path, memory };
        let action = ivr_action(&flow, &state);
        let query: Vec<(String, String)> =
            serde_urlencoded::from_str(action.split_once('?').unwrap().1).unwrap();
        prop_assert_eq!(CallParams::from_params(&query).ivr, Some((flow, state)));
    }
}

/// A caller bridged at t=3 to alice (reservation WR1, leg CA9), who joined.
fn talking_with_alice() -> Journey {
    let mut journey = Journey::new(conference_mode());
    journey
        .at(3)
        .accepted_event(accepted("client:alice"))
        .caller_moved()
        .agent_called("CA9")
        .conference("participant-join", "CA9");
    journey
}

#[test]
fn a_warm_transfer_holds_the_caller_while_the_agents_talk_then_leaves_them_with_the_second() {
    let mut journey = talking_with_alice();
    journey
        .at(10)
        .transfer_started(TransferMode::Warm)
        // Refused while under way.
        .control(conference::Control::Hold(false))
        .at(15)
        .accepted_event(accepted_as("client:bob", "WR2"))
        .agent_called("CAB")
        .conference("participant-join", "CAB")
        // The transferring agent's own events are not the new agent's.
        .conference("participant-mute", "CA9")
        .at(30)
        .agent_leaves()
        // Their leg's end, after they left.
        .agent_leg("completed", accepted("client:alice"))
        .at(90)
        .agent_leg_of("WR2", "completed", accepted_as("client:bob", "WR2"));
    journey.check(expect![[r#"
        t=3 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)
        t=3 caller moved: (nothing) | save | Conference(WR1)
        t=3 agent leg CA9 placed: (nothing) | save | Conference(WR1, agent leg CA9)
        t=3 conference participant-join CA9: (nothing) | save | Conference(WR1, agent leg CA9, talking)
        t=10 transfer Warm: (nothing) | save | Conference(no agent, on hold, transfer of WT1 from WR1 (leg CA9, Warm))
        t=10 control Hold(false): refused: the call is being transferred: cancel or finish that first
        t=15 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: call client:bob in as agent-WR2 (else NextAgent) | Conference(WR2, on hold, transfer of WT1 from WR1 (leg CA9, Warm))
        t=15 agent leg CAB placed: (nothing) | save | Conference(WR2, agent leg CAB, on hold, transfer of WT1 from WR1 (leg CA9, Warm))
        t=15 conference participant-join CAB: (nothing) | save | Conference(WR2, agent leg CAB, talking, on hold, transfer of WT1 from WR1 (leg CA9, Warm))
        t=15 conference participant-mute CA9: (nothing) | Conference(WR2, agent leg CAB, talking, on hold, transfer of WT1 from WR1 (leg CA9, Warm))
        t=30 the transferring agent leaves: (nothing) | save | wrap up | provider: CAB leaving ends the conference (else Report) | provider: HangUpAgent { call_sid: "CA9" } (else Report) | provider: HoldCaller(false) (else Report) | Conference(WR2, agent leg CAB, talking)
        t=30 agent-leg completed: (nothing) | Conference(WR2, agent leg CAB, talking)
        t=90 agent-leg of WR2 completed: (nothing) | save | wrap up | Conference(WR2, agent leg CAB)"#]]);
}

#[test]
fn a_canceled_or_untaken_warm_transfer_puts_the_call_back_with_its_agent_and_a_cold_one_goes_on() {
    let mut journey = talking_with_alice();
    journey
        .at(10)
        .transfer_started(TransferMode::Warm)
        .accepted_event(accepted_as("client:bob", "WR2"))
        .agent_called("CAB")
        // Bob does not answer: the engine cancels the warm transfer's task.
        .agent_leg_of("WR2", "no-answer", accepted_as("client:bob", "WR2"))
        .transfer_task_ended()
        .at(20)
        .transfer_started(TransferMode::Cold)
        .agent_leaves()
        // Cold: the caller waits on hold for whoever takes it; alice hanging up changes nothing.
        .agent_leg("completed", accepted("client:alice"))
        // Its task canceled (its TTL, the API): nobody is left to come back to; the caller is
        // told so, not left on hold.
        .transfer_task_ended()
        .at(40)
        // The caller hangs up while waiting for the transfer: its task is canceled.
        .hang_up(waiting(1));
    journey.check(expect![[r#"
        t=3 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)
        t=3 caller moved: (nothing) | save | Conference(WR1)
        t=3 agent leg CA9 placed: (nothing) | save | Conference(WR1, agent leg CA9)
        t=3 conference participant-join CA9: (nothing) | save | Conference(WR1, agent leg CA9, talking)
        t=10 transfer Warm: (nothing) | save | Conference(no agent, on hold, transfer of WT1 from WR1 (leg CA9, Warm))
        t=10 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: call client:bob in as agent-WR2 (else NextAgent) | Conference(WR2, on hold, transfer of WT1 from WR1 (leg CA9, Warm))
        t=10 agent leg CAB placed: (nothing) | save | Conference(WR2, agent leg CAB, on hold, transfer of WT1 from WR1 (leg CA9, Warm))
        t=10 agent-leg of WR2 no-answer: (nothing) | save | unanswered | Conference(no agent, on hold, transfer of WT1 from WR1 (leg CA9, Warm))
        t=10 transfer task canceled: (nothing) | save | provider: HoldCaller(false) (else Report) | provider: CA9 leaving ends the conference (else Report) | Conference(WR1, agent leg CA9, talking)
        t=20 transfer Cold: (nothing) | save | Conference(no agent, on hold, transfer of WT1 from WR1 (leg CA9, Cold))
        t=20 the transferring agent leaves: (nothing) | save | wrap up | provider: HangUpAgent { call_sid: "CA9" } (else Report) | Conference(no agent, on hold, transfer of WT1 from WR1 (leg gone, Cold))
        t=20 agent-leg completed: (nothing) | Conference(no agent, on hold, transfer of WT1 from WR1 (leg gone, Cold))
        t=20 transfer task canceled: (nothing) | save | provider: move the caller to: say "Sorry, no one can take your call right now. Please call again later. Goodbye.", hangup (else Report) | Conference(no agent, on hold)
        t=40 status completed: (nothing) | cancel (caller hung up) | forget | Conference(no agent, on hold)"#]]);
}

#[test]
fn a_restart_carries_a_transfer_on_from_where_the_provider_has_it() {
    let mut journey = talking_with_alice();
    journey
        .at(10)
        .transfer_started(TransferMode::Warm)
        // Bob accepted just before the crash, and was never called: he is called now.
        .at(20)
        .restart(found(None), accepted_as("client:bob", "WR2"));
    let mut cold = talking_with_alice();
    cold.at(10)
        .transfer_started(TransferMode::Cold)
        // Killed before alice left: she leaves now.
        .at(20)
        .restart(conference::Found { transferring_agent_present: Some(true), ..found(None) }, waiting(1));
    let mut gone = talking_with_alice();
    gone.at(10)
        .transfer_started(TransferMode::Warm)
        // Alice hung up while Switchboard was down: her task wraps up, the transfer goes on.
        .at(20)
        .restart(conference::Found { transferring_agent_present: Some(false), ..found(None) }, waiting(1));
    journey.log.extend(cold.log.split_off(5));
    journey.log.extend(gone.log.split_off(5));
    journey.check(expect![[r#"
        t=3 accepted: join conference WT1 then https://sb.example.com/voice/conference-ended | connected after 12 s | save | provider: move the caller into the conference (else DialAsBefore) | provider: call client:alice in as agent-WR1 (else NextAgent) | Conference(WR1, caller not moved)
        t=3 caller moved: (nothing) | save | Conference(WR1)
        t=3 agent leg CA9 placed: (nothing) | save | Conference(WR1, agent leg CA9)
        t=3 conference participant-join CA9: (nothing) | save | Conference(WR1, agent leg CA9, talking)
        t=10 transfer Warm: (nothing) | save | Conference(no agent, on hold, transfer of WT1 from WR1 (leg CA9, Warm))
        t=20 restart: join conference WT1 then https://sb.example.com/voice/conference-ended | save | connected after 12 s | save | provider: call client:bob in as agent-WR2 (else NextAgent) | Conference(WR2, transfer of WT1 from WR1 (leg CA9, Warm))
        t=20 restart: (nothing) | save | wrap up | provider: HangUpAgent { call_sid: "CA9" } (else Report) | Conference(no agent, on hold, transfer of WT1 from WR1 (leg gone, Cold))
        t=20 restart: (nothing) | save | wrap up | Conference(no agent, on hold, transfer of WT1 from WR1 (leg gone, Warm))"#]]);
}

/// A flow whose hold loop offers a callback (`[callback]` with `fields`).
fn with_callback(fields: &str) -> Journey {
    let mut journey = Journey::new(conference_mode());
    let source = FLOW.replacen("[menus.", &format!("[callback]\n{fields}\n\n[menus."), 1);
    journey.flow = load_flow(&source).unwrap();
    journey
}

fn callback_of(
    attempts: u32,
    max_attempts: u32,
    then: crate::ivr::CallbackEnd,
) -> Option<callback::CallbackState> {
    Some(callback::CallbackState { attempts, max_attempts, retry_after: 60, then })
}

#[test]
fn a_caller_on_hold_asks_to_be_called_back_and_the_tries_go_on_until_one_is_answered_or_the_last() {
    use crate::ivr::CallbackEnd;
    let mut journey = with_callback("offer_after = 30\nattempts = 2\nretry_after = 60\nthen = \"cancel\"");
    journey.at(10).wait(waiting(3));
    // Offered once the caller has waited 30 s: a key in the hold loop's Gather.
    journey.at(40).wait(waiting(2));
    journey
        .step("wait, 1 pressed", waiting(2), |call, seen, cx| call::on_wait_keys(call, seen, Some("1"), cx));
    // An agent accepts: the customer is called (Voice::call_out); busy. Tried again in 60 s.
    let mut tries = with_callback("attempts = 2\nretry_after = 60\nthen = \"cancel\"");
    let calling = Seen { callback: callback_of(1, 2, CallbackEnd::Cancel), ..accepted("client:alice") };
    tries.at(100).called_back().agent_called("CA9");
    tries.step("status busy", calling.clone(), callback::on_unanswered);
    tries.at(150).sweep(calling.clone());
    tries.at(160).sweep(calling);
    // The second and last try, unanswered: given up, the task completed.
    let mut last = with_callback("attempts = 2\nretry_after = 60\nthen = \"cancel\"");
    let last_try = Seen { callback: callback_of(2, 2, CallbackEnd::Cancel), ..accepted("client:alice") };
    last.at(220).called_back().agent_called("CA9");
    last.step("status no-answer", last_try, callback::on_unanswered);
    journey.log.extend(tries.log.split_off(0));
    journey.log.extend(last.log.split_off(0));
    journey.check(expect![[r#"
        t=10 wait: say "You are number 3 in line.", pause 5, redirect /voice/wait | Waiting
        t=40 wait: gather a key to /voice/wait [say "You are number 2 in line.", say "To be called back at this number without losing your place in line, press 1.", pause 5], redirect /voice/wait | Waiting
        t=40 wait, 1 pressed: say "Thank you. We will call you back at this number, and you keep your place in line. Goodbye.", hangup | callback {"number":"+15550001111","status":"waiting","requested_at":"1970-01-01T00:00:40Z","attempts":0,"max_attempts":2,"retry_after":60,"then":"cancel"} | forget | Waiting
        t=100 called back: (nothing) | save | Conference(WR1)
        t=100 agent leg CA9 placed: (nothing) | save | Conference(WR1, agent leg CA9)
        t=100 status busy: (nothing) | save | callback {"status":"retry","next_attempt_at":"1970-01-01T00:02:40Z"} | provider: HangUpAgent { call_sid: "CA9" } (else Report) | Conference(WR1)
        t=150 sweep: (nothing) | Conference(WR1)
        t=160 sweep: (nothing) | call +15550001111 back again | forget | Conference(WR1)
        t=220 called back: (nothing) | save | Conference(WR1)
        t=220 agent leg CA9 placed: (nothing) | save | Conference(WR1, agent leg CA9)
        t=220 status no-answer: (nothing) | callback {"status":"unanswered","next_attempt_at":null} | provider: HangUpAgent { call_sid: "CA9" } (else Report) | Complete { task: WT10000000000000000000000000000000, reason: "callback not answered after 2 tries" } | forget | Conference(WR1, agent leg CA9)"#]]);
}
