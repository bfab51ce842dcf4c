//! A contact center's day on loopback (issue #9): 1,000 callers at once going through the IVR
//! and holding, 200 agents accepting and completing, for several minutes, against the release
//! `switchboard serve` in durable mode. Reports throughput, p50/p99 latency per kind of request,
//! the server's peak memory (RSS) and the calls lost (acknowledged, yet without their one task
//! in the end): that must be 0.
//!
//! Run: `cargo bench --bench load` (3 minutes of load); `LOAD_MINUTES=10 cargo bench --bench
//! load` for longer. A caller: the menu, presses 1 or 2, then the hold loop every
//! `HOLD_SECONDS` until bridged, talks `TALK` and hangs up (dial status completed); a new caller
//! takes their place, so 1,000 are always in the system. An agent (the REST API, as an agent
//! page or a script would): polls their reservations, accepts, completes the task when the call
//! ends. Every webhook is signed and checked. Beside them, the static fallback TwiML is asked
//! 50 times a second as the baseline of the same run, and the server's RSS and data directory
//! are printed every 30 s. The server inherits the environment, so its settings can be changed
//! for a run (`SWITCHBOARD_STORE_EVENT_MAX_COUNT=100000`, say).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard::http::signature;

#[path = "../tests/api/workspaces.rs"]
mod workspaces;

const ACCOUNT_SID: &str = "AC0000000000000000000000000000beef";
const TOKEN: &str = "load-token";
const CALLERS: usize = 1_000;
const AGENTS: usize = 200;
const HOLD_SECONDS: u64 = 2;
const TALK: Duration = Duration::from_secs(3);
/// A caller still holding this long after the load ends was never bridged: lost.
const GIVE_UP: Duration = Duration::from_secs(120);

/// The kind of request the others are compared with.
const BASELINE: &str = "baseline: static TwiML";

/// Latencies of one kind of request, in microseconds.
#[derive(Default)]
struct Kind {
    latencies: Vec<u64>,
    errors: u64,
    /// Why requests failed (a status, or the client's error): how often, and when (seconds
    /// into the run).
    causes: HashMap<String, (u64, Vec<u64>)>,
}

struct Figures {
    kinds: HashMap<&'static str, Kind>,
    /// When the load started.
    since: Instant,
}

impl Figures {
    fn record(&mut self, kind: &'static str, started: Instant, outcome: Result<(), String>) {
        let entry = self.kinds.entry(kind).or_default();
        match outcome {
            Ok(()) => entry.latencies.push(started.elapsed().as_micros() as u64),
            Err(cause) => {
                entry.errors += 1;
                let (count, when) = entry.causes.entry(cause).or_default();
                *count += 1;
                when.push(self.since.elapsed().as_secs());
            }
        }
    }
}

struct Load {
    client: reqwest::Client,
    base: String,
    workspace: String,
    figures: Mutex<Figures>,
    /// Calls told to hold (and when), and calls bridged then completed.
    acknowledged: Mutex<Vec<(String, Instant)>>,
    completed: AtomicU64,
    /// Lines still placing or holding calls: agents work until the last caller is bridged.
    lines_busy: AtomicU64,
    /// Calls still on hold this long after the end are given up on, and counted as lost.
    given_up: AtomicU64,
    serial: AtomicU64,
    until: Instant,
}

impl Load {
    async fn webhook(&self, kind: &'static str, path: &str, params: &[(&str, &str)]) -> Option<String> {
        let url = format!("{}{path}", self.base);
        let params: Vec<(String, String)> =
            params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let started = Instant::now();
        let answer = async {
            let response = self
                .client
                .post(&url)
                .header("X-Twilio-Signature", signature::sign(TOKEN, &url, &params))
                .form(&params)
                .send()
                .await
                .map_err(|err| format!("request: {}", causes(&err)))?;
            let status = response.status();
            let text = response.text().await.map_err(|err| format!("answer: {err}"))?;
            if status == reqwest::StatusCode::OK { Ok(text) } else { Err(format!("{status}: {text}")) }
        }
        .await;
        self.figures.lock().unwrap().record(kind, started, answer.as_ref().map(|_| ()).map_err(Clone::clone));
        answer.ok()
    }

    async fn rest(
        &self,
        kind: &'static str,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> Option<serde_json::Value> {
        let url = format!("{}/v1/Workspaces/{}{path}", self.base, self.workspace);
        let started = Instant::now();
        let answer = async {
            let response = self
                .client
                .request(method, url)
                .basic_auth(ACCOUNT_SID, Some(TOKEN))
                .form(form)
                .send()
                .await
                .map_err(|err| format!("request: {}", causes(&err)))?;
            let status = response.status();
            let text = response.text().await.map_err(|err| format!("answer: {err}"))?;
            if !status.is_success() {
                return Err(format!("{status}: {text}"));
            }
            serde_json::from_str::<serde_json::Value>(&text).map_err(|err| format!("not JSON: {err}"))
        }
        .await;
        self.figures.lock().unwrap().record(kind, started, answer.as_ref().map(|_| ()).map_err(Clone::clone));
        answer.ok()
    }

    /// Every item of a list, page by page.
    async fn list_all(&self, first_page: &str, key: &str) -> Vec<serde_json::Value> {
        let mut items = Vec::new();
        let mut path = first_page.to_owned();
        loop {
            let listed = self.rest("check", reqwest::Method::GET, &path, &[]).await.expect("the list");
            items.extend(listed[key].as_array().cloned().unwrap_or_default());
            let Some(next) = listed["meta"]["next_page_url"].as_str() else { break };
            path = next.split_once(&self.workspace).expect("a page of this workspace").1.to_owned();
        }
        items
    }

    /// Callers one after another on one line until the time is up.
    async fn line(&self) {
        while Instant::now() < self.until {
            let serial = self.serial.fetch_add(1, Ordering::SeqCst);
            let call = format!("CA{serial:032}");
            let base = [
                ("AccountSid", ACCOUNT_SID),
                ("CallSid", call.as_str()),
                ("From", "+15550100001"),
                ("To", "+15550100200"),
            ];
            let Some(menu) = self.webhook("incoming", "/voice/incoming", &base).await else { continue };
            let Some(action) = menu.split("action=\"").nth(1).and_then(|rest| rest.split('"').next()) else {
                continue;
            };
            let action = action.replace("&amp;", "&");
            let digit = if serial % 2 == 0 { "1" } else { "2" };
            let keyed: Vec<(&str, &str)> = base.iter().copied().chain([("Digits", digit)]).collect();
            let Some(held) = self.webhook("ivr (route)", &action, &keyed).await else { continue };
            if !held.contains("/voice/wait") {
                continue;
            }
            self.acknowledged.lock().unwrap().push((call.clone(), Instant::now()));
            loop {
                if Instant::now() > self.until + GIVE_UP {
                    self.given_up.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                tokio::time::sleep(Duration::from_secs(HOLD_SECONDS)).await;
                let Some(waiting) = self.webhook("hold loop", "/voice/wait", &base).await else { continue };
                if waiting.contains("<Dial") {
                    tokio::time::sleep(TALK).await;
                    let done: Vec<(&str, &str)> = base
                        .iter()
                        .copied()
                        .chain([("DialCallStatus", "completed"), ("DialCallDuration", "3")])
                        .collect();
                    self.webhook("dial status", "/voice/dial-status", &done).await;
                    self.completed.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
        }
        self.lines_busy.fetch_sub(1, Ordering::SeqCst);
    }

    /// The baseline: the provider's fallback URL (fixed TwiML after the signature check), asked
    /// 50 times a second while the load runs, so that the hold loop and the IVR are compared
    /// with the cheapest signed webhook under the same load.
    async fn baseline(&self) {
        let params = [
            ("AccountSid", ACCOUNT_SID),
            ("CallSid", "CA0000000000000000000000000baseline"),
            ("From", "+15550100001"),
            ("To", "+15550100200"),
        ];
        let mut every = tokio::time::interval(Duration::from_millis(20));
        while Instant::now() < self.until {
            every.tick().await;
            self.webhook(BASELINE, "/voice/fallback", &params).await;
        }
    }

    /// An agent: accepts what is offered, completes what is wrapping up.
    async fn agent(&self, worker: String) {
        while Instant::now() < self.until || self.lines_busy.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let path = format!("/Workers/{worker}/Reservations?ReservationStatus=pending");
            if let Some(pending) = self.rest("agent: reservations", reqwest::Method::GET, &path, &[]).await {
                for reservation in pending["reservations"].as_array().into_iter().flatten() {
                    let sid = reservation["sid"].as_str().unwrap_or_default();
                    let path = format!("/Workers/{worker}/Reservations/{sid}");
                    self.rest(
                        "agent: accept",
                        reqwest::Method::POST,
                        &path,
                        &[("ReservationStatus", "accepted")],
                    )
                    .await;
                }
            }
            let path = format!("/Workers/{worker}/Reservations?ReservationStatus=wrapping");
            if let Some(wrapping) = self.rest("agent: reservations", reqwest::Method::GET, &path, &[]).await {
                for reservation in wrapping["reservations"].as_array().into_iter().flatten() {
                    let task = reservation["task_sid"].as_str().unwrap_or_default();
                    let form = [("AssignmentStatus", "completed"), ("Reason", "done")];
                    self.rest("agent: complete", reqwest::Method::POST, &format!("/Tasks/{task}"), &form)
                        .await;
                }
            }
        }
    }
}

/// The server's resident memory and the size of its data directory every 30 s, as the load
/// runs: whether memory levels off once ended tasks start to be purged (5 minutes after they
/// end), or keeps growing.
async fn memory_over_time(pid: u32, data: std::path::PathBuf, started: Instant) {
    let mut every = tokio::time::interval(Duration::from_secs(30));
    loop {
        every.tick().await;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss =
            status.lines().find_map(|line| line.strip_prefix("VmRSS:")).unwrap_or_default().trim().to_owned();
        let on_disk: u64 = walk_sizes(&data);
        println!("At {} s: RSS {rss}, data directory {} MiB", started.elapsed().as_secs(), on_disk >> 20);
    }
}

/// The server's peak resident memory so far (`VmHWM`).
fn peak_rss(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|line| line.strip_prefix("VmHWM:")).unwrap_or_default().trim().to_owned()
}

/// The bytes of every file under `dir`.
fn walk_sizes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => walk_sizes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// An error and every error under it: reqwest's own message does not say what the connection
/// saw.
fn causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn workspace_config() -> String {
    format!("[workspace]\nfriendly_name = \"Load\"\n{}", workspaces::sales_and_support(AGENTS, 30))
}

fn main() {
    let minutes: u64 = std::env::var("LOAD_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("switchboard.toml"), workspace_config()).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .current_dir(dir.path())
        .env("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_STORE_DATA_DIR", dir.path().join("data"))
        .env("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT_SID)
        .env("SWITCHBOARD_TWILIO_AUTH_TOKEN", TOKEN)
        .env("SWITCHBOARD_VOICE_WAIT_SECONDS", HOLD_SECONDS.to_string())
        .env("RUST_LOG", "warn,switchboard::app=info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let pid = server.id();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let address = loop {
        let line =
            lines.next().unwrap_or_else(|| panic!("the server did not start:\n{}", seen.join("\n"))).unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        seen.push(line);
    };
    std::thread::spawn(move || for _ in lines {});

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1_500).timeout(Duration::from_secs(30)).build().unwrap();
        let base = format!("http://{address}");
        let get = async |url: String| -> serde_json::Value {
            let response = client.get(url).basic_auth(ACCOUNT_SID, Some(TOKEN)).send().await.unwrap();
            response.json().await.unwrap()
        };
        let workspaces = get(format!("{base}/v1/Workspaces")).await;
        let workspace = workspaces["workspaces"][0]["sid"].as_str().unwrap().to_owned();
        let workers = get(format!("{base}/v1/Workspaces/{workspace}/Workers?PageSize=1000")).await;
        let workers: Vec<String> =
            workers["workers"].as_array().unwrap().iter().map(|w| w["sid"].as_str().unwrap().to_owned()).collect();
        let started = Instant::now();
        let load = Arc::new(Load {
            client,
            base,
            workspace,
            figures: Mutex::new(Figures { kinds: HashMap::new(), since: started }),
            acknowledged: Mutex::default(),
            completed: AtomicU64::default(),
            lines_busy: AtomicU64::new(CALLERS as u64),
            given_up: AtomicU64::default(),
            serial: AtomicU64::default(),
            until: started + Duration::from_secs(minutes * 60),
        });
        let mut handles = Vec::new();
        for worker in workers {
            let load = load.clone();
            handles.push(tokio::spawn(async move { load.agent(worker).await }));
        }
        for _ in 0..CALLERS {
            let load = load.clone();
            handles.push(tokio::spawn(async move { load.line().await }));
        }
        let baseline = load.clone();
        handles.push(tokio::spawn(async move { baseline.baseline().await }));
        let memory = tokio::spawn(memory_over_time(pid, dir.path().join("data"), started));
        for handle in handles {
            let _ = handle.await;
        }
        let elapsed = started.elapsed();
        memory.abort();
        // Read before the checks below, which list the whole event history at once.
        let peak_during_load = peak_rss(pid);

        // Lost: an acknowledged call never bridged, or without its task. Doubled: a call with
        // two tasks, or more tasks created than calls routed.
        let tasks = load.list_all("/Tasks?PageSize=1000", "tasks").await;
        let minutes_ago = elapsed.as_secs() / 60 + 2;
        let created = load.list_all(&format!("/Events?EventType=task.created&PageSize=1000&Minutes={minutes_ago}"), "events").await.len();
        let mut per_call: HashMap<String, usize> = HashMap::new();
        for task in &tasks {
            let attributes: serde_json::Value = serde_json::from_str(task["attributes"].as_str().unwrap()).unwrap();
            if let Some(call) = attributes["call_sid"].as_str() {
                *per_call.entry(call.to_owned()).or_default() += 1;
            }
        }
        let acknowledged = load.acknowledged.lock().unwrap().clone();
        // Ended tasks are purged 5 minutes after they end: a call acknowledged in the last 4
        // minutes must still have its task.
        let recent: Vec<&String> = acknowledged
            .iter()
            .filter(|(_, at)| at.elapsed() < Duration::from_secs(240))
            .map(|(call, _)| call)
            .collect();
        let never_bridged = load.given_up.load(Ordering::SeqCst) as usize;
        let lost = never_bridged + recent.iter().filter(|call| !per_call.contains_key(**call)).count();
        let doubled = per_call.values().filter(|count| **count > 1).count();
        let routing_errors = load.figures.lock().unwrap().kinds.get("ivr (route)").map_or(0, |kind| kind.errors);

        println!("Load: {CALLERS} callers at once, {AGENTS} agents, {} s, hold loop every {HOLD_SECONDS} s, talk {} s", elapsed.as_secs(), TALK.as_secs());
        println!("| Request | answered | errors | per second | p50 | p99 |");
        println!("|---|---|---|---|---|---|");
        let figures = load.figures.lock().unwrap();
        let mut kinds: Vec<_> = figures.kinds.iter().collect();
        kinds.sort_by_key(|(kind, _)| *kind);
        let mut percentiles = HashMap::new();
        for (kind, figures) in kinds {
            let mut sorted = figures.latencies.clone();
            sorted.sort_unstable();
            let at = |q: f64| {
                sorted.get(((sorted.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0) as f64 / 1000.0
            };
            println!(
                "| {kind} | {} | {} | {:.0} | {:.1} ms | {:.1} ms |",
                sorted.len(),
                figures.errors,
                sorted.len() as f64 / elapsed.as_secs_f64(),
                at(0.5),
                at(0.99)
            );
            percentiles.insert(*kind, (at(0.5), at(0.99)));
        }
        let (base50, base99) = percentiles[BASELINE];
        for kind in ["hold loop", "ivr (route)"] {
            let (p50, p99) = percentiles[kind];
            println!("{kind} ÷ {BASELINE}, same run: p50 {:.2}, p99 {:.2}", p50 / base50, p99 / base99);
        }
        for (kind, figures) in &figures.kinds {
            for (cause, (count, when)) in &figures.causes {
                let cause: String = cause.chars().take(300).collect();
                println!("Errors of {kind}: {count} x {cause}, at {when:?} s");
            }
        }
        println!(
            "Calls acknowledged (told to hold): {}; tasks created: {created}; bridged and completed: {}; never bridged: {never_bridged}; lost (never bridged, or of the {} acknowledged in the last 4 minutes, without their task): {lost}; with two tasks: {doubled}; server peak RSS during the load: {peak_during_load}, after the checks: {}",
            acknowledged.len(),
            load.completed.load(Ordering::SeqCst),
            recent.len(),
            peak_rss(pid)
        );
        assert_eq!((lost, doubled), (0, 0), "no call lost, none with two tasks");
        // A routing answer the client never read may have made a task: only then may tasks
        // outnumber the calls told to hold. A capped event history (set through the server's
        // environment) no longer holds every task.created.
        let history_capped = std::env::var_os("SWITCHBOARD_STORE_EVENT_MAX_COUNT").is_some();
        assert!(
            history_capped ||
            created == acknowledged.len() || (created > acknowledged.len() && created - acknowledged.len() <= routing_errors as usize),
            "{created} tasks for {} calls",
            acknowledged.len()
        );
    });
    let _ = server.kill();
    let _ = server.wait();
}
