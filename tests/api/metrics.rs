//! `/metrics`: guarded by `metrics.token`, and scraped by a real Prometheus (Debian's, started
//! here on `tests/prometheus/prometheus.yml`, installed by `tests/prometheus/install.sh` when
//! missing) whose numbers, after a scripted day of tasks through the REST API, agree with the
//! REST API's own statistics.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;
use crate::install::{Requirement, ensure_from_async};
use crate::taskrouter::Api;
use crate::taskrouter::spawn_api_with;

const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

const PROMETHEUS: Requirement = Requirement {
    needs: "Debian's prometheus (apt-get, as root or with sudo)",
    script: "tests/prometheus/install.sh",
    files: &[PROMETHEUS_BIN],
};

const TOKEN: &str = "scraper-token-0123456789";

async fn app_with_metrics() -> TestApp {
    spawn_api_with(|settings| {
        settings.metrics.token = TOKEN.to_owned();
        settings.metrics.service_level = "1, Support=2".to_owned().try_into().unwrap();
    })
    .await
}

async fn scrape(app: &TestApp, authorization: Option<&str>) -> (StatusCode, String) {
    let mut request = app.client.get(app.url("/metrics"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_need_the_token_and_say_how_to_turn_them_on() {
    let off = spawn_api_with(|_| {}).await;
    let on = app_with_metrics().await;

    let (status, body) = scrape(&off, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(status, 404);
    assert!(body.contains("set metrics.token"), "{body}");
    for wrong in [None, Some("Bearer nope"), Some(TOKEN), Some("Basic c2NyYXBlcg==")] {
        let (status, body) = scrape(&on, wrong).await;
        assert_eq!(status, 401, "{wrong:?}: {body}");
    }
    // A method nobody knows is counted, under one label whatever its name.
    for invented in ["FROB", "FROB2"] {
        let method = reqwest::Method::from_bytes(invented.as_bytes()).unwrap();
        on.client.request(method, on.url("/healthz")).send().await.unwrap();
    }
    let (status, body) = scrape(&on, Some(&format!("bearer {TOKEN}"))).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(
            r#"switchboard_http_request_duration_seconds_count{method="other",route="/healthz"} 2"#
        ),
        "{body}"
    );
    assert!(!body.contains("FROB"), "{body}");
    for family in [
        "# TYPE switchboard_tasks gauge",
        "switchboard_tasks{queue=\"Sales\",channel=\"voice\",status=\"pending\"} 0",
        "switchboard_workers{activity=\"Offline\"} 2",
        "switchboard_service_level_threshold_seconds{queue=\"Support\"} 2",
        "# TYPE switchboard_http_request_duration_seconds histogram",
        "# TYPE process_resident_memory_bytes gauge",
        "switchboard_live_streams 0",
    ] {
        assert!(body.contains(family), "{family} in:\n{body}");
    }
}

/// Debian's Prometheus, scraping `target` with the token every second, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let template = include_str!("../prometheus/prometheus.yml");
        let config =
            template.replace("SWITCHBOARD_ADDRESS", target).replace("SWITCHBOARD_METRICS_TOKEN", TOKEN);
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(PROMETHEUS_BIN)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Prometheus { child, url: format!("http://127.0.0.1:{port}"), _dir: dir }
    }

    /// The value of `query` (PromQL giving one number), once Prometheus answers it.
    async fn value(&self, client: &reqwest::Client, query: &str) -> Option<f64> {
        let response =
            client.get(format!("{}/api/v1/query", self.url)).query(&[("query", query)]).send().await.ok()?;
        let answer: Value = response.json().await.ok()?;
        let value = answer["data"]["result"][0]["value"][1].as_str()?;
        value.parse().ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What happens to one task of the scripted day.
#[derive(Clone, Copy)]
enum Fate {
    /// Accepted at once, then completed.
    Answered,
    /// Accepted after waiting over the service-level threshold, then completed.
    AnsweredLate,
    /// The offer is rejected, then the customer gives up (the task is canceled).
    RejectedThenAbandoned,
    /// Canceled while waiting.
    Abandoned,
    /// Accepted and still being worked on at the end of the day.
    Working,
    /// Still waiting at the end of the day.
    Waiting,
}

#[tokio::test]
async fn prometheus_scrapes_numbers_that_agree_with_the_rest_statistics_after_a_day_of_tasks() {
    ensure_from_async(&PROMETHEUS).await;
    let app = app_with_metrics().await;
    let api = Api::new(&app).await;
    let prometheus = Prometheus::start(&app.address.to_string());
    let id = |path: &str, list: &str, name: &str| {
        let path = format!("{path}?FriendlyName={name}");
        let list = list.to_owned();
        let api = &api;
        async move { api.get(&path).await[list][0]["sid"].as_str().unwrap().to_owned() }
    };
    let workflow = id("/Workflows", "workflows", "Sales and Support Workflow").await;
    let available = id("/Activities", "activities", "Available").await;
    let (alice, bob) = (id("/Workers", "workers", "alice").await, id("/Workers", "workers", "bob").await);
    for worker in [&alice, &bob] {
        api.post(&format!("/Workers/{worker}"), &[("ActivitySid", &available)]).await;
    }

    use Fate::*;
    let day = [
        ("Sales", "voice", Answered),
        ("Support", "voice", Answered),
        ("Sales", "sms", AnsweredLate),
        ("Support", "voice", RejectedThenAbandoned),
        ("Sales", "voice", Abandoned),
        ("Support", "sms", AnsweredLate),
        ("Sales", "voice", RejectedThenAbandoned),
        ("Sales", "voice", Answered),
        ("Support", "voice", Abandoned),
        ("Sales", "voice", Working),
        ("Support", "voice", Working),
        ("Sales", "voice", Waiting),
    ];
    for (skill, channel, fate) in day {
        let attributes = format!(r#"{{"skillsNeeded": ["{skill}"], "from": "+15550100123"}}"#);
        let form =
            [("WorkflowSid", workflow.as_str()), ("Attributes", &attributes), ("TaskChannel", channel)];
        let task = api.post("/Tasks", &form).await["sid"].as_str().unwrap().to_owned();
        if matches!(fate, Abandoned | Waiting) {
            if matches!(fate, Abandoned) {
                api.post(
                    &format!("/Tasks/{task}"),
                    &[("AssignmentStatus", "canceled"), ("Reason", "hung up")],
                )
                .await;
            }
            continue;
        }
        if matches!(fate, AnsweredLate) {
            tokio::time::sleep(Duration::from_millis(2_100)).await;
        }
        let reservation = pending_reservation(&api, &task).await;
        let path = format!("/Tasks/{task}/Reservations/{reservation}");
        if matches!(fate, RejectedThenAbandoned) {
            api.post(&path, &[("ReservationStatus", "rejected")]).await;
            api.post(&format!("/Tasks/{task}"), &[("AssignmentStatus", "canceled"), ("Reason", "hung up")])
                .await;
            continue;
        }
        api.post(&path, &[("ReservationStatus", "accepted")]).await;
        if !matches!(fate, Working) {
            api.post(&format!("/Tasks/{task}"), &[("AssignmentStatus", "completed"), ("Reason", "done")])
                .await;
        }
    }

    // Each pair: PromQL over what Prometheus scraped, and the REST API's figure.
    let mut pairs: Vec<(String, f64)> = Vec::new();
    let since = "StartDate=2000-01-01T00:00:00Z";
    for queue_name in ["Sales", "Support"] {
        let sid = id("/TaskQueues", "task_queues", queue_name).await;
        let threshold = if queue_name == "Sales" { 1 } else { 2 };
        let statistics =
            api.get(&format!("/TaskQueues/{sid}/Statistics?{since}&SplitByWaitTime={threshold}")).await;
        let (cumulative, realtime) = (&statistics["cumulative"], &statistics["realtime"]);
        let q = format!("queue=\"{queue_name}\"");
        let number = |value: &Value| value.as_f64().unwrap_or_else(|| panic!("a number: {value}"));
        for (outcome, field) in [
            ("accepted", "reservations_accepted"),
            ("rejected", "reservations_rejected"),
            ("canceled", "reservations_canceled"),
            ("timeout", "reservations_timed_out"),
        ] {
            pairs.push((
                format!("sum(switchboard_reservations_total{{{q},outcome=\"{outcome}\"}})"),
                number(&cumulative[field]),
            ));
        }
        pairs.push((
            format!("sum(switchboard_reservations_created_total{{{q}}})"),
            number(&cumulative["reservations_created"]),
        ));
        for (how, field) in [("completed", "tasks_completed"), ("canceled", "tasks_canceled")] {
            pairs.push((
                format!("sum(switchboard_tasks_ended_total{{{q},how=\"{how}\"}})"),
                number(&cumulative[field]),
            ));
        }
        pairs.push((
            format!("sum(switchboard_queue_tasks_entered_total{{{q}}})"),
            number(&cumulative["tasks_entered"]),
        ));
        let below = &cumulative["split_by_wait_time"][threshold.to_string()]["below"];
        pairs.push((
            format!("sum(switchboard_wait_until_accepted_seconds_bucket{{{q},le=\"{threshold}\"}})"),
            number(&below["reservations_accepted"]),
        ));
        pairs.push((
            format!("sum(switchboard_accepted_within_service_level_total{{{q}}})"),
            number(&below["reservations_accepted"]),
        ));
        pairs.push((
            format!("sum(switchboard_wait_until_accepted_seconds_count{{{q}}})"),
            number(&cumulative["reservations_accepted"]),
        ));
        pairs.push((
            format!("sum(switchboard_wait_until_abandoned_seconds_count{{{q}}})"),
            number(&cumulative["tasks_canceled"]),
        ));
        for status in ["pending", "reserved", "assigned", "wrapping"] {
            pairs.push((
                format!("sum(switchboard_tasks{{{q},status=\"{status}\"}})"),
                number(&realtime["tasks_by_status"][status]),
            ));
        }
    }
    let workspace = api.get("/Statistics").await;
    for activity in workspace["realtime"]["activity_statistics"].as_array().unwrap() {
        let name = activity["friendly_name"].as_str().unwrap();
        pairs.push((
            format!("switchboard_workers{{activity=\"{name}\"}}"),
            activity["workers"].as_f64().unwrap(),
        ));
    }
    let interesting: f64 = pairs.iter().map(|(_, value)| value).sum();
    assert!(interesting >= 20.0, "the day made something to count: {pairs:#?}");

    // Prometheus scrapes every second: wait until it has seen the end of the day.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut scraped = Vec::new();
        for (query, _) in &pairs {
            scraped.push((query.clone(), prometheus.value(&app.client, query).await.unwrap_or(f64::NAN)));
        }
        if scraped == pairs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus disagrees with the REST API:\n{}\nits log:\n{}",
            scraped
                .iter()
                .zip(&pairs)
                .filter(|(seen, wanted)| seen != wanted)
                .map(|((query, seen), (_, wanted))| format!("{query}: {seen} (REST {wanted})"))
                .collect::<Vec<_>>()
                .join("\n"),
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The service level: the share of the accepted answered within the threshold.
    let late =
        prometheus.value(&app.client, "switchboard_service_level_ratio{queue=\"Sales\"}").await.unwrap();
    let sales_sid = id("/TaskQueues", "task_queues", "Sales").await;
    let sales =
        api.get(&format!("/TaskQueues/{sales_sid}/CumulativeStatistics?{since}&SplitByWaitTime=1")).await;
    let within = sales["split_by_wait_time"]["1"]["below"]["reservations_accepted"].as_f64().unwrap();
    assert_eq!(late, within / sales["reservations_accepted"].as_f64().unwrap());
    assert!(late < 1.0, "a late answer counts against the service level: {late}");

    // The sample Grafana dashboard asks only for what is there.
    let (_, text) = scrape(&app, Some(&format!("Bearer {TOKEN}"))).await;
    let dashboard = include_str!("../../packaging/grafana-dashboard.json");
    let _: Value = serde_json::from_str(dashboard).expect("the dashboard is JSON");
    let mut asked: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("switchboard_") || word.starts_with("process_"))
        .collect();
    asked.sort_unstable();
    asked.dedup();
    assert!(asked.len() > 10, "{asked:?}");
    for name in asked {
        assert!(text.contains(&format!("\n{name}")), "the dashboard asks for {name}, which /metrics lacks");
    }
}

/// The pending reservation of `task`, once it is made.
async fn pending_reservation(api: &Api<'_>, task: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending = api.get(&format!("/Tasks/{task}/Reservations?ReservationStatus=pending")).await;
        if let Some(sid) = pending["reservations"][0]["sid"].as_str() {
            return sid.to_owned();
        }
        assert!(Instant::now() < deadline, "task {task} was never offered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_listen_serves_metrics_alone_on_its_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = crate::helpers::switchboard_command(dir.path());
    command
        .arg("serve")
        .env("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_METRICS_LISTEN", "127.0.0.1:0");
    let server = crate::helpers::SwitchboardProcess::start(command).unwrap();
    let line = server.wait_for_log(Duration::from_secs(30), "metrics for Prometheus on").unwrap();
    let metrics_url = line.split("on http://").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let client = reqwest::Client::new();
    let get = async |url: String| {
        let response = client.get(url).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    };

    let (status, text) = get(format!("http://{metrics_url}")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("# TYPE switchboard_tasks gauge"), "{text}");
    let other = metrics_url.replace("/metrics", "/healthz");
    assert_eq!(get(format!("http://{other}")).await.0, 404, "only /metrics there");
    let (status, text) = get(server.url("/metrics")).await;
    assert_eq!(status, 404, "not on the main address without a token: {text}");
}
