//! TaskRouter's REST API, `/v1/Workspaces/...`: Twilio's resource shapes, parameter names,
//! paging and errors, so that Twilio's SDKs and scripts work against Switchboard unchanged.
//!
//! - `api.rs`: what every handler starts from: the Basic-auth check (nothing is readable
//!   without the account SID and auth token), the workspace in the path, the query.
//! - `params.rs`: form and query parameters, paging.
//! - `render.rs`: resources as TaskRouter's JSON.
//! - `error.rs`: Twilio's error shape.
//! - `workspace.rs` (workspace, activities), `workers.rs`, `queues.rs` (task queues,
//!   workflows, real-time statistics), `tasks.rs` (tasks, reservations, explain), `events.rs`,
//!   `statistics.rs` (cumulative statistics, and `Statistics` joining both kinds): the
//!   handlers.

pub(super) mod api;
pub(super) mod error;
mod events;
mod params;
mod queues;
pub(super) mod render;
mod statistics;
mod tasks;
mod workers;
mod workspace;

use actix_web::{HttpResponse, web};

use error::TwilioError;

/// Largest form body accepted: a workflow configuration may be 1,038,576 bytes on Twilio.
const MAX_FORM_BYTES: usize = 2 << 20;

pub(super) fn routes(config: &mut web::ServiceConfig) {
    use web::{get, post};
    let workspace = "/v1/Workspaces/{workspace}";
    // Every resource answers other methods with Twilio's 405 and the methods it allows.
    let resource = |path: &str, allowed: &'static str| {
        web::resource(format!("{workspace}{path}")).default_service(web::to(move || async move {
            Err::<HttpResponse, _>(TwilioError::method_not_allowed(allowed))
        }))
    };
    config
        .app_data(web::PayloadConfig::new(MAX_FORM_BYTES))
        .service(web::resource("/v1/Workspaces").route(get().to(workspace::list)).default_service(web::to(
            || async { Err::<HttpResponse, _>(TwilioError::method_not_allowed("GET")) },
        )))
        .service(resource("", "GET").route(get().to(workspace::fetch)))
        .service(resource("/RealTimeStatistics", "GET").route(get().to(workspace::statistics)))
        .service(resource("/Statistics", "GET").route(get().to(workspace::statistics)))
        .service(resource("/CumulativeStatistics", "GET").route(get().to(statistics::workspace_cumulative)))
        .service(
            resource("/Activities", "GET, POST")
                .route(get().to(workspace::list_activities))
                .route(post().to(workspace::create_activity)),
        )
        .service(
            resource("/TaskQueues", "GET, POST")
                .route(get().to(queues::list))
                .route(post().to(queues::create)),
        )
        .service(
            resource("/TaskQueues/{queue}", "GET, POST")
                .route(get().to(queues::fetch))
                .route(post().to(queues::update)),
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
        .service(resource("/Workflows/{workflow}", "GET").route(get().to(queues::fetch_workflow)))
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
        .service(resource("/Activities/{activity}", "GET").route(get().to(workspace::fetch_activity)))
        .service(
            resource("/Workers", "GET, POST")
                .route(get().to(workers::list))
                .route(post().to(workers::create)),
        )
        .service(
            resource("/Workers/{worker}", "GET, POST")
                .route(get().to(workers::fetch))
                .route(post().to(workers::update)),
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
            resource("/Tasks/{task}", "GET, POST")
                .route(get().to(tasks::fetch))
                .route(post().to(tasks::update)),
        )
        .service(resource("/Tasks/{task}/Reservations", "GET").route(get().to(tasks::list_task_reservations)))
        .service(resource("/Tasks/{task}/Explain", "GET").route(get().to(tasks::explain)))
        .service(
            resource("/Tasks/{task}/Reservations/{reservation}", "GET, POST")
                .route(get().to(tasks::fetch_task_reservation))
                .route(post().to(tasks::update_task_reservation)),
        );
}
