//! The voice webhooks: every request's X-Twilio-Signature is checked against the public URL,
//! its parameters are read (form body for POST, query for GET), and the call's step in
//! [`crate::voice`] answers TwiML. Every answer is TwiML, refusals and failures included.

use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

use super::form::{Form, FormError, Pairs, decode};
use crate::live;
use crate::twiml::{Response, Say, Verb};
use crate::voice::{CallParams, Voice, paths, technical_difficulty};

/// How webhooks are authenticated.
#[derive(Clone)]
pub struct Webhooks {
    pub auth_token: String,
    pub validate_signatures: bool,
    /// Without a trailing slash; empty: `scheme://host` of each request.
    pub public_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    Incoming,
    Ivr,
    Wait,
    DialStatus,
    Status,
    Voicemail,
    /// Static TwiML for the provider's fallback URL (used when Switchboard failed to answer).
    Fallback,
}

pub(super) fn routes(config: &mut web::ServiceConfig) {
    let hooks = [
        (paths::INCOMING, Hook::Incoming),
        (paths::IVR, Hook::Ivr),
        (paths::WAIT, Hook::Wait),
        (paths::DIAL_STATUS, Hook::DialStatus),
        (paths::STATUS, Hook::Status),
        (paths::VOICEMAIL, Hook::Voicemail),
        (paths::FALLBACK, Hook::Fallback),
    ];
    for (path, hook) in hooks {
        let handler = move |request: HttpRequest,
                            form: Result<Form, FormError>,
                            voice: web::Data<Voice>,
                            webhooks: web::Data<Webhooks>| {
            handle(hook, request, form, voice.into_inner(), webhooks.into_inner())
        };
        config.service(
            web::resource(path).route(web::post().to(handler)).route(web::get().to(handler)).default_service(
                web::to(|| async {
                    twiml(StatusCode::METHOD_NOT_ALLOWED, &refusal("Webhooks are POST or GET requests."))
                }),
            ),
        );
    }
}

async fn handle(
    hook: Hook,
    request: HttpRequest,
    form: Result<Form, FormError>,
    voice: Arc<Voice>,
    webhooks: Arc<Webhooks>,
) -> HttpResponse {
    let (params, query) = match signed_params(&request, form, &webhooks) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    if hook == Hook::Fallback {
        return twiml(StatusCode::OK, &technical_difficulty());
    }
    // The provider's parameters, then what Switchboard put in the URL (the IVR position).
    let call = CallParams::from_params(&[params, query].concat());
    if call.call_sid.is_empty() {
        return twiml(StatusCode::BAD_REQUEST, &refusal("CallSid is missing."));
    }
    let now = live::now();
    let answered = match hook {
        Hook::Incoming => voice.incoming(&call, now).await,
        Hook::Ivr => voice.ivr(&call, now).await,
        Hook::Wait => voice.wait(&call, now).await,
        Hook::DialStatus => voice.dial_status(&call, now).await,
        Hook::Status => voice.status(&call, now).await,
        Hook::Voicemail => voice.voicemail(&call).await,
        Hook::Fallback => unreachable!("answered above"),
    };
    match answered {
        Ok(response) => twiml(StatusCode::OK, &response),
        Err(err) => {
            tracing::error!(call_sid = %call.call_sid, %err, "webhook failed");
            twiml(StatusCode::INTERNAL_SERVER_ERROR, &technical_difficulty())
        }
    }
}

/// A webhook's form (POST) and query parameters, once its X-Twilio-Signature is checked over
/// the public URL; or the TwiML refusal to answer (400, 403, 413, 415). The parameters are
/// read strictly (`form.rs`), before the signature, which is computed over them.
pub(super) fn signed_params(
    request: &HttpRequest,
    form: Result<Form, FormError>,
    webhooks: &Webhooks,
) -> Result<(Pairs, Pairs), HttpResponse> {
    let is_post = request.method() == Method::POST;
    let refused =
        |err: FormError| twiml(err.status(), &refusal(&format!("{}.", capitalized(&err.to_string()))));
    let params = match form {
        Ok(Form(params)) if is_post => params,
        Ok(_) => Vec::new(),
        Err(err) => return Err(refused(err)),
    };
    let query = decode(request.query_string().as_bytes()).map_err(refused)?;
    if !webhooks.validate_signatures {
        tracing::warn!(path = %request.path(), "webhook accepted WITHOUT a signature check: twilio.validate_signatures is false");
        return Ok((params, query));
    }
    let base = if webhooks.public_url.is_empty() {
        let info = request.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    } else {
        webhooks.public_url.clone()
    };
    let path_and_query = request.uri().path_and_query().map_or(request.path(), |pq| pq.as_str());
    let url = format!("{base}{path_and_query}");
    let signature = request.headers().get("X-Twilio-Signature").and_then(|value| value.to_str().ok());
    let signed: &[(String, String)] = if is_post { &params } else { &[] };
    let valid = signature
        .is_some_and(|signature| super::signature::is_valid(&webhooks.auth_token, &url, signed, signature));
    if !valid {
        tracing::warn!(
            %url,
            signed = signature.is_some(),
            "webhook refused: the X-Twilio-Signature does not match (is twilio.auth_token the account's token, and voice.public_url the URL the provider calls?)"
        );
        return Err(twiml(StatusCode::FORBIDDEN, &refusal("This request is not signed by the provider.")));
    }
    Ok((params, query))
}

/// `text` with its first letter in upper case, to be said as a sentence.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A refusal the caller would hear, should the provider play it.
pub(super) fn refusal(text: &str) -> Response {
    Response::new(vec![Verb::Say(Say { text: text.to_owned(), ..Say::default() }), Verb::Hangup])
}

pub(super) fn twiml(status: StatusCode, response: &Response) -> HttpResponse {
    HttpResponse::build(status).content_type("application/xml").body(response.to_xml())
}
