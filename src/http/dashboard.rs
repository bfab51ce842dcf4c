//! The admin page's live dashboard, behind the admin's credentials or session:
//!
//! - `GET /admin/api/dashboard`: per queue, the tasks waiting, the longest wait and the agents
//!   available; the agents by activity; the waiting tasks (for "why not this agent");
//! - `GET /admin/api/dashboard/events`: the same document pushed (server-sent events,
//!   `dashboard`) after engine events, at most twice a second, and every few seconds anyway so
//!   that waiting times keep counting. Opened with the admin's session, it ends as soon as that
//!   session does.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::admin::Authenticated;
use super::session::SessionWatch;
use crate::agents::Role;
use crate::live::{self, LiveEngine};
use crate::routing::{Engine, Millis};
use crate::sms::Sms;

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/admin/api/dashboard").route(web::get().to(dashboard)))
        .service(web::resource("/admin/api/dashboard/events").route(web::get().to(events)))
        .service(web::resource("/admin/api/dashboard/history").route(web::get().to(history)));
}

/// The dashboard at `now`.
pub(super) fn view(engine: &Engine, now: Millis) -> Value {
    let queues: Vec<Value> = engine
        .queues()
        .iter()
        .filter_map(|queue| {
            let statistics = engine.queue_statistics(queue.sid, now).ok()?;
            let by_status = &statistics.tasks.tasks_by_status;
            let waiting = ["pending", "reserved"]
                .iter()
                .map(|status| by_status.get(status).copied().unwrap_or(0))
                .sum::<usize>();
            Some(json!({
                "sid": queue.sid.to_string(),
                "friendly_name": queue.friendly_name,
                "tasks_waiting": waiting,
                "longest_wait": statistics.tasks.longest_task_waiting_age,
                "agents_available": statistics.total_available_workers,
                "agents_eligible": statistics.total_eligible_workers,
            }))
        })
        .collect();
    let workspace = engine.workspace_statistics(now);
    let activities: Vec<Value> = workspace
        .activity_statistics
        .iter()
        .map(|count| json!({"sid": count.sid.to_string(), "friendly_name": count.friendly_name, "workers": count.workers}))
        .collect();
    let workers: Vec<Value> = engine
        .workers()
        .map(|worker| {
            let activity = engine.worker_activity(worker);
            json!({
                "sid": worker.sid.to_string(),
                "friendly_name": worker.friendly_name,
                "activity_name": activity.friendly_name,
                "available": activity.available,
                // Seconds in the activity, as the board shows them (it counts on between pushes).
                "activity_seconds": (now - worker.activity_changed_at()).max(0) / 1000,
            })
        })
        .collect();
    let waiting: Vec<Value> = engine
        .tasks()
        .filter(|task| task.status.is_waiting())
        .map(|task| {
            json!({
                "sid": task.sid.to_string(),
                "assignment_status": task.status.as_str(),
                "queue": engine.task_queue(task).map(|queue| queue.friendly_name.clone()),
                "age": (now - task.created_at).max(0) / 1000,
                // A summary, not the attributes (up to 4 KiB each, for every waiting task).
                "caller": task.attributes.get("from"),
                "skills_needed": task.attributes.get("skillsNeeded"),
            })
        })
        .collect();
    json!({"queues": queues, "activities": activities, "workers": workers, "waiting_tasks": waiting})
}

async fn dashboard(_: Authenticated, engine: web::Data<LiveEngine>) -> HttpResponse {
    let now = live::now();
    HttpResponse::Ok().json(engine.read(|engine| view(engine, now)))
}

/// The longest history the charts ask for, in hours (the statistics keep what the store
/// keeps: `store.event_max_age`).
const MAX_HOURS: i64 = 24;

/// `GET /admin/api/dashboard/history?hours=6`: the charts of the last hours, from the stored
/// events (the statistics), a point every whole number of minutes (60 to 72 points), the last now:
/// per queue the tasks waiting and the longest wait at each point, and over the step before it
/// the service level (`metrics.service_level`'s threshold) and the tasks abandoned; the
/// workers in each activity at each point.
async fn history(
    _: Authenticated,
    request: HttpRequest,
    engine: web::Data<LiveEngine>,
    metrics: web::Data<crate::metrics::Metrics>,
) -> HttpResponse {
    let query = web::Query::<std::collections::HashMap<String, String>>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let hours = match query.get("hours").map(|hours| hours.parse::<i64>()) {
        None => 6,
        Some(Ok(hours)) if (1..=MAX_HOURS).contains(&hours) => hours,
        Some(_) => {
            let message = format!("hours must be a whole number from 1 to {MAX_HOURS}");
            return super::ApiError::new(actix_web::http::StatusCode::BAD_REQUEST, message).error_response();
        }
    };
    // Whole minutes a point, so that the points' windows tile the counters' minutes: 60 of a
    // minute for an hour, 72 of 5 minutes for 6 hours, 72 of 20 for 24.
    let step_minutes = (hours * 60 / 72).max(1);
    let points =
        crate::statistics::HistoryPoint::before(live::now(), hours * 60 / step_minutes, step_minutes);
    let (queues, activities) = engine.read(|engine| {
        let queues: Vec<(crate::routing::Sid, String)> =
            engine.queues().iter().map(|queue| (queue.sid, queue.friendly_name.clone())).collect();
        let activities: Vec<(crate::routing::Sid, String, bool)> = engine
            .activities()
            .iter()
            .map(|activity| (activity.sid, activity.friendly_name.clone(), activity.available))
            .collect();
        (queues, activities)
    });
    let thresholds: Vec<(crate::routing::Sid, u32)> =
        queues.iter().map(|(sid, name)| (*sid, metrics.service_level_of(name))).collect();
    let found = engine.statistics().history(&points, &thresholds);
    let queues: Vec<Value> = queues
        .iter()
        .zip(&found.queues)
        .zip(&thresholds)
        .map(|(((sid, name), (_, series)), (_, threshold))| {
            json!({
                "sid": sid.to_string(),
                "friendly_name": name,
                "service_level_seconds": threshold,
                "waiting": series.waiting,
                "longest_wait": series.longest_wait,
                "service_level": series.service_level,
                "abandoned": series.abandoned,
            })
        })
        .collect();
    let activities: Vec<Value> = activities
        .iter()
        .map(|(sid, name, available)| {
            let workers = found.activities.get(sid).cloned().unwrap_or_else(|| vec![0; points.len()]);
            json!({"sid": sid.to_string(), "friendly_name": name, "available": available, "workers": workers})
        })
        .collect();
    let times: Vec<i64> = points.iter().map(|point| point.at / 1000).collect();
    let step = step_minutes * 60;
    HttpResponse::Ok().json(json!({"step": step, "times": times, "queues": queues, "activities": activities}))
}

/// The shortest time between two pushes: a busy contact center emits events all the time.
const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// A push at least this often, so that ages move on a quiet day too.
const MAX_INTERVAL: Duration = Duration::from_secs(5);

async fn events(
    request: HttpRequest,
    _: Authenticated,
    engine: web::Data<LiveEngine>,
    sms: web::Data<Sms>,
) -> HttpResponse {
    let session = match SessionWatch::of(&request, Role::Admin) {
        Ok(session) => session,
        Err(refused) => return refused.error_response(),
    };
    let receiver = engine.subscribe();
    let engine = engine.into_inner();
    let sms = sms.into_inner();
    let first = engine.read(|engine| view(engine, live::now()));
    let first = stream::once(std::future::ready(Ok::<_, Infallible>(Bytes::from(sse(&first)))));
    let changes = stream::unfold(
        (receiver, engine, sms, session),
        |(mut receiver, engine, sms, mut session)| async move {
            tokio::select! {
                biased;
                // Every live stream of the server ends when it stops, and this one when its
                // session does.
                () = sms.stopping() => return None,
                () = session.ended() => return None,
                // At most one push per MIN_INTERVAL, and one per MAX_INTERVAL anyway.
                open = async {
                    tokio::time::sleep(MIN_INTERVAL).await;
                    tokio::select! {
                        () = tokio::time::sleep(MAX_INTERVAL) => true,
                        next = receiver.recv() => !matches!(next, Err(RecvError::Closed)),
                    }
                } => if !open { return None },
            }
            if !session.holds() {
                return None;
            }
            // Whatever else arrived meanwhile is in this push too.
            while !matches!(receiver.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
            let state = engine.read(|engine| view(engine, live::now()));
            Some((Ok(Bytes::from(sse(&state))), (receiver, engine, sms, session)))
        },
    );
    super::metrics::event_stream(&request, first.chain(changes))
}

fn sse(state: &Value) -> String {
    format!("event: dashboard\ndata: {state}\n\n")
}
