//! The admin API for what lives outside TaskRouter's API, behind the account's credentials:
//! skills (Flex keeps them in its configuration), sign-in secrets and call recordings.
//!
//! - `GET /admin/api/skills`: every skill with its level range and the two expressions the
//!   onboarding guide has you paste (the queue's target workers, the workflow filter);
//! - `POST /admin/api/skills` (`Name`, optional `MinLevel` and `MaxLevel`): a new skill;
//! - `DELETE /admin/api/skills/{name}`: removes it from the catalogue (agents keep the
//!   attribute until their skills are set again);
//! - `POST /admin/api/workers/{WorkerSid}/skills` (`Skill` repeated, `Sales` or `Sales:4`, and
//!   `DisabledSkill` likewise): sets the agent's skills and levels, written as Flex writes them
//!   (`routing.skills`, `routing.levels`; switched-off ones in `disabled_skills` with their
//!   level; without `DisabledSkill` those stay, less the ones given as `Skill`, and an empty
//!   `DisabledSkill=` clears them), every other attribute kept;
//! - `POST /admin/api/workers/{WorkerSid}/secret`: a new sign-in secret for the agent page,
//!   shown in that answer only;
//! - `GET /admin/api/recordings`: the call recordings the tasks keep (newest first), and
//!   `GET /admin/api/recordings/{WT}/{RE}` the audio of one, fetched from the provider;
//! - `POST /admin/api/expressions/check` (`Expression`, `Context`: `queue`, `filter` or
//!   `target`): whether the expression compiles where it would be used, without saving
//!   anything: 200 `{"valid": true}`, or 400 with the message the REST API would give on a
//!   save, the expression and a caret under the column at fault. The admin page checks its
//!   expressions with it as they are typed.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;

use super::ApiError;
use super::form::Form;
use super::taskrouter::api::authenticate;
use super::taskrouter::render::date;
use crate::agents::Agents;
use crate::config::Credentials;
use crate::expr::{Context, Expression};
use crate::live::{ExecuteError, LiveEngine};
use crate::routing::{Command, Millis, RoutingError, Sid, SidKind, Skill};
use crate::voice::{Voice, recordings_of};

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/admin/api/skills").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/admin/api/skills/{name}").route(web::delete().to(delete)))
        .service(web::resource("/admin/api/workers/{worker}/skills").route(web::post().to(assign)))
        .service(web::resource("/admin/api/workers/{worker}/secret").route(web::post().to(issue_secret)))
        .service(web::resource("/admin/api/recordings").route(web::get().to(recordings)))
        .service(web::resource("/admin/api/recordings/{task}/{recording}").route(web::get().to(recording)))
        .service(web::resource("/admin/api/expressions/check").route(web::post().to(check_expression)));
}

/// `POST /admin/api/expressions/check`: compiles `Expression` for `Context`, and says what is
/// wrong as a save would (the message, then the expression with a caret under the column).
async fn check_expression(_: Authenticated, form: Form) -> HttpResponse {
    let context = match form.get("Context").map(str::trim) {
        Some(name) if name.eq_ignore_ascii_case("queue") => Context::Queue,
        Some(name) if name.eq_ignore_ascii_case("filter") => Context::Filter,
        Some(name) if name.eq_ignore_ascii_case("target") => Context::Target,
        _ => {
            return bad_request(
                "Context must be queue (a task queue's target workers), filter (a workflow filter's expression) or target (a workflow target's expression)",
            );
        }
    };
    let Some(source) = form.get("Expression") else { return bad_request("Expression is required") };
    match Expression::parse(source, context) {
        Ok(_) => HttpResponse::Ok().json(json!({ "valid": true })),
        Err(err) => bad_request(&format!("{err}\n{}", err.snippet())),
    }
}

/// How many recordings the list shows, newest first.
const RECORDINGS_SHOWN: usize = 100;

/// `GET /admin/api/recordings`: the call recordings the tasks keep, newest call first.
async fn recordings(_: Authenticated, engine: web::Data<LiveEngine>) -> HttpResponse {
    let mut found: Vec<(Millis, serde_json::Value)> = engine.read(|engine| {
        engine
            .tasks()
            .flat_map(|task| {
                let queue = engine.task_queue(task).map(|queue| queue.friendly_name.clone());
                recordings_of(&task.attributes).map(move |media| {
                    let sid = media["sid"].as_str().unwrap_or_default();
                    let item = json!({
                        "task_sid": task.sid.to_string(),
                        "caller": task.attributes.get("from").cloned(),
                        "queue": queue.clone(),
                        "assignment_status": task.status.as_str(),
                        "date_created": date(task.created_at),
                        "recording_sid": sid,
                        "duration": media["duration"].clone(),
                        "audio_url": format!("/admin/api/recordings/{}/{sid}", task.sid),
                    });
                    (task.created_at, item)
                })
            })
            .collect()
    });
    found.sort_by_key(|(created_at, _)| std::cmp::Reverse(*created_at));
    let shown: Vec<_> = found.into_iter().take(RECORDINGS_SHOWN).map(|(_, item)| item).collect();
    HttpResponse::Ok().json(json!({ "recordings": shown }))
}

/// `GET /admin/api/recordings/{WT}/{RE}`: a recording's audio.
async fn recording(
    _: Authenticated,
    path: web::Path<(String, String)>,
    voice: web::Data<Voice>,
) -> Result<HttpResponse, ApiError> {
    let (task, recording) = path.into_inner();
    super::agent::recording_audio(&voice, super::agent::task_sid(&task)?, &recording).await
}

/// A request that carries the account's credentials (HTTP Basic, as for the REST API).
pub(super) struct Authenticated;

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = Ready<Result<Authenticated, actix_web::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let checked = match request.app_data::<web::Data<Credentials>>() {
            Some(credentials) => authenticate(request, credentials).map_err(|err| err.error_response()),
            None => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no credentials").error_response()),
        };
        ready(
            checked
                .map(|()| Authenticated)
                .map_err(|response| InternalError::from_response("refused", response).into()),
        )
    }
}

fn render(skill: &Skill) -> serde_json::Value {
    json!({
        "name": skill.name,
        "levels": skill.levels.map(|(minimum, maximum)| json!({"min": minimum, "max": maximum})),
        "queue_expression": skill.queue_expression(),
        "workflow_expression": skill.workflow_expression(),
        "order_by": skill.target_order_by(),
    })
}

async fn list(_: Authenticated, engine: web::Data<LiveEngine>) -> HttpResponse {
    let skills: Vec<_> = engine.read(|engine| engine.skills().iter().map(render).collect());
    HttpResponse::Ok().json(json!({ "skills": skills }))
}

async fn create(_: Authenticated, form: Form, engine: web::Data<LiveEngine>) -> HttpResponse {
    let get = |name: &str| form.get(name).map(|value| value.trim().to_owned());
    let Some(name) = get("Name") else { return bad_request("Name is required") };
    let level = |field: &str| {
        get(field).map(|text| text.parse::<u32>().map_err(|_| format!("{field} must be a whole number")))
    };
    let levels = match (level("MinLevel"), level("MaxLevel")) {
        (None, None) => None,
        (Some(Ok(minimum)), Some(Ok(maximum))) => Some((minimum, maximum)),
        (Some(Err(message)), _) | (_, Some(Err(message))) => return bad_request(&message),
        _ => return bad_request("give both MinLevel and MaxLevel, or neither"),
    };
    match engine.execute(Command::CreateSkill { name: name.clone(), levels }).await {
        Ok(_) => {
            let created =
                engine.read(|engine| engine.skills().iter().find(|skill| skill.name == name).map(render));
            HttpResponse::Created().json(created)
        }
        Err(err) => refused(err),
    }
}

async fn delete(_: Authenticated, name: web::Path<String>, engine: web::Data<LiveEngine>) -> HttpResponse {
    let exists =
        engine.read(|engine| engine.skills().iter().any(|skill| skill.name.eq_ignore_ascii_case(&name)));
    if !exists {
        return ApiError::new(StatusCode::NOT_FOUND, format!("no skill named {:?}", name.as_str()))
            .error_response();
    }
    match engine.execute(Command::DeleteSkill { name: name.into_inner() }).await {
        Ok(_) => HttpResponse::NoContent().finish(),
        Err(err) => refused(err),
    }
}

async fn assign(
    _: Authenticated,
    worker: web::Path<String>,
    Form(form): Form,
    engine: web::Data<LiveEngine>,
) -> HttpResponse {
    let Ok(worker) = Sid::parse(&worker, SidKind::Worker) else {
        return ApiError::new(StatusCode::NOT_FOUND, format!("{worker} is not a worker SID"))
            .error_response();
    };
    let parse = |field: &str| -> Result<Vec<(String, Option<u32>)>, String> {
        let given = form.iter().filter(|(key, _)| key == field);
        given
            .map(|(_, value)| match value.split_once(':') {
                Some((name, level)) => match level.trim().parse::<u32>() {
                    Ok(level) => Ok((name.trim().to_owned(), Some(level))),
                    Err(_) => Err(format!("{field} {value:?}: the level must be a whole number")),
                },
                None => Ok((value.trim().to_owned(), None)),
            })
            .collect()
    };
    let (skills, disabled) = match (parse("Skill"), parse("DisabledSkill")) {
        (Ok(skills), Ok(disabled)) => (skills, disabled),
        (Err(message), _) | (_, Err(message)) => return bad_request(&message),
    };
    // `DisabledSkill` given (an empty one means none) replaces the switched-off skills; not
    // given, they stay as they are, less those switched back on.
    let given = form.iter().any(|(key, _)| key == "DisabledSkill");
    let disabled =
        given.then(|| disabled.into_iter().filter(|(name, _)| !name.is_empty()).collect::<Vec<_>>());
    if skills.is_empty() && disabled.is_none() {
        return bad_request(
            "give the agent's skills as Skill=Sales or Skill=Sales:4, repeated, and the ones kept but switched off as DisabledSkill=Support:3; to clear them all, send an empty DisabledSkill=",
        );
    }
    match engine.execute(Command::SetWorkerSkills { worker, skills, disabled }).await {
        Ok(_) => {
            let attributes =
                engine.read(|engine| engine.worker(worker).map(|worker| worker.attributes.clone()));
            HttpResponse::Ok().json(json!({ "worker_sid": worker.to_string(), "attributes": attributes }))
        }
        Err(err) => refused(err),
    }
}

/// Issues the agent a new sign-in secret (the old one stops working), shown in this answer only.
async fn issue_secret(
    _: Authenticated,
    worker: web::Path<String>,
    engine: web::Data<LiveEngine>,
    agents: web::Data<Agents>,
) -> HttpResponse {
    let found = Sid::parse(&worker, SidKind::Worker).ok().and_then(|sid| {
        engine.read(|engine| engine.worker(sid).map(|worker| (sid, worker.friendly_name.clone())))
    });
    let Some((sid, name)) = found else {
        return ApiError::new(StatusCode::NOT_FOUND, format!("no worker {}", worker.as_str()))
            .error_response();
    };
    match agents.issue(&engine, sid).await {
        Ok(secret) => HttpResponse::Ok().json(json!({
            "worker_sid": sid.to_string(),
            "friendly_name": name,
            "sign_in_secret": secret,
        })),
        Err(err) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).error_response(),
    }
}

fn bad_request(message: &str) -> HttpResponse {
    ApiError::new(StatusCode::BAD_REQUEST, message).error_response()
}

fn refused(err: ExecuteError) -> HttpResponse {
    let status = match &err {
        ExecuteError::Refused(RoutingError::NotFound { .. }) => StatusCode::NOT_FOUND,
        ExecuteError::Refused(RoutingError::Conflict { .. } | RoutingError::InUse { .. }) => {
            StatusCode::CONFLICT
        }
        ExecuteError::Refused(_) => StatusCode::BAD_REQUEST,
        ExecuteError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, err.to_string()).error_response()
}
