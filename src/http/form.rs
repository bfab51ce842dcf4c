//! Form bodies and query strings (`application/x-www-form-urlencoded`), read strictly: every
//! route that takes parameters reads them here, so that all of them refuse the same things with
//! the same messages, each area in its own shape (TwiML, Twilio's JSON, `{"status", "message"}`:
//! [`refusal`]).
//!
//! - The body has already been read whole by `framing.rs`, which refuses one over
//!   `http.max_body_bytes` (413) or one that did not arrive as its framing says (400) before
//!   any route runs.
//! - A non-empty body must say it is a form (`Content-Type`, 415) and must not be JSON (400).
//! - Every `%` must start a two-hex-digit escape, and every decoded name and value must be
//!   UTF-8 (400): a lenient decoder would turn such bytes into U+FFFD or keep them literally,
//!   and store what nobody sent.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};

use super::ApiError;
use super::framing::FramingError;
use super::taskrouter::error::TwilioError;

/// Decoded `name=value` pairs, in the order received (a name may repeat).
pub(crate) type Pairs = Vec<(String, String)>;

const FORM_TYPE: &str = "application/x-www-form-urlencoded";

/// Why a request's parameters are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormError {
    /// The body is too large, or did not arrive as its framing says (`framing.rs`).
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// A non-empty body sent as something other than a form.
    #[error("the body must be form-encoded (Content-Type: {FORM_TYPE}), not {given}")]
    ContentType { given: String },
    /// A JSON document where a form was expected.
    #[error("the body is JSON; send the parameters form-encoded ({FORM_TYPE}), as Twilio's API takes them")]
    Json,
    /// A `%` not followed by two hex digits.
    #[error("the parameters are not URL-encoded: `%` at byte {at} is not followed by two hex digits")]
    Percent { at: usize },
    /// A name or value that is not UTF-8 once percent-decoded.
    #[error("the parameters are not URL-encoded UTF-8 text: the name or value at byte {at} is not")]
    NotUtf8 { at: usize },
}

impl FormError {
    /// The HTTP status that answers this refusal.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            FormError::Framing(err) => err.status(),
            FormError::ContentType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            FormError::Json | FormError::Percent { .. } | FormError::NotUtf8 { .. } => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

/// `err` answered in the shape of the area that `path` is in: TwiML for the provider's webhooks
/// (`voice.rs`), Twilio's error JSON for the REST API (`TwilioError`), `{"status", "message"}`
/// for the rest. The routes map the refusals of their own parameters the same way; this is for
/// refusals made before any route runs (`framing.rs`).
pub(super) fn refusal(path: &str, err: FormError) -> HttpResponse {
    if path.starts_with("/voice/") || path.starts_with("/sms/") {
        super::voice::form_refusal(&err)
    } else if path.starts_with("/v1/") {
        TwilioError::from(err).error_response()
    } else {
        err.error_response()
    }
}

/// The agent and admin APIs' shape; the webhooks and the REST API map it to theirs.
impl ResponseError for FormError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        ApiError::new(self.status(), self.to_string()).error_response()
    }
}

/// A request's form body, decoded; empty when the request has no body.
#[derive(Debug, Default)]
pub(crate) struct Form(pub Pairs);

impl Form {
    /// The last value given for `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Every value given for `name`, in order (`MediaUrl`, repeated).
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0.iter().filter(move |(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

impl FromRequest for Form {
    type Error = FormError;
    type Future = Pin<Box<dyn Future<Output = Result<Form, FormError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = request.headers().get(header::CONTENT_TYPE);
        let content_type = content_type.map(|value| value.to_str().unwrap_or("?").to_owned());
        let body = web::Payload::from_request(request, payload).into_inner();
        Box::pin(async move {
            // In memory already, its size and framing checked (`framing.rs`).
            let unread = |err: actix_web::Error| FramingError::Read(err.to_string());
            let body = body.map_err(unread)?.to_bytes().await.map_err(unread)?;
            body_pairs(content_type.as_deref(), &body).map(Form)
        })
    }
}

/// The parameters of a request body sent with `content_type`.
fn body_pairs(content_type: Option<&str>, body: &[u8]) -> Result<Pairs, FormError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let essence = content_type.map(|given| given.split(';').next().unwrap_or_default().trim());
    if !essence.is_some_and(|essence| essence.eq_ignore_ascii_case(FORM_TYPE)) {
        let given = content_type.map_or_else(|| "no Content-Type".to_owned(), str::to_owned);
        return Err(FormError::ContentType { given });
    }
    if matches!(body.trim_ascii_start().first(), Some(b'{' | b'[')) {
        return Err(FormError::Json);
    }
    decode(body)
}

/// Decodes form-encoded text (a body or a query string): `&`-separated `name=value` pairs, `+`
/// for a space, `%XX` escapes; empty pieces are skipped, as browsers and Twilio do.
pub(crate) fn decode(encoded: &[u8]) -> Result<Pairs, FormError> {
    let mut pairs = Vec::new();
    let mut at = 0;
    for piece in encoded.split(|&byte| byte == b'&') {
        if !piece.is_empty() {
            let (name, value) = match piece.iter().position(|&byte| byte == b'=') {
                Some(equals) => (&piece[..equals], &piece[equals + 1..]),
                None => (piece, &[][..]),
            };
            pairs.push((unescape(name, at)?, unescape(value, at + name.len() + 1)?));
        }
        at += piece.len() + 1;
    }
    Ok(pairs)
}

/// One name or value, found at byte `at` of the whole text. Runs without escapes are copied
/// whole: an IVR action URL carries a long value (the caller's variables) with none.
fn unescape(encoded: &[u8], at: usize) -> Result<String, FormError> {
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut idx = 0;
    while let Some(run) = memchr::memchr2(b'+', b'%', &encoded[idx..]) {
        decoded.extend_from_slice(&encoded[idx..idx + run]);
        idx += run;
        if encoded[idx] == b'+' {
            decoded.push(b' ');
            idx += 1;
            continue;
        }
        let digits = encoded.get(idx + 1..idx + 3).filter(|pair| pair.iter().all(u8::is_ascii_hexdigit));
        let byte = digits
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            .ok_or(FormError::Percent { at: at + idx })?;
        decoded.push(byte);
        idx += 3;
    }
    decoded.extend_from_slice(&encoded[idx..]);
    String::from_utf8(decoded).map_err(|_| FormError::NotUtf8 { at })
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    /// Reads `body` sent as `content_type`, rendering the pairs, or the status and the error.
    fn check(content_type: Option<&str>, body: &[u8], expected: &str) {
        let actual = match body_pairs(content_type, body) {
            Ok(pairs) => format!("{pairs:?}"),
            Err(err) => format!("{} {err:?}", err.status().as_u16()),
        };
        assert_eq!(actual, expected, "{}", String::from_utf8_lossy(body));
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn forms_are_read_strictly() {
        check(FORM, b"A=1&B=x+y%20z&A=2", r#"[("A", "1"), ("B", "x y z"), ("A", "2")]"#);
        check(FORM, b"&&A&=v&", r#"[("A", ""), ("", "v")]"#);
        check(FORM, "Body=%C3%BC%F0%9F%8E%89ü".as_bytes(), r#"[("Body", "ü🎉ü")]"#);
        check(Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"), b"A=1", r#"[("A", "1")]"#);
        check(None, b"", "[]");
        check(Some("application/json"), b"", "[]");
        check(FORM, b"A=%ZZ", "400 Percent { at: 2 }");
        check(FORM, b"A=1&B%", "400 Percent { at: 5 }");
        check(FORM, b"A=%+1", "400 Percent { at: 2 }");
        check(FORM, b"A=1&B=\xFF", "400 NotUtf8 { at: 6 }");
        check(FORM, b"A=%FF", "400 NotUtf8 { at: 2 }");
        check(FORM, b"%C3=1", "400 NotUtf8 { at: 0 }");
        check(FORM, b" {\"A\": 1}", "400 Json");
        check(FORM, b"[1]", "400 Json");
        check(Some("application/json"), b"{}", r#"415 ContentType { given: "application/json" }"#);
        check(Some("text/plain"), b"A=1", r#"415 ContentType { given: "text/plain" }"#);
        check(None, b"A=1", r#"415 ContentType { given: "no Content-Type" }"#);
        check(Some("multipart/x; b=1"), b"--1", r#"415 ContentType { given: "multipart/x; b=1" }"#);
    }

    #[test]
    fn refusals_say_what_to_send() {
        let errors = [
            FormError::ContentType { given: "text/plain".into() },
            FormError::Json,
            FormError::Percent { at: 2 },
            FormError::NotUtf8 { at: 6 },
        ];
        let rendered: Vec<String> =
            errors.iter().map(|err| format!("{} {err}", err.status().as_u16())).collect();
        expect![[r#"
            415 the body must be form-encoded (Content-Type: application/x-www-form-urlencoded), not text/plain
            400 the body is JSON; send the parameters form-encoded (application/x-www-form-urlencoded), as Twilio's API takes them
            400 the parameters are not URL-encoded: `%` at byte 2 is not followed by two hex digits
            400 the parameters are not URL-encoded UTF-8 text: the name or value at byte 6 is not"#]]
        .assert_eq(&rendered.join("\n"));
    }
}
