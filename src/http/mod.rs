//! The HTTP edge: the only module that imports actix-web.
//!
//! [`Server::bind`] binds the listener (so tests can ask for port 0 and read back the address)
//! and [`Server::run`] serves until the `shutdown` future completes, then lets in-flight requests
//! finish. Signals are not handled here: the caller decides what shutdown means.

mod admin;
mod agent;
mod cluster;
mod dashboard;
mod drain;
pub mod emulator;
mod error;
mod form;
mod framing;
mod front;
mod health;
mod ivr;
mod metrics;
mod origin;
mod pages;
pub(crate) mod session;
pub mod signature;
mod sms;
mod supervisor;
mod taskrouter;
mod throttle;
mod voice;

/// The fuzz targets' checks of what the HTTP edge reads (see `crate::fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use {taskrouter::params_fuzz as rest_fuzz, voice::fuzz as webhook_fuzz};

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage as _, HttpServer, web};

use crate::config::{Credentials, HttpSettings};
use crate::live::LiveEngine;
use drain::InFlight;

pub use cluster::StandbyServer;
pub use error::ApiError;
pub use front::{Address, addresses};
pub use metrics::MetricsServer;
pub use voice::Webhooks;

/// A bound, not yet running, HTTP server.
pub struct Server {
    server: actix_web::dev::Server,
    local_addr: SocketAddr,
    in_flight: InFlight,
    shutdown_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address cannot be bound (in use, not local, no permission...).
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    /// The server stopped with an I/O error.
    #[error("HTTP server failed: {0}")]
    Serve(#[from] std::io::Error),
}

impl Server {
    /// Binds `settings.listen` (or serves `listener`, bound already), serving `engine`.
    /// Requests are served once [`Server::run`] is awaited.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        settings: &HttpSettings,
        listener: Option<std::net::TcpListener>,
        engine: std::sync::Arc<LiveEngine>,
        credentials: Credentials,
        calls: std::sync::Arc<crate::voice::Voice>,
        texts: std::sync::Arc<crate::sms::Sms>,
        agents: std::sync::Arc<crate::agents::Agents>,
        webhooks: Webhooks,
        monitoring: (std::sync::Arc<crate::metrics::Metrics>, String),
        events: crate::config::EventSettings,
    ) -> Result<Server, HttpError> {
        let bind_error = |source| HttpError::Bind { address: settings.listen.clone(), source };
        let in_flight = InFlight::default();
        let in_flight_data = web::Data::new(in_flight.clone());
        let engine = web::Data::from(engine);
        let credentials = web::Data::new(credentials);
        let calls = web::Data::from(calls);
        let texts = web::Data::from(texts);
        let agents = web::Data::from(agents);
        let webhooks = web::Data::new(webhooks);
        let (metrics, metrics_token) = monitoring;
        let metrics = web::Data::from(metrics);
        let metrics_access =
            web::Data::new(metrics::MetricsAccess { token: metrics_token, open_without_token: false });
        // The callback URL and filter the workspace shows when the REST API set none.
        let events = web::Data::new(events);
        let trusted_proxies = web::Data::new(settings.trusted_proxies.clone());
        // In memory only: a restart forgets the failed sign-ins (see throttle.rs).
        let throttle = web::Data::new(throttle::SignInThrottle::default());
        let max_body = settings.max_body_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                // One body limit for every route and extractor: `framing::check` reads every
                // body before the route, and actix's own extractors, should one be used, are
                // held to the same limit.
                .app_data(framing::BodyLimit(max_body))
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::FormConfig::default().limit(max_body))
                .app_data(in_flight_data.clone())
                .app_data(engine.clone())
                .app_data(credentials.clone())
                .app_data(calls.clone())
                .app_data(texts.clone())
                .app_data(agents.clone())
                .app_data(webhooks.clone())
                .app_data(events.clone())
                .app_data(trusted_proxies.clone())
                .app_data(throttle.clone())
                .app_data(metrics.clone())
                .app_data(metrics_access.clone())
                // Innermost, so that its refusals are logged, counted in flight and given the
                // protective headers like any answer; still before every route.
                .wrap(from_fn(cluster::lead_or_refuse))
                .wrap(from_fn(framing::check))
                .wrap(from_fn(protective_headers))
                .wrap(from_fn(log_request))
                .wrap(from_fn(drain::track_in_flight))
                .configure(routes)
                // Webhooks first: they are the busiest routes, and plain paths match cheaply
                // where the API's patterns take a regular expression each.
                .configure(voice::routes)
                .configure(sms::routes)
                .configure(taskrouter::routes)
                .configure(admin::routes)
                .configure(ivr::routes)
                .configure(session::routes)
                .configure(agent::routes)
                .configure(dashboard::routes)
                .configure(supervisor::routes)
                .configure(pages::routes)
                .configure(front::routes)
                .configure(metrics::routes)
                .default_service(web::to(error::no_route))
        })
        // Each connection's socket, for `framing::check` to tell a cut-off chunked body.
        .on_connect(framing::on_connect)
        .disable_signals()
        .keep_alive(Duration::from_secs(settings.keep_alive))
        .shutdown_timeout(settings.shutdown_timeout);
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let server = match listener {
            Some(listener) => server.listen(listener).map_err(bind_error)?,
            None => server.bind(&settings.listen).map_err(bind_error)?,
        };
        let local_addr = *server.addrs().first().ok_or_else(|| {
            bind_error(std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address"))
        })?;
        Ok(Server {
            server: server.run(),
            local_addr,
            in_flight,
            shutdown_timeout: Duration::from_secs(settings.shutdown_timeout),
        })
    }

    /// The address actually bound (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting connections, lets the responses
    /// in flight finish (up to the configured shutdown timeout) and closes the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), HttpError> {
        let handle = self.server.handle();
        let mut server = std::pin::pin!(self.server);
        tokio::select! {
            result = &mut server => return Ok(result?),
            () = shutdown => {}
        }
        let in_flight = self.in_flight;
        tracing::info!(in_flight = in_flight.count(), "shutting down: finishing responses in flight");
        let drain = async {
            handle.pause().await;
            if tokio::time::timeout(self.shutdown_timeout, in_flight.drained()).await.is_err() {
                tracing::warn!(cut = in_flight.count(), "shutdown timeout reached: cutting responses");
            }
            handle.stop(false).await;
        };
        // The server future itself carries out pause and stop, so it is polled meanwhile.
        let ((), result) = tokio::join!(drain, server);
        Ok(result?)
    }
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/healthz")
                .route(web::get().to(health::healthz))
                .default_service(web::to(error::method_not_allowed)),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(cluster::readyz))
                .default_service(web::to(error::method_not_allowed)),
        );
}

/// One log line per request: debug when it went well, info for client errors, error for server
/// errors, so that a busy server at the default level logs only what needs a look; its
/// duration goes to `/metrics` too.
async fn log_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.path().to_owned();
    let response = next.call(request).await?;
    let status = response.status().as_u16();
    let took = started.elapsed();
    metrics::observe(&response, took);
    let elapsed_ms = duration_ms(took);
    match status {
        500.. => tracing::error!(%method, %path, status, elapsed_ms, "request failed"),
        400.. => tracing::info!(%method, %path, status, elapsed_ms, "request refused"),
        _ => tracing::debug!(%method, %path, status, elapsed_ms, "request served"),
    }
    Ok(response)
}

/// Marks a request that repeated an earlier one with the same idempotency key: its answer
/// says so (`Idempotent-Replayed: true`, as Stripe's API does), and nothing ran again.
#[derive(Clone, Copy)]
pub(crate) struct Replayed;

/// Headers that every answer carries, so that no handler can forget them:
///
/// - `X-Content-Type-Options: nosniff`: a browser takes JSON as JSON (and a page's script as a
///   script) and never guesses HTML or script from a body that holds callers' text;
/// - `Cache-Control: no-store` on every answer that does not set its own (the pages and the live
///   streams do) and on every answer that sets a cookie: sessions, CSRF tokens, sign-in secrets
///   and callers' details must not be kept by a browser's or a proxy's cache.
async fn protective_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use actix_web::http::header::{self, HeaderValue};
    let mut response = next.call(request).await?;
    let replayed = response.request().extensions().contains::<Replayed>();
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if replayed {
        headers
            .insert(header::HeaderName::from_static("idempotent-replayed"), HeaderValue::from_static("true"));
    }
    if headers.contains_key(header::SET_COOKIE) || !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

fn duration_ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
