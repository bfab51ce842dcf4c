//! The supervisor view's API. A supervisor is a worker whose attributes' `roles` include
//! `"supervisor"` (Flex's convention), signed in with their agent secret (the agent page's
//! session: a supervisor may take calls too); the admin may do all a supervisor can. Checked on
//! every request against the worker's attributes as they are now, so taking the role away takes
//! effect at once. A supervisor's session reaches nothing of the admin's API (403 there).
//!
//! - `GET /supervisor/api/state`: every live call (its agent, queue, caller, state, how long,
//!   and the supervisors in it), the agents' board (activity and since when, tasks in hand,
//!   calls handled today, UTC), and the admin dashboard's queues;
//! - `POST /supervisor/api/calls/{WT}` (`Mode`: `monitor`, `whisper`, `barge` or `leave`; `To`:
//!   the phone to call, by default the supervisor's `contact_uri`, required for the admin):
//!   their phone joins the call's conference muted (monitor), coaching the agent (whisper: only
//!   the agent hears them) or talking (barge), switches, or leaves.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::ApiError;
use super::form::Form;
use super::session::{self, AgentSession};
use crate::agents::Role;
use crate::live::{self, LiveEngine};
use crate::routing::{Engine, Millis, ReservationStatus, Sid, SidKind, TaskStatus, Window};
use crate::voice::Voice;
use crate::voice::supervise::{self, SuperviseMode};

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/supervisor/api/state").route(web::get().to(state)))
        .service(web::resource("/supervisor/api/calls/{task}").route(web::post().to(supervise_call)));
}

/// A request from a supervisor (their worker) or from the admin (`worker` none).
pub(super) struct Supervisor {
    worker: Option<Sid>,
    /// The session's CSRF token, which the page needs for its writes.
    csrf: String,
}

/// Whether the worker's attributes give them the supervisor role (`roles: ["supervisor"]`).
pub(crate) fn is_supervisor(engine: &Engine, worker: Sid) -> bool {
    engine.worker(worker).is_some_and(|worker| {
        worker.attributes["roles"]
            .as_array()
            .is_some_and(|roles| roles.iter().any(|role| role == "supervisor"))
    })
}

impl FromRequest for Supervisor {
    type Error = ApiError;
    type Future = Ready<Result<Supervisor, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let admin = || {
            session::checked_session(request, Role::Admin).map(|(_, csrf)| Supervisor { worker: None, csrf })
        };
        let Some(engine) = request.app_data::<web::Data<LiveEngine>>() else {
            return ready(Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no engine")));
        };
        let checked = match AgentSession::from_request(request, payload).into_inner() {
            Ok(agent) if engine.read(|engine| is_supervisor(engine, agent.worker)) => {
                Ok(Supervisor { worker: Some(agent.worker), csrf: agent.csrf })
            }
            Ok(_) => admin().map_err(|_| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "supervisors only: the admin adds \"supervisor\" to a worker's roles attribute",
                )
            }),
            Err(_) => admin(),
        };
        ready(checked)
    }
}

/// What a supervisor sees at `now`.
fn view(
    engine: &Engine,
    voice: &Voice,
    statistics: &crate::statistics::Statistics,
    me: &Supervisor,
    now: Millis,
) -> Value {
    let label = supervise::label(me.worker);
    let calls: Vec<Value> = voice
        .live_calls()
        .into_iter()
        .filter_map(|(task_sid, call_sid, call)| {
            let task = engine.task(task_sid)?;
            let agent = task
                .reservations
                .iter()
                .rev()
                .filter_map(|sid| engine.reservation(*sid))
                .find(|reservation| {
                    matches!(reservation.status, ReservationStatus::Accepted | ReservationStatus::Wrapping)
                })
                .map(|reservation| engine.reservation_worker(reservation).friendly_name.clone());
            let yours = call.supervisors.iter().find(|s| s.label == label).map(|s| s.mode.as_str());
            let supervisors: Vec<Value> = call
                .supervisors
                .iter()
                .map(|s| json!({"label": s.label, "name": supervisor_name(engine, &s.label), "mode": s.mode.as_str()}))
                .collect();
            Some(json!({
                "task_sid": task_sid.to_string(),
                "call_sid": call_sid,
                "state": call.state,
                "on_hold": call.on_hold,
                "recording": call.recording,
                "agent": agent,
                "queue": engine.task_queue(task).map(|queue| queue.friendly_name.clone()),
                "caller": task.attributes.get("from").cloned(),
                "age": (now - task.created_at).max(0) / 1000,
                "your_mode": yours,
                "supervisors": supervisors,
            }))
        })
        .collect();
    let today = Window { start: now - now.rem_euclid(86_400_000), end: now };
    let voice_channel =
        engine.channels().iter().find(|channel| channel.unique_name == "voice").map(|c| c.sid);
    let mut agents: Vec<Value> = engine
        .workers()
        .map(|worker| {
            let activity = engine.worker_activity(worker);
            let tasks: Vec<Value> = engine
                .tasks()
                .filter(|task| {
                    matches!(task.status, TaskStatus::Assigned | TaskStatus::Wrapping)
                        && engine.worker_took_task(worker.sid, task.sid)
                })
                .map(|task| {
                    json!({
                        "task_sid": task.sid.to_string(),
                        "channel": engine.task_channel(task).unique_name,
                        "status": task.status.as_str(),
                        "queue": engine.task_queue(task).map(|queue| queue.friendly_name.clone()),
                    })
                })
                .collect();
            let handled =
                statistics.workers(today, voice_channel, |sid| sid == worker.sid).reservations.accepted;
            json!({
                "sid": worker.sid.to_string(),
                "friendly_name": worker.friendly_name,
                "activity_name": activity.friendly_name,
                "available": activity.available,
                "in_activity": (now - worker.activity_changed_at()).max(0) / 1000,
                "tasks": tasks,
                "calls_handled_today": handled,
            })
        })
        .collect();
    agents.sort_by(|a, b| a["friendly_name"].as_str().cmp(&b["friendly_name"].as_str()));
    let you = match me.worker.and_then(|worker| engine.worker(worker)) {
        Some(worker) => json!({"friendly_name": worker.friendly_name, "admin": false}),
        None => json!({"friendly_name": "admin", "admin": true}),
    };
    json!({
        "csrf_token": me.csrf,
        "you": you,
        "calls": calls,
        "agents": agents,
        "dashboard": super::dashboard::view(engine, now),
    })
}

async fn state(me: Supervisor, engine: web::Data<LiveEngine>, voice: web::Data<Voice>) -> HttpResponse {
    let now = live::now();
    let statistics = engine.statistics();
    let view = engine.read(|routing| view(routing, &voice, statistics, &me, now));
    HttpResponse::Ok().json(view)
}

async fn supervise_call(
    me: Supervisor,
    path: web::Path<String>,
    form: Form,
    engine: web::Data<LiveEngine>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let task = Sid::parse(path.trim(), SidKind::Task)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("{path} is not a task SID")))?;
    let mode = match form.get("Mode").unwrap_or_default() {
        "leave" => None,
        text => Some(SuperviseMode::parse(text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("Mode: {text:?} is not monitor, whisper, barge or leave"),
            )
        })?),
    };
    let contact = me.worker.and_then(|worker| {
        engine.read(|engine| engine.worker(worker)?.attributes["contact_uri"].as_str().map(str::to_owned))
    });
    let to = form.get("To").map(str::trim).filter(|to| !to.is_empty()).map(str::to_owned).or(contact);
    let label = supervise::label(me.worker);
    voice.supervise(task, &label, to.as_deref(), mode).await.map_err(super::agent::control_refusal)?;
    Ok(state(me, engine, voice).await)
}

/// Who a supervisor's participant label (`supervise::label`) stands for: the worker's name, or
/// "admin" for the admin's session.
fn supervisor_name(engine: &Engine, label: &str) -> String {
    if label == supervise::label(None) {
        return "admin".to_owned();
    }
    label
        .strip_prefix("supervisor-")
        .and_then(|sid| Sid::parse(sid, SidKind::Worker).ok())
        .and_then(|sid| engine.worker(sid))
        .map_or_else(|| label.to_owned(), |worker| worker.friendly_name.clone())
}
