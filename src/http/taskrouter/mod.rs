//! TaskRouter's REST API, `/v1/Workspaces/...`: Twilio's resource shapes, parameter names,
//! paging and errors, so that Twilio's SDKs and scripts work against Switchboard unchanged.
//!
//! - `api.rs`: what every handler starts from: the Basic-auth check (nothing is readable
//!   without the account SID and auth token), the workspace in the path, the query.
//! - `params.rs`: form and query parameters, paging.
//! - `render.rs`: resources as TaskRouter's JSON.
//! - `error.rs`: Twilio's error shape.
//! - `workspace.rs` (workspace, activities), `workers.rs`, `channels.rs` (task channels and
//!   worker channels), `queues.rs` (task queues, workflows, real-time statistics), `tasks.rs`
//!   (tasks, reservations, explain), `events.rs`,
//!   `statistics.rs` (cumulative statistics, and `Statistics` joining both kinds): the
//!   handlers.

pub(crate) mod api;
mod channels;
pub(super) mod error;
mod events;
mod params;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use params::fuzz as params_fuzz;
mod queues;
pub(super) mod render;
mod statistics;
mod tasks;
mod workers;
mod workspace;

use actix_web::{HttpResponse, web};

use api::Api;
use error::TwilioError;

use crate::agents::Agents;
use crate::routing::{Command, SidKind};

pub(super) fn routes(config: &mut web::ServiceConfig) {
    use web::{delete, get, post};
    let workspace = "/v1/Workspaces/{workspace}";
    // Every resource answers other methods with Twilio's 405 and the methods it allows.
    let resource = |path: &str, allowed: &'static str| {
        web::resource(format!("{workspace}{path}")).default_service(web::to(move || async move {
            Err::<HttpResponse, _>(TwilioError::method_not_allowed(allowed))
        }))
    };
    config
        .service(web::resource("/v1/Workspaces").route(get().to(workspace::list)).default_service(web::to(
            || async { Err::<HttpResponse, _>(TwilioError::method_not_allowed("GET")) },
        )))
        .service(
            resource("", "GET, POST").route(get().to(workspace::fetch)).route(post().to(workspace::update)),
        )
        .service(resource("/RealTimeStatistics", "GET").route(get().to(workspace::statistics)))
        .service(resource("/Statistics", "GET").route(get().to(workspace::statistics)))
        .service(resource("/CumulativeStatistics", "GET").route(get().to(statistics::workspace_cumulative)))
        .service(
            resource("/Activities", "GET, POST")
                .route(get().to(workspace::list_activities))
                .route(post().to(workspace::create_activity)),
        )
        .service(
            resource("/TaskChannels", "GET, POST")
                .route(get().to(channels::list))
                .route(post().to(channels::create)),
        )
        .service(
            resource("/TaskChannels/{channel}", "GET, POST, DELETE")
                .route(get().to(channels::fetch))
                .route(post().to(channels::update))
                .route(delete().to(channels::delete)),
        )
        .service(
            resource("/TaskQueues", "GET, POST")
                .route(get().to(queues::list))
                .route(post().to(queues::create)),
        )
        .service(
            resource("/TaskQueues/{queue}", "GET, POST, DELETE")
                .route(get().to(queues::fetch))
                .route(post().to(queues::update))
                .route(delete().to(|api: Api, agents: web::Data<Agents>| {
                    remove(api, agents, "queue", SidKind::TaskQueue)
                })),
        )
        .service(
            resource("/TaskQueues/{queue}/RealTimeStatistics", "GET").route(get().to(queues::statistics)),
        )
        .service(resource("/TaskQueues/{queue}/Statistics", "GET").route(get().to(queues::statistics)))
        .service(
            resource("/TaskQueues/{queue}/CumulativeStatistics", "GET")
                .route(get().to(statistics::queue_cumulative)),
        )
        .service(
            resource("/Workflows", "GET, POST")
                .route(get().to(queues::list_workflows))
                .route(post().to(queues::create_workflow)),
        )
        .service(
            resource("/Workflows/{workflow}", "GET, POST, DELETE")
                .route(get().to(queues::fetch_workflow))
                .route(post().to(queues::update_workflow))
                .route(delete().to(|api: Api, agents: web::Data<Agents>| {
                    remove(api, agents, "workflow", SidKind::Workflow)
                })),
        )
        .service(resource("/Events", "GET").route(get().to(events::list)))
        .service(resource("/Events/{event}", "GET").route(get().to(events::fetch)))
        .service(
            resource("/Workflows/{workflow}/RealTimeStatistics", "GET")
                .route(get().to(queues::workflow_statistics)),
        )
        .service(
            resource("/Workflows/{workflow}/Statistics", "GET").route(get().to(queues::workflow_statistics)),
        )
        .service(
            resource("/Workflows/{workflow}/CumulativeStatistics", "GET")
                .route(get().to(statistics::workflow_cumulative)),
        )
        .service(
            resource("/Activities/{activity}", "GET, DELETE")
                .route(get().to(workspace::fetch_activity))
                .route(delete().to(|api: Api, agents: web::Data<Agents>| {
                    remove(api, agents, "activity", SidKind::Activity)
                })),
        )
        .service(
            resource("/Workers", "GET, POST")
                .route(get().to(workers::list))
                .route(post().to(workers::create)),
        )
        // Before `/Workers/{worker}`, which would take `Statistics` for a SID.
        .service(resource("/Workers/Statistics", "GET").route(get().to(statistics::workers_statistics)))
        .service(
            resource("/Workers/CumulativeStatistics", "GET").route(get().to(statistics::workers_cumulative)),
        )
        .service(resource("/Workers/RealTimeStatistics", "GET").route(get().to(statistics::workers_realtime)))
        .service(
            resource("/Workers/{worker}/Statistics", "GET").route(get().to(statistics::worker_statistics)),
        )
        .service(
            resource("/Workers/{worker}", "GET, POST, DELETE")
                .route(get().to(workers::fetch))
                .route(post().to(workers::update))
                .route(delete().to(|api: Api, agents: web::Data<Agents>| {
                    remove(api, agents, "worker", SidKind::Worker)
                })),
        )
        .service(
            resource("/Workers/{worker}/Channels", "GET").route(get().to(channels::list_worker_channels)),
        )
        .service(
            resource("/Workers/{worker}/Channels/{channel}", "GET, POST")
                .route(get().to(channels::fetch_worker_channel))
                .route(post().to(channels::update_worker_channel)),
        )
        .service(
            resource("/Workers/{worker}/Reservations", "GET")
                .route(get().to(tasks::list_worker_reservations)),
        )
        .service(
            resource("/Workers/{worker}/Reservations/{reservation}", "GET, POST")
                .route(get().to(tasks::fetch_worker_reservation))
                .route(post().to(tasks::update_worker_reservation)),
        )
        .service(resource("/Tasks", "GET, POST").route(get().to(tasks::list)).route(post().to(tasks::create)))
        .service(
            resource("/Tasks/{task}", "GET, POST, DELETE")
                .route(get().to(tasks::fetch))
                .route(post().to(tasks::update))
                .route(
                    delete()
                        .to(|api: Api, agents: web::Data<Agents>| remove(api, agents, "task", SidKind::Task)),
                ),
        )
        .service(resource("/Tasks/{task}/Reservations", "GET").route(get().to(tasks::list_task_reservations)))
        .service(resource("/Tasks/{task}/Explain", "GET").route(get().to(tasks::explain)))
        .service(
            resource("/Tasks/{task}/Reservations/{reservation}", "GET, POST")
                .route(get().to(tasks::fetch_task_reservation))
                .route(post().to(tasks::update_task_reservation)),
        );
}

/// `DELETE` of the activity, worker, task queue, workflow or task in path segment `segment`:
/// 204 once the deletion is durable; a resource still in use is refused with a 400 that says
/// what holds it.
async fn remove(
    api: Api,
    agents: web::Data<Agents>,
    segment: &'static str,
    kind: SidKind,
) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid(segment, kind)?;
    api.execute(Command::Delete { resource: sid }, &[]).await?;
    if kind == SidKind::Worker {
        let forgotten = agents.forget(&api.engine, sid).await;
        forgotten.map_err(|err| TwilioError::from(crate::live::ExecuteError::Storage(err)))?;
    }
    Ok(HttpResponse::NoContent().finish())
}
