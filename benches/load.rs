//! A contact center's day on loopback (issues #9 and #17): 1,000 callers at once going through
//! the IVR and holding, 100 texters, 200 agents accepting and completing, and a wallboard
//! polling 100 queues' statistics every second, against the release `switchboard serve` in
//! durable mode. Reports throughput, p50/p99/max latency per kind of request, the server's
//! memory (RSS) and data directory over time, and the calls and texts lost (acknowledged, yet
//! without their task in the end): that must be 0. At the end, with the history at its cap, the
//! wallboard alone is measured against the idle server: its cost in CPU.
//!
//! Run: `cargo bench --bench load` (3 minutes of load); `LOAD_MINUTES=60 cargo bench --bench
//! load` for the soak. Every 30 s the server's RSS, its data directory, and each interval's
//! hold-loop and baseline p99 and slowest request go to `target/load-series.csv`
//! (`LOAD_SERIES` to change), which `python3 benches/plot-load.py` draws as a PNG.
//! `LOAD_DATA_DIR` puts the server's data directory there and keeps it, to look into.
//!
//! A caller: the menu, presses 1 or 2, then the hold loop every
//! `HOLD_SECONDS` until bridged, talks `TALK` and hangs up (dial status completed); a new caller
//! takes their place, so 1,000 are always in the system. An agent (the REST API, as an agent
//! page or a script would): polls their reservations, accepts, completes the task when the call
//! ends. A texter (one customer number each, as returning customers): texts, picks 1 or 2,
//! texts again while served, and starts over half a minute later; the agent who accepts a text
//! replies once (the conversation API) and completes it 10 s later through the REST API, which
//! sends the closing text. The provider's messages API is a listener of this program's that
//! takes every text. Every webhook is signed and checked. Beside them, the static fallback TwiML is asked
//! 50 times a second as the baseline of the same run, and the server's RSS and data directory
//! are printed every 30 s. The server inherits the environment, so its settings can be changed
//! for a run (`SWITCHBOARD_STORE_EVENT_MAX_COUNT=100000`, say).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
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
/// Each call talks [`TALK`] and up to this much more, and each line starts up to
/// [`STAGGER`] after the load begins (texters up to [`TEXTER_STAGGER`]).
const TALK_SPREAD: Duration = Duration::from_secs(2);
const STAGGER: Duration = Duration::from_secs(5);
const TEXTER_STAGGER: Duration = Duration::from_secs(30);
/// A caller still holding this long after the load ends was never bridged: lost.
const GIVE_UP: Duration = Duration::from_secs(120);
const TEXTERS: usize = 100;
/// How long an agent keeps a text conversation before completing it.
const TEXT_TALK: Duration = Duration::from_secs(10);
/// Queues on the wallboard, each one's `Statistics` asked once a second.
const WALLBOARD_QUEUES: usize = 100;
/// The series' interval: RSS, data directory, p99 and the slowest request per interval.
const SAMPLE_EVERY: u64 = 30;
/// A request slower than this stalled.
const STALL: Duration = Duration::from_millis(100);
/// How long the wallboard alone, then nothing, is measured at the end.
const CPU_WINDOW: Duration = Duration::from_secs(30);

/// The kind of request the others are compared with.
const BASELINE: &str = "baseline: static TwiML";
/// Prometheus' scrape of `/metrics`, once a second in every other interval.
const SCRAPE: &str = "metrics: scrape";
const METRICS_TOKEN: &str = "load-metrics-token";

/// Whether `/metrics` is scraped `seconds` into the run: in the odd intervals of
/// [`SAMPLE_EVERY`] seconds.
fn scraping_in(seconds: u64) -> bool {
    (seconds / SAMPLE_EVERY) % 2 == 1
}

/// Latencies of one kind of request.
#[derive(Default)]
struct Kind {
    /// Seconds into the run, and the latency in microseconds.
    latencies: Vec<(u32, u64)>,
    errors: u64,
    /// Why requests failed (a status, or the client's error): how often, and when (seconds
    /// into the run).
    causes: HashMap<String, (u64, Vec<u64>)>,
}

/// When the bench started: the clock of its own and the server's slow moments.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn since_start(at: Instant) -> f64 {
    at.duration_since(*EPOCH.get_or_init(Instant::now)).as_secs_f64()
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
            Ok(()) => {
                let at = started.duration_since(self.since).as_secs() as u32;
                let took = started.elapsed();
                entry.latencies.push((at, took.as_micros() as u64));
                if took > STALL {
                    // Beside the server's slow flushes and snapshots (same clock), for the cause.
                    println!(
                        "[{:9.3} s] {kind} took {:.1} ms",
                        since_start(started),
                        took.as_secs_f64() * 1e3
                    );
                }
            }
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
    /// Text conversations handed to the agents: customer, and when.
    texts_acknowledged: Mutex<Vec<(String, Instant)>>,
    completed: AtomicU64,
    texts_completed: AtomicU64,
    /// The wallboard's queues.
    queues: Vec<String>,
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
    async fn line(&self, line: usize) {
        // Lines start spread over the first few seconds, and calls last a little more or less,
        // so that the callers do not move in step: a thousand menus asked in the same instant,
        // again and again, is a load generator's artefact, not a contact center.
        tokio::time::sleep(scattered(line, STAGGER)).await;
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
                    tokio::time::sleep(TALK + scattered(serial as usize, TALK_SPREAD)).await;
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

    /// One returning customer texting, conversation after conversation, until the time is up.
    async fn texter(&self, number: usize) {
        let customer = format!("+1556{number:07}");
        tokio::time::sleep(scattered(number, TEXTER_STAGGER)).await;
        while Instant::now() < self.until {
            let serial = self.serial.fetch_add(1, Ordering::SeqCst);
            let text = async |kind: &'static str, n: u64, body: &str| {
                let sid = format!("SM{serial:030}{n:02}");
                let params = [
                    ("AccountSid", ACCOUNT_SID),
                    ("MessageSid", sid.as_str()),
                    ("From", customer.as_str()),
                    ("To", "+15550100200"),
                    ("Body", body),
                ];
                self.webhook(kind, "/sms/incoming", &params).await
            };
            let menu = text("sms", 0, "hello").await;
            // Still with an agent (texted again early): the text joins the conversation.
            if menu.as_deref().is_some_and(|menu| menu.contains("Reply 1")) {
                let digit = if serial % 2 == 0 { "1" } else { "2" };
                if text("sms (route)", 1, digit)
                    .await
                    .is_some_and(|answer| answer.contains("An agent will text"))
                {
                    self.texts_acknowledged.lock().unwrap().push((customer.clone(), Instant::now()));
                }
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            text("sms", 2, "thanks, still there?").await;
            tokio::time::sleep(Duration::from_secs(25)).await;
        }
    }

    /// A wallboard: each queue's `Statistics` (real-time and cumulative) once a second, spread
    /// over the second, until `until`. Each request is sent on its own, as a wallboard's
    /// panels refresh independently: a slow answer does not hold back the next.
    async fn wallboard(self: Arc<Self>, until: Instant) {
        let spacing = Duration::from_secs(1) / WALLBOARD_QUEUES as u32;
        let mut every = tokio::time::interval(spacing);
        let mut queues = self.queues.clone().into_iter().cycle();
        let mut asked = Vec::new();
        while Instant::now() < until {
            every.tick().await;
            let queue = queues.next().expect("queues");
            let load = self.clone();
            asked.push(tokio::spawn(async move {
                let path = format!("/TaskQueues/{queue}/Statistics");
                load.rest("wallboard: queue statistics", reqwest::Method::GET, &path, &[]).await;
            }));
            asked.retain(|request| !request.is_finished());
        }
        for request in asked {
            let _ = request.await;
        }
    }

    /// The agent's text reply, through the conversation API (as the account: the agents here
    /// are scripts with the account's credentials, not signed-in pages).
    async fn agent_reply(&self, task: &str) {
        let url = format!("{}/agent/api/conversations/{task}/messages", self.base);
        let started = Instant::now();
        let answer = self
            .client
            .post(url)
            .basic_auth(ACCOUNT_SID, Some(TOKEN))
            .form(&[("Body", "Hello, this is your agent.")])
            .send()
            .await
            .map_err(|err| format!("request: {}", causes(&err)))
            .and_then(|response| match response.status() {
                status if status.is_success() => Ok(()),
                status => Err(status.to_string()),
            });
        self.figures.lock().unwrap().record("agent: text reply", started, answer);
    }

    /// The baseline: the provider's fallback URL (fixed TwiML after the signature check), asked
    /// 50 times a second while the load runs, so that the hold loop and the IVR are compared
    /// with the cheapest signed webhook under the same load.
    /// Prometheus: `/metrics` once a second, in every other interval of [`SAMPLE_EVERY`]
    /// seconds (the odd ones), so that the run compares its intervals with and without.
    async fn scraper(&self) {
        let url = format!("{}/metrics", self.base);
        let mut every = tokio::time::interval(Duration::from_secs(1));
        while Instant::now() < self.until {
            every.tick().await;
            if !scraping_in(self.since_start().as_secs()) {
                continue;
            }
            self.scrape(&url).await;
        }
    }

    async fn scrape(&self, url: &str) {
        let started = Instant::now();
        let answer = async {
            let response = self
                .client
                .get(url)
                .bearer_auth(METRICS_TOKEN)
                .send()
                .await
                .map_err(|err| format!("request: {}", causes(&err)))?;
            let status = response.status();
            let text = response.text().await.map_err(|err| format!("answer: {err}"))?;
            if status == reqwest::StatusCode::OK && text.contains("switchboard_tasks") {
                Ok(())
            } else {
                Err(format!("{status}: {}", text.chars().take(200).collect::<String>()))
            }
        }
        .await;
        self.figures.lock().unwrap().record(SCRAPE, started, answer);
    }

    fn since_start(&self) -> Duration {
        self.figures.lock().unwrap().since.elapsed()
    }

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

    /// An agent: accepts what is offered, replies to a text once and completes it after
    /// [`TEXT_TALK`], completes a call once it is wrapping up.
    async fn agent(&self, worker: String) {
        let mut texts: Vec<(String, Instant)> = Vec::new();
        while Instant::now() < self.until || self.lines_busy.load(Ordering::SeqCst) > 0 || !texts.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let path = format!("/Workers/{worker}/Reservations?ReservationStatus=pending");
            if let Some(pending) = self.rest("agent: reservations", reqwest::Method::GET, &path, &[]).await {
                for reservation in pending["reservations"].as_array().into_iter().flatten() {
                    let sid = reservation["sid"].as_str().unwrap_or_default();
                    let task = reservation["task_sid"].as_str().unwrap_or_default().to_owned();
                    let path = format!("/Workers/{worker}/Reservations/{sid}");
                    let accepted = self
                        .rest(
                            "agent: accept",
                            reqwest::Method::POST,
                            &path,
                            &[("ReservationStatus", "accepted")],
                        )
                        .await;
                    if accepted.is_none() {
                        continue;
                    }
                    let Some(details) =
                        self.rest("agent: task", reqwest::Method::GET, &format!("/Tasks/{task}"), &[]).await
                    else {
                        continue;
                    };
                    if details["task_channel_unique_name"] == "sms" {
                        self.agent_reply(&task).await;
                        texts.push((task, Instant::now()));
                    }
                }
            }
            let (due, later): (Vec<_>, Vec<_>) =
                texts.into_iter().partition(|(_, at)| at.elapsed() >= TEXT_TALK);
            texts = later;
            for (task, _) in due {
                let form = [("AssignmentStatus", "completed"), ("Reason", "answered by text")];
                if self
                    .rest("agent: complete text", reqwest::Method::POST, &format!("/Tasks/{task}"), &form)
                    .await
                    .is_some()
                {
                    self.texts_completed.fetch_add(1, Ordering::SeqCst);
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

/// The provider's messages API: takes every text (201 with a message SID), on keep-alive
/// connections, and counts them.
async fn messages_api(listener: tokio::net::TcpListener, taken: Arc<AtomicU64>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        let taken = taken.clone();
        tokio::spawn(async move {
            let mut stream = tokio::io::BufReader::new(stream);
            loop {
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    match stream.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if stream.read_exact(&mut body).await.is_err() {
                    return;
                }
                let n = taken.fetch_add(1, Ordering::SeqCst) + 1;
                let answer = format!(r#"{{"sid": "SM{n:032x}", "status": "queued"}}"#);
                let head = format!(
                    "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    answer.len()
                );
                if stream.get_mut().write_all(format!("{head}{answer}").as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// One sample of the series: seconds into the run, the server's RSS (KiB) and its data
/// directory (bytes).
type Sample = (u64, u64, u64);

/// The server's CPU time so far (user + system), from `/proc/{pid}/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |n: usize| fields.get(n).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let hz = 100.0;
    (ticks(11) + ticks(12)) / hz
}

/// The server's resident memory and the size of its data directory every [`SAMPLE_EVERY`]
/// seconds, as the load runs: whether memory and disk level off once ended tasks are purged
/// (5 minutes after they end) and the event history reaches its cap, or keep growing.
async fn memory_over_time(pid: u32, data: PathBuf, started: Instant, samples: Arc<Mutex<Vec<Sample>>>) {
    let mut every = tokio::time::interval(Duration::from_secs(SAMPLE_EVERY));
    loop {
        every.tick().await;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let on_disk: u64 = walk_sizes(&data);
        let at = started.elapsed().as_secs();
        println!("At {at} s: RSS {} MiB, data directory {} MiB", rss >> 10, on_disk >> 20);
        samples.lock().unwrap().push((at, rss, on_disk));
    }
}

/// A deterministic point in `0..spread` for `n`: the same run spreads the same way.
fn scattered(n: usize, spread: Duration) -> Duration {
    let millis = spread.as_millis().max(1) as u64;
    Duration::from_millis((n as u64).wrapping_mul(7919) % millis)
}

/// The `q` quantile of `sorted` microseconds, in milliseconds (0 for none).
fn percentile(sorted: &[u64], q: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0) as f64 / 1000.0
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
    EPOCH.get_or_init(Instant::now);
    let minutes: u64 = std::env::var("LOAD_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    // `LOAD_DATA_DIR` keeps the server's data directory after the run, to look into.
    let data_dir = std::env::var_os("LOAD_DATA_DIR").map_or_else(|| dir.path().join("data"), PathBuf::from);
    std::fs::write(dir.path().join("switchboard.toml"), workspace_config()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let texts_taken = Arc::new(AtomicU64::default());
    let messages = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let messages_base = format!("http://{}", messages.local_addr().unwrap());
    runtime.spawn(messages_api(messages, texts_taken.clone()));
    let mut server = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .current_dir(dir.path())
        .env("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_STORE_DATA_DIR", &data_dir)
        .env("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT_SID)
        .env("SWITCHBOARD_TWILIO_AUTH_TOKEN", TOKEN)
        .env("SWITCHBOARD_VOICE_WAIT_SECONDS", HOLD_SECONDS.to_string())
        // The bench plays the provider's webhooks, without a Voice API: `<Dial>` bridging.
        .env("SWITCHBOARD_VOICE_BRIDGE", "dial")
        .env("SWITCHBOARD_SMS_API_BASE", &messages_base)
        .env("SWITCHBOARD_METRICS_TOKEN", METRICS_TOKEN)
        .env("RUST_LOG", "warn,switchboard::app=info,switchboard::live=debug")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let pid = server.id();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    // Killed however this ends, a failed check included: a server left running would load
    // the next run's machine.
    let _server = KillOnDrop(server);
    let mut seen = Vec::new();
    let address = loop {
        let line =
            lines.next().unwrap_or_else(|| panic!("the server did not start:\n{}", seen.join("\n"))).unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        seen.push(line);
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("took long") || line.contains("snapshot written") {
                println!("[{:9.3} s] server: {line}", since_start(Instant::now()));
            }
        }
    });

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
        // The wallboard's queues: the workspace's, and more, each matching a skill nobody has
        // (a center's queues beyond the two the load routes to).
        let queues_url = format!("{base}/v1/Workspaces/{workspace}/TaskQueues");
        let existing = get(format!("{queues_url}?PageSize=1000")).await["task_queues"].as_array().unwrap().len();
        for n in existing..WALLBOARD_QUEUES {
            let form = [("FriendlyName", format!("Wallboard {n}")), ("TargetWorkers", format!("routing.skills HAS \"Queue{n}\""))];
            let created = client.post(&queues_url).basic_auth(ACCOUNT_SID, Some(TOKEN)).form(&form).send().await.unwrap();
            assert!(created.status().is_success(), "queue {n}: {}", created.status());
        }
        let queues = get(format!("{queues_url}?PageSize=1000")).await;
        let queues: Vec<String> =
            queues["task_queues"].as_array().unwrap().iter().map(|q| q["sid"].as_str().unwrap().to_owned()).collect();
        let started = Instant::now();
        let load = Arc::new(Load {
            client,
            base,
            workspace,
            figures: Mutex::new(Figures { kinds: HashMap::new(), since: started }),
            acknowledged: Mutex::default(),
            texts_acknowledged: Mutex::default(),
            completed: AtomicU64::default(),
            texts_completed: AtomicU64::default(),
            queues,
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
        for line in 0..CALLERS {
            let load = load.clone();
            handles.push(tokio::spawn(async move { load.line(line).await }));
        }
        for number in 0..TEXTERS {
            let load = load.clone();
            handles.push(tokio::spawn(async move { load.texter(number).await }));
        }
        let wallboard = load.clone();
        handles.push(tokio::spawn(async move {
            let until = wallboard.until;
            wallboard.wallboard(until).await
        }));
        let baseline = load.clone();
        handles.push(tokio::spawn(async move { baseline.baseline().await }));
        let scraper = load.clone();
        handles.push(tokio::spawn(async move { scraper.scraper().await }));
        let cpu_before_load = cpu_seconds(pid);
        let samples = Arc::new(Mutex::new(Vec::new()));
        let memory = tokio::spawn(memory_over_time(pid, data_dir.clone(), started, samples.clone()));
        for handle in handles {
            let _ = handle.await;
        }
        let elapsed = started.elapsed();
        let load_cpu = cpu_seconds(pid) - cpu_before_load;
        memory.abort();
        // Read before the checks below, which list the whole event history at once.
        let peak_during_load = peak_rss(pid);

        // Lost: an acknowledged call never bridged, or without its task. Doubled: a call with
        // two tasks, or more tasks created than calls routed.
        let tasks = load.list_all("/Tasks?PageSize=1000", "tasks").await;
        let minutes_ago = elapsed.as_secs() / 60 + 2;
        let created = load.list_all(&format!("/Events?EventType=task.created&PageSize=1000&Minutes={minutes_ago}"), "events").await.len();
        let mut per_call: HashMap<String, usize> = HashMap::new();
        let mut per_customer: HashMap<String, usize> = HashMap::new();
        for task in &tasks {
            let attributes: serde_json::Value = serde_json::from_str(task["attributes"].as_str().unwrap()).unwrap();
            if let Some(call) = attributes["call_sid"].as_str() {
                *per_call.entry(call.to_owned()).or_default() += 1;
            }
            if attributes["channel"] == "sms"
                && let Some(customer) = attributes["from"].as_str()
            {
                *per_customer.entry(customer.to_owned()).or_default() += 1;
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
        let routing_errors = {
            let figures = load.figures.lock().unwrap();
            let errors = |kind: &str| figures.kinds.get(kind).map_or(0, |kind| kind.errors) as usize;
            errors("ivr (route)") + errors("sms (route)")
        };
        // A text conversation handed over in the last 4 minutes has its task still listed: each
        // customer has at least as many sms tasks as conversations handed over lately.
        let mut texts_recent: HashMap<String, usize> = HashMap::new();
        for (customer, at) in load.texts_acknowledged.lock().unwrap().iter() {
            if at.elapsed() < Duration::from_secs(240) {
                *texts_recent.entry(customer.clone()).or_default() += 1;
            }
        }
        let texts_handed_over = load.texts_acknowledged.lock().unwrap().len();
        let texts_lost: usize = texts_recent
            .iter()
            .map(|(customer, count)| count.saturating_sub(*per_customer.get(customer).unwrap_or(&0)))
            .sum();

        println!(
            "Load: {CALLERS} callers at once, {TEXTERS} texters, {AGENTS} agents, a wallboard of {} queues each second, {} s, hold loop every {HOLD_SECONDS} s, talk {} s",
            load.queues.len(),
            elapsed.as_secs(),
            TALK.as_secs()
        );
        println!("| Request | answered | errors | per second | p50 | p99 | slowest | over {} ms |", STALL.as_millis());
        println!("|---|---|---|---|---|---|---|---|");
        // Taken out: the wallboard measured below records into a fresh set.
        let figures = std::mem::replace(
            &mut *load.figures.lock().unwrap(),
            Figures { kinds: HashMap::new(), since: started },
        );
        let mut kinds: Vec<_> = figures.kinds.iter().collect();
        kinds.sort_by_key(|(kind, _)| *kind);
        let mut percentiles = HashMap::new();
        let (mut failed, mut stalled) = (0, 0);
        for (kind, figures) in kinds {
            let mut sorted: Vec<u64> = figures.latencies.iter().map(|(_, micros)| *micros).collect();
            sorted.sort_unstable();
            let slow = sorted.iter().filter(|micros| **micros > STALL.as_micros() as u64).count();
            failed += figures.errors;
            stalled += slow;
            println!(
                "| {kind} | {} | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {slow} |",
                sorted.len(),
                figures.errors,
                sorted.len() as f64 / elapsed.as_secs_f64(),
                percentile(&sorted, 0.5),
                percentile(&sorted, 0.99),
                percentile(&sorted, 1.0),
            );
            percentiles.insert(*kind, (percentile(&sorted, 0.5), percentile(&sorted, 0.99)));
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
        println!(
            "Texts handed to agents: {texts_handed_over}; completed by the agents: {}; lost (of the {} handed over in the last 4 minutes, without their task): {texts_lost}; texts the provider took (replies and closings): {}",
            load.texts_completed.load(Ordering::SeqCst),
            texts_recent.values().sum::<usize>(),
            texts_taken.load(Ordering::SeqCst)
        );

        // Scraping /metrics or not, interval by interval: the same figures of the load, whole
        // intervals only, the scraper's own requests left out, and the first interval too (the
        // 1,000 callers ringing at once in its first seconds; nobody scrapes then).
        let intervals = elapsed.as_secs() / SAMPLE_EVERY;
        let of_intervals = |scraping: bool, kind: &str| {
            let mut latencies: Vec<u64> = figures.kinds.get(kind).map_or(Vec::new(), |kind| {
                kind.latencies
                    .iter()
                    .filter(|(at, _)| {
                        let interval = u64::from(*at) / SAMPLE_EVERY;
                        (1..intervals).contains(&interval) && scraping_in(u64::from(*at)) == scraping
                    })
                    .map(|(_, micros)| *micros)
                    .collect()
            });
            latencies.sort_unstable();
            latencies
        };
        let answered = |scraping: bool| {
            figures.kinds.keys().filter(|kind| **kind != SCRAPE).map(|kind| of_intervals(scraping, kind).len()).sum::<usize>()
        };
        let scraping_intervals = (1..intervals).filter(|interval| scraping_in(interval * SAMPLE_EVERY)).count().max(1);
        let quiet_intervals = (intervals.saturating_sub(1) as usize).saturating_sub(scraping_intervals).max(1);
        let rate = |scraping: bool, count: usize| count as f64 / ((if scraping { scraping_intervals } else { quiet_intervals }) as f64 * SAMPLE_EVERY as f64);
        let (rate_on, rate_off) = (rate(true, answered(true)), rate(false, answered(false)));
        println!("Scraping /metrics once a second, in every other {SAMPLE_EVERY} s interval ({scraping_intervals} intervals with, {quiet_intervals} without):");
        println!("| Figure | without scraping | with scraping | with ÷ without |");
        println!("|---|---|---|---|");
        println!("| requests answered per second | {rate_off:.0} | {rate_on:.0} | {:.3} |", rate_on / rate_off);
        for kind in ["hold loop", "ivr (route)", "agent: accept", BASELINE] {
            let (on, off) = (of_intervals(true, kind), of_intervals(false, kind));
            for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
                let (with, without) = (percentile(&on, q), percentile(&off, q));
                println!("| {kind} {name} | {without:.2} ms | {with:.2} ms | {:.3} |", with / without);
            }
        }
        let scrapes = of_intervals(true, SCRAPE);
        println!(
            "| the scrape itself | | p50 {:.1} ms, p99 {:.1} ms, {} scrapes | |",
            percentile(&scrapes, 0.5),
            percentile(&scrapes, 0.99),
            scrapes.len()
        );

        // The series, per interval: RSS, data directory, hold-loop and baseline p99, slowest.
        let samples = samples.lock().unwrap().clone();
        let interval_p99 = |kind: &str, from: u64| {
            let mut window: Vec<u64> = figures.kinds.get(kind).map_or(Vec::new(), |kind| {
                kind.latencies.iter().filter(|(at, _)| u64::from(*at) / SAMPLE_EVERY == from / SAMPLE_EVERY).map(|(_, micros)| *micros).collect()
            });
            window.sort_unstable();
            percentile(&window, 0.99)
        };
        let slowest_in = |from: u64| {
            figures
                .kinds
                .iter()
                .filter(|(kind, _)| **kind != "check")
                .flat_map(|(_, kind)| kind.latencies.iter())
                .filter(|(at, _)| u64::from(*at) / SAMPLE_EVERY == from / SAMPLE_EVERY)
                .map(|(_, micros)| *micros as f64 / 1000.0)
                .fold(0.0, f64::max)
        };
        let series_path = std::env::var("LOAD_SERIES").unwrap_or_else(|_| format!("{}/target/load-series.csv", env!("CARGO_MANIFEST_DIR")));
        let mut csv = String::from("seconds,rss_mib,data_mib,hold_p99_ms,baseline_p99_ms,slowest_ms\n");
        for &(at, rss, on_disk) in &samples {
            // The interval that ended at this sample.
            let from = at.saturating_sub(1);
            csv.push_str(&format!(
                "{at},{:.1},{:.1},{:.2},{:.2},{:.1}\n",
                rss as f64 / 1024.0,
                on_disk as f64 / 1048576.0,
                interval_p99("hold loop", from),
                interval_p99(BASELINE, from),
                slowest_in(from)
            ));
        }
        std::fs::write(&series_path, &csv).unwrap_or_else(|err| panic!("{series_path}: {err}"));
        println!("Series written to {series_path}");
        // Level over the second half of the run: the spread of RSS and of the data directory
        // around their mean.
        let second_half: Vec<&Sample> = samples.iter().filter(|(at, _, _)| *at * 2 >= elapsed.as_secs()).collect();
        let spread = |values: Vec<f64>| {
            let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
            let (low, high) = values.iter().fold((f64::MAX, f64::MIN), |(low, high), v| (low.min(*v), high.max(*v)));
            (mean, (low - mean) / mean * 100.0, (high - mean) / mean * 100.0)
        };
        let (rss_mean, rss_low, rss_high) = spread(second_half.iter().map(|(_, rss, _)| *rss as f64 / 1024.0).collect());
        let (disk_mean, disk_low, disk_high) = spread(second_half.iter().map(|(_, _, disk)| *disk as f64 / 1048576.0).collect());

        // The wallboard's cost: the server's CPU with the wallboard alone, less its CPU idle,
        // with the history as the run left it.
        let before_idle = cpu_seconds(pid);
        tokio::time::sleep(CPU_WINDOW).await;
        let idle = cpu_seconds(pid) - before_idle;
        let before_wallboard = cpu_seconds(pid);
        load.clone().wallboard(Instant::now() + CPU_WINDOW).await;
        let wallboard = cpu_seconds(pid) - before_wallboard;
        let window = CPU_WINDOW.as_secs_f64();
        let wallboard_cost = (wallboard - idle) / window * 100.0;
        println!(
            "Wallboard alone ({} queues' Statistics each second, {} s): server CPU {:.2} s, idle {:.2} s over the same time: {wallboard_cost:.2}% of one core",
            load.queues.len(),
            CPU_WINDOW.as_secs(),
            wallboard,
            idle
        );

        // The scrape's cost: the server's CPU scraped once a second alone, less idle, beside the
        // CPU the load took each second.
        let before_scraping = cpu_seconds(pid);
        let metrics_url = format!("{}/metrics", load.base);
        let scraping_until = Instant::now() + CPU_WINDOW;
        while Instant::now() < scraping_until {
            load.scrape(&metrics_url).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let scraping = cpu_seconds(pid) - before_scraping;
        let scrape_cost = (scraping - idle) / window;
        let load_per_second = load_cpu / elapsed.as_secs_f64();
        println!(
            "Scraping /metrics alone once a second ({} s): server CPU {scraping:.2} s, idle {idle:.2} s: {:.2}% of one core; the load took {:.0}% of one core: scraping adds {:.2}% to it",
            CPU_WINDOW.as_secs(),
            scrape_cost * 100.0,
            load_per_second * 100.0,
            scrape_cost / load_per_second * 100.0
        );

        let (hold99, base99) = (percentiles["hold loop"].1, percentiles[BASELINE].1);
        println!("Verdicts:");
        println!("- failed requests: {failed} (want 0)");
        println!("- calls lost: {lost}, texts lost: {texts_lost} (want 0)");
        println!("- RSS over the second half: mean {rss_mean:.0} MiB, {rss_low:+.1}% to {rss_high:+.1}% (want within ±10%)");
        println!("- data directory over the second half: mean {disk_mean:.0} MiB, {disk_low:+.1}% to {disk_high:+.1}%");
        println!("- hold-loop p99 {hold99:.1} ms = {:.2}× the baseline's {base99:.1} ms (want within 2×)", hold99 / base99);
        println!("- requests over {} ms: {stalled} (want 0)", STALL.as_millis());
        println!("- wallboard: {wallboard_cost:.2}% of one core (want under 5%)");
        println!(
            "- scraping /metrics once a second: {:.2}% more CPU than the load alone; requests per second {:+.1}% (want under 2%)",
            scrape_cost / load_per_second * 100.0,
            (rate_on / rate_off - 1.0) * 100.0
        );
        assert_eq!((lost, doubled, texts_lost), (0, 0, 0), "no call or text lost, no call with two tasks");
        // A routing answer the client never read may have made a task: only then may tasks
        // outnumber the calls and texts handed over. Fewer task.created events than that means
        // the history reached its cap (store.event_max_count) and the oldest are gone: the
        // checks of every call's and text's own task above still hold.
        let handed_over = acknowledged.len() + texts_handed_over;
        assert!(
            created <= handed_over + routing_errors,
            "{created} tasks for {} calls and {texts_handed_over} texts",
            acknowledged.len()
        );
    });
}

/// A child process killed (and reaped) when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
