//! The provider emulator (`switchboard provider`, a process of its own) as the real provider:
//! whole calls played through the server's signed webhooks, and its Voice REST API as the
//! server's client (`outbound::voice_api`) uses it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::outbound::voice_api::{
    CallUpdate, NewParticipant, ParticipantUpdate, VoiceApi, VoiceApiSettings, codes,
};
use switchboard::routing::TaskStatus;

use switchboard::config::BridgeMode;
use switchboard::voice::Stage;

use crate::helpers::{SignedIn, SwitchboardProcess, TestApp, switchboard_command};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN, spawn_api, spawn_api_with};
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
        Provider::start_on(app, "127.0.0.1:0")
    }

    /// The same, listening on `listen` (which the server's `voice.api_base` names).
    pub(crate) fn start_on(app: &TestApp, listen: &str) -> Provider {
        Provider::start_for(&app.url(""), listen, TIME_SCALE)
    }

    /// The emulator in front of the server at `server`, listening on `listen`, its time running
    /// `time_scale` times as fast as the wall clock's.
    pub(crate) fn start_for(server: &str, listen: &str, time_scale: &str) -> Provider {
        let dir = tempfile::tempdir().unwrap();
        let mut command = switchboard_command(dir.path());
        command.args(["provider", "--listen", listen, "--server", server]);
        command.args(["--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN, "--time-scale", time_scale]);
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
        self.call_from("+15550100001", keys).await
    }

    /// The same, the caller's number being `from`.
    pub(crate) async fn call_from(&self, from: &str, keys: &[&str]) -> String {
        let body = json!({"from": from, "to": "+15550100200", "keys": keys});
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

    /// The conferences with their participants.
    pub(crate) async fn conferences(&self) -> Vec<Value> {
        let answer: Value =
            self.client.get(self.url("/emulator/conferences")).send().await.unwrap().json().await.unwrap();
        answer["conferences"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until some conference satisfies `done`; answers it.
    pub(crate) async fn wait_for_conference(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let conferences = self.conferences().await;
            if let Some(found) = conferences.iter().find(|conference| done(conference)) {
                return found.clone();
            }
            assert!(Instant::now() < deadline, "waited in vain for {what}: {conferences:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn hang_up(&self, call_sid: &str) {
        let response =
            self.client.post(self.url(&format!("/emulator/calls/{call_sid}/hangup"))).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The provider's REST API out of service for `seconds` (emulated), calls going on.
    pub(crate) async fn take_api_down(&self, seconds: f64) {
        let response = self
            .client
            .put(self.url("/emulator/api"))
            .json(&json!({"down_for": seconds}))
            .send()
            .await
            .unwrap();
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

/// Waits until the task of `call` is offered to an agent.
async fn until_offered(app: &TestApp, call: &str) {
    wait_until(app, "the call to be offered", |engine| {
        engine
            .tasks()
            .any(|task| task.attributes["call_sid"] == call && !engine.pending_reservations(task).is_empty())
    })
    .await;
}

/// Waits until the task of `call` has `status`.
async fn until_task_is(app: &TestApp, call: &str, status: TaskStatus) {
    wait_until(app, &format!("the task to be {}", status.as_str()), |engine| {
        engine.tasks().any(|task| task.attributes["call_sid"] == call && task.status == status)
    })
    .await;
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
    until_offered(&app, &call).await;
    assert_eq!(accept(&app, &call).await, "alice");
    provider
        .wait_for(&call, "the bridge to alice", |summary| heard(summary, "is connected to client:alice"))
        .await;
    provider.hang_up(&call).await;
    let summary =
        provider.wait_for(&call, "the end of the call", |summary| summary["status"] == "completed").await;
    until_task_is(&app, &call, TaskStatus::Wrapping).await;

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

/// The server in conference bridging, and the emulator as its provider (Voice API and
/// webhooks both ways).
pub(crate) async fn conference_bridging() -> (TestApp, Provider) {
    conference_bridging_at(TIME_SCALE).await
}

/// The same, the emulator's time running `time_scale` times as fast as the wall clock's.
async fn conference_bridging_at(time_scale: &str) -> (TestApp, Provider) {
    conference_bridging_with(time_scale, |_| {}).await
}

/// The same, with the server's settings adjusted by `adjust`.
pub(crate) async fn conference_bridging_with(
    time_scale: &str,
    adjust: impl FnOnce(&mut switchboard::config::Settings),
) -> (TestApp, Provider) {
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = spawn_api_with(|settings| {
        settings.voice.bridge = BridgeMode::Conference;
        settings.voice.api_base = format!("http://{address}");
        adjust(settings);
    })
    .await;
    let provider = Provider::start_for(&app.url(""), &address.to_string(), time_scale);
    (app, provider)
}

/// Waits until Switchboard has the caller and the agent talking in the conference; answers the
/// agent's leg.
async fn talking(app: &TestApp, call: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = app.voice.call_record(call).await;
        if let Some(Stage::Conference(bridge)) = stored.as_ref().map(|call| &call.stage)
            && bridge.talking
        {
            return bridge.agent_call.clone().expect("the agent's leg is known");
        }
        assert!(Instant::now() < deadline, "waited in vain for the talk: {stored:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The agent's answer on the agent page's API to the call of `task`: `action`.
async fn control(app: &TestApp, agent: &SignedIn, task: &str, action: &str) -> reqwest::StatusCode {
    let response = app
        .client
        .post(app.url(&format!("/agent/api/tasks/{task}/call")))
        .header("cookie", &agent.cookie)
        .header("x-csrf-token", &agent.csrf)
        .form(&[("Action", action)])
        .send()
        .await
        .unwrap();
    response.status()
}

#[tokio::test]
async fn an_accepted_caller_joins_the_agent_in_a_conference_the_agent_holds_mutes_and_hangs_up() {
    let (app, provider) = conference_bridging().await;
    set_activity(&app, "alice", "Available").await;
    let (alice, task_of_call) = (
        app.engine.read(|engine| engine.worker_by_name("alice").unwrap().sid.to_string()),
        |app: &TestApp, call: &str| {
            app.engine.read(|engine| {
                engine
                    .tasks()
                    .find(|task| task.attributes["call_sid"] == call)
                    .map(|task| task.sid.to_string())
            })
        },
    );
    let agent = SignedIn::agent(&app.client, &app.url(""), &alice, "alice").await;

    let call = provider.call(&["1"]).await;
    until_offered(&app, &call).await;
    let task = task_of_call(&app, &call).unwrap();
    assert_eq!(
        control(&app, &agent, &task, "hold").await,
        reqwest::StatusCode::FORBIDDEN,
        "an offer not yet accepted is not the agent's call"
    );
    accept(&app, &call).await;
    let room = provider
        .wait_for_conference("the caller and alice in one conference", |conference| {
            conference["friendly_name"] == task.as_str()
                && conference["participants"].as_array().is_some_and(|p| p.len() == 2)
        })
        .await;
    let agent_leg = talking(&app, &call).await;

    let hold = control(&app, &agent, &task, "hold").await;
    let caller_held =
        provider.wait_for(&call, "the caller on hold", |summary| heard(summary, "is put on hold")).await;
    let resume = control(&app, &agent, &task, "resume").await;
    let mute = control(&app, &agent, &task, "mute").await;
    provider.hang_up(&agent_leg).await;
    let over = provider
        .wait_for(&call, "the caller's call to end", |summary| summary["status"] == "completed")
        .await;
    until_task_is(&app, &call, TaskStatus::Wrapping).await;

    assert_eq!(room["status"], "in-progress");
    assert_eq!(
        (hold, resume, mute),
        (reqwest::StatusCode::OK, reqwest::StatusCode::OK, reqwest::StatusCode::OK)
    );
    assert!(heard(&caller_held, &format!("joins conference {task}")), "{caller_held:#}");
    assert!(heard(&over, "is taken off hold"), "{over:#}");
    assert_eq!(app.voice.call_record(&call).await, None, "the call is over and forgotten");
}

#[tokio::test]
async fn an_agent_who_does_not_answer_passes_the_caller_to_the_next_while_they_wait_in_the_conference() {
    let (app, provider) = conference_bridging().await;
    provider.script_phone("client:alice", json!({"answer_after": null})).await;
    set_activity(&app, "alice", "Available").await;

    let call = provider.call(&["1"]).await;
    until_offered(&app, &call).await;
    accept(&app, &call).await;
    provider
        .wait_for(&call, "the caller in the conference", |summary| summary["conference"].is_string())
        .await;
    until_task_is(&app, &call, TaskStatus::Pending).await;
    let waiting = provider.summary(&call).await;
    provider.hang_up(&call).await;
    until_task_is(&app, &call, TaskStatus::Canceled).await;

    assert!(waiting["conference"].is_string(), "still in the conference: {waiting:#}");
}

#[tokio::test]
async fn forged_conference_callbacks_get_403_and_those_about_unknown_calls_change_nothing() {
    let (app, provider) = conference_bridging().await;
    set_activity(&app, "alice", "Available").await;
    let call = provider.call(&["1"]).await;
    until_offered(&app, &call).await;
    accept(&app, &call).await;
    let agent_leg = talking(&app, &call).await;
    let reservation = app.engine.read(|engine| {
        let task = engine.tasks().find(|task| task.attributes["call_sid"] == call.as_str()).unwrap();
        task.reservations.last().unwrap().to_string()
    });
    let before = app.voice.call_record(&call).await;
    let post = |path: String, params: Vec<(&'static str, String)>, token: Option<&'static str>| {
        let url = app.url(&path);
        let params: Vec<(String, String)> = params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let mut request = app.client.post(&url).form(&params);
        if let Some(token) = token {
            request = request
                .header("X-Twilio-Signature", switchboard::http::signature::sign(token, &url, &params));
        }
        request.send()
    };
    let hung_up = vec![("CallSid", agent_leg.clone()), ("CallStatus", "completed".to_owned())];
    let left = vec![
        ("ConferenceSid", "CF1".to_owned()),
        ("StatusCallbackEvent", "participant-leave".to_owned()),
        ("CallSid", agent_leg.clone()),
    ];

    let unsigned =
        post(format!("/voice/agent-leg?call={call}&reservation={reservation}"), hung_up.clone(), None)
            .await
            .unwrap();
    let forged =
        post(format!("/voice/conference?call={call}"), left.clone(), Some("not-the-token")).await.unwrap();
    let unknown_call =
        post(format!("/voice/agent-leg?call=CA404&reservation={reservation}"), hung_up, Some(AUTH_TOKEN))
            .await
            .unwrap();
    let unknown_conference =
        post("/voice/conference?call=CA404".to_owned(), left, Some(AUTH_TOKEN)).await.unwrap();

    assert_eq!(
        (unsigned.status(), forged.status()),
        (reqwest::StatusCode::FORBIDDEN, reqwest::StatusCode::FORBIDDEN)
    );
    assert_eq!(
        (unknown_call.status(), unknown_conference.status()),
        (reqwest::StatusCode::OK, reqwest::StatusCode::OK)
    );
    assert_eq!(app.voice.call_record(&call).await, before, "nothing changed");
    assert_eq!(task_of(&app, &call).1, TaskStatus::Assigned);
}

#[tokio::test]
async fn with_the_providers_api_down_for_30_s_accepted_callers_are_still_bridged_by_the_hold_loop() {
    // Time 5 times as fast: the outage lasts 6 s, the client's retries give up after about 1.5 s.
    let (app, provider) = conference_bridging_at("5").await;
    set_activity(&app, "alice", "Available").await;
    set_activity(&app, "bob", "Available").await;
    let first = provider.call(&["1"]).await;
    until_offered(&app, &first).await;
    let second = provider.call(&["1"]).await;
    until_offered(&app, &second).await;

    provider.take_api_down(30.0).await;
    let agents = [accept(&app, &first).await, accept(&app, &second).await];
    let mut bridged = Vec::new();
    for call in [&first, &second] {
        let summary = provider
            .wait_for(call, "the caller bridged by <Dial>", |summary| {
                heard(summary, "is connected to client:")
            })
            .await;
        bridged.push(summary);
    }
    let outage_requests: Value =
        app.client.get(provider.url("/emulator/requests")).send().await.unwrap().json().await.unwrap();
    for call in [&first, &second] {
        provider.hang_up(call).await;
        until_task_is(&app, call, TaskStatus::Wrapping).await;
    }
    // The API is back: the next caller joins the agent in a conference again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    app.engine
        .execute(app.engine.read(|engine| {
            let task = engine.tasks().find(|task| task.attributes["call_sid"] == first.as_str()).unwrap();
            switchboard::routing::Command::Complete { task: task.sid, reason: "handled".to_owned() }
        }))
        .await
        .unwrap();
    let third = provider.call(&["1"]).await;
    until_offered(&app, &third).await;
    accept(&app, &third).await;
    talking(&app, &third).await;

    assert_ne!(agents[0], agents[1]);
    for summary in &bridged {
        assert!(!heard(summary, "joins conference"), "bridged by <Dial>, not in a conference: {summary:#}");
    }
    let refused = outage_requests["requests"].as_array().unwrap().len();
    assert!(refused >= 2, "the server did try the API during the outage: {outage_requests:#}");
}

#[tokio::test]
async fn switchboard_call_is_the_provider_a_person_accepts_holds_and_hangs_up_from_the_agent_page() {
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = spawn_api_with(|settings| {
        settings.voice.bridge = BridgeMode::Conference;
        settings.voice.api_base = format!("http://{address}");
    })
    .await;
    set_activity(&app, "alice", "Available").await;
    let alice = app.engine.read(|engine| engine.worker_by_name("alice").unwrap().sid.to_string());
    let agent = SignedIn::agent(&app.client, &app.url(""), &alice, "alice").await;
    let mut command = switchboard_command(std::path::Path::new("."));
    command
        .args(["call", "--auth-token", AUTH_TOKEN, "--account-sid", ACCOUNT_SID, "--digits", "1"])
        .args(["--listen", &address.to_string()])
        .arg(app.url(""))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let caller = command.spawn().expect("switchboard call starts");

    let call = wait_for_a_call(&app).await;
    until_offered(&app, &call).await;
    accept(&app, &call).await;
    talking(&app, &call).await;
    let task = app.engine.read(|engine| {
        engine.tasks().find(|t| t.attributes["call_sid"] == call.as_str()).map(|t| t.sid.to_string()).unwrap()
    });
    let held = control(&app, &agent, &task, "hold").await;
    let hung_up = control(&app, &agent, &task, "hangup").await;
    let output = tokio::task::spawn_blocking(move || caller.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);

    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!((held, hung_up), (reqwest::StatusCode::OK, reqwest::StatusCode::OK));
    for line in [
        format!("+15550100001 joins conference {task}"),
        "client:alice answers".to_owned(),
        "+15550100001 is put on hold".to_owned(),
        "(the call is over: completed)".to_owned(),
    ] {
        assert!(stdout.lines().any(|printed| printed.starts_with(&line)), "{line:?} in:\n{stdout}");
    }
    until_task_is(&app, &call, TaskStatus::Wrapping).await;
}

/// Waits for the first call the server holds; answers its CallSid.
async fn wait_for_a_call(app: &TestApp) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = app.engine.read(|engine| {
            engine.tasks().next().and_then(|task| task.attributes["call_sid"].as_str().map(str::to_owned))
        });
        if let Some(call) = found {
            return call;
        }
        assert!(Instant::now() < deadline, "no call reached the server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_caller_who_hangs_up_while_the_agents_phone_rings_ends_the_ring_and_the_task_wraps_up() {
    // Alice's phone rings until the ring time is up: 10 minutes, 12 s at 50 times the pace.
    let (app, provider) =
        conference_bridging_with(TIME_SCALE, |settings| settings.voice.dial_timeout = 600).await;
    provider.script_phone("client:alice", json!({"answer_after": null})).await;
    set_activity(&app, "alice", "Available").await;
    let call = provider.call(&["1"]).await;
    until_offered(&app, &call).await;
    accept(&app, &call).await;
    let agent_leg = loop {
        let stored = app.voice.call_record(&call).await;
        if let Some(Stage::Conference(bridge)) = stored.map(|call| call.stage)
            && let Some(agent_leg) = bridge.agent_call
        {
            break agent_leg;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Stored as soon as the provider took it: it may still be `queued` for a moment.
    let ringing = provider
        .wait_for(&agent_leg, "the agent's phone to ring", |summary| summary["status"] != "queued")
        .await;

    provider.hang_up(&call).await;
    let ended = provider
        .wait_for(&agent_leg, "the agent's ring to end", |summary| summary["status"] != "ringing")
        .await;
    until_task_is(&app, &call, TaskStatus::Wrapping).await;
    // The record goes once the agent's leg has ended too, which the provider may report after.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.voice.call_record(&call).await.is_some() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(ringing["status"], "ringing", "{ringing:#}");
    assert_eq!(ended["status"], "canceled", "the ring was called off: {ended:#}");
    assert!(ended["start_time"].is_null(), "never answered: {ended:#}");
    assert_eq!(app.voice.call_record(&call).await, None, "the call is over and forgotten");
}
