//! The HTTP side of leading and standing by (PostgreSQL, several nodes): `GET /readyz` for the
//! load balancer, the gate that keeps a node that does not lead (or is not sure it still
//! leads) from answering anything from memory, and the small server a standby runs until it
//! takes over.
//!
//! A request that reaches a node that does not lead is answered `503 Service Unavailable` with
//! `Retry-After: 1`, not forwarded: the load balancer (checking `/readyz`) and the provider's
//! own retries (connection overrides, the fallback URL) send it again to the leader, and a
//! node that is not sure it leads cannot know where the leader is anyway. Webhooks get TwiML:
//! a call is told to pause a second and fetch the same URL again, never hung up on.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::live::{LiveEngine, Role};
use crate::twiml::{Method, Response, Verb};

use super::HttpError;

/// What `/readyz` says.
#[derive(Serialize)]
struct Readiness {
    /// `leader`, `unsure` (leads, but could not renew its lease lately), `standby`, or
    /// `starting` (took over, and starts serving).
    status: &'static str,
    /// This node's name in the lease (absent with sled).
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    /// The node that leads, as far as this one knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    leader: Option<String>,
    /// The last command applied here, logged by this node or followed from the leader's log.
    applied: u64,
    /// With `?state=sha1`: the SHA-1 of the routing state, to compare a standby with its leader.
    #[serde(skip_serializing_if = "Option::is_none")]
    state_sha1: Option<String>,
}

#[derive(serde::Deserialize)]
pub(super) struct ReadinessQuery {
    state: Option<String>,
}

/// `GET /readyz`: 200 on the leader, 503 elsewhere (naming the leader), for load balancers;
/// `/healthz` stays the process's liveness.
pub(super) async fn readyz(
    engine: web::Data<LiveEngine>,
    query: web::Query<ReadinessQuery>,
    standing_by: Option<web::Data<StandingBy>>,
) -> HttpResponse {
    let role = engine.role();
    let (status, code, leader) = match role {
        // Took over, and its server starts: ready once that one answers.
        Role::Leader if standing_by.is_some() => ("starting", StatusCode::SERVICE_UNAVAILABLE, engine.node()),
        Role::Leader => ("leader", StatusCode::OK, engine.node()),
        Role::Unsure => ("unsure", StatusCode::SERVICE_UNAVAILABLE, None),
        Role::Standby { leader } => ("standby", StatusCode::SERVICE_UNAVAILABLE, leader),
    };
    let (applied, state_sha1) = engine.read_applied(|routing| {
        (query.state.as_deref() == Some("sha1")).then(|| {
            let encoded =
                serde_json::to_vec(&crate::store::SnapshotEncoding(&routing.export())).unwrap_or_default();
            crate::live::hex(&Sha1::digest(&encoded))
        })
    });
    HttpResponse::build(code).json(Readiness { status, node: engine.node(), leader, applied, state_sha1 })
}

/// Answers 503 instead of the route when this node does not lead, or is not sure it still
/// does: what it holds in memory may be behind the leader's.
pub(super) async fn lead_or_refuse(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let role = request.app_data::<web::Data<LiveEngine>>().map_or(Role::Leader, |engine| engine.role());
    if role == Role::Leader || is_health(request.path()) {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    let (request, _) = request.into_parts();
    let response = unavailable(&request, &role);
    Ok(ServiceResponse::new(request, response).map_into_right_body())
}

fn is_health(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// The 503 a node that does not lead answers, in the form the caller reads.
fn unavailable(request: &HttpRequest, role: &Role) -> HttpResponse {
    let mut response = HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE);
    response.insert_header((header::RETRY_AFTER, "1"));
    let path = request.path();
    if path.starts_with("/voice/") {
        // Should the provider read it anyway: a second's pause, then the same webhook again.
        let again = request.uri().path_and_query().map_or(path, |whole| whole.as_str()).to_owned();
        let twiml = Response::new(vec![
            Verb::Pause { length: Some(1) },
            Verb::Redirect { url: again, method: Some(Method::Post) },
        ]);
        return response.content_type("application/xml").body(twiml.to_xml());
    }
    if path.starts_with("/sms/") {
        return response.content_type("application/xml").body(Response::new(Vec::new()).to_xml());
    }
    let message = match role {
        Role::Standby { leader: Some(leader) } => {
            format!("this node stands by; {leader} leads: retry (through the load balancer)")
        }
        Role::Standby { leader: None } => "this node stands by and no node leads right now: retry".to_owned(),
        Role::Unsure => "this node could not renew its lease lately and may no longer lead: retry".to_owned(),
        Role::Leader => "this node is taking over: retry".to_owned(),
    };
    response.json(serde_json::json!({ "status": 503, "message": message }))
}

/// Marks the standby's server: its `/readyz` never answers 200.
pub(super) struct StandingBy;

/// The server a standby runs on `listener` until it takes over: `/healthz`, `/readyz`, and 503
/// for everything else.
pub struct StandbyServer {
    server: actix_web::dev::Server,
}

impl StandbyServer {
    pub fn bind(listener: TcpListener, engine: Arc<LiveEngine>) -> Result<StandbyServer, HttpError> {
        let engine = web::Data::from(engine);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(engine.clone())
                .app_data(web::Data::new(StandingBy))
                .route("/healthz", web::get().to(super::health::healthz))
                .route("/readyz", web::get().to(readyz))
                .default_service(web::to(|request: HttpRequest, engine: web::Data<LiveEngine>| async move {
                    unavailable(&request, &engine.role())
                }))
        })
        .disable_signals()
        .workers(1)
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        Ok(StandbyServer { server })
    }

    /// Serves until `until` completes, then stops at once, closing its connections (the
    /// listener stays open in its other copies: new connections wait in its backlog for the
    /// leader's server).
    pub async fn serve_until(self, until: impl std::future::Future<Output = ()>) -> Result<(), HttpError> {
        let handle = self.server.handle();
        let mut server = std::pin::pin!(self.server);
        tokio::select! {
            result = &mut server => return Ok(result?),
            () = until => {}
        }
        let ((), result) = tokio::join!(handle.stop(false), server);
        Ok(result?)
    }
}
