//! The provider emulator (`switchboard provider`, a process of its own) as the real provider:
//! whole calls played through the server's signed webhooks, and its Voice REST API as the
//! server's client (`outbound::voice_api`) uses it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::outbound::voice_api::{
    CallUpdate, NewParticipant, ParticipantUpdate, VoiceApi, VoiceApiSettings, codes,
};
use switchboard::routing::TaskStatus;

use crate::helpers::{SwitchboardProcess, TestApp, switchboard_command};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN, spawn_api};
use crate::voice::{accept, set_activity, task_of};

/// How much faster than the wall clock the emulator runs: the hold loop's 5 s pause is 0.1 s.
const TIME_SCALE: &str = "50";

/// A running `switchboard provider` and a client of its control API.
pub(crate) struct Provider {
    process: SwitchboardProcess,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Provider {
    /// Starts the emulator in front of `app` (webhooks to its `/voice/...`).
    pub(crate) fn start(app: &TestApp) -> Provider {
        let dir = tempfile::tempdir().unwrap();
        let mut command = switchboard_command(dir.path());
        command.args(["provider", "--listen", "127.0.0.1:0", "--server", &app.url("")]);
        command.args(["--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN, "--time-scale", TIME_SCALE]);
        let process = SwitchboardProcess::start(command).expect("the emulator starts");
        Provider { process, client: reqwest::Client::new(), _dir: dir }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    /// The Voice API client, pointed at the emulator.
    pub(crate) fn api(&self) -> VoiceApi {
        VoiceApi::new(VoiceApiSettings {
            api_base: self.url(""),
            account_sid: ACCOUNT_SID.into(),
            user: ACCOUNT_SID.into(),
            secret: AUTH_TOKEN.into(),
        })
        .unwrap()
    }

    /// A caller rings the line and will press `keys`, one entry per menu; answers the CallSid.
    pub(crate) async fn call(&self, keys: &[&str]) -> String {
        let body = json!({"from": "+15550100001", "to": "+15550100200", "keys": keys});
        let answer: Value = self
            .client
            .post(self.url("/emulator/calls"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["sid"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn hang_up(&self, call_sid: &str) {
        let response =
            self.client.post(self.url(&format!("/emulator/calls/{call_sid}/hangup"))).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    pub(crate) async fn script_phone(&self, address: &str, script: Value) {
        let url = self.url(&format!("/emulator/phones/{}", address.replace(':', "%3A")));
        let response = self.client.put(url).json(&script).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The call as the emulator sees it: status, conference, transcript.
    pub(crate) async fn summary(&self, call_sid: &str) -> Value {
        self.client
            .get(self.url(&format!("/emulator/calls/{call_sid}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits (up to a generous limit, for slow machines) until the call's summary satisfies
    /// `done`; panics with the last summary otherwise.
    pub(crate) async fn wait_for(&self, call_sid: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let summary = self.summary(call_sid).await;
            if done(&summary) {
                return summary;
            }
            assert!(Instant::now() < deadline, "waited in vain for {what}: {summary:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether the call's transcript has a line containing `text`.
pub(crate) fn heard(summary: &Value, text: &str) -> bool {
    summary["transcript"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|line| line.as_str().is_some_and(|line| line.contains(text)))
}

/// Waits until `app` shows `done` of its engine.
async fn wait_until(app: &TestApp, what: &str, done: impl Fn(&switchboard::routing::Engine) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !app.engine.read(&done) {
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_caller_on_the_emulator_walks_the_ivr_holds_and_talks_to_the_agent_who_accepted() {
    let app = spawn_api().await;
    set_activity(&app, "alice", "Available").await;
    let provider = Provider::start(&app);

    let call = provider.call(&["1"]).await;
    wait_until(&app, "alice to be offered the call", |engine| {
        engine.tasks().any(|task| {
            task.attributes["call_sid"] == call.as_str() && !engine.pending_reservations(task).is_empty()
        })
    })
    .await;
    assert_eq!(accept(&app, &call).await, "alice");
    provider
        .wait_for(&call, "the bridge to alice", |summary| heard(summary, "is connected to client:alice"))
        .await;
    provider.hang_up(&call).await;
    let summary =
        provider.wait_for(&call, "the end of the call", |summary| summary["status"] == "completed").await;
    wait_until(&app, "the task to wrap up", |engine| {
        engine
            .tasks()
            .any(|task| task.attributes["call_sid"] == call.as_str() && task.status == TaskStatus::Wrapping)
    })
    .await;

    assert!(heard(&summary, "hears \"Please hold for the next available agent.\""), "{summary:#}");
    assert!(heard(&summary, "presses \"1\""), "{summary:#}");
    assert_eq!(task_of(&app, &call).1, TaskStatus::Wrapping);
}

#[tokio::test]
async fn the_emulators_rest_api_bridges_a_caller_into_a_conference_and_holds_and_mutes_them() {
    let app = spawn_api().await;
    let provider = Provider::start(&app);
    let api = provider.api();
    // A caller held in the IVR's hold loop (no agent available).
    let caller = provider.call(&["1"]).await;
    provider.wait_for(&caller, "the hold loop", |summary| heard(summary, "Please hold")).await;

    // The caller is moved into a conference, and an agent's phone called into it.
    let twiml = r#"<Response><Dial><Conference startConferenceOnEnter="true" endConferenceOnExit="false">WT-room</Conference></Dial></Response>"#;
    api.update_call(&caller, &CallUpdate::Twiml(twiml.into())).await.unwrap();
    provider.script_phone("client:alice", json!({"answer_after": 1.0})).await;
    let new = NewParticipant {
        conference: "WT-room".into(),
        from: "+15550100200".into(),
        to: "client:alice".into(),
        label: Some("agent".into()),
        timeout: Some(20),
        end_conference_on_exit: Some(true),
        ..NewParticipant::default()
    };
    let agent = api.create_participant(&new).await.unwrap();
    let again = api.create_participant(&new).await.unwrap_err();
    provider
        .wait_for(&agent.call_sid, "the agent to answer", |summary| summary["conference"].is_string())
        .await;
    let conference = api.active_conference("WT-room").await.unwrap().expect("the conference exists");
    let held = api
        .update_participant(
            &conference.sid,
            &caller,
            &ParticipantUpdate { hold: Some(true), ..ParticipantUpdate::default() },
        )
        .await
        .unwrap();
    let muted = api
        .update_participant(
            &conference.sid,
            "agent",
            &ParticipantUpdate { muted: Some(true), ..ParticipantUpdate::default() },
        )
        .await
        .unwrap();
    // The agent hangs up: the conference ends, and the caller's Dial goes on (the document ends).
    provider.hang_up(&agent.call_sid).await;
    let caller_after = provider
        .wait_for(&caller, "the caller's call to end", |summary| summary["status"] == "completed")
        .await;
    let over =
        api.update_call(&caller, &CallUpdate::Redirect("https://example.com/".into())).await.unwrap_err();

    assert_eq!(again.code(), Some(codes::LABEL_IN_USE));
    assert_eq!(conference.status, "in-progress");
    assert!(held.hold && muted.muted && muted.label.as_deref() == Some("agent"));
    assert!(heard(&caller_after, "joins conference WT-room"), "{caller_after:#}");
    assert!(heard(&caller_after, "is put on hold"), "{caller_after:#}");
    assert_eq!(over.code(), Some(codes::CALL_NOT_IN_PROGRESS));
}
