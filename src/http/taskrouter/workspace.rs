//! The workspace (list, fetch, update) and its activities (list, fetch, create).

use actix_web::HttpResponse;

use super::api::Api;
use super::error::TwilioError;
use super::params::Params;
use crate::routing::{Command, Scope, SidKind, WorkspaceChanges};

/// `GET /v1/Workspaces`: the one workspace, so that a client can discover its SID.
pub(super) async fn list(api: Api) -> Result<HttpResponse, TwilioError> {
    let list = api.list("workspaces")?;
    let name = api.query.get("FriendlyName");
    Ok(HttpResponse::Ok().json(api.render(|renderer| {
        let settings = renderer.engine.settings();
        let shown: Vec<()> = match name {
            Some(name) if !name.eq_ignore_ascii_case(&settings.friendly_name) => vec![],
            _ => vec![()],
        };
        renderer.page(&list, &shown, |()| String::new(), |()| renderer.workspace())
    })))
}

/// `GET /v1/Workspaces/{WS}`.
pub(super) async fn fetch(api: Api) -> Result<HttpResponse, TwilioError> {
    Ok(HttpResponse::Ok().json(api.render(|renderer| renderer.workspace())))
}

/// `POST /v1/Workspaces/{WS}`: `FriendlyName`, `DefaultActivitySid` (new workers' activity),
/// `TimeoutActivitySid` (where an offer that times out sends the worker), `EventCallbackUrl`
/// (empty: none) and `EventsFilter` (empty: every event), which replace the settings
/// `events.callback_url` and `events.callback_filter`, `PrioritizeQueueOrder` (`FIFO`, `LIFO`)
/// and `MultiTaskEnabled` (only `true`: Switchboard always routes by channel capacity). All or
/// nothing; an unknown activity is a 400 naming its parameter.
pub(super) async fn update(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    if form.boolean("MultiTaskEnabled")? == Some(false) {
        return Err(TwilioError::invalid(
            "MultiTaskEnabled: Switchboard always routes with multitasking (each worker's capacity per task \
             channel); single-tasking workspaces are not supported. Give a worker capacity 1 on every channel \
             for one task at a time per channel",
        ));
    }
    let default_activity = form.sid("DefaultActivitySid", SidKind::Activity)?;
    let timeout_activity = form.sid("TimeoutActivitySid", SidKind::Activity)?;
    let changes = WorkspaceChanges {
        friendly_name: form.get("FriendlyName").map(str::to_owned),
        default_activity,
        timeout_activity,
        event_callback_url: form.get("EventCallbackUrl").map(str::to_owned),
        events_filter: form.get("EventsFilter").map(str::to_owned),
        prioritize_queue_order: form.order("PrioritizeQueueOrder")?,
    };
    let parameters = [("DefaultActivitySid", default_activity), ("TimeoutActivitySid", timeout_activity)];
    api.execute(Command::UpdateWorkspace(changes), &parameters).await?;
    fetch(api).await
}

/// `GET .../Activities`, filtered by `FriendlyName` and `Available`.
pub(super) async fn list_activities(api: Api) -> Result<HttpResponse, TwilioError> {
    let list = api.list("activities")?;
    let name = api.query.get("FriendlyName");
    let available = api.query.boolean("Available")?;
    Ok(HttpResponse::Ok().json(api.render(|renderer| {
        let mut shown: Vec<_> = renderer
            .engine
            .activities()
            .iter()
            .filter(|activity| name.is_none_or(|name| activity.friendly_name.eq_ignore_ascii_case(name)))
            .filter(|activity| available.is_none_or(|available| activity.available == available))
            .collect();
        // By SID, the order of creation, which page tokens rely on.
        shown.sort_unstable_by_key(|activity| activity.sid);
        renderer.page(
            &list,
            &shown,
            |activity| activity.sid.to_string(),
            |activity| renderer.activity(activity),
        )
    })))
}

/// `GET .../Activities/{WA}`.
pub(super) async fn fetch_activity(api: Api) -> Result<HttpResponse, TwilioError> {
    let sid = api.path_sid("activity", SidKind::Activity)?;
    let found = api.render(|renderer| {
        renderer.engine.activities().iter().find(|activity| activity.sid == sid).map(|a| renderer.activity(a))
    });
    Ok(HttpResponse::Ok().json(found.ok_or_else(|| api.not_found())?))
}

/// `POST .../Activities`: `FriendlyName` (required, unique ignoring case), `Available`.
pub(super) async fn create_activity(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    let command = Command::CreateActivity {
        friendly_name: form.required("FriendlyName")?.to_owned(),
        available: form.boolean("Available")?.unwrap_or(false),
    };
    let sid = api.execute(command, &[]).await?.ok_or_else(|| api.not_found())?;
    let found = api.render(|renderer| {
        renderer.engine.activities().iter().find(|activity| activity.sid == sid).map(|a| renderer.activity(a))
    });
    Ok(HttpResponse::Created().json(found.ok_or_else(|| api.not_found())?))
}

/// `GET .../RealTimeStatistics` (and `.../Statistics`, whose `realtime` part it is): the
/// workspace's task counts and workers per activity.
pub(super) async fn statistics(api: Api) -> Result<HttpResponse, TwilioError> {
    let realtime = api.render(|renderer| {
        let statistics = renderer.engine.workspace_statistics(renderer.now);
        renderer.workspace_statistics(&statistics)
    });
    super::statistics::statistics_response(&api, realtime, Scope::Workspace).await
}
