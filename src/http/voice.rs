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
    AgentLeg,
    Conference,
    ConferenceEnded,
    Recording,
    /// An outbound call's customer answered.
    Outbound,
    /// The provider's fallback URL, requested when a webhook failed (a failover, say): the
    /// webhook it names in `ErrorUrl` is answered now, or else an apology.
    Fallback,
}

/// Every voice webhook, by path.
const HOOKS: [(&str, Hook); 12] = [
    (paths::INCOMING, Hook::Incoming),
    (paths::IVR, Hook::Ivr),
    (paths::WAIT, Hook::Wait),
    (paths::DIAL_STATUS, Hook::DialStatus),
    (paths::STATUS, Hook::Status),
    (paths::VOICEMAIL, Hook::Voicemail),
    (paths::AGENT_LEG, Hook::AgentLeg),
    (paths::CONFERENCE, Hook::Conference),
    (paths::CONFERENCE_ENDED, Hook::ConferenceEnded),
    (paths::RECORDING, Hook::Recording),
    (paths::OUTBOUND, Hook::Outbound),
    (paths::FALLBACK, Hook::Fallback),
];

pub(super) fn routes(config: &mut web::ServiceConfig) {
    for (path, hook) in HOOKS {
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
    mut hook: Hook,
    request: HttpRequest,
    form: Result<Form, FormError>,
    voice: Arc<Voice>,
    webhooks: Arc<Webhooks>,
) -> HttpResponse {
    let (params, mut query) = match signed_params(&request, form, &webhooks) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    if hook == Hook::Fallback {
        // The provider signed these parameters, `ErrorUrl` among them: the URL it failed to
        // fetch, as Switchboard's TwiML gave it (with the IVR position in its query).
        let failed = params.iter().find(|(name, _)| name == "ErrorUrl").map(|(_, url)| url.as_str());
        match failed.and_then(failed_webhook) {
            Some((failed_hook, failed_query)) => (hook, query) = (failed_hook, failed_query),
            None => return twiml(StatusCode::OK, &technical_difficulty()),
        }
    }
    // The provider's parameters, then what Switchboard put in the URL (the IVR position).
    let mut call = CallParams::from_params(&[params, query].concat());
    // A conference's own events (start, end) are about no call.
    if call.call_sid.is_empty() && hook != Hook::Conference {
        return twiml(StatusCode::BAD_REQUEST, &refusal("CallSid is missing."));
    }
    let now = live::now();
    let answered = match hook {
        Hook::Incoming => voice.incoming(&call, now).await,
        Hook::Ivr => {
            let place = call.ivr.take();
            voice.ivr(&call, place, now).await
        }
        Hook::Wait => voice.wait(&call, now).await,
        Hook::DialStatus => voice.dial_status(&call, now).await,
        Hook::Status => voice.status(&call, now).await,
        Hook::Voicemail => voice.voicemail(&call, now).await,
        Hook::AgentLeg => voice.agent_leg(&call, now).await,
        Hook::Conference => voice.conference_event(&call, now).await,
        Hook::ConferenceEnded => voice.conference_ended(&call, now).await,
        Hook::Recording => voice.recording(&call, now).await,
        Hook::Outbound => voice.outbound_answered(&call, now).await,
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
/// The webhook at `url` (a URL the provider failed to fetch), and its query.
fn failed_webhook(url: &str) -> Option<(Hook, Pairs)> {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path_and_query = &after_scheme[after_scheme.find('/')?..];
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let hook = HOOKS.iter().find(|(hook_path, hook)| *hook_path == path && *hook != Hook::Fallback)?.1;
    Some((hook, decode(query.split('#').next().unwrap_or_default().as_bytes()).ok()?))
}

pub(super) fn signed_params(
    request: &HttpRequest,
    form: Result<Form, FormError>,
    webhooks: &Webhooks,
) -> Result<(Pairs, Pairs), HttpResponse> {
    let is_post = request.method() == Method::POST;
    let params = match form {
        Ok(Form(params)) if is_post => params,
        Ok(_) => Vec::new(),
        Err(err) => return Err(form_refusal(&err)),
    };
    let query = decode(request.query_string().as_bytes()).map_err(|err| form_refusal(&err))?;
    if !webhooks.validate_signatures {
        tracing::warn!(path = %request.path(), "webhook accepted WITHOUT a signature check: twilio.validate_signatures is false");
        return Ok((params, query));
    }
    let base = super::origin::base_url(request, &webhooks.public_url);
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

/// A webhook's parameters refused (400, 413, 415), as TwiML saying why.
pub(super) fn form_refusal(err: &FormError) -> HttpResponse {
    twiml(err.status(), &refusal(&format!("{}.", capitalized(&err.to_string()))))
}

/// A refusal the caller would hear, should the provider play it.
pub(super) fn refusal(text: &str) -> Response {
    Response::new(vec![Verb::Say(Say { text: text.to_owned(), ..Say::default() }), Verb::Hangup])
}

pub(super) fn twiml(status: StatusCode, response: &Response) -> HttpResponse {
    HttpResponse::build(status).content_type("application/xml").body(response.to_xml())
}

/// What any webhook request must do when its parameters are read: the check behind the
/// webhook fuzz target, shared by the proptest target (`tests`) and cargo fuzz's `webhook`
/// target (`crate::fuzzing`, `fuzz/`). Reading never panics: a request is refused with a 400
/// (not URL-encoded) or a 403 (not signed) as TwiML, or its parameters reach the voice and text
/// webhooks; a request signed as the provider signs is never refused.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzz {
    use actix_web::HttpRequest;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use actix_web::http::{Method, StatusCode, Uri};
    use actix_web::test::TestRequest;
    use proptest::prelude::*;

    use super::{CallParams, Form, Webhooks, decode, signed_params};
    use crate::http::signature;
    use crate::sms::MessageParams;

    const TOKEN: &str = "fuzz-auth-token";
    const PUBLIC_URL: &str = "https://switchboard.example";

    /// A request to the IVR webhook as a client may send it.
    #[derive(Debug, Clone)]
    pub(crate) struct WebhookRequest {
        /// A POST with `body` as its form, or a GET.
        pub(crate) post: bool,
        pub(crate) body: Vec<u8>,
        /// The query string, after `?`.
        pub(crate) query: String,
        /// `X-Twilio-Signature`, unless the request is signed as the provider signs.
        pub(crate) signature_header: Vec<u8>,
        /// `X-Forwarded-Host` (ignored: no proxy is trusted here).
        pub(crate) forwarded: Vec<u8>,
        /// Signed with the auth token over the public URL, as the provider signs.
        pub(crate) sign_as_provider: bool,
        /// No public URL is set: the signed URL is the request's own Host.
        pub(crate) behind_proxy: bool,
    }

    /// The webhooks read `given`'s parameters, or refuse it as this module's comment says.
    pub(crate) fn check_request(given: &WebhookRequest) -> Result<(), TestCaseError> {
        let &WebhookRequest {
            post,
            ref body,
            ref query,
            ref signature_header,
            ref forwarded,
            sign_as_provider,
            behind_proxy,
        } = given;
        // The path and query as the request carries them (HTTP refuses some URIs before the
        // handler): a fragment (`#...`) is never sent, so a provider never signs it.
        let Ok(uri) = Uri::try_from(format!("{}?{query}", crate::voice::paths::IVR)) else { return Ok(()) };
        let sent = uri.path_and_query().map_or(crate::voice::paths::IVR, |sent| sent.as_str());
        let query = uri.query().unwrap_or_default();
        let webhooks = Webhooks {
            auth_token: TOKEN.to_owned(),
            validate_signatures: true,
            // Empty: the URL is the request's own scheme and Host.
            public_url: if behind_proxy { String::new() } else { PUBLIC_URL.to_owned() },
        };
        // Decoded strictly, as every route reads its parameters (`http::form`).
        let decoded = if post { decode(body) } else { Ok(Vec::new()) };
        let decodes = decoded.is_ok() && decode(query.as_bytes()).is_ok();
        let signature = match (&decoded, sign_as_provider) {
            (Ok(params), true) if !behind_proxy => {
                let url = format!("{}{sent}", webhooks.public_url);
                signature::sign(TOKEN, &url, params).into_bytes()
            }
            _ => signature_header.clone(),
        };
        let headers = [("x-twilio-signature", signature), ("x-forwarded-host", forwarded.clone())];
        let Some(request) = request(post, sent, &headers) else { return Ok(()) };

        for validate_signatures in [false, true] {
            let webhooks = Webhooks { validate_signatures, ..webhooks.clone() };
            let form = if post { decode(body).map(Form) } else { Ok(Form(Vec::new())) };
            match signed_params(&request, form, &webhooks) {
                Ok((form, query)) => {
                    prop_assert!(decodes);
                    let params = [form, query].concat();
                    // The first value of a name counts, as the webhooks read it.
                    let first = |name: &str| {
                        params.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone())
                    };
                    let call = CallParams::from_params(&params);
                    prop_assert_eq!(call.call_sid, first("CallSid").unwrap_or_default());
                    prop_assert_eq!(call.digits, first("Digits"));
                    let message = MessageParams::from_params(&params);
                    prop_assert_eq!(message.body, first("Body").unwrap_or_default());
                }
                Err(refused) => {
                    let expected = if !decodes { StatusCode::BAD_REQUEST } else { StatusCode::FORBIDDEN };
                    prop_assert_eq!(refused.status(), expected);
                    let content_type = refused.headers().get("content-type").map(HeaderValue::as_bytes);
                    prop_assert_eq!(content_type, Some(&b"application/xml"[..]), "a refusal is TwiML");
                    prop_assert!(validate_signatures || !decodes, "refused without a signature check");
                    let signed_as_provider = sign_as_provider && !behind_proxy;
                    prop_assert!(!(signed_as_provider && decodes), "a provider's signature was refused");
                }
            }
        }
        Ok(())
    }

    /// Builds the request to `uri` (path and query) as actix-web would hand it over, or `None`
    /// when HTTP itself refuses a header.
    fn request(post: bool, uri: &str, headers: &[(&'static str, Vec<u8>)]) -> Option<HttpRequest> {
        let mut request =
            TestRequest::default().method(if post { Method::POST } else { Method::GET }).uri(uri);
        for (name, value) in headers {
            let value = HeaderValue::from_bytes(value).ok()?;
            request = request.insert_header((HeaderName::from_static(name), value));
        }
        Some(request.to_http_request())
    }
}

#[cfg(test)]
mod tests {
    //! Fuzz target of the webhooks' parameters (see `crate::fuzzing`): arbitrary form bodies,
    //! query strings, signatures and forwarding headers. Reading them never panics: a request
    //! is refused with a 400 (not URL-encoded) or a 403 (not signed), or its parameters reach
    //! the voice and text webhooks; a request signed as the provider signs is never refused.

    use proptest::prelude::*;

    use crate::fuzzing::{self, awkward_text};
    use crate::http::voice::fuzz::{WebhookRequest, check_request};

    #[test]
    fn a_fragment_is_not_part_of_what_the_provider_signs() {
        // Found by cargo fuzz's `webhook` target: the check signed `?query#fragment` whole,
        // while a request carries (and a provider signs) only what comes before the `#`.
        let request = WebhookRequest {
            post: true,
            body: b"Digits=1".to_vec(),
            query: "flow=main.toml&menu=main&From=#%2B15550100".to_owned(),
            signature_header: Vec::new(),
            forwarded: Vec::new(),
            sign_as_provider: true,
            behind_proxy: false,
        };
        check_request(&request).unwrap();
    }

    /// Names the webhooks read, and others.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(vec![
                "CallSid", "From", "To", "Digits", "CallStatus", "DialCallStatus", "RecordingUrl",
                "RecordingDuration", "flow", "menu", "failures", "language", "path", "MessageSid", "Body",
            ])
            .prop_map(str::to_owned),
            1 => awkward_text(),
        ]
    }

    /// `name=value` text: encoded as providers do, with broken escapes, bare separators and
    /// values meant to overflow the numbers read from them.
    fn encoded_pairs() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            3 => awkward_text(),
            1 => prop::sample::select(vec!["4294967296", "-1", "99999999999999999999", "1,2,,3"])
                .prop_map(str::to_owned),
        ];
        let pair = (name(), value).prop_map(|pair| serde_urlencoded::to_string([pair]).unwrap_or_default());
        let junk = prop::sample::select(vec!["%", "%zz", "%ff%fe", "%C3", "+", "&", "=", "==", ";", "%00"])
            .prop_map(str::to_owned);
        prop::collection::vec(prop_oneof![4 => pair, 1 => junk], 0..8).prop_map(|pieces| pieces.join("&"))
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => encoded_pairs().prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..120),
        ]
    }

    /// A header as a client may send it: well formed or any bytes (the ones HTTP allows reach
    /// the handler; the others are refused before it and are skipped here).
    fn header_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            2 => awkward_text().prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..40),
        ]
    }

    proptest! {
        #![proptest_config(fuzzing::config(1_000))]

        /// Fuzz target (see `crate::fuzzing` and this module's comment).
        #[test]
        fn fuzz_webhook_parameters_and_signatures(
            post in any::<bool>(),
            body in body(),
            query in encoded_pairs(),
            signature_header in header_value(),
            forwarded in header_value(),
            sign_as_provider in any::<bool>(),
            behind_proxy in any::<bool>(),
        ) {
            check_request(&WebhookRequest {
                post,
                body,
                query,
                signature_header,
                forwarded,
                sign_as_provider,
                behind_proxy,
            })?;
        }
    }
}
