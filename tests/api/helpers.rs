//! Starting Switchboard for tests: in process on `127.0.0.1:0` ([`spawn_app`]), or as the real
//! executable ([`SwitchboardProcess`]), always on a port the system picks.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use switchboard::app::Application;
use switchboard::config::Settings;
use tokio::sync::oneshot;

/// How long a started process gets to report its address; generous because CI machines are
/// shared and slow, and only reached when something is broken.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server running inside the test process.
pub struct TestApp {
    pub address: SocketAddr,
    /// The live routing engine, to drive and inspect the state directly.
    pub engine: std::sync::Arc<switchboard::live::LiveEngine>,
    /// The calls in progress, to look at them and sweep them on a chosen clock.
    pub voice: std::sync::Arc<switchboard::voice::Voice>,
    /// The text conversations and their outbox.
    pub sms: std::sync::Arc<switchboard::sms::Sms>,
    /// The agents' sign-in secrets.
    pub agents: std::sync::Arc<switchboard::agents::Agents>,
    /// Held so that the sled data directory lives as long as the server, and is removed after.
    _data_dir: tempfile::TempDir,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A signed-in session, of an agent or the admin: the cookie to send back and its CSRF token.
pub struct SignedIn {
    pub cookie: String,
    pub csrf: String,
}

impl SignedIn {
    /// The session a sign-in answer opened (which must be a 200), checking that its cookie is
    /// out of scripts' and other sites' reach.
    pub async fn from_answer(answer: reqwest::Response) -> SignedIn {
        assert_eq!(answer.status(), reqwest::StatusCode::OK, "signed in");
        let set_cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set_cookie.contains(attribute), "{set_cookie}");
        }
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let body: serde_json::Value = answer.json().await.unwrap();
        SignedIn { cookie, csrf: body["csrf_token"].as_str().unwrap().to_owned() }
    }

    /// Issues the worker `worker` (a SID) a new secret through the admin API of the server at
    /// `base`, and signs them in as `name` with it on the agent page.
    pub async fn agent(client: &reqwest::Client, base: &str, worker: &str, name: &str) -> SignedIn {
        let secret = issue_secret(client, base, worker).await;
        let credentials = [("Name", name), ("Secret", secret.as_str())];
        let answer =
            client.post(format!("{base}/agent/api/session")).form(&credentials).send().await.unwrap();
        SignedIn::from_answer(answer).await
    }

    /// Sends `method` to `path` of the server at `base` in this session (with its CSRF token),
    /// `form` form-encoded: the status and the JSON answer (null when there is none).
    pub async fn send(
        &self,
        client: &reqwest::Client,
        base: &str,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let request = client
            .request(method, format!("{base}{path}"))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .form(form);
        let answer = request.send().await.unwrap();
        let status = answer.status();
        (status, answer.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// A new sign-in secret for the worker `worker` (a SID), issued through the admin API of the
/// server at `base`.
pub async fn issue_secret(client: &reqwest::Client, base: &str, worker: &str) -> String {
    let issued = json_as_account(client.post(format!("{base}/admin/api/workers/{worker}/secret"))).await;
    issued["sign_in_secret"].as_str().unwrap().to_owned()
}

/// `request` sent with the account's credentials (Basic auth), and its answer read as JSON.
pub async fn json_as_account(request: reqwest::RequestBuilder) -> serde_json::Value {
    let request = request.basic_auth(crate::taskrouter::ACCOUNT_SID, Some(crate::taskrouter::AUTH_TOKEN));
    request.send().await.unwrap().json().await.unwrap()
}

/// Starts the real application in process on a free port.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the real application in process on a free port, with settings adjusted by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("a temporary data directory");
    let mut settings = Settings::default();
    settings.http.listen = "127.0.0.1:0".to_owned();
    settings.http.workers = 1;
    settings.store.data_dir = data_dir.path().to_owned();
    // The tests that bridge in conferences say so, with the emulator as the provider; the others
    // must not reach for Twilio's API.
    settings.voice.bridge = switchboard::config::BridgeMode::Dial;
    adjust(&mut settings);
    let application = Application::build(&settings).expect("the application builds");
    let address = application.local_addr();
    let engine = application.engine();
    let voice = application.voice();
    let sms = application.sms();
    let agents = application.agents();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        engine,
        voice,
        sms,
        agents,
        _data_dir: data_dir,
        client: reqwest::Client::new(),
        stop: Some(stop),
        server,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops the server as a signal would, and returns how the run ended.
    pub async fn shut_down(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().expect("stopped once").send(());
        (&mut self.server).await.expect("the server task does not panic")
    }
}

/// The `switchboard` executable built by Cargo for these tests.
pub fn switchboard_command(working_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command.current_dir(working_dir).env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("SWITCHBOARD_") {
            command.env_remove(name);
        }
    }
    command
}

/// A POST of `params` to `url`, signed with `auth_token` as the provider signs a webhook
/// (X-Twilio-Signature over the URL and the sorted parameters).
pub fn signed_webhook(
    client: &reqwest::Client,
    url: &str,
    params: &[(&str, &str)],
    auth_token: &str,
) -> reqwest::RequestBuilder {
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let signature = switchboard::http::signature::sign(auth_token, url, &params);
    client.post(url).header("X-Twilio-Signature", signature).form(&params)
}

/// `switchboard serve` in `dir` (reading its `switchboard.toml`).
pub fn serve_in(dir: &Path) -> SwitchboardProcess {
    let mut command = switchboard_command(dir);
    command.arg("serve");
    SwitchboardProcess::start(command).expect("switchboard starts")
}

/// A node of several on one PostgreSQL database: `switchboard serve` in `dir` (reading its
/// `switchboard.toml`) on `database`, on a port of its own, with a one-second lease.
pub fn serve_on_postgres(dir: &Path, database: &str) -> SwitchboardProcess {
    let mut command = switchboard_command(dir);
    command
        .arg("serve")
        .env("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_STORE_BACKEND", "postgres")
        .env("SWITCHBOARD_STORE_POSTGRES_URL", database)
        .env("SWITCHBOARD_STORE_LEASE_MS", "1000");
    SwitchboardProcess::start(command).expect("switchboard starts")
}

/// Waits up to 30 s for `node` to answer `/readyz` with 200 (it leads, and serves); answers how
/// long that took.
pub async fn until_ready(client: &reqwest::Client, node: &SwitchboardProcess) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let answer = client.get(node.url("/readyz")).send().await;
        if answer.is_ok_and(|answer| answer.status() == reqwest::StatusCode::OK) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} did not become ready", node.address);
}

/// The head of a `switchboard.toml` for a server that a restart brings back where it was: a
/// fixed port, the data in `dir/data`, and the test account (`account_sid`, `auth_token`).
pub fn fixed_config(port: u16, account_sid: &str, auth_token: &str) -> String {
    format!(
        r#"
        [http]
        listen = "127.0.0.1:{port}"

        [store]
        data_dir = "data"

        [twilio]
        account_sid = "{account_sid}"
        auth_token = "{auth_token}"
        "#
    )
}

/// A `switchboard serve` process, killed when dropped.
pub struct SwitchboardProcess {
    child: Child,
    pub address: SocketAddr,
    /// The lines the process wrote to standard error up to its "listening on" line, that one
    /// included.
    pub start_log: Vec<String>,
    /// Every line the process wrote to standard error since is readable from here.
    log: mpsc::Receiver<String>,
}

impl SwitchboardProcess {
    /// Runs `command` (a `serve` command) and waits for its "listening on" log line.
    pub fn start(mut command: Command) -> Result<SwitchboardProcess, String> {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot start switchboard: {err}"))?;
        let log = lines_of(child.stderr.take().expect("stderr is piped"));
        let mut start_log = Vec::new();
        let listening = wait_for_line(&log, START_TIMEOUT, |line| {
            start_log.push(line.to_owned());
            listening_address(line)
        });
        if let Ok(address) = listening {
            return Ok(SwitchboardProcess { child, address, start_log, log });
        }
        let _ = child.kill();
        let status = child.wait().ok();
        Err(format!("switchboard did not start ({status:?}); it wrote:\n{}", start_log.join("\n")))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Waits up to `timeout` for a log line containing `needle`; the lines seen meanwhile
    /// otherwise.
    pub fn wait_for_log(&self, timeout: Duration, needle: &str) -> Result<String, Vec<String>> {
        wait_for_line(&self.log, timeout, |line| line.contains(needle).then(|| line.to_owned()))
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal})");
    }

    /// Waits for the process to exit, returning its status and the log lines written since
    /// start-up; `None` if it is still running after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<(ExitStatus, Vec<String>)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The reader thread ends at EOF, so this drains every remaining line.
                let lines = self.log.iter().collect();
                return Some((status, lines));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SwitchboardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `output` line by line on a thread of its own: each line is then readable from the
/// returned receiver, which is disconnected at the end of the output.
pub fn lines_of(output: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Waits up to `timeout` for a line of `lines` that `parse` accepts, and returns what it made of
/// it; otherwise (time out, or the output ended) the lines seen meanwhile.
pub fn wait_for_line<T>(
    lines: &mpsc::Receiver<String>,
    timeout: Duration,
    mut parse: impl FnMut(&str) -> Option<T>,
) -> Result<T, Vec<String>> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(remaining) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = lines.recv_timeout(remaining) else { break };
        match parse(&line) {
            Some(parsed) => return Ok(parsed),
            None => seen.push(line),
        }
    }
    Err(seen)
}

/// The address in a "listening on http://ADDRESS" log line, written as text or as JSON (where
/// a quote ends the message).
fn listening_address(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    rest.split(|c: char| c.is_whitespace() || c == '"').next()?.parse().ok()
}

/// A load balancer in front of several nodes, as HAProxy in TCP mode with an HTTP health check
/// would be: every `BALANCER_CHECK_EVERY` it asks each node's `/readyz`, and each connection it
/// accepts goes whole to the node that answered 200 (the leader), waiting for one when none
/// does. A connection to a node that dies breaks, as behind a real balancer.
pub struct Balancer {
    pub address: SocketAddr,
    nodes: std::sync::Arc<std::sync::Mutex<Vec<SocketAddr>>>,
    leader: tokio::sync::watch::Receiver<Option<SocketAddr>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

const BALANCER_CHECK_EVERY: Duration = Duration::from_millis(50);

impl Balancer {
    pub async fn start(nodes: Vec<SocketAddr>) -> Balancer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let nodes = std::sync::Arc::new(std::sync::Mutex::new(nodes));
        let (elected, leader) = tokio::sync::watch::channel(None);
        let checker = {
            let nodes = nodes.clone();
            let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
            tokio::spawn(async move {
                loop {
                    let candidates = nodes.lock().unwrap().clone();
                    let mut found = None;
                    for node in candidates {
                        let ready = client.get(format!("http://{node}/readyz")).send().await;
                        if ready.is_ok_and(|answer| answer.status() == reqwest::StatusCode::OK) {
                            found = Some(node);
                            break;
                        }
                    }
                    elected.send_if_modified(|current| std::mem::replace(current, found) != found);
                    tokio::time::sleep(BALANCER_CHECK_EVERY).await;
                }
            })
        };
        let acceptor = {
            let leader = leader.clone();
            tokio::spawn(async move {
                while let Ok((mut incoming, _)) = listener.accept().await {
                    let mut leader = leader.clone();
                    tokio::spawn(async move {
                        let Ok(Ok(node)) =
                            tokio::time::timeout(Duration::from_secs(10), leader.wait_for(Option::is_some))
                                .await
                                .map(|node| node.map(|node| node.expect("waited for one")))
                        else {
                            return;
                        };
                        if let Ok(mut outgoing) = tokio::net::TcpStream::connect(node).await {
                            let _ = tokio::io::copy_bidirectional(&mut incoming, &mut outgoing).await;
                        }
                    });
                }
            })
        };
        Balancer { address, nodes, leader, tasks: vec![checker, acceptor] }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Replaces the nodes checked (a node restarted on another port).
    pub fn set_nodes(&self, nodes: Vec<SocketAddr>) {
        *self.nodes.lock().unwrap() = nodes;
    }

    /// The node the balancer sends connections to now, if any.
    pub fn leader(&self) -> Option<SocketAddr> {
        *self.leader.borrow()
    }

    /// Waits up to `timeout` for the balancer to send connections to a node other than `not`.
    pub async fn wait_for_leader_other_than(
        &self,
        not: Option<SocketAddr>,
        timeout: Duration,
    ) -> Option<SocketAddr> {
        let mut leader = self.leader.clone();
        let found =
            tokio::time::timeout(timeout, leader.wait_for(|leader| leader.is_some() && *leader != not)).await;
        found.ok().and_then(|leader| leader.ok().and_then(|leader| *leader))
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A flow of 10,000 menus answering `number`: in each, 1 goes on to the next menu (the last
/// back to the first) and 2 routes the caller to Sales.
pub fn ten_thousand_menus(number: &str) -> String {
    let mut flow =
        format!("start = \"m0\"\nnumbers = [\"{number}\"]\nworkflow = \"Sales and Support Workflow\"\n");
    for n in 0..10_000 {
        flow.push_str(&format!(
            "[menus.m{n}]\nsay = \"Menu {n}.\"\noptions = {{ \"1\" = {{ step = \"m{}\" }}, \"2\" = {{ route = {{ skills = [\"Sales\"] }} }} }}\n",
            (n + 1) % 10_000
        ));
    }
    flow
}

/// A folder of IVR flows: the shipped one, offering callbacks from the first hold round, tried
/// twice 5 s apart.
pub fn ivr_with_callbacks() -> tempfile::TempDir {
    let ivr = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ivr/main.toml")).unwrap();
    let flow = shipped.replacen("[menus.", "[callback]\nattempts = 2\nretry_after = 5\n\n[menus.", 1);
    std::fs::write(ivr.path().join("main.toml"), flow).unwrap();
    ivr
}
