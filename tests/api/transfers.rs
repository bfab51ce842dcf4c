//! Transfers of calls bridged in a conference, on the real server with the provider emulator
//! (a process of its own) as the provider: to an agent warm (completed, canceled, rejected),
//! to a queue cold, and to an outside number; checked on the emulator (who hears whom) and
//! through the API (tasks, statuses, events).

use reqwest::{Method, StatusCode};
use serde_json::Value;
use switchboard::routing::TaskStatus;

use crate::emulator::{Provider, conference_bridging, heard};
use crate::helpers::{SignedIn, TestApp};
use crate::taskrouter::Api;
use crate::voice::set_activity;

/// An agent signed in on the agent page's API.
pub(crate) struct Agent<'a> {
    pub(crate) app: &'a TestApp,
    pub(crate) session: SignedIn,
}

impl<'a> Agent<'a> {
    pub(crate) async fn sign_in(app: &'a TestApp, name: &str) -> Agent<'a> {
        let worker = worker_sid(app, name);
        let session = SignedIn::agent(&app.client, &app.url(""), &worker, name).await;
        Agent { app, session }
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.session.send(&self.app.client, &self.app.url(""), Method::POST, path, form).await
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.session.send(&self.app.client, &self.app.url(""), Method::GET, path, &[]).await
    }

    /// Accepts this agent's offer of `task`, waiting for it.
    pub(crate) async fn accept(&self, task: &str) {
        let reservation = until(self.app, "the offer", |engine| {
            let task = engine.task(task.parse().ok()?)?;
            engine.pending_reservations(task).first().map(|reservation| reservation.sid.to_string())
        })
        .await;
        let (status, body) = self
            .post(&format!("/agent/api/reservations/{reservation}"), &[("ReservationStatus", "accepted")])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Transfers the call of `task` to `to` (`mode` cold or warm): the answer.
    async fn transfer(&self, task: &str, to: &str, mode: &str) -> (StatusCode, Value) {
        self.post(&format!("/agent/api/tasks/{task}/transfer"), &[("To", to), ("Mode", mode)]).await
    }

    /// Waits until the agent page's state satisfies `done`.
    pub(crate) async fn until_state(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (_, state) = self.get("/agent/api/state").await;
            if done(&state) {
                return state;
            }
            assert!(std::time::Instant::now() < deadline, "waited in vain for {what}: {state:#}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn call_action(&self, task: &str, action: &str) -> (StatusCode, Value) {
        self.post(&format!("/agent/api/tasks/{task}/call"), &[("Action", action)]).await
    }
}

pub(crate) fn worker_sid(app: &TestApp, name: &str) -> String {
    app.engine.read(|engine| engine.worker_by_name(name).unwrap().sid.to_string())
}

/// Waits (generously, for slow machines) until `found` finds something in the engine.
pub(crate) async fn until<T>(
    app: &TestApp,
    what: &str,
    found: impl Fn(&switchboard::routing::Engine) -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(found) = app.engine.read(&found) {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "waited in vain for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The task of `call` that is `status` now (a transferred call has several).
pub(crate) async fn task_with_status(app: &TestApp, call: &str, status: TaskStatus) -> String {
    until(app, &format!("a task of {call} {}", status.as_str()), |engine| {
        let mut tasks: Vec<_> = engine
            .tasks()
            .filter(|task| task.attributes["call_sid"] == call && task.status == status)
            .collect();
        tasks.sort_by_key(|task| task.created_at);
        tasks.last().map(|task| task.sid.to_string())
    })
    .await
}

/// The status of `task` now.
pub(crate) fn status_of(app: &TestApp, task: &str) -> TaskStatus {
    app.engine.read(|engine| engine.task(task.parse().unwrap()).unwrap().status)
}

/// A caller for Sales (presses 1) whom `agent` accepted and talks with: the call and its task.
pub(crate) async fn a_sales_call_with(
    app: &TestApp,
    provider: &Provider,
    agent: &Agent<'_>,
) -> (String, String) {
    let call = provider.call(&["1"]).await;
    let task = task_with_status(app, &call, TaskStatus::Reserved).await;
    agent.accept(&task).await;
    until_hearing(provider, &task, &call, &["agent"]).await;
    (call, task)
}

/// Waits until, in the conference named `room`, the caller `call` hears exactly the parties
/// named in `hears` (`agent` for any agent's leg, or a call SID) and no more; answers the
/// conference.
pub(crate) async fn until_hearing(provider: &Provider, room: &str, call: &str, hears: &[&str]) -> Value {
    provider
        .wait_for_conference(&format!("{call} hearing {hears:?} in {room}"), |conference| {
            if conference["friendly_name"] != room {
                return false;
            }
            let participants = conference["participants"].as_array().cloned().unwrap_or_default();
            let caller = participants.iter().find(|p| p["call_sid"] == call);
            let heard: Vec<&str> = caller
                .and_then(|caller| caller["hears"].as_array())
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            heard.len() == hears.len()
                && hears.iter().all(|wanted| *wanted == "agent" || heard.contains(wanted))
        })
        .await
}

/// Who each participant of `conference` hears, by label (`customer`, `agent-WR…`), sorted.
pub(crate) fn hearing(conference: &Value) -> Vec<(String, Vec<String>)> {
    let participants = conference["participants"].as_array().cloned().unwrap_or_default();
    let label_of = |call: &str| {
        participants
            .iter()
            .find(|p| p["call_sid"] == call)
            .and_then(|p| p["label"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let mut hearing: Vec<(String, Vec<String>)> = participants
        .iter()
        .map(|p| {
            let mut hears: Vec<String> =
                p["hears"].as_array().into_iter().flatten().filter_map(Value::as_str).map(label_of).collect();
            hears.sort();
            (p["label"].as_str().unwrap_or("?").to_owned(), hears)
        })
        .collect();
    hearing.sort();
    hearing
}

/// The types of the events about `task`, oldest first.
async fn events_of(api: &Api<'_>, task: &str) -> Vec<String> {
    let events = api.get(&format!("/Events?TaskSid={task}&PageSize=100")).await;
    let mut types: Vec<(i64, String)> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|event| {
            (
                event["event_date_ms"].as_i64().unwrap_or(0),
                event["event_type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    types.sort();
    types.into_iter().map(|(_, kind)| kind).filter(|kind| kind.starts_with("task.transfer")).collect()
}

#[tokio::test]
async fn a_warm_transfer_to_an_agent_consults_on_hold_then_leaves_the_caller_with_them() {
    let (app, provider) = conference_bridging().await;
    let api = Api::new(&app).await;
    let (alice, bob) = (Agent::sign_in(&app, "alice").await, Agent::sign_in(&app, "bob").await);
    set_activity(&app, "alice", "Available").await;
    let (call, first) = a_sales_call_with(&app, &provider, &alice).await;

    // Bob is offline: the dialog says he cannot take it, and the transfer is refused.
    let (_, targets) = alice.get(&format!("/agent/api/tasks/{first}/transfer")).await;
    let listed = targets["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|worker| worker["friendly_name"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(
        (listed["can_take"].as_bool(), listed["why_not"].as_str()),
        (Some(false), Some(r#"activity "Offline" is not an available activity"#))
    );
    let bob_sid = worker_sid(&app, "bob");
    let (status, refused) = alice.transfer(&first, &bob_sid, "warm").await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(
        refused["message"],
        r#"bob cannot take it now: activity "Offline" is not an available activity"#
    );
    // Nor can bob, whose call it is not, transfer it or end it.
    let (status, _) = bob.transfer(&first, &bob_sid, "warm").await;
    let (hold, _) = bob.call_action(&first, "hangup").await;
    let (read, _) = bob.get(&format!("/agent/api/tasks/{first}/transfer")).await;
    let (call_out, _) = bob.post(&format!("/agent/api/tasks/{first}/call-out"), &[]).await;
    assert_eq!([status, hold, read, call_out], [StatusCode::FORBIDDEN; 4]);

    // Bob available: a warm transfer. The caller holds while alice and bob talk.
    set_activity(&app, "bob", "Available").await;
    let (status, state) = alice.transfer(&first, &bob_sid, "warm").await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["tasks"][0]["call"]["state"], "transferring");
    let second = task_with_status(&app, &call, TaskStatus::Reserved).await;
    bob.accept(&second).await;
    let consulting = provider
        .wait_for_conference("alice and bob consulting", |conference| {
            conference["friendly_name"] == first.as_str()
                && conference["participants"].as_array().is_some_and(|p| p.len() == 3)
                && hearing(conference)
                    .iter()
                    .any(|(label, hears)| label.starts_with("agent-") && hears.len() == 1)
        })
        .await;
    let (alice_label, bob_label) = (agent_label(&app, &first), agent_label(&app, &second));
    assert_eq!(
        hearing(&consulting),
        sorted(vec![
            (alice_label.clone(), vec![bob_label.clone()]),
            (bob_label.clone(), vec![alice_label.clone()]),
            ("customer".to_owned(), vec![]),
        ]),
        "{consulting:#}"
    );
    // Her page says bob is on the line; she leaves them together.
    alice
        .until_state("bob on the line", |state| state["tasks"][0]["call"]["transfer"]["joined"] == true)
        .await;
    let (status, state) = alice.call_action(&first, "complete-transfer").await;
    assert_eq!(status, StatusCode::OK, "{state}");
    let together = until_hearing(&provider, &first, &call, &["agent"]).await;
    assert_eq!(
        hearing(&together),
        sorted(vec![
            (bob_label.clone(), vec!["customer".to_owned()]),
            ("customer".to_owned(), vec![bob_label])
        ]),
        "{together:#}"
    );
    assert_eq!(
        (status_of(&app, &first), status_of(&app, &second)),
        (TaskStatus::Wrapping, TaskStatus::Assigned)
    );
    assert_eq!(events_of(&api, &first).await, ["task.transfer-initiated", "task.transfer-completed"]);
    let transferred = api.get(&format!("/Tasks/{second}")).await;
    let attributes: Value = serde_json::from_str(transferred["attributes"].as_str().unwrap()).unwrap();
    assert_eq!(
        (attributes["conversations"]["preceded_by"].as_str(), attributes["transferTargetType"].as_str()),
        (Some("Transfer to Agent"), Some("worker"))
    );
    app.shut_down().await.unwrap();
}

#[tokio::test]
async fn a_cold_transfer_to_a_queue_holds_the_caller_until_an_agent_there_joins() {
    let (app, provider) = conference_bridging().await;
    let api = Api::new(&app).await;
    let (alice, bob) = (Agent::sign_in(&app, "alice").await, Agent::sign_in(&app, "bob").await);
    set_activity(&app, "alice", "Available").await;
    let (call, first) = a_sales_call_with(&app, &provider, &alice).await;
    let support = api.find("/TaskQueues", "task_queues", "friendly_name", "Support").await;

    let (status, state) = alice.transfer(&first, &support, "cold").await;
    assert_eq!(status, StatusCode::OK, "{state}");
    // Alice is out of the call at once, her task wrapping; the caller holds alone.
    let alone = until_hearing(&provider, &first, &call, &[]).await;
    assert_eq!(alone["participants"].as_array().map(Vec::len), Some(1), "{alone:#}");
    assert_eq!(status_of(&app, &first), TaskStatus::Wrapping);
    let second = task_with_status(&app, &call, TaskStatus::Pending).await;
    assert_eq!(queue_of(&app, &second), "Support");

    set_activity(&app, "bob", "Available").await;
    bob.accept(&second).await;
    until_hearing(&provider, &first, &call, &["agent"]).await;
    let summary = provider.summary(&call).await;
    assert!(heard(&summary, "is taken off hold"), "{summary:#}");
    assert_eq!(events_of(&api, &first).await, ["task.transfer-initiated", "task.transfer-completed"]);
    let statistics = api.get("/CumulativeStatistics").await;
    assert_eq!(statistics["tasks_transferred"], 1);
    app.shut_down().await.unwrap();
}

#[tokio::test]
async fn a_canceled_or_rejected_warm_transfer_comes_back_to_the_first_agent() {
    let (app, provider) = conference_bridging().await;
    let api = Api::new(&app).await;
    let (alice, bob) = (Agent::sign_in(&app, "alice").await, Agent::sign_in(&app, "bob").await);
    set_activity(&app, "alice", "Available").await;
    let (call, first) = a_sales_call_with(&app, &provider, &alice).await;
    set_activity(&app, "bob", "Available").await;
    let bob_sid = worker_sid(&app, "bob");

    // Canceled before bob answers: the caller is back with alice.
    let (status, _) = alice.transfer(&first, &bob_sid, "warm").await;
    assert_eq!(status, StatusCode::OK);
    let canceled = task_with_status(&app, &call, TaskStatus::Reserved).await;
    cancel_and_talk_again(&alice, &provider, &first, &call).await;
    assert_eq!(status_of(&app, &canceled), TaskStatus::Canceled);

    // Rejected by bob: the same.
    let (status, _) = alice.transfer(&first, &bob_sid, "warm").await;
    assert_eq!(status, StatusCode::OK);
    let rejected = task_with_status(&app, &call, TaskStatus::Reserved).await;
    let reservation = app.engine.read(|engine| {
        let task = engine.task(rejected.parse().unwrap()).unwrap();
        engine.pending_reservations(task)[0].sid.to_string()
    });
    let (status, _) = bob
        .post(&format!("/agent/api/reservations/{reservation}"), &[("ReservationStatus", "rejected")])
        .await;
    assert_eq!(status, StatusCode::OK);
    let back = until_hearing(&provider, &first, &call, &["agent"]).await;
    assert_eq!(hearing(&back).len(), 2, "{back:#}");
    assert_eq!(
        (status_of(&app, &first), status_of(&app, &rejected)),
        (TaskStatus::Assigned, TaskStatus::Canceled)
    );
    let (_, state) = alice.get("/agent/api/state").await;
    assert_eq!(state["tasks"][0]["call"]["state"], "talking", "{state}");
    assert_eq!(
        events_of(&api, &first).await,
        [
            "task.transfer-initiated",
            "task.transfer-canceled",
            "task.transfer-initiated",
            "task.transfer-failed"
        ]
    );

    // An outside number, warm, that never answers: alice cannot leave the caller with it, and
    // cancels.
    provider.script_phone("+15550109998", serde_json::json!({"answer_after": null})).await;
    let (status, state) = alice.transfer(&first, "+15550109998", "warm").await;
    assert_eq!(
        (status, &state["tasks"][0]["call"]["transfer"]["joined"]),
        (StatusCode::OK, &Value::Bool(false)),
        "{state}"
    );
    let (status, refused) = alice.call_action(&first, "complete-transfer").await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    cancel_and_talk_again(&alice, &provider, &first, &call).await;

    // An outside number, cold: the caller is dialled through to it, alice's task wraps up.
    let (status, state) = alice.transfer(&first, "+15550109999", "cold").await;
    assert_eq!(status, StatusCode::OK, "{state}");
    let summary =
        provider.wait_for(&call, "the caller dialled out", |summary| heard(summary, "+15550109999")).await;
    assert!(heard(&summary, "+15550109999"), "{summary:#}");
    assert_eq!(status_of(&app, &first), TaskStatus::Wrapping);
    app.shut_down().await.unwrap();
}

/// `agent` cancels the transfer of `task`'s call; the caller is back with them.
async fn cancel_and_talk_again(agent: &Agent<'_>, provider: &Provider, task: &str, call: &str) {
    let (status, state) = agent.call_action(task, "cancel-transfer").await;
    assert_eq!(
        (status, state["tasks"][0]["call"]["state"].as_str()),
        (StatusCode::OK, Some("talking")),
        "{state}"
    );
    until_hearing(provider, task, call, &["agent"]).await;
}

/// The conference label of the agent who accepted `task`.
fn agent_label(app: &TestApp, task: &str) -> String {
    app.engine.read(|engine| {
        let task = engine.task(task.parse().unwrap()).unwrap();
        let accepted = task.reservations.iter().rev().find_map(|sid| engine.reservation(*sid)).unwrap();
        format!("agent-{}", accepted.sid)
    })
}

/// The queue `task` is in, by name.
fn queue_of(app: &TestApp, task: &str) -> String {
    app.engine.read(|engine| {
        let task = engine.task(task.parse().unwrap()).unwrap();
        engine.task_queue(task).map(|queue| queue.friendly_name.clone()).unwrap_or_default()
    })
}

fn sorted(mut hearing: Vec<(String, Vec<String>)>) -> Vec<(String, Vec<String>)> {
    hearing.sort();
    hearing
}

#[tokio::test]
async fn an_agent_calls_a_number_and_calls_a_voicemail_back_each_in_a_conference_like_an_inbound_call() {
    let (app, provider) = crate::emulator::conference_bridging_with("50", |settings| {
        settings.voice.caller_id = "+15550100200".into();
    })
    .await;
    let api = Api::new(&app).await;
    let alice = Agent::sign_in(&app, "alice").await;
    set_activity(&app, "alice", "Available").await;

    // A number that is not one is refused; a real one rings, answers and joins alice.
    let (status, refused) = alice.post("/agent/api/calls", &[("To", "555-0107")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, state) = alice.post("/agent/api/calls", &[("To", "+15550107777")]).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    let task = state["tasks"][0]["task_sid"].as_str().unwrap().to_owned();
    let call = until(&app, "the outbound call's SID", |engine| {
        engine.task(task.parse().ok()?)?.attributes["call_sid"].as_str().map(str::to_owned)
    })
    .await;
    let talking = until_hearing(&provider, &task, &call, &["agent"]).await;
    assert_eq!(talking["participants"].as_array().map(Vec::len), Some(2), "{talking:#}");
    let summary = provider.summary(&call).await;
    assert_eq!(
        (summary["to"].as_str(), summary["from"].as_str()),
        (Some("+15550107777"), Some("+15550100200"))
    );
    let fetched = api.get(&format!("/Tasks/{task}")).await;
    assert_eq!(
        (fetched["assignment_status"].as_str(), fetched["task_channel_unique_name"].as_str()),
        (Some("assigned"), Some("voice"))
    );
    // Held, then hung up from the page, as an inbound call.
    alice.until_state("the call talking", |state| state["tasks"][0]["call"]["state"] == "talking").await;
    let (status, _) = alice.call_action(&task, "hold").await;
    assert_eq!(status, StatusCode::OK);
    until_hearing(&provider, &task, &call, &[]).await;
    let (status, _) = alice.call_action(&task, "hangup").await;
    assert_eq!(status, StatusCode::OK);
    provider.wait_for(&call, "the customer's call to end", |summary| summary["status"] == "completed").await;
    until(&app, "the outbound task wrapping", |engine| {
        (engine.task(task.parse().ok()?)?.status == TaskStatus::Wrapping).then_some(())
    })
    .await;
    api.post(&format!("/Tasks/{task}"), &[("AssignmentStatus", "completed"), ("Reason", "done")]).await;

    // A voicemail: alice accepts it and calls the customer back with one request.
    let workflow = crate::taskrouter::sales_and_support(&app);
    let attributes = r#"{"skillsNeeded": ["Sales"], "from": "+15550108888", "to": "+15550100200", "voicemail": {"url": "https://example.com/m.wav"}}"#;
    let voicemail = api
        .post("/Tasks", &[("WorkflowSid", &workflow), ("Attributes", attributes), ("TaskChannel", "voice")])
        .await;
    let voicemail = voicemail["sid"].as_str().unwrap().to_owned();
    alice.accept(&voicemail).await;
    let (status, state) = alice.post(&format!("/agent/api/tasks/{voicemail}/call-out"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    let call_back = until(&app, "the call back's SID", |engine| {
        engine.task(voicemail.parse().ok()?)?.attributes["call_sid"].as_str().map(str::to_owned)
    })
    .await;
    until_hearing(&provider, &voicemail, &call_back, &["agent"]).await;
    assert_eq!(provider.summary(&call_back).await["to"], "+15550108888");
    // A second call out on a task with a call in progress is refused.
    let (status, refused) = alice.post(&format!("/agent/api/tasks/{voicemail}/call-out"), &[]).await;
    assert_eq!(
        (status, refused["message"].as_str()),
        (StatusCode::CONFLICT, Some("the task has a call in progress"))
    );
    app.shut_down().await.unwrap();
}

#[tokio::test]
async fn a_callback_keeps_its_place_ahead_of_later_callers_and_is_tried_again_until_answered() {
    let ivr = crate::helpers::ivr_with_callbacks();
    let (app, provider) = crate::emulator::conference_bridging_with("50", |settings| {
        settings.voice.ivr_dir = ivr.path().to_owned();
    })
    .await;
    let alice = Agent::sign_in(&app, "alice").await;

    // The first caller asks to be called back (1 for Sales, then 1 on hold) and hangs up.
    let asked = provider.call_from("+15550100011", &["1", "1"]).await;
    let summary = provider
        .wait_for(&asked, "the first caller thanked", |summary| summary["status"] == "completed")
        .await;
    assert!(heard(&summary, "We will call you back"), "{summary:#}");
    let callback = until(&app, "the callback request", |engine| {
        let task = engine.tasks().find(|task| task.attributes["call_sid"] == asked.as_str())?;
        (task.attributes["callback"]["status"] == "waiting" && task.status == TaskStatus::Pending)
            .then(|| task.sid.to_string())
    })
    .await;
    // A later caller waits on hold.
    let later = provider.call_from("+15550100012", &["1"]).await;
    until(&app, "the later caller in line", |engine| {
        engine
            .tasks()
            .find(|task| task.attributes["call_sid"] == later.as_str() && task.status == TaskStatus::Pending)
            .map(|_| ())
    })
    .await;

    // Alice available: the callback is offered first. Its customer is busy the first time.
    provider.script_phone("+15550100011", serde_json::json!({"busy": true})).await;
    set_activity(&app, "alice", "Available").await;
    let offered = until(&app, "an offer to alice", |engine| {
        let alice = engine.worker_by_name("alice")?;
        engine
            .reservations()
            .find(|r| {
                r.status == switchboard::routing::ReservationStatus::Pending
                    && engine.reservation_worker(r).sid == alice.sid
            })
            .map(|r| r.task.to_string())
    })
    .await;
    assert_eq!(offered, callback, "the callback keeps its place ahead of the later caller");
    alice.accept(&callback).await;
    let first_try = until(&app, "the first try unanswered", |engine| {
        let attributes = &engine.task(callback.parse().ok()?)?.attributes;
        (attributes["callback"]["status"] == "retry")
            .then(|| attributes["call_sid"].as_str().map(str::to_owned))
            .flatten()
    })
    .await;
    provider.script_phone("+15550100011", serde_json::json!({"answer_after": 1.0})).await;
    let second = until(&app, "the second try", |engine| {
        let attributes = &engine.task(callback.parse().ok()?)?.attributes;
        let call = attributes["call_sid"].as_str().filter(|call| *call != first_try)?;
        (attributes["callback"]["attempts"] == 2).then(|| call.to_owned())
    })
    .await;
    until_hearing(&provider, &callback, &second, &["agent"]).await;
    let summary = provider.summary(&second).await;
    assert_eq!(
        (summary["to"].as_str(), summary["from"].as_str()),
        (Some("+15550100011"), Some("+15550100200"))
    );
    assert_eq!(status_of(&app, &callback), TaskStatus::Assigned);
    app.shut_down().await.unwrap();
}
