//! A routed call's journeys through [`super::call`]'s decisions, one webhook per line: what
//! the engine showed, what the caller heard and what the shell was told to do. And the place
//! in the IVR round-tripping through the action URL.

use expect_test::{Expect, expect};
use proptest::prelude::*;

use super::*;
use crate::config::VoiceSettings;
use crate::fuzzing::{self, awkward_text};
use crate::ivr::load_flow;
use crate::routing::SidKind;

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
            },
            task: sid("WT1"),
            started_at: 0,
            last_seen: 0,
            announced_at: None,
            stage: Stage::Waiting,
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
        let cx = Context { flow: &self.flow, settings: &self.settings, now: self.now };
        let Decision { response, actions } = decide(call, &seen, cx);
        let mut line = format!("t={} {hook}: {}", self.now / 1000, heard(&response));
        for action in &actions {
            line.push_str(&format!(" | {}", done(action)));
        }
        line.push_str(&format!(" | {:?}", call.stage));
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

    fn check(&mut self, expected: Expect) {
        expected.assert_eq(&self.log.join("\n"));
    }
}

/// The task waits in the queue, `place` in line.
fn waiting(place: usize) -> Seen {
    Seen { status: Some(TaskStatus::Pending), position: Some((sid("WQ1"), place)), ..Seen::default() }
}

/// An agent reachable at `contact_uri` accepted reservation WR1.
fn accepted(contact_uri: &str) -> Seen {
    let accepted = Accepted {
        reservation: sid("WR1"),
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
            Verb::Dial(dial) => format!("dial {:?} ({} s)", dial.target, dial.timeout.unwrap_or(0)),
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
        Action::Forget => "forget".to_owned(),
    }
}

#[test]
fn a_caller_holds_hears_their_place_then_is_dialed_to_the_agent_who_accepted() {
    Journey::new(VoiceSettings::default())
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
            t=33 wait: dial Client("alice") (20 s) | connected after 12 s | save | Dialing { reservation: WR10000000000000000000000000000000 }
            t=34 wait: dial Client("alice") (20 s) | Dialing { reservation: WR10000000000000000000000000000000 }
            t=90 dial-status completed: hangup | wrap up | forget | Waiting"#]]);
}

#[test]
fn an_agent_who_does_not_answer_sends_the_caller_back_to_the_hold_loop() {
    Journey::new(VoiceSettings::default())
        .at(10)
        .wait(accepted("+15550003333"))
        .at(30)
        .dial_status("no-answer", waiting(1))
        .at(35)
        .dial_status("no-answer", waiting(1))
        .check(expect![[r#"
            t=10 wait: dial Number("+15550003333") (20 s) | connected after 12 s | save | Dialing { reservation: WR10000000000000000000000000000000 }
            t=30 dial-status no-answer: say "Please hold, we are connecting you to the next available agent.", say "You are next in line.", pause 5, redirect /voice/wait | unanswered | save | Waiting
            t=35 dial-status no-answer: pause 5, redirect /voice/wait | Waiting"#]]);
}

#[test]
fn an_agent_without_a_usable_contact_uri_is_passed_over() {
    Journey::new(VoiceSettings::default()).at(10).wait(accepted("mailto:alice")).check(expect![[r#"t=10 wait: say "Please hold, we are connecting you to the next available agent.", pause 5, redirect /voice/wait | unanswered | Waiting"#]]);
}

#[test]
fn hanging_up_cancels_a_waiting_task_and_wraps_up_an_assigned_one() {
    Journey::new(VoiceSettings::default())
        .at(10)
        .hang_up(waiting(1))
        .check(expect!["t=10 status completed: (nothing) | cancel (caller hung up) | forget | Waiting"]);
    Journey::new(VoiceSettings::default())
        .wait(accepted("client:alice"))
        .at(10)
        .hang_up(status(TaskStatus::Assigned))
        .check(expect![[r#"
            t=0 wait: dial Client("alice") (20 s) | connected after 12 s | save | Dialing { reservation: WR10000000000000000000000000000000 }
            t=10 status completed: (nothing) | wrap up | forget | Dialing { reservation: WR10000000000000000000000000000000 }"#]]);
}

#[test]
fn a_caller_who_waited_too_long_is_offered_voicemail_and_their_message_kept() {
    let settings = VoiceSettings { voicemail_after: 60, ..VoiceSettings::default() };
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
    Journey::new(VoiceSettings::default())
        .at(5)
        .wait(waiting(1))
        .at(60)
        .sweep(waiting(1))
        .at(66)
        .sweep(waiting(1))
        .check(expect![[r#"
            t=5 wait: say "You are next in line.", pause 5, redirect /voice/wait | Waiting
            t=60 sweep: (nothing) | Waiting
            t=66 sweep: (nothing) | cancel (hold loop abandoned) | forget | Waiting"#]]);
    Journey::new(VoiceSettings::default())
        .at(10)
        .wait(accepted("client:alice"))
        .at(4 * 3600)
        .sweep(status(TaskStatus::Assigned))
        .at(5 * 3600)
        .sweep(status(TaskStatus::Completed))
        .check(expect![[r#"
            t=10 wait: dial Client("alice") (20 s) | connected after 12 s | save | Dialing { reservation: WR10000000000000000000000000000000 }
            t=14400 sweep: (nothing) | Dialing { reservation: WR10000000000000000000000000000000 }
            t=18000 sweep: (nothing) | forget | Dialing { reservation: WR10000000000000000000000000000000 }"#]]);
}

#[test]
fn a_task_that_ended_while_the_caller_held_says_goodbye() {
    Journey::new(VoiceSettings::default()).at(10).wait(status(TaskStatus::Canceled)).check(expect![[r#"t=10 wait: say "Sorry, no one can take your call right now. Please call again later. Goodbye.", hangup | forget | Waiting"#]]);
    Journey::new(VoiceSettings::default()).at(10).wait(Seen::default()).check(expect![[r#"t=10 wait: say "Sorry, no one can take your call right now. Please call again later. Goodbye.", hangup | forget | Waiting"#]]);
}

#[test]
fn hold_music_replaces_the_pause() {
    let settings =
        VoiceSettings { hold_music_url: "https://example.com/music.mp3".into(), ..VoiceSettings::default() };
    Journey::new(settings).at(1).wait(waiting(4)).check(expect![[r#"t=1 wait: say "You are number 4 in line.", play https://example.com/music.mp3, redirect /voice/wait | Waiting"#]]);
}

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
    ) {
        let state = CallState { menu, failures, language, path };
        let action = ivr_action(&flow, &state);
        let query: Vec<(String, String)> =
            serde_urlencoded::from_str(action.split_once('?').unwrap().1).unwrap();
        prop_assert_eq!(CallParams::from_params(&query).ivr, Some((flow, state)));
    }
}
