//! Task channels (list, create, fetch, update, delete) and each worker's channels (list,
//! fetch, update its capacity and availability). A task channel in a path is its `TC` SID or
//! its unique name, as TaskRouter allows; a worker channel is its `WC` SID, or its task
//! channel's SID or unique name.

use actix_web::HttpResponse;

use super::api::Api;
use super::error::TwilioError;
use super::params::Params;
use crate::routing::{
    Command, Engine, MAX_CHANNEL_CAPACITY, NewTaskChannel, Sid, SidKind, TaskChannel, TaskChannelChanges,
    Worker,
};

/// `GET .../TaskChannels`, in creation order.
pub(super) async fn list(api: Api) -> Result<HttpResponse, TwilioError> {
    let list = api.list("channels")?;
    Ok(HttpResponse::Ok().json(api.render(|renderer| {
        let mut shown: Vec<&TaskChannel> = renderer.engine.channels().iter().collect();
        // By SID, the order of creation, which page tokens rely on.
        shown.sort_unstable_by_key(|channel| channel.sid);
        renderer.page(
            &list,
            &shown,
            |channel| channel.sid.to_string(),
            |channel| renderer.task_channel(channel),
        )
    })))
}

/// `POST .../TaskChannels`: `FriendlyName` and `UniqueName` (required; letters, digits and
/// `_`), `ChannelOptimizedRouting`. Every worker gets capacity 1 on it.
pub(super) async fn create(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    let new = NewTaskChannel {
        friendly_name: form.required("FriendlyName")?.to_owned(),
        unique_name: form.required("UniqueName")?.trim().to_owned(),
        channel_optimized_routing: form.boolean("ChannelOptimizedRouting")?.unwrap_or(false),
        default_capacity: 1,
    };
    let sid = api.execute(Command::CreateTaskChannel(new), &[]).await?.ok_or_else(|| api.not_found())?;
    Ok(HttpResponse::Created().json(rendered_channel(&api, sid)?))
}

/// `GET .../TaskChannels/{TC or unique name}`.
pub(super) async fn fetch(api: Api) -> Result<HttpResponse, TwilioError> {
    let sid = path_channel(&api)?;
    Ok(HttpResponse::Ok().json(rendered_channel(&api, sid)?))
}

/// `POST .../TaskChannels/{TC or unique name}`: `FriendlyName`, `ChannelOptimizedRouting`.
pub(super) async fn update(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    let sid = path_channel(&api)?;
    if form.get("UniqueName").is_some() {
        return Err(TwilioError::invalid(
            "UniqueName cannot be changed (tasks name the channel by it): create a new channel instead",
        ));
    }
    let changes = TaskChannelChanges {
        friendly_name: form.get("FriendlyName").map(str::to_owned),
        channel_optimized_routing: form.boolean("ChannelOptimizedRouting")?,
    };
    api.execute(Command::UpdateTaskChannel { channel: sid, changes }, &[]).await?;
    Ok(HttpResponse::Ok().json(rendered_channel(&api, sid)?))
}

/// `DELETE .../TaskChannels/{TC or unique name}`: 204 once durable; a channel an open task is
/// on, or a built-in one, is refused with Twilio's 409 (20409) and stays whole.
pub(super) async fn delete(api: Api) -> Result<HttpResponse, TwilioError> {
    let sid = path_channel(&api)?;
    api.execute(Command::Delete { resource: sid }, &[]).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET .../Workers/{WK}/Channels`: one per task channel, in creation order.
pub(super) async fn list_worker_channels(api: Api) -> Result<HttpResponse, TwilioError> {
    let worker = api.path_sid("worker", SidKind::Worker)?;
    let list = api.list("channels")?;
    let page = api.render(|renderer| {
        let worker = renderer.engine.worker(worker)?;
        let mut shown: Vec<_> = renderer.engine.worker_channels(worker).collect();
        shown.sort_unstable_by_key(|(channel, _)| channel.sid);
        let position =
            |(channel, _): &(&TaskChannel, _)| Sid::worker_channel(worker.sid, channel.sid).to_string();
        Some(renderer.page(&list, &shown, position, |&(channel, state)| {
            renderer.worker_channel(worker, channel, state)
        }))
    });
    Ok(HttpResponse::Ok().json(page.ok_or_else(|| api.not_found())?))
}

/// `GET .../Workers/{WK}/Channels/{WC, TC or unique name}`.
pub(super) async fn fetch_worker_channel(api: Api) -> Result<HttpResponse, TwilioError> {
    let (worker, channel) = path_worker_channel(&api)?;
    Ok(HttpResponse::Ok().json(rendered_worker_channel(&api, worker, channel)?))
}

/// `POST .../Workers/{WK}/Channels/{WC, TC or unique name}`: `Capacity` (0 to 50; 0 takes no
/// new task) and `Available` (false takes no new task of the channel). Routing follows at
/// once: a slot freed or added is offered the best waiting task.
pub(super) async fn update_worker_channel(api: Api, form: Params) -> Result<HttpResponse, TwilioError> {
    let (worker, channel) = path_worker_channel(&api)?;
    let capacity =
        form.integer("Capacity", 0..=i64::from(MAX_CHANNEL_CAPACITY))?.map(|capacity| capacity as u32);
    let available = form.boolean("Available")?;
    let command = Command::SetWorkerChannel { worker, channel: channel.to_string(), capacity, available };
    api.execute(command, &[]).await?;
    Ok(HttpResponse::Ok().json(rendered_worker_channel(&api, worker, channel)?))
}

/// The task channel named in the path by its SID or unique name.
fn path_channel(api: &Api) -> Result<Sid, TwilioError> {
    let key = api.path_text("channel");
    let sid = api.engine.read(|engine| engine.task_channel_by_key(key).map(|channel| channel.sid));
    sid.ok_or_else(|| api.not_found())
}

/// The worker and the task channel of a worker channel's path.
fn path_worker_channel(api: &Api) -> Result<(Sid, Sid), TwilioError> {
    let worker = api.path_sid("worker", SidKind::Worker)?;
    let key = api.path_text("channel");
    let channel = api.engine.read(|engine| {
        let worker = engine.worker(worker)?;
        worker_channel_by_key(engine, worker, key).map(|channel| channel.sid)
    });
    Ok((worker, channel.ok_or_else(|| api.not_found())?))
}

/// The task channel of `worker`'s channel `key`: its `WC` SID, or the task channel's SID or
/// unique name.
fn worker_channel_by_key<'a>(engine: &'a Engine, worker: &Worker, key: &str) -> Option<&'a TaskChannel> {
    match Sid::parse(key, SidKind::WorkerChannel) {
        Ok(sid) => {
            engine.channels().iter().find(|channel| Sid::worker_channel(worker.sid, channel.sid) == sid)
        }
        Err(_) => engine.task_channel_by_key(key),
    }
}

fn rendered_channel(api: &Api, sid: Sid) -> Result<serde_json::Value, TwilioError> {
    let found = api.render(|renderer| {
        renderer.engine.task_channel_by_key(&sid.to_string()).map(|channel| renderer.task_channel(channel))
    });
    found.ok_or_else(|| api.not_found())
}

fn rendered_worker_channel(api: &Api, worker: Sid, channel: Sid) -> Result<serde_json::Value, TwilioError> {
    let found = api.render(|renderer| {
        let engine = renderer.engine;
        let worker = engine.worker(worker)?;
        let (channel, state) = engine.worker_channels(worker).find(|(found, _)| found.sid == channel)?;
        Some(renderer.worker_channel(worker, channel, state))
    });
    found.ok_or_else(|| api.not_found())
}
