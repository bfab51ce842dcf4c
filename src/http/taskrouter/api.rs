//! The start of every API request: credentials checked, workspace and path SIDs resolved,
//! query parsed. Being an extractor, a handler cannot forget the credential check: it has no
//! other way to reach the engine.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use base64::Engine as _;

use super::error::TwilioError;
use super::params::Params;
use super::render::{List, Renderer};
use crate::config::{Credentials, EventSettings};
use crate::http::Webhooks;
use crate::http::throttle::{Refused, SignInThrottle};
use crate::live::{self, LiveEngine, Once};
use crate::routing::{Command, Engine, Sid, SidKind};

/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// An authenticated request to one workspace.
pub(crate) struct Api {
    pub engine: web::Data<LiveEngine>,
    credentials: web::Data<Credentials>,
    /// The event callback settings, which the workspace shows until the API sets its own.
    events: web::Data<EventSettings>,
    request: HttpRequest,
    /// `voice.public_url`, or else `scheme://host` as the client reached us.
    base: String,
    pub query: Params,
    /// Commands executed so far for this request: each has its own idempotency key.
    executed: std::cell::Cell<u32>,
}

impl FromRequest for Api {
    type Error = TwilioError;
    type Future = Ready<Result<Api, TwilioError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Api::new(request))
    }
}

impl Api {
    fn new(request: &HttpRequest) -> Result<Api, TwilioError> {
        let (Some(engine), Some(credentials)) =
            (request.app_data::<web::Data<LiveEngine>>(), request.app_data::<web::Data<Credentials>>())
        else {
            // Wiring mistake, not a client's: no credentials configured means nothing is served.
            return Err(TwilioError::unauthorized("the REST API has no credentials configured"));
        };
        authenticate(request, credentials)?;
        // Behind a proxy, the configured public URL is the address clients reach us at.
        let public_url =
            request.app_data::<web::Data<Webhooks>>().map(|webhooks| webhooks.public_url.as_str());
        let base = crate::http::origin::base_url(request, public_url.unwrap_or_default());
        let events = request.app_data::<web::Data<EventSettings>>().cloned();
        let api = Api {
            engine: engine.clone(),
            credentials: credentials.clone(),
            events: events.unwrap_or_else(|| web::Data::new(EventSettings::default())),
            request: request.clone(),
            base,
            query: Params::parse(request.query_string().as_bytes())?,
            executed: std::cell::Cell::new(0),
        };
        if let Some(workspace) = request.match_info().get("workspace")
            && workspace != api.engine.read(|engine| engine.workspace_sid()).to_string()
        {
            return Err(api.not_found());
        }
        Ok(api)
    }

    /// Executes `command` (answering once it is durable); `parameters` are the SIDs the body
    /// named, so that an unknown one is reported as a bad parameter.
    ///
    /// With an `Idempotency-Key` header (or Twilio's `I-Twilio-Idempotency-Token`), a request
    /// that ran before with the same key on the same route runs no more: it answers what the
    /// first one made (a retry after a failover, or after a lost answer, creates nothing twice).
    pub(crate) async fn execute(
        &self,
        command: Command,
        parameters: &[(&str, Option<Sid>)],
    ) -> Result<Option<Sid>, TwilioError> {
        let refused = |err| TwilioError::from_command(err, parameters);
        let Some(key) = self.idempotency_key()? else {
            return self.engine.execute(command).await.map_err(refused);
        };
        match self.engine.execute_once(command, key).await.map_err(refused)? {
            Once::Ran(created) => Ok(created),
            Once::Repeated(created) => {
                self.request.extensions_mut().insert(crate::http::Replayed);
                Ok(created)
            }
            Once::Conflict => Err(TwilioError::invalid(
                "Idempotency-Key: this key was used for another request on this route; use a new key for a new request",
            )
            .with_status(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY)),
        }
    }

    /// The request's idempotency key, scoped to its route.
    fn idempotency_key(&self) -> Result<Option<String>, TwilioError> {
        let headers = self.request.headers();
        let Some(value) =
            headers.get("idempotency-key").or_else(|| headers.get("i-twilio-idempotency-token"))
        else {
            return Ok(None);
        };
        match value.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY => {
                // A request may run more than one command (a worker's attributes, then its
                // activity): each is done once, under the key and its place in the request.
                let place = self.executed.replace(self.executed.get() + 1);
                Ok(Some(format!("{} {} {place} {key}", self.request.method(), self.request.path())))
            }
            _ => Err(TwilioError::invalid(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters, such as a UUID"
            ))),
        }
    }

    /// The SID in path segment `name`; a malformed one is a resource that does not exist.
    pub(crate) fn path_sid(&self, name: &str, kind: SidKind) -> Result<Sid, TwilioError> {
        Sid::parse(self.path_text(name), kind).map_err(|_| self.not_found())
    }

    /// Path segment `name` as given (a task channel's SID or unique name), decoded.
    pub(crate) fn path_text(&self, name: &str) -> &str {
        self.request.match_info().get(name).unwrap_or_default()
    }

    /// Whether the request's path ends with `suffix`.
    pub(crate) fn path_ends_with(&self, suffix: &str) -> bool {
        self.request.path().ends_with(suffix)
    }

    pub(crate) fn not_found(&self) -> TwilioError {
        TwilioError::not_found(self.request.path())
    }

    /// A list request for this path: its resource key, the query's filters and page.
    pub(crate) fn list(&self, key: &'static str) -> Result<List<'_>, TwilioError> {
        Ok(List {
            key,
            path: self.request.path(),
            filters: self.query.filters(),
            paging: self.query.paging()?,
        })
    }

    /// Runs `render` over the engine's state with a renderer for this request.
    pub(crate) fn render<R>(&self, render: impl FnOnce(&Renderer<'_>) -> R) -> R {
        let now = live::now();
        self.engine.read(|engine: &Engine| {
            let account_sid = &self.credentials.account_sid;
            render(&Renderer { engine, base: &self.base, account_sid, events: &self.events, now })
        })
    }
}

/// HTTP Basic auth: the account SID as user name, the auth token as password, as Twilio's
/// SDKs send them.
pub(crate) fn authenticate(request: &HttpRequest, credentials: &Credentials) -> Result<(), TwilioError> {
    use crate::http::session::{from_browser, is_admin_session, sent_by_another_site};
    let header = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    // The scheme name is case-insensitive (RFC 7617).
    let encoded = header
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, encoded)| encoded);
    // The admin page signs in once and then sends its session cookie instead.
    if header.is_none() {
        match is_admin_session(request) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(refused) => return Err(TwilioError::session_refused(&refused)),
        }
    }
    // A browser is never challenged (it would prompt, then send the credentials with every
    // request), and credentials it sends anyway do not count on another site's request.
    let unauthorized = |message: &str| {
        let error = TwilioError::unauthorized(message);
        if from_browser(request) { error.without_challenge() } else { error }
    };
    let Some(encoded) = encoded else {
        // Signed in as an agent or supervisor, who may not change the configuration.
        if crate::http::session::is_agent_session(request) {
            let forbidden = crate::http::ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "the admin's API: an agent's or supervisor's session cannot use it",
            );
            return Err(TwilioError::session_refused(&forbidden));
        }
        return Err(unauthorized(
            "Authentication Error - No credentials provided (HTTP Basic auth: account SID and auth token)",
        ));
    };
    if sent_by_another_site(request) {
        return Err(unauthorized(
            "Authentication Error - credentials sent by another site's page are not accepted",
        ));
    }
    // Wrong credentials are throttled per client address (`throttle.rs`): while it must wait,
    // none are checked, the right ones included.
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).unwrap_or_default();
    let (user, password) =
        std::str::from_utf8(&decoded).ok().and_then(|text| text.split_once(':')).unwrap_or_default();
    let right = || credentials_match(credentials, user, password);
    let client = crate::http::origin::origin(request).client;
    let checked = match request.app_data::<web::Data<SignInThrottle>>() {
        Some(throttle) => throttle.api(client, live::now(), right),
        None => {
            if right() {
                Ok(())
            } else {
                Err(Refused::Wrong { wait: None })
            }
        }
    };
    match checked {
        Ok(()) => Ok(()),
        Err(Refused::Wait(wait)) => Err(TwilioError::too_many_failures(wait)),
        Err(Refused::Wrong { wait }) => {
            if let Some(wait_ms) = wait {
                tracing::warn!(?client, wait_ms, "wrong API credentials: the next attempt waits");
            }
            Err(unauthorized("Authentication Error - invalid username or auth token"))
        }
    }
}

/// Whether `user` and `password` are the account's SID and auth token. Both are compared,
/// each in constant time, so that the time says neither which one is wrong nor where.
pub(crate) fn credentials_match(credentials: &Credentials, user: &str, password: &str) -> bool {
    let user_ok = constant_time_eq(user.as_bytes(), credentials.account_sid.as_bytes());
    let password_ok = constant_time_eq(password.as_bytes(), credentials.auth_token.as_bytes());
    user_ok & password_ok
}

/// Equality whose time depends only on `expected`'s length, not on `given` nor on where the
/// two differ, so that a token cannot be guessed byte by byte from response times.
pub(crate) fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (idx, byte) in expected.iter().enumerate() {
        difference |= byte ^ given.get(idx).copied().unwrap_or(!byte);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_equality() {
        for (a, b, expected) in
            [("", "", true), ("abc", "abc", true), ("abc", "abd", false), ("abc", "ab", false)]
        {
            assert_eq!(constant_time_eq(a.as_bytes(), b.as_bytes()), expected, "{a} {b}");
        }
    }
}
