//! `GET /metrics` for Prometheus (`crate::metrics` writes the text), on the main address with
//! `metrics.token` as a bearer token, and on `metrics.listen` (its own small server, for a
//! network only the scraper reaches); the request durations the request log hands it; and the
//! live-stream helper that counts open streams.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::web::Bytes;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use futures_util::{Stream, StreamExt};

use super::HttpError;
use super::error::ApiError;
use crate::live::LiveEngine;
use crate::metrics::Metrics;
use crate::sms::Sms;

/// Who may read `/metrics` on this server: the bearer token (empty: nobody, on the main
/// address), or anyone who reaches the separate listener when it has no token.
#[derive(Clone)]
pub(super) struct MetricsAccess {
    pub token: String,
    /// Served by the separate listener: the network guards it.
    pub open_without_token: bool,
}

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/metrics")
            .route(web::get().to(scrape))
            .default_service(web::to(super::error::method_not_allowed)),
    );
}

async fn scrape(
    request: HttpRequest,
    access: web::Data<MetricsAccess>,
    metrics: web::Data<Metrics>,
    engine: web::Data<LiveEngine>,
    sms: web::Data<Sms>,
) -> HttpResponse {
    if let Err(refused) = allowed(&request, &access) {
        return refused;
    }
    let text = metrics.render(&engine, sms.outbox_figures());
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text)
}

fn allowed(request: &HttpRequest, access: &MetricsAccess) -> Result<(), HttpResponse> {
    if access.token.is_empty() {
        if access.open_without_token {
            return Ok(());
        }
        let off = "/metrics is off on this address: set metrics.token (a bearer token for the scraper) or metrics.listen";
        return Err(ApiError::new(StatusCode::NOT_FOUND, off).error_response());
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(token) if super::taskrouter::api::constant_time_eq(token.as_bytes(), access.token.as_bytes()) => Ok(()),
        _ => Err(HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\""))
            .json(serde_json::json!({"status": 401, "message": "/metrics needs metrics.token as a bearer token"}))),
    }
}

/// Observes a request's duration (`took`, as the request log measured it) by its route pattern
/// (`/v1/Workspaces/{workspace}/Tasks`, `/voice/incoming`), so that the labels stay few
/// whatever the paths.
pub(super) fn observe<B>(response: &ServiceResponse<B>, took: std::time::Duration) {
    let request = response.request();
    let Some(metrics) = request.app_data::<web::Data<Metrics>>() else { return };
    let route = request.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    // Any token is a method to HTTP: the label takes the known ones only, so that a client
    // inventing methods cannot make series without end.
    let method = match request.method().as_str() {
        known @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => known,
        _ => "other",
    };
    metrics.observe_request(&route, method, took);
}

/// A server-sent event stream's answer: the headers every live stream needs, and the stream
/// counted as open (`switchboard_live_streams`) until the client goes or it ends.
pub(super) fn event_stream<S>(request: &HttpRequest, body: S) -> HttpResponse
where
    S: Stream<Item = Result<Bytes, std::convert::Infallible>> + 'static,
{
    let guard = request.app_data::<web::Data<Metrics>>().map(|metrics| metrics.stream_opened());
    let counted = body.map(move |chunk| {
        let _open = &guard;
        chunk
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // A proxy (nginx) would otherwise hold the pushes back in its buffer.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(counted)
}

/// `metrics.listen`: a server of its own that answers `/metrics` and nothing else.
pub struct MetricsServer {
    server: actix_web::dev::Server,
    local_addr: SocketAddr,
}

impl MetricsServer {
    pub fn bind(
        listen: &str,
        token: &str,
        metrics: Arc<Metrics>,
        engine: Arc<LiveEngine>,
        sms: Arc<Sms>,
    ) -> Result<MetricsServer, HttpError> {
        let bind_error = |source| HttpError::Bind { address: listen.to_owned(), source };
        let access = web::Data::new(MetricsAccess { token: token.to_owned(), open_without_token: true });
        let (metrics, engine, sms) =
            (web::Data::from(metrics), web::Data::from(engine), web::Data::from(sms));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(access.clone())
                .app_data(metrics.clone())
                .app_data(engine.clone())
                .app_data(sms.clone())
                .configure(routes)
                .default_service(web::to(super::error::no_route))
        })
        .disable_signals()
        .workers(1)
        .shutdown_timeout(1)
        .bind(listen)
        .map_err(bind_error)?;
        let local_addr = *server.addrs().first().ok_or_else(|| {
            bind_error(std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address"))
        })?;
        Ok(MetricsServer { server: server.run(), local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), HttpError> {
        let handle = self.server.handle();
        let mut server = std::pin::pin!(self.server);
        tokio::select! {
            result = &mut server => return Ok(result?),
            () = shutdown => {}
        }
        let ((), result) = tokio::join!(handle.stop(true), server);
        Ok(result?)
    }
}
