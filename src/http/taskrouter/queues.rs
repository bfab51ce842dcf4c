//! Task queues and workflows: list, create, fetch, update, and their real-time statistics.

use actix_web::HttpResponse;

use super::api::Api;
use super::error::TwilioError;
use super::params::Params;
use super::statistics::statistics_response;
use crate::routing::{
    Command, Engine, MAX_WRAP_UP_SECONDS, NewTaskQueue, NewWorkflow, Scope, SidKind, TaskOrder,
    TaskQueueChanges, WorkflowChanges, WrapUpRules,
};

/// What to do instead of the assignment callbacks and automatic activities Switchboard does not
/// have.
const CALLBACKS_INSTEAD: &str =
    "use the workspace's event callback URL (EventCallbackUrl, or the setting events.callback_url) instead";

/// `GET .../TaskQueues`, filtered by `FriendlyName`, `EvaluateWorkerAttributes` (the queues
/// a worker with those attributes would be in) and `WorkerSid` (the queues a worker is in).
pub(super) async fn list(api: Api) -> Result<HttpResponse, TwilioError> {
    let list = api.list("task_queues")?;
    let name = api.query.get("FriendlyName");
    let attributes = api.query.json_object("EvaluateWorkerAttributes")?;
    let worker = api.query.sid("WorkerSid", SidKind::Worker)?;
    Ok(HttpResponse::Ok().json(api.render(|renderer| {
        let mut shown: Vec<_> = renderer
            .engine
            .queues()
            .iter()
            .filter(|queue| name.is_none_or(|name| queue.friendly_name.eq_ignore_ascii_case(name)))
            .filter(|queue| {
                attributes.as_ref().is_none_or(|attributes| Engine::queue_would_target(queue, attributes))
            })
            .filter(|queue| {
                worker.is_none_or(|worker| renderer.engine.queue_members(queue).contains(&worker))
            })
            .collect();
        // By SID, the order of creation, which page tokens rely on.
        shown.sort_unstable_by_key(|queue| queue.sid);
        renderer.page(&list, &shown, |queue| queue.sid.to_string(), |queue| renderer.queue(queue))
    })))
}

/// `POST .../TaskQueues`: `FriendlyName` (required), `TargetWorkers` (default `1==1`),
/// `TaskOrder` (`FIFO`, `LIFO`), `MaxReservedWorkers` (1 to 50), and Switchboard's wrap-up
/// rules: `WrapUpLimit` (seconds, 0 for none) and `DispositionCodes`.
pub(super) async fn create(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    form.refuse(&["ReservationActivitySid", "AssignmentActivitySid"], CALLBACKS_INSTEAD)?;
    let new = NewTaskQueue {
        friendly_name: form.required("FriendlyName")?.to_owned(),
        target_workers: form.get("TargetWorkers").unwrap_or("1==1").to_owned(),
        task_order: form.order("TaskOrder")?.unwrap_or(TaskOrder::Fifo),
        max_reserved_workers: form.integer("MaxReservedWorkers", 1..=50)?.unwrap_or(1) as u32,
        wrap_up: WrapUpRules {
            limit_seconds: wrap_up_limit(&form)?.unwrap_or(0),
            dispositions: dispositions(&form).unwrap_or_default(),
        },
    };
    let sid = api.execute(Command::CreateTaskQueue(new), &[]).await?.ok_or_else(|| api.not_found())?;
    let queue = api.render(|renderer| renderer.engine.queue(sid).map(|queue| renderer.queue(queue)));
    Ok(HttpResponse::Created().json(queue.ok_or_else(|| api.not_found())?))
}

/// `GET .../TaskQueues/{WQ}`.
pub(super) async fn fetch(api: Api) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid("queue", SidKind::TaskQueue)?;
    let queue = api.render(|renderer| renderer.engine.queue(sid).map(|queue| renderer.queue(queue)));
    Ok(HttpResponse::Ok().json(queue.ok_or_else(|| api.not_found())?))
}

/// `POST .../TaskQueues/{WQ}`: `FriendlyName`, `TargetWorkers`, `TaskOrder`,
/// `MaxReservedWorkers`, `WrapUpLimit`, `DispositionCodes` (given empty: none); what is not
/// given stays as it is.
pub(super) async fn update(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid("queue", SidKind::TaskQueue)?;
    form.refuse(&["ReservationActivitySid", "AssignmentActivitySid"], CALLBACKS_INSTEAD)?;
    let changes = TaskQueueChanges {
        friendly_name: form.get("FriendlyName").map(str::to_owned),
        target_workers: form.get("TargetWorkers").map(str::to_owned),
        task_order: form.order("TaskOrder")?,
        max_reserved_workers: form.integer("MaxReservedWorkers", 1..=50)?.map(|max| max as u32),
        wrap_up_limit: wrap_up_limit(&form)?,
        dispositions: dispositions(&form),
    };
    api.execute(Command::UpdateTaskQueue { queue: sid, changes }, &[]).await?;
    fetch(api).await
}

/// `WrapUpLimit`: seconds a task may wrap up before it completes by itself.
fn wrap_up_limit(form: &Params) -> Result<Option<u32>, TwilioError> {
    Ok(form.integer("WrapUpLimit", 0..=i64::from(MAX_WRAP_UP_SECONDS))?.map(|seconds| seconds as u32))
}

/// `DispositionCodes`, repeated or separated by commas, when given.
fn dispositions(form: &Params) -> Option<Vec<String>> {
    form.get("DispositionCodes")?;
    Some(form.all("DispositionCodes").into_iter().map(str::to_owned).collect())
}

/// `GET .../TaskQueues/{WQ}/RealTimeStatistics` (and `.../Statistics`, whose `realtime` part
/// it is).
pub(super) async fn statistics(api: Api) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid("queue", SidKind::TaskQueue)?;
    let rendered = api.render(|renderer| {
        let queue = renderer.engine.queue(sid)?;
        let statistics = renderer.engine.queue_statistics(sid, renderer.now).ok()?;
        Some(renderer.queue_statistics(queue, &statistics))
    });
    statistics_response(&api, rendered.ok_or_else(|| api.not_found())?, Scope::Queue(sid)).await
}

/// `GET .../Workflows`, filtered by `FriendlyName`.
pub(super) async fn list_workflows(api: Api) -> Result<HttpResponse, TwilioError> {
    let list = api.list("workflows")?;
    let name = api.query.get("FriendlyName");
    Ok(HttpResponse::Ok().json(api.render(|renderer| {
        let mut shown: Vec<_> = renderer
            .engine
            .workflows()
            .iter()
            .filter(|workflow| name.is_none_or(|name| workflow.friendly_name.eq_ignore_ascii_case(name)))
            .collect();
        // By SID, the order of creation, which page tokens rely on.
        shown.sort_unstable_by_key(|workflow| workflow.sid);
        renderer.page(
            &list,
            &shown,
            |workflow| workflow.sid.to_string(),
            |workflow| renderer.workflow(workflow),
        )
    })))
}

/// `POST .../Workflows`: `FriendlyName`, `Configuration` (required), `TaskReservationTimeout`
/// (1 to 86,400 seconds, default 120).
pub(super) async fn create_workflow(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    form.refuse(&["AssignmentCallbackUrl", "FallbackAssignmentCallbackUrl"], CALLBACKS_INSTEAD)?;
    let new = NewWorkflow {
        friendly_name: form.required("FriendlyName")?.to_owned(),
        configuration: form.required("Configuration")?.to_owned(),
        task_reservation_timeout: form.integer("TaskReservationTimeout", 1..=86_400)?.unwrap_or(120) as u32,
    };
    let sid = api.execute(Command::CreateWorkflow(new), &[]).await?.ok_or_else(|| api.not_found())?;
    let workflow = api.render(|renderer| {
        renderer.engine.workflows().iter().find(|workflow| workflow.sid == sid).map(|w| renderer.workflow(w))
    });
    Ok(HttpResponse::Created().json(workflow.ok_or_else(|| api.not_found())?))
}

/// `GET .../Workflows/{WW}/RealTimeStatistics` (and `.../Statistics`, whose `realtime` part
/// it is).
pub(super) async fn workflow_statistics(api: Api) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid("workflow", SidKind::Workflow)?;
    let rendered = api.render(|renderer| {
        let workflow = renderer.engine.workflows().iter().find(|workflow| workflow.sid == sid)?;
        let statistics = renderer.engine.workflow_statistics(sid, renderer.now).ok()?;
        Some(renderer.workflow_statistics(workflow, &statistics))
    });
    statistics_response(&api, rendered.ok_or_else(|| api.not_found())?, Scope::Workflow(sid)).await
}

/// `GET .../Workflows/{WW}`.
pub(super) async fn fetch_workflow(api: Api) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid("workflow", SidKind::Workflow)?;
    let workflow = api.render(|renderer| {
        renderer.engine.workflows().iter().find(|workflow| workflow.sid == sid).map(|w| renderer.workflow(w))
    });
    Ok(HttpResponse::Ok().json(workflow.ok_or_else(|| api.not_found())?))
}

/// `POST .../Workflows/{WW}`: `FriendlyName`, `Configuration`, `TaskReservationTimeout`, and
/// `ReEvaluateTasks` (route every waiting task again under the new configuration).
pub(super) async fn update_workflow(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid("workflow", SidKind::Workflow)?;
    form.refuse(&["AssignmentCallbackUrl", "FallbackAssignmentCallbackUrl"], CALLBACKS_INSTEAD)?;
    let changes = WorkflowChanges {
        friendly_name: form.get("FriendlyName").map(str::to_owned),
        configuration: form.get("Configuration").map(str::to_owned),
        task_reservation_timeout: form.integer("TaskReservationTimeout", 1..=86_400)?.map(|t| t as u32),
        re_evaluate_tasks: form.boolean("ReEvaluateTasks")?.unwrap_or(false),
    };
    api.execute(Command::UpdateWorkflow { workflow: sid, changes }, &[]).await?;
    fetch_workflow(api).await
}
