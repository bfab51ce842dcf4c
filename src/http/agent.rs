//! The agent page's API, for a signed-in agent (see `session.rs`); an agent reads and acts only
//! on their own offers and tasks (403 otherwise).
//!
//! - `GET /agent/api/state`: everything the page shows, in one document: the agent and their
//!   activity, the activities to choose from, pending offers (with what the caller did in the
//!   IVR, the skills needed, the attributes and when the offer times out) and the tasks in hand
//!   (with their live call in a conference, `call`: state, on hold, muted, recording; the
//!   queue's disposition codes; while wrapping, when the queue's wrap-up limit completes it);
//! - `GET /agent/api/events`: the same document pushed again (server-sent events, `state`)
//!   whenever something about the agent or one of their calls changes (each state carries
//!   `epoch` and `version`, so that the page draws none older than the one it shows); after a dropped connection the browser
//!   reconnects and the first `state` puts the page right again. The stream ends as soon as the
//!   session does (signed out, a new secret...), and the reconnection is then refused;
//! - `POST /agent/api/activity` (`ActivitySid`);
//! - `POST /agent/api/reservations/{WR}` (`ReservationStatus`: `accepted` or `rejected`);
//! - `POST /agent/api/tasks/{WT}` (`AssignmentStatus`: `wrapping` or `completed`, and with
//!   `completed` the `Disposition` picked from the queue's codes, required when it has some);
//! - `POST /agent/api/tasks/{WT}/call` (`Action`: `hold`, `resume`, `mute`, `unmute`,
//!   `hangup`, `record`, `stop-recording`): the live call of a task bridged in a conference;
//! - `GET /agent/api/tasks/{WT}/recordings/{RE}`: a recording of the task's call (WAV), which
//!   Switchboard fetches from the provider with its credentials.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::ApiError;
use super::form::Form;
use super::session::{AgentSession, SessionWatch};
use super::taskrouter::render::date;
use crate::agents::Role;
use crate::live::{self, ExecuteError, LiveEngine};
use crate::outbound::voice_api::codes;
use crate::routing::{
    Command, Engine, Event, Millis, NewAssigned, ReservationStatus, RoutingError, Sid, SidKind, TaskStatus,
    TransferMode,
};
use crate::sms::{ConversationEvent, Sms};
use crate::twiml::DialTarget;
use crate::voice::conference::{Control, address_of};
use crate::voice::transfer::TransferTo;
use crate::voice::{ControlError, RecordingError, Voice};

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/agent/api/state").route(web::get().to(state)))
        .service(web::resource("/agent/api/events").route(web::get().to(events)))
        .service(web::resource("/agent/api/activity").route(web::post().to(set_activity)))
        .service(web::resource("/agent/api/reservations/{reservation}").route(web::post().to(answer)))
        .service(web::resource("/agent/api/tasks/{task}").route(web::post().to(finish)))
        .service(web::resource("/agent/api/tasks/{task}/call").route(web::post().to(control_call)))
        .service(web::resource("/agent/api/calls").route(web::post().to(call_a_number)))
        .service(web::resource("/agent/api/tasks/{task}/call-out").route(web::post().to(call_back)))
        .service(
            web::resource("/agent/api/tasks/{task}/transfer")
                .route(web::get().to(transfer_targets))
                .route(web::post().to(transfer)),
        )
        .service(
            web::resource("/agent/api/tasks/{task}/recordings/{recording}").route(web::get().to(recording)),
        );
}

/// `GET /agent/api/tasks/{WT}/recordings/{RE}`: a recording of the agent's own task.
async fn recording(
    session: AgentSession,
    path: web::Path<(String, String)>,
    engine: web::Data<LiveEngine>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let (task, recording) = path.into_inner();
    let task = task_sid(&task)?;
    if !engine.read(|engine| engine.worker_took_task(session.worker, task)) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "this task is not yours"));
    }
    recording_audio(&voice, task, &recording).await
}

/// `text` as a task SID, or a 404 saying it is not one.
pub(super) fn task_sid(text: &str) -> Result<Sid, ApiError> {
    Sid::parse(text, SidKind::Task)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("{text} is not a task SID")))
}

/// A recording's audio for a page's `<audio>` player, fetched from the provider.
pub(super) async fn recording_audio(
    voice: &Voice,
    task: Sid,
    recording: &str,
) -> Result<HttpResponse, ApiError> {
    match voice.recording_audio(task, recording).await {
        Ok(audio) => Ok(HttpResponse::Ok()
            .content_type("audio/wav")
            .insert_header(("cache-control", "private, max-age=3600"))
            .body(audio)),
        Err(err @ (RecordingError::NotOfTask { .. } | RecordingError::NoApi)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, err.to_string()))
        }
        Err(RecordingError::Provider(err)) if err.code() == Some(codes::NOT_FOUND) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("the provider no longer has it: {err}")))
        }
        Err(err) => Err(ApiError::new(StatusCode::BAD_GATEWAY, err.to_string())),
    }
}

/// The agent's view at `now`, and the tasks it shows: `None` if the worker is gone.
fn view(engine: &Engine, voice: &Voice, worker: Sid, now: Millis) -> Option<(Value, HashSet<Sid>)> {
    let me = engine.worker(worker)?;
    let activity = engine.worker_activity(me);
    let activities: Vec<Value> = engine
        .activities()
        .iter()
        .map(
            |a| json!({"sid": a.sid.to_string(), "friendly_name": a.friendly_name, "available": a.available}),
        )
        .collect();
    let mut offers = Vec::new();
    let mut tasks = Vec::new();
    let mut shown = HashSet::new();
    let mut mine: Vec<_> =
        engine.reservations().filter(|r| engine.reservation_worker(r).sid == worker).collect();
    mine.sort_unstable_by_key(|reservation| (reservation.created_at, reservation.sid));
    for reservation in mine {
        let Some(task) = engine.task(reservation.task) else { continue };
        let attributes = &task.attributes;
        let item = json!({
            "reservation_sid": reservation.sid.to_string(),
            "task_sid": task.sid.to_string(),
            "assignment_status": task.status.as_str(),
            "channel": engine.task_channel(task).unique_name,
            "queue": engine.task_queue(task).map(|queue| queue.friendly_name.clone()),
            // The customer: whom an outbound call went to, else who called.
            "caller": if attributes["direction"] == "outbound" { attributes.get("to") } else { attributes.get("from") }
                .or_else(|| attributes.get("caller"))
                .cloned(),
            "ivr_path": attributes.get("ivr_path").cloned(),
            "skills_needed": attributes.get("skillsNeeded").cloned(),
            "attributes": attributes,
            "priority": task.priority,
            "age": (now - task.created_at).max(0) / 1000,
            "date_created": date(reservation.created_at),
            "dispositions": engine.task_queue(task).map(|queue| queue.wrap_up.dispositions.clone()).unwrap_or_default(),
        });
        match reservation.status {
            ReservationStatus::Pending => {
                offers.push(with(item, "expires_in_ms", json!((reservation.timeout_at - now).max(0))));
            }
            ReservationStatus::Accepted | ReservationStatus::Wrapping
                if matches!(task.status, TaskStatus::Assigned | TaskStatus::Wrapping) =>
            {
                let limit = engine.task_queue(task).map_or(0, |queue| queue.wrap_up.limit_seconds);
                // Wrapping since the reservation's last change (`reservation.wrapup`).
                let wrap_up_ends = (task.status == TaskStatus::Wrapping && limit > 0)
                    .then(|| (reservation.updated_at + i64::from(limit) * 1000 - now).max(0));
                let item = with(item, "wrap_up_ends_in_ms", json!(wrap_up_ends));
                tasks.push(with(item, "call", json!(voice.call_view(task.sid))));
            }
            _ => continue,
        }
        shown.insert(task.sid);
    }
    let state = json!({
        // States are drawn in the order they come, from the stream and from the answers to the
        // page's own requests: a later one can arrive first. Both counts only grow while the
        // process runs (`epoch`), so the page skips a state older than the one it shows.
        "epoch": *EPOCH,
        "version": engine.events_emitted() + voice.views_changed(),
        "worker": {
            "sid": worker.to_string(),
            "friendly_name": me.friendly_name,
            "activity_sid": activity.sid.to_string(),
            "activity_name": activity.friendly_name,
            "available": activity.available,
        },
        "activities": activities,
        "offers": offers,
        "tasks": tasks,
    });
    Some((state, shown))
}

/// This process's run: the states' versions count from its start.
static EPOCH: std::sync::LazyLock<Millis> = std::sync::LazyLock::new(live::now);

fn with(mut item: Value, key: &str, value: Value) -> Value {
    item[key] = value;
    item
}

fn gone() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "this worker no longer exists: sign in again")
}

async fn state(
    session: AgentSession,
    engine: web::Data<LiveEngine>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let now = live::now();
    let (found, _) = engine.read(|engine| view(engine, &voice, session.worker, now)).ok_or_else(gone)?;
    Ok(HttpResponse::Ok().json(with(found, "csrf_token", session.csrf.into())))
}

/// How often an idle stream says it is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What one agent's stream carries along between pushes.
struct Stream {
    worker: Sid,
    /// The stream ends as soon as the session does (signed out, expired, a new secret, the
    /// worker deleted).
    session: SessionWatch,
    /// The tasks on the page (offers and tasks in hand), as of the last push.
    shown: HashSet<Sid>,
    engine: Arc<LiveEngine>,
    sms: Arc<Sms>,
    voice: Arc<Voice>,
    changes: broadcast::Receiver<Event>,
    texts: broadcast::Receiver<ConversationEvent>,
    /// Tasks whose live call changed (talking, on hold, muted, recording).
    calls: broadcast::Receiver<Sid>,
    beat: tokio::time::Interval,
}

impl Stream {
    /// The agent's state, noting which tasks it shows.
    fn state(&mut self) -> Option<Bytes> {
        let (state, shown) =
            self.engine.read(|engine| view(engine, &self.voice, self.worker, live::now()))?;
        self.shown = shown;
        Some(Bytes::from(sse("state", &state)))
    }

    /// Whether `event` changes what the page shows: the agent's own changes and offers, any
    /// change to a task on the page, and the activities to choose from.
    fn concerns(&self, event: &Event) -> bool {
        event.worker == Some(self.worker)
            || event.resource == self.worker
            || event.task.is_some_and(|task| self.shown.contains(&task))
            || event.resource.kind() == SidKind::Activity
    }

    /// The next chunk: a state after a burst of engine events that concerns the agent, a
    /// conversation's change (the page reads the conversation again), or a keep-alive. `None`
    /// ends the stream: the server stops, or the session no longer holds.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            let relevant = tokio::select! {
                biased;
                () = self.sms.stopping() => return None,
                () = self.session.ended() => return None,
                _ = self.beat.tick() => return Some(Bytes::from_static(b": keep-alive\n\n")),
                text = self.texts.recv() => match text {
                    Ok(text) if self.shown.contains(&text.task) => {
                        let task = json!({"task_sid": text.task.to_string()});
                        return Some(Bytes::from(sse("conversation", &task)));
                    }
                    Ok(_) => continue,
                    // Missed some: every conversation on the page is read again.
                    Err(RecvError::Lagged(_)) => {
                        return Some(Bytes::from(sse("conversation", &json!({"task_sid": null}))));
                    }
                    Err(RecvError::Closed) => return None,
                },
                call = self.calls.recv() => match call {
                    Ok(task) => self.shown.contains(&task),
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return None,
                },
                change = self.changes.recv() => match change {
                    Ok(event) => self.concerns(&event),
                    // Missed some: the whole state catches up anyway.
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return None,
                },
            };
            // One state for a burst: what is already there is in it too.
            let mut relevant = relevant;
            loop {
                match self.changes.try_recv() {
                    Ok(event) => relevant |= self.concerns(&event),
                    Err(TryRecvError::Lagged(_)) => relevant = true,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            if relevant {
                return self.state();
            }
        }
    }
}

/// `state` now, then again after every burst of engine events that concerns the agent, and
/// `conversation` when one of the agent's conversations changes. One stream per page: a
/// browser opens at most six connections to a host, which a stream per conversation would
/// use up.
async fn events(
    request: HttpRequest,
    session: AgentSession,
    engine: web::Data<LiveEngine>,
    sms: web::Data<Sms>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let mut beat = tokio::time::interval(KEEP_ALIVE);
    beat.reset();
    let mut stream = Stream {
        worker: session.worker,
        session: SessionWatch::of(&request, Role::Agent)?,
        shown: HashSet::new(),
        changes: engine.subscribe(),
        texts: sms.subscribe(),
        calls: voice.subscribe_views(),
        engine: engine.into_inner(),
        sms: sms.into_inner(),
        voice: voice.into_inner(),
        beat,
    };
    let first = stream.state().ok_or_else(gone)?;
    let first = futures_util::stream::once(std::future::ready(Ok::<_, Infallible>(first)));
    let changes = futures_util::stream::unfold(stream, |mut stream| async move {
        let chunk = stream.next().await.filter(|_| stream.session.holds())?;
        Some((Ok(chunk), stream))
    });
    Ok(super::metrics::event_stream(&request, first.chain(changes)))
}

fn sse(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The value of `name` in `form`, which the request must give.
fn required<'a>(form: &'a Form, name: &str) -> Result<&'a str, ApiError> {
    form.get(name).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, format!("{name} is required")))
}

async fn set_activity(
    session: AgentSession,
    form: Form,
    engine: web::Data<LiveEngine>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let activity = Sid::parse(required(&form, "ActivitySid")?.trim(), SidKind::Activity)
        .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, format!("ActivitySid: {err}")))?;
    let command = Command::SetWorkerActivity { worker: session.worker, activity, reject_pending: false };
    execute(&engine, command).await?;
    state(session, engine, voice).await
}

async fn answer(
    session: AgentSession,
    path: web::Path<String>,
    form: Form,
    engine: web::Data<LiveEngine>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let status = required(&form, "ReservationStatus")?;
    let reservation = Sid::parse(&path, SidKind::Reservation)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("{path} is not a reservation SID")))?;
    let owner =
        engine.read(|engine| engine.reservation(reservation).map(|r| engine.reservation_worker(r).sid));
    match owner {
        None => return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no reservation {reservation}"))),
        Some(owner) if owner != session.worker => {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "this offer is another agent's"));
        }
        Some(_) => {}
    }
    let command = match status {
        "accepted" => Command::Accept { reservation },
        "rejected" => Command::Reject { reservation, activity: None },
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("ReservationStatus: {other:?} cannot be set here; use accepted or rejected"),
            ));
        }
    };
    execute(&engine, command).await?;
    state(session, engine, voice).await
}

async fn finish(
    session: AgentSession,
    path: web::Path<String>,
    form: Form,
    engine: web::Data<LiveEngine>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let status = required(&form, "AssignmentStatus")?;
    let task = task_sid(&path)?;
    let (exists, took) =
        engine.read(|engine| (engine.task(task).is_some(), engine.worker_took_task(session.worker, task)));
    if !exists {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no task {task}")));
    }
    if !took {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "this task is another agent's"));
    }
    let disposition = form.get("Disposition").filter(|code| !code.is_empty());
    let command = match status {
        "wrapping" => Command::WrapUp { task },
        "completed" => engine
            .read(|engine| Command::agent_completion(engine, task, disposition, "completed by the agent"))
            .map_err(refusal)?,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("AssignmentStatus: {other:?} cannot be set here; use wrapping or completed"),
            ));
        }
    };
    execute(&engine, command).await?;
    state(session, engine, voice).await
}

/// The agent's control of the live call of their task.
async fn control_call(
    session: AgentSession,
    path: web::Path<String>,
    form: Form,
    engine: web::Data<LiveEngine>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let action = required(&form, "Action")?;
    let action = match action {
        "hold" => CallAction::Control(Control::Hold(true)),
        "resume" => CallAction::Control(Control::Hold(false)),
        "mute" => CallAction::Control(Control::Mute(true)),
        "unmute" => CallAction::Control(Control::Mute(false)),
        "hangup" => CallAction::Control(Control::HangUp),
        "record" => CallAction::Control(Control::Record(true)),
        "stop-recording" => CallAction::Control(Control::Record(false)),
        "cancel-transfer" => CallAction::EndTransfer { leave: false },
        "complete-transfer" => CallAction::EndTransfer { leave: true },
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "Action: {other:?} is not one of hold, resume, mute, unmute, hangup, record, stop-recording, cancel-transfer, complete-transfer"
                ),
            ));
        }
    };
    let task = own_task(&session, &path, &engine)?;
    let done = match action {
        CallAction::Control(control) => voice.control(task, control).await,
        CallAction::EndTransfer { leave } => voice.end_transfer(task, leave).await,
    };
    done.map_err(control_refusal)?;
    state(session, engine, voice).await
}

/// What an agent does to their call: a control, or the end of their transfer (leaving the
/// caller with whoever took it, or canceling it).
enum CallAction {
    Control(Control),
    EndTransfer { leave: bool },
}

/// A task of the signed-in agent's (403 for another agent's).
fn own_task(session: &AgentSession, path: &str, engine: &LiveEngine) -> Result<Sid, ApiError> {
    let task = task_sid(path)?;
    let took = engine.read(|engine| engine.worker_took_task(session.worker, task));
    if !took {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "this task is not yours"));
    }
    Ok(task)
}

/// A refused call control, as the agent and supervisor pages show it.
pub(super) fn control_refusal(err: ControlError) -> ApiError {
    match err {
        ControlError::NoCall => ApiError::new(StatusCode::NOT_FOUND, err.to_string()),
        ControlError::Refused(_) => ApiError::new(StatusCode::CONFLICT, err.to_string()),
        ControlError::Routing(err) => refusal(err),
        ControlError::Provider(_) => ApiError::new(StatusCode::BAD_GATEWAY, err.to_string()),
        ControlError::Voice(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("not stored ({err}); the server is stopping"),
        ),
    }
}

/// Where the agent may transfer their task's call: every task queue, and every other agent
/// with whether they could take it now (and why not, as `explain` says).
async fn transfer_targets(
    session: AgentSession,
    path: web::Path<String>,
    engine: web::Data<LiveEngine>,
) -> Result<HttpResponse, ApiError> {
    let task = own_task(&session, &path, &engine)?;
    let targets = engine.read(|engine| {
        let queues: Vec<Value> = engine
            .queues()
            .iter()
            .map(|queue| json!({"sid": queue.sid.to_string(), "friendly_name": queue.friendly_name}))
            .collect();
        let mut workers: Vec<Value> = engine
            .workers()
            .filter(|worker| worker.sid != session.worker)
            .map(|worker| {
                let why_not = engine.explain_transfer(task, worker.sid).ok().flatten();
                json!({
                    "sid": worker.sid.to_string(),
                    "friendly_name": worker.friendly_name,
                    "activity_name": engine.worker_activity(worker).friendly_name,
                    "can_take": why_not.is_none(),
                    "why_not": why_not.map(|why| why.reason()),
                })
            })
            .collect();
        workers.sort_by_key(|worker| {
            (!worker["can_take"].as_bool().unwrap_or(false), worker["friendly_name"].to_string())
        });
        json!({"task_sid": task.to_string(), "queues": queues, "workers": workers})
    });
    Ok(HttpResponse::Ok().json(targets))
}

/// `POST /agent/api/calls` (`To`: `+E.164`, `sip:` or `client:`): an outbound call, a voice
/// task assigned to the agent at once, the customer called into its conference.
async fn call_a_number(
    session: AgentSession,
    form: Form,
    engine: web::Data<LiveEngine>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let to = address_of(&outside_address(required(&form, "To")?)?);
    let attributes = json!({"direction": "outbound", "to": to, "name": to, "channel": "voice"});
    let new = NewAssigned { worker: session.worker, attributes, channel: "voice".to_owned() };
    let task = execute(&engine, Command::CreateAssigned(new))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no task was created"))?;
    if let Err(err) = voice.call_out(task, &to).await {
        // Nobody was called: the task the call was for is done with.
        let over = Command::Complete { task, reason: "the call could not be placed".to_owned() };
        let _ = engine.execute(over).await;
        return Err(control_refusal(err));
    }
    state(session, engine, voice).await
}

/// `POST /agent/api/tasks/{WT}/call-out` (`To`, by default the task's `from`): calls the
/// customer of a task in hand back (a voicemail, a callback), in its conference.
async fn call_back(
    session: AgentSession,
    path: web::Path<String>,
    form: Form,
    engine: web::Data<LiveEngine>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let task = own_task(&session, &path, &engine)?;
    let from = engine.read(|engine| {
        engine.task(task).and_then(|task| task.attributes["from"].as_str().map(str::to_owned))
    });
    let to = match form.get("To").filter(|to| !to.trim().is_empty()) {
        Some(to) => address_of(&outside_address(to)?),
        None => from.ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "To: the task has no number to call back")
        })?,
    };
    voice.call_out(task, &to).await.map_err(control_refusal)?;
    state(session, engine, voice).await
}

/// A phone number, SIP address or client identity to call, as given.
fn outside_address(to: &str) -> Result<DialTarget, ApiError> {
    match DialTarget::from_contact_uri(to.trim()) {
        Some(target @ (DialTarget::Number(_) | DialTarget::Sip(_) | DialTarget::Client(_))) => Ok(target),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("To: {to:?} is not a +E.164 number, sip: or client: address"),
        )),
    }
}

/// `POST /agent/api/tasks/{WT}/transfer`: `To` (a task queue `WQ…`, a worker `WK…`, or an
/// outside `+E.164`, `sip:` or `client:` address) and `Mode` (`cold`, the default, or `warm`).
async fn transfer(
    session: AgentSession,
    path: web::Path<String>,
    form: Form,
    engine: web::Data<LiveEngine>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let task = own_task(&session, &path, &engine)?;
    let to = required(&form, "To")?.trim();
    let to = if let Ok(queue) = Sid::parse(to, SidKind::TaskQueue) {
        TransferTo::Queue(queue)
    } else if let Ok(worker) = Sid::parse(to, SidKind::Worker) {
        TransferTo::Worker(worker)
    } else {
        match DialTarget::from_contact_uri(to) {
            Some(target @ (DialTarget::Number(_) | DialTarget::Sip(_) | DialTarget::Client(_))) => {
                TransferTo::Outside(target)
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "To: {to:?} is not a task queue (WQ…), a worker (WK…), a +E.164 number, sip: or client: address"
                    ),
                ));
            }
        }
    };
    let mode = match form.get("Mode").unwrap_or("cold") {
        "cold" => TransferMode::Cold,
        "warm" => TransferMode::Warm,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("Mode: {other:?} is not cold or warm"),
            ));
        }
    };
    voice.transfer(task, to, mode).await.map_err(control_refusal)?;
    state(session, engine, voice).await
}

/// Runs the agent's command: what it created, or the refusal as the page shows it.
async fn execute(engine: &LiveEngine, command: Command) -> Result<Option<Sid>, ApiError> {
    engine.execute(command).await.map_err(|err| match err {
        ExecuteError::Refused(err) => refusal(err),
        ExecuteError::Storage(err) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("not stored ({err}); the server is stopping"),
        ),
    })
}

/// The engine's refusal of an agent's action, as the page shows it.
fn refusal(err: RoutingError) -> ApiError {
    match err {
        RoutingError::NotFound { sid } => {
            ApiError::new(StatusCode::NOT_FOUND, format!("{sid} does not exist"))
        }
        // A late answer: the offer was rescinded or timed out meanwhile.
        err @ RoutingError::ReservationNotPending { .. } => ApiError::new(StatusCode::GONE, err.to_string()),
        err @ RoutingError::Invalid { .. } => ApiError::new(StatusCode::BAD_REQUEST, err.to_string()),
        err => ApiError::new(StatusCode::CONFLICT, err.to_string()),
    }
}
