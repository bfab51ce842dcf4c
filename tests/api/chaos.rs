//! The crash test of issue #9: the real `switchboard serve` under concurrent signed calls,
//! texts and agents accepting and completing, killed with SIGKILL at random moments and
//! restarted on the same port and data, again and again. After every restart the invariants
//! are checked through the REST API:
//!
//! - every call the provider was told to hold (acknowledged) has exactly one task, every text
//!   conversation routed has exactly one task;
//! - an acknowledged accept is never undone (its reservation is accepted, wrapping or
//!   completed);
//! - no reservation is still pending past its timeout;
//! - no worker holds more calls than its capacity;
//!
//! and at the end, every reply an agent sent (answered 201) reached the provider exactly once:
//! none lost, none sent twice, although the server was killed while sending some.
//!
//! `cargo test` plays [`ROUNDS`] rounds; `SWITCHBOARD_CRASH_ROUNDS=200 cargo test --release
//! chaos` plays a longer run by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{fixed_config, serve_in, signed_webhook};
use crate::sms::Provider;
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN};
use crate::workspaces::sales_and_support;

/// Kills (and restarts) in a `cargo test` run.
const ROUNDS: u32 = 20;
/// The offer timeout of the workspace below, in seconds.
const RESERVATION_TIMEOUT: u32 = 3;
/// Agents, each taking one call at a time.
const AGENTS: usize = 6;

fn config(port: u16, provider: &str) -> String {
    let head = fixed_config(port, ACCOUNT_SID, AUTH_TOKEN);
    let workspace = sales_and_support(AGENTS, RESERVATION_TIMEOUT);
    format!("{head}\n[sms]\napi_base = \"{provider}\"\nretry_initial_ms = 100\n{workspace}")
}

/// What the server acknowledged, as the clients saw it.
#[derive(Default)]
struct Acknowledged {
    /// Calls told to hold (routed), by CallSid.
    calls: BTreeSet<String>,
    /// Text conversations told an agent will text back, by customer number.
    texts: BTreeSet<String>,
    /// Reservations whose accept was answered 200.
    accepts: BTreeSet<String>,
    /// Replies answered 201, by body (each unique).
    replies: BTreeSet<String>,
}

/// The clients of one round: callers, texters and agents, against `base`.
struct Load {
    client: reqwest::Client,
    base: String,
    workspace: String,
    acknowledged: Arc<Mutex<Acknowledged>>,
    /// Numbers the replies.
    replies: std::sync::atomic::AtomicU64,
}

impl Load {
    async fn webhook(&self, path: &str, params: &[(&str, &str)]) -> Option<String> {
        let url = format!("{}{path}", self.base);
        let response = signed_webhook(&self.client, &url, params, AUTH_TOKEN).send().await.ok()?;
        (response.status() == StatusCode::OK).then_some(())?;
        response.text().await.ok()
    }

    async fn rest(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Option<(StatusCode, Value)> {
        let url = format!("{}/v1/Workspaces/{}{path}", self.base, self.workspace);
        let request = self.client.request(method, url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).form(form);
        let response = request.send().await.ok()?;
        let status = response.status();
        Some((status, response.json().await.ok()?))
    }

    /// A caller: the menu, a key, then the hold loop until bridged (or the server dies).
    async fn caller(&self, call: String, digit: &str) {
        let base = [
            ("AccountSid", ACCOUNT_SID),
            ("CallSid", call.as_str()),
            ("From", "+15550100001"),
            ("To", "+15550100200"),
        ];
        let Some(menu) = self.webhook("/voice/incoming", &base).await else { return };
        let Some(action) = menu.split("action=\"").nth(1).and_then(|rest| rest.split('"').next()) else {
            return;
        };
        let action = action.replace("&amp;", "&");
        let with_digit: Vec<(&str, &str)> = base.iter().copied().chain([("Digits", digit)]).collect();
        let Some(hold) = self.webhook(&action, &with_digit).await else { return };
        if hold.contains("hold") || hold.contains("/voice/wait") {
            self.acknowledged.lock().unwrap().calls.insert(call.clone());
        }
        for _ in 0..20 {
            let Some(waiting) = self.webhook("/voice/wait", &base).await else { return };
            if waiting.contains("<Dial") {
                let done: Vec<(&str, &str)> = base
                    .iter()
                    .copied()
                    .chain([("DialCallStatus", "completed"), ("DialCallDuration", "5")])
                    .collect();
                self.webhook("/voice/dial-status", &done).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A texter: a greeting, then a choice.
    async fn texter(&self, customer: String, serial: usize, digit: &str) {
        let text = |sid: String, body: &'static str| {
            let customer = customer.clone();
            async move {
                let params = [
                    ("MessageSid", sid.as_str()),
                    ("AccountSid", ACCOUNT_SID),
                    ("From", customer.as_str()),
                    ("To", "+15550100200"),
                    ("Body", body),
                ];
                self.webhook("/sms/incoming", &params).await
            }
        };
        if text(format!("SMa{serial:030}"), "hello").await.is_none() {
            return;
        }
        let body = if digit == "1" { "1" } else { "2" };
        if let Some(answer) = text(format!("SMb{serial:030}"), body).await
            && answer.contains("An agent will text you")
        {
            self.acknowledged.lock().unwrap().texts.insert(customer);
        }
    }

    /// The agents' desk: accepts every pending offer, completes what was accepted.
    async fn desk(&self) {
        for _ in 0..10 {
            let Some((StatusCode::OK, tasks)) = self
                .rest(Method::GET, "/Tasks?AssignmentStatus=reserved,assigned,wrapping&PageSize=1000", &[])
                .await
            else {
                return;
            };
            for task in tasks["tasks"].as_array().into_iter().flatten() {
                let sid = task["sid"].as_str().unwrap_or_default();
                match task["assignment_status"].as_str() {
                    Some("reserved") => {
                        let Some((_, reservations)) = self
                            .rest(
                                Method::GET,
                                &format!("/Tasks/{sid}/Reservations?ReservationStatus=pending"),
                                &[],
                            )
                            .await
                        else {
                            return;
                        };
                        for reservation in reservations["reservations"].as_array().into_iter().flatten() {
                            let rid = reservation["sid"].as_str().unwrap_or_default();
                            let accept = [("ReservationStatus", "accepted")];
                            if let Some((StatusCode::OK, _)) = self
                                .rest(Method::POST, &format!("/Tasks/{sid}/Reservations/{rid}"), &accept)
                                .await
                            {
                                self.acknowledged.lock().unwrap().accepts.insert(rid.to_owned());
                            }
                        }
                    }
                    Some("assigned") if task["task_channel_unique_name"] == "sms" => {
                        let body = format!(
                            "reply {}",
                            self.replies.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                        );
                        let url = format!("{}/agent/api/conversations/{sid}/messages", self.base);
                        let request = self
                            .client
                            .post(url)
                            .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
                            .form(&[("Body", body.as_str())]);
                        if request.send().await.is_ok_and(|response| response.status() == StatusCode::CREATED)
                        {
                            self.acknowledged.lock().unwrap().replies.insert(body);
                        }
                    }
                    Some("wrapping") => {
                        self.rest(
                            Method::POST,
                            &format!("/Tasks/{sid}"),
                            &[("AssignmentStatus", "completed"), ("Reason", "done")],
                        )
                        .await;
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

/// Checks every invariant against the restarted server; answers what is wrong.
async fn check(load: &Load, now_ms: i64) -> Vec<String> {
    let mut wrong = Vec::new();
    let Some((StatusCode::OK, tasks)) = load.rest(Method::GET, "/Tasks?PageSize=1000", &[]).await else {
        return vec!["the task list does not answer".into()];
    };
    let tasks = tasks["tasks"].as_array().cloned().unwrap_or_default();
    let mut by_call: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_customer: BTreeMap<String, usize> = BTreeMap::new();
    for task in &tasks {
        let attributes: Value =
            serde_json::from_str(task["attributes"].as_str().unwrap_or("{}")).unwrap_or_default();
        if let Some(call) = attributes["call_sid"].as_str() {
            *by_call.entry(call.to_owned()).or_default() += 1;
        } else if let Some(customer) = attributes["from"].as_str()
            && !matches!(task["assignment_status"].as_str(), Some("completed" | "canceled"))
        {
            *by_customer.entry(customer.to_owned()).or_default() += 1;
        }
    }
    // A copy: the lock is not held across the requests below.
    let (calls, accepts) = {
        let acknowledged = load.acknowledged.lock().unwrap();
        (acknowledged.calls.clone(), acknowledged.accepts.clone())
    };
    for call in &calls {
        match by_call.get(call) {
            Some(1) => {}
            count => wrong.push(format!("call {call}: {count:?} tasks, expected one")),
        }
    }
    for (customer, count) in &by_customer {
        if *count > 1 {
            wrong.push(format!("texter {customer}: {count} open tasks"));
        }
    }
    let mut busy: BTreeMap<String, usize> = BTreeMap::new();
    for task in &tasks {
        let sid = task["sid"].as_str().unwrap_or_default();
        let Some((StatusCode::OK, reservations)) =
            load.rest(Method::GET, &format!("/Tasks/{sid}/Reservations"), &[]).await
        else {
            wrong.push(format!("task {sid}: no reservations list"));
            continue;
        };
        for reservation in reservations["reservations"].as_array().into_iter().flatten() {
            let rid = reservation["sid"].as_str().unwrap_or_default();
            let status = reservation["reservation_status"].as_str().unwrap_or_default();
            if accepts.contains(rid) && !matches!(status, "accepted" | "wrapping" | "completed") {
                wrong.push(format!("reservation {rid} was accepted, and is now {status}"));
            }
            let created =
                reservation["date_created"].as_str().and_then(|date| date.parse::<jiff::Timestamp>().ok());
            let age = created.map_or(0, |created| (now_ms - created.as_millisecond()) / 1000);
            // Dates have whole seconds: a second of slack, and one for the restart's own delay.
            if status == "pending" && age > i64::from(RESERVATION_TIMEOUT) + 2 {
                wrong.push(format!("reservation {rid} pending for {age} s"));
            }
            let holds_call = matches!(status, "pending" | "accepted" | "wrapping")
                && task["task_channel_unique_name"] == "voice"
                && matches!(task["assignment_status"].as_str(), Some("reserved" | "assigned" | "wrapping"));
            if holds_call {
                *busy
                    .entry(reservation["worker_name"].as_str().unwrap_or_default().to_owned())
                    .or_default() += 1;
            }
        }
    }
    for (worker, calls) in busy {
        if calls > 1 {
            wrong.push(format!("{worker} holds {calls} calls, capacity 1"));
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_again_and_again_under_load_nothing_acknowledged_is_lost() {
    let rounds =
        std::env::var("SWITCHBOARD_CRASH_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(ROUNDS);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    std::fs::write(dir.path().join("switchboard.toml"), config(port, &provider.base())).unwrap();
    let mut server = serve_in(dir.path());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let base = server.url("");
    let workspaces: Value = client
        .get(format!("{base}/v1/Workspaces"))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let load = Arc::new(Load {
        client,
        base,
        workspace: workspaces["workspaces"][0]["sid"].as_str().unwrap().to_owned(),
        acknowledged: Arc::default(),
        replies: Default::default(),
    });
    let mut serial = 0;
    for round in 0..rounds {
        // A burst of callers, texters and the agents' desk; the kill comes in the middle of it.
        let mut clients = Vec::new();
        for _ in 0..8 {
            serial += 1;
            let digit = if serial % 2 == 0 { "1" } else { "2" };
            let (caller, call) = (load.clone(), format!("CA{serial:032}"));
            clients.push(tokio::spawn(async move { caller.caller(call, digit).await }));
            let (texter, customer) = (load.clone(), format!("+1555020{serial:04}"));
            clients.push(tokio::spawn(async move { texter.texter(customer, serial, digit).await }));
        }
        let desk = load.clone();
        clients.push(tokio::spawn(async move { desk.desk().await }));
        let at = 100 + (u64::from(round) * 7919) % 500;
        tokio::time::sleep(Duration::from_millis(at)).await;
        server.signal(libc::SIGKILL);
        server.wait(Duration::from_secs(10)).expect("the killed process exits");
        for client in clients {
            let _ = client.await;
        }
        server = serve_in(dir.path());
        let now = jiff::Timestamp::now().as_millisecond();
        let wrong = check(&load, now).await;
        assert!(wrong.is_empty(), "round {round} (killed after {at} ms):\n{}", wrong.join("\n"));
    }
    // Every reply acknowledged reaches the provider once; none reaches it twice.
    let replies = load.acknowledged.lock().unwrap().replies.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let mut delivered: BTreeMap<String, usize> = BTreeMap::new();
        for request in provider.received() {
            *delivered.entry(request.field("Body").to_owned()).or_default() += 1;
        }
        if replies.iter().all(|body| delivered.contains_key(body)) || std::time::Instant::now() > deadline {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lost: Vec<&String> = replies.iter().filter(|body| !delivered.contains_key(*body)).collect();
    let twice: Vec<(&String, &usize)> = delivered.iter().filter(|(_, count)| **count > 1).collect();
    assert!(lost.is_empty() && twice.is_empty(), "lost: {lost:?}; sent twice: {twice:?}");
    let acknowledged = load.acknowledged.lock().unwrap();
    assert!(
        !acknowledged.calls.is_empty()
            && !acknowledged.accepts.is_empty()
            && !acknowledged.texts.is_empty()
            && !acknowledged.replies.is_empty(),
        "the load got through between the kills: {} calls, {} texts, {} accepts, {} replies",
        acknowledged.calls.len(),
        acknowledged.texts.len(),
        acknowledged.accepts.len(),
        acknowledged.replies.len()
    );
    eprintln!(
        "{rounds} kills: {} calls, {} texts, {} accepts and {} replies acknowledged, all there after every restart; every reply delivered once",
        acknowledged.calls.len(),
        acknowledged.texts.len(),
        acknowledged.accepts.len(),
        acknowledged.replies.len()
    );
}
