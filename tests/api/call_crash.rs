//! SIGKILL during conference bridging: the real server process killed at each step of a call
//! (just after the accept, while the agent's phone rings, with the caller on hold, while
//! recording) and started again on the same data, with the emulator, a process of its own, as
//! the provider throughout. Callbacks sent while the server was down are lost, as with Twilio;
//! every call still carries on, because the restart asks the provider where each one stands.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::emulator::Provider;
use crate::helpers::{SignedIn, SwitchboardProcess, fixed_config, serve_in};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN};

/// Time in the emulator runs this many times as fast: an agent's phone set to ring for 30 s
/// rings for 3 s, long enough to kill and restart the server meanwhile.
const TIME_SCALE: &str = "10";

/// A contact center whose server can be killed: the server's process, the emulator in front
/// of it, and alice signed in on the agent page.
struct Center {
    dir: tempfile::TempDir,
    server: SwitchboardProcess,
    provider: Provider,
    client: reqwest::Client,
    workspace: String,
    alice: String,
    agent: SignedIn,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Center {
    async fn start() -> Center {
        Center::start_with_ivr(concat!(env!("CARGO_MANIFEST_DIR"), "/ivr")).await
    }

    /// The same, the IVR flows from the folder `ivr`.
    async fn start_with_ivr(ivr: &str) -> Center {
        let dir = tempfile::tempdir().unwrap();
        let (port, provider_port) = (free_port(), free_port());
        // The hold loop's pause (60 s, 6 s here) outlasts a restart: a caller not yet moved when
        // the server died is not polling a dead server meanwhile.
        let config = format!(
            "{}\n[voice]\nivr_dir = \"{ivr}\"\nbridge = \"conference\"\napi_base = \"http://127.0.0.1:{provider_port}\"\nwait_seconds = 60\nabandon_after = 120\ndial_timeout = 60\n",
            fixed_config(port, ACCOUNT_SID, AUTH_TOKEN)
        );
        std::fs::write(dir.path().join("switchboard.toml"), config).unwrap();
        let server = serve_in(dir.path());
        let provider =
            Provider::start_for(&server.url(""), &format!("127.0.0.1:{provider_port}"), TIME_SCALE);
        let client = reqwest::Client::new();
        let workspaces = rest(&client, &server.url("/v1/Workspaces"), Method::GET, &[]).await;
        let workspace = workspaces["workspaces"][0]["sid"].as_str().unwrap().to_owned();
        let mut center = Center {
            dir,
            server,
            provider,
            client,
            workspace,
            alice: String::new(),
            agent: SignedIn { cookie: String::new(), csrf: String::new() },
        };
        let alice = center.rest(Method::GET, "/Workers?FriendlyName=alice", &[]).await;
        center.alice = alice["workers"][0]["sid"].as_str().unwrap().to_owned();
        let available = center.rest(Method::GET, "/Activities?FriendlyName=Available", &[]).await;
        let available = available["activities"][0]["sid"].as_str().unwrap().to_owned();
        center
            .rest(Method::POST, &format!("/Workers/{}", center.alice), &[("ActivitySid", &available)])
            .await;
        center.agent = SignedIn::agent(&center.client, &center.server.url(""), &center.alice, "alice").await;
        center
    }

    /// SIGKILL, then the same server started again on the same data and port.
    fn kill_and_restart(&mut self) {
        self.server.signal(libc::SIGKILL);
        assert!(self.server.wait(Duration::from_secs(10)).is_some(), "the server died");
        self.server = serve_in(self.dir.path());
        // Pooled connections went with the old process.
        self.client = reqwest::Client::new();
    }

    /// `method` on `/v1/Workspaces/{WS}{path}` as the account; the answer's JSON.
    async fn rest(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Value {
        let url = self.server.url(&format!("/v1/Workspaces/{}{path}", self.workspace));
        rest(&self.client, &url, method, form).await
    }

    /// A caller rings and presses 1 (Sales); answers their CallSid and task, once alice is
    /// offered it.
    async fn offered_call(&self) -> (String, String, String) {
        let call = self.provider.call(&["1"]).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let tasks = self.rest(Method::GET, "/Tasks?PageSize=100", &[]).await;
            let task = tasks["tasks"].as_array().unwrap().iter().find(|task| {
                let attributes: Value = serde_json::from_str(task["attributes"].as_str().unwrap()).unwrap();
                attributes["call_sid"] == call.as_str()
            });
            if let Some(task) = task.and_then(|task| task["sid"].as_str()) {
                let path = format!("/Tasks/{task}/Reservations?ReservationStatus=pending");
                let pending = self.rest(Method::GET, &path, &[]).await;
                if let Some(reservation) = pending["reservations"][0]["sid"].as_str() {
                    return (call, task.to_owned(), reservation.to_owned());
                }
            }
            assert!(Instant::now() < deadline, "the call of {call} was never offered to alice");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn accept(&self, task: &str, reservation: &str) {
        let path = format!("/Tasks/{task}/Reservations/{reservation}");
        self.rest(Method::POST, &path, &[("ReservationStatus", "accepted")]).await;
    }

    /// The agent page's view of the call of `task` (its `call`), once it satisfies `done`.
    async fn call_once(&self, task: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state: Value = self
                .client
                .get(self.server.url("/agent/api/state"))
                .header("cookie", &self.agent.cookie)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let found = state["tasks"].as_array().unwrap().iter().find(|item| item["task_sid"] == task);
            let call = found.map_or(Value::Null, |item| item["call"].clone());
            if done(&call) {
                return call;
            }
            assert!(Instant::now() < deadline, "waited in vain for {what}: {state:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The agent's control of the call of `task`, as the agent page sends it.
    async fn control(&self, task: &str, action: &str) -> StatusCode {
        let response = self
            .client
            .post(self.server.url(&format!("/agent/api/tasks/{task}/call")))
            .header("cookie", &self.agent.cookie)
            .header("x-csrf-token", &self.agent.csrf)
            .form(&[("Action", action)])
            .send()
            .await
            .unwrap();
        response.status()
    }

    /// Waits for the task to be `status`, then completes it (alice takes the next call).
    async fn until_task_then_complete(&self, task: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.rest(Method::GET, &format!("/Tasks/{task}"), &[]).await;
            if found["assignment_status"] == status {
                self.rest(
                    Method::POST,
                    &format!("/Tasks/{task}"),
                    &[("AssignmentStatus", "completed"), ("Reason", "call handled")],
                )
                .await;
                return found;
            }
            assert!(Instant::now() < deadline, "the task never became {status}: {found:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the conference named after `task` has the caller and the agent, both talking.
    async fn both_in_conference(&self, task: &str) -> bool {
        let conferences = self.provider.conferences().await;
        conferences.iter().any(|conference| {
            conference["friendly_name"] == task
                && conference["status"] == "in-progress"
                && conference["participants"].as_array().is_some_and(|p| p.len() == 2)
        })
    }
}

async fn rest(client: &reqwest::Client, url: &str, method: Method, form: &[(&str, &str)]) -> Value {
    let mut request = client.request(method.clone(), url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
    if !form.is_empty() {
        request = request.form(form);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert!(status.is_success(), "{method} {url} {form:?}: {status} {body}");
    body
}

fn talking(call: &Value) -> bool {
    call["state"] == "talking"
}

#[tokio::test]
async fn a_server_killed_at_each_step_of_a_bridged_call_carries_every_call_on_after_its_restart() {
    let mut center = Center::start().await;

    // Killed the moment the accept is acknowledged: the caller is moved and alice called in
    // before or after the restart, never twice.
    let (call, task, reservation) = center.offered_call().await;
    center.accept(&task, &reservation).await;
    center.kill_and_restart();
    let after_accept = center.call_once(&task, "the talk after the accept", talking).await;
    let in_conference = center.both_in_conference(&task).await;
    center.provider.hang_up(&call).await;
    center.until_task_then_complete(&task, "wrapping").await;

    // Killed while alice's phone rings (30 s, 3 s here): she answers during or after the
    // restart, and the talk is found either way.
    center.provider.script_phone("client:alice", json!({"answer_after": 30.0})).await;
    let (call, task, reservation) = center.offered_call().await;
    center.accept(&task, &reservation).await;
    let ringing = center.call_once(&task, "alice's phone ringing", |call| call["state"] == "ringing").await;
    center.kill_and_restart();
    let after_ringing = center.call_once(&task, "the talk after the ringing", talking).await;
    let mute = center.control(&task, "mute").await;
    center.provider.hang_up(&call).await;
    center.until_task_then_complete(&task, "wrapping").await;
    center.provider.script_phone("client:alice", json!({"answer_after": 1.0})).await;

    // Killed with the caller on hold: still on hold after the restart, and resumed.
    let (call, task, reservation) = center.offered_call().await;
    center.accept(&task, &reservation).await;
    center.call_once(&task, "the talk", talking).await;
    let hold = center.control(&task, "hold").await;
    center.call_once(&task, "the caller on hold", |call| call["on_hold"] == true).await;
    center.kill_and_restart();
    let held_after = center.call_once(&task, "the call after the restart", talking).await;
    let resume = center.control(&task, "resume").await;
    let resume_again = center.control(&task, "resume").await;
    let caller = center.provider.wait_for(&call, "the caller off hold", |summary| {
        crate::emulator::heard(summary, "is taken off hold")
    });
    let caller = caller.await;
    center.provider.hang_up(&call).await;
    center.until_task_then_complete(&task, "wrapping").await;

    // Killed while recording: the recording goes on, is stopped after the restart, and is
    // stored with the task.
    let (call, task, reservation) = center.offered_call().await;
    center.accept(&task, &reservation).await;
    center.call_once(&task, "the talk", talking).await;
    let record = center.control(&task, "record").await;
    center.kill_and_restart();
    let recording_after = center.call_once(&task, "the recording after the restart", talking).await;
    let stop = center.control(&task, "stop-recording").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let media = loop {
        let found = center.rest(Method::GET, &format!("/Tasks/{task}"), &[]).await;
        let attributes: Value = serde_json::from_str(found["attributes"].as_str().unwrap()).unwrap();
        if let Some(media) = attributes["conversations"]["media"].as_array().filter(|m| !m.is_empty()) {
            break media.clone();
        }
        assert!(Instant::now() < deadline, "the recording was never stored: {attributes:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    center.provider.hang_up(&call).await;
    center.until_task_then_complete(&task, "wrapping").await;

    assert!(in_conference, "the caller and alice in one conference: {after_accept}");
    assert_eq!(ringing["state"], "ringing");
    assert_eq!((after_ringing["state"].as_str(), mute), (Some("talking"), StatusCode::OK));
    assert_eq!((hold, held_after["on_hold"].as_bool()), (StatusCode::OK, Some(true)));
    assert_eq!((resume, resume_again), (StatusCode::OK, StatusCode::CONFLICT));
    assert!(crate::emulator::heard(&caller, "is put on hold"), "{caller:#}");
    assert_eq!(
        (record, recording_after["recording"].as_bool(), stop),
        (StatusCode::OK, Some(true), StatusCode::OK)
    );
    assert_eq!(media[0]["type"], "VoiceRecording", "{media:#?}");
    let calls: Value =
        center.client.get(center.provider.url("/emulator/calls")).send().await.unwrap().json().await.unwrap();
    let alice_rung =
        calls["calls"].as_array().unwrap().iter().filter(|call| call["to"] == "client:alice").count();
    assert_eq!(alice_rung, 4, "alice was called once per call, never twice: {calls:#}");
}

impl Center {
    /// `name` made Available and signed in on the agent page's API.
    async fn available_agent(&self, name: &str) -> (String, SignedIn) {
        let found = self.rest(Method::GET, &format!("/Workers?FriendlyName={name}"), &[]).await;
        let worker = found["workers"][0]["sid"].as_str().unwrap().to_owned();
        let available = self.rest(Method::GET, "/Activities?FriendlyName=Available", &[]).await;
        let available = available["activities"][0]["sid"].as_str().unwrap().to_owned();
        self.rest(Method::POST, &format!("/Workers/{worker}"), &[("ActivitySid", &available)]).await;
        let session = SignedIn::agent(&self.client, &self.server.url(""), &worker, name).await;
        (worker, session)
    }

    /// `session`'s POST to the agent page's API: the status and the state answered.
    async fn as_agent(&self, session: &SignedIn, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        session.send(&self.client, &self.server.url(""), Method::POST, path, form).await
    }

    /// Whether a call to `address` rings now.
    async fn rings(&self, address: &str) -> bool {
        let calls: Value =
            self.client.get(self.provider.url("/emulator/calls")).send().await.unwrap().json().await.unwrap();
        calls["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|call| call["to"] == address && call["status"] == "ringing")
    }

    /// The tasks of `call`, oldest first: (SID, status).
    async fn tasks_of(&self, call: &str) -> Vec<(String, String)> {
        let tasks = self.rest(Method::GET, "/Tasks?PageSize=100", &[]).await;
        let mut found: Vec<(String, String, String)> = tasks["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|task| {
                let attributes: Value = serde_json::from_str(task["attributes"].as_str().unwrap()).unwrap();
                attributes["call_sid"] == call
            })
            .map(|task| {
                let field = |name: &str| task[name].as_str().unwrap_or_default().to_owned();
                (field("sid"), field("assignment_status"), field("date_created"))
            })
            .collect();
        found.sort_by(|a, b| (&a.2, &a.0).cmp(&(&b.2, &b.0)));
        found.into_iter().map(|(sid, status, _)| (sid, status)).collect()
    }
}

#[tokio::test]
async fn a_server_killed_during_a_warm_transfer_carries_it_on_and_leaves_nobody_alone() {
    let mut center = Center::start().await;
    let (call, first, reservation) = center.offered_call().await;
    center.accept(&first, &reservation).await;
    center.call_once(&first, "the talk", talking).await;
    let (bob, _) = center.available_agent("bob").await;
    let alice_session = SignedIn { cookie: center.agent.cookie.clone(), csrf: center.agent.csrf.clone() };

    // A warm transfer to bob, whose phone rings 30 s (3 s here): killed while it rings.
    center.provider.script_phone("client:bob", json!({"answer_after": 30.0})).await;
    let transfer = [("To", bob.as_str()), ("Mode", "warm")];
    let (status, state) =
        center.as_agent(&alice_session, &format!("/agent/api/tasks/{first}/transfer"), &transfer).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    let second = loop {
        let tasks = center.tasks_of(&call).await;
        if let Some((sid, _)) = tasks.iter().find(|(sid, status)| *sid != first && status == "reserved") {
            break sid.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let bob_session = center.available_agent("bob").await.1;
    let pending = center
        .rest(Method::GET, &format!("/Tasks/{second}/Reservations?ReservationStatus=pending"), &[])
        .await;
    let offer = pending["reservations"][0]["sid"].as_str().unwrap().to_owned();
    let (status, _) = center
        .as_agent(
            &bob_session,
            &format!("/agent/api/reservations/{offer}"),
            &[("ReservationStatus", "accepted")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Ringing: the provider placed his leg (Participants create answered).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !center.rings("client:bob").await {
        assert!(Instant::now() < deadline, "bob's phone never rang");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    center.kill_and_restart();

    // After the restart bob answers and joins; alice, still transferring, leaves them together.
    let consulting = center
        .call_once(&first, "alice seeing bob on the line", |call| call["transfer"]["joined"] == true)
        .await;
    let (status, _) = center
        .as_agent(
            &alice_session,
            &format!("/agent/api/tasks/{first}/call"),
            &[("Action", "complete-transfer")],
        )
        .await;
    let together = crate::transfers::until_hearing(&center.provider, &first, &call, &["agent"]).await;
    let statuses = center.tasks_of(&call).await;

    // Killed right after a cold transfer to a queue began: the restart takes alice out of the
    // conference; the caller waits on hold for the queue, never alone with a dead line.
    center.provider.hang_up(&call).await;
    center.until_task_then_complete(&second, "wrapping").await;
    center.until_task_then_complete(&first, "wrapping").await;
    let (call, third, reservation) = center.offered_call().await;
    center.accept(&third, &reservation).await;
    center.call_once(&third, "the talk", talking).await;
    let everyone = center.rest(Method::GET, "/TaskQueues?FriendlyName=Everyone", &[]).await;
    let everyone = everyone["task_queues"][0]["sid"].as_str().unwrap().to_owned();
    let transfer = [("To", everyone.as_str()), ("Mode", "cold")];
    let (status_cold, _) =
        center.as_agent(&alice_session, &format!("/agent/api/tasks/{third}/transfer"), &transfer).await;
    center.kill_and_restart();
    let waiting = crate::transfers::until_hearing(&center.provider, &third, &call, &[]).await;
    let after_cold = center.tasks_of(&call).await;

    assert_eq!(consulting["state"], "transferring");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(crate::transfers::hearing(&together).len(), 2, "the caller and bob: {together:#}");
    assert_eq!(statuses, [(first.clone(), "wrapping".to_owned()), (second, "assigned".to_owned())]);
    assert_eq!(status_cold, StatusCode::OK);
    assert_eq!(waiting["participants"].as_array().map(Vec::len), Some(1), "alice left: {waiting:#}");
    assert_eq!(after_cold[0], (third, "wrapping".to_owned()), "{after_cold:?}");
    let calls: Value =
        center.client.get(center.provider.url("/emulator/calls")).send().await.unwrap().json().await.unwrap();
    let bob_rung =
        calls["calls"].as_array().unwrap().iter().filter(|call| call["to"] == "client:bob").count();
    assert_eq!(bob_rung, 1, "bob was called once, never twice: {calls:#}");
}

#[tokio::test]
async fn a_server_killed_while_a_callbacks_customer_rings_connects_them_to_the_agent_after_the_restart() {
    let ivr = crate::helpers::ivr_with_callbacks();
    let mut center = Center::start_with_ivr(ivr.path().to_str().unwrap()).await;
    let offline = center.rest(Method::GET, "/Activities?FriendlyName=Offline", &[]).await;
    let offline = offline["activities"][0]["sid"].as_str().unwrap().to_owned();
    let alice = center.alice.clone();
    center.rest(Method::POST, &format!("/Workers/{alice}"), &[("ActivitySid", &offline)]).await;

    // A caller asks to be called back; their phone will ring 50 s (5 s here) when called: long
    // enough for the restart below on a busy 2-core machine (at 3 s it sometimes answered while
    // the server was still down, in the whole suite), and shorter than the agent's leg rings
    // (dial_timeout, 6 s here), which is called at the same moment.
    center.provider.script_phone("+15550100021", json!({"answer_after": 50.0})).await;
    let asked = center.provider.call_from("+15550100021", &["1", "1"]).await;
    center.provider.wait_for(&asked, "the caller thanked", |summary| summary["status"] == "completed").await;
    center.available_agent("alice").await;
    let (_, task, reservation) = loop {
        let tasks = center.tasks_of(&asked).await;
        if let Some((task, _)) = tasks.first() {
            let path = format!("/Tasks/{task}/Reservations?ReservationStatus=pending");
            let pending = center.rest(Method::GET, &path, &[]).await;
            if let Some(reservation) = pending["reservations"][0]["sid"].as_str() {
                break (asked.clone(), task.clone(), reservation.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    center.accept(&task, &reservation).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !center.rings("+15550100021").await {
        assert!(Instant::now() < deadline, "the customer's phone never rang");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    center.kill_and_restart();

    // After the restart the customer answers and joins alice; nobody waits alone. The kill may
    // come before the new call was stored with the task: its answer adopts it then.
    let deadline = Instant::now() + Duration::from_secs(60);
    let attributes = loop {
        let found = center.rest(Method::GET, &format!("/Tasks/{task}"), &[]).await;
        let attributes: Value = serde_json::from_str(found["attributes"].as_str().unwrap()).unwrap();
        if attributes["call_sid"] != asked.as_str() {
            break attributes;
        }
        assert!(Instant::now() < deadline, "the customer's call was never stored with the task");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let customer = attributes["call_sid"].as_str().unwrap().to_owned();
    let together = crate::transfers::until_hearing(&center.provider, &task, &customer, &["agent"]).await;
    assert_eq!(crate::transfers::hearing(&together).len(), 2, "{together:#}");
    assert_eq!(
        (attributes["callback"]["status"].as_str(), attributes["callback"]["attempts"].as_u64()),
        (Some("calling"), Some(1))
    );
    let calls: Value =
        center.client.get(center.provider.url("/emulator/calls")).send().await.unwrap().json().await.unwrap();
    let dialled =
        calls["calls"].as_array().unwrap().iter().filter(|call| call["to"] == "+15550100021").count();
    assert_eq!(dialled, 1, "the customer was called once: {calls:#}");
}
