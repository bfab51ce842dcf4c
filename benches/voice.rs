//! Voice webhooks under load (issue #5): IVR-step requests against a static-TwiML endpoint of
//! the same server, in the same run. Not a criterion benchmark: a load generator with keep-alive
//! connections, closed-loop for saturation (like `wrk -c200`) and open-loop at a fixed rate for
//! latency (like `oha -q`, with latency measured from each request's scheduled time, so a slow
//! answer cannot hide the requests queued behind it).
//!
//! Run: `cargo bench --bench voice` (about a minute). It starts the release `switchboard serve`
//! on a free port with a temporary data directory and durable (flush) mode.
//!
//! Every request is signed (X-Twilio-Signature) and checked by the server:
//! - IVR step: `Digits=7` (not an option) posted to the main menu's action URL
//!   (`/voice/ivr?flow=main.toml&menu=main&...`) for one of 2,000 calls in turn: the server
//!   checks the signature over that URL, reads the caller's place from it, walks the menu and
//!   answers the re-prompt (whose action URL carries the new place; nothing is stored until
//!   the IVR routes the call).
//! - Static: `POST /voice/fallback` with the same parameters: signature check, fixed TwiML.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use switchboard::http::signature;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/when.rs"]
mod when;
use when::{WHEN_FLOW, twenty_variables};

const TOKEN: &str = "bench-token";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
/// How often the IVR folder is reloaded while the IVR step is at saturation.
const RELOAD_EVERY: Duration = Duration::from_millis(100);
const CALLS: usize = 2_000;
const SATURATION_CONNECTIONS: usize = 200;
const SATURATION_TIME: Duration = Duration::from_secs(10);
const RATE: f64 = 2_000.0;
const RATE_TIME: Duration = Duration::from_secs(10);
const RATE_CONNECTIONS: usize = 64;
const WHEN_ROUNDS: usize = 3;
const WHEN_ROUND_TIME: Duration = Duration::from_secs(5);

fn main() {
    let dir = tempfile::tempdir().unwrap();
    // The shipped flows, and the `when` flow beside them.
    let flows = dir.path().join("ivr");
    std::fs::create_dir(&flows).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/ivr/main.toml"), flows.join("main.toml")).unwrap();
    std::fs::write(flows.join("when.toml"), WHEN_FLOW).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SWITCHBOARD_VOICE_IVR_DIR", &flows)
        .env("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_STORE_DATA_DIR", dir.path())
        .env("SWITCHBOARD_TWILIO_AUTH_TOKEN", TOKEN)
        .env("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT)
        .env("RUST_LOG", "warn,switchboard::app=info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stderr = server.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("the server logs its address").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep reading the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // Where the provider posts the keys pressed in the main menu (its Gather's action).
    let menu = "/voice/ivr?flow=main.toml&menu=main&language=en-US";
    let ivr = Arc::new(requests(&address, menu, "7"));
    let fallback = Arc::new(requests(&address, "/voice/fallback", "7"));
    let route = Arc::new(requests(&address, menu, "1"));
    let account = format!(
        "/voice/ivr?{}",
        serde_urlencoded::to_string([
            ("flow", "when.toml"),
            ("menu", "account"),
            ("language", "en-US"),
            ("memory", twenty_variables().as_str()),
        ])
        .unwrap()
    );
    let when = Arc::new(requests(&address, &account, "12345678"));
    let wait = Arc::new(requests(&address, "/voice/wait", ""));
    runtime.block_on(async {
        let dir = &dir;
        // Warm up both paths.
        closed_loop(&address, &fallback, 50, Some(Duration::from_secs(2))).await;
        closed_loop(&address, &ivr, 50, Some(Duration::from_secs(2))).await;
        closed_loop(&address, &when, 50, Some(Duration::from_secs(2))).await;

        let static_saturated = closed_loop(&address, &fallback, SATURATION_CONNECTIONS, Some(SATURATION_TIME)).await;
        let ivr_saturated = closed_loop(&address, &ivr, SATURATION_CONNECTIONS, Some(SATURATION_TIME)).await;
        // The `when` step against static TwiML in alternating rounds, so that a slower moment of
        // this shared machine weighs on both: the median of the rounds' ratios is reported.
        let mut when_rounds = Vec::new();
        for _ in 0..WHEN_ROUNDS {
            let baseline = closed_loop(&address, &fallback, SATURATION_CONNECTIONS, Some(WHEN_ROUND_TIME)).await;
            let measured = closed_loop(&address, &when, SATURATION_CONNECTIONS, Some(WHEN_ROUND_TIME)).await;
            when_rounds.push((baseline, measured));
        }
        let mut ratios: Vec<f64> =
            when_rounds.iter().map(|(baseline, when)| when.per_second / baseline.per_second).collect();
        ratios.sort_by(f64::total_cmp);
        let when_ratio = ratios[ratios.len() / 2];
        let when_errors: usize = when_rounds.iter().map(|(baseline, when)| baseline.errors + when.errors).sum();
        let static_rate = open_loop(&address, &fallback).await;
        let ivr_rate = open_loop(&address, &ivr).await;
        // The IVR folder reloaded every 100 ms (admin API) while the IVR step is at saturation:
        // no request may fail, and every reload must be taken.
        let reloading = tokio::spawn({
            let address = address.clone();
            async move {
                let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"));
                let request = format!(
                    "POST /admin/api/ivr/reload HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {credentials}\r\nContent-Length: 0\r\n\r\n"
                );
                let started = tokio::time::Instant::now();
                let mut connection = Connection::open(&address).await;
                let (mut taken, mut refused) = (0, 0);
                while started.elapsed() < SATURATION_TIME {
                    match connection.exchange(request.as_bytes()).await {
                        Ok(()) => taken += 1,
                        Err(_) => {
                            refused += 1;
                            connection = Connection::open(&address).await;
                        }
                    }
                    tokio::time::sleep(RELOAD_EVERY).await;
                }
                (taken, refused)
            }
        });
        let reloaded = closed_loop(&address, &ivr, SATURATION_CONNECTIONS, Some(SATURATION_TIME)).await;
        let (reloads, reloads_refused) = reloading.await.unwrap();
        // Every agent is offline: each caller who presses 1 gets a Sales task and waits.
        let routed = closed_loop(&address, &route, SATURATION_CONNECTIONS, None).await;
        let held = closed_loop(&address, &wait, SATURATION_CONNECTIONS, Some(SATURATION_TIME)).await;

        println!("| Measurement | Static TwiML (`/voice/fallback`) | IVR step (`/voice/ivr`) | Ratio |");
        println!("|---|---|---|---|");
        println!(
            "| Saturation, {SATURATION_CONNECTIONS} connections, {} s: requests/s | {:.0} | {:.0} | {:.2} |",
            SATURATION_TIME.as_secs(),
            static_saturated.per_second,
            ivr_saturated.per_second,
            ivr_saturated.per_second / static_saturated.per_second
        );
        let rounds: Vec<String> = when_rounds
            .iter()
            .map(|(baseline, when)| format!("{:.0} / {:.0}", when.per_second, baseline.per_second))
            .collect();
        println!(
            "| IVR step with a `when` over 20 variables (collect, 5 conditions, menu), {WHEN_ROUNDS} rounds of {} s against static TwiML: requests/s (when / static) | {} | p50 / p99 of the last round: {} | median {:.2} (rounds: {}) |",
            WHEN_ROUND_TIME.as_secs(),
            rounds.join(", "),
            when_rounds.last().map(|(_, when)| when.percentiles()).unwrap_or_default(),
            when_ratio,
            ratios.iter().map(|ratio| format!("{ratio:.2}")).collect::<Vec<_>>().join(", ")
        );
        println!(
            "| Saturation: p50 / p99 latency | {} | {} | |",
            static_saturated.percentiles(),
            ivr_saturated.percentiles()
        );
        println!(
            "| Fixed {RATE:.0} requests/s, {} s, {RATE_CONNECTIONS} connections: p50 / p99 / max | {} | {} | |",
            RATE_TIME.as_secs(),
            static_rate.percentiles_and_max(),
            ivr_rate.percentiles_and_max()
        );
        println!(
            "| Fixed rate: requests answered / errors | {} / {} | {} / {} | |",
            static_rate.latencies.len(),
            static_rate.errors,
            ivr_rate.latencies.len(),
            ivr_rate.errors
        );
        println!(
            "| Also: pressing 1 routes the call ({CALLS} calls, {SATURATION_CONNECTIONS} connections; task and call made durable): requests/s, p50 / p99 | | {:.0}, {} | {:.2} |",
            routed.per_second,
            routed.percentiles(),
            routed.per_second / static_saturated.per_second
        );
        println!(
            "| Also: hold loop `/voice/wait` of those {CALLS} callers in line, saturation: requests/s, p50 / p99 | | {:.0}, {} | {:.2} |",
            held.per_second,
            held.percentiles(),
            held.per_second / static_saturated.per_second
        );
        println!(
            "| Also: IVR step at saturation while the IVR folder is reloaded every {} ms ({reloads} reloads, {reloads_refused} refused): requests/s, errors, p50 / p99 | | {:.0}, {} errors, {} | {:.2} |",
            RELOAD_EVERY.as_millis(),
            reloaded.per_second,
            reloaded.errors,
            reloaded.percentiles(),
            reloaded.per_second / static_saturated.per_second
        );
        if let (Some(static_wrk), Some(ivr_wrk)) =
            (wrk(&address, "/voice/fallback", "7", dir.path()), wrk(&address, menu, "7", dir.path()))
        {
            println!(
                "| Cross-check with `wrk -t1 -c200 -d10s --latency`: requests/s, p50 / p99 | {:.0}, {} / {} | {:.0}, {} / {} | {:.2} |",
                static_wrk.0,
                static_wrk.1,
                static_wrk.2,
                ivr_wrk.0,
                ivr_wrk.1,
                ivr_wrk.2,
                ivr_wrk.0 / static_wrk.0
            );
        }
        assert_eq!(
            routed.errors + held.errors + static_saturated.errors + ivr_saturated.errors + when_errors + reloaded.errors + reloads_refused,
            0,
            "every request answered 200"
        );
    });
    let _ = server.kill();
    let _ = server.wait();
}

/// One signed request per call: path, X-Twilio-Signature, form body.
fn signed(address: &str, path: &str, digits: &str) -> Vec<(String, String, String)> {
    (0..CALLS)
        .map(|n| {
            let params: Vec<(String, String)> = [
                ("CallSid", format!("CA{n:032x}")),
                ("From", "+15550100001".to_owned()),
                ("To", "+15550100200".to_owned()),
                ("CallStatus", "in-progress".to_owned()),
                ("Digits", digits.to_owned()),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
            let signature = signature::sign(TOKEN, &format!("http://{address}{path}"), &params);
            (path.to_owned(), signature, serde_urlencoded::to_string(&params).unwrap())
        })
        .collect()
}

/// [`signed`] requests as raw HTTP/1.1 bytes (keep-alive).
fn requests(address: &str, path: &str, digits: &str) -> Vec<Vec<u8>> {
    signed(address, path, digits)
        .into_iter()
        .map(|(path, signature, body)| {
            format!(
                "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 X-Twilio-Signature: {signature}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
        .collect()
}

/// The same saturation measured by wrk (`wrk -t1 -c200 -d10s --latency`, a Lua script cycling
/// through the signed requests), when wrk is installed: requests/s, p50, p99.
fn wrk(address: &str, path: &str, digits: &str, dir: &std::path::Path) -> Option<(f64, String, String)> {
    let entries: Vec<String> = signed(address, path, digits)
        .into_iter()
        .map(|(path, signature, body)| format!("{{{path:?}, {signature:?}, {body:?}}}"))
        .collect();
    let script = dir.join(format!("wrk-{}.lua", path.len()));
    let lua = format!(
        "local requests = {{\n{}\n}}\nlocal n = 0\nrequest = function()\n  n = n + 1\n  local r = requests[(n % #requests) + 1]\n  \
         return wrk.format(\"POST\", r[1], {{[\"Content-Type\"] = \"application/x-www-form-urlencoded\", \
         [\"X-Twilio-Signature\"] = r[2]}}, r[3])\nend\n",
        entries.join(",\n")
    );
    std::fs::write(&script, lua).ok()?;
    let output = Command::new("wrk")
        .args(["-t1", "-c200", "-d10s", "--latency", "-s"])
        .arg(&script)
        .arg(format!("http://{address}/"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        text.lines().find_map(|line| line.trim().strip_prefix(prefix).map(|rest| rest.trim().to_owned()))
    };
    let non_2xx = field("Non-2xx or 3xx responses:");
    assert!(non_2xx.is_none(), "wrk saw refusals: {text}");
    Some((field("Requests/sec:")?.parse().ok()?, field("50%")?, field("99%")?))
}

struct Outcome {
    per_second: f64,
    /// Microseconds, sorted.
    latencies: Vec<u64>,
    errors: usize,
}

impl Outcome {
    fn at(&self, fraction: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies.len() as f64 * fraction) as usize).min(self.latencies.len() - 1);
        self.latencies[index] as f64 / 1000.0
    }

    fn percentiles(&self) -> String {
        format!("{:.2} / {:.2} ms", self.at(0.50), self.at(0.99))
    }

    fn percentiles_and_max(&self) -> String {
        format!("{:.2} / {:.2} / {:.2} ms", self.at(0.50), self.at(0.99), self.at(1.0))
    }
}

/// `connections` clients each sending the next request as soon as the last was answered, for
/// `duration` (or once through `requests` when `None`).
async fn closed_loop(
    address: &str,
    requests: &Arc<Vec<Vec<u8>>>,
    connections: usize,
    duration: Option<Duration>,
) -> Outcome {
    drive(address, requests, connections, Pace::Closed { duration }).await
}

/// Requests scheduled at a fixed rate whatever the answers do; each latency is counted from
/// the request's scheduled time.
async fn open_loop(address: &str, requests: &Arc<Vec<Vec<u8>>>) -> Outcome {
    let total = (RATE * RATE_TIME.as_secs_f64()) as usize;
    drive(address, requests, RATE_CONNECTIONS, Pace::Fixed { total }).await
}

/// When each connection sends its next request.
#[derive(Clone, Copy)]
enum Pace {
    /// As soon as the last was answered, for `duration` (or once through the requests).
    Closed { duration: Option<Duration> },
    /// Request `n` at `n / RATE` seconds, `total` in all; latency counts from that time.
    Fixed { total: usize },
}

/// `connections` keep-alive clients sending `requests` in turn at `pace`, reconnecting after
/// an error; their latencies and errors.
async fn drive(address: &str, requests: &Arc<Vec<Vec<u8>>>, connections: usize, pace: Pace) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let started = tokio::time::Instant::now();
    let mut handles = Vec::new();
    for _ in 0..connections {
        let (address, requests, next) = (address.to_owned(), requests.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            let mut connection = Connection::open(&address).await;
            let (mut latencies, mut errors) = (Vec::new(), 0);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let since = match pace {
                    Pace::Closed { duration: Some(duration) } if started.elapsed() >= duration => break,
                    Pace::Closed { duration: None } if n >= requests.len() => break,
                    Pace::Closed { .. } => tokio::time::Instant::now(),
                    Pace::Fixed { total } if n >= total => break,
                    Pace::Fixed { .. } => {
                        let scheduled = started + Duration::from_secs_f64(n as f64 / RATE);
                        tokio::time::sleep_until(scheduled).await;
                        scheduled
                    }
                };
                match connection.exchange(&requests[n % requests.len()]).await {
                    Ok(()) => latencies.push(since.elapsed().as_micros() as u64),
                    Err(_) => {
                        errors += 1;
                        connection = Connection::open(&address).await;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    collect(handles, started.into_std()).await
}

async fn collect(handles: Vec<tokio::task::JoinHandle<(Vec<u64>, usize)>>, started: Instant) -> Outcome {
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for handle in handles {
        let (some, failed) = handle.await.unwrap();
        latencies.extend(some);
        errors += failed;
    }
    let per_second = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Outcome { per_second, latencies, errors }
}

/// A keep-alive HTTP/1.1 connection that sends a request and reads one whole answer.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(address: &str) -> Connection {
        let stream = TcpStream::connect(address).await.expect("the server accepts connections");
        stream.set_nodelay(true).unwrap();
        Connection { stream, buffer: Vec::with_capacity(4096) }
    }

    /// Sends `request` and reads the answer; an error for anything but 200 with a body.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..read]);
            let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let head = String::from_utf8_lossy(&self.buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            if self.buffer.len() >= end + 4 + length {
                if !head.starts_with("http/1.1 200") {
                    return Err(std::io::Error::other(head));
                }
                return Ok(());
            }
        }
    }
}
