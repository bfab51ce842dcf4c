//! Task channels (TaskRouter's `TaskChannels`) and the workspace's settings: creating and
//! changing channels (deleting one is in `removal.rs`), and updating the workspace.
//!
//! A channel created while workers exist gives each of them a worker channel on it at once
//! (capacity 1 through the API, as TaskRouter does; a built-in channel its own; available), and every queue a ready set for it, so that its
//! tasks are routed from the first one.
//!
//! A child of `engine.rs`, which owns the private state it reads and writes.

use super::*;

impl Engine {
    /// The channel named by `key`: its `TC` SID or its unique name.
    pub fn task_channel_by_key(&self, key: &str) -> Option<&TaskChannel> {
        self.channel_position(key).map(|idx| &self.channels[idx])
    }

    /// Where the channel named by `key` (SID or unique name) is in the engine's channel order.
    /// Unique names are unique ignoring case, so they are found ignoring case: `whatsapp` finds
    /// a `WhatsApp` an operator made before it was built in.
    pub(super) fn channel_position(&self, key: &str) -> Option<usize> {
        let sid = Sid::parse(key, SidKind::TaskChannel).ok();
        self.channels
            .iter()
            .position(|channel| channel.unique_name.eq_ignore_ascii_case(key) || Some(channel.sid) == sid)
    }

    /// A worker's channels, in the engine's channel order: each task channel with the worker's
    /// capacity, load and availability on it.
    pub fn worker_channels<'a>(
        &'a self,
        worker: &'a Worker,
    ) -> impl Iterator<Item = (&'a TaskChannel, WorkerChannel)> + 'a {
        self.channels.iter().zip(worker.channels.iter().copied())
    }

    /// The built-in channels a workspace made before they existed lacks (`whatsapp`), each to
    /// create with its capacity.
    pub fn missing_built_in_channels(&self) -> Vec<NewTaskChannel> {
        DEFAULT_CHANNELS
            .iter()
            .filter(|(name, _, _)| self.channel_position(name).is_none())
            .map(|&(unique_name, friendly_name, capacity)| NewTaskChannel {
                friendly_name: friendly_name.to_owned(),
                unique_name: unique_name.to_owned(),
                channel_optimized_routing: false,
                default_capacity: capacity,
            })
            .collect()
    }

    /// Adds a task channel (at most 64). Every worker gets its default capacity on it (1
    /// through the API), available.
    pub fn create_task_channel(&mut self, new: NewTaskChannel, now: Millis) -> Result<Sid, RoutingError> {
        validate_name("friendly_name", &new.friendly_name)?;
        validate_channel_name(&new.unique_name)?;
        if new.default_capacity > MAX_CHANNEL_CAPACITY {
            return Err(RoutingError::invalid(
                "default_capacity",
                format!("a channel's capacity is at most {MAX_CHANNEL_CAPACITY}"),
            ));
        }
        if let Some(taken) =
            self.channels.iter().find(|channel| channel.unique_name.eq_ignore_ascii_case(&new.unique_name))
        {
            return Err(RoutingError::invalid(
                "unique_name",
                format!(
                    "task channel {} is named {:?} (unique names ignore case)",
                    taken.sid, taken.unique_name
                ),
            ));
        }
        if self.channels.len() >= MAX_TASK_CHANNELS {
            return Err(RoutingError::invalid(
                "unique_name",
                format!("a workspace has at most {MAX_TASK_CHANNELS} task channels"),
            ));
        }
        // Checked: from here on nothing fails.
        let sid = self.sids.mint(SidKind::TaskChannel);
        let capacity = new.default_capacity;
        self.channels.push(TaskChannel {
            sid,
            unique_name: new.unique_name,
            friendly_name: new.friendly_name,
            default_capacity: capacity,
            channel_optimized_routing: new.channel_optimized_routing,
            created_at: now,
            updated_at: now,
        });
        for queue in &mut self.queues {
            queue.ready.push(Default::default());
        }
        for idx in 0..self.workers.len() {
            self.workers[idx].channels.push(WorkerChannel { capacity, busy: 0, available: true });
            self.refresh_ready(idx);
        }
        self.emit(now, EventType::TaskChannelCreated, sid, |event| event.channel = Some(sid));
        Ok(sid)
    }

    /// Changes a channel's friendly name or its `channel_optimized_routing` flag.
    pub fn update_task_channel(
        &mut self,
        sid: Sid,
        changes: TaskChannelChanges,
        now: Millis,
    ) -> Result<(), RoutingError> {
        let idx = self
            .channels
            .iter()
            .position(|channel| channel.sid == sid)
            .ok_or(RoutingError::not_found(sid))?;
        if let Some(name) = &changes.friendly_name {
            validate_name("friendly_name", name)?;
        }
        let channel = &mut self.channels[idx];
        if let Some(name) = changes.friendly_name {
            channel.friendly_name = name;
        }
        if let Some(optimized) = changes.channel_optimized_routing {
            channel.channel_optimized_routing = optimized;
        }
        channel.updated_at = now;
        self.emit(now, EventType::TaskChannelUpdated, sid, |event| event.channel = Some(sid));
        Ok(())
    }

    /// Changes the workspace's settings, all or nothing: a new default activity applies to the
    /// workers created from now on, a new timeout activity to the offers that time out from now
    /// on, a new queue order to the next choice a worker's free capacity makes.
    pub fn update_workspace(&mut self, changes: WorkspaceChanges, now: Millis) -> Result<(), RoutingError> {
        self.change_settings(changes)?;
        let workspace = self.workspace_sid;
        self.emit(now, EventType::WorkspaceUpdated, workspace, |_| {});
        Ok(())
    }

    /// Sets the default and timeout activities and the FIFO/LIFO preference, without an event:
    /// how a workspace file starts, and what logs written before workspace updates hold.
    pub fn configure_workspace(
        &mut self,
        default_activity: Sid,
        timeout_activity: Sid,
        prioritize_queue_order: TaskOrder,
    ) -> Result<(), RoutingError> {
        self.change_settings(WorkspaceChanges {
            default_activity: Some(default_activity),
            timeout_activity: Some(timeout_activity),
            prioritize_queue_order: Some(prioritize_queue_order),
            ..WorkspaceChanges::default()
        })
    }

    fn change_settings(&mut self, changes: WorkspaceChanges) -> Result<(), RoutingError> {
        let WorkspaceChanges {
            friendly_name,
            default_activity,
            timeout_activity,
            event_callback_url,
            events_filter,
            prioritize_queue_order,
        } = changes;
        if let Some(name) = &friendly_name {
            validate_name("friendly_name", name)?;
        }
        for activity in [default_activity, timeout_activity].into_iter().flatten() {
            self.activity_index(activity)?;
        }
        if let Some(url) = &event_callback_url {
            validate_callback_url(url)?;
        }
        if let Some(filter) = &events_filter {
            validate_events_filter(filter)?;
        }
        // Checked: from here on nothing fails.
        let settings = &mut self.settings;
        if let Some(name) = friendly_name {
            settings.friendly_name = name;
        }
        if let Some(activity) = default_activity {
            settings.default_activity = activity;
        }
        if let Some(activity) = timeout_activity {
            settings.timeout_activity = activity;
        }
        if let Some(url) = event_callback_url {
            settings.event_callback_url = Some(url.trim().to_owned());
        }
        if let Some(filter) = events_filter {
            settings.events_filter = Some(filter.trim().to_owned());
        }
        if let Some(order) = prioritize_queue_order {
            settings.prioritize_queue_order = order;
        }
        Ok(())
    }
}

/// Whether `name` can name a task channel: what an expression can name too (letters, digits
/// and `_`, not starting with a digit; TaskRouter warns that hyphens break parsing), and not
/// a `TC` SID, which a path may give instead of the name.
fn validate_channel_name(name: &str) -> Result<(), RoutingError> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
    let identifier = starts_well && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier || name.len() > MAX_FRIENDLY_NAME_CHARS {
        return Err(RoutingError::invalid(
            "unique_name",
            format!(
                "{name:?}: use 1 to 64 letters, digits and `_`, starting with a letter (no spaces or hyphens)"
            ),
        ));
    }
    if Sid::parse(name, SidKind::TaskChannel).is_ok() {
        return Err(RoutingError::invalid(
            "unique_name",
            format!("{name:?} is shaped like a task channel SID"),
        ));
    }
    Ok(())
}

/// An absolute `http` or `https` URL, or empty (no callbacks).
fn validate_callback_url(url: &str) -> Result<(), RoutingError> {
    let url = url.trim();
    if url.is_empty() {
        return Ok(());
    }
    let lowered = url.to_ascii_lowercase();
    let host = ["http://", "https://"].iter().find_map(|scheme| lowered.strip_prefix(scheme));
    let well_formed = host.is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !host.starts_with(':')
    });
    if !well_formed || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RoutingError::invalid(
            "event_callback_url",
            format!("{url:?} is not an absolute http or https URL (empty: no callbacks)"),
        ));
    }
    Ok(())
}

/// Comma-separated TaskRouter event types (`task.created,task.canceled`), or empty (all).
fn validate_events_filter(filter: &str) -> Result<(), RoutingError> {
    let unknown: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty() && EventType::named(name).is_none())
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(RoutingError::invalid(
            "events_filter",
            format!(
                "unknown event type(s): {} (e.g. task.created,worker.activity.update)",
                unknown.join(", ")
            ),
        ))
    }
}
