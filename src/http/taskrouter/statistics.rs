//! Cumulative statistics (`.../CumulativeStatistics` of the workspace, a task queue or a
//! workflow), and `.../Statistics`, which joins them to the real-time statistics as
//! `{"realtime": ..., "cumulative": ...}`. They are answered from the per-minute counters kept
//! as events happen (`crate::statistics`, `routing::StatisticsCounters`): a request sums the
//! minutes of its window and reads no event history, in microseconds.
//!
//! The window is `Minutes` back from now, or `StartDate` to `EndDate` (ISO 8601), by default
//! the last 15 minutes, as on Twilio. It is counted in whole minutes: an event counts when its
//! minute is one of the minutes the window touches, from the minute of `StartDate` to the
//! minute of `EndDate`, both whole. So the last 15 minutes count from the start of the minute
//! 15 minutes ago (up to 59 s more than 15 minutes); `start_time` and `end_time` give the
//! window as asked. Events older than the stored history (`store.event_max_age`,
//! `store.event_max_count`) are not counted, to the minute.
//!
//! Wait durations count from the task's creation. A task created before the oldest event kept
//! has its waits known if the engine held it at the last start (its creation time comes from
//! the engine then), else none.
//!
//! `TaskChannel` (a unique name or a `TC` SID) keeps the tasks of that channel, known from each
//! task's `task.created` event (or, for a task created before the stored history, from the
//! engine at start).
//!
//! The workers' statistics (`Workers/Statistics`, `Workers/CumulativeStatistics`,
//! `Workers/RealTimeStatistics`, `Workers/{WK}/Statistics`) come from each worker's activity
//! stays and reservation outcomes (`routing::WorkerHistory`): the reservations counted when
//! their outcome falls in the window (on `TaskChannel` only, when given), each stay cut to the
//! window, in whole seconds; every activity is listed, with zeros when nobody stayed in it.

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::api::Api;
use super::error::TwilioError;
use super::render::{Renderer, date};

use crate::routing::{CumulativeStatistics, Millis, Scope, Sid, SidKind, SplitCounts, WaitDurations, Window};

/// Twilio's window when none is asked for: the last 15 minutes.
const DEFAULT_MINUTES: i64 = 15;
/// The longest `Minutes`: 30 days, as far back as TaskRouter keeps statistics.
const MAX_MINUTES: i64 = 43_200;

/// `GET .../CumulativeStatistics`: the workspace's.
pub(super) async fn workspace_cumulative(api: Api) -> Result<HttpResponse, TwilioError> {
    Ok(HttpResponse::Ok().json(cumulative(&api, Scope::Workspace).await?))
}

/// `GET .../TaskQueues/{WQ}/CumulativeStatistics`.
pub(super) async fn queue_cumulative(api: Api) -> Result<HttpResponse, TwilioError> {
    let queue = api.path_sid("queue", SidKind::TaskQueue)?;
    Ok(HttpResponse::Ok().json(cumulative(&api, Scope::Queue(queue)).await?))
}

/// `GET .../Workflows/{WW}/CumulativeStatistics`.
pub(super) async fn workflow_cumulative(api: Api) -> Result<HttpResponse, TwilioError> {
    let workflow = api.path_sid("workflow", SidKind::Workflow)?;
    Ok(HttpResponse::Ok().json(cumulative(&api, Scope::Workflow(workflow)).await?))
}

/// `realtime` as asked: alone at `.../RealTimeStatistics`, or at `.../Statistics` as the
/// `realtime` part, next to the `cumulative` part computed with the query's parameters.
pub(super) async fn statistics_response(
    api: &Api,
    realtime: Value,
    scope: Scope,
) -> Result<HttpResponse, TwilioError> {
    // Real-time statistics are not kept per channel: refused rather than answered unfiltered.
    let channel_note =
        "real-time statistics are not kept per channel (the cumulative part of .../Statistics takes it)";
    if !api.path_ends_with("/Statistics") {
        api.query.refuse(&["TaskChannel"], channel_note)?;
        return Ok(HttpResponse::Ok().json(realtime));
    }
    let owner = match scope {
        Scope::Workspace => "workspace_sid",
        Scope::Queue(_) => "task_queue_sid",
        Scope::Workflow(_) => "workflow_sid",
    };
    Ok(HttpResponse::Ok().json(json!({
        "account_sid": realtime["account_sid"],
        "workspace_sid": realtime["workspace_sid"],
        owner: realtime[owner],
        "cumulative": cumulative(api, scope).await?,
        "realtime": realtime,
        "url": realtime["url"].as_str().map(|url| url.replace("/RealTimeStatistics", "/Statistics")),
    })))
}

/// The cumulative statistics of `scope` as TaskRouter renders them, with the query's window,
/// channel and split, from the counters (never under the engine lock).
async fn cumulative(api: &Api, scope: Scope) -> Result<Value, TwilioError> {
    let window = window(api, crate::live::now())?;
    let thresholds = split_thresholds(api)?;
    let (exists, channel) = api.render(|renderer| {
        let exists = match scope {
            Scope::Workspace => true,
            Scope::Queue(queue) => renderer.engine.queue(queue).is_some(),
            Scope::Workflow(workflow) => renderer.engine.workflows().iter().any(|w| w.sid == workflow),
        };
        (exists, task_channel(api, renderer))
    });
    if !exists {
        return Err(api.not_found());
    }
    let channel = channel.transpose()?;
    let split = thresholds.as_deref().unwrap_or_default();
    let statistics = api.engine.statistics().cumulative(window, scope, channel, split);
    Ok(api.render(|renderer| render(renderer, scope, &statistics, thresholds.is_some())))
}

/// `Minutes` back from now, or `StartDate` to `EndDate` (either may be left out: the window
/// then ends now, or starts 15 minutes before its end); by default the last 15 minutes.
fn window(api: &Api, now: Millis) -> Result<Window, TwilioError> {
    let query = &api.query;
    let minutes = query.integer("Minutes", 1..=MAX_MINUTES)?;
    let (start, end) = (query.date_time("StartDate")?, query.date_time("EndDate")?);
    if minutes.is_some() && (start.is_some() || end.is_some()) {
        return Err(TwilioError::invalid("Minutes cannot be used with StartDate or EndDate"));
    }
    let end = end.unwrap_or(now);
    let start = start.unwrap_or(end - minutes.unwrap_or(DEFAULT_MINUTES) * 60_000);
    if start > end {
        return Err(TwilioError::invalid("StartDate must not be after EndDate"));
    }
    Ok(Window { start, end })
}

/// `SplitByWaitTime`: seconds separated by commas (`5,30`); `None` when not asked for.
fn split_thresholds(api: &Api) -> Result<Option<Vec<u32>>, TwilioError> {
    let texts = api.query.all("SplitByWaitTime");
    if texts.is_empty() {
        return Ok(None);
    }
    let thresholds = texts.iter().map(|text| {
        text.parse::<u32>().ok().filter(|&seconds| seconds > 0).ok_or_else(|| {
            TwilioError::invalid(format!(
                "SplitByWaitTime must be whole numbers of seconds separated by commas, like 5,30, not {text:?}"
            ))
        })
    });
    thresholds.collect::<Result<Vec<u32>, TwilioError>>().map(Some)
}

/// The SID of the `TaskChannel` asked for (unique name or SID), if any.
fn task_channel(api: &Api, renderer: &Renderer<'_>) -> Option<Result<Sid, TwilioError>> {
    let wanted = api.query.get("TaskChannel").map(str::trim).filter(|text| !text.is_empty())?;
    let channels = renderer.engine.channels();
    let found =
        channels.iter().find(|channel| channel.unique_name == wanted || channel.sid.to_string() == wanted);
    Some(found.map(|channel| channel.sid).ok_or_else(|| {
        let known: Vec<&str> = channels.iter().map(|channel| channel.unique_name.as_str()).collect();
        TwilioError::invalid(format!(
            "TaskChannel {wanted:?} is not a task channel (known: {})",
            known.join(", ")
        ))
    }))
}

/// TaskRouter's `{avg, min, max, total}`, in seconds.
fn durations(waits: &WaitDurations) -> Value {
    json!({"avg": waits.avg(), "min": waits.min, "max": waits.max, "total": waits.total})
}

fn split_counts(counts: &SplitCounts) -> Value {
    json!({"tasks_canceled": counts.tasks_canceled, "reservations_accepted": counts.reservations_accepted})
}

/// A `CumulativeStatistics` resource with the fields TaskRouter gives `scope`: `tasks_created`
/// for the workspace and `tasks_entered` for a queue or workflow, `tasks_timed_out_in_workflow`
/// except for a queue, `wait_duration_in_queue_until_accepted` for a queue only.
/// `split_by_wait_time` is null unless `split_asked`.
fn render(
    renderer: &Renderer<'_>,
    scope: Scope,
    statistics: &CumulativeStatistics,
    split_asked: bool,
) -> Value {
    let workspace_sid = renderer.engine.workspace_sid().to_string();
    let mut url = format!("{}/v1/Workspaces/{workspace_sid}", renderer.base);
    let mut fields =
        vec![("account_sid", json!(renderer.account_sid)), ("workspace_sid", json!(workspace_sid))];
    match scope {
        Scope::Workspace => {}
        Scope::Queue(queue) => {
            fields.push(("task_queue_sid", json!(queue.to_string())));
            url.push_str(&format!("/TaskQueues/{queue}"));
        }
        Scope::Workflow(workflow) => {
            fields.push(("workflow_sid", json!(workflow.to_string())));
            url.push_str(&format!("/Workflows/{workflow}"));
        }
    }
    let is_queue = matches!(scope, Scope::Queue(_));
    let entered = if scope == Scope::Workspace { "tasks_created" } else { "tasks_entered" };
    fields.extend([
        ("start_time", date(statistics.window.start)),
        ("end_time", date(statistics.window.end)),
        ("avg_task_acceptance_time", json!(statistics.wait_until_accepted.avg())),
        (entered, json!(statistics.tasks_entered)),
        ("tasks_canceled", json!(statistics.tasks_canceled)),
        ("tasks_completed", json!(statistics.tasks_completed)),
        ("tasks_completed_by_disposition", json!(statistics.completed_by_outcome)),
        ("tasks_deleted", json!(statistics.tasks_deleted)),
        ("tasks_moved", json!(statistics.tasks_moved)),
        ("tasks_transferred", json!(statistics.tasks_transferred)),
    ]);
    if !is_queue {
        fields.push(("tasks_timed_out_in_workflow", json!(statistics.tasks_timed_out_in_workflow)));
    }
    fields.extend([
        ("reservations_created", json!(statistics.reservations_created)),
        ("reservations_accepted", json!(statistics.reservations_accepted)),
        ("reservations_rejected", json!(statistics.reservations_rejected)),
        ("reservations_timed_out", json!(statistics.reservations_timed_out)),
        ("reservations_canceled", json!(statistics.reservations_canceled)),
        ("reservations_rescinded", json!(statistics.reservations_rescinded)),
        ("wait_duration_until_accepted", durations(&statistics.wait_until_accepted)),
        ("wait_duration_until_canceled", durations(&statistics.wait_until_canceled)),
    ]);
    if is_queue {
        fields.push((
            "wait_duration_in_queue_until_accepted",
            durations(&statistics.wait_in_queue_until_accepted),
        ));
    }
    let split = statistics.split_by_wait_time.iter().map(|split| {
        let sides = json!({"above": split_counts(&split.above), "below": split_counts(&split.below)});
        (split.threshold.to_string(), sides)
    });
    fields
        .push(("split_by_wait_time", if split_asked { Value::Object(split.collect()) } else { Value::Null }));
    fields.push(("url", json!(format!("{url}/CumulativeStatistics"))));
    Value::Object(fields.into_iter().map(|(name, value)| (name.to_owned(), value)).collect())
}

/// `GET .../Workers/CumulativeStatistics`: every worker's, over the query's window, their
/// reservations on `TaskChannel` only when one is given.
pub(super) async fn workers_cumulative(api: Api) -> Result<HttpResponse, TwilioError> {
    let cumulative = workers_cumulative_part(&api, |_| true)?;
    Ok(HttpResponse::Ok().json(owned(&api, cumulative, "/Workers/CumulativeStatistics")))
}

/// `GET .../Workers/RealTimeStatistics`: how many workers are in each activity now.
pub(super) async fn workers_realtime(api: Api) -> Result<HttpResponse, TwilioError> {
    api.query.refuse(&["TaskChannel"], "real-time statistics are not kept per channel")?;
    let realtime = api.render(|renderer| workers_realtime_part(renderer, |_| true));
    Ok(HttpResponse::Ok().json(owned(&api, realtime, "/Workers/RealTimeStatistics")))
}

/// `statistics` with the account, the workspace and its own URL (`path` under the workspace).
fn owned(api: &Api, mut statistics: Value, path: &str) -> Value {
    let (account_sid, workspace_sid) = api.render(owners);
    statistics["account_sid"] = account_sid;
    statistics["workspace_sid"] = workspace_sid;
    statistics["url"] = json!(api.render(|renderer| format!("{}{path}", workspace_url(renderer))));
    statistics
}

/// `GET .../Workers/Statistics`: both, for the workers of `TaskQueueSid` or `TaskQueueName`
/// (those its target expression takes) and of `FriendlyName`, when given.
pub(super) async fn workers_statistics(api: Api) -> Result<HttpResponse, TwilioError> {
    let members = api.render(|renderer| {
        let engine = renderer.engine;
        let queue = match (api.query.sid("TaskQueueSid", SidKind::TaskQueue)?, api.query.get("TaskQueueName"))
        {
            (Some(sid), _) => Some(engine.queue(sid).ok_or_else(|| {
                TwilioError::invalid(format!("TaskQueueSid: task queue {sid} does not exist"))
            })?),
            (None, Some(name)) => Some(engine.queue_by_name(name).ok_or_else(|| {
                TwilioError::invalid(format!("TaskQueueName: no task queue is named {name:?}"))
            })?),
            (None, None) => None,
        };
        let named = api.query.get("FriendlyName").filter(|name| !name.is_empty());
        let in_queue: Option<std::collections::HashSet<Sid>> =
            queue.map(|queue| engine.queue_members(queue).into_iter().collect());
        let members: std::collections::HashSet<Sid> = engine
            .workers()
            .filter(|worker| named.is_none_or(|name| worker.friendly_name.eq_ignore_ascii_case(name)))
            .filter(|worker| in_queue.as_ref().is_none_or(|members| members.contains(&worker.sid)))
            .map(|worker| worker.sid)
            .collect();
        Ok::<_, TwilioError>(members)
    })?;
    let included = |worker: Sid| members.contains(&worker);
    let cumulative = workers_cumulative_part(&api, included)?;
    let realtime = api.render(|renderer| workers_realtime_part(renderer, included));
    let url = api.render(|renderer| format!("{}/Workers/Statistics", workspace_url(renderer)));
    let (account_sid, workspace_sid) = api.render(owners);
    Ok(HttpResponse::Ok().json(json!({
        "account_sid": account_sid,
        "workspace_sid": workspace_sid,
        "cumulative": cumulative,
        "realtime": realtime,
        "url": url,
    })))
}

/// `GET .../Workers/{WK}/Statistics`: one worker's cumulative statistics.
pub(super) async fn worker_statistics(api: Api) -> Result<HttpResponse, TwilioError> {
    let worker = api.path_sid("worker", SidKind::Worker)?;
    if api.render(|renderer| renderer.engine.worker(worker).is_none()) {
        return Err(api.not_found());
    }
    let cumulative = workers_cumulative_part(&api, |sid| sid == worker)?;
    let url = api.render(|renderer| format!("{}/Workers/{worker}/Statistics", workspace_url(renderer)));
    let (account_sid, workspace_sid) = api.render(owners);
    Ok(HttpResponse::Ok().json(json!({
        "account_sid": account_sid,
        "workspace_sid": workspace_sid,
        "worker_sid": worker.to_string(),
        "cumulative": cumulative,
        "url": url,
    })))
}

fn workspace_url(renderer: &Renderer<'_>) -> String {
    format!("{}/v1/Workspaces/{}", renderer.base, renderer.engine.workspace_sid())
}

fn owners(renderer: &Renderer<'_>) -> (Value, Value) {
    (json!(renderer.account_sid), json!(renderer.engine.workspace_sid().to_string()))
}

/// The workers' cumulative part over the query's window: their reservations by outcome and
/// their stays in each activity (every activity listed, in seconds).
fn workers_cumulative_part(api: &Api, include: impl Fn(Sid) -> bool) -> Result<Value, TwilioError> {
    let window = window(api, crate::live::now())?;
    let channel = api.render(|renderer| task_channel(api, renderer)).transpose()?;
    let statistics = api.engine.statistics().workers(window, channel, include);
    let counts = &statistics.reservations;
    let activities = api.render(|renderer| {
        let activities = renderer.engine.activities().iter().map(|activity| {
            let stays = statistics.durations.get(&activity.sid).copied().unwrap_or_default();
            json!({
                "sid": activity.sid.to_string(),
                "friendly_name": activity.friendly_name,
                "min": stays.min / 1000,
                "max": stays.max / 1000,
                "avg": stays.avg() / 1000,
                "total": stays.total / 1000,
            })
        });
        activities.collect::<Vec<Value>>()
    });
    Ok(json!({
        "start_time": date(window.start),
        "end_time": date(window.end),
        "reservations_created": counts.created,
        "reservations_accepted": counts.accepted,
        "reservations_rejected": counts.rejected,
        "reservations_timed_out": counts.timed_out,
        "reservations_canceled": counts.canceled,
        "reservations_rescinded": counts.rescinded,
        "activity_durations": activities,
    }))
}

/// How many of the workers `include` keeps are in each activity now.
fn workers_realtime_part(renderer: &Renderer<'_>, include: impl Fn(Sid) -> bool) -> Value {
    let engine = renderer.engine;
    let workers: Vec<_> = engine.workers().filter(|worker| include(worker.sid)).collect();
    let activities = engine.activities().iter().map(|activity| {
        let count =
            workers.iter().filter(|worker| engine.worker_activity(worker).sid == activity.sid).count();
        json!({"sid": activity.sid.to_string(), "friendly_name": activity.friendly_name, "workers": count})
    });
    json!({"total_workers": workers.len(), "activity_statistics": activities.collect::<Vec<Value>>()})
}
