//! Browser sessions of the agent and admin pages: signing in (which sets an HttpOnly,
//! SameSite=Strict cookie), signing out, and the extractors that check them.
//!
//! - `POST /agent/api/session` (`Name`, `Secret`): an agent signs in with the secret the admin
//!   was given;
//! - `POST /admin/api/session` (`AccountSid`, `AuthToken`): the admin signs in. Both go through
//!   the sign-in throttle (`throttle.rs`): after a few failures, 429 with `Retry-After`;
//! - `GET /admin/api/session`: the signed-in admin's CSRF token, for a reloaded page;
//! - `DELETE` on either: signs out, for good (see `agents.rs` for every way a session ends).
//!
//! Every write made with a session cookie must carry the session's CSRF token in the
//! `X-CSRF-Token` header (the page reads it from the sign-in answer or its state): the cookie
//! alone, which a browser sends on a forged cross-site form too, is not enough.

use std::future::{Ready, ready};

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;
use tokio::sync::watch;

use super::ApiError;
use super::form::{Form, FormError};
use super::taskrouter::api::credentials_match;
use super::throttle::{Refused, SignInThrottle};
use crate::agents::{Agents, Role, Session, SessionRefusal};
use crate::config::Credentials;
use crate::live::{self, LiveEngine};
use crate::routing::{Millis, Sid, SidKind};

/// The session cookies' names, one per role: signing in on the agent page in a browser where
/// the admin page is open does not end the admin's session.
pub(super) const AGENT_COOKIE: &str = "switchboard_agent";
pub(super) const ADMIN_COOKIE: &str = "switchboard_admin";

fn cookie_name(role: Role) -> &'static str {
    match role {
        Role::Agent => AGENT_COOKIE,
        Role::Admin => ADMIN_COOKIE,
    }
}
/// How long a sign-in lasts: a long shift.
const SESSION_HOURS: i64 = 12;
pub(super) const CSRF_HEADER: &str = "X-CSRF-Token";

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/agent/api/session")
                .route(web::post().to(agent_sign_in))
                .route(web::delete().to(|request, engine| sign_out(request, Role::Agent, engine))),
        )
        .service(
            web::resource("/admin/api/session")
                .route(web::get().to(admin_session))
                .route(web::post().to(admin_sign_in))
                .route(web::delete().to(|request, engine| sign_out(request, Role::Admin, engine))),
        );
}

async fn agent_sign_in(
    request: HttpRequest,
    form: Result<Form, FormError>,
    engine: web::Data<LiveEngine>,
    agents: web::Data<Agents>,
    credentials: web::Data<Credentials>,
) -> HttpResponse {
    let form = match sign_in_form(&request, form) {
        Ok(form) => form,
        Err(refusal) => return refusal,
    };
    let (Some(name), Some(secret)) = (form.get("Name"), form.get("Secret")) else {
        return refused(StatusCode::BAD_REQUEST, "Name and Secret are required");
    };
    let worker = match throttled(&request, Role::Agent, name, "unknown name or wrong secret", || {
        agents.sign_in(&engine, name.trim(), secret.trim())
    }) {
        Ok(worker) => worker,
        Err(refusal) => return refusal,
    };
    let bound_to = agents.secret_digest(worker).unwrap_or_default();
    let name =
        engine.read(|engine| engine.worker(worker).map(|w| w.friendly_name.clone())).unwrap_or_default();
    signed_in(
        &request,
        Role::Agent,
        &worker.to_string(),
        &credentials.auth_token,
        &bound_to,
        json!({"friendly_name": name}),
    )
}

async fn admin_sign_in(
    request: HttpRequest,
    form: Result<Form, FormError>,
    credentials: web::Data<Credentials>,
) -> HttpResponse {
    let form = match sign_in_form(&request, form) {
        Ok(form) => form,
        Err(refusal) => return refusal,
    };
    let (Some(account_sid), Some(auth_token)) = (form.get("AccountSid"), form.get("AuthToken")) else {
        return refused(StatusCode::BAD_REQUEST, "AccountSid and AuthToken are required");
    };
    let right = || credentials_match(&credentials, account_sid.trim(), auth_token.trim()).then_some(());
    if let Err(refusal) =
        throttled(&request, Role::Admin, account_sid, "wrong account SID or auth token", right)
    {
        return refusal;
    }
    signed_in(&request, Role::Admin, &credentials.account_sid, &credentials.auth_token, "", json!({}))
}

/// A sign-in as `name` for `role`, through the sign-in throttle (`throttle.rs`): while the name
/// or the client's address must wait, it is refused with 429 and `Retry-After` and `check` is
/// not even run, so the right secret does not work either; otherwise `check` decides (`None`:
/// wrong, answered 401 with `wrong`), and a failure is counted, a success forgets the name's.
fn throttled<T>(
    request: &HttpRequest,
    role: Role,
    name: &str,
    wrong: &str,
    check: impl FnOnce() -> Option<T>,
) -> Result<T, HttpResponse> {
    let Some(throttle) = request.app_data::<web::Data<SignInThrottle>>() else {
        return check().ok_or_else(|| refused(StatusCode::UNAUTHORIZED, wrong));
    };
    let client = super::origin::origin(request).client;
    match throttle.sign_in(role, name, client, live::now(), check) {
        Ok(signed_in) => Ok(signed_in),
        Err(Refused::Wait(wait)) => Err(ApiError::too_many_failures(wait).error_response()),
        Err(Refused::Wrong { wait }) => {
            if let Some(wait_ms) = wait {
                // The name typed is not logged: it may be a secret typed in the wrong field.
                tracing::warn!(?role, ?client, wait_ms, "failed sign-ins: the next attempt waits");
            }
            Err(refused(StatusCode::UNAUTHORIZED, wrong))
        }
    }
}

/// The admin's session, for a reloaded page: its CSRF token (401 when not signed in).
async fn admin_session(request: HttpRequest) -> HttpResponse {
    match checked_session(&request, Role::Admin) {
        Ok((session, csrf)) => HttpResponse::Ok().json(json!({"sid": session.subject, "csrf_token": csrf})),
        Err(refusal) => refusal.error_response(),
    }
}

/// Sets the session cookie and answers the subject and the CSRF token (with `extra`).
fn signed_in(
    request: &HttpRequest,
    role: Role,
    subject: &str,
    auth_token: &str,
    bound_to: &str,
    mut extra: serde_json::Value,
) -> HttpResponse {
    let expires = live::now() + SESSION_HOURS * 3_600_000;
    let Ok(session) = Session::new(role, subject, expires) else {
        return refused(StatusCode::INTERNAL_SERVER_ERROR, "no random source for the session");
    };
    let cookie = Cookie::build(cookie_name(role), session.token(auth_token, bound_to))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(behind_https(request))
        .max_age(CookieDuration::hours(SESSION_HOURS))
        .finish();
    extra["sid"] = subject.into();
    extra["csrf_token"] = session.csrf_token(auth_token, bound_to).into();
    HttpResponse::Ok().cookie(cookie).json(extra)
}

/// Whether the pages are reached over https (`voice.public_url`, or the request's scheme as
/// [`super::origin`] reads it): the cookie is then sent only over https.
fn behind_https(request: &HttpRequest) -> bool {
    let public_url =
        request.app_data::<web::Data<super::Webhooks>>().map(|webhooks| webhooks.public_url.as_str());
    super::origin::base_url(request, public_url.unwrap_or_default()).starts_with("https://")
}

/// A sign-in's form, unless it was posted from another site (a forged form signing the
/// browser in as someone else: browsers say where a request comes from in `Sec-Fetch-Site`) or
/// could not be read.
fn sign_in_form(request: &HttpRequest, form: Result<Form, FormError>) -> Result<Form, HttpResponse> {
    if sent_by_another_site(request) {
        return Err(refused(StatusCode::FORBIDDEN, "sign in from Switchboard's own page"));
    }
    form.map_err(|err| err.error_response())
}

/// Signs the browser out: its session, if it holds, ends for good (a copy of the cookie is
/// refused too, after a restart as well), and the cookie is cleared. No CSRF token is needed:
/// ending one's own session harms nobody, and a page that lost its token must still be able to.
async fn sign_out(request: HttpRequest, role: Role, engine: web::Data<LiveEngine>) -> HttpResponse {
    if let Ok((session, _, _)) = session_of(&request, role) {
        let agents = request.app_data::<web::Data<Agents>>().expect("session_of found the agents");
        if let Err(err) = agents.sign_out(&engine, &session).await {
            tracing::error!(%err, "a sign-out could not be stored");
            return refused(StatusCode::INTERNAL_SERVER_ERROR, "the sign-out could not be stored; try again");
        }
        tracing::info!(subject = %session.subject, "signed out");
    }
    let mut cookie = Cookie::build(cookie_name(role), "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(behind_https(&request))
        .finish();
    cookie.make_removal();
    HttpResponse::NoContent().cookie(cookie).finish()
}

fn refused(status: StatusCode, message: &str) -> HttpResponse {
    ApiError::new(status, message).error_response()
}

/// A request from a signed-in agent: their worker SID. A write without the session's CSRF
/// token is refused (403).
pub(super) struct AgentSession {
    pub worker: Sid,
    /// The session's CSRF token, which the page needs again after a reload.
    pub csrf: String,
}

impl FromRequest for AgentSession {
    type Error = ApiError;
    type Future = Ready<Result<AgentSession, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(checked_session(request, Role::Agent).and_then(|(session, csrf)| {
            match session.role {
                Role::Agent => Sid::parse(&session.subject, SidKind::Worker)
                    .map(|worker| AgentSession { worker, csrf })
                    .map_err(|_| ApiError::new(StatusCode::UNAUTHORIZED, "sign in again")),
                Role::Admin => {
                    Err(ApiError::new(StatusCode::FORBIDDEN, "this is the agents' API: sign in as an agent"))
                }
            }
        }))
    }
}

/// The `role` session of `request`, checked ([`Agents::check_session`]: signature under the
/// current keys, expiry, not signed out), and for a write its CSRF token. Answers the session
/// and its CSRF token.
pub(super) fn checked_session(request: &HttpRequest, role: Role) -> Result<(Session, String), ApiError> {
    let (session, bound_to, credentials) = session_of(request, role)?;
    let is_write = ![Method::GET, Method::HEAD, Method::OPTIONS].contains(request.method());
    let given = request.headers().get(CSRF_HEADER).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if is_write && !session.csrf_ok(given, &credentials.auth_token, &bound_to) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "missing or wrong X-CSRF-Token: reload the page"));
    }
    let csrf = session.csrf_token(&credentials.auth_token, &bound_to);
    Ok((session, csrf))
}

/// The `role` session of `request` if it holds (its CSRF token unchecked), what its CSRF token
/// is bound to, and the credentials in force.
fn session_of(request: &HttpRequest, role: Role) -> Result<(Session, String, &Credentials), ApiError> {
    let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, message);
    let cookie = request.cookie(cookie_name(role)).ok_or_else(|| unauthorized("not signed in"))?;
    let (Some(credentials), Some(agents)) =
        (request.app_data::<web::Data<Credentials>>(), request.app_data::<web::Data<Agents>>())
    else {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "sessions are not configured"));
    };
    match agents.check_session(cookie.value(), role, credentials, live::now()) {
        Ok((session, bound_to)) => Ok((session, bound_to, credentials.get_ref())),
        Err(SessionRefusal::NotSignedIn) => Err(unauthorized("not signed in")),
        Err(SessionRefusal::SignInAgain) => Err(unauthorized("sign in again")),
        Err(SessionRefusal::Ended) => Err(unauthorized("your session has ended: sign in again")),
    }
}

/// Watches the session a live stream was opened with, so that the stream ends when it does.
pub(super) struct SessionWatch {
    /// The role and cookie value; `None` when the stream was opened with the account's
    /// credentials (Basic auth), which only a new auth token, and so a restart, revokes.
    session: Option<(Role, String)>,
    /// When the session expires.
    expires: Millis,
    agents: web::Data<Agents>,
    credentials: web::Data<Credentials>,
    ended: watch::Receiver<u64>,
}

impl SessionWatch {
    /// Watches the `role` session that `request` was let in with. For the admin's, as in
    /// `taskrouter::api::authenticate`: an `Authorization` header goes before the cookie.
    pub(super) fn of(request: &HttpRequest, role: Role) -> Result<SessionWatch, ApiError> {
        let (Some(credentials), Some(agents)) =
            (request.app_data::<web::Data<Credentials>>(), request.app_data::<web::Data<Agents>>())
        else {
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "sessions are not configured"));
        };
        let by_credentials = role == Role::Admin && request.headers().contains_key(header::AUTHORIZATION);
        let cookie = request.cookie(cookie_name(role)).filter(|_| !by_credentials);
        let (session, expires) = match cookie {
            Some(cookie) => {
                let (session, _, _) = session_of(request, role)?;
                (Some((role, cookie.value().to_owned())), session.expires)
            }
            None => (None, Millis::MAX),
        };
        let ended = agents.ended();
        Ok(SessionWatch { session, expires, agents: agents.clone(), credentials: credentials.clone(), ended })
    }

    /// Whether the session still holds: checked before every push too, since a push may be
    /// ready at the same moment as [`SessionWatch::ended`].
    pub(super) fn holds(&self) -> bool {
        let Some((role, token)) = &self.session else { return true };
        self.agents.check_session(token, *role, &self.credentials, live::now()).is_ok()
    }

    /// Completes once the session no longer holds: when it expires, or as soon as it is signed
    /// out or its keys change. Never, for a stream opened with the account's credentials.
    pub(super) async fn ended(&mut self) {
        if self.session.is_none() {
            return std::future::pending().await;
        }
        // Cleared once nothing can sign out any more (the server is going away): expiry only.
        let mut signals = true;
        loop {
            let left = u64::try_from(self.expires - live::now()).unwrap_or(0);
            let expiry = tokio::time::sleep(std::time::Duration::from_millis(left));
            let (listen, ended) = (signals, &mut self.ended);
            let signal = async move {
                match listen {
                    true => ended.changed().await.is_ok(),
                    false => std::future::pending().await,
                }
            };
            tokio::select! {
                () = expiry => {}
                still = signal => signals = still,
            }
            if !self.holds() {
                return;
            }
        }
    }
}

/// Whether `request` carries a valid admin session (with its CSRF token for a write).
/// Whether `request` carries a valid agent session (an agent's or a supervisor's).
pub(crate) fn is_agent_session(request: &HttpRequest) -> bool {
    request.cookie(AGENT_COOKIE).is_some() && session_of(request, Role::Agent).is_ok()
}

pub(crate) fn is_admin_session(request: &HttpRequest) -> Result<bool, ApiError> {
    if request.cookie(ADMIN_COOKIE).is_none() {
        return Ok(false);
    }
    checked_session(request, Role::Admin).map(|_| true)
}

/// Whether `request` comes from a browser (which says where it comes from in `Sec-Fetch-*`):
/// it is never sent a Basic challenge, which would make it prompt for the account's
/// credentials and then send them with every request, forged cross-site ones included.
pub(crate) fn from_browser(request: &HttpRequest) -> bool {
    request.headers().contains_key("sec-fetch-mode") || request.headers().contains_key("sec-fetch-site")
}

/// Whether `request` was sent by another site's page (a forged form or script).
pub(crate) fn sent_by_another_site(request: &HttpRequest) -> bool {
    let site = request.headers().get("sec-fetch-site").and_then(|value| value.to_str().ok());
    matches!(site, Some("cross-site" | "same-site"))
}
