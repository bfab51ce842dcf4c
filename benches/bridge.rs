//! Accept → caller connected (issue #18): how long after an agent accepts does the caller leave
//! the hold loop toward them, with conference bridging (the caller is moved at once through the
//! Voice API) and, as the baseline in the same run, with `<Dial>` bridging (the caller's next
//! hold-loop request). Not a criterion benchmark: a contact center played out on loopback.
//!
//! Run: `cargo bench --bench bridge` (about two minutes). For each mode it starts the release
//! `switchboard serve` (durable, flush mode) with 200 agents, all Sales and Available, and the
//! release `switchboard provider` (time at the wall clock's pace) as its provider. 200 agent
//! pages are played as the browser plays them: each signs in, follows its event stream, accepts
//! the first offer it sees, waits until its caller is connected, talks for a second and the
//! caller hangs up; the agent then completes the task and takes the next. Callers ring at 100
//! per second, press 1 and wait. The latency of each call runs from the moment the agent page
//! sent the accept to the moment the emulator's call left the hold loop (`bridged_at_ms`: it
//! joined the task's conference, or started the `<Dial>`), both on this machine's wall clock.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::watch;

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "bench-token";
const AGENTS: usize = 200;
const CALLERS: usize = 1_000;
/// The baseline's callers: enough for its distribution, whose spread is the hold loop's 5 s.
const DIAL_CALLERS: usize = 400;
const CALLERS_PER_SECOND: f64 = 100.0;
const TALK: Duration = Duration::from_secs(1);
const RUN_LIMIT: Duration = Duration::from_secs(600);

fn main() {
    let conference = run("conference", CALLERS);
    let dial = run("dial", DIAL_CALLERS);
    println!("| Bridging | Callers | Connected | Accept → caller connected: p50 / p90 / p99 / max |");
    println!("|---|---|---|---|");
    for (mode, outcome) in [
        ("conference (Calls update at the accept)", &conference),
        ("`<Dial>` (next hold-loop request), baseline", &dial),
    ] {
        println!(
            "| {mode} | {} | {} | {} |",
            outcome.callers,
            outcome.latencies.len(),
            outcome.percentiles()
        );
    }
    println!(
        "| Ratio, baseline / conference | | | p50 {:.0}×, p99 {:.0}× |",
        dial.percentile(50) as f64 / conference.percentile(50).max(1) as f64,
        dial.percentile(99) as f64 / conference.percentile(99).max(1) as f64
    );
    assert_eq!(conference.latencies.len(), CALLERS, "every caller was connected");
    assert_eq!(dial.latencies.len(), DIAL_CALLERS, "every caller was connected");
}

struct Outcome {
    callers: usize,
    /// Accept → connected, in milliseconds, sorted.
    latencies: Vec<u64>,
}

impl Outcome {
    fn percentile(&self, p: usize) -> u64 {
        self.latencies
            .get((self.latencies.len() * p / 100).min(self.latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    }

    fn percentiles(&self) -> String {
        format!(
            "{} / {} / {} / {} ms",
            self.percentile(50),
            self.percentile(90),
            self.percentile(99),
            self.latencies.last().copied().unwrap_or(0)
        )
    }
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn config(mode: &str, port: u16, provider_port: u16, data: &std::path::Path) -> String {
    let mut config = format!(
        r#"
[http]
listen = "127.0.0.1:{port}"

[store]
data_dir = "{data}"

[twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"

[voice]
ivr_dir = "{ivr}"
bridge = "{mode}"
api_base = "http://127.0.0.1:{provider_port}"

[workspace]
[[workspace.skills]]
name = "Sales"

[[workspace.queues]]
name = "Sales"
skill = "Sales"

[[workspace.workflows]]
name = "Sales and Support Workflow"
task_reservation_timeout = 600
default_queue = "Sales"
"#,
        data = data.display(),
        ivr = concat!(env!("CARGO_MANIFEST_DIR"), "/ivr"),
    );
    for agent in 0..AGENTS {
        config.push_str(&format!(
            "\n[[workspace.workers]]\nname = \"agent{agent}\"\nactivity = \"Available\"\nskills = [\"Sales\"]\nattributes = {{ contact_uri = \"client:agent{agent}\" }}\n"
        ));
    }
    config
}

fn run(mode: &str, callers: usize) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let (port, provider_port) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("switchboard.toml"),
        config(mode, port, provider_port, &dir.path().join("data")),
    )
    .unwrap();
    let server = spawn(Command::new(env!("CARGO_BIN_EXE_switchboard")).arg("serve").current_dir(dir.path()));
    let provider = spawn(Command::new(env!("CARGO_BIN_EXE_switchboard")).current_dir(dir.path()).args([
        "provider",
        "--listen",
        &format!("127.0.0.1:{provider_port}"),
        "--server",
        &format!("http://127.0.0.1:{port}"),
        "--account-sid",
        ACCOUNT_SID,
        "--auth-token",
        AUTH_TOKEN,
    ]));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let outcome = runtime.block_on(play(port, provider_port, callers));
    drop((server, provider));
    outcome
}

fn spawn(command: &mut Command) -> Running {
    command.env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::null());
    Running(command.spawn().expect("switchboard starts"))
}

async fn play(port: u16, provider_port: u16, callers: usize) -> Outcome {
    let server = format!("http://127.0.0.1:{port}");
    let provider = format!("http://127.0.0.1:{provider_port}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build().unwrap();
    // Both listen once their "listening" line is out; knocking is simpler than reading it.
    for url in [format!("{server}/healthz"), format!("{provider}/emulator/conferences")] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(&url).send().await.is_err() {
            assert!(Instant::now() < deadline, "{url} never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let workspaces =
        json_of(http.get(format!("{server}/v1/Workspaces")).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))).await;
    let workspace = workspaces["workspaces"][0]["sid"].as_str().unwrap().to_owned();
    let workers = format!("{server}/v1/Workspaces/{workspace}/Workers?PageSize=1000");
    let workers = json_of(http.get(workers).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))).await;
    let accepted: Arc<Mutex<Vec<(String, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut agents = Vec::new();
    for worker in workers["workers"].as_array().unwrap() {
        let (sid, name) = (
            worker["sid"].as_str().unwrap().to_owned(),
            worker["friendly_name"].as_str().unwrap().to_owned(),
        );
        let page = AgentPage::sign_in(&http, &server, &sid, &name).await;
        agents.push(tokio::spawn(page.work(provider.clone(), accepted.clone())));
    }
    let started = Instant::now();
    for caller in 0..callers {
        let due = started + Duration::from_secs_f64(caller as f64 / CALLERS_PER_SECOND);
        tokio::time::sleep_until(due.into()).await;
        let body = json!({"from": format!("+1555{caller:07}"), "to": "+15550100200", "keys": ["1"]});
        let answer = http.post(format!("{provider}/emulator/calls")).json(&body).send().await.unwrap();
        assert!(answer.status().is_success(), "the emulator takes the call");
    }
    let deadline = Instant::now() + RUN_LIMIT;
    while accepted.lock().unwrap().len() < callers {
        assert!(
            Instant::now() < deadline,
            "only {} of {callers} calls were accepted",
            accepted.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The last ones finish their talk.
    tokio::time::sleep(TALK * 3).await;
    for agent in agents {
        agent.abort();
    }
    let calls = json_of(http.get(format!("{provider}/emulator/calls"))).await;
    let bridged_at = |sid: &str| {
        calls["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|call| call["sid"] == sid)
            .and_then(|call| call["bridged_at_ms"].as_u64())
    };
    let mut latencies: Vec<u64> = accepted
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(call, sent)| bridged_at(call).map(|at| at.saturating_sub(*sent)))
        .collect();
    latencies.sort_unstable();
    Outcome { callers, latencies }
}

/// The JSON that `request` is answered with.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// One agent's page: their session, as the browser holds it.
struct AgentPage {
    http: reqwest::Client,
    server: String,
    cookie: String,
    csrf: String,
}

impl AgentPage {
    async fn sign_in(http: &reqwest::Client, server: &str, worker: &str, name: &str) -> AgentPage {
        let secret = format!("{server}/admin/api/workers/{worker}/secret");
        let issued = json_of(http.post(secret).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))).await;
        let secret = issued["sign_in_secret"].as_str().unwrap();
        let answer = http
            .post(format!("{server}/agent/api/session"))
            .form(&[("Name", name), ("Secret", secret)])
            .send()
            .await
            .unwrap();
        let cookie = answer.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let session: Value = answer.json().await.unwrap();
        AgentPage {
            http: http.clone(),
            server: server.to_owned(),
            cookie,
            csrf: session["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Follows the page's event stream, keeping its latest state.
    async fn follow(self: Arc<Self>, states: watch::Sender<Value>) {
        let mut stream = self
            .http
            .get(format!("{}/agent/api/events", self.server))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let message: String = buffer.drain(..end + 2).collect();
                if let Some(data) = message.lines().find_map(|line| line.strip_prefix("data: "))
                    && message.starts_with("event: state")
                {
                    let _ = states.send(serde_json::from_str(data).unwrap());
                }
            }
        }
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::StatusCode {
        let answer = self
            .http
            .post(format!("{}{path}", self.server))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .form(form)
            .send()
            .await
            .unwrap();
        answer.status()
    }

    /// Takes offers one at a time until aborted.
    async fn work(self, provider: String, accepted: Arc<Mutex<Vec<(String, u64)>>>) {
        let page = Arc::new(self);
        let (states, mut latest) = watch::channel(Value::Null);
        tokio::spawn(page.clone().follow(states));
        loop {
            let offer = {
                let state = latest.borrow_and_update();
                state["offers"].as_array().and_then(|offers| offers.first()).cloned()
            };
            let Some(offer) = offer else {
                if latest.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let (reservation, task) =
                (offer["reservation_sid"].as_str().unwrap(), offer["task_sid"].as_str().unwrap());
            let call = offer["attributes"]["call_sid"].as_str().unwrap().to_owned();
            let sent = epoch_ms();
            if !page
                .post(&format!("/agent/api/reservations/{reservation}"), &[("ReservationStatus", "accepted")])
                .await
                .is_success()
            {
                // Gone meanwhile: the next state says what is offered now.
                if latest.changed().await.is_err() {
                    return;
                }
                continue;
            }
            accepted.lock().unwrap().push((call.clone(), sent));
            // Connected (the emulator says so), a second's talk, and the caller hangs up.
            loop {
                let summary = json_of(page.http.get(format!("{provider}/emulator/calls/{call}"))).await;
                if summary["bridged_at_ms"].is_u64() || summary["status"] == "completed" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(TALK).await;
            let _ = page.http.post(format!("{provider}/emulator/calls/{call}/hangup")).send().await;
            while !page
                .post(&format!("/agent/api/tasks/{task}"), &[("AssignmentStatus", "completed")])
                .await
                .is_success()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
