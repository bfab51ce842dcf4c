//! Workers: list (with TaskRouter's filters), create, fetch, update activity and attributes.

use actix_web::{HttpResponse, web};

use super::api::Api;
use super::error::TwilioError;
use super::params::Params;
use crate::agents::{AgentError, Agents};
use crate::expr::{Context, Expression};
use crate::routing::{Command, NewWorker, SidKind, validate_attributes};

/// `GET .../Workers`, filtered by `ActivityName`, `ActivitySid`, `Available`, `FriendlyName`,
/// `TargetWorkersExpression`, `TaskQueueName` and `TaskQueueSid`; in creation order.
pub(super) async fn list(api: Api) -> Result<HttpResponse, TwilioError> {
    let query = &api.query;
    let list = api.list("workers")?;
    let activity_name = query.get("ActivityName");
    let activity_sid = query.sid("ActivitySid", SidKind::Activity)?;
    let available = query.boolean("Available")?;
    let friendly_name = query.get("FriendlyName");
    let queue_name = query.get("TaskQueueName");
    let queue_sid = query.sid("TaskQueueSid", SidKind::TaskQueue)?;
    let expression = match query.get("TargetWorkersExpression").filter(|text| !text.trim().is_empty()) {
        Some(text) => Some(
            Expression::parse(text, Context::Queue)
                .map_err(|err| TwilioError::invalid(format!("TargetWorkersExpression: {err}")))?,
        ),
        None => None,
    };
    Ok(HttpResponse::Ok().json(api.render(|renderer| {
        let engine = renderer.engine;
        let queue_members = |queue: Option<&crate::routing::TaskQueue>| {
            queue.map(|queue| engine.queue_members(queue)).unwrap_or_default()
        };
        // Names match ignoring case, as they are unique ignoring case.
        let named =
            |name: &str| engine.queues().iter().find(|queue| queue.friendly_name.eq_ignore_ascii_case(name));
        let by_name = queue_name.map(|name| queue_members(named(name)));
        let by_sid = queue_sid.map(|sid| queue_members(engine.queue(sid)));
        let mut shown: Vec<_> = engine
            .workers()
            .filter(|worker| {
                let activity = engine.worker_activity(worker);
                activity_name.is_none_or(|name| activity.friendly_name.eq_ignore_ascii_case(name))
                    && activity_sid.is_none_or(|sid| activity.sid == sid)
                    && available.is_none_or(|available| activity.available == available)
                    && friendly_name.is_none_or(|name| worker.friendly_name.eq_ignore_ascii_case(name))
                    && by_name.as_ref().is_none_or(|members| members.contains(&worker.sid))
                    && by_sid.as_ref().is_none_or(|members| members.contains(&worker.sid))
                    && expression.as_ref().is_none_or(|expression| engine.worker_matches(worker, expression))
            })
            .collect();
        // By SID, the order of creation, which page tokens rely on.
        shown.sort_unstable_by_key(|worker| worker.sid);
        renderer.page(&list, &shown, |worker| worker.sid.to_string(), |worker| renderer.worker(worker))
    })))
}

/// `POST .../Workers`: `FriendlyName` (required, unique ignoring case), `Attributes`, `ActivitySid`.
pub(super) async fn create(
    api: Api,
    form: Params,
    agents: web::Data<Agents>,
) -> Result<HttpResponse, TwilioError> {
    let new = NewWorker {
        friendly_name: form.required("FriendlyName")?.to_owned(),
        attributes: form.json_object("Attributes")?.unwrap_or_else(|| serde_json::json!({})),
        activity: form.sid("ActivitySid", SidKind::Activity)?,
    };
    let activity = new.activity;
    let (sid, secret) = agents.create_worker(&api.engine, new).await.map_err(|err| match err {
        AgentError::Execute(err) => TwilioError::from_command(err, &[("ActivitySid", activity)]),
        other => TwilioError::from(other),
    })?;
    let worker = api.render(|renderer| renderer.engine.worker(sid).map(|worker| renderer.worker(worker)));
    let mut worker = worker.ok_or_else(|| api.not_found())?;
    // Only this answer, to the admin who created the worker, carries the secret.
    worker["sign_in_secret"] = secret.into();
    Ok(HttpResponse::Created().json(worker))
}

/// `GET .../Workers/{WK}`.
pub(super) async fn fetch(api: Api) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid("worker", SidKind::Worker)?;
    let worker = api.render(|renderer| renderer.engine.worker(sid).map(|worker| renderer.worker(worker)));
    Ok(HttpResponse::Ok().json(worker.ok_or_else(|| api.not_found())?))
}

/// `POST .../Workers/{WK}`: `ActivitySid` (with `RejectPendingReservations`) and `Attributes`.
/// Everything is checked before anything changes, so a refused update changes nothing; new
/// attributes are applied before the new activity, so that an agent who becomes available is
/// routed on the attributes sent with it.
pub(super) async fn update(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid("worker", SidKind::Worker)?;
    let attributes = form.json_object("Attributes")?;
    let activity = form.sid("ActivitySid", SidKind::Activity)?;
    let reject_pending = form.boolean("RejectPendingReservations")?.unwrap_or(false);
    if form.get("FriendlyName").is_some() {
        return Err(TwilioError::invalid("FriendlyName cannot be changed: create a new worker instead"));
    }
    if let Some(attributes) = &attributes {
        validate_attributes(attributes)?;
    }
    let activity_available = api.engine.read(|engine| {
        let worker_exists = engine.worker(sid).is_some();
        let available = activity.map(|activity| engine.activities().iter().find(|a| a.sid == activity));
        (worker_exists, available.map(|found| found.map(|activity| activity.available)))
    });
    match activity_available {
        (false, _) => return Err(api.not_found()),
        (true, Some(None)) => {
            let activity = activity.map(|sid| sid.to_string()).unwrap_or_default();
            return Err(TwilioError::invalid(format!("ActivitySid: activity {activity} does not exist")));
        }
        (true, Some(Some(true))) if reject_pending => {
            return Err(TwilioError::invalid(
                "RejectPendingReservations applies only when moving to an unavailable activity",
            ));
        }
        (true, None) if reject_pending => {
            return Err(TwilioError::invalid("RejectPendingReservations needs an ActivitySid"));
        }
        _ => {}
    }
    if let Some(attributes) = attributes {
        api.execute(Command::UpdateWorkerAttributes { worker: sid, attributes }, &[]).await?;
    }
    if let Some(activity) = activity {
        let command = Command::SetWorkerActivity { worker: sid, activity, reject_pending };
        api.execute(command, &[("ActivitySid", Some(activity))]).await?;
    }
    fetch(api).await
}
