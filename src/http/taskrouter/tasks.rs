//! Tasks and their reservations, reachable both under the task and under the worker.

use actix_web::HttpResponse;

use super::api::Api;
use super::error::TwilioError;
use super::params::Params;
use crate::expr::{Context, Expression};
use crate::routing::{
    Command, Engine, Explanation, MAX_PRIORITY, MAX_TASK_TTL, NewTask, Reservation, ReservationStatus, Sid,
    SidKind, Task, TaskChanges, TaskStatusChange,
};

/// `GET .../Tasks`, filtered by `AssignmentStatus` (several allowed), `Priority`, `WorkflowSid`,
/// `WorkflowName`, `TaskQueueSid`, `TaskQueueName` and `EvaluateTaskAttributes`; ordered by
/// `Ordering` (`DateCreated` or `Priority`, `:asc` or `:desc`), oldest first by default.
pub(super) async fn list(api: Api) -> Result<HttpResponse, TwilioError> {
    let query = &api.query;
    let list = api.list("tasks")?;
    let statuses = query.all("AssignmentStatus");
    for status in &statuses {
        if !["pending", "reserved", "assigned", "wrapping", "completed", "canceled"].contains(status) {
            return Err(TwilioError::invalid(format!(
                "AssignmentStatus: {status:?} is not one of pending, reserved, assigned, wrapping, completed, canceled"
            )));
        }
    }
    query.refuse(
        &["HasAddons", "RoutingTarget"],
        "filter on the task's attributes with EvaluateTaskAttributes",
    )?;
    let priority = query.integer("Priority", 0..=MAX_PRIORITY)?;
    let workflow_sid = query.sid("WorkflowSid", SidKind::Workflow)?;
    let workflow_name = query.get("WorkflowName");
    let queue_sid = query.sid("TaskQueueSid", SidKind::TaskQueue)?;
    let queue_name = query.get("TaskQueueName");
    let expression = match query.get("EvaluateTaskAttributes").filter(|text| !text.trim().is_empty()) {
        Some(text) => Some(
            Expression::parse(text, Context::Filter)
                .map_err(|err| TwilioError::invalid(format!("EvaluateTaskAttributes: {err}")))?,
        ),
        None => None,
    };
    let ordering = query.get("Ordering").unwrap_or("DateCreated:asc");
    let (by_priority, descending) = match ordering {
        "DateCreated:asc" => (false, false),
        "DateCreated:desc" => (false, true),
        "Priority:asc" => (true, false),
        "Priority:desc" => (true, true),
        other => {
            return Err(TwilioError::invalid(format!(
                "Ordering: {other:?} is not DateCreated:asc, DateCreated:desc, Priority:asc or Priority:desc"
            )));
        }
    };
    Ok(HttpResponse::Ok().json(api.render(|renderer| {
        let engine = renderer.engine;
        let mut shown: Vec<&Task> = engine
            .tasks()
            .filter(|task| {
                let workflow = engine.task_workflow(task);
                let queue = engine.task_queue(task);
                (statuses.is_empty() || statuses.contains(&task.status.as_str()))
                    && priority.is_none_or(|priority| task.priority == priority)
                    && workflow_sid.is_none_or(|sid| workflow.sid == sid)
                    && workflow_name.is_none_or(|name| workflow.friendly_name.eq_ignore_ascii_case(name))
                    && queue_sid.is_none_or(|sid| queue.is_some_and(|queue| queue.sid == sid))
                    && queue_name.is_none_or(|name| {
                        queue.is_some_and(|queue| queue.friendly_name.eq_ignore_ascii_case(name))
                    })
                    && expression
                        .as_ref()
                        .is_none_or(|expression| Engine::task_matches(task, expression, renderer.now))
            })
            .collect();
        // SIDs are minted in creation order: they order by date and break ties.
        if by_priority {
            shown.sort_unstable_by_key(|task| (task.priority, task.sid));
        } else {
            shown.sort_unstable_by_key(|task| task.sid);
        }
        if descending {
            shown.reverse();
        }
        let position = |task: &&Task| match by_priority {
            // The sign bit flipped, so that negative priorities sort first as text too.
            true => format!("{:020}{}", (task.priority as u64) ^ (1 << 63), task.sid),
            false => task.sid.to_string(),
        };
        renderer.page(&list, &shown, position, |task| renderer.task(task))
    })))
}

/// `POST .../Tasks`: `Attributes`, `Priority`, `Timeout`, `WorkflowSid` (required unless the
/// workspace has one workflow), `TaskChannel` (unique name or SID).
pub(super) async fn create(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    for unsupported in ["VirtualStartTime", "RoutingTarget", "TaskQueueSid", "IgnoreCapacity"] {
        if form.get(unsupported).is_some() {
            return Err(TwilioError::invalid(format!("{unsupported} is not supported yet; leave it out")));
        }
    }
    let new = NewTask {
        attributes: form.json_object("Attributes")?.unwrap_or_else(|| serde_json::json!({})),
        priority: form.integer("Priority", 0..=MAX_PRIORITY)?,
        timeout: form.integer("Timeout", 1..=i64::from(MAX_TASK_TTL))?.map(|seconds| seconds as u32),
        workflow: form.sid("WorkflowSid", SidKind::Workflow)?,
        channel: form.get("TaskChannel").filter(|channel| !channel.is_empty()).map(str::to_owned),
    };
    let workflow = new.workflow;
    let sid = api.execute(Command::CreateTask(new), &[("WorkflowSid", workflow)]).await?;
    let sid = sid.ok_or_else(|| api.not_found())?;
    Ok(HttpResponse::Created().json(render_task(&api, sid)?))
}

fn render_task(api: &Api, sid: Sid) -> Result<serde_json::Value, TwilioError> {
    let task = api.render(|renderer| renderer.engine.task(sid).map(|task| renderer.task(task)));
    task.ok_or_else(|| api.not_found())
}

/// `GET .../Tasks/{WT}`.
pub(super) async fn fetch(api: Api) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid("task", SidKind::Task)?;
    Ok(HttpResponse::Ok().json(render_task(&api, sid)?))
}

/// `POST .../Tasks/{WT}`: `Attributes`, `Priority` and `AssignmentStatus` (`canceled`,
/// `wrapping`, `completed`, with `Reason` for the first and last), as one engine command: a
/// refused part (completing a pending task...) changes nothing, not even the attributes.
pub(super) async fn update(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid("task", SidKind::Task)?;
    for unsupported in ["TaskChannel", "VirtualStartTime"] {
        if form.get(unsupported).is_some() {
            return Err(TwilioError::invalid(format!("{unsupported} cannot be changed after creation here")));
        }
    }
    let reason = form.get("Reason").unwrap_or_default().to_owned();
    let status = match form.get("AssignmentStatus") {
        None => None,
        Some("canceled") => Some(TaskStatusChange::Canceled { reason: required_reason(&reason)? }),
        Some("completed") => Some(TaskStatusChange::Completed { reason: required_reason(&reason)? }),
        Some("wrapping") => Some(TaskStatusChange::Wrapping),
        Some(other) => {
            return Err(TwilioError::invalid(format!(
                "AssignmentStatus: {other:?} cannot be set; use canceled, wrapping or completed"
            )));
        }
    };
    let changes = TaskChanges {
        attributes: form.json_object("Attributes")?,
        priority: form.integer("Priority", 0..=MAX_PRIORITY)?,
        status,
    };
    if api.engine.read(|engine| engine.task(sid).is_none()) {
        return Err(api.not_found());
    }
    if changes != TaskChanges::default() {
        api.execute(Command::UpdateTask { task: sid, changes }, &[]).await?;
    }
    Ok(HttpResponse::Ok().json(render_task(&api, sid)?))
}

fn required_reason(reason: &str) -> Result<String, TwilioError> {
    if reason.trim().is_empty() {
        Err(TwilioError::invalid("Reason is required when AssignmentStatus is canceled or completed"))
    } else {
        Ok(reason.to_owned())
    }
}

/// Which reservations a list or fetch is scoped to.
#[derive(Clone, Copy)]
enum Parent {
    Task(Sid),
    Worker(Sid),
}

impl Parent {
    fn of_task(api: &Api) -> Result<Parent, TwilioError> {
        api.path_sid("task", SidKind::Task).map(Parent::Task)
    }

    fn of_worker(api: &Api) -> Result<Parent, TwilioError> {
        api.path_sid("worker", SidKind::Worker).map(Parent::Worker)
    }

    fn holds(self, engine: &Engine, reservation: &Reservation) -> bool {
        match self {
            Parent::Task(sid) => reservation.task == sid,
            Parent::Worker(sid) => engine.reservation_worker(reservation).sid == sid,
        }
    }
}

pub(super) async fn list_task_reservations(api: Api) -> Result<HttpResponse, TwilioError> {
    list_reservations(&api, Parent::of_task(&api)?)
}

pub(super) async fn list_worker_reservations(api: Api) -> Result<HttpResponse, TwilioError> {
    list_reservations(&api, Parent::of_worker(&api)?)
}

/// A task's or a worker's reservations, oldest first, filtered by `ReservationStatus` and
/// `WorkerSid`.
fn list_reservations(api: &Api, parent: Parent) -> Result<HttpResponse, TwilioError> {
    let query = &api.query;
    let list = api.list("reservations")?;
    let status = query.get("ReservationStatus").filter(|status| !status.is_empty());
    let worker = query.sid("WorkerSid", SidKind::Worker)?;
    // A status that does not exist is a mistake to report, not a filter that matches nothing.
    const STATUSES: [&str; 8] =
        ["pending", "accepted", "rejected", "timeout", "canceled", "rescinded", "wrapping", "completed"];
    if let Some(status) = status.filter(|status| !STATUSES.contains(status)) {
        return Err(TwilioError::invalid(format!(
            "ReservationStatus: {status:?} is not one of {}",
            STATUSES.join(", ")
        )));
    }
    let page = api.render(|renderer| {
        let engine = renderer.engine;
        // A parent that does not exist answers 404 (`None`), not an empty list.
        let mut shown: Vec<&Reservation> = match parent {
            Parent::Task(sid) => {
                let task = engine.task(sid)?;
                task.reservations.iter().filter_map(|sid| engine.reservation(*sid)).collect()
            }
            Parent::Worker(sid) => {
                engine.worker(sid)?;
                engine.reservations().filter(|r| parent.holds(engine, r)).collect()
            }
        };
        shown.retain(|reservation| {
            status.is_none_or(|status| reservation.status.as_str() == status)
                && worker.is_none_or(|worker| engine.reservation_worker(reservation).sid == worker)
        });
        shown.sort_unstable_by_key(|reservation| reservation.sid);
        let under_worker = matches!(parent, Parent::Worker(_));
        let position = |reservation: &&Reservation| reservation.sid.to_string();
        Some(
            renderer
                .page(&list, &shown, position, |reservation| renderer.reservation(reservation, under_worker)),
        )
    });
    Ok(HttpResponse::Ok().json(page.ok_or_else(|| api.not_found())?))
}

fn render_reservation(api: &Api, parent: Parent, sid: Sid) -> Result<serde_json::Value, TwilioError> {
    let found = api.render(|renderer| {
        let reservation = renderer.engine.reservation(sid).filter(|r| parent.holds(renderer.engine, r))?;
        Some(renderer.reservation(reservation, matches!(parent, Parent::Worker(_))))
    });
    found.ok_or_else(|| api.not_found())
}

pub(super) async fn fetch_task_reservation(api: Api) -> Result<HttpResponse, TwilioError> {
    let parent = Parent::of_task(&api)?;
    let sid = api.path_sid("reservation", SidKind::Reservation)?;
    Ok(HttpResponse::Ok().json(render_reservation(&api, parent, sid)?))
}

pub(super) async fn fetch_worker_reservation(api: Api) -> Result<HttpResponse, TwilioError> {
    let parent = Parent::of_worker(&api)?;
    let sid = api.path_sid("reservation", SidKind::Reservation)?;
    Ok(HttpResponse::Ok().json(render_reservation(&api, parent, sid)?))
}

pub(super) async fn update_task_reservation(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    update_reservation(api, Parent::of_task, form).await
}

pub(super) async fn update_worker_reservation(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    update_reservation(api, Parent::of_worker, form).await
}

/// `POST .../Reservations/{WR}`: `ReservationStatus` `accepted`, `rejected` (with
/// `WorkerActivitySid`), `wrapping` or `completed` (which wrap up or complete the task).
async fn update_reservation(
    api: Api,
    parent: fn(&Api) -> Result<Parent, TwilioError>,
    form: Params,
) -> Result<HttpResponse, TwilioError> {
    let parent = parent(&api)?;
    let sid = api.path_sid("reservation", SidKind::Reservation)?;
    if let Some(instruction) = form.get("Instruction") {
        return Err(TwilioError::invalid(format!(
            "Instruction {instruction:?} is not supported: Switchboard bridges the call itself once the \
             reservation is accepted (set ReservationStatus instead)"
        )));
    }
    let activity = form.sid("WorkerActivitySid", SidKind::Activity)?;
    let found = api.engine.read(|engine| {
        let reservation = engine.reservation(sid).filter(|r| parent.holds(engine, r))?;
        Some((reservation.task, reservation.status))
    });
    let (task, status) = found.ok_or_else(|| api.not_found())?;
    // Only the reservation that was accepted speaks for the task's work: another (rejected,
    // rescinded) offer of the same task must not wrap up or complete it.
    let holds_the_task = |wanted: &str| {
        if matches!(status, ReservationStatus::Accepted | ReservationStatus::Wrapping) {
            Ok(())
        } else {
            Err(TwilioError::invalid(format!(
                "ReservationStatus: a {} reservation cannot become {wanted}; only the accepted one can",
                status.as_str()
            )))
        }
    };
    let command = match form.required("ReservationStatus")? {
        "accepted" => Command::Accept { reservation: sid },
        "rejected" => Command::Reject { reservation: sid, activity },
        "wrapping" => {
            holds_the_task("wrapping")?;
            Command::WrapUp { task }
        }
        "completed" => {
            holds_the_task("completed")?;
            Command::Complete { task, reason: "reservation completed".to_owned() }
        }
        other => {
            return Err(TwilioError::invalid(format!(
                "ReservationStatus: {other:?} cannot be set; use accepted, rejected, wrapping or completed"
            )));
        }
    };
    api.execute(command, &[("WorkerActivitySid", activity)]).await?;
    Ok(HttpResponse::Ok().json(render_reservation(&api, parent, sid)?))
}

/// `GET .../Tasks/{WT}/Explain?WorkerSid=WK...`: why the worker is or is not offered the task,
/// the engine's first reason in checking order, with the failing clause and the values it read.
pub(super) async fn explain(api: Api) -> Result<HttpResponse, TwilioError> {
    let task = api.path_sid("task", SidKind::Task)?;
    let worker = api
        .query
        .sid("WorkerSid", SidKind::Worker)?
        .ok_or_else(|| TwilioError::invalid("WorkerSid is required"))?;
    let explained = api.engine.read(|engine| engine.explain(task, worker, crate::live::now()));
    let explanation =
        explained.map_err(|err| TwilioError::from_command(err.into(), &[("WorkerSid", Some(worker))]))?;
    let condition = explanation.condition();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "task_sid": task.to_string(),
        "worker_sid": worker.to_string(),
        "offered_or_eligible": matches!(explanation, Explanation::Offered { .. } | Explanation::Eligible { .. }),
        "reason": explanation.code(),
        "explanation": explanation.to_string(),
        "failing_clause": condition.map(|condition| condition.clause.clone()),
        "values": condition.map(|condition| {
            condition.values.iter().map(|(path, value)| (path.clone(), serde_json::json!(value))).collect::<serde_json::Map<_, _>>()
        }),
    })))
}
