//! `switchboard store copy` and `store migrate`, on real processes: a sled directory copied
//! into PostgreSQL and back, each copy served by a real `switchboard serve` that answers as the
//! original did (the tasks, the workers and their sign-in secrets, an idempotency key); a
//! non-empty target and a malformed location are clear errors.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    SwitchboardProcess, fixed_config, json_as_account, serve_in, serve_on_postgres, switchboard_command,
    until_ready,
};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN};

/// `switchboard store ARGS` in `dir`: exit code, standard output and standard error.
fn store(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = switchboard_command(dir).arg("store").args(args).output().expect("switchboard runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What a server holds, as its API lists it (without what moves with the clock and the port).
async fn holdings(client: &reqwest::Client, server: &SwitchboardProcess) -> Value {
    let get = |path: String| json_as_account(client.get(server.url(&path)));
    let workspaces = get("/v1/Workspaces".into()).await;
    let workspace = workspaces["workspaces"][0]["sid"].as_str().unwrap().to_owned();
    let mut held = serde_json::json!({});
    for (list, key) in [("Tasks", "tasks"), ("Workers", "workers"), ("TaskQueues", "task_queues")] {
        let page = get(format!("/v1/Workspaces/{workspace}/{list}?PageSize=1000")).await;
        let text = page[key].to_string().replace(&server.url(""), "http://HOST");
        let mut items: Vec<Value> = serde_json::from_str(&text).unwrap();
        for item in &mut items {
            let item = item.as_object_mut().unwrap();
            item.remove("age");
        }
        held[key] = Value::Array(items);
    }
    held
}

/// Creates a task with `key` as its idempotency key on `server`; answers its SID.
async fn task_with_key(client: &reqwest::Client, server: &SwitchboardProcess, key: &str) -> String {
    let workspaces = json_as_account(client.get(server.url("/v1/Workspaces"))).await;
    let base =
        server.url(&format!("/v1/Workspaces/{}", workspaces["workspaces"][0]["sid"].as_str().unwrap()));
    let workflows = json_as_account(client.get(format!("{base}/Workflows"))).await;
    let form = [
        ("WorkflowSid", workflows["workflows"][0]["sid"].as_str().unwrap()),
        ("Attributes", r#"{"skillsNeeded": ["Sales"], "order": "copied"}"#),
    ];
    let answer = client
        .post(format!("{base}/Tasks"))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .header("Idempotency-Key", key)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    answer.json::<Value>().await.unwrap()["sid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_directory_copied_into_postgresql_and_back_serves_as_before() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("switchboard.toml"), fixed_config(0, ACCOUNT_SID, AUTH_TOKEN)).unwrap();
    let database = crate::test_postgres::new_database();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    let mut on_sled = serve_in(dir.path());
    let made = task_with_key(&client, &on_sled, "order-1").await;
    let before = holdings(&client, &on_sled).await;
    on_sled.signal(libc::SIGTERM);
    on_sled.wait(Duration::from_secs(30)).expect("stops");

    let into_postgres = store(dir.path(), &["copy", "sled:data", &format!("postgres:{database}")]);
    let again = store(dir.path(), &["copy", "sled:data", &format!("postgres:{database}")]);
    let on_postgres = serve_on_postgres(dir.path(), &database);
    until_ready(&client, &on_postgres).await;
    let in_postgres = holdings(&client, &on_postgres).await;
    let retried = task_with_key(&client, &on_postgres, "order-1").await;
    drop(on_postgres);
    let back = store(dir.path(), &["copy", &format!("postgres:{database}"), "sled:back"]);
    let mut command = switchboard_command(dir.path());
    command.arg("serve").env("SWITCHBOARD_STORE_DATA_DIR", "back");
    let on_sled_again = SwitchboardProcess::start(command).unwrap();
    let back_in_sled = holdings(&client, &on_sled_again).await;
    let malformed = store(dir.path(), &["copy", "data", "sled:elsewhere"]);
    let migrated = store(dir.path(), &["migrate", "--url", &database]);

    assert_eq!(into_postgres.0, 0, "{}", into_postgres.2);
    assert!(into_postgres.1.starts_with("copied sled:data into postgres:"), "{}", into_postgres.1);
    assert_eq!(in_postgres, before, "PostgreSQL serves what sled did");
    assert_eq!(retried, made, "the idempotency key came along: the retry answers the first task");
    assert_eq!((again.0, again.2.contains("the target already holds data")), (1, true), "{}", again.2);
    assert_eq!(back.0, 0, "{}", back.2);
    assert_eq!(back_in_sled, before, "and back again");
    assert_eq!(malformed.0, 2);
    assert!(malformed.2.contains("a store is sled:DIR or postgres:URL"), "{}", malformed.2);
    assert_eq!((migrated.0, migrated.1.trim()), (0, "schema version 4: up to date"), "{}", migrated.2);
}
