//! The supervisor role on the real server with the provider emulator: a worker whose `roles`
//! include "supervisor" sees every live call and the agents' board, and monitors, whispers to
//! and barges into a call, each checked on the emulator (who hears whom); an agent cannot, and
//! a supervisor cannot reach the admin's API: 403s that change nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::emulator::conference_bridging;
use crate::taskrouter::Api;
use crate::transfers::{Agent, a_sales_call_with, hearing, worker_sid};
use crate::voice::set_activity;

/// Who each party of the conference named `room` hears, once `done` holds for it.
async fn until_heard(
    provider: &crate::emulator::Provider,
    room: &str,
    what: &str,
    done: impl Fn(&[(String, Vec<String>)]) -> bool,
) -> Vec<(String, Vec<String>)> {
    let conference = provider
        .wait_for_conference(what, |conference| {
            conference["friendly_name"] == room && done(&hearing(conference))
        })
        .await;
    hearing(&conference)
}

/// The labels each party hears, with the agent's and supervisor's labels shortened to
/// `agent` and `supervisor`.
fn short(hearing: &[(String, Vec<String>)]) -> Vec<(String, Vec<String>)> {
    let name = |label: &str| label.split('-').next().unwrap_or(label).to_owned();
    let mut short: Vec<(String, Vec<String>)> = hearing
        .iter()
        .map(|(who, hears)| {
            let mut hears: Vec<String> = hears.iter().map(|label| name(label)).collect();
            hears.sort();
            (name(who), hears)
        })
        .collect();
    short.sort();
    short
}

fn parties(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    list.iter().map(|(who, hears)| (who.to_string(), hears.iter().map(|h| h.to_string()).collect())).collect()
}

#[tokio::test]
async fn a_supervisor_monitors_then_whispers_then_barges_and_others_get_403() {
    let (app, provider) = conference_bridging().await;
    let api = Api::new(&app).await;
    // Bob becomes a supervisor (Flex's roles attribute); he stays offline for calls.
    let bob = worker_sid(&app, "bob");
    let attributes =
        json!({"contact_uri": "client:bob", "roles": ["supervisor"], "routing": {"skills": ["Support"]}});
    api.post(&format!("/Workers/{bob}"), &[("Attributes", &attributes.to_string())]).await;
    let (alice, supervisor) = (Agent::sign_in(&app, "alice").await, Agent::sign_in(&app, "bob").await);
    set_activity(&app, "alice", "Available").await;
    let (call, task) = a_sales_call_with(&app, &provider, &alice).await;

    // The supervisor sees the call with its agent and queue, and the board.
    let (status, state) = supervisor.get("/supervisor/api/state").await;
    assert_eq!(status, StatusCode::OK, "{state}");
    let listed = &state["calls"][0];
    assert_eq!(
        (
            listed["task_sid"].as_str(),
            listed["agent"].as_str(),
            listed["queue"].as_str(),
            listed["state"].as_str()
        ),
        (Some(task.as_str()), Some("alice"), Some("Sales"), Some("talking"))
    );
    let board = state["agents"].as_array().unwrap();
    let alice_on_board = board.iter().find(|agent| agent["friendly_name"] == "alice").unwrap();
    assert_eq!(
        (alice_on_board["activity_name"].as_str(), alice_on_board["calls_handled_today"].as_u64()),
        (Some("Available"), Some(1))
    );

    // An agent cannot supervise, nor read the supervisor view; the supervisor cannot reach the
    // admin's API. Each a 403 that changes nothing.
    let (status, _) = alice.get("/supervisor/api/state").await;
    let (monitor_as_agent, _) =
        alice.post(&format!("/supervisor/api/calls/{task}"), &[("Mode", "monitor")]).await;
    let base = app.url("");
    let (skills, _) = supervisor
        .session
        .send(&app.client, &base, Method::POST, "/admin/api/skills", &[("Name", "Billing")])
        .await;
    let workspace = app.engine.read(|engine| engine.workspace_sid().to_string());
    let queues_path = format!("/v1/Workspaces/{workspace}/TaskQueues");
    let (queues, _) = supervisor
        .session
        .send(&app.client, &base, Method::POST, &queues_path, &[("FriendlyName", "Mine")])
        .await;
    assert_eq!(
        (status, monitor_as_agent, skills, queues),
        (StatusCode::FORBIDDEN, StatusCode::FORBIDDEN, StatusCode::FORBIDDEN, StatusCode::FORBIDDEN)
    );
    assert!(app.engine.read(|engine| engine.skills().iter().all(|skill| skill.name != "Billing")
        && engine.queue_by_name("Mine").is_none()));
    assert_eq!(
        provider.conferences().await[0]["participants"].as_array().map(Vec::len),
        Some(2),
        "nobody joined"
    );

    // Monitor: the supervisor hears both, nobody hears them.
    let (status, state) =
        supervisor.post(&format!("/supervisor/api/calls/{task}"), &[("Mode", "monitor")]).await;
    assert_eq!(
        (status, state["calls"][0]["your_mode"].as_str()),
        (StatusCode::OK, Some("monitor")),
        "{state}"
    );
    let monitoring = until_heard(&provider, &task, "the supervisor listening", |h| h.len() == 3).await;
    assert_eq!(
        short(&monitoring),
        parties(&[
            ("agent", &["customer"]),
            ("customer", &["agent"]),
            ("supervisor", &["agent", "customer"])
        ])
    );
    // Whisper: only the agent hears the supervisor.
    let (status, _) = supervisor.post(&format!("/supervisor/api/calls/{task}"), &[("Mode", "whisper")]).await;
    assert_eq!(status, StatusCode::OK);
    let whispering = until_heard(&provider, &task, "the supervisor coaching", |h| {
        h.iter().any(|(who, hears)| who.starts_with("agent") && hears.len() == 2)
    })
    .await;
    assert_eq!(
        short(&whispering),
        parties(&[
            ("agent", &["customer", "supervisor"]),
            ("customer", &["agent"]),
            ("supervisor", &["agent", "customer"])
        ])
    );
    // Barge: everyone hears everyone.
    let (status, _) = supervisor.post(&format!("/supervisor/api/calls/{task}"), &[("Mode", "barge")]).await;
    assert_eq!(status, StatusCode::OK);
    let barged = until_heard(&provider, &task, "the supervisor in the call", |h| {
        h.iter().all(|(_, hears)| hears.len() == 2)
    })
    .await;
    assert_eq!(
        short(&barged),
        parties(&[
            ("agent", &["customer", "supervisor"]),
            ("customer", &["agent", "supervisor"]),
            ("supervisor", &["agent", "customer"])
        ])
    );
    // Leaving: the call goes on between the caller and alice.
    let (status, state) =
        supervisor.post(&format!("/supervisor/api/calls/{task}"), &[("Mode", "leave")]).await;
    assert_eq!((status, &state["calls"][0]["your_mode"]), (StatusCode::OK, &Value::Null));
    let after = until_heard(&provider, &task, "the supervisor gone", |h| h.len() == 2).await;
    assert_eq!(short(&after), parties(&[("agent", &["customer"]), ("customer", &["agent"])]));
    assert_eq!(provider.summary(&call).await["status"], "in-progress");
    app.shut_down().await.unwrap();
}
