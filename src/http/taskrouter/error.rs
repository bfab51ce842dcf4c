//! Twilio's error shape: `{"code", "message", "more_info", "status"}` with the matching HTTP
//! status, so that SDKs raise their usual exception (`TwilioRestException` and kin) with our
//! message in it.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::live::ExecuteError;
use crate::routing::{RoutingError, Sid};

/// Twilio's codes for the cases the API distinguishes.
const INVALID_PARAMETER: u32 = 20001;
const AUTHENTICATE: u32 = 20003;
const METHOD_NOT_ALLOWED: u32 = 20004;
const FORBIDDEN: u32 = 20403;
const NOT_FOUND: u32 = 20404;
/// "Conflict": the request does not fit the resource's current state (Twilio's dictionary).
const CONFLICT: u32 = 20409;
const TOO_MANY_REQUESTS: u32 = 20429;
const INTERNAL: u32 = 20500;

/// An error answered in Twilio's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct TwilioError {
    status: StatusCode,
    code: u32,
    message: String,
    /// For 405: the methods the resource accepts (the `Allow` header).
    allow: Option<&'static str>,
    /// For 401: whether to send a Basic challenge (not to a browser page using a session).
    challenge: bool,
    /// For 429: the seconds to announce in `Retry-After`.
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u32,
    message: &'a str,
    more_info: String,
    status: u16,
}

impl TwilioError {
    /// A parameter is missing, malformed or out of range; `message` names it.
    pub(crate) fn invalid(message: impl Into<String>) -> TwilioError {
        TwilioError {
            status: StatusCode::BAD_REQUEST,
            code: INVALID_PARAMETER,
            message: message.into(),
            allow: None,
            challenge: true,
            retry_after: None,
        }
    }

    /// The same error answered with `status`.
    pub(crate) fn with_status(self, status: StatusCode) -> TwilioError {
        TwilioError { status, ..self }
    }

    /// `path` names no resource (also for a malformed SID in the path, as Twilio answers).
    pub(crate) fn not_found(path: &str) -> TwilioError {
        TwilioError {
            status: StatusCode::NOT_FOUND,
            code: NOT_FOUND,
            message: format!("The requested resource {path} was not found"),
            allow: None,
            challenge: true,
            retry_after: None,
        }
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> TwilioError {
        TwilioError {
            status: StatusCode::UNAUTHORIZED,
            code: AUTHENTICATE,
            message: message.into(),
            allow: None,
            challenge: true,
            retry_after: None,
        }
    }

    fn internal(message: impl Into<String>) -> TwilioError {
        TwilioError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: INTERNAL,
            message: message.into(),
            allow: None,
            challenge: true,
            retry_after: None,
        }
    }

    /// Too many wrong credentials from this client: 429, with the wait (ms) left before the
    /// next are checked.
    pub(crate) fn too_many_failures(wait: crate::routing::Millis) -> TwilioError {
        let seconds = crate::http::throttle::retry_after_seconds(wait);
        TwilioError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: TOO_MANY_REQUESTS,
            message: format!(
                "Too Many Requests - too many wrong credentials from this address: wait {seconds} s before trying again"
            ),
            allow: None,
            challenge: false,
            retry_after: Some(seconds),
        }
    }

    /// The same error, without a Basic challenge (for a browser).
    pub(crate) fn without_challenge(self) -> TwilioError {
        TwilioError { challenge: false, ..self }
    }

    /// A session cookie that does not hold (ended, or a write without its CSRF token).
    pub(crate) fn session_refused(refused: &crate::http::ApiError) -> TwilioError {
        let status = refused.status_code();
        let code = if status == StatusCode::FORBIDDEN { FORBIDDEN } else { AUTHENTICATE };
        // No Basic challenge: the page that sent the cookie signs in again itself, where a
        // challenge would make the browser prompt for the account's credentials.
        TwilioError {
            status,
            code,
            message: refused.to_string(),
            allow: None,
            challenge: false,
            retry_after: None,
        }
    }

    /// The resource exists but does not take this method; `allow` lists those it takes.
    pub(crate) fn method_not_allowed(allow: &'static str) -> TwilioError {
        TwilioError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: METHOD_NOT_ALLOWED,
            message: format!("Method not allowed: this resource accepts {allow}"),
            allow: Some(allow),
            challenge: true,
            retry_after: None,
        }
    }
}

impl From<RoutingError> for TwilioError {
    fn from(err: RoutingError) -> TwilioError {
        match err {
            RoutingError::NotFound { sid } => TwilioError {
                status: StatusCode::NOT_FOUND,
                code: NOT_FOUND,
                message: format!("The requested resource {sid} was not found"),
                allow: None,
                challenge: true,
                retry_after: None,
            },
            // A late answer to an offer (rescinded, timed out): gone, as TaskRouter answers it.
            err @ RoutingError::ReservationNotPending { .. } => TwilioError {
                status: StatusCode::GONE,
                code: INVALID_PARAMETER,
                message: err.to_string(),
                allow: None,
                challenge: true,
                retry_after: None,
            },
            // A resource something still uses (a task channel with open tasks): Twilio's 409.
            RoutingError::InUse { message } => TwilioError {
                status: StatusCode::CONFLICT,
                code: CONFLICT,
                message,
                allow: None,
                challenge: true,
                retry_after: None,
            },
            RoutingError::Invalid { field, message } | RoutingError::InvalidExpression { field, message } => {
                TwilioError::invalid(format!("{}: {message}", parameter_name(field)))
            }
            // Twilio answers refused state changes (cancel an assigned task, accept a rescinded
            // reservation) with 400 as well: the request does not fit the resource.
            other => TwilioError::invalid(other.to_string()),
        }
    }
}

impl TwilioError {
    /// The engine's refusal of a command whose body named `parameters` (name, SID): a SID
    /// from the body that does not exist is a bad parameter (400 naming it), not a missing
    /// resource at the request's path (404).
    pub(crate) fn from_command(err: ExecuteError, parameters: &[(&str, Option<Sid>)]) -> TwilioError {
        if let ExecuteError::Refused(RoutingError::NotFound { sid }) = &err
            && let Some((name, _)) = parameters.iter().find(|(_, given)| *given == Some(*sid))
        {
            return TwilioError::invalid(format!("{name}: {} {sid} does not exist", sid.kind()));
        }
        err.into()
    }
}

/// The request parameter for one of the engine's field names: `workflow_sid` is sent as
/// `WorkflowSid`.
fn parameter_name(field: &str) -> String {
    field
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A refused body or query: 400, or 413 and 415 for a body too large or not a form.
impl From<crate::http::form::FormError> for TwilioError {
    fn from(err: crate::http::form::FormError) -> TwilioError {
        TwilioError {
            status: err.status(),
            code: INVALID_PARAMETER,
            message: err.to_string(),
            allow: None,
            challenge: true,
            retry_after: None,
        }
    }
}

impl From<crate::agents::AgentError> for TwilioError {
    fn from(err: crate::agents::AgentError) -> TwilioError {
        match err {
            crate::agents::AgentError::Execute(err) => err.into(),
            crate::agents::AgentError::Storage(err) => ExecuteError::Storage(err).into(),
            crate::agents::AgentError::Random(err) => TwilioError::internal(err.to_string()),
        }
    }
}

impl From<ExecuteError> for TwilioError {
    fn from(err: ExecuteError) -> TwilioError {
        match err {
            ExecuteError::Refused(err) => err.into(),
            // Logged, and the server stops, by the live engine.
            ExecuteError::Storage(_) => TwilioError::internal(
                "the change may not have been stored, and the server is stopping; check the result \
                 after it restarts before retrying",
            ),
        }
    }
}

impl ResponseError for TwilioError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED && self.challenge {
            response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"Switchboard\""));
        }
        if let Some(allow) = self.allow {
            response.insert_header((header::ALLOW, allow));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        response.json(Body {
            code: self.code,
            message: &self.message,
            more_info: format!("https://www.twilio.com/docs/errors/{}", self.code),
            status: self.status.as_u16(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parameter_name;

    #[test]
    fn engine_fields_are_named_as_request_parameters() {
        for (field, parameter) in [
            ("workflow_sid", "WorkflowSid"),
            ("friendly_name", "FriendlyName"),
            ("attributes", "Attributes"),
            ("max_reserved_workers", "MaxReservedWorkers"),
            ("", ""),
        ] {
            assert_eq!(parameter_name(field), parameter);
        }
    }
}
