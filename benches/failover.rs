//! Leading and standing by on PostgreSQL (issue #19), measured on a private PostgreSQL cluster
//! started from Debian's binaries, as the tests do. Not a criterion benchmark: these are
//! latencies of one-off events (a failover, a restart) and a lag under load, printed as a table
//! for BENCHMARKS.md.
//!
//! Run: `cargo bench --bench failover` (about two minutes; `-- --kills N` for another count).
//!
//! 1. Standby lag under load: a leader and a standby engine in this process on one database,
//!    64 submitters creating tasks on the leader for 5 s; every half millisecond the sampler
//!    notes how far each has applied, and the lag of a command is the time from the leader
//!    applying it to the standby applying it.
//! 2. A standby started on a workspace of 10,000 workers and 100,000 open tasks: the time from
//!    start to holding the leader's state (snapshot, log, caught up).
//! 3. Failover: two `switchboard serve` processes; a client sends `POST .../Tasks` to the
//!    standby every 2 ms (answered 503 until it leads); the leader is SIGKILLed, and the time
//!    to the first task the new leader acknowledges is noted; the killed one starts again as the
//!    standby, and the roles swap, 20 times.

use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchboard::config::{StoreBackend, StoreSettings};
use switchboard::live::{LiveEngine, now};
use switchboard::routing::{Command, Sid};
use switchboard::workspace::WorkspaceFile;

// A private PostgreSQL cluster, as the tests start it.
#[path = "../src/store/test_postgres.rs"]
mod test_postgres;

#[path = "support/mod.rs"]
mod support;
use support::{SUBMITTERS, sales_workflow, submit_concurrently, task, workers};

const ACCOUNT_SID: &str = "AC0000000000000000000000000000beef";
const AUTH_TOKEN: &str = "bench-token";

fn postgres(url: &str) -> StoreSettings {
    StoreSettings {
        backend: StoreBackend::Postgres,
        postgres_url: url.to_owned(),
        ..StoreSettings::default()
    }
}

fn percentile(sorted: &[f64], share: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * share).round() as usize;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

fn main() {
    let kills = std::env::args()
        .skip_while(|arg| arg != "--kills")
        .nth(1)
        .and_then(|count| count.parse().ok())
        .unwrap_or(20);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!("| Measure (PostgreSQL, one database, this machine) | Figure |");
    println!("|---|---|");
    standby_lag_and_restart(&runtime);
    failover(&runtime, kills);
}

/// Parts 1 and 2.
fn standby_lag_and_restart(runtime: &tokio::runtime::Runtime) {
    let settings = postgres(&test_postgres::new_database());
    let workspace = WorkspaceFile::default();
    let leader = Arc::new(LiveEngine::open(&settings, &workspace, "", 0).unwrap());
    let workflow = sales_workflow(&leader);
    let standby = Arc::new(LiveEngine::open_following(&settings, &workspace, "", 0).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (standby, stop) = (standby.clone(), stop.clone());
        std::thread::spawn(move || standby.follow_until_leading(&|| stop.load(Ordering::SeqCst)))
    };
    // 1. The lag under load.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (leader, standby, sampling) = (leader.clone(), standby.clone(), sampling.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            while sampling.load(Ordering::SeqCst) {
                samples.push((started.elapsed().as_secs_f64() * 1000.0, leader.applied(), standby.applied()));
                std::thread::sleep(Duration::from_micros(500));
            }
            samples
        })
    };
    let started = Instant::now();
    let created = runtime.block_on(submit_for(&leader, Duration::from_secs(5), workflow, 0));
    let load_seconds = started.elapsed().as_secs_f64();
    while standby.applied() < leader.applied() {
        std::thread::sleep(Duration::from_millis(1));
    }
    sampling.store(false, Ordering::SeqCst);
    let samples = sampler.join().unwrap();
    // For each sample, the leader's position then, and when the standby first reached it.
    let mut lags: Vec<f64> = Vec::new();
    let mut reached = 0;
    for &(at, leader_seq, _) in &samples {
        while reached < samples.len() && samples[reached].2 < leader_seq {
            reached += 1;
        }
        if let Some(&(then, _, _)) = samples.get(reached) {
            lags.push((then - at).max(0.0));
        }
    }
    lags.sort_by(f64::total_cmp);
    println!(
        "| Standby lag under load ({created} tasks in {load_seconds:.1} s, {:.0}/s, 64 submitters; {} samples) | p50 **{:.1} ms**, p99 **{:.1} ms**, max {:.1} ms |",
        created as f64 / load_seconds,
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN)
    );
    stop.store(true, Ordering::SeqCst);
    follower.join().unwrap().unwrap();
    drop(standby);

    // 2. A standby started on 10,000 workers and 100,000 open tasks.
    runtime.block_on(submit_concurrently(&leader, workers(10_000), now()));
    let open = leader.read(|e| e.workspace_statistics(0).tasks.total_tasks);
    let more: Vec<Command> =
        (created..created + 100_000usize.saturating_sub(open)).map(|n| task(n, workflow)).collect();
    runtime.block_on(submit_concurrently(&leader, more, now()));
    let open = leader.read(|e| e.workspace_statistics(0).tasks.total_tasks);
    let started = Instant::now();
    let standby = Arc::new(LiveEngine::open_following(&settings, &workspace, "", 0).unwrap());
    let opened = started.elapsed();
    let target = leader.applied();
    let stop = Arc::new(AtomicBool::new(false));
    // Follows what was logged after the snapshot it started from.
    let follower = {
        let (standby, stop) = (standby.clone(), stop.clone());
        std::thread::spawn(move || standby.follow_until_leading(&|| stop.load(Ordering::SeqCst)))
    };
    while standby.applied() < target {
        std::thread::sleep(Duration::from_millis(1));
    }
    let caught_up = started.elapsed();
    let same = standby.read(|e| e.workspace_statistics(0).tasks.total_tasks) == open;
    println!(
        "| A standby started on 10,000 workers + {open} open tasks: snapshot and log read, then caught up with the leader | **{:.2} s** ({:.2} s to open){} |",
        caught_up.as_secs_f64(),
        opened.as_secs_f64(),
        if same { "" } else { " — the counts differ!" }
    );
    stop.store(true, Ordering::SeqCst);
    follower.join().unwrap().unwrap();
}

/// Creates tasks from [`SUBMITTERS`] concurrent tasks for `period`; answers how many.
async fn submit_for(live: &Arc<LiveEngine>, period: Duration, workflow: Sid, first: usize) -> usize {
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(first));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..SUBMITTERS {
        let (live, counter) = (live.clone(), counter.clone());
        handles.push(tokio::spawn(async move {
            while started.elapsed() < period {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                live.execute(task(n, workflow)).await.unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    counter.load(Ordering::SeqCst) - first
}

/// A `switchboard serve` process on `database`, and its address once it listens.
struct Node {
    child: Child,
    address: String,
}

impl Node {
    fn start(dir: &std::path::Path, database: &str) -> Node {
        let mut child = Process::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("serve")
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .env("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0")
            .env("SWITCHBOARD_STORE_BACKEND", "postgres")
            .env("SWITCHBOARD_STORE_POSTGRES_URL", database)
            .env("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT_SID)
            .env("SWITCHBOARD_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("switchboard starts");
        let stderr = child.stderr.take().unwrap();
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            let mut sent = false;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = found.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                    sent = true;
                }
            }
        });
        let address = address.recv_timeout(Duration::from_secs(60)).expect("the node listens");
        Node { child, address }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Part 3.
fn failover(runtime: &tokio::runtime::Runtime, kills: usize) {
    let dir = tempfile::tempdir().unwrap();
    let database = test_postgres::new_database();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let ready = |node: &Node| {
        let url = format!("http://{}/readyz", node.address);
        runtime.block_on(async { client.get(url).send().await.is_ok_and(|answer| answer.status() == 200) })
    };
    let mut nodes = [Node::start(dir.path(), &database), Node::start(dir.path(), &database)];
    while !ready(&nodes[0]) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let get = |url: String| {
        let request = client.get(url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
        runtime.block_on(async { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap() })
    };
    let workspace = {
        let list = get(format!("http://{}/v1/Workspaces", nodes[0].address));
        let workspace = list["workspaces"][0]["sid"].as_str().unwrap().to_owned();
        let workflows = get(format!("http://{}/v1/Workspaces/{workspace}/Workflows", nodes[0].address));
        (workspace, workflows["workflows"][0]["sid"].as_str().unwrap().to_owned())
    };
    let create = |node: &Node| {
        let url = format!("http://{}/v1/Workspaces/{}/Tasks", node.address, workspace.0);
        let form = [("WorkflowSid", workspace.1.as_str()), ("Attributes", r#"{"skillsNeeded": ["Sales"]}"#)];
        let request = client.post(url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).form(&form);
        runtime.block_on(async { request.send().await.is_ok_and(|answer| answer.status() == 201) })
    };
    let (mut to_ack, mut to_ready) = (Vec::new(), Vec::new());
    let mut leader = 0;
    for _ in 0..kills {
        let standby = 1 - leader;
        // The standby is caught up and the leader serves.
        while !create(&nodes[leader]) {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(300));
        let killed = Instant::now();
        nodes[leader].kill();
        let mut acknowledged = None;
        while acknowledged.is_none() {
            if create(&nodes[standby]) {
                acknowledged = Some(killed.elapsed());
            } else {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        to_ack.push(acknowledged.unwrap().as_secs_f64() * 1000.0);
        let mut answered_ready = None;
        while answered_ready.is_none() {
            if ready(&nodes[standby]) {
                answered_ready = Some(killed.elapsed());
            }
        }
        to_ready.push(answered_ready.unwrap().as_secs_f64() * 1000.0);
        nodes[leader] = Node::start(dir.path(), &database);
        leader = standby;
    }
    to_ack.sort_by(f64::total_cmp);
    println!(
        "| Failover, {kills} SIGKILLs of the leader: kill → first task acknowledged by the new leader | p50 **{:.0} ms**, p99 **{:.0} ms** (min {:.0}, max {:.0}) |",
        percentile(&to_ack, 0.5),
        percentile(&to_ack, 0.99),
        to_ack[0],
        to_ack[to_ack.len() - 1]
    );
    to_ready.sort_by(f64::total_cmp);
    println!(
        "| … and until its `/readyz` answers 200 (what a balancer waits for, before its own check interval) | p50 {:.0} ms, p99 {:.0} ms |",
        percentile(&to_ready, 0.5),
        percentile(&to_ready, 0.99)
    );
}
