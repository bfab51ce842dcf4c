//! Event callbacks: each event POSTed as a form to the workspace's `EventCallbackUrl` with
//! TaskRouter's parameter names (`EventType`, `WorkspaceSid`, `ResourceSid`, `TaskSid`,
//! `TaskAttributes`, `WorkerName`...), like TaskRouter's. The URL and the filter are the
//! workspace's once set through the REST API, else the settings `events.callback_url` and
//! `events.callback_filter`; a change applies from the next event on.
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

/// Where events are sent: the workspace's URL and filter where set (through the REST API),
/// else the settings'. Kept by the delivery loop, read again when a `workspace.updated` event
/// passes (the one way it changes), so that a workspace without callbacks costs no engine lock
/// per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub url: String,
    /// The event types sent; empty: all.
    pub filter: Vec<String>,
}

impl Destination {
    /// Where `engine`'s workspace sends events now; `None` for nowhere.
    pub fn of(engine: &Engine, settings: &EventSettings) -> Option<Destination> {
        let workspace = engine.settings();
        let url = workspace.event_callback_url.as_deref().unwrap_or(&settings.callback_url).trim();
        let filter = workspace.events_filter.as_deref().unwrap_or(&settings.callback_filter);
        let filter = filter.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_owned);
        (!url.is_empty()).then(|| Destination { url: url.to_owned(), filter: filter.collect() })
    }

    pub fn wants(&self, event: &Event) -> bool {
        self.filter.is_empty() || self.filter.iter().any(|name| name == event.event_type.as_str())
    }
}

/// Sends `events` (a subscription to the live engine's events, taken before the deadlines
/// missed while stopped were fired) to their [`Destination`] until `shutdown` completes.
pub async fn deliver(
    live: Arc<LiveEngine>,
    settings: EventSettings,
    metrics: Arc<crate::metrics::Metrics>,
    mut events: broadcast::Receiver<Event>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap_or_default();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut destination = live.read(|engine| Destination::of(engine, &settings));
    loop {
        let event = tokio::select! {
            () = &mut shutdown => return,
            received = events.recv() => match received {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "event callbacks fell behind; events were skipped (they stay stored)");
                    destination = live.read(|engine| Destination::of(engine, &settings));
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
        };
        if event.event_type == EventType::WorkspaceUpdated {
            destination = live.read(|engine| Destination::of(engine, &settings));
        }
        let Some(to) = destination.as_ref().filter(|to| to.wants(&event)) else { continue };
        let form = live.read(|engine| parameters(engine, &event));
        send(&client, &to.url, settings.callback_attempts, &metrics, &event, &form).await;
    }
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    attempts: u32,
    metrics: &crate::metrics::Metrics,
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
        let last = !retry || attempt == attempts.max(1);
        metrics.callback_failed(last);
        if last {
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

    /// Where a `kind` event goes with the workspace's URL and filter (`None`: never set through
    /// the API) and the settings' (`setting`, `setting_filter`).
    fn check_destination(
        workspace: (Option<&str>, Option<&str>),
        setting: (&str, &str),
        kind: EventType,
        expected: Option<&str>,
    ) {
        let mut engine = WorkspaceFile::default().build("", 0, 0).unwrap();
        if workspace != (None, None) {
            let changes = crate::routing::WorkspaceChanges {
                event_callback_url: workspace.0.map(str::to_owned),
                events_filter: workspace.1.map(str::to_owned),
                ..Default::default()
            };
            engine.update_workspace(changes, 0).unwrap();
        }
        let settings = EventSettings {
            callback_url: setting.0.to_owned(),
            callback_filter: setting.1.to_owned(),
            ..EventSettings::default()
        };
        // Any event of the engine's, as a `kind` one.
        engine.create_activity("Lunch", false, 0).unwrap();
        let event = engine.take_events().pop().map(|event| Event { event_type: kind, ..event }).unwrap();
        let to = Destination::of(&engine, &settings).filter(|to| to.wants(&event));
        assert_eq!(to.as_ref().map(|to| to.url.as_str()), expected, "{workspace:?} {setting:?} {kind:?}");
    }

    #[test]
    fn events_go_to_the_workspaces_callback_url_and_filter_once_set_else_the_settings() {
        use EventType::{TaskCreated, WorkerCreated};
        let (crm, old) = ("https://crm.example.com/events", "https://old.example.com/events");
        check_destination((None, None), ("", ""), TaskCreated, None);
        check_destination((None, None), (old, ""), TaskCreated, Some(old));
        check_destination((None, None), (old, "task.created"), WorkerCreated, None);
        check_destination((Some(crm), None), (old, ""), TaskCreated, Some(crm));
        check_destination((Some(crm), None), (old, "worker.created"), TaskCreated, None);
        check_destination((Some(crm), Some("")), (old, "worker.created"), TaskCreated, Some(crm));
        check_destination((Some(crm), Some("task.created, task.canceled")), ("", ""), TaskCreated, Some(crm));
        check_destination((Some(""), None), (old, ""), TaskCreated, None);
        check_destination((None, Some("worker.created")), (old, "task.created"), WorkerCreated, Some(old));
    }

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
            ResourceSid=WR00000000000000000000000000000013
            EventDescription=reservation WR00000000000000000000000000000013 reservation.created
            Timestamp=3
            TimestampMs=3500
            Sequence=17
            TaskSid=WT00000000000000000000000000000012
            TaskAttributes={"skillsNeeded":["Sales"],"from":"+15550100"}
            TaskAge=0
            TaskPriority=0
            TaskAssignmentStatus=reserved
            WorkerSid=WK00000000000000000000000000000010
            WorkerName=alice
            WorkerAttributes={"contact_uri":"client:alice","full_name":"Alice Example","routing":{"skills":["Sales"],"levels":{"Sales":4}}}
            WorkerActivitySid=WA00000000000000000000000000000003
            WorkerActivityName=Available
            ReservationSid=WR00000000000000000000000000000013
            TaskQueueSid=WQ0000000000000000000000000000000c
            TaskQueueName=Sales
            WorkflowSid=WW0000000000000000000000000000000f
            WorkflowName=Sales and Support Workflow"#]]
        .assert_eq(&form.join("\n"));
    }
}
