//! Text messages: the provider's incoming-message webhook (`/sms/incoming`, signed like the
//! voice webhooks, answered with TwiML), and the agents' conversation API:
//!
//! - `GET /agent/api/conversations/{TaskSid}`: the messages, each reply with its delivery;
//! - `POST /agent/api/conversations/{TaskSid}/messages` (`Body`): a reply, queued durably;
//! - `POST /agent/api/conversations/{TaskSid}/close`: completes the task, texts the closing
//!   (as any completion of the task does), and answers once that text is queued durably;
//! - `GET /agent/api/conversations/{TaskSid}/events`: the conversation live (server-sent
//!   events): each customer text as it arrives, each reply and its delivery; it ends as soon
//!   as the session it was opened with does.
//!
//! The conversation API takes a signed-in agent's session (their own conversations only, 403
//! for others'), or the account's credentials or admin session (any conversation).

use std::convert::Infallible;
use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::ApiError;
use super::admin::Authenticated;
use super::form::{Form, FormError};
use super::session::{AGENT_COOKIE, SessionWatch, checked_session};
use super::taskrouter::render::date;
use super::voice::{Webhooks, refusal, signed_params, twiml};
use crate::agents::Role;
use crate::live::{self, LiveEngine};
use crate::routing::{Sid, SidKind};
use crate::sms::{ConversationEvent, ConversationView, MessageParams, Sms, SmsError};
use crate::store::{MediaV1, OutboxV1};
use crate::twiml::{Response, Verb};

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/sms/incoming").route(web::post().to(incoming)).route(web::get().to(incoming)),
        )
        .service(web::resource("/agent/api/conversations/{task}").route(web::get().to(conversation)))
        .service(web::resource("/agent/api/conversations/{task}/events").route(web::get().to(events)))
        .service(web::resource("/agent/api/conversations/{task}/messages").route(web::post().to(reply)))
        .service(web::resource("/agent/api/conversations/{task}/close").route(web::post().to(close)));
}

async fn incoming(
    request: HttpRequest,
    form: Result<Form, FormError>,
    sms: web::Data<Sms>,
    webhooks: web::Data<Webhooks>,
) -> HttpResponse {
    let params = match signed_params(&request, form, &webhooks) {
        Ok((form, query)) => MessageParams::from_params(&[form, query].concat()),
        Err(refused) => return refused,
    };
    if params.from.is_empty() || params.to.is_empty() {
        return twiml(StatusCode::BAD_REQUEST, &refusal("From and To are required."));
    }
    // The MessageSid is what tells a retry (or a replay) from a new text.
    if params.message_sid.is_empty() {
        return twiml(StatusCode::BAD_REQUEST, &refusal("MessageSid is missing."));
    }
    match sms.incoming(&params, live::now()).await {
        Ok(response) => twiml(StatusCode::OK, &response),
        Err(err) => {
            tracing::error!(from = %params.from, %err, "incoming text failed");
            let sorry = "Sorry, we cannot take your message right now. Please try again later.";
            let message = Verb::Message(crate::ivr::message(sorry.to_owned()));
            twiml(StatusCode::INTERNAL_SERVER_ERROR, &Response::new(vec![message]))
        }
    }
}

/// The task SID of a conversation request, once the request's credentials are checked.
struct ConversationTask(Sid);

impl FromRequest for ConversationTask {
    type Error = actix_web::Error;
    type Future = Ready<Result<ConversationTask, actix_web::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let refused =
            |error: ApiError| InternalError::from_response("refused", error.error_response()).into();
        let text = request.match_info().get("task").unwrap_or_default();
        let task = match super::agent::task_sid(text) {
            Ok(task) => task,
            Err(error) => return ready(Err(refused(error))),
        };
        // An agent signed in on the agent page reaches only the conversations they took.
        let agent = match request.cookie(AGENT_COOKIE).map(|_| checked_session(request, Role::Agent)) {
            None => None,
            Some(Ok((session, _))) => Sid::parse(&session.subject, SidKind::Worker).ok(),
            // An ended session, or a write without its CSRF token.
            Some(Err(refusal)) => return ready(Err(refused(refusal))),
        };
        if let Some(worker) = agent {
            let engine = request.app_data::<web::Data<LiveEngine>>();
            let took =
                engine.is_some_and(|engine| engine.read(|engine| engine.worker_took_task(worker, task)));
            return ready(if took {
                Ok(ConversationTask(task))
            } else {
                Err(refused(ApiError::new(StatusCode::FORBIDDEN, "this conversation is another agent's")))
            });
        }
        ready(
            Authenticated::from_request(request, payload)
                .into_inner()
                .map(|Authenticated| ConversationTask(task)),
        )
    }
}

async fn conversation(ConversationTask(task): ConversationTask, sms: web::Data<Sms>) -> HttpResponse {
    match sms.conversation(task).await {
        Ok(view) => HttpResponse::Ok().json(render(&view)),
        Err(err) => error(err),
    }
}

/// Server-sent events: `ready` once connected, then `message` for each new message (with its
/// delivery, for a reply) and `delivery` for each change of a reply's delivery, as JSON; a
/// comment every 15 s keeps proxies from closing an idle stream. The stream ends when the
/// server stops, and as soon as the session it was opened with ends.
async fn events(
    request: HttpRequest,
    ConversationTask(task): ConversationTask,
    sms: web::Data<Sms>,
) -> HttpResponse {
    // The session that let the request in: the agent's (checked first), else the admin's.
    let role = if request.cookie(AGENT_COOKIE).is_some() { Role::Agent } else { Role::Admin };
    let session = match SessionWatch::of(&request, role) {
        Ok(session) => session,
        Err(refused) => return refused.error_response(),
    };
    if let Err(err) = sms.check_conversation(task).await {
        return error(err);
    }
    let receiver = sms.subscribe();
    let sms = sms.into_inner();
    let ready = stream::once(std::future::ready(Ok::<_, Infallible>(Bytes::from_static(
        b"event: ready\ndata: {}\n\n",
    ))));
    // A fixed beat, which events for other conversations do not reset.
    let mut beat = tokio::time::interval(KEEP_ALIVE);
    beat.reset();
    let state = (receiver, sms, beat, session);
    let changes = stream::unfold(state, move |(mut receiver, sms, mut beat, mut session)| async move {
        loop {
            let chunk = tokio::select! {
                biased;
                () = sms.stopping() => return None,
                () = session.ended() => return None,
                _ = beat.tick() => Bytes::from_static(b": keep-alive\n\n"),
                next = receiver.recv() => match next {
                    Ok(event) if event.task == task => Bytes::from(sse(&event)),
                    Ok(_) => continue,
                    // Too slow a reader missed some: it should read the conversation again.
                    Err(RecvError::Lagged(_)) => Bytes::from_static(b"event: lagged\ndata: {}\n\n"),
                    Err(RecvError::Closed) => return None,
                },
            };
            if !session.holds() {
                return None;
            }
            return Some((Ok(chunk), (receiver, sms, beat, session)));
        }
    });
    super::metrics::event_stream(&request, ready.chain(changes))
}

/// How often an idle event stream says it is alive.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

fn sse(event: &ConversationEvent) -> String {
    let (name, data) = match &event.message {
        Some(message) => (
            "message",
            json!({
                "date_created": date(message.at),
                "author": message.author,
                "body": message.body,
                "media": message.media.iter().map(media).collect::<Vec<_>>(),
                "delivery": event.delivery.as_ref().map(delivery),
            }),
        ),
        None => ("delivery", event.delivery.as_ref().map(delivery).unwrap_or(Value::Null)),
    };
    format!("event: {name}\ndata: {data}\n\n")
}

async fn reply(ConversationTask(task): ConversationTask, form: Form, sms: web::Data<Sms>) -> HttpResponse {
    let media: Vec<String> = form.all("MediaUrl").map(str::to_owned).collect();
    let Some(body) = form.get("Body").or(if media.is_empty() { None } else { Some("") }) else {
        return ApiError::new(StatusCode::BAD_REQUEST, "Body (or MediaUrl) is required (form-encoded)")
            .error_response();
    };
    match sms.reply(task, body, &media, live::now()).await {
        Ok(entry) => HttpResponse::Created().json(delivery(&entry)),
        Err(err) => error(err),
    }
}

async fn close(ConversationTask(task): ConversationTask, form: Form, sms: web::Data<Sms>) -> HttpResponse {
    let disposition = form.get("Disposition").filter(|code| !code.is_empty());
    match sms.close(task, disposition, live::now()).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(err) => error(err),
    }
}

fn error(err: SmsError) -> HttpResponse {
    let status = match &err {
        SmsError::NotFound(_) => StatusCode::NOT_FOUND,
        SmsError::Conflict(_) => StatusCode::CONFLICT,
        SmsError::Invalid(_) => StatusCode::BAD_REQUEST,
        SmsError::Storage(_) | SmsError::Damaged(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, err.to_string()).error_response()
}

fn render(view: &ConversationView) -> Value {
    let conversation = &view.conversation;
    let messages: Vec<Value> = view
        .messages
        .iter()
        .map(|message| {
            json!({
                "date_created": date(message.at),
                "author": message.author,
                "body": message.body,
                "media": message.media.iter().map(media).collect::<Vec<_>>(),
                "delivery": message.outbox.and_then(|id| view.deliveries.get(&id)).map(delivery),
            })
        })
        .collect();
    json!({
        "task_sid": view.task.to_string(),
        "customer": conversation.customer,
        "number": conversation.number,
        "opted_out": conversation.stopped,
        "messages": messages,
    })
}

fn media(media: &MediaV1) -> Value {
    json!({"url": media.url, "content_type": media.content_type})
}

fn delivery(entry: &OutboxV1) -> Value {
    json!({
        "id": entry.id,
        "status": entry.status,
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "provider_sid": entry.provider_sid,
        "body": entry.body,
    })
}
