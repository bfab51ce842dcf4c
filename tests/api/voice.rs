//! The caller's journey on the real server, with the provider played by signed webhook
//! requests and the agents by the REST API: the IVR, the task it creates, the hold loop, the
//! bridge to the agent who accepted, and what happens when the caller hangs up or the agent
//! does not pick up. Plus signatures (403, nothing changed) and retried webhooks.

use expect_test::{Expect, expect};
use reqwest::StatusCode;
use serde_json::Value;
use switchboard::http::signature;
use switchboard::routing::{Command, TaskStatus};
use switchboard::voice::{CallParams, Stage};

use crate::helpers::TestApp;
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN};

const CALLER: &str = "+15550100001";
const LINE: &str = "+15550100200";

async fn spawn_voice() -> TestApp {
    spawn_voice_with(|_| {}).await
}

/// The server with the test account's credentials, and `adjust` applied to its settings.
async fn spawn_voice_with(adjust: impl FnOnce(&mut switchboard::config::Settings)) -> TestApp {
    crate::taskrouter::spawn_api_with(adjust).await
}

/// Posts a webhook of call `call_sid` to `path` with `extra` parameters, signed as the
/// provider signs it; returns the status and the TwiML.
pub(crate) async fn webhook(
    app: &TestApp,
    path: &str,
    call_sid: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut params: Vec<(String, String)> = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", call_sid),
        ("From", CALLER),
        ("To", LINE),
        ("Direction", "inbound"),
        ("CallStatus", "in-progress"),
    ]
    .iter()
    .chain(extra)
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    // A later value replaces the default (CallStatus in status callbacks).
    for (name, value) in extra {
        params.retain(|(key, old)| key != name || old == value);
    }
    let url = app.url(path);
    let signature = signature::sign(AUTH_TOKEN, &url, &params);
    send(app, path, &params, Some(&signature)).await
}

async fn send(
    app: &TestApp,
    path: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> (StatusCode, String) {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(params).unwrap());
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let xml = response.text().await.unwrap();
    switchboard::twiml::parse(&xml).unwrap_or_else(|err| panic!("{path}: not TwiML ({err}): {xml}"));
    (status, xml)
}

/// Where the caller's keys go after `twiml` (its Gather's or Record's action), as a provider
/// follows it.
pub(crate) fn action(twiml: &(StatusCode, String)) -> String {
    let verbs = switchboard::twiml::parse(&twiml.1).unwrap();
    let verb = verbs.iter().find(|verb| verb.name == "Gather" || verb.name == "Record");
    verb.and_then(|verb| verb.attribute("action"))
        .unwrap_or_else(|| panic!("no action in {}", twiml.1))
        .to_owned()
}

/// The TwiML without the XML declaration, checked against `expected`.
fn check(twiml: &(StatusCode, String), expected: Expect) {
    assert_eq!(twiml.0, StatusCode::OK, "{}", twiml.1);
    expected.assert_eq(twiml.1.trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#));
}

/// Moves the named worker to `activity`.
pub(crate) async fn set_activity(app: &TestApp, worker: &str, activity: &str) {
    let command = app.engine.read(|engine| Command::SetWorkerActivity {
        worker: engine.worker_by_name(worker).unwrap().sid,
        activity: engine.activity_by_name(activity).unwrap().sid,
        reject_pending: false,
    });
    app.engine.execute(command).await.unwrap();
}

/// The task of call `call_sid`: its attributes, status and queue name.
pub(crate) fn task_of(app: &TestApp, call_sid: &str) -> (Value, TaskStatus, String) {
    app.engine.read(|engine| {
        let mut tasks = engine.tasks().filter(|task| task.attributes["call_sid"] == call_sid);
        let task = tasks.next().expect("the call has a task");
        assert!(tasks.next().is_none(), "one task per call");
        let queue = engine.task_queue(task).map(|queue| queue.friendly_name.clone()).unwrap_or_default();
        (Value::clone(&task.attributes), task.status, queue)
    })
}

/// Accepts, through the REST API as the agent page would, the pending reservation of the call's
/// task; returns the accepting worker's name.
pub(crate) async fn accept(app: &TestApp, call_sid: &str) -> String {
    let (workspace, task, reservation, worker) = app.engine.read(|engine| {
        let task = engine.tasks().find(|task| task.attributes["call_sid"] == call_sid).unwrap();
        let pending = engine.pending_reservations(task);
        let reservation = pending.first().expect("an agent is offered the call");
        let worker = engine.reservation_worker(reservation).friendly_name.clone();
        (engine.workspace_sid(), task.sid, reservation.sid, worker)
    });
    let url = app.url(&format!("/v1/Workspaces/{workspace}/Tasks/{task}/Reservations/{reservation}"));
    let response = app
        .client
        .post(url)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .form(&[("ReservationStatus", "accepted")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    worker
}

#[tokio::test]
async fn a_sales_caller_presses_1_waits_and_is_bridged_to_the_agent_who_accepted() {
    let app = spawn_voice().await;

    // The caller hears the menu, presses 1, and holds: nobody is available yet.
    let menu = webhook(&app, "/voice/incoming", "CA1", &[("CallStatus", "ringing")]).await;
    check(
        &menu,
        expect![[
            r#"<Response><Gather input="dtmf" action="/voice/ivr?flow=main.toml&amp;menu=main&amp;language=en-US" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Thanks for calling. For sales, press 1. For support, press 2.</Say></Gather></Response>"#
        ]],
    );
    check(
        &webhook(&app, &action(&menu), "CA1", &[("Digits", "1")]).await,
        expect![[
            r#"<Response><Say voice="Polly.Joanna" language="en-US">Please hold for the next available agent.</Say><Say voice="Polly.Joanna" language="en-US">You are next in line.</Say><Pause length="5"/><Redirect method="POST">/voice/wait</Redirect></Response>"#
        ]],
    );
    let (attributes, status, queue) = task_of(&app, "CA1");
    assert_eq!(
        (attributes["skillsNeeded"].clone(), status, queue.as_str()),
        (serde_json::json!(["Sales"]), TaskStatus::Pending, "Sales")
    );
    assert_eq!(
        (attributes["from"].as_str(), attributes["to"].as_str(), attributes["ivr_path"].as_str()),
        (Some(CALLER), Some(LINE), Some("1"))
    );
    check(
        &webhook(&app, "/voice/wait", "CA1", &[]).await,
        expect![[
            r#"<Response><Pause length="5"/><Redirect method="POST">/voice/wait</Redirect></Response>"#
        ]],
    );

    // Alice, a Sales agent, becomes available, is offered the call and accepts it.
    set_activity(&app, "alice", "Available").await;
    assert_eq!(accept(&app, "CA1").await, "alice");
    check(
        &webhook(&app, "/voice/wait", "CA1", &[]).await,
        expect![[
            r#"<Response><Dial action="/voice/dial-status" method="POST" timeout="20" answerOnBridge="true"><Client>alice</Client></Dial></Response>"#
        ]],
    );
    assert_eq!(task_of(&app, "CA1").1, TaskStatus::Assigned);

    // They talk; the call ends: the task moves to wrap-up, and the call is forgotten.
    check(
        &webhook(
            &app,
            "/voice/dial-status",
            "CA1",
            &[("DialCallStatus", "completed"), ("DialCallDuration", "93")],
        )
        .await,
        expect![[r#"<Response><Hangup/></Response>"#]],
    );
    check(
        &webhook(&app, "/voice/status", "CA1", &[("CallStatus", "completed")]).await,
        expect![[r#"<Response/>"#]],
    );
    assert_eq!(task_of(&app, "CA1").1, TaskStatus::Wrapping);
    assert_eq!(app.voice.call_record("CA1").await, None);
}

#[tokio::test]
async fn a_caller_who_hangs_up_while_waiting_cancels_the_task_and_its_offer() {
    let app = spawn_voice().await;
    let menu = webhook(&app, "/voice/incoming", "CA2", &[]).await;
    webhook(&app, &action(&menu), "CA2", &[("Digits", "2")]).await;
    set_activity(&app, "bob", "Available").await;
    assert_eq!(task_of(&app, "CA2").1, TaskStatus::Reserved, "bob is offered the Support call");

    check(
        &webhook(&app, "/voice/status", "CA2", &[("CallStatus", "completed")]).await,
        expect![[r#"<Response/>"#]],
    );

    let (attributes, status, _) = task_of(&app, "CA2");
    assert_eq!(
        (attributes["skillsNeeded"].clone(), status),
        (serde_json::json!(["Support"]), TaskStatus::Canceled)
    );
    let offers = app
        .engine
        .read(|engine| engine.reservations().map(|r| format!("{:?}", r.status)).collect::<Vec<_>>());
    assert_eq!(offers, ["Canceled"]);
    // A late hold-loop request of the gone call is told goodbye.
    check(
        &webhook(&app, "/voice/wait", "CA2", &[]).await,
        expect![[
            r#"<Response><Say>Sorry, no one can take your call right now. Please call again later. Goodbye.</Say><Hangup/></Response>"#
        ]],
    );
}

#[tokio::test]
async fn an_agent_who_does_not_pick_up_sends_the_call_to_the_next_agent() {
    let app = spawn_voice().await;
    set_activity(&app, "alice", "Available").await;
    let menu = webhook(&app, "/voice/incoming", "CA3", &[]).await;
    webhook(&app, &action(&menu), "CA3", &[("Digits", "1")]).await;
    let first = accept(&app, "CA3").await;
    assert_eq!(first, "alice");
    let dial = webhook(&app, "/voice/wait", "CA3", &[]).await;
    assert!(dial.1.contains("<Client>alice</Client>"), "{}", dial.1);

    // Alice's phone rings out; bob (Sales, level 2) is available and gets the call.
    set_activity(&app, "bob", "Available").await;
    check(
        &webhook(&app, "/voice/dial-status", "CA3", &[("DialCallStatus", "no-answer")]).await,
        expect![[
            r#"<Response><Say voice="Polly.Joanna" language="en-US">Please hold, we are connecting you to the next available agent.</Say><Pause length="5"/><Redirect method="POST">/voice/wait</Redirect></Response>"#
        ]],
    );
    let alice = app.engine.read(|engine| {
        let alice = engine.worker_by_name("alice").unwrap();
        engine.worker_activity(alice).friendly_name.clone()
    });
    assert_eq!(alice, "Offline", "an agent who does not answer is moved to the timeout activity");
    assert_eq!(accept(&app, "CA3").await, "bob");
    check(
        &webhook(&app, "/voice/wait", "CA3", &[]).await,
        expect![[
            r#"<Response><Dial action="/voice/dial-status" method="POST" timeout="20" answerOnBridge="true"><Client>bob</Client></Dial></Response>"#
        ]],
    );
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_webhooks_get_403_and_change_nothing() {
    let app = spawn_voice().await;
    let form = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        [("CallSid", "CA4"), ("From", CALLER), ("To", LINE)]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let refused = |answer: (StatusCode, String)| {
        assert_eq!(answer.0, StatusCode::FORBIDDEN);
        expect![[r#"<Response><Say>This request is not signed by the provider.</Say><Hangup/></Response>"#]]
            .assert_eq(answer.1.trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#));
    };
    let menu = webhook(&app, "/voice/incoming", "CA4", &[]).await;
    let keys = action(&menu);
    let sales = form(&[("Digits", "1")]);

    // Pressing 1: unsigned, signed with another token, signed for another path, and signed
    // for the real menu but posted to a forged place in the IVR.
    refused(send(&app, &keys, &sales, None).await);
    refused(
        send(&app, &keys, &sales, Some(&signature::sign("not-the-token", &app.url(&keys), &sales))).await,
    );
    refused(
        send(&app, &keys, &sales, Some(&signature::sign(AUTH_TOKEN, &app.url("/voice/wait"), &sales))).await,
    );
    let forged = keys.replace("menu=main", "menu=goodbye");
    refused(send(&app, &forged, &sales, Some(&signature::sign(AUTH_TOKEN, &app.url(&keys), &sales))).await);
    assert_eq!(app.engine.read(|engine| engine.tasks().count()), 0, "no task from a refused request");

    // A caller in line is not hung up by an unsigned status callback.
    webhook(&app, &keys, "CA4", &[("Digits", "1")]).await;
    refused(send(&app, "/voice/status", &form(&[("CallStatus", "completed")]), None).await);
    assert_eq!(task_of(&app, "CA4").1, TaskStatus::Pending);
    assert!(app.voice.call_record("CA4").await.is_some());

    // A GET is signed over the URL with its query string, and refused otherwise.
    let url = app.url("/voice/incoming?CallSid=CA40&From=%2B15550100001&To=%2B15550100200");
    let get = |signature: String| app.client.get(&url).header("X-Twilio-Signature", signature).send();
    let signed = get(signature::sign(AUTH_TOKEN, &url, &[])).await.unwrap();
    assert_eq!(signed.status(), StatusCode::OK);
    assert!(signed.text().await.unwrap().contains("<Gather"), "the menu");
    let unsigned = get(signature::sign(AUTH_TOKEN, &app.url("/voice/incoming"), &[])).await.unwrap();
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn retried_webhooks_of_a_call_never_create_a_second_task() {
    let app = spawn_voice().await;
    let first = webhook(&app, "/voice/incoming", "CA5", &[]).await;
    assert_eq!(
        webhook(&app, "/voice/incoming", "CA5", &[]).await,
        first,
        "a retried incoming call hears the same menu"
    );

    // The same keys posted three times at once, as a provider's retries can arrive.
    let keys = action(&first);
    let (a, b, c) = tokio::join!(
        webhook(&app, &keys, "CA5", &[("Digits", "1")]),
        webhook(&app, &keys, "CA5", &[("Digits", "1")]),
        webhook(&app, &keys, "CA5", &[("Digits", "1")]),
    );
    for answer in [a, b, c] {
        assert!(answer.1.contains("/voice/wait"), "every retry is told to hold: {}", answer.1);
    }
    task_of(&app, "CA5");
    assert_eq!(app.engine.read(|engine| engine.tasks().count()), 1);
}

#[tokio::test]
async fn the_fallback_url_answers_the_webhook_that_failed_so_a_failover_strands_no_caller() {
    let app = spawn_voice().await;
    let menu = webhook(&app, "/voice/incoming", "CA6", &[]).await;
    let keys = action(&menu);
    let failed = |path: &str| app.url(path);

    // The provider could not fetch the menu's action (a node taking over), and falls back.
    let held = webhook(
        &app,
        "/voice/fallback",
        "CA6",
        &[("Digits", "1"), ("ErrorCode", "11200"), ("ErrorUrl", &failed(&keys))],
    )
    .await;
    let incoming_again = webhook(
        &app,
        "/voice/fallback",
        "CA7",
        &[("ErrorCode", "11205"), ("ErrorUrl", &failed("/voice/incoming"))],
    )
    .await;
    let unknown = webhook(
        &app,
        "/voice/fallback",
        "CA8",
        &[("ErrorCode", "11200"), ("ErrorUrl", "https://elsewhere.example/x")],
    )
    .await;

    assert!(held.1.contains("/voice/wait"), "the keys pressed are taken, and the caller holds: {}", held.1);
    task_of(&app, "CA6");
    assert_eq!(
        incoming_again.1,
        webhook(&app, "/voice/incoming", "CA7", &[]).await.1,
        "the menu, as at first"
    );
    assert!(unknown.1.contains("<Hangup/>") || unknown.1.contains("<Say"), "an apology: {}", unknown.1);
}

#[tokio::test]
async fn a_hold_loop_that_stops_polling_cancels_its_task() {
    let app = spawn_voice().await;
    let menu = webhook(&app, "/voice/incoming", "CA6", &[]).await;
    webhook(&app, &action(&menu), "CA6", &[("Digits", "1")]).await;
    let last_seen = app.voice.call_record("CA6").await.unwrap().last_seen;

    app.voice.sweep(last_seen + 59_000).await.unwrap();
    assert_eq!(task_of(&app, "CA6").1, TaskStatus::Pending, "still within voice.abandon_after");

    app.voice.sweep(last_seen + 61_000).await.unwrap();
    let (attributes, status, _) = task_of(&app, "CA6");
    assert_eq!(status, TaskStatus::Canceled, "{attributes}");
    assert_eq!(app.voice.call_record("CA6").await, None);
}

#[tokio::test]
async fn a_caller_who_waits_too_long_leaves_a_voicemail_stored_with_the_task() {
    let app = spawn_voice_with(|settings| settings.voice.voicemail_after = 1).await;
    let menu = webhook(&app, "/voice/incoming", "CA7", &[]).await;
    webhook(&app, &action(&menu), "CA7", &[("Digits", "1")]).await;
    // The hold loop a second and a half later, on a chosen clock rather than by sleeping.
    let started_at = app.voice.call_record("CA7").await.unwrap().started_at;
    let params = CallParams { call_sid: "CA7".into(), ..CallParams::default() };
    let later = app.voice.wait(&params, started_at + 1_500).await.unwrap();

    check(
        &(StatusCode::OK, later.to_xml()),
        expect![[
            r##"<Response><Say voice="Polly.Joanna" language="en-US">Sorry, all our agents are still busy. Please leave a message after the tone, and we will call you back.</Say><Record action="/voice/voicemail" method="POST" timeout="5" maxLength="120" finishOnKey="#" playBeep="true"/></Response>"##
        ]],
    );
    let recording = [("RecordingUrl", "https://api.twilio.com/recordings/RE1"), ("RecordingDuration", "12")];
    check(
        &webhook(&app, "/voice/voicemail", "CA7", &recording).await,
        expect![[
            r#"<Response><Say voice="Polly.Joanna" language="en-US">Thank you. We will call you back. Goodbye.</Say><Hangup/></Response>"#
        ]],
    );
    webhook(&app, "/voice/status", "CA7", &[("CallStatus", "completed")]).await;

    let (attributes, status, _) = task_of(&app, "CA7");
    assert_eq!(status, TaskStatus::Pending, "the message waits for an agent to call back");
    assert_eq!(
        attributes["voicemail"],
        serde_json::json!({"url": "https://api.twilio.com/recordings/RE1", "duration": 12})
    );
}

#[tokio::test]
async fn switchboard_call_plays_the_provider_through_the_menu_the_hold_loop_and_the_bridge() {
    let app = spawn_voice_with(|settings| settings.voice.wait_seconds = 1).await;
    set_activity(&app, "alice", "Available").await;
    let mut command = crate::helpers::switchboard_command(std::path::Path::new("."));
    command
        .args(["call", "--auth-token", AUTH_TOKEN, "--account-sid", ACCOUNT_SID, "--digits", "7,1"])
        .args(["--listen", "127.0.0.1:0", "--talk", "1", "--max-wait", "30"])
        .arg(app.url("/voice/incoming"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let caller = command.spawn().expect("switchboard call starts");

    // Alice accepts once she is offered the call (the caller holds meanwhile).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let offered = loop {
        let offered = app
            .engine
            .read(|engine| engine.tasks().any(|task| !engine.pending_reservations(task).is_empty()));
        if offered || std::time::Instant::now() > deadline {
            break offered;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(offered, "alice is offered the call");
    let call_sid = app
        .engine
        .read(|engine| engine.tasks().next().unwrap().attributes["call_sid"].as_str().unwrap().to_owned());
    accept(&app, &call_sid).await;

    let output = tokio::task::spawn_blocking(move || caller.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    // The caller's lines, in order; the agent's phone's, in order, between them.
    let of = |who: &str| stdout.lines().filter(|line| line.starts_with(who)).collect::<Vec<_>>();
    assert_eq!(
        of("+15550100001 "),
        [
            r#"+15550100001 hears "Thanks for calling. For sales, press 1. For support, press 2.""#,
            r#"+15550100001 presses "7""#,
            r#"+15550100001 hears "Sorry, that is not one of the options.""#,
            r#"+15550100001 hears "Thanks for calling. For sales, press 1. For support, press 2.""#,
            r#"+15550100001 presses "1""#,
            // Alice is offered the call at once: no place in line to announce.
            r#"+15550100001 hears "Please hold for the next available agent.""#,
            "+15550100001 is connected to client:alice",
            "+15550100001 call over: completed",
        ],
        "{stdout}"
    );
    assert_eq!(
        of("client:alice"),
        ["client:alice's phone rings", "client:alice answers", "client:alice call over: completed"],
        "{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("(the call is over: completed)"), "{stdout}");
    assert_eq!(task_of(&app, &call_sid).1, TaskStatus::Wrapping);
}

/// The real executable on a data directory, killed with SIGKILL while a caller holds, then
/// restarted: the call resumes where it was, with its one task.
#[test]
fn a_caller_on_hold_survives_a_crash_of_the_server() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tempfile::tempdir().unwrap();
    let start = || {
        let mut command = crate::helpers::switchboard_command(repo);
        command
            .arg("serve")
            .env("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0")
            .env("SWITCHBOARD_STORE_DATA_DIR", data.path())
            .env("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT_SID)
            .env("SWITCHBOARD_TWILIO_AUTH_TOKEN", AUTH_TOKEN);
        crate::helpers::SwitchboardProcess::start(command).unwrap()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reqwest::Client::new();
    let post = |process: &crate::helpers::SwitchboardProcess, path: &str, extra: &[(&str, &str)]| {
        let mut params: Vec<(String, String)> =
            [("CallSid", "CA9"), ("From", CALLER), ("To", LINE), ("CallStatus", "in-progress")]
                .iter()
                .filter(|(name, _)| !extra.iter().any(|(other, _)| other == name))
                .chain(extra)
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect();
        params.sort();
        let url = process.url(path);
        let signature = signature::sign(AUTH_TOKEN, &url, &params);
        runtime.block_on(async {
            let response =
                client.post(&url).header("X-Twilio-Signature", signature).form(&params).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.text().await.unwrap()
        })
    };
    let tasks = |process: &crate::helpers::SwitchboardProcess| -> Vec<Value> {
        runtime.block_on(async {
            let get = |url: String| client.get(url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).send();
            let workspaces: Value = get(process.url("/v1/Workspaces")).await.unwrap().json().await.unwrap();
            let workspace = workspaces["workspaces"][0]["sid"].as_str().unwrap().to_owned();
            let tasks: Value = get(process.url(&format!("/v1/Workspaces/{workspace}/Tasks")))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            tasks["tasks"].as_array().unwrap().clone()
        })
    };

    let first = start();
    let menu = post(&first, "/voice/incoming", &[]);
    let keys = action(&(StatusCode::OK, menu));
    let hold = post(&first, &keys, &[("Digits", "1")]);
    assert!(hold.contains("<Redirect method=\"POST\">/voice/wait</Redirect>"), "{hold}");
    first.signal(libc::SIGKILL);
    drop(first);

    let second = start();
    let resumed = post(&second, "/voice/wait", &[]);
    assert!(
        resumed.contains("<Pause length=\"5\"/><Redirect method=\"POST\">/voice/wait</Redirect>"),
        "{resumed}"
    );
    let retried = post(&second, &keys, &[("Digits", "1")]);
    assert!(retried.contains("/voice/wait"), "a retried route still holds: {retried}");
    let before_hang_up = tasks(&second);
    assert_eq!(before_hang_up.len(), 1, "one task: {before_hang_up:?}");
    assert_eq!(before_hang_up[0]["assignment_status"], "pending");

    post(&second, "/voice/status", &[("CallStatus", "completed")]);
    let after = tasks(&second);
    assert_eq!(
        (after[0]["assignment_status"].as_str(), after[0]["reason"].as_str()),
        (Some("canceled"), Some("caller hung up"))
    );
}

#[tokio::test]
async fn a_voicemail_whose_recording_arrives_after_the_hang_up_is_kept() {
    let app = spawn_voice_with(|settings| settings.voice.voicemail_after = 1).await;
    for call_sid in ["CA10", "CA11"] {
        let menu = webhook(&app, "/voice/incoming", call_sid, &[]).await;
        webhook(&app, &action(&menu), call_sid, &[("Digits", "1")]).await;
        let record = app.voice.call_record(call_sid).await.unwrap();
        let params = CallParams { call_sid: call_sid.into(), ..CallParams::default() };
        let offer = app.voice.wait(&params, record.started_at + 1_500).await.unwrap();
        assert!(offer.to_xml().contains("<Record"), "{}", offer.to_xml());
        // The caller hangs up to end the message: the status callback comes first.
        webhook(&app, "/voice/status", call_sid, &[("CallStatus", "completed")]).await;
        assert_eq!(
            task_of(&app, call_sid).1,
            TaskStatus::Pending,
            "not canceled while the recording may come"
        );
    }

    // CA10's recording arrives after the hang-up: it is stored with the task.
    let recording = [("RecordingUrl", "https://api.twilio.com/recordings/RE10"), ("RecordingDuration", "4")];
    webhook(&app, "/voice/voicemail", "CA10", &recording).await;
    assert_eq!(task_of(&app, "CA10").0["voicemail"]["url"], "https://api.twilio.com/recordings/RE10");
    assert_eq!(app.voice.call_record("CA10").await, None, "nothing more will come for it");

    // CA11's never does: once voice.abandon_after has passed, its task is canceled.
    let stage = app.voice.call_record("CA11").await.unwrap().stage;
    let Stage::Voicemail { left: false, ended_at: Some(ended) } = stage else { panic!("{stage:?}") };
    app.voice.sweep(ended + 61_000).await.unwrap();
    assert_eq!(task_of(&app, "CA11").1, TaskStatus::Canceled);
    assert_eq!(task_of(&app, "CA10").1, TaskStatus::Pending, "the message waits for a call-back");
}

#[tokio::test]
async fn a_caller_who_hangs_up_while_the_agent_rings_does_not_count_against_the_agent() {
    let app = spawn_voice().await;
    set_activity(&app, "alice", "Available").await;
    let menu = webhook(&app, "/voice/incoming", "CA12", &[]).await;
    webhook(&app, &action(&menu), "CA12", &[("Digits", "1")]).await;
    accept(&app, "CA12").await;
    webhook(&app, "/voice/wait", "CA12", &[]).await;

    let answer = webhook(&app, "/voice/dial-status", "CA12", &[("DialCallStatus", "canceled")]).await;

    check(&answer, expect![[r#"<Response><Hangup/></Response>"#]]);
    assert_eq!(task_of(&app, "CA12").1, TaskStatus::Wrapping);
    let alice = app
        .engine
        .read(|engine| engine.worker_activity(engine.worker_by_name("alice").unwrap()).friendly_name.clone());
    assert_eq!(alice, "Available");
}
