//! The crash test of issue #9: the real `switchboard serve` under concurrent signed calls,
//! texts and agents accepting, replying, closing and completing, killed with SIGKILL at random
//! moments and restarted on the same port and data, again and again. The agents work through
//! the REST API in even rounds and through the agent page's API (session cookie and CSRF
//! token, signed in once before the first kill) in odd ones. After every restart the
//! invariants are checked through the REST API:
//!
//! - every call the provider was told to hold (acknowledged) has exactly one task, and so has
//!   every text conversation told an agent will text back; no texter has two open tasks;
//! - every task's status agrees with its reservations (a reserved task has an offer, an
//!   assigned or wrapping one exactly one accepted reservation, the others no offer);
//! - an acknowledged accept is never undone (its reservation is accepted, wrapping or
//!   completed), nor an acknowledged close (its task is completed);
//! - no reservation is still pending past its timeout;
//! - no worker holds more tasks of a channel than its capacity (1 call, 3 text conversations);
//! - after an odd round, the agents' sessions still hold and their live stream answers with
//!   their state;
//!
//! and at the end, every reply an agent sent (answered 201) and every closing text of an
//! acknowledged close reached the provider exactly once: none lost, none sent twice, although
//! the server was killed while sending some.
//!
//! `cargo test` plays [`ROUNDS`] rounds; `SWITCHBOARD_CRASH_ROUNDS=200 cargo test --release
//! chaos` plays a longer run by hand.
//!
//! The failover test of issue #19 plays the same load against two `switchboard serve` processes
//! on one PostgreSQL database behind a balancer that follows `/readyz` ([`Balancer`]): the
//! leader is killed, the standby takes over, the killed one starts again as the standby, and
//! the same invariants are checked through the balancer. Beside them, scripts create tasks
//! through the REST API with an `Idempotency-Key`, retrying each until it is answered, as a
//! client does after a failover: each is there exactly once. And once quiet, the standby's
//! state is the leader's (`/readyz?state=sha1`). `cargo test` plays [`FAILOVERS`];
//! `SWITCHBOARD_FAILOVER_ROUNDS=20` more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{
    Balancer, SignedIn, SwitchboardProcess, fixed_config, json_as_account, serve_in, serve_on_postgres,
    signed_webhook,
};
use crate::sms::{Provider, Received};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN};
use crate::workspaces::sales_and_support;

/// Kills (and restarts) in a `cargo test` run.
const ROUNDS: u32 = 20;
/// Leaders killed (and failed over from) in a `cargo test` run.
const FAILOVERS: u32 = 10;
/// The offer timeout of the workspace below, in seconds.
const RESERVATION_TIMEOUT: u32 = 3;
/// Agents, each taking one call at a time.
const AGENTS: usize = 6;
/// The tasks an agent may hold at once on each channel (the default task channels').
const VOICE_CAPACITY: usize = 1;
const SMS_CAPACITY: usize = 3;
/// What the customer is sent when an agent closes the conversation.
const CLOSING: &str = "Thanks for texting; this conversation is closed.";
/// Ended tasks are purged 5 minutes after they end: what was acknowledged within this window
/// must still be listed.
const LISTED_FOR: Duration = Duration::from_secs(240);

fn config(port: u16, provider: &str) -> String {
    let head = fixed_config(port, ACCOUNT_SID, AUTH_TOKEN);
    let workspace = sales_and_support(AGENTS, RESERVATION_TIMEOUT);
    // The provider also receives the task.created callbacks: what was announced to the world.
    // It plays webhooks only, without a Voice API: calls are bridged with `<Dial>` (a crash
    // during conference bridging is `call_crash.rs`'s).
    format!(
        "{head}\n[voice]\nbridge = \"dial\"\n[sms]\napi_base = \"{provider}\"\nretry_initial_ms = 100\nclosing = \"{CLOSING}\"\n[events]\ncallback_url = \"{provider}/events\"\ncallback_filter = \"task.created\"\n{workspace}"
    )
}

/// What the server acknowledged, as the clients saw it.
#[derive(Default)]
struct Acknowledged {
    /// Calls told to hold (routed), by CallSid, and when.
    calls: BTreeMap<String, Instant>,
    /// Text conversations told an agent will text back, by customer number, and when.
    texts: BTreeMap<String, Instant>,
    /// Reservations whose accept was answered 200.
    accepts: BTreeSet<String>,
    /// Replies answered 201, by body (each unique).
    replies: BTreeSet<String>,
    /// Conversations whose close was answered 204: customer number by task SID.
    closed: BTreeMap<String, String>,
    /// Tasks created through the REST API with an idempotency key, by key.
    orders: BTreeSet<String>,
    /// Of those, the ones whose first try got no answer and whose retry found it made: the
    /// commands a leader committed and died before acknowledging, adopted by its successor.
    adopted: usize,
}

/// An agent signed in on the agent page: their session cookie and CSRF token.
struct PageAgent {
    sid: String,
    name: String,
    cookie: String,
    csrf: String,
}

/// Who makes a request: the account (Basic auth, as a script would), or an agent's page.
#[derive(Clone, Copy)]
enum As<'a> {
    Account,
    Page(&'a PageAgent),
}

/// The clients of one round: callers, texters and agents, against `base`.
struct Load {
    client: reqwest::Client,
    base: String,
    workspace: String,
    acknowledged: Arc<Mutex<Acknowledged>>,
    /// Numbers the replies.
    replies: std::sync::atomic::AtomicU64,
    /// Every agent, signed in on the agent page.
    agents: Vec<PageAgent>,
    /// Conversations replied in: the page agents close them next.
    replied_in: Mutex<BTreeSet<String>>,
    /// Tasks announced by an event callback: their attributes then, and when first seen.
    announced: Mutex<BTreeMap<String, (Value, Instant)>>,
    /// The workflow the scripts' tasks go to.
    workflow: String,
}

impl Load {
    async fn webhook(&self, path: &str, params: &[(&str, &str)]) -> Option<String> {
        let url = format!("{}{path}", self.base);
        let response = signed_webhook(&self.client, &url, params, AUTH_TOKEN).send().await.ok()?;
        (response.status() == StatusCode::OK).then_some(())?;
        response.text().await.ok()
    }

    /// A request to `path` on the server as `who`: the status, and the JSON answer (`Null`
    /// when there is none).
    async fn request(
        &self,
        who: As<'_>,
        method: Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> Option<(StatusCode, Value)> {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).form(form);
        request = match who {
            As::Account => request.basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)),
            As::Page(agent) => request.header("cookie", &agent.cookie).header("x-csrf-token", &agent.csrf),
        };
        let response = request.send().await.ok()?;
        let status = response.status();
        let body = response.bytes().await.ok()?;
        Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    async fn rest(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Option<(StatusCode, Value)> {
        self.request(As::Account, method, &format!("/v1/Workspaces/{}{path}", self.workspace), form).await
    }

    /// Every item of a REST list (under `key`), page by page.
    async fn list_all(&self, first_page: &str, key: &str) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        let mut path = first_page.to_owned();
        loop {
            let Some((StatusCode::OK, page)) = self.rest(Method::GET, &path, &[]).await else { return None };
            items.extend(page[key].as_array().cloned().unwrap_or_default());
            let Some(next) = page["meta"]["next_page_url"].as_str() else { return Some(items) };
            path = next.split_once(&self.workspace)?.1.to_owned();
        }
    }

    /// An agent's reply in the conversation of `task`; noted when answered 201.
    async fn reply(&self, who: As<'_>, task: &str) {
        let body = format!("reply {}", self.replies.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        let path = format!("/agent/api/conversations/{task}/messages");
        let sent = matches!(
            self.request(who, Method::POST, &path, &[("Body", body.as_str())]).await,
            Some((StatusCode::CREATED, _))
        );
        if sent {
            self.acknowledged.lock().unwrap().replies.insert(body);
            self.replied_in.lock().unwrap().insert(task.to_owned());
        }
    }

    /// An accept of `reservation`, at `path`; noted when answered 200.
    async fn accept(&self, who: As<'_>, path: &str, reservation: &str) {
        let accept = [("ReservationStatus", "accepted")];
        if let Some((StatusCode::OK, _)) = self.request(who, Method::POST, path, &accept).await {
            self.acknowledged.lock().unwrap().accepts.insert(reservation.to_owned());
        }
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
            self.acknowledged.lock().unwrap().calls.insert(call.clone(), Instant::now());
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

    /// A script creating a task through the REST API with idempotency key `order`, sending it
    /// again (same key) until it is answered, as a client does when a failover cut it off.
    async fn creator(&self, order: String) {
        let attributes = format!(r#"{{"order": "{order}", "skillsNeeded": ["Sales"]}}"#);
        let form = [("WorkflowSid", self.workflow.as_str()), ("Attributes", attributes.as_str())];
        let url = format!("{}/v1/Workspaces/{}/Tasks", self.base, self.workspace);
        for attempt in 0..40 {
            let request = self.client.post(&url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).form(&form);
            let answer = request.header("Idempotency-Key", &order).send().await;
            if let Ok(answer) = answer
                && answer.status() == StatusCode::CREATED
            {
                let mut acknowledged = self.acknowledged.lock().unwrap();
                acknowledged.adopted +=
                    usize::from(attempt > 0 && answer.headers().contains_key("idempotent-replayed"));
                acknowledged.orders.insert(order);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scripts creating tasks one after another (`creator`) for `period`.
    async fn creators(self: Arc<Self>, round: u32, period: Duration) {
        let started = Instant::now();
        let mut scripts = tokio::task::JoinSet::new();
        for script in 0..8 {
            let load = self.clone();
            scripts.spawn(async move {
                for serial in 0.. {
                    if started.elapsed() > period {
                        return;
                    }
                    load.creator(format!("order-{round}-{script}-{serial}")).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        scripts.join_all().await;
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
            self.acknowledged.lock().unwrap().texts.insert(customer, Instant::now());
        }
    }

    /// The agents' desk through the REST API: accepts every pending offer, replies in text
    /// conversations, completes what was accepted.
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
                            let path =
                                format!("/v1/Workspaces/{}/Tasks/{sid}/Reservations/{rid}", self.workspace);
                            self.accept(As::Account, &path, rid).await;
                        }
                    }
                    Some("assigned") if task["task_channel_unique_name"] == "sms" => {
                        self.reply(As::Account, sid).await;
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

    /// The agents' desk on the agent page: each agent reads their state, accepts their offers,
    /// replies in a text conversation and then closes it, and completes their wrapped-up calls.
    async fn page_desk(&self) {
        for _ in 0..10 {
            for agent in &self.agents {
                let who = As::Page(agent);
                let Some((StatusCode::OK, state)) =
                    self.request(who, Method::GET, "/agent/api/state", &[]).await
                else {
                    return;
                };
                for offer in state["offers"].as_array().into_iter().flatten() {
                    let rid = offer["reservation_sid"].as_str().unwrap_or_default();
                    self.accept(who, &format!("/agent/api/reservations/{rid}"), rid).await;
                }
                for task in state["tasks"].as_array().into_iter().flatten() {
                    let sid = task["task_sid"].as_str().unwrap_or_default();
                    match (task["channel"].as_str(), task["assignment_status"].as_str()) {
                        (Some("sms"), Some("assigned")) if self.replied_in.lock().unwrap().contains(sid) => {
                            let path = format!("/agent/api/conversations/{sid}/close");
                            if let Some((StatusCode::NO_CONTENT, _)) =
                                self.request(who, Method::POST, &path, &[]).await
                            {
                                let customer = task["caller"].as_str().unwrap_or_default().to_owned();
                                self.acknowledged.lock().unwrap().closed.insert(sid.to_owned(), customer);
                            }
                        }
                        (Some("sms"), Some("assigned")) => self.reply(who, sid).await,
                        (_, Some("wrapping")) => {
                            let completed = [("AssignmentStatus", "completed")];
                            self.request(who, Method::POST, &format!("/agent/api/tasks/{sid}"), &completed)
                                .await;
                        }
                        _ => {}
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// The first state an agent's live stream pushes, with the session signed in before the
    /// restarts.
    async fn first_pushed_state(&self, agent: &PageAgent) -> Result<Value, String> {
        let url = format!("{}/agent/api/events", self.base);
        let request = self.client.get(url).header("cookie", &agent.cookie);
        let mut response = request.send().await.map_err(|err| format!("no stream: {err}"))?;
        if response.status() != StatusCode::OK {
            return Err(format!("the stream answers {}", response.status()));
        }
        let mut received = String::new();
        while !received.contains("\n\n") {
            let chunk = response.chunk().await.map_err(|err| format!("the stream broke: {err}"))?;
            received.push_str(&String::from_utf8_lossy(&chunk.ok_or("the stream ended")?));
        }
        let data =
            received.lines().find_map(|line| line.strip_prefix("data: ")).ok_or("an event without data")?;
        serde_json::from_str(data).map_err(|err| format!("not JSON ({err}): {data}"))
    }
}

/// Signs in every agent on the agent page, with a secret the admin API issues.
async fn sign_in_agents(client: &reqwest::Client, base: &str, workspace: &str) -> Vec<PageAgent> {
    let workers: Value =
        json_as_account(client.get(format!("{base}/v1/Workspaces/{workspace}/Workers"))).await;
    let mut agents = Vec::new();
    for worker in workers["workers"].as_array().unwrap() {
        let (sid, name) = (worker["sid"].as_str().unwrap(), worker["friendly_name"].as_str().unwrap());
        let SignedIn { cookie, csrf } = SignedIn::agent(client, base, sid, name).await;
        agents.push(PageAgent { sid: sid.to_owned(), name: name.to_owned(), cookie, csrf });
    }
    agents
}

/// Checks every invariant against the restarted server; answers what is wrong.
async fn check(load: &Load, received: &[Received], now_ms: i64) -> Vec<String> {
    let mut wrong = Vec::new();
    let Some(tasks) = load.list_all("/Tasks?PageSize=1000", "tasks").await else {
        return vec!["the task list does not answer".into()];
    };
    // Every reservation, through the workers' lists: a few requests, not one per task.
    let mut reservations_of: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for agent in &load.agents {
        let path = format!("/Workers/{}/Reservations?PageSize=1000", agent.sid);
        let Some(reservations) = load.list_all(&path, "reservations").await else {
            return vec![format!("{}'s reservations do not answer", agent.name)];
        };
        for reservation in reservations {
            let task = reservation["task_sid"].as_str().unwrap_or_default().to_owned();
            reservations_of.entry(task).or_default().push(reservation);
        }
    }
    let mut by_call: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_order: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_customer: BTreeMap<String, usize> = BTreeMap::new();
    let mut open_by_customer: BTreeMap<String, usize> = BTreeMap::new();
    for task in &tasks {
        let attributes: Value =
            serde_json::from_str(task["attributes"].as_str().unwrap_or("{}")).unwrap_or_default();
        if let Some(call) = attributes["call_sid"].as_str() {
            *by_call.entry(call.to_owned()).or_default() += 1;
        } else if let Some(order) = attributes["order"].as_str() {
            *by_order.entry(order.to_owned()).or_default() += 1;
        } else if let Some(customer) = attributes["from"].as_str() {
            *by_customer.entry(customer.to_owned()).or_default() += 1;
            if !matches!(task["assignment_status"].as_str(), Some("completed" | "canceled")) {
                *open_by_customer.entry(customer.to_owned()).or_default() += 1;
            }
        }
    }
    // A copy: the lock is not held across the requests below.
    let (calls, texts, accepts, closed, orders) = {
        let acknowledged = load.acknowledged.lock().unwrap();
        let listed = |acknowledged: &BTreeMap<String, Instant>| -> Vec<String> {
            let still_listed = |at: &&Instant| at.elapsed() < LISTED_FOR;
            acknowledged.iter().filter(|(_, at)| still_listed(at)).map(|(key, _)| key.clone()).collect()
        };
        (
            listed(&acknowledged.calls),
            listed(&acknowledged.texts),
            acknowledged.accepts.clone(),
            acknowledged.closed.clone(),
            acknowledged.orders.clone(),
        )
    };
    // Created once, whether the client heard so or not (in doubt, it sent the same key again).
    for (order, count) in &by_order {
        if *count > 1 {
            wrong.push(format!("order {order}: {count} tasks, expected one"));
        }
    }
    for order in &orders {
        if !by_order.contains_key(order) {
            wrong.push(format!("order {order} was acknowledged, and has no task"));
        }
    }
    for (what, acknowledged, tasks) in [("call", &calls, &by_call), ("texter", &texts, &by_customer)] {
        for key in acknowledged {
            match tasks.get(key) {
                Some(1) => {}
                count => wrong.push(format!("{what} {key}: {count:?} tasks, expected one")),
            }
        }
    }
    // An announced task is never one that a crash took back: it is there, and it is the task
    // announced, not another that was given its SID after the restart.
    let listed: BTreeMap<&str, Value> = tasks
        .iter()
        .map(|task| {
            let attributes =
                serde_json::from_str(task["attributes"].as_str().unwrap_or("{}")).unwrap_or_default();
            (task["sid"].as_str().unwrap_or_default(), attributes)
        })
        .collect();
    let gone_or_changed = {
        let mut announced = load.announced.lock().unwrap();
        for callback in received.iter().filter(|request| request.field("EventType") == "task.created") {
            let attributes = serde_json::from_str(callback.field("TaskAttributes")).unwrap_or_default();
            announced.entry(callback.field("TaskSid").to_owned()).or_insert((attributes, Instant::now()));
        }
        announced
            .iter()
            .filter_map(|(sid, (attributes, seen))| match listed.get(sid.as_str()) {
                Some(now) if now == attributes => None,
                Some(now) => Some(format!("task {sid} was announced as {attributes}, and is now {now}")),
                None if seen.elapsed() < LISTED_FOR => Some(format!("task {sid} was announced, and is gone")),
                None => None,
            })
            .collect::<Vec<_>>()
    };
    wrong.extend(gone_or_changed);
    for (customer, count) in &open_by_customer {
        if *count > 1 {
            wrong.push(format!("texter {customer}: {count} open tasks"));
        }
    }
    let mut busy: BTreeMap<(String, String), usize> = BTreeMap::new();
    for task in &tasks {
        let sid = task["sid"].as_str().unwrap_or_default();
        let reservations = reservations_of.remove(sid).unwrap_or_default();
        let status = task["assignment_status"].as_str().unwrap_or_default();
        if inconsistency(status, &reservations).is_some()
            && let Some(inconsistent) = settled_inconsistency(load, task.clone()).await
        {
            wrong.push(format!("task {sid} {inconsistent}"));
        }
        if closed.contains_key(sid) && status != "completed" {
            wrong.push(format!("task {sid} was closed, and is now {status}"));
        }
        for reservation in &reservations {
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
            let holds_task = matches!(status, "pending" | "accepted" | "wrapping")
                && matches!(task["assignment_status"].as_str(), Some("reserved" | "assigned" | "wrapping"));
            if holds_task {
                let worker = reservation["worker_name"].as_str().unwrap_or_default().to_owned();
                let channel = task["task_channel_unique_name"].as_str().unwrap_or_default().to_owned();
                *busy.entry((worker, channel)).or_default() += 1;
            }
        }
    }
    for ((worker, channel), held) in busy {
        let capacity = if channel == "voice" { VOICE_CAPACITY } else { SMS_CAPACITY };
        if held > capacity {
            wrong.push(format!("{worker} holds {held} {channel} tasks, capacity {capacity}"));
        }
    }
    wrong
}

/// What in the reservations of `task` (as listed) disagrees with its status, read again
/// together until the task did not change while its reservations were read: the task list and
/// the reservation lists are read at different moments of a live server, where offers time out
/// and tasks move on in between.
async fn settled_inconsistency(load: &Load, mut task: Value) -> Option<String> {
    let sid = task["sid"].as_str().unwrap_or_default().to_owned();
    for _ in 0..5 {
        let Some((StatusCode::OK, reservations)) =
            load.rest(Method::GET, &format!("/Tasks/{sid}/Reservations?PageSize=1000"), &[]).await
        else {
            return Some("has no reservations list".into());
        };
        let Some((StatusCode::OK, after)) = load.rest(Method::GET, &format!("/Tasks/{sid}"), &[]).await
        else {
            return Some("cannot be read".into());
        };
        let unchanged = |field: &str| task[field] == after[field];
        if unchanged("assignment_status") && unchanged("date_updated") {
            let status = after["assignment_status"].as_str().unwrap_or_default();
            let reservations = reservations["reservations"].as_array().cloned().unwrap_or_default();
            return inconsistency(status, &reservations).map(|wrong| format!("is {status}, yet {wrong}"));
        }
        task = after;
    }
    Some("kept changing while it was read".into())
}

/// What in a task's reservations disagrees with its status `status`, if anything.
fn inconsistency(status: &str, reservations: &[Value]) -> Option<String> {
    let count = |statuses: &[&str]| {
        reservations
            .iter()
            .filter(|reservation| {
                statuses.contains(&reservation["reservation_status"].as_str().unwrap_or_default())
            })
            .count()
    };
    let (pending, in_hand) = (count(&["pending"]), count(&["accepted", "wrapping"]));
    match status {
        "reserved" if pending == 0 => Some("no offer is pending".into()),
        "reserved" | "pending" | "completed" | "canceled" if in_hand > 0 => {
            Some(format!("{in_hand} reservations are accepted or wrapping"))
        }
        "pending" | "completed" | "canceled" if pending > 0 => Some(format!("{pending} offers are pending")),
        "assigned" | "wrapping" if (pending, in_hand) != (0, 1) => {
            Some(format!("{pending} offers are pending and {in_hand} reservations accepted or wrapping"))
        }
        _ => None,
    }
}

/// The servers under test, and how they are killed.
enum Servers {
    /// One process, killed and restarted on the same port and data.
    One { dir: tempfile::TempDir, server: SwitchboardProcess },
    /// Two processes on one PostgreSQL database behind a balancer: the leader is killed, the
    /// standby takes over, the killed one starts again as the standby.
    Two { dir: tempfile::TempDir, database: String, nodes: Vec<SwitchboardProcess>, balancer: Balancer },
}

impl Servers {
    /// Where the clients send their requests.
    fn base(&self) -> String {
        match self {
            Servers::One { server, .. } => server.url(""),
            Servers::Two { balancer, .. } => balancer.url(""),
        }
    }

    /// Kills the server (the leader), and starts it again (as the standby); answers once the
    /// load can reach a server again.
    async fn kill_and_restart(&mut self) {
        match self {
            Servers::One { dir, server } => {
                server.signal(libc::SIGKILL);
                server.wait(Duration::from_secs(10)).expect("the killed process exits");
                *server = serve_in(dir.path());
            }
            Servers::Two { dir, database, nodes, balancer } => {
                let leader = balancer.leader().expect("a node leads before the kill");
                let killed =
                    nodes.iter().position(|node| node.address == leader).expect("the leader is a node");
                nodes[killed].signal(libc::SIGKILL);
                nodes[killed].wait(Duration::from_secs(10)).expect("the killed process exits");
                let took_over =
                    balancer.wait_for_leader_other_than(Some(leader), Duration::from_secs(30)).await;
                assert!(took_over.is_some(), "the standby took over");
                nodes[killed] = serve_on_postgres(dir.path(), database);
                balancer.set_nodes(nodes.iter().map(|node| node.address).collect());
            }
        }
    }

    /// With two nodes: once quiet, the standby holds exactly the leader's state.
    async fn replicas_agree(&self, client: &reqwest::Client) -> Option<String> {
        let Servers::Two { nodes, .. } = self else { return None };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut states = Vec::new();
            for node in nodes {
                let ready = client.get(node.url("/readyz?state=sha1")).send().await.ok()?;
                let ready: Value = ready.json().await.ok()?;
                states.push((ready["status"].clone(), ready["applied"].clone(), ready["state_sha1"].clone()));
            }
            let (first, second) = (&states[0], &states[1]);
            if first.1 == second.1 {
                return (first.2 != second.2)
                    .then(|| format!("the nodes applied the same log and differ: {states:?}"));
            }
            if Instant::now() > deadline {
                return Some(format!("the standby did not catch up with the leader: {states:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_again_and_again_under_load_nothing_acknowledged_is_lost() {
    let rounds =
        std::env::var("SWITCHBOARD_CRASH_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(ROUNDS);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    std::fs::write(dir.path().join("switchboard.toml"), config(port, &provider.base())).unwrap();
    let server = serve_in(dir.path());
    play(Servers::One { dir, server }, &provider, rounds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_the_leader_killed_again_and_again_fails_over_with_nothing_acknowledged_lost() {
    let rounds =
        std::env::var("SWITCHBOARD_FAILOVER_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(FAILOVERS);
    let dir = tempfile::tempdir().unwrap();
    let database = crate::test_postgres::new_database();
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    std::fs::write(dir.path().join("switchboard.toml"), config(0, &provider.base())).unwrap();
    let first = serve_on_postgres(dir.path(), &database);
    let balancer = Balancer::start(vec![first.address]).await;
    assert!(
        balancer.wait_for_leader_other_than(None, Duration::from_secs(30)).await.is_some(),
        "a node leads"
    );
    let second = serve_on_postgres(dir.path(), &database);
    balancer.set_nodes(vec![first.address, second.address]);
    play(Servers::Two { dir, database, nodes: vec![first, second], balancer }, &provider, rounds).await;
}

/// Plays `rounds` rounds of load, each cut by a kill, checking everything after each.
async fn play(mut servers: Servers, provider: &Provider, rounds: u32) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let base = servers.base();
    let workspaces: Value = json_as_account(client.get(format!("{base}/v1/Workspaces"))).await;
    let workspace = workspaces["workspaces"][0]["sid"].as_str().unwrap().to_owned();
    let workflows: Value =
        json_as_account(client.get(format!("{base}/v1/Workspaces/{workspace}/Workflows"))).await;
    let workflow = workflows["workflows"][0]["sid"].as_str().unwrap().to_owned();
    let agents = sign_in_agents(&client, &base, &workspace).await;
    let load = Arc::new(Load {
        client,
        base,
        workspace,
        acknowledged: Arc::default(),
        replies: Default::default(),
        agents,
        replied_in: Mutex::default(),
        announced: Mutex::default(),
        workflow,
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
        let on_the_page = round % 2 == 1;
        clients.push(tokio::spawn(async move {
            if on_the_page { desk.page_desk().await } else { desk.desk().await }
        }));
        let at = 100 + (u64::from(round) * 7919) % 500;
        if matches!(servers, Servers::Two { .. }) {
            clients.push(tokio::spawn(load.clone().creators(round, Duration::from_millis(at + 1_000))));
        }
        tokio::time::sleep(Duration::from_millis(at)).await;
        servers.kill_and_restart().await;
        for client in clients {
            let _ = client.await;
        }
        let now = jiff::Timestamp::now().as_millisecond();
        let mut wrong = check(&load, &provider.received(), now).await;
        wrong.extend(servers.replicas_agree(&load.client).await);
        if on_the_page {
            for agent in &load.agents {
                match load.first_pushed_state(agent).await {
                    Ok(state) if state["worker"]["friendly_name"] == agent.name.as_str() => {}
                    Ok(state) => {
                        wrong.push(format!("{}'s stream pushed someone else's state: {state}", agent.name))
                    }
                    Err(err) => wrong.push(format!("{}'s stream after the restart: {err}", agent.name)),
                }
            }
        }
        assert!(wrong.is_empty(), "round {round} (killed after {at} ms):\n{}", wrong.join("\n"));
    }
    // Every reply and closing text acknowledged reaches the provider once; none reaches it
    // twice. A text is known by its body, and a closing text by its recipient.
    let (replies, closed) = {
        let acknowledged = load.acknowledged.lock().unwrap();
        let closings = acknowledged.closed.values().map(|customer| format!("{CLOSING} to {customer}"));
        (
            acknowledged.replies.iter().cloned().chain(closings).collect::<BTreeSet<String>>(),
            acknowledged.closed.len(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let mut delivered: BTreeMap<String, usize> = BTreeMap::new();
        for request in provider.received().iter().filter(|request| !request.field("Body").is_empty()) {
            let text = match request.field("Body") {
                CLOSING => format!("{CLOSING} to {}", request.field("To")),
                reply => reply.to_owned(),
            };
            *delivered.entry(text).or_default() += 1;
        }
        if replies.iter().all(|text| delivered.contains_key(text)) || Instant::now() > deadline {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lost: Vec<&String> = replies.iter().filter(|text| !delivered.contains_key(*text)).collect();
    let twice: Vec<(&String, &usize)> = delivered.iter().filter(|(_, count)| **count > 1).collect();
    assert!(lost.is_empty() && twice.is_empty(), "lost: {lost:?}; sent twice: {twice:?}");
    let acknowledged = load.acknowledged.lock().unwrap();
    assert!(
        matches!(servers, Servers::One { .. }) || !acknowledged.orders.is_empty(),
        "the scripts' tasks got through between the failovers"
    );
    assert!(
        !acknowledged.calls.is_empty()
            && !acknowledged.accepts.is_empty()
            && !acknowledged.texts.is_empty()
            && !acknowledged.replies.is_empty()
            && closed > 0
            && !load.announced.lock().unwrap().is_empty(),
        "the load got through between the kills: {} calls, {} texts, {} accepts, {} replies, {closed} closes, {} tasks announced",
        acknowledged.calls.len(),
        acknowledged.texts.len(),
        acknowledged.accepts.len(),
        acknowledged.replies.len(),
        load.announced.lock().unwrap().len()
    );
    eprintln!(
        "{rounds} kills: {} calls, {} texts, {} accepts, {} replies, {closed} closes and {} scripted tasks acknowledged ({} of them committed by a leader that died before answering, adopted by the next), all there after every restart; every reply and closing text delivered once",
        acknowledged.calls.len(),
        acknowledged.texts.len(),
        acknowledged.accepts.len(),
        acknowledged.replies.len(),
        acknowledged.orders.len(),
        acknowledged.adopted
    );
}

#[test]
fn a_task_status_that_disagrees_with_its_reservations_is_named() {
    fn check(status: &str, reservations: &[&str], expected: Option<&str>) {
        let reservations: Vec<Value> =
            reservations.iter().map(|status| serde_json::json!({ "reservation_status": status })).collect();
        assert_eq!(
            inconsistency(status, &reservations).as_deref(),
            expected,
            "{status} with {reservations:?}"
        );
    }
    check("pending", &[], None);
    check("pending", &["rejected", "timeout"], None);
    check("pending", &["pending"], Some("1 offers are pending"));
    check("reserved", &["pending", "pending"], None);
    check("reserved", &["rejected"], Some("no offer is pending"));
    check("reserved", &["pending", "accepted"], Some("1 reservations are accepted or wrapping"));
    check("assigned", &["accepted", "canceled"], None);
    check("assigned", &[], Some("0 offers are pending and 0 reservations accepted or wrapping"));
    check(
        "assigned",
        &["accepted", "pending"],
        Some("1 offers are pending and 1 reservations accepted or wrapping"),
    );
    check("wrapping", &["wrapping"], None);
    check(
        "wrapping",
        &["accepted", "wrapping"],
        Some("0 offers are pending and 2 reservations accepted or wrapping"),
    );
    check("completed", &["completed", "rejected"], None);
    check("completed", &["wrapping"], Some("1 reservations are accepted or wrapping"));
    check("canceled", &["pending"], Some("1 offers are pending"));
}
