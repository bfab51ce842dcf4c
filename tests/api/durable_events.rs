//! Nothing is announced before it is on disk: the real process, killed between applying
//! commands and flushing them, never told its event callback receiver about them.
//!
//! `periodic` durability with an interval of an hour holds the window between apply and flush
//! open for as long as the test needs: the tasks are acknowledged at once and reach the disk
//! only with the next flush. Killed inside that window, the process loses them (as `periodic`
//! allows), and since a lost task's SID is minted again after the restart, an announcement of
//! it would have named a task that never existed.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{fixed_config, json_as_account, serve_in};
use crate::sms::Provider;
use crate::workspaces::sales_and_support;

use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN};

/// A server on `port` that acknowledges at once and flushes only once an hour (or when a
/// keyed record must be on disk), announcing task events to `receiver`.
fn config(port: u16, receiver: &str) -> String {
    let head = fixed_config(port, ACCOUNT_SID, AUTH_TOKEN).replace(
        "data_dir = \"data\"",
        "data_dir = \"data\"\ndurability = \"periodic\"\nflush_interval_ms = 3600000",
    );
    let workspace = sales_and_support(2, 20);
    format!(
        "{head}\n[events]\ncallback_url = \"{receiver}/events\"\ncallback_filter = \"task.created\"\n{workspace}"
    )
}

/// The tasks whose creation reached the receiver: SID and attributes.
fn announced(receiver: &Provider) -> Vec<(String, String)> {
    let received = receiver.received();
    let created = received.iter().filter(|request| request.field("EventType") == "task.created");
    created
        .map(|request| (request.field("TaskSid").to_owned(), request.field("TaskAttributes").to_owned()))
        .collect()
}

async fn create_task(client: &reqwest::Client, tasks: &str, workflow: &str, attributes: &str) -> String {
    let answer = client
        .post(tasks)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .form(&[("WorkflowSid", workflow), ("Attributes", attributes)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201, "the task is acknowledged");
    let task: Value = answer.json().await.unwrap();
    task["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_command_killed_between_apply_and_flush_was_never_announced() {
    // Arrange: the real process, its callback receiver, and the workspace's first workflow.
    let receiver = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(dir.path().join("switchboard.toml"), config(port, &receiver.base())).unwrap();
    let mut server = serve_in(dir.path());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let workspaces: Value = json_as_account(client.get(server.url("/v1/Workspaces"))).await;
    let workspace = workspaces["workspaces"][0]["sid"].as_str().unwrap().to_owned();
    let base = server.url(&format!("/v1/Workspaces/{workspace}"));
    let workflows: Value = json_as_account(client.get(format!("{base}/Workflows"))).await;
    let workflow = workflows["workflows"][0]["sid"].as_str().unwrap().to_owned();
    let tasks = format!("{base}/Tasks");

    // Act: three tasks acknowledged, given time to be announced, then the process killed
    // before any flush.
    let mut lost = Vec::new();
    for n in 0..3 {
        lost.push(create_task(&client, &tasks, &workflow, &format!(r#"{{"lost":{n}}}"#)).await);
    }
    // The old code announced within milliseconds of the apply; a second is ample.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_kill = announced(&receiver);
    server.signal(libc::SIGKILL);
    server.wait(Duration::from_secs(10)).expect("the killed process exits");
    let server = serve_in(dir.path());
    // A new client: the old one's pooled connections died with the process.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // Assert: the tasks were not durable, so they are gone, and nothing announced them.
    assert_eq!(before_kill, vec![], "announced before the flush");
    for sid in &lost {
        let answer = client.get(format!("{tasks}/{sid}")).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
        let status = answer.send().await.unwrap().status();
        assert_eq!(status, 404, "{sid} was applied but never flushed, so the kill took it");
    }

    // And once something flushes, what it covers is announced: a new task (with a lost one's
    // SID, minted again), then a write that must be on disk (a new sign-in secret) flushes it.
    let found = create_task(&client, &tasks, &workflow, r#"{"kept":true}"#).await;
    assert_eq!(found, lost[0], "SIDs come from a counter: the lost task's SID is minted again");
    let workers: Value = json_as_account(client.get(format!("{base}/Workers"))).await;
    let worker = workers["workers"][0]["sid"].as_str().unwrap();
    let secret = client
        .post(server.url(&format!("/admin/api/workers/{worker}/secret")))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    assert!(secret.status().is_success(), "a new secret: {}", secret.status());
    let deadline = Instant::now() + Duration::from_secs(20);
    while announced(&receiver).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(announced(&receiver), vec![(found, r#"{"kept":true}"#.to_owned())], "announced once on disk");
}
