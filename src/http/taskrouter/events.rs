//! Events: what happened in the workspace, newest first, from the stored event history (kept
//! for `store.event_max_age` and up to `store.event_max_count`). A list request reads the
//! store's event records one group at a time, newest first, with the filters applied as it
//! goes, and stops once it has the page and one more: a page costs what it shows (plus what the
//! filters turn down), not the history; the page a `PageToken` names starts its read there.

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::api::Api;
use super::error::TwilioError;
use super::render::date;
use crate::live::LiveEngine;
use crate::routing::{Sid, SidKind};
use crate::store::{EventRecord, StoreError};

/// Event SIDs are the event's sequence number in hex (see `render`).
fn sequence_of(api: &Api, sid: Sid) -> Result<u64, TwilioError> {
    u64::from_str_radix(&sid.to_string()[2..], 16).map_err(|_| api.not_found())
}

/// `GET .../Events`, filtered by `Sid`, `EventType`, `ResourceSid`, `TaskSid`, `WorkerSid`,
/// `ReservationSid`, `TaskQueueSid`, `WorkflowSid`, `Minutes` (the last so many), `StartDate`
/// and `EndDate` (ISO 8601).
pub(super) async fn list(api: Api) -> Result<HttpResponse, TwilioError> {
    let list = api.list("events")?;
    let query = &api.query;
    query.refuse(&["TaskChannel"], "events do not record the channel: filter by TaskSid")?;
    let event_type = query.get("EventType").map(str::to_owned);
    let sequence = query.sid("Sid", SidKind::Event)?.map(|sid| sequence_of(&api, sid)).transpose()?;
    let resource = optional_sid_text(query.get("ResourceSid"));
    let sids = [
        (query.sid("TaskSid", SidKind::Task)?, Field::Task),
        (query.sid("WorkerSid", SidKind::Worker)?, Field::Worker),
        (query.sid("ReservationSid", SidKind::Reservation)?, Field::Reservation),
        (query.sid("TaskQueueSid", SidKind::TaskQueue)?, Field::Queue),
        (query.sid("WorkflowSid", SidKind::Workflow)?, Field::Workflow),
    ];
    let now = crate::live::now();
    let minutes = query.integer("Minutes", 1..=43_200)?;
    let start = match minutes {
        Some(minutes) => Some(now - minutes * 60_000),
        None => query.date_time("StartDate")?,
    };
    let end = query.date_time("EndDate")?;
    let wanted = |record: &EventRecord| {
        let EventRecord::V1 { sequence: number, timestamp, event_type: kind, resource: about, .. } = record;
        sequence.is_none_or(|wanted| wanted == *number)
            && list.paging.token.as_ref().is_none_or(|token| token.precedes(&position(*number)))
            && event_type.as_ref().is_none_or(|wanted| wanted == kind)
            && resource.as_ref().is_none_or(|wanted| *wanted == about.to_string())
            && sids.iter().all(|(wanted, which)| wanted.is_none_or(|sid| which.of(record) == Some(sid)))
            && end.is_none_or(|end| *timestamp <= end)
    };
    // Newest first, read from the store only as far as the page needs: a page token's events
    // start below its position (and `Sid`'s at that event); `Page` alone counts the pages before
    // it without keeping them; the scan stops at `start`, one past the page, or past `Sid`.
    let token_position = list.paging.token.as_ref().filter(|token| !token.ascending);
    let before = [
        token_position.and_then(|token| token.after.parse::<u64>().ok()),
        sequence.map(|wanted| wanted.saturating_add(1)),
    ];
    let before = before.into_iter().flatten().min();
    let skip = match list.paging.token {
        Some(_) => 0,
        None => list.paging.page.saturating_mul(list.paging.page_size),
    };
    // Event times never go back, so once past `start` (or `Sid`) the rest is older still.
    let past = |EventRecord::V1 { sequence: number, timestamp, .. }: &EventRecord| {
        start.is_some_and(|start| *timestamp < start) || sequence.is_some_and(|wanted| *number < wanted)
    };
    let page = read_page(&api.engine, before, past, wanted, skip, list.paging.page_size + 1)
        .map_err(|err| TwilioError::from(crate::live::ExecuteError::Storage(err)))?;
    Ok(HttpResponse::Ok().json(api.render(|renderer| {
        let workspace = format!("{}/v1/Workspaces/{}", renderer.base, renderer.engine.workspace_sid());
        let position = |EventRecord::V1 { sequence, .. }: &EventRecord| position(*sequence);
        renderer.page_from(&list, &page, position, |record| render(renderer.account_sid, &workspace, record))
    })))
}

/// The stored events below `before`, newest first, that `wanted` accepts, read only as far as
/// needed: the first `skip` are counted, not kept, then `take` are kept; the scan ends there,
/// or at the first event `past` the list's oldest.
fn read_page(
    engine: &LiveEngine,
    before: Option<u64>,
    past: impl Fn(&EventRecord) -> bool,
    wanted: impl Fn(&EventRecord) -> bool,
    skip: usize,
    take: usize,
) -> Result<Vec<EventRecord>, StoreError> {
    let (mut page, mut skipped) = (Vec::new(), 0);
    for record in engine.stored_events(before)? {
        let record = record?;
        if past(&record) || page.len() == take {
            break;
        }
        if !wanted(&record) {
            continue;
        }
        if skipped < skip {
            skipped += 1;
        } else {
            page.push(record);
        }
    }
    Ok(page)
}

#[derive(Clone, Copy)]
enum Field {
    Task,
    Worker,
    Reservation,
    Queue,
    Workflow,
}

impl Field {
    /// The SID `record` gives this field.
    fn of(self, record: &EventRecord) -> Option<Sid> {
        let EventRecord::V1 { task, worker, reservation, queue, workflow, .. } = record;
        match self {
            Field::Task => *task,
            Field::Worker => *worker,
            Field::Reservation => *reservation,
            Field::Queue => *queue,
            Field::Workflow => *workflow,
        }
    }
}

fn optional_sid_text(text: Option<&str>) -> Option<String> {
    text.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty())
}

fn render(account_sid: &str, workspace: &str, record: &EventRecord) -> Value {
    let EventRecord::V1 {
        sequence,
        timestamp,
        event_type,
        resource,
        task,
        worker,
        reservation,
        queue,
        workflow,
        activity,
        reason,
        channel,
        outcome,
    } = record;
    let sid_text = |sid: &Option<Sid>| sid.map(|sid| sid.to_string());
    let (resource_type, collection) = match resource.kind() {
        SidKind::Task => ("task", "Tasks"),
        SidKind::Worker => ("worker", "Workers"),
        SidKind::Reservation => ("reservation", "Reservations"),
        SidKind::TaskQueue => ("task_queue", "TaskQueues"),
        SidKind::Workflow => ("workflow", "Workflows"),
        SidKind::Activity => ("activity", "Activities"),
        SidKind::TaskChannel => ("task_channel", "TaskChannels"),
        _ => ("workspace", ""),
    };
    let resource_url = match (resource_type, task) {
        ("reservation", Some(task)) => format!("{workspace}/Tasks/{task}/Reservations/{resource}"),
        (_, _) if collection.is_empty() => workspace.to_owned(),
        _ => format!("{workspace}/{collection}/{resource}"),
    };
    let sid = format!("EV{sequence:032x}");
    json!({
        "account_sid": account_sid,
        "workspace_sid": workspace.rsplit('/').next(),
        "sid": sid,
        "event_type": event_type,
        "event_date": date(*timestamp),
        "event_date_ms": timestamp,
        "resource_sid": resource.to_string(),
        "resource_type": resource_type,
        "resource_url": resource_url,
        "actor_sid": null,
        "actor_type": null,
        "actor_url": null,
        "description": format!("{event_type} for {resource}"),
        "source": "Switchboard",
        "source_ip_address": null,
        "event_data": {
            "task_sid": sid_text(task),
            "worker_sid": sid_text(worker),
            "reservation_sid": sid_text(reservation),
            "task_queue_sid": sid_text(queue),
            "workflow_sid": sid_text(workflow),
            "worker_activity_sid": sid_text(activity),
            "task_channel_sid": sid_text(channel),
            "reason": reason,
            "disposition": outcome,
        },
        "url": format!("{workspace}/Events/{sid}"),
        "links": { "workspace": workspace },
    })
}

/// An event's place in the list (by sequence), as text that sorts the same way.
fn position(sequence: u64) -> String {
    format!("{sequence:020}")
}

/// `GET .../Events/{EV}`.
pub(super) async fn fetch(api: Api) -> Result<HttpResponse, TwilioError> {
    let sequence = sequence_of(&api, api.path_sid("event", SidKind::Event)?)?;
    let storage = |err| TwilioError::from(crate::live::ExecuteError::Storage(err));
    let newest = api.engine.stored_events(Some(sequence.saturating_add(1))).map_err(storage)?.next();
    let record = newest.transpose().map_err(storage)?;
    let record = record.filter(|EventRecord::V1 { sequence: stored, .. }| *stored == sequence);
    let record = record.as_ref().ok_or_else(|| api.not_found())?;
    Ok(HttpResponse::Ok().json(api.render(|renderer| {
        let workspace = format!("{}/v1/Workspaces/{}", renderer.base, renderer.engine.workspace_sid());
        render(renderer.account_sid, &workspace, record)
    })))
}
