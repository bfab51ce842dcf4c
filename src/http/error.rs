//! JSON errors for the API side of the server: every error answers `{"status", "message"}` with
//! the matching HTTP status, never an empty body or an HTML page.

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

/// An error answered as JSON.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// For 429: the seconds to announce in `Retry-After`.
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: u16,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None }
    }

    /// Too many failed sign-ins: 429, with the wait (ms) left before the next is checked.
    pub(crate) fn too_many_failures(wait: crate::routing::Millis) -> ApiError {
        let seconds = super::throttle::retry_after_seconds(wait);
        let message = format!("too many failed sign-ins: wait {seconds} s before trying again");
        ApiError { retry_after: Some(seconds), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, message) }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        response.json(ErrorBody { status: self.status.as_u16(), message: &self.message })
    }
}

pub(super) async fn no_route(request: HttpRequest) -> HttpResponse {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route for {} {}", request.method(), request.path()))
        .error_response()
}

pub(super) async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    let error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", request.method(), request.path()),
    );
    let mut response = error.error_response();
    // Every resource so far is read-only; revisit when one accepts writes.
    response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(Method::GET.as_str()));
    response
}
