//! The workspace and its activities (list, fetch, create).

use actix_web::HttpResponse;

use super::api::Api;
use super::error::TwilioError;
use super::params::Params;
use crate::routing::{Command, Scope, SidKind};

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
