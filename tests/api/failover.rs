//! Leading and standing by, with real `switchboard serve` processes on one PostgreSQL database
//! (a private cluster, `test_postgres`): what `/readyz` says on each node, what a standby
//! answers, a clean stop handing over at once, and a paused leader that must never answer
//! again once another node took over. The leader killed under load is `chaos.rs`'s.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{SwitchboardProcess, fixed_config, json_as_account, serve_on_postgres, until_ready};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN};

/// Two nodes on a new database: the first leads, the second stands by.
async fn pair(client: &reqwest::Client) -> (tempfile::TempDir, SwitchboardProcess, SwitchboardProcess) {
    let dir = tempfile::tempdir().unwrap();
    let database = crate::test_postgres::new_database();
    std::fs::write(dir.path().join("switchboard.toml"), fixed_config(0, ACCOUNT_SID, AUTH_TOKEN)).unwrap();
    let leader = serve_on_postgres(dir.path(), &database);
    until_ready(client, &leader).await;
    let standby = serve_on_postgres(dir.path(), &database);
    (dir, leader, standby)
}

async fn readyz(client: &reqwest::Client, node: &SwitchboardProcess) -> Option<(StatusCode, Value)> {
    let answer = client.get(node.url("/readyz")).send().await.ok()?;
    Some((answer.status(), answer.json().await.ok()?))
}

async fn get(client: &reqwest::Client, url: &str) -> Value {
    json_as_account(client.get(url)).await
}

/// The workspace's path (`/v1/Workspaces/WS...`) and its first workflow's SID, as `node`
/// answers them.
async fn workspace(client: &reqwest::Client, node: &SwitchboardProcess) -> (String, String) {
    let list = get(client, &node.url("/v1/Workspaces")).await;
    let path = format!("/v1/Workspaces/{}", list["workspaces"][0]["sid"].as_str().unwrap());
    let workflows = get(client, &node.url(&format!("{path}/Workflows"))).await;
    (path, workflows["workflows"][0]["sid"].as_str().unwrap().to_owned())
}

/// `POST .../Tasks` to `node` in `(path, workflow)`: the status, and the task's SID if made.
async fn create_task(
    client: &reqwest::Client,
    node: &SwitchboardProcess,
    (path, workflow): &(String, String),
) -> (StatusCode, Option<String>) {
    let form = [("Attributes", r#"{"skillsNeeded": ["Sales"]}"#), ("WorkflowSid", workflow.as_str())];
    let answer = client
        .post(node.url(&format!("{path}/Tasks")))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .form(&form)
        .send()
        .await;
    match answer {
        Ok(answer) => {
            let status = answer.status();
            let body: Value = answer.json().await.unwrap_or_default();
            (status, body["sid"].as_str().map(str::to_owned))
        }
        Err(_) => (StatusCode::BAD_GATEWAY, None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_is_ready_the_standby_refuses_naming_it_and_a_clean_stop_hands_over_at_once() {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let (_dir, mut leader, standby) = pair(&client).await;
    let (leader_ready, standby_ready) =
        (readyz(&client, &leader).await.unwrap(), readyz(&client, &standby).await);
    let standby_ready = standby_ready.unwrap();
    let refused = client
        .get(standby.url("/v1/Workspaces"))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    let refused =
        (refused.status(), refused.headers().get("retry-after").cloned(), refused.text().await.unwrap());
    let webhook = client
        .post(standby.url("/voice/incoming?flow=main"))
        .form(&[("CallSid", "CA1")])
        .send()
        .await
        .unwrap();
    let webhook = (webhook.status(), webhook.text().await.unwrap());
    let alive = client.get(standby.url("/healthz")).send().await.unwrap().status();

    leader.signal(libc::SIGTERM);
    let (status, _) = leader.wait(Duration::from_secs(30)).expect("the leader stops");
    let handed_over = until_ready(&client, &standby).await;

    assert_eq!(leader_ready.0, StatusCode::OK, "{}", leader_ready.1);
    assert_eq!(leader_ready.1["status"], "leader");
    assert_eq!(standby_ready.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(standby_ready.1["status"], "standby");
    assert_eq!(standby_ready.1["leader"], leader_ready.1["node"], "the standby names the leader");
    assert_eq!(alive, StatusCode::OK, "a standby is alive: no supervisor should restart it");
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.1.as_ref().and_then(|value| value.to_str().ok()), Some("1"));
    assert!(
        refused.2.contains("this node stands by;") && refused.2.contains("leads: retry"),
        "{}",
        refused.2
    );
    assert_eq!(webhook.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        webhook
            .1
            .contains("<Pause length=\"1\"/><Redirect method=\"POST\">/voice/incoming?flow=main</Redirect>"),
        "a caller is never hung up on: {}",
        webhook.1
    );
    assert!(status.success(), "a clean stop: {status:?}");
    assert!(
        handed_over < Duration::from_secs(1),
        "the lease was handed back, not left to run out ({handed_over:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_never_answers_again_once_another_node_took_over() {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let (_dir, mut paused, standby) = pair(&client).await;
    let workspace = workspace(&client, &paused).await;
    let (made_before, before) = create_task(&client, &paused, &workspace).await;
    assert_eq!(made_before, StatusCode::CREATED);

    paused.signal(libc::SIGSTOP);
    until_ready(&client, &standby).await;
    let (made_after, after) = create_task(&client, &standby, &workspace).await;
    // Sent while it is paused: answered, if ever, only once it runs again.
    let sent_while_paused = {
        let tasks = paused.url(&format!("{}/Tasks", workspace.0));
        let client = client.clone();
        tokio::spawn(async move {
            let tasks = client.get(tasks).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).send();
            tasks.await.map(|answer| answer.status())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    paused.signal(libc::SIGCONT);
    let resumed_read = sent_while_paused.await.unwrap();
    let (resumed_write, _) = create_task(&client, &paused, &workspace).await;
    let resumed_ready = readyz(&client, &paused).await.map(|(status, _)| status);
    let exited = paused.wait(Duration::from_secs(30));
    let listed = get(&client, &standby.url(&format!("{}/Tasks?PageSize=100", workspace.0))).await;
    let listed: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|task| task["sid"].as_str().unwrap())
        .collect();

    assert_eq!(made_after, StatusCode::CREATED, "the new leader serves");
    assert!(
        !matches!(resumed_read, Ok(status) if status.is_success()),
        "a read sent to the paused leader is not answered from its stale memory: {resumed_read:?}"
    );
    assert!(!resumed_write.is_success(), "the old leader acknowledges nothing: {resumed_write}");
    assert_ne!(resumed_ready, Some(StatusCode::OK), "the old leader is not ready");
    let (status, log) = exited.expect("the old leader stops once it learns another node leads");
    assert!(!status.success(), "{status:?}");
    assert!(log.iter().any(|line| line.contains("no longer leads")), "{}", log.join("\n"));
    assert_eq!(listed, [before.unwrap(), after.unwrap()], "what each leader acknowledged, and nothing else");
}
