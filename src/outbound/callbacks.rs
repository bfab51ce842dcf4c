//! Event callbacks: each event POSTed as a form to the workspace's `EventCallbackUrl` with
//! TaskRouter's parameter names (`EventType`, `WorkspaceSid`, `ResourceSid`, `TaskSid`,
//! `TaskAttributes`, `WorkerName`...), like TaskRouter's. The URL and the filter are the
//! workspace's once set through the REST API, else the settings `events.callback_url` and
//! `events.callback_filter`; they are read for each event, so a change applies to the next.
//!
//! Delivery never holds up routing: it reads the live engine's event broadcast on its own task,
//! in order, retrying a failing receiver with backoff (0.5 s, doubling) up to
//! `events.callback_attempts` times. A receiver that answers 4xx (other than 429) refused the
//! event and is not retried. Events are stored in the data directory whatever happens here.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::config::EventSettings;
use crate::live::LiveEngine;
use crate::routing::{Engine, Event, EventType, SidKind};

/// First wait before a retry; each further wait doubles.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The form parameters of `event`, named as TaskRouter names them, with the resources as they
/// are now in `engine` (names, attributes, activity).
pub fn parameters(engine: &Engine, event: &Event) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("EventType", event.event_type.as_str().to_owned()),
        ("WorkspaceSid", engine.workspace_sid().to_string()),
        ("WorkspaceName", engine.settings().friendly_name.clone()),
        ("ResourceType", resource_type(event.resource.kind()).to_owned()),
        ("ResourceSid", event.resource.to_string()),
        ("EventDescription", description(event)),
        ("Timestamp", (event.timestamp.div_euclid(1000)).to_string()),
        ("TimestampMs", event.timestamp.to_string()),
        ("Sequence", event.sequence.to_string()),
    ];
    if let Some(sid) = event.task {
        form.push(("TaskSid", sid.to_string()));
        if let Some(task) = engine.task(sid) {
            form.push(("TaskAttributes", task.attributes.to_string()));
            form.push(("TaskAge", ((event.timestamp - task.created_at).max(0) / 1000).to_string()));
            form.push(("TaskPriority", task.priority.to_string()));
            form.push(("TaskAssignmentStatus", task.status.as_str().to_owned()));
        }
        match (event.event_type, &event.reason) {
            (EventType::TaskCanceled, Some(reason)) => form.push(("TaskCanceledReason", reason.clone())),
            (EventType::TaskCompleted, Some(reason)) => form.push(("TaskCompletedReason", reason.clone())),
            _ => {}
        }
    }
    if let Some(sid) = event.worker {
        form.push(("WorkerSid", sid.to_string()));
        if let Some(worker) = engine.worker(sid) {
            let activity = engine.worker_activity(worker);
            form.push(("WorkerName", worker.friendly_name.clone()));
            form.push(("WorkerAttributes", worker.attributes.to_string()));
            form.push(("WorkerActivitySid", activity.sid.to_string()));
            form.push(("WorkerActivityName", activity.friendly_name.clone()));
        }
    }
    if let Some(sid) = event.reservation {
        form.push(("ReservationSid", sid.to_string()));
    }
    if let Some(sid) = event.queue {
        form.push(("TaskQueueSid", sid.to_string()));
        if let Some(queue) = engine.queue(sid) {
            form.push(("TaskQueueName", queue.friendly_name.clone()));
        }
    }
    if let Some(sid) = event.workflow {
        form.push(("WorkflowSid", sid.to_string()));
        if let Some(workflow) = engine.workflow(sid) {
            form.push(("WorkflowName", workflow.friendly_name.clone()));
        }
    }
    if let (Some(sid), None) = (event.activity, event.worker) {
        form.push(("ActivitySid", sid.to_string()));
        if let Some(activity) = engine.activities().iter().find(|activity| activity.sid == sid) {
            form.push(("ActivityName", activity.friendly_name.clone()));
            form.push(("ActivityAvailable", activity.available.to_string()));
        }
    }
    form
}

fn resource_type(kind: SidKind) -> &'static str {
    match kind {
        SidKind::Workspace => "workspace",
        SidKind::Activity => "activity",
        SidKind::Worker => "worker",
        SidKind::TaskQueue => "taskqueue",
        SidKind::Workflow => "workflow",
        SidKind::Task => "task",
        SidKind::Reservation => "reservation",
        SidKind::TaskChannel => "taskchannel",
        SidKind::Event => "event",
        SidKind::WorkerChannel => "workerchannel",
    }
}

fn description(event: &Event) -> String {
    format!("{} {} {}", resource_type(event.resource.kind()), event.resource, event.event_type.as_str())
}

/// Where `event` is to be sent, and whether it is: the workspace's URL and filter where set
/// (through the REST API), else `settings`'; `None` for no callback.
pub fn destination<'a>(engine: &'a Engine, settings: &'a EventSettings, event: &Event) -> Option<&'a str> {
    let workspace = engine.settings();
    let url = workspace.event_callback_url.as_deref().unwrap_or(&settings.callback_url).trim();
    let filter = workspace.events_filter.as_deref().unwrap_or(&settings.callback_filter);
    let mut wanted = filter.split(',').map(str::trim).filter(|name| !name.is_empty()).peekable();
    let included = wanted.peek().is_none() || wanted.any(|name| name == event.event_type.as_str());
    (!url.is_empty() && included).then_some(url)
}

/// Sends `events` (a subscription to the live engine's events, taken before the deadlines
/// missed while stopped were fired) to their [`destination`] until `shutdown` completes.
pub async fn deliver(
    live: Arc<LiveEngine>,
    settings: EventSettings,
    mut events: broadcast::Receiver<Event>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap_or_default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let event = tokio::select! {
            () = &mut shutdown => return,
            received = events.recv() => match received {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "event callbacks fell behind; events were skipped (they stay stored)");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
        };
        let sent = live.read(|engine| {
            let url = destination(engine, &settings, &event)?;
            Some((url.to_owned(), parameters(engine, &event)))
        });
        if let Some((url, form)) = sent {
            send(&client, &url, settings.callback_attempts, &event, &form).await;
        }
    }
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    attempts: u32,
    event: &Event,
    form: &[(&'static str, String)],
) {
    let mut wait = FIRST_RETRY;
    for attempt in 1..=attempts.max(1) {
        let outcome = client.post(url).form(form).send().await;
        let retry = match &outcome {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                let status = response.status();
                status.is_server_error() || status.as_u16() == 429
            }
            Err(_) => true,
        };
        let failure = match outcome {
            Ok(response) => format!("HTTP {}", response.status()),
            Err(err) => err.to_string(),
        };
        if !retry || attempt == attempts.max(1) {
            tracing::warn!(event = event.event_type.as_str(), sequence = event.sequence, %failure, attempt, "event callback given up");
            return;
        }
        tracing::info!(event = event.event_type.as_str(), %failure, attempt, "event callback failed; retrying");
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use serde_json::json;

    use super::*;
    use crate::routing::{Command, NewTask};
    use crate::workspace::WorkspaceFile;

    #[test]
    fn parameters_carry_taskrouter_names_and_the_resources_as_they_are() {
        let mut engine = WorkspaceFile::default().build("", 0, 0).unwrap();
        let alice = engine.worker_by_name("alice").unwrap().sid;
        let available = engine.activity_by_name("Available").unwrap().sid;
        let workflow = engine.workflows()[1].sid;
        engine
            .apply(
                &Command::SetWorkerActivity { worker: alice, activity: available, reject_pending: false },
                1_000,
            )
            .unwrap();
        let new = NewTask {
            attributes: json!({"skillsNeeded": ["Sales"], "from": "+15550100"}),
            priority: None,
            timeout: None,
            workflow: Some(workflow),
            channel: Some("voice".into()),
        };
        engine.apply(&Command::CreateTask(new), 3_500).unwrap();
        let events = engine.take_events();
        let reserved = events.iter().find(|event| event.event_type == EventType::ReservationCreated).unwrap();

        let form: Vec<String> =
            parameters(&engine, reserved).iter().map(|(key, value)| format!("{key}={value}")).collect();

        expect![[r#"
            EventType=reservation.created
            WorkspaceSid=WS00000000000000000000000000000001
            WorkspaceName=Switchboard
            ResourceType=reservation
            ResourceSid=WR00000000000000000000000000000012
            EventDescription=reservation WR00000000000000000000000000000012 reservation.created
            Timestamp=3
            TimestampMs=3500
            Sequence=17
            TaskSid=WT00000000000000000000000000000011
            TaskAttributes={"skillsNeeded":["Sales"],"from":"+15550100"}
            TaskAge=0
            TaskPriority=0
            TaskAssignmentStatus=reserved
            WorkerSid=WK0000000000000000000000000000000f
            WorkerName=alice
            WorkerAttributes={"contact_uri":"client:alice","full_name":"Alice Example","routing":{"skills":["Sales"],"levels":{"Sales":4}}}
            WorkerActivitySid=WA00000000000000000000000000000003
            WorkerActivityName=Available
            ReservationSid=WR00000000000000000000000000000012
            TaskQueueSid=WQ0000000000000000000000000000000b
            TaskQueueName=Sales
            WorkflowSid=WW0000000000000000000000000000000e
            WorkflowName=Sales and Support Workflow"#]]
        .assert_eq(&form.join("\n"));
    }
}
