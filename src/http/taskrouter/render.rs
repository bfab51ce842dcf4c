//! Resources as TaskRouter's JSON: snake_case fields, `attributes` as a JSON string, ISO 8601
//! dates (TaskRouter v1's format, which Twilio's SDKs parse; the 2010 API's RFC 2822 is not
//! used here), absolute `url` and `links`, lists with Twilio's `meta` block.

use serde_json::{Value, json};

use super::params::{PageToken, Paging};
use crate::routing::{
    Activity, ActivityCount, Engine, Millis, QueueStatistics, Reservation, Sid, Task, TaskChannel, TaskOrder,
    TaskQueue, TaskStatistics, Worker, WorkerChannel, Workflow, WorkspaceStatistics,
};

/// A list request: its resource key (`workers`), path, filters and page.
pub(crate) struct List<'a> {
    pub key: &'a str,
    pub path: &'a str,
    /// The query parameters to keep in the page links (every filter, not the paging).
    pub filters: Vec<(&'a str, &'a str)>,
    pub paging: Paging,
}

/// Renders resources of one workspace for one request.
pub(crate) struct Renderer<'a> {
    pub engine: &'a Engine,
    /// `scheme://host` as the client reached us, so that `url` and paging links work through
    /// the same address.
    pub base: &'a str,
    pub account_sid: &'a str,
    /// The server's event callback settings, shown while the workspace has none of its own.
    pub events: &'a crate::config::EventSettings,
    pub now: Millis,
}

/// The links of a queue or workflow: its workspace and statistics.
fn statistics_links(workspace: &str, url: &str) -> Value {
    json!({
        "workspace": workspace,
        "statistics": format!("{url}/Statistics"),
        "real_time_statistics": format!("{url}/RealTimeStatistics"),
        "cumulative_statistics": format!("{url}/CumulativeStatistics"),
    })
}

/// Workers per activity, as the statistics resources list them.
fn activity_counts(counts: &[ActivityCount]) -> Vec<Value> {
    counts
        .iter()
        .map(|count| json!({"sid": count.sid.to_string(), "friendly_name": count.friendly_name, "workers": count.workers}))
        .collect()
}

/// `counts` (an object) with `fields` added.
fn with_fields(mut counts: Value, fields: Value) -> Value {
    if let (Value::Object(into), Value::Object(fields)) = (&mut counts, fields) {
        into.extend(fields);
    }
    counts
}

/// The task counts every statistics resource shares.
fn task_statistics(statistics: &TaskStatistics) -> Value {
    json!({
        "total_tasks": statistics.total_tasks,
        "tasks_by_status": statistics.tasks_by_status,
        "tasks_by_priority": statistics.tasks_by_priority.iter().map(|(priority, count)| (priority.to_string(), json!(count))).collect::<serde_json::Map<String, Value>>(),
        "longest_task_waiting_age": statistics.longest_task_waiting_age,
        "longest_task_waiting_sid": optional_sid(statistics.longest_task_waiting_sid),
    })
}

/// TaskRouter v1's date format: `2026-11-24T09:30:00Z`.
pub(crate) fn date(at: Millis) -> Value {
    match jiff::Timestamp::from_millisecond(at) {
        Ok(timestamp) => Value::String(timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        Err(_) => Value::Null,
    }
}

/// `text`, or null when it is empty.
fn some_text(text: &str) -> Value {
    let text = text.trim();
    if text.is_empty() { Value::Null } else { Value::String(text.to_owned()) }
}

fn optional_sid(sid: Option<Sid>) -> Value {
    sid.map_or(Value::Null, |sid| Value::String(sid.to_string()))
}

impl Renderer<'_> {
    fn workspace_url(&self) -> String {
        format!("{}/v1/Workspaces/{}", self.base, self.engine.workspace_sid())
    }

    pub(crate) fn workspace(&self) -> Value {
        let settings = self.engine.settings();
        let activity_name = |sid: Sid| {
            self.engine.activities().iter().find(|a| a.sid == sid).map(|a| a.friendly_name.clone())
        };
        let url = self.workspace_url();
        json!({
            "account_sid": self.account_sid,
            "sid": self.engine.workspace_sid().to_string(),
            "friendly_name": settings.friendly_name,
            "default_activity_sid": settings.default_activity.to_string(),
            "default_activity_name": activity_name(settings.default_activity),
            "timeout_activity_sid": settings.timeout_activity.to_string(),
            "timeout_activity_name": activity_name(settings.timeout_activity),
            "event_callback_url": some_text(settings.event_callback_url.as_deref().unwrap_or(&self.events.callback_url)),
            "events_filter": some_text(settings.events_filter.as_deref().unwrap_or(&self.events.callback_filter)),
            "multi_task_enabled": true,
            "prioritize_queue_order": settings.prioritize_queue_order.as_str(),
            "date_created": null,
            "date_updated": null,
            "url": url,
            "links": {
                "activities": format!("{url}/Activities"),
                "workers": format!("{url}/Workers"),
                "task_queues": format!("{url}/TaskQueues"),
                "workflows": format!("{url}/Workflows"),
                "tasks": format!("{url}/Tasks"),
                "task_channels": format!("{url}/TaskChannels"),
                "events": format!("{url}/Events"),
                "statistics": format!("{url}/Statistics"),
                "real_time_statistics": format!("{url}/RealTimeStatistics"),
                "cumulative_statistics": format!("{url}/CumulativeStatistics"),
            },
        })
    }

    pub(crate) fn activity(&self, activity: &Activity) -> Value {
        let workspace = self.workspace_url();
        json!({
            "account_sid": self.account_sid,
            "workspace_sid": self.engine.workspace_sid().to_string(),
            "sid": activity.sid.to_string(),
            "friendly_name": activity.friendly_name,
            "available": activity.available,
            "date_created": null,
            "date_updated": null,
            "url": format!("{workspace}/Activities/{}", activity.sid),
            "links": { "workspace": workspace },
        })
    }

    pub(crate) fn worker(&self, worker: &Worker) -> Value {
        let workspace = self.workspace_url();
        let url = format!("{workspace}/Workers/{}", worker.sid);
        let activity = self.engine.worker_activity(worker);
        let status_changed = date(worker.activity_changed_at());
        json!({
            "account_sid": self.account_sid,
            "workspace_sid": self.engine.workspace_sid().to_string(),
            "sid": worker.sid.to_string(),
            "friendly_name": worker.friendly_name,
            "attributes": worker.attributes.to_string(),
            "activity_sid": activity.sid.to_string(),
            "activity_name": activity.friendly_name,
            "available": activity.available,
            "date_created": date(worker.created_at),
            "date_updated": date(worker.updated_at),
            "date_status_changed": status_changed,
            "url": url,
            "links": {
                "activity": format!("{workspace}/Activities/{}", activity.sid),
                "workspace": workspace,
                "reservations": format!("{url}/Reservations"),
                "channels": format!("{url}/Channels"),
                "worker_channels": format!("{url}/Channels"),
                "worker_statistics": format!("{url}/Statistics"),
            },
        })
    }

    pub(crate) fn task_channel(&self, channel: &TaskChannel) -> Value {
        let workspace = self.workspace_url();
        json!({
            "account_sid": self.account_sid,
            "workspace_sid": self.engine.workspace_sid().to_string(),
            "sid": channel.sid.to_string(),
            "friendly_name": channel.friendly_name,
            "unique_name": channel.unique_name,
            "channel_optimized_routing": channel.channel_optimized_routing,
            "date_created": date(channel.created_at),
            "date_updated": date(channel.updated_at),
            "url": format!("{workspace}/TaskChannels/{}", channel.sid),
            "links": { "workspace": workspace },
        })
    }

    /// A worker's capacity on one channel. `assigned_tasks` counts the tasks that hold
    /// capacity: offered (a pending reservation already takes a slot, as on TaskRouter),
    /// assigned and wrapping. Its dates are the worker's (it changes with the worker), created
    /// no earlier than the channel.
    pub(crate) fn worker_channel(
        &self,
        worker: &Worker,
        channel: &TaskChannel,
        state: WorkerChannel,
    ) -> Value {
        let sid = Sid::worker_channel(worker.sid, channel.sid);
        let free = state.capacity.saturating_sub(state.busy);
        let percentage = (free * 100).checked_div(state.capacity).unwrap_or(0);
        json!({
            "account_sid": self.account_sid,
            "workspace_sid": self.engine.workspace_sid().to_string(),
            "sid": sid.to_string(),
            "worker_sid": worker.sid.to_string(),
            "task_channel_sid": channel.sid.to_string(),
            "task_channel_unique_name": channel.unique_name,
            "configured_capacity": state.capacity,
            "available_capacity_percentage": percentage,
            "assigned_tasks": state.busy,
            "available": state.available,
            "date_created": date(worker.created_at.max(channel.created_at)),
            "date_updated": date(worker.updated_at.max(channel.created_at)),
            "url": format!("{}/Workers/{}/Channels/{sid}", self.workspace_url(), worker.sid),
        })
    }

    pub(crate) fn queue(&self, queue: &TaskQueue) -> Value {
        let workspace = self.workspace_url();
        let url = format!("{workspace}/TaskQueues/{}", queue.sid);
        json!({
            "account_sid": self.account_sid,
            "workspace_sid": self.engine.workspace_sid().to_string(),
            "sid": queue.sid.to_string(),
            "friendly_name": queue.friendly_name,
            "target_workers": queue.target_workers,
            "task_order": match queue.task_order { TaskOrder::Fifo => "FIFO", TaskOrder::Lifo => "LIFO" },
            "max_reserved_workers": queue.max_reserved_workers,
            "wrap_up_limit": queue.wrap_up.limit_seconds,
            "disposition_codes": queue.wrap_up.dispositions,
            "reservation_activity_sid": null,
            "reservation_activity_name": null,
            "assignment_activity_sid": null,
            "assignment_activity_name": null,
            "event_callback_url": null,
            "date_created": date(queue.created_at),
            "date_updated": date(queue.updated_at),
            "url": url,
            "links": statistics_links(&workspace, &url),
        })
    }

    pub(crate) fn workflow(&self, workflow: &Workflow) -> Value {
        let workspace = self.workspace_url();
        let url = format!("{workspace}/Workflows/{}", workflow.sid);
        json!({
            "account_sid": self.account_sid,
            "workspace_sid": self.engine.workspace_sid().to_string(),
            "sid": workflow.sid.to_string(),
            "friendly_name": workflow.friendly_name,
            "configuration": workflow.configuration,
            "task_reservation_timeout": workflow.task_reservation_timeout,
            "assignment_callback_url": null,
            "fallback_assignment_callback_url": null,
            "document_content_type": "application/json",
            "date_created": date(workflow.created_at),
            "date_updated": date(workflow.updated_at),
            "url": url,
            "links": statistics_links(&workspace, &url),
        })
    }

    /// A task queue's `RealTimeStatistics`, as TaskRouter names its fields.
    pub(crate) fn queue_statistics(&self, queue: &TaskQueue, statistics: &QueueStatistics) -> Value {
        let workspace = self.workspace_url();
        let activities = activity_counts(&statistics.activity_statistics);
        let fields = json!({
            "account_sid": self.account_sid,
            "workspace_sid": self.engine.workspace_sid().to_string(),
            "task_queue_sid": queue.sid.to_string(),
            "longest_relative_task_age_in_queue": statistics.longest_relative_task_age_in_queue,
            "longest_relative_task_sid_in_queue": optional_sid(statistics.longest_relative_task_sid_in_queue),
            "total_eligible_workers": statistics.total_eligible_workers,
            "total_available_workers": statistics.total_available_workers,
            "activity_statistics": activities,
            "url": format!("{workspace}/TaskQueues/{}/RealTimeStatistics", queue.sid),
        });
        with_fields(task_statistics(&statistics.tasks), fields)
    }

    /// The workspace's `RealTimeStatistics`.
    pub(crate) fn workspace_statistics(&self, statistics: &WorkspaceStatistics) -> Value {
        let fields = json!({
            "account_sid": self.account_sid,
            "workspace_sid": self.engine.workspace_sid().to_string(),
            "total_workers": statistics.total_workers,
            "activity_statistics": activity_counts(&statistics.activity_statistics),
            "url": format!("{}/RealTimeStatistics", self.workspace_url()),
        });
        with_fields(task_statistics(&statistics.tasks), fields)
    }

    /// A workflow's `RealTimeStatistics`.
    pub(crate) fn workflow_statistics(&self, workflow: &Workflow, statistics: &TaskStatistics) -> Value {
        let fields = json!({
            "account_sid": self.account_sid,
            "workspace_sid": self.engine.workspace_sid().to_string(),
            "workflow_sid": workflow.sid.to_string(),
            "url": format!("{}/Workflows/{}/RealTimeStatistics", self.workspace_url(), workflow.sid),
        });
        with_fields(task_statistics(statistics), fields)
    }

    pub(crate) fn task(&self, task: &Task) -> Value {
        let workspace = self.workspace_url();
        let url = format!("{workspace}/Tasks/{}", task.sid);
        let workflow = self.engine.task_workflow(task);
        let queue = self.engine.task_queue(task);
        let channel = self.engine.task_channel(task);
        json!({
            "account_sid": self.account_sid,
            "workspace_sid": self.engine.workspace_sid().to_string(),
            "sid": task.sid.to_string(),
            "attributes": task.attributes.to_string(),
            "assignment_status": task.status.as_str(),
            "priority": task.priority,
            "reason": task.reason,
            "age": (self.now - task.created_at).max(0) / 1000,
            "timeout": task.ttl,
            "task_queue_sid": optional_sid(queue.map(|queue| queue.sid)),
            "task_queue_friendly_name": queue.map(|queue| queue.friendly_name.clone()),
            "task_queue_entered_date": task.queue_entered_at.map_or(Value::Null, date),
            "workflow_sid": workflow.sid.to_string(),
            "workflow_friendly_name": workflow.friendly_name,
            "task_channel_sid": channel.sid.to_string(),
            "task_channel_unique_name": channel.unique_name,
            "addons": "{}",
            "virtual_start_time": date(task.virtual_start),
            "ignore_capacity": false,
            "routing_target": null,
            "date_created": date(task.created_at),
            "date_updated": date(task.updated_at),
            "url": url,
            "links": {
                "task_queue": queue.map(|queue| format!("{workspace}/TaskQueues/{}", queue.sid)),
                "workflow": format!("{workspace}/Workflows/{}", workflow.sid),
                "workspace": workspace,
                "reservations": format!("{url}/Reservations"),
            },
        })
    }

    /// A reservation, at its task's URL or (`under_worker`) its worker's, as Twilio has both.
    pub(crate) fn reservation(&self, reservation: &Reservation, under_worker: bool) -> Value {
        let workspace = self.workspace_url();
        let worker = self.engine.reservation_worker(reservation);
        let task_url = format!("{workspace}/Tasks/{}", reservation.task);
        let worker_url = format!("{workspace}/Workers/{}", worker.sid);
        let parent = if under_worker { &worker_url } else { &task_url };
        json!({
            "account_sid": self.account_sid,
            "workspace_sid": self.engine.workspace_sid().to_string(),
            "sid": reservation.sid.to_string(),
            "task_sid": reservation.task.to_string(),
            "worker_sid": worker.sid.to_string(),
            "worker_name": worker.friendly_name,
            "reservation_status": reservation.status.as_str(),
            "date_created": date(reservation.created_at),
            "date_updated": date(reservation.updated_at),
            "url": format!("{parent}/Reservations/{}", reservation.sid),
            "links": { "task": task_url, "worker": worker_url, "workspace": workspace },
        })
    }

    /// One page of a list: `items` are every match, ordered by `position` (ascending or
    /// descending; only the page's are rendered); `path` is the list's path and `filters` the
    /// query parameters to keep in the page links. `next_page_url` carries a [`PageToken`], so
    /// that following it stays right while the list changes; `Page` alone counts from the start.
    pub(crate) fn page<T>(
        &self,
        list: &List<'_>,
        items: &[T],
        position: impl Fn(&T) -> String,
        render: impl Fn(&T) -> Value,
    ) -> Value {
        let Paging { page, page_size, ref token } = list.paging;
        let start = match token {
            Some(token) => {
                items.iter().position(|item| token.precedes(&position(item))).unwrap_or(items.len())
            }
            None => page.saturating_mul(page_size).min(items.len()),
        };
        let end = items.len().min(start.saturating_add(page_size).saturating_add(1));
        self.page_from(list, &items[start..end], position, render)
    }

    /// [`Renderer::page`] for a list read only as far as the page: `items` start with the
    /// page's first, and one more than the page tells that another page follows.
    pub(crate) fn page_from<T>(
        &self,
        list: &List<'_>,
        items: &[T],
        position: impl Fn(&T) -> String,
        render: impl Fn(&T) -> Value,
    ) -> Value {
        let List { key, path, filters, paging } = list;
        let Paging { page, page_size, ref token } = *paging;
        let shown: Vec<Value> = items.iter().take(page_size).map(render).collect();
        let link = |page: usize, token: Option<&PageToken>| {
            let mut query: Vec<(&str, String)> =
                filters.iter().map(|&(key, value)| (key, value.to_owned())).collect();
            query.push(("PageSize", page_size.to_string()));
            query.push(("Page", page.to_string()));
            if let Some(token) = token {
                query.push(("PageToken", token.to_string()));
            }
            let encoded = serde_urlencoded::to_string(&query).unwrap_or_default();
            format!("{}{path}?{encoded}", self.base)
        };
        // Another page follows, so there are at least two items to tell the list's direction.
        let next = (items.len() > page_size).then(|| {
            let next = PageToken {
                ascending: position(&items[0]) <= position(&items[items.len() - 1]),
                after: position(&items[page_size - 1]),
            };
            Value::String(link(page + 1, Some(&next)))
        });
        json!({
            *key: shown,
            "meta": {
                "key": key,
                "page": page,
                "page_size": page_size,
                "first_page_url": link(0, None),
                "previous_page_url": if page > 0 { Value::String(link(page - 1, None)) } else { Value::Null },
                "next_page_url": next.unwrap_or(Value::Null),
                "url": link(page, token.as_ref()),
            },
        })
    }
}
