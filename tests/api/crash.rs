//! A crash: the real `switchboard serve` process, killed with SIGKILL in the middle of routing,
//! restarted on the same sled directory, or the same PostgreSQL database. Everything
//! acknowledged through the REST API is there again, and the reservation whose timeout passed
//! during the outage has timed out.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::helpers::SwitchboardProcess;
use crate::workspaces::SKILLS_AND_QUEUES;

const ACCOUNT_SID: &str = "AC00000000000000000000000000c0ffee";
const AUTH_TOKEN: &str = "crash-test-token";
/// The offer timeout of the workspace below: short, so that it passes while the process is down.
const RESERVATION_TIMEOUT: Duration = Duration::from_secs(2);

const CONFIG: &str = r#"
[http]
listen = "127.0.0.1:0"

[twilio]
account_sid = "AC00000000000000000000000000c0ffee"
auth_token = "crash-test-token"

[workspace]
friendly_name = "Crash test"

[[workspace.workflows]]
name = "Main"
task_reservation_timeout = 2
default_queue = "Sales"

[[workspace.workflows.filters]]
name = "Support calls"
skill = "Support"
queue = "Support"

[[workspace.workers]]
name = "alice"
skills = ["Sales"]

[[workspace.workers]]
name = "bob"
skills = ["Support"]
"#;

/// A blocking REST client for one running process.
struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(process: &SwitchboardProcess) -> Client {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let http = reqwest::Client::new();
        let workspaces = format!("http://{}/v1/Workspaces", process.address);
        let mut client = Client { runtime, http, base: workspaces.clone() };
        let list = client.call(Method::GET, "", &[]);
        client.base = format!("{workspaces}/{}", list["workspaces"][0]["sid"].as_str().unwrap());
        client
    }

    /// Sends a request under the workspace and returns the JSON of a successful answer.
    fn call(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Value {
        let request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        self.runtime.block_on(async {
            let response = request.send().await.expect("the server answers");
            let status = response.status();
            let body: Value = response.json().await.expect("JSON");
            assert!(status.is_success(), "{method} {path} {form:?}: {status} {body}");
            body
        })
    }

    fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, &[])
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        self.call(Method::POST, path, form)
    }

    /// Every item of a list (one page is enough here), without what changes with the clock
    /// (`age`) and the port (in `url` and `links`), so that two runs compare equal.
    fn all(&self, path: &str, key: &str) -> Vec<Value> {
        let host = self.base.split("/v1/").next().unwrap();
        let text = self.get(&format!("{path}?PageSize=1000"))[key].to_string().replace(host, "http://HOST");
        let mut items: Vec<Value> = serde_json::from_str(&text).unwrap();
        for item in &mut items {
            item.as_object_mut().unwrap().remove("age");
        }
        items
    }

    fn sid(&self, path: &str, key: &str, name: &str) -> String {
        let items = self.all(path, key);
        let item = items.iter().find(|item| item["friendly_name"] == name).unwrap();
        item["sid"].as_str().unwrap().to_owned()
    }
}

/// `switchboard serve` in `dir`, its data in sled there, or in the PostgreSQL database
/// `postgres` when given.
fn serve(dir: &std::path::Path, postgres: Option<&str>) -> SwitchboardProcess {
    let mut command = crate::helpers::switchboard_command(dir);
    command.arg("serve");
    if let Some(url) = postgres {
        command.env("SWITCHBOARD_STORE_BACKEND", "postgres").env("SWITCHBOARD_STORE_POSTGRES_URL", url);
    }
    let process = SwitchboardProcess::start(command).expect("switchboard starts");
    // On PostgreSQL it leads once the killed one's database session is gone: a moment.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(crate::helpers::until_ready(&reqwest::Client::new(), &process));
    process
}

fn find<'a>(items: &'a [Value], sid: &str) -> &'a Value {
    items.iter().find(|item| item["sid"] == sid).unwrap_or_else(|| panic!("{sid} is missing"))
}

#[test]
fn after_sigkill_every_acknowledged_change_is_recovered_and_missed_timeouts_fire() {
    sigkill_and_restart(None);
}

#[test]
fn on_postgresql_after_sigkill_every_acknowledged_change_is_recovered_and_missed_timeouts_fire() {
    let url = crate::test_postgres::new_database();
    sigkill_and_restart(Some(&url));
}

/// The crash test, on sled or on the PostgreSQL database `postgres`.
fn sigkill_and_restart(postgres: Option<&str>) {
    // Arrange: a fresh directory and a first process.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("switchboard.toml"), format!("{CONFIG}{SKILLS_AND_QUEUES}")).unwrap();
    let first = serve(dir.path(), postgres);
    let api = Client::new(&first);
    let available = api.sid("/Activities", "activities", "Available");
    let alice = api.sid("/Workers", "workers", "alice");
    let bob = api.sid("/Workers", "workers", "bob");
    assert_eq!(api.all("/Tasks", "tasks").len(), 0);

    // Act, part 1: routing in every state. Alice accepts a sales call; bob is offered a
    // support call and does not answer; two more sales calls wait; a new agent is hired.
    api.post(&format!("/Workers/{alice}"), &[("ActivitySid", &available)]);
    let accepted_task = api.post("/Tasks", &[("Attributes", r#"{"skillsNeeded":["Sales"],"n":1}"#)]);
    let accepted_task = accepted_task["sid"].as_str().unwrap().to_owned();
    let offer = &api.get(&format!("/Tasks/{accepted_task}/Reservations"))["reservations"][0];
    let accepted = offer["sid"].as_str().unwrap().to_owned();
    api.post(&format!("/Workers/{alice}/Reservations/{accepted}"), &[("ReservationStatus", "accepted")]);
    let waiting: Vec<String> = (2..=3)
        .map(|n| {
            let attributes = format!(r#"{{"skillsNeeded":["Sales"],"n":{n}}}"#);
            let priority = n.to_string();
            let task = api.post("/Tasks", &[("Attributes", &attributes), ("Priority", &priority)]);
            task["sid"].as_str().unwrap().to_owned()
        })
        .collect();
    let carol = api.post("/Workers", &[("FriendlyName", "carol"), ("Attributes", r#"{"team":"night"}"#)]);
    let carol = carol["sid"].as_str().unwrap().to_owned();
    api.post(&format!("/Workers/{bob}"), &[("ActivitySid", &available)]);
    let unanswered_task = api.post("/Tasks", &[("Attributes", r#"{"skillsNeeded":["Support"],"n":4}"#)]);
    let offered_at = Instant::now();
    let unanswered_task = unanswered_task["sid"].as_str().unwrap().to_owned();
    assert_eq!(unanswered_task.len(), 34);
    let tasks_before = api.all("/Tasks", "tasks");
    let workers_before = api.all("/Workers", "workers");
    let unanswered = api.all(&format!("/Tasks/{unanswered_task}/Reservations"), "reservations");
    assert_eq!(unanswered.len(), 1);
    assert_eq!(unanswered[0]["reservation_status"], "pending", "the offer must still be open at the crash");
    let unanswered = unanswered[0]["sid"].as_str().unwrap().to_owned();

    // Act, part 2: the crash, an outage longer than the offer timeout, and a restart.
    first.signal(libc::SIGKILL);
    drop(first);
    if let Some(rest) =
        (offered_at + RESERVATION_TIMEOUT + Duration::from_millis(500)).checked_duration_since(Instant::now())
    {
        std::thread::sleep(rest);
    }
    let second = serve(dir.path(), postgres);
    let api = Client::new(&second);
    if postgres.is_some() {
        assert!(!dir.path().join("data").exists(), "on PostgreSQL, nothing is kept in a data directory");
    }

    // Assert: the tasks nothing happened to are exactly as acknowledged.
    let tasks_after = api.all("/Tasks", "tasks");
    assert_eq!(tasks_after.len(), 4);
    for sid in [&accepted_task, &waiting[0], &waiting[1]] {
        assert_eq!(find(&tasks_after, sid), find(&tasks_before, sid), "task {sid}");
    }
    assert_eq!(find(&tasks_after, &accepted_task)["assignment_status"], "assigned");
    assert_eq!(find(&tasks_after, &waiting[1])["priority"], 3);
    let accepted_after = api.get(&format!("/Tasks/{accepted_task}/Reservations/{accepted}"));
    assert_eq!(accepted_after["reservation_status"], "accepted");
    let workers_after = api.all("/Workers", "workers");
    for sid in [&alice, &carol] {
        assert_eq!(find(&workers_after, sid), find(&workers_before, sid), "worker {sid}");
    }
    assert_eq!(find(&workers_after, &carol)["attributes"], r#"{"team":"night"}"#);
    assert_eq!(find(&workers_after, &alice)["activity_name"], "Available");

    // The offer that timed out while the process was down has timed out: bob went to the
    // timeout activity (Offline) and the call waits for someone else.
    let timed_out = api.get(&format!("/Tasks/{unanswered_task}/Reservations/{unanswered}"));
    assert_eq!(timed_out["reservation_status"], "timeout");
    assert_eq!(find(&workers_after, &bob)["activity_name"], "Offline");
    assert_eq!(find(&tasks_after, &unanswered_task)["assignment_status"], "pending");
    assert_eq!(
        find(&tasks_after, &unanswered_task)["attributes"],
        find(&tasks_before, &unanswered_task)["attributes"]
    );
}
