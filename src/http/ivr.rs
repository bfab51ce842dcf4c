//! The admin API of the IVR flows, behind the account's credentials:
//!
//! - `GET /admin/api/ivr`: the flows in use, each with its numbers, its picture (Mermaid and DOT) and
//!   the scenarios of `ivr/tests/` that test it, run against it now, passed or failed;
//! - `POST /admin/api/ivr/reload`: reads the `ivr/` folder again and uses it from the next
//!   webhook on when every flow loads and every scenario passes (as SIGHUP does); otherwise
//!   422 with every mistake, and the flows in use stay.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use serde_json::json;

use super::ApiError;
use super::admin::Authenticated;
use crate::voice::Voice;

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/admin/api/ivr").route(web::get().to(flows)))
        .service(web::resource("/admin/api/ivr/reload").route(web::post().to(reload)));
}

async fn flows(_: Authenticated, voice: web::Data<Voice>) -> HttpResponse {
    // Reading the scenario files and walking their calls is file and CPU work: off the workers
    // that answer callers' webhooks.
    let voice = voice.into_inner();
    match web::block(move || described_flows(&voice)).await {
        Ok(described) => HttpResponse::Ok().json(described),
        Err(err) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).error_response(),
    }
}

/// The flows in use, each with its picture (Mermaid and DOT) and its scenarios run.
fn described_flows(voice: &Voice) -> serde_json::Value {
    let ivr = voice.ivr_flows();
    let flows = ivr.flows();
    // The scenarios are read from the folder: a mistake in a file is shown beside the others'
    // results, not an error.
    let (scenarios, mistakes) = ivr.scenarios(&flows);
    let scenario_error = (!mistakes.is_empty()).then(|| mistakes.join("\n"));
    let rendered: Vec<_> = flows
        .iter()
        .map(|(name, flow)| {
            let calls: Vec<_> = scenarios
                .iter()
                .filter(|file| &file.flow == name)
                .flat_map(|file| {
                    file.calls.iter().map(|call| {
                        json!({
                            "file": file.path.display().to_string(),
                            "line": call.line,
                            "name": call.name,
                            "passed": call.failure.is_none(),
                            "failure": call.failure,
                        })
                    })
                })
                .collect();
            json!({
                "name": name,
                "numbers": flow.numbers,
                "start": flow.start,
                "steps": flow.steps.len(),
                "languages": flow.languages,
                "mermaid": crate::ivr::graph::mermaid(flow),
                "dot": crate::ivr::graph::dot(flow),
                "scenarios": calls,
            })
        })
        .collect();
    json!({
        "dir": ivr.dir().display().to_string(),
        "flows": rendered,
        "scenario_error": scenario_error,
    })
}

async fn reload(_: Authenticated, voice: web::Data<Voice>) -> HttpResponse {
    let voice = voice.into_inner();
    let reloaded = web::block(move || voice.ivr_flows().reload("admin API")).await;
    match reloaded {
        Ok(Ok(reloaded)) => {
            HttpResponse::Ok().json(json!({"flows": reloaded.flows, "scenarios": reloaded.scenarios}))
        }
        Ok(Err(err)) => {
            let message = format!("the flows in use stay; the folder has mistakes:\n{err}");
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message).error_response()
        }
        Err(err) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).error_response(),
    }
}
