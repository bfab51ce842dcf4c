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
        ("tasks_deleted", json!(statistics.tasks_deleted)),
        ("tasks_moved", json!(statistics.tasks_moved)),
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
