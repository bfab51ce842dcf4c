//! The provider emulator's HTTP side (`switchboard provider`): Twilio's Voice REST API subset
//! under `/2010-04-01/Accounts/{AccountSid}/` with Basic auth checked, the recordings' audio,
//! and the control API through which tests and people play the callers and the agents'
//! phones:
//!
//! - `POST /emulator/calls` `{"from", "to", "keys": ["1", ...]}`: a call comes in; answers
//!   `{"sid"}`. `POST /emulator/calls/{sid}/keys` `{"keys": "2"}`: the caller's next keys.
//!   `POST /emulator/calls/{sid}/hangup`: the caller (or an agent's phone) hangs up.
//! - `GET /emulator/calls[/{sid}]`: calls with their status, conference and transcript.
//! - `PUT /emulator/phones/{address}` `{"answer_after": 2, "busy": false, "hang_up_after":
//!   null}`: what the phone at `client:alice` (or a number, a SIP URI) does when called.
//! - `GET /emulator/conferences`: conferences with their participants, and whom each hears.
//! - `GET /emulator/requests`: the REST requests received (method, path, parameter names).
//! - `PUT /emulator/api` `{"down_for": 30}`: the REST API answers 503 for that many (emulated)
//!   seconds, while calls go on and webhooks are still sent.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::form;
use crate::emulator::rest::{self, ApiError, ApiResult};
use crate::emulator::{Emulator, PhoneScript};

/// Serves the emulator on `listener` (bound by the caller, who needed its address for the
/// emulator's own URLs); answers the server to await.
pub fn serve(listener: std::net::TcpListener, emulator: Emulator) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(emulator);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/2010-04-01/Accounts/{account}/Recordings/{recording}", web::get().to(recording_audio))
            .route("/2010-04-01/Accounts/{account}/{tail:.*}", web::route().to(rest_api))
            .route("/emulator/calls", web::post().to(incoming_call))
            .route("/emulator/calls", web::get().to(calls))
            .route("/emulator/calls/{sid}", web::get().to(call))
            .route("/emulator/calls/{sid}/keys", web::post().to(press))
            .route("/emulator/calls/{sid}/hangup", web::post().to(hang_up))
            .route("/emulator/phones/{address}", web::put().to(script_phone))
            .route("/emulator/conferences", web::get().to(conferences))
            .route("/emulator/requests", web::get().to(requests))
            .route("/emulator/api", web::put().to(take_api_down))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?;
    Ok(server.run())
}

fn answer(result: ApiResult) -> HttpResponse {
    match result {
        Ok((204, _)) => HttpResponse::NoContent().finish(),
        Ok((status, body)) => {
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK)).json(body)
        }
        Err(err) => HttpResponse::build(StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST))
            .json(err.to_json()),
    }
}

/// Whether the request's Basic auth is the account's SID and token.
fn authorized(request: &HttpRequest, emulator: &Emulator) -> bool {
    let settings = emulator.settings();
    let expected = format!("{}:{}", settings.account_sid, settings.auth_token);
    request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
        .is_some_and(|decoded| decoded == expected.as_bytes())
}

async fn rest_api(request: HttpRequest, body: web::Bytes, emulator: web::Data<Emulator>) -> HttpResponse {
    let account = request.match_info().get("account").unwrap_or_default().to_owned();
    if !authorized(&request, &emulator) || account != emulator.settings().account_sid {
        return answer(Err(ApiError { status: 401, code: 20003, message: "Authenticate".to_owned() }));
    }
    let query = request.query_string().as_bytes().to_vec();
    let params = match form::decode(if request.method() == "POST" { &body } else { &query }) {
        Ok(params) => params,
        Err(err) => return answer(Err(ApiError { status: 400, code: 20001, message: err.to_string() })),
    };
    let tail = request.match_info().get("tail").unwrap_or_default();
    let method = request.method().as_str().to_owned();
    emulator.world().requests.push((
        method.clone(),
        format!("/{tail}"),
        params.iter().map(|(name, _)| name.clone()).collect(),
    ));
    if emulator.world().api_down_until.is_some_and(|until| Instant::now() < until) {
        let message = "Service Unavailable: the emulator's API is out of service".to_owned();
        return answer(Err(ApiError { status: 503, code: 20503, message }));
    }
    let Some(tail) = tail.strip_suffix(".json") else {
        return answer(Err(ApiError {
            status: 404,
            code: 20404,
            message: format!("/{tail}: only .json is emulated"),
        }));
    };
    let parts: Vec<&str> = tail.split('/').collect();
    let result = match (method.as_str(), parts.as_slice()) {
        ("POST", ["Calls"]) => rest::create_call(&emulator, &params),
        ("GET", ["Calls", call]) => rest::fetch_call(&emulator, call),
        ("POST", ["Calls", call]) => rest::update_call(&emulator, call, &params),
        ("POST", ["Calls", call, "Recordings"]) => rest::create_recording(&emulator, call, &params),
        ("POST", ["Calls", call, "Recordings", recording]) => {
            rest::update_recording(&emulator, call, recording, &params)
        }
        ("GET", ["Conferences"]) => rest::list_conferences(&emulator, &params),
        ("GET", ["Conferences", conference]) => rest::fetch_conference(&emulator, conference),
        ("POST", ["Conferences", conference]) => rest::update_conference(&emulator, conference, &params),
        ("GET", ["Conferences", conference, "Participants"]) => {
            rest::list_participants(&emulator, conference)
        }
        ("POST", ["Conferences", conference, "Participants"]) => {
            rest::create_participant(&emulator, &decoded(conference), &params)
        }
        ("GET", ["Conferences", conference, "Participants", participant]) => {
            rest::fetch_participant(&emulator, conference, &decoded(participant))
        }
        ("POST", ["Conferences", conference, "Participants", participant]) => {
            rest::update_participant(&emulator, conference, &decoded(participant), &params)
        }
        ("DELETE", ["Conferences", conference, "Participants", participant]) => {
            rest::delete_participant(&emulator, conference, &decoded(participant))
        }
        _ => Err(ApiError {
            status: 404,
            code: 20404,
            message: format!("{method} /{tail}.json is not emulated"),
        }),
    };
    answer(result)
}

/// A path segment percent-decoded (a friendly name or a label may hold any character).
fn decoded(segment: &str) -> String {
    form::decode(segment.replace('+', "%2B").as_bytes())
        .ok()
        .and_then(|pairs| pairs.into_iter().next().map(|(name, _)| name))
        .unwrap_or_else(|| segment.to_owned())
}

async fn recording_audio(request: HttpRequest, emulator: web::Data<Emulator>) -> HttpResponse {
    let recording = request.match_info().get("recording").unwrap_or_default();
    let sid = recording.trim_end_matches(".wav");
    match rest::recording_audio(&emulator, sid) {
        Some(wav) => HttpResponse::Ok().content_type("audio/x-wav").body(wav),
        None => answer(Err(ApiError {
            status: 404,
            code: 20404,
            message: format!("Recording {sid} was not found"),
        })),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCall {
    from: String,
    to: String,
    #[serde(default)]
    keys: Vec<String>,
}

async fn incoming_call(new: web::Json<NewCall>, emulator: web::Data<Emulator>) -> HttpResponse {
    let sid = emulator.incoming_call(&new.from, &new.to, new.keys.clone());
    HttpResponse::Created().json(json!({ "sid": sid }))
}

async fn calls(emulator: web::Data<Emulator>) -> HttpResponse {
    let world = emulator.world();
    let mut calls: Vec<Value> = world.legs.values().map(|leg| rest::call_summary(&emulator, leg)).collect();
    calls.sort_by(|a, b| a["sid"].as_str().cmp(&b["sid"].as_str()));
    HttpResponse::Ok().json(json!({ "calls": calls }))
}

async fn call(path: web::Path<String>, emulator: web::Data<Emulator>) -> HttpResponse {
    let world = emulator.world();
    match world.legs.get(path.as_str()) {
        Some(leg) => HttpResponse::Ok().json(rest::call_summary(&emulator, leg)),
        None => not_found(&path),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    keys: String,
}

async fn press(
    path: web::Path<String>,
    keys: web::Json<Keys>,
    emulator: web::Data<Emulator>,
) -> HttpResponse {
    if emulator.press(&path, &keys.keys) { HttpResponse::NoContent().finish() } else { not_found(&path) }
}

async fn hang_up(path: web::Path<String>, emulator: web::Data<Emulator>) -> HttpResponse {
    if emulator.hang_up(&path) { HttpResponse::NoContent().finish() } else { not_found(&path) }
}

async fn script_phone(
    path: web::Path<String>,
    script: web::Json<PhoneScript>,
    emulator: web::Data<Emulator>,
) -> HttpResponse {
    emulator.script_phone(&path, script.into_inner());
    HttpResponse::NoContent().finish()
}

async fn conferences(emulator: web::Data<Emulator>) -> HttpResponse {
    let world = emulator.world();
    let mut conferences: Vec<Value> = world
        .conferences
        .values()
        .map(|conference| {
            let mut summary = rest::conference_json(&emulator, conference);
            let hearing = conference.hearing();
            summary["participants"] = conference
                .participants
                .iter()
                .zip(hearing)
                .map(|(p, (_, hears))| {
                    let mut participant = rest::participant_json(&emulator, &conference.sid, p, "connected");
                    participant["hears"] = json!(hears);
                    participant
                })
                .collect();
            summary
        })
        .collect();
    conferences.sort_by(|a, b| a["sid"].as_str().cmp(&b["sid"].as_str()));
    HttpResponse::Ok().json(json!({ "conferences": conferences }))
}

async fn requests(emulator: web::Data<Emulator>) -> HttpResponse {
    let world = emulator.world();
    let requests: Vec<Value> = world
        .requests
        .iter()
        .map(|(method, path, names)| json!({ "method": method, "path": path, "params": names }))
        .collect();
    HttpResponse::Ok().json(json!({ "requests": requests }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Outage {
    /// Emulated seconds from now.
    down_for: f64,
}

/// `PUT /emulator/api` `{"down_for": 30}`: the REST API answers 503 for that long.
async fn take_api_down(outage: web::Json<Outage>, emulator: web::Data<Emulator>) -> HttpResponse {
    let until = Instant::now() + emulator.wall(outage.down_for);
    emulator.world().api_down_until = Some(until);
    HttpResponse::NoContent().finish()
}

fn not_found(sid: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "message": format!("no call {sid}") }))
}
