//! The engine: TaskRouter's state machine, in memory, on a clock the caller supplies.
//!
//! Every command takes `now` and either fails without changing anything or applies fully and
//! queues its events (read them with [`Engine::take_events`]). Timers are data: the caller asks
//! for [`Engine::next_deadline`] and calls [`Engine::advance`] when it is reached; deadlines
//! fire at their own time, in order, so a late `advance` replays them exactly.
//!
//! Assignment runs after every command, from both sides: a task entering a step looks for the
//! longest-idle eligible worker in its queue's ready set (never a scan of all workers), and a
//! worker that frees up looks for the best waiting task across its queues.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{Value, json};

use super::event::{Event, EventType};
use super::model::*;
use super::sid::{Sid, SidGenerator, SidKind, SidMap};
use super::skill::Skill;
use super::workflow::{KnownWorker, Position, Step, WorkflowConfig, clock};
use super::{Millis, RoutingError};
use crate::expr::{Context, Expression, Scope, WorkerFacts};

#[path = "channels.rs"]
mod channels;
#[cfg(test)]
#[path = "invariants.rs"]
pub(super) mod invariants;
#[path = "removal.rs"]
mod removal;
#[path = "snapshot.rs"]
pub mod snapshot;

/// Workspace-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSettings {
    pub friendly_name: String,
    /// Activity of new workers.
    pub default_activity: Sid,
    /// Activity a worker is moved to when a reservation times out.
    pub timeout_activity: Sid,
    /// Which kind of queue a worker in both FIFO and LIFO queues serves first.
    pub prioritize_queue_order: TaskOrder,
    /// Where events are POSTed (`EventCallbackUrl`); `None` until set through the API (then the
    /// server's `events.callback_url` setting applies), empty for none.
    pub event_callback_url: Option<String>,
    /// The event types sent there (`EventsFilter`, comma-separated); `None` until set through
    /// the API (then `events.callback_filter` applies), empty for all.
    pub events_filter: Option<String>,
}

/// A task channel to create (TaskRouter's `POST .../TaskChannels`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTaskChannel {
    pub friendly_name: String,
    pub unique_name: String,
    pub channel_optimized_routing: bool,
    /// The capacity every worker gets on it: 1 through the API, as TaskRouter gives; a built-in
    /// channel added to an older workspace gets its own.
    pub default_capacity: u32,
}

/// Changes to a task channel; `None` leaves a field as it is. Its unique name never changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskChannelChanges {
    pub friendly_name: Option<String>,
    pub channel_optimized_routing: Option<bool>,
}

/// Changes to the workspace's settings (TaskRouter's `POST /Workspaces/{WS}`); `None` leaves a
/// setting as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkspaceChanges {
    pub friendly_name: Option<String>,
    pub default_activity: Option<Sid>,
    pub timeout_activity: Option<Sid>,
    /// An absolute `http(s)` URL, or empty for no callbacks.
    pub event_callback_url: Option<String>,
    /// Comma-separated event types, or empty for all.
    pub events_filter: Option<String>,
    pub prioritize_queue_order: Option<TaskOrder>,
}

pub struct Engine {
    sids: SidGenerator,
    pub(super) workspace_sid: Sid,
    pub(super) settings: WorkspaceSettings,
    pub(super) activities: Vec<Activity>,
    pub(super) channels: Vec<TaskChannel>,
    skills: Vec<Skill>,
    pub(super) workers: Vec<Worker>,
    worker_by_sid: SidMap<usize>,
    worker_by_name: HashMap<String, usize>,
    pub(super) queues: Vec<TaskQueue>,
    queue_by_sid: SidMap<usize>,
    pub(super) workflows: Vec<Workflow>,
    workflow_by_sid: SidMap<usize>,
    // Boxed: the map's table then holds 32-byte entries, so growing it (100,000 tasks and more)
    // moves pointers rather than whole tasks, and its spare capacity costs little.
    pub(super) tasks: SidMap<Box<Task>>,
    pub(super) reservations: SidMap<Reservation>,
    timers: BTreeMap<TimerKey, Timer>,
    timer_seq: u64,
    task_seq: u64,
    events: Vec<Event>,
    event_seq: u64,
    dirty_tasks: VecDeque<Sid>,
    dirty_workers: VecDeque<usize>,
}

/// A worker to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorker {
    pub friendly_name: String,
    pub attributes: Value,
    /// Defaults to the workspace's default activity.
    pub activity: Option<Sid>,
}

/// A task queue to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTaskQueue {
    pub friendly_name: String,
    pub target_workers: String,
    pub task_order: TaskOrder,
    pub max_reserved_workers: u32,
    pub wrap_up: WrapUpRules,
}

/// Changes to a task queue; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskQueueChanges {
    pub friendly_name: Option<String>,
    pub target_workers: Option<String>,
    pub task_order: Option<TaskOrder>,
    pub max_reserved_workers: Option<u32>,
    /// Seconds; 0 removes the limit.
    pub wrap_up_limit: Option<u32>,
    /// Replaces the list; an empty one asks for no code.
    pub dispositions: Option<Vec<String>>,
}

/// Changes to a workflow; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkflowChanges {
    pub friendly_name: Option<String>,
    pub configuration: Option<String>,
    pub task_reservation_timeout: Option<u32>,
    /// Route every waiting task of the workflow again under the new configuration.
    pub re_evaluate_tasks: bool,
}

/// A workflow to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkflow {
    pub friendly_name: String,
    pub configuration: String,
    pub task_reservation_timeout: u32,
}

/// A transfer of an assigned task (`Engine::transfer`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTransfer {
    pub task: Sid,
    pub to: TransferTarget,
    pub mode: TransferMode,
    /// Default: the task's; never lower.
    pub priority: Option<i64>,
}

/// A task a worker starts themselves, assigned to them at once (`Engine::create_assigned`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAssigned {
    pub worker: Sid,
    pub attributes: Value,
    /// A channel unique name (`voice`...).
    pub channel: String,
}

/// A task about to be stored: what `create_task` and `transfer` choose.
struct FreshTask {
    attributes: Attributes,
    priority: i64,
    channel: usize,
    workflow: usize,
    virtual_start: Millis,
    ttl: u32,
    step: Step,
    transfer: Option<TransferOf>,
}

/// A task to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub attributes: Value,
    pub priority: Option<i64>,
    /// Seconds before an unassigned task is canceled (TTL).
    pub timeout: Option<u32>,
    /// Required unless the workspace has exactly one workflow.
    pub workflow: Option<Sid>,
    /// A channel unique name (`voice`, `sms`...) or `TC` SID; default `default`.
    pub channel: Option<String>,
}

/// What a task update changes (`Command::UpdateTask`, TaskRouter's `POST .../Tasks/{WT}`), as
/// one command; `None` leaves a part as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskChanges {
    pub attributes: Option<Value>,
    pub priority: Option<i64>,
    pub status: Option<TaskStatusChange>,
}

/// The assignment statuses a task update may set, each with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatusChange {
    /// A pending or reserved task ends unassigned; its offers are canceled.
    Canceled { reason: String },
    /// An assigned task moves to after-work; the worker's capacity stays held.
    Wrapping,
    /// An assigned or wrapping task ends; the worker's capacity is freed.
    Completed { reason: String },
}

/// One item of the engine's start-up defaults: (name, available).
const DEFAULT_ACTIVITIES: [(&str, bool); 4] =
    [("Offline", false), ("Available", true), ("Unavailable", false), ("Break", false)];
/// Task channels (unique name, friendly name) and the capacity new workers get on each. Calls,
/// texts and tasks created without a channel are routed on them, so they cannot be deleted.
/// TaskRouter's own defaults, and `whatsapp` for WhatsApp conversations (Flex routes them on
/// `chat`; here they have their own capacity and statistics). Workspaces made before it existed
/// get it with their first WhatsApp conversation ([`Engine::missing_built_in_channels`]).
const DEFAULT_CHANNELS: [(&str, &str, u32); 5] = [
    ("default", "Default", 1),
    ("voice", "Voice", 1),
    ("sms", "SMS", 3),
    ("chat", "Chat", 3),
    ("whatsapp", "WhatsApp", 3),
];

impl Engine {
    /// A workspace with the default activities (Offline default and timeout activity,
    /// Available, Unavailable, Break) and channels (default 1, voice 1, sms 3, chat 3, whatsapp 3).
    /// `salt` makes this workspace's SIDs distinct from another's.
    pub fn new(friendly_name: &str, salt: u64, now: Millis) -> Engine {
        let mut sids = SidGenerator::new(salt);
        let workspace_sid = sids.mint(SidKind::Workspace);
        let activities: Vec<Activity> = DEFAULT_ACTIVITIES
            .iter()
            .map(|&(name, available)| Activity::new(sids.mint(SidKind::Activity), name, available))
            .collect();
        let channels = DEFAULT_CHANNELS
            .iter()
            .map(|&(unique_name, friendly_name, capacity)| TaskChannel {
                sid: sids.mint(SidKind::TaskChannel),
                unique_name: unique_name.to_owned(),
                friendly_name: friendly_name.to_owned(),
                default_capacity: capacity,
                channel_optimized_routing: false,
                created_at: now,
                updated_at: now,
            })
            .collect();
        let offline = activities[0].sid;
        let mut engine = Engine {
            sids,
            workspace_sid,
            settings: WorkspaceSettings {
                friendly_name: friendly_name.to_owned(),
                default_activity: offline,
                timeout_activity: offline,
                prioritize_queue_order: TaskOrder::Fifo,
                event_callback_url: None,
                events_filter: None,
            },
            activities,
            channels,
            skills: Vec::new(),
            workers: Vec::new(),
            worker_by_sid: SidMap::default(),
            worker_by_name: HashMap::new(),
            queues: Vec::new(),
            queue_by_sid: SidMap::default(),
            workflows: Vec::new(),
            workflow_by_sid: SidMap::default(),
            tasks: SidMap::default(),
            reservations: SidMap::default(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            task_seq: 0,
            events: Vec::new(),
            event_seq: 0,
            dirty_tasks: VecDeque::new(),
            dirty_workers: VecDeque::new(),
        };
        for idx in 0..engine.activities.len() {
            let sid = engine.activities[idx].sid;
            engine.emit(now, EventType::ActivityCreated, sid, |event| event.activity = Some(sid));
        }
        engine
    }

    // ----- reading -----

    pub fn workspace_sid(&self) -> Sid {
        self.workspace_sid
    }

    pub fn settings(&self) -> &WorkspaceSettings {
        &self.settings
    }

    /// The sequence number of the last event produced (0 before any).
    pub fn events_emitted(&self) -> u64 {
        self.event_seq
    }

    /// Events produced since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The earliest pending deadline (reservation timeout, step timeout, TTL, purge).
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.keys().next().map(|&(at, _)| at)
    }

    pub fn activity_by_name(&self, name: &str) -> Option<&Activity> {
        self.activities.iter().find(|activity| activity.friendly_name.eq_ignore_ascii_case(name))
    }

    pub fn activities(&self) -> &[Activity] {
        &self.activities
    }

    /// The skills catalogue, in creation order.
    pub fn skills(&self) -> &[Skill] {
        &self.skills
    }

    pub fn worker(&self, sid: Sid) -> Option<&Worker> {
        self.worker_by_sid.get(&sid).map(|&idx| &self.workers[idx])
    }

    pub fn worker_by_name(&self, name: &str) -> Option<&Worker> {
        self.worker_by_name.get(&name.to_lowercase()).map(|&idx| &self.workers[idx])
    }

    pub fn workers(&self) -> impl Iterator<Item = &Worker> {
        self.workers.iter()
    }

    pub fn worker_activity(&self, worker: &Worker) -> &Activity {
        &self.activities[worker.activity]
    }

    /// The worker's channel state for `channel` (SID or unique name).
    pub fn worker_channel(&self, worker: &Worker, channel: &str) -> Option<WorkerChannel> {
        worker.channels.get(self.channel_position(channel)?).copied()
    }

    pub fn queue(&self, sid: Sid) -> Option<&TaskQueue> {
        self.queue_by_sid.get(&sid).map(|&idx| &self.queues[idx])
    }

    pub fn queue_by_name(&self, name: &str) -> Option<&TaskQueue> {
        self.queues.iter().find(|queue| queue.friendly_name.eq_ignore_ascii_case(name))
    }

    pub fn queues(&self) -> &[TaskQueue] {
        &self.queues
    }

    /// The SIDs of the workers matching a queue's target expression, in creation order.
    pub fn queue_members(&self, queue: &TaskQueue) -> Vec<Sid> {
        queue.members.iter().map(|&idx| self.workers[idx].sid).collect()
    }

    /// Whether `worker` took `task` (accepted it; it may since be wrapping or completed): what
    /// the agent page lets an agent see and act on.
    pub fn worker_took_task(&self, worker: Sid, task: Sid) -> bool {
        let Some(task) = self.tasks.get(&task) else { return false };
        task.reservations.iter().filter_map(|sid| self.reservations.get(sid)).any(|reservation| {
            self.workers[reservation.worker].sid == worker
                && matches!(
                    reservation.status,
                    ReservationStatus::Accepted | ReservationStatus::Wrapping | ReservationStatus::Completed
                )
        })
    }

    pub fn workflow(&self, sid: Sid) -> Option<&Workflow> {
        self.workflow_by_sid.get(&sid).map(|&idx| &self.workflows[idx])
    }

    pub fn workflows(&self) -> &[Workflow] {
        &self.workflows
    }

    pub fn task(&self, sid: Sid) -> Option<&Task> {
        self.tasks.get(&sid).map(|task| &**task)
    }

    /// The queue a task waits in (or was assigned from).
    pub fn task_queue(&self, task: &Task) -> Option<&TaskQueue> {
        task.queue.map(|idx| &self.queues[idx])
    }

    /// The queue a waiting task is in and its place in line there (1 = next), counting only
    /// the tasks ahead of it in that queue's order; none for a task not waiting in a queue.
    /// Linear in the place: asked once per announcement, not per request.
    pub fn queue_position(&self, task: &Task) -> Option<(Sid, usize)> {
        let (queue, key) = (task.queue?, task.wait_key?);
        let queue = &self.queues[queue];
        Some((queue.sid, queue.waiting.range(..key).count() + 1))
    }

    /// Every task still kept (completed and canceled ones until they are purged), in no order.
    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values().map(|task| &**task)
    }

    pub fn task_workflow(&self, task: &Task) -> &Workflow {
        &self.workflows[task.workflow]
    }

    pub fn task_channel(&self, task: &Task) -> &TaskChannel {
        &self.channels[task.channel]
    }

    pub fn channels(&self) -> &[TaskChannel] {
        &self.channels
    }

    pub fn reservation(&self, sid: Sid) -> Option<&Reservation> {
        self.reservations.get(&sid)
    }

    /// Every reservation whose task is still kept, in no order.
    pub fn reservations(&self) -> impl Iterator<Item = &Reservation> {
        self.reservations.values()
    }

    pub fn reservation_worker(&self, reservation: &Reservation) -> &Worker {
        &self.workers[reservation.worker]
    }

    /// Whether a worker with `attributes` would be in `queue` (the TaskQueues list's
    /// `EvaluateWorkerAttributes` filter).
    pub fn queue_would_target(queue: &TaskQueue, attributes: &Value) -> bool {
        let facts = WorkerFacts {
            attributes,
            sid: None,
            friendly_name: None,
            activity_sid: None,
            activity_name: None,
        };
        queue.target_expression.evaluate(&Scope::worker(facts))
    }

    /// Whether a worker matches a worker expression (the Workers list's
    /// `TargetWorkersExpression` filter), with the same built-ins a queue's target sees.
    pub fn worker_matches(&self, worker: &Worker, expression: &Expression) -> bool {
        expression.evaluate(&Scope::worker(self.facts(worker)))
    }

    /// Whether a task's attributes match a task expression (the Tasks list's
    /// `EvaluateTaskAttributes` filter) at `now`.
    pub fn task_matches(task: &Task, expression: &Expression, now: Millis) -> bool {
        expression.evaluate(&Scope::task(&task.attributes).at(clock(now)))
    }

    /// The task's reservations still waiting for an answer.
    pub fn pending_reservations(&self, task: &Task) -> Vec<&Reservation> {
        task.reservations
            .iter()
            .filter_map(|sid| self.reservations.get(sid))
            .filter(|reservation| reservation.status == ReservationStatus::Pending)
            .collect()
    }

    // ----- configuration commands -----

    /// Adds an activity (at most 100 per workspace, names unique ignoring case).
    pub fn create_activity(
        &mut self,
        friendly_name: &str,
        available: bool,
        now: Millis,
    ) -> Result<Sid, RoutingError> {
        validate_name("friendly_name", friendly_name)?;
        if self.activity_by_name(friendly_name).is_some() {
            return Err(RoutingError::invalid(
                "friendly_name",
                format!("an activity named {friendly_name:?} exists"),
            ));
        }
        if self.activities.len() >= 100 {
            return Err(RoutingError::invalid("friendly_name", "a workspace has at most 100 activities"));
        }
        let sid = self.sids.mint(SidKind::Activity);
        self.activities.push(Activity::new(sid, friendly_name, available));
        self.emit(now, EventType::ActivityCreated, sid, |event| event.activity = Some(sid));
        Ok(sid)
    }

    /// Adds a skill to the catalogue (names unique, ignoring case).
    pub fn create_skill(&mut self, name: &str, levels: Option<(u32, u32)>) -> Result<(), RoutingError> {
        let skill = Skill::new(name, levels)?;
        if self.skills.iter().any(|existing| existing.name.eq_ignore_ascii_case(name)) {
            return Err(RoutingError::invalid("skill", format!("a skill named {name:?} exists")));
        }
        self.skills.push(skill);
        Ok(())
    }

    /// Removes a skill from the catalogue. Workers keep it in their attributes until edited,
    /// as in Flex.
    pub fn delete_skill(&mut self, name: &str) -> Result<Skill, RoutingError> {
        let idx = self.skills.iter().position(|skill| skill.name.eq_ignore_ascii_case(name));
        let idx = idx.ok_or_else(|| RoutingError::invalid("skill", format!("no skill named {name:?}")))?;
        Ok(self.skills.remove(idx))
    }

    /// Sets a worker's skills and levels in its attributes, as Flex writes them.
    pub fn set_worker_skills(
        &mut self,
        sid: Sid,
        skills: &[(String, Option<u32>)],
        disabled: Option<&[(String, Option<u32>)]>,
        now: Millis,
    ) -> Result<(), RoutingError> {
        let idx = self.worker_index(sid)?;
        let attributes =
            super::skill::assign_skills(&self.workers[idx].attributes, skills, disabled, &self.skills)?;
        self.update_worker_attributes(sid, attributes, now)
    }

    pub fn create_worker(&mut self, new: NewWorker, now: Millis) -> Result<Sid, RoutingError> {
        validate_name("friendly_name", &new.friendly_name)?;
        if self.worker_by_name.contains_key(&new.friendly_name.to_lowercase()) {
            return Err(RoutingError::invalid(
                "friendly_name",
                format!("a worker named {:?} exists (names are unique, ignoring case)", new.friendly_name),
            ));
        }
        validate_attributes(&new.attributes)?;
        let activity = self.activity_index(new.activity.unwrap_or(self.settings.default_activity))?;
        let sid = self.sids.mint(SidKind::Worker);
        let idx = self.workers.len();
        self.workers.push(Worker {
            sid,
            sid_text: sid.to_string(),
            friendly_name: new.friendly_name.clone(),
            attributes: new.attributes.into(),
            activity,
            channels: self
                .channels
                .iter()
                .map(|channel| WorkerChannel { capacity: channel.default_capacity, busy: 0, available: true })
                .collect(),
            last_assignment: None,
            available_since: now,
            activity_changed_at: now,
            queues: Vec::new(),
            ready_key: now,
            ready_channels: ChannelSet::default(),
            dirty: false,
            created_at: now,
            updated_at: now,
        });
        self.worker_by_sid.insert(sid, idx);
        self.worker_by_name.insert(new.friendly_name.to_lowercase(), idx);
        let activity_sid = self.activities[activity].sid;
        self.emit(now, EventType::WorkerCreated, sid, |event| {
            event.worker = Some(sid);
            // Where its time starts to count (worker statistics' activity durations).
            event.activity = Some(activity_sid);
        });
        self.update_membership(idx);
        self.mark_worker(idx);
        self.dispatch(now);
        Ok(sid)
    }

    /// Replaces a worker's attributes; queue membership follows. Reservations already made
    /// stand.
    pub fn update_worker_attributes(
        &mut self,
        sid: Sid,
        attributes: Value,
        now: Millis,
    ) -> Result<(), RoutingError> {
        let idx = self.worker_index(sid)?;
        validate_attributes(&attributes)?;
        self.workers[idx].attributes = attributes.into();
        self.emit(now, EventType::WorkerAttributesUpdate, sid, |event| event.worker = Some(sid));
        self.update_membership(idx);
        self.mark_worker(idx);
        self.dispatch(now);
        Ok(())
    }

    /// Moves a worker to another activity. With `reject_pending`, its pending reservations are
    /// rejected (TaskRouter's `RejectPendingReservations`).
    pub fn set_worker_activity(
        &mut self,
        sid: Sid,
        activity: Sid,
        reject_pending: bool,
        now: Millis,
    ) -> Result<(), RoutingError> {
        let idx = self.worker_index(sid)?;
        let activity = self.activity_index(activity)?;
        if reject_pending && self.activities[activity].available {
            return Err(RoutingError::invalid(
                "reject_pending_reservations",
                "applies only when moving to an unavailable activity",
            ));
        }
        if reject_pending {
            let mut pending: Vec<Sid> = self
                .reservations
                .values()
                .filter(|r| r.worker == idx && r.status == ReservationStatus::Pending)
                .map(|r| r.sid)
                .collect();
            // SIDs are minted in order: oldest reservation first, the same on every replay.
            pending.sort_unstable();
            for reservation in pending {
                self.end_reservation(reservation, ReservationStatus::Rejected, now);
            }
        }
        self.change_activity(idx, activity, now);
        self.dispatch(now);
        Ok(())
    }

    /// Sets a worker's capacity and availability on one channel.
    pub fn set_worker_channel(
        &mut self,
        sid: Sid,
        channel: &str,
        capacity: Option<u32>,
        available: Option<bool>,
        now: Millis,
    ) -> Result<(), RoutingError> {
        let idx = self.worker_index(sid)?;
        let channel_idx = self.channel_index(channel)?;
        if capacity.is_some_and(|capacity| capacity > MAX_CHANNEL_CAPACITY) {
            return Err(RoutingError::invalid(
                "capacity",
                format!("must be between 0 and {MAX_CHANNEL_CAPACITY}"),
            ));
        }
        let channel_sid = self.channels[channel_idx].sid;
        if let Some(capacity) = capacity {
            self.workers[idx].channels[channel_idx].capacity = capacity;
            self.emit(now, EventType::WorkerCapacityUpdate, sid, |event| {
                event.worker = Some(sid);
                event.channel = Some(channel_sid);
            });
        }
        if let Some(available) = available {
            self.workers[idx].channels[channel_idx].available = available;
            self.emit(now, EventType::WorkerChannelAvailabilityUpdate, sid, |event| {
                event.worker = Some(sid);
                event.channel = Some(channel_sid);
            });
        }
        self.refresh_ready(idx);
        self.mark_worker(idx);
        self.dispatch(now);
        Ok(())
    }

    pub fn create_task_queue(&mut self, new: NewTaskQueue, now: Millis) -> Result<Sid, RoutingError> {
        let taken = self.queues.iter().map(|queue| queue.friendly_name.as_str());
        validate_unique_name("a task queue", &new.friendly_name, taken)?;
        let target_expression = parse_target_workers(&new.target_workers)?;
        validate_max_reserved(new.max_reserved_workers)?;
        validate_wrap_up_limit(new.wrap_up.limit_seconds)?;
        validate_dispositions(&new.wrap_up.dispositions)?;
        let sid = self.sids.mint(SidKind::TaskQueue);
        let idx = self.queues.len();
        self.queues.push(TaskQueue {
            sid,
            friendly_name: new.friendly_name,
            target_workers: new.target_workers,
            target_expression,
            task_order: new.task_order,
            max_reserved_workers: new.max_reserved_workers,
            wrap_up: new.wrap_up,
            members: Default::default(),
            ready: vec![Default::default(); self.channels.len()],
            waiting: Default::default(),
            live: Default::default(),
            created_at: now,
            updated_at: now,
        });
        self.queue_by_sid.insert(sid, idx);
        self.emit(now, EventType::TaskQueueCreated, sid, |event| event.queue = Some(sid));
        self.recompute_queue_members(idx);
        self.dispatch(now);
        Ok(sid)
    }

    /// Changes a queue; fields left `None` stay as they are. A refused change changes nothing.
    pub fn update_task_queue(
        &mut self,
        sid: Sid,
        changes: TaskQueueChanges,
        now: Millis,
    ) -> Result<(), RoutingError> {
        let idx = self.queue_index(sid)?;
        let TaskQueueChanges {
            friendly_name,
            target_workers,
            task_order,
            max_reserved_workers,
            wrap_up_limit,
            dispositions,
        } = changes;
        if let Some(name) = &friendly_name {
            let others = self.queues.iter().filter(|queue| queue.sid != sid);
            validate_unique_name("a task queue", name, others.map(|queue| queue.friendly_name.as_str()))?;
        }
        let expression = target_workers.as_deref().map(parse_target_workers).transpose()?;
        if let Some(max) = max_reserved_workers {
            validate_max_reserved(max)?;
        }
        if let Some(limit) = wrap_up_limit {
            validate_wrap_up_limit(limit)?;
        }
        if let Some(dispositions) = &dispositions {
            validate_dispositions(dispositions)?;
        }
        let queue = &mut self.queues[idx];
        queue.updated_at = now;
        // A new limit applies to tasks that begin wrapping from now on.
        if let Some(limit) = wrap_up_limit {
            queue.wrap_up.limit_seconds = limit;
        }
        if let Some(dispositions) = dispositions {
            queue.wrap_up.dispositions = dispositions;
        }
        if let Some(name) = friendly_name {
            queue.friendly_name = name;
        }
        if let Some(max) = max_reserved_workers {
            queue.max_reserved_workers = max;
        }
        if let Some(order) = task_order.filter(|&order| order != queue.task_order) {
            // The waiting order is part of each task's key: rank every waiting task again.
            let waiting: Vec<Sid> = queue.waiting.iter().map(|key| key.task).collect();
            for &task in &waiting {
                self.leave_queue(task);
            }
            self.queues[idx].task_order = order;
            for task in waiting {
                self.join_queue(task);
            }
        }
        if let (Some(source), Some(expression)) = (target_workers, expression) {
            self.queues[idx].target_workers = source;
            self.queues[idx].target_expression = expression;
            self.emit(now, EventType::TaskQueueExpressionUpdated, sid, |event| event.queue = Some(sid));
            self.recompute_queue_members(idx);
        }
        self.dispatch(now);
        Ok(())
    }

    /// Changes a workflow; fields left `None` stay as they are. With a new configuration, a
    /// pending task keeps its place if its step still exists and names the same queue;
    /// otherwise, or for every pending task when `re_evaluate_tasks` is set (with or without a
    /// new configuration), it is walked again from the top, its escalation timed from the
    /// change rather than from its creation, so that an edit does not time it out of steps it
    /// never waited in. A reserved task keeps its offer and its place; if its step is gone, it
    /// is walked again when the offer ends.
    pub fn update_workflow(
        &mut self,
        sid: Sid,
        changes: WorkflowChanges,
        now: Millis,
    ) -> Result<(), RoutingError> {
        let idx = self.workflow_index(sid)?;
        let WorkflowChanges { friendly_name, configuration, task_reservation_timeout, re_evaluate_tasks } =
            changes;
        if let Some(name) = &friendly_name {
            let others = self.workflows.iter().filter(|workflow| workflow.sid != sid);
            validate_unique_name("a workflow", name, others.map(|workflow| workflow.friendly_name.as_str()))?;
        }
        if let Some(timeout) = task_reservation_timeout {
            validate_reservation_timeout(timeout)?;
        }
        let config = configuration
            .as_deref()
            .map(|json| WorkflowConfig::parse(json, |queue| self.queue_by_sid.contains_key(&queue)))
            .transpose()?;
        let workflow = &mut self.workflows[idx];
        workflow.updated_at = now;
        if let Some(name) = friendly_name {
            workflow.friendly_name = name;
        }
        if let Some(timeout) = task_reservation_timeout {
            workflow.task_reservation_timeout = timeout;
        }
        let reconfigured = config.is_some();
        if let (Some(json), Some(config)) = (configuration, config) {
            workflow.configuration = json;
            workflow.config = config;
        }
        self.emit(now, EventType::WorkflowUpdated, sid, |event| event.workflow = Some(sid));
        if reconfigured || re_evaluate_tasks {
            let mut pending: Vec<(u64, Sid)> = self
                .tasks
                .values()
                .filter(|task| task.workflow == idx && task.status == TaskStatus::Pending)
                .map(|task| (task.seq, task.sid))
                .collect();
            // Oldest first, so that a replay routes them in the same order.
            pending.sort_unstable();
            for (_, task) in pending {
                if re_evaluate_tasks || !self.step_still_leads_to_queue(&self.tasks[&task]) {
                    self.rewalk(task, now);
                } else {
                    // Same step and queue, but the step's worker expression may have changed.
                    self.mark_task(task);
                }
            }
        }
        self.dispatch(now);
        Ok(())
    }

    /// Whether `task`'s step exists in its workflow's configuration and names the queue the
    /// task is in: false only after a configuration change.
    fn step_still_leads_to_queue(&self, task: &Task) -> bool {
        let Step::At { position, .. } = task.step else { return false };
        let config = &self.workflows[task.workflow].config;
        let queue = task.queue.map(|queue| self.queues[queue].sid);
        queue.is_some() && config.queue_at(position) == queue
    }

    /// Walks a pending task from the top of its (changed) workflow, its step deadlines counted
    /// from `now`.
    fn rewalk(&mut self, task: Sid, now: Millis) {
        self.leave_queue(task);
        let task_ref = &self.tasks[&task];
        let step = match transfer_step(task_ref) {
            Some(step) => step,
            None => self.workflows[task_ref.workflow].config.first_step(&task_ref.attributes, now, now),
        };
        self.enter_step(task, step, now, false);
    }

    /// Routes a waiting task from the top of its workflow again, keeping its age: a pending
    /// task leaves its queue for wherever the walk now leads; a reserved one keeps its offer.
    /// A transfer's task stays in the queue its transfer named.
    fn route_from_top(&mut self, task: Sid, now: Millis) {
        self.leave_queue(task);
        let task_ref = &self.tasks[&task];
        let step = transfer_step(task_ref).unwrap_or_else(|| {
            let config = &self.workflows[task_ref.workflow].config;
            let first = config.first_step(&task_ref.attributes, task_ref.created_at, now);
            config.settle(first, &task_ref.attributes, now)
        });
        self.enter_step(task, step, now, false);
    }

    pub fn create_workflow(&mut self, new: NewWorkflow, now: Millis) -> Result<Sid, RoutingError> {
        let taken = self.workflows.iter().map(|workflow| workflow.friendly_name.as_str());
        validate_unique_name("a workflow", &new.friendly_name, taken)?;
        validate_reservation_timeout(new.task_reservation_timeout)?;
        let config =
            WorkflowConfig::parse(&new.configuration, |queue| self.queue_by_sid.contains_key(&queue))?;
        let sid = self.sids.mint(SidKind::Workflow);
        self.workflow_by_sid.insert(sid, self.workflows.len());
        self.workflows.push(Workflow {
            sid,
            friendly_name: new.friendly_name,
            configuration: new.configuration,
            config,
            task_reservation_timeout: new.task_reservation_timeout,
            created_at: now,
            updated_at: now,
        });
        self.emit(now, EventType::WorkflowCreated, sid, |event| event.workflow = Some(sid));
        Ok(sid)
    }

    // ----- task commands -----

    pub fn create_task(&mut self, new: NewTask, now: Millis) -> Result<Sid, RoutingError> {
        validate_attributes(&new.attributes)?;
        let priority = new.priority.unwrap_or(0);
        validate_priority(priority)?;
        let ttl = new.timeout.unwrap_or(DEFAULT_TASK_TTL);
        if !(1..=MAX_TASK_TTL).contains(&ttl) {
            return Err(RoutingError::invalid("timeout", "must be between 1 and 1209600 seconds"));
        }
        let workflow = match new.workflow {
            Some(sid) => self.workflow_index(sid)?,
            None if self.workflows.len() == 1 => 0,
            None => {
                return Err(RoutingError::invalid(
                    "workflow_sid",
                    format!("required: the workspace has {} workflows", self.workflows.len()),
                ));
            }
        };
        let channel = self.channel_index(new.channel.as_deref().unwrap_or("default"))?;
        let step = self.workflows[workflow].config.first_step(&new.attributes, now, now);
        let fresh = FreshTask {
            attributes: new.attributes.into(),
            priority,
            channel,
            workflow,
            virtual_start: now,
            ttl,
            step,
            transfer: None,
        };
        let sid = self.insert_task(fresh, now);
        let workflow_sid = self.workflows[workflow].sid;
        self.emit_task(now, EventType::WorkflowEntered, sid, sid, workflow_sid);
        self.enter_step(sid, step, now, true);
        self.dispatch(now);
        Ok(sid)
    }

    /// Mints and stores a new pending task, with its TTL; the caller puts it in its step.
    fn insert_task(&mut self, fresh: FreshTask, now: Millis) -> Sid {
        let sid = self.sids.mint(SidKind::Task);
        self.task_seq += 1;
        let FreshTask { attributes, priority, channel, workflow, virtual_start, ttl, step, transfer } = fresh;
        self.tasks.insert(
            sid,
            Box::new(Task {
                sid,
                seq: self.task_seq,
                attributes,
                priority,
                channel,
                workflow,
                status: TaskStatus::Pending,
                reason: None,
                created_at: now,
                updated_at: now,
                virtual_start,
                ttl,
                step,
                queue: None,
                queue_entered_at: None,
                wait_key: None,
                reservations: Vec::new(),
                rejected_by: Vec::new(),
                assignment_count: 0,
                step_timer: None,
                ttl_timer: None,
                skip_check_pending: false,
                step_expired: false,
                dirty: false,
                assigned_worker: None,
                transfer,
            }),
        );
        let ttl_timer = self.schedule(now.saturating_add(i64::from(ttl) * 1000), Timer::TaskTtl(sid));
        self.task_mut(sid).ttl_timer = Some(ttl_timer);
        sid
    }

    /// Transfers an assigned task's call or conversation: a new task for it, with the first
    /// one's attributes (and Flex Insights' `conversations` links between the two), its channel,
    /// workflow and place in line (`virtual_start`), the priority kept or raised, waiting in the
    /// target queue outside the workflow's filters; or reserved at once for the target worker,
    /// who must be able to take it now. The first task stays with its agent (warm: until they
    /// leave; the caller's shell wraps it up).
    pub fn transfer(&mut self, new: NewTransfer, now: Millis) -> Result<Sid, RoutingError> {
        let from = self.existing_task(new.task)?;
        if from.status != TaskStatus::Assigned {
            return Err(RoutingError::conflict(format!(
                "task {} is {}; only an assigned task can be transferred",
                from.sid,
                from.status.as_str()
            )));
        }
        if let Some(open) = self.tasks.values().find(|task| {
            task.transfer.is_some_and(|transfer| transfer.from == new.task) && !task.status.is_final()
        }) {
            return Err(RoutingError::conflict(format!(
                "task {} is being transferred already (task {})",
                new.task, open.sid
            )));
        }
        let priority = new.priority.unwrap_or(from.priority);
        if priority < from.priority {
            return Err(RoutingError::invalid(
                "priority",
                format!("a transfer keeps or raises the priority ({}), not {priority}", from.priority),
            ));
        }
        validate_priority(priority)?;
        let from_queue = from.queue.expect("an assigned task has its queue");
        let (queue, worker, kind) = match new.to {
            TransferTarget::Queue(queue) => (self.queue_index(queue)?, None, "queue"),
            TransferTarget::Worker(worker) => {
                let idx = self.worker_index(worker)?;
                if let Some(reason) = self.explain_transfer(new.task, worker)? {
                    let name = &self.workers[idx].friendly_name;
                    return Err(RoutingError::conflict(format!(
                        "{name} cannot take it now: {}",
                        reason.reason()
                    )));
                }
                (from_queue, Some(worker), "worker")
            }
        };
        let target_sid = match new.to {
            TransferTarget::Queue(sid) | TransferTarget::Worker(sid) => sid,
        };
        let conversation_id = from
            .attributes
            .pointer("/conversations/conversation_id")
            .and_then(Value::as_str)
            .map_or_else(|| from.sid.to_string(), str::to_owned);
        let followed_by = if kind == "queue" { "Transfer to Queue" } else { "Transfer to Agent" };
        let mut first = Value::clone(&from.attributes);
        let mut second = first.clone();
        let conversations = conversations_of(&mut first)?;
        conversations.insert("conversation_id".to_owned(), json!(conversation_id));
        conversations.insert("followed_by".to_owned(), json!(followed_by));
        let conversations = conversations_of(&mut second)?;
        // The first task's outcome and links are its own.
        conversations.remove("outcome");
        conversations.remove("followed_by");
        conversations.insert("conversation_id".to_owned(), json!(conversation_id));
        conversations.insert("preceded_by".to_owned(), json!(followed_by));
        if let Some(second) = second.as_object_mut() {
            second.insert("transferTargetType".to_owned(), json!(kind));
            second.insert("transferTargetSid".to_owned(), json!(target_sid.to_string()));
            second.insert("transferMode".to_owned(), json!(new.mode.as_str()));
            second.insert("transferredFrom".to_owned(), json!(new.task.to_string()));
        }
        validate_attributes(&first)?;
        validate_attributes(&second)?;
        // Checked: from here on nothing fails.
        let (channel, workflow, virtual_start) = (from.channel, from.workflow, from.virtual_start);
        let queue_sid = self.queues[queue].sid;
        let step = Step::At {
            position: Position::Transfer { queue: queue_sid },
            deadline: None,
            filter_entered_at: now,
            timed_out_of_a_filter: false,
        };
        self.task_mut(new.task).attributes = first.into();
        self.emit(now, EventType::TaskUpdated, new.task, |event| event.task = Some(new.task));
        self.emit(now, EventType::TaskTransferInitiated, new.task, |event| event.task = Some(new.task));
        let fresh = FreshTask {
            attributes: second.into(),
            priority,
            channel,
            workflow,
            virtual_start,
            ttl: DEFAULT_TASK_TTL,
            step,
            transfer: Some(TransferOf { from: new.task, mode: new.mode, worker }),
        };
        let sid = self.insert_task(fresh, now);
        self.enter_step(sid, step, now, true);
        self.dispatch(now);
        Ok(sid)
    }

    /// A task a worker starts themselves (an outbound call): created on `channel` and assigned
    /// to them at once (reserved and accepted in the same step), in the first of their queues,
    /// outside the workflow's filters. Refused when they cannot take it now.
    pub fn create_assigned(&mut self, new: NewAssigned, now: Millis) -> Result<Sid, RoutingError> {
        validate_attributes(&new.attributes)?;
        let idx = self.worker_index(new.worker)?;
        let channel = self.channel_index(&new.channel)?;
        if let Some(reason) = self.unready(&self.workers[idx], channel) {
            let name = &self.workers[idx].friendly_name;
            return Err(RoutingError::conflict(format!("{name} cannot take it now: {}", reason.reason())));
        }
        let Some(&queue) = self.workers[idx].queues.iter().min() else {
            return Err(RoutingError::conflict(format!(
                "{} is in no task queue: a task is always in one",
                self.workers[idx].friendly_name
            )));
        };
        let Some(workflow) = (!self.workflows.is_empty()).then_some(0) else {
            return Err(RoutingError::conflict("the workspace has no workflow: a task is always in one"));
        };
        // Checked: from here on nothing fails.
        let step = Step::At {
            position: Position::Transfer { queue: self.queues[queue].sid },
            deadline: None,
            filter_entered_at: now,
            timed_out_of_a_filter: false,
        };
        let fresh = FreshTask {
            attributes: new.attributes.into(),
            priority: 0,
            channel,
            workflow,
            virtual_start: now,
            ttl: DEFAULT_TASK_TTL,
            step,
            transfer: None,
        };
        let sid = self.insert_task(fresh, now);
        self.enter_step(sid, step, now, true);
        let reservation = self.reserve(sid, idx, queue, now);
        self.accept(reservation, now)?;
        Ok(sid)
    }

    /// A transfer task's offer to its one worker ended untaken: a warm transfer ends (back to
    /// the transferring agent); a cold one is now for anyone of the queue, routed by the caller.
    /// True if the task ended.
    fn transfer_untaken(&mut self, sid: Sid, at: Millis) -> bool {
        let Some(transfer) = self.tasks[&sid].transfer.filter(|transfer| transfer.worker.is_some()) else {
            return false;
        };
        match transfer.mode {
            TransferMode::Warm => {
                self.emit(at, EventType::TaskTransferFailed, transfer.from, |event| {
                    event.task = Some(transfer.from);
                });
                self.cancel_waiting_task(sid, "transfer not taken", at);
            }
            TransferMode::Cold => {
                self.task_mut(sid).transfer = Some(TransferOf { worker: None, ..transfer });
                self.emit(at, EventType::TaskTransferAttemptFailed, transfer.from, |event| {
                    event.task = Some(transfer.from);
                });
                return false;
            }
        }
        true
    }

    /// Accepts a pending reservation: the task is assigned, the others rescinded.
    pub fn accept(&mut self, reservation: Sid, now: Millis) -> Result<(), RoutingError> {
        let (task_sid, worker) = self.pending_reservation(reservation)?;
        let reservation_ref = self.reservations.get_mut(&reservation).expect("checked");
        reservation_ref.status = ReservationStatus::Accepted;
        let queue = reservation_ref.queue;
        if let Some(timer) = reservation_ref.timer.take() {
            self.timers.remove(&timer);
        }
        self.emit_reservation(now, EventType::ReservationAccepted, reservation);
        let others: Vec<Sid> = self.tasks[&task_sid]
            .reservations
            .iter()
            .copied()
            .filter(|&other| {
                other != reservation && self.reservations[&other].status == ReservationStatus::Pending
            })
            .collect();
        for other in others {
            self.end_reservation(other, ReservationStatus::Rescinded, now);
        }
        self.place_in_queue(task_sid, queue);
        let task = self.task_mut(task_sid);
        task.status = TaskStatus::Assigned;
        task.assigned_worker = Some(worker);
        let timers = [task.step_timer.take(), task.ttl_timer.take()];
        for timer in timers.into_iter().flatten() {
            self.timers.remove(&timer);
        }
        self.workers[worker].last_assignment = Some(now);
        self.refresh_ready(worker);
        self.emit(now, EventType::TaskUpdated, task_sid, |event| event.task = Some(task_sid));
        if let Some(transfer) = self.tasks[&task_sid].transfer {
            let worker_sid = self.workers[worker].sid;
            self.emit(now, EventType::TaskTransferCompleted, transfer.from, |event| {
                event.task = Some(transfer.from);
                event.worker = Some(worker_sid);
            });
        }
        self.dispatch(now);
        Ok(())
    }

    /// Rejects a pending reservation; the worker is not offered this task again. With
    /// `activity`, the worker moves there (as TaskRouter's `WorkerActivitySid`).
    pub fn reject(
        &mut self,
        reservation: Sid,
        activity: Option<Sid>,
        now: Millis,
    ) -> Result<(), RoutingError> {
        let (_, worker) = self.pending_reservation(reservation)?;
        let activity = activity.map(|sid| self.activity_index(sid)).transpose()?;
        self.end_reservation(reservation, ReservationStatus::Rejected, now);
        if let Some(activity) = activity {
            self.change_activity(worker, activity, now);
        }
        self.dispatch(now);
        Ok(())
    }

    /// The worker accepted `reservation` but did not answer the call bridged to them. As for an
    /// offer that timed out, the reservation ends `timeout` and the worker moves to the
    /// timeout activity (an agent who does not pick up should not be dialled again at once);
    /// the task, keeping its age, is routed again from the top of its workflow, never to this
    /// worker, and its TTL runs again.
    pub fn unanswered(&mut self, reservation: Sid, now: Millis) -> Result<(), RoutingError> {
        let found = self.reservations.get(&reservation).ok_or(RoutingError::not_found(reservation))?;
        let (task_sid, worker, status) = (found.task, found.worker, found.status);
        if status != ReservationStatus::Accepted || self.tasks[&task_sid].status != TaskStatus::Assigned {
            return Err(RoutingError::conflict(format!(
                "reservation {reservation} is {}; only an accepted reservation of an assigned task can go unanswered",
                status.as_str()
            )));
        }
        self.reservations.get_mut(&reservation).expect("checked").status = ReservationStatus::Timeout;
        self.emit_reservation(now, EventType::ReservationTimeout, reservation);
        let task = self.task_mut(task_sid);
        task.status = TaskStatus::Pending;
        task.assigned_worker = None;
        task.rejected_by.push(worker);
        let (channel, ttl_deadline) =
            (task.channel, task.created_at.saturating_add(i64::from(task.ttl) * 1000));
        let ttl_timer = self.schedule(ttl_deadline.max(now), Timer::TaskTtl(task_sid));
        self.task_mut(task_sid).ttl_timer = Some(ttl_timer);
        self.release_capacity(worker, channel);
        let timeout_activity = self.activity_index(self.settings.timeout_activity).expect("validated");
        if self.workers[worker].activity != timeout_activity {
            self.change_activity(worker, timeout_activity, now);
        }
        self.emit(now, EventType::TaskUpdated, task_sid, |event| event.task = Some(task_sid));
        if !self.transfer_untaken(task_sid, now) {
            self.route_from_top(task_sid, now);
        }
        self.dispatch(now);
        Ok(())
    }

    /// Moves an assigned task to wrap-up (after-call work); its capacity stays held.
    pub fn wrap_up(&mut self, task: Sid, now: Millis) -> Result<(), RoutingError> {
        let changes = TaskChanges { status: Some(TaskStatusChange::Wrapping), ..TaskChanges::default() };
        self.update_task(task, changes, now)
    }

    /// Completes an assigned or wrapping task and frees the worker's capacity.
    pub fn complete(&mut self, task: Sid, reason: &str, now: Millis) -> Result<(), RoutingError> {
        let status = TaskStatusChange::Completed { reason: reason.to_owned() };
        self.update_task(task, TaskChanges { status: Some(status), ..TaskChanges::default() }, now)
    }

    /// Completes an assigned or wrapping task with `outcome`, one of its queue's disposition
    /// codes, written into its attributes as `conversations.outcome` in the same step.
    pub fn dispose(
        &mut self,
        task: Sid,
        outcome: &str,
        reason: &str,
        now: Millis,
    ) -> Result<(), RoutingError> {
        let task_ref = self.existing_task(task)?;
        let queue = self.task_queue(task_ref);
        let codes = queue.map(|queue| queue.wrap_up.dispositions.as_slice()).unwrap_or_default();
        if !codes.iter().any(|code| code == outcome) {
            let message = match queue {
                Some(queue) if !codes.is_empty() => {
                    format!("{outcome:?} is not one of {}'s codes: {}", queue.friendly_name, codes.join(", "))
                }
                Some(queue) => format!("{} has no disposition codes", queue.friendly_name),
                None => "the task was served from no queue, which has no disposition codes".to_owned(),
            };
            return Err(RoutingError::invalid("disposition", message));
        }
        let mut attributes = Value::clone(&task_ref.attributes);
        let conversations =
            attributes.as_object_mut().map(|object| object.entry("conversations").or_insert(json!({})));
        match conversations {
            Some(Value::Object(conversations)) => {
                conversations.insert("outcome".to_owned(), json!(outcome));
            }
            _ => {
                return Err(RoutingError::invalid(
                    "attributes",
                    "the task's conversations attribute is not an object: its outcome cannot be kept",
                ));
            }
        }
        let status = TaskStatusChange::Completed { reason: reason.to_owned() };
        self.update_task(
            task,
            TaskChanges { attributes: Some(attributes), status: Some(status), ..TaskChanges::default() },
            now,
        )
    }

    /// Cancels a pending or reserved task; pending reservations are canceled with it.
    pub fn cancel(&mut self, task: Sid, reason: &str, now: Millis) -> Result<(), RoutingError> {
        let status = TaskStatusChange::Canceled { reason: reason.to_owned() };
        self.update_task(task, TaskChanges { status: Some(status), ..TaskChanges::default() }, now)
    }

    /// Replaces a task's attributes; a pending task is routed again from the top of its
    /// workflow, keeping its age.
    pub fn update_task_attributes(
        &mut self,
        task: Sid,
        attributes: Value,
        now: Millis,
    ) -> Result<(), RoutingError> {
        self.update_task(task, TaskChanges { attributes: Some(attributes), ..TaskChanges::default() }, now)
    }

    /// Changes a task's attributes, priority and status as one command. Everything is checked
    /// before anything changes, so a refused status change leaves the attributes as they were.
    ///
    /// The attributes and priority change first (one `task.updated`): a pending task is then
    /// routed again from the top of its workflow, keeping its age (a new priority alone only
    /// moves it in its queue's line), unless the same update cancels it. The status changes
    /// last, with its own events, so that they describe the task as updated.
    pub fn update_task(&mut self, task: Sid, changes: TaskChanges, now: Millis) -> Result<(), RoutingError> {
        let current = self.existing_task(task)?.status;
        if let Some(attributes) = &changes.attributes {
            validate_attributes(attributes)?;
        }
        if let Some(priority) = changes.priority {
            validate_priority(priority)?;
        }
        if let Some(status) = &changes.status {
            check_status_change(task, current, status)?;
        }
        // Checked: from here on nothing fails.
        let TaskChanges { attributes, priority, status } = changes;
        if attributes.is_some() || priority.is_some() {
            let reroute = attributes.is_some();
            let task_ref = self.task_mut(task);
            if let Some(attributes) = attributes {
                task_ref.attributes = attributes.into();
            }
            if let Some(priority) = priority {
                task_ref.priority = priority;
            }
            self.emit(now, EventType::TaskUpdated, task, |event| event.task = Some(task));
            let canceling = matches!(status, Some(TaskStatusChange::Canceled { .. }));
            if current == TaskStatus::Pending && !canceling {
                if reroute {
                    self.route_from_top(task, now);
                } else {
                    self.rerank(task);
                }
                self.dispatch(now);
            }
        }
        match status {
            None => {}
            Some(TaskStatusChange::Canceled { reason }) => {
                if let Some(transfer) = self.tasks[&task].transfer {
                    self.emit(now, EventType::TaskTransferCanceled, transfer.from, |event| {
                        event.task = Some(transfer.from);
                    });
                }
                self.cancel_waiting_task(task, &reason, now);
                self.dispatch(now);
            }
            Some(TaskStatusChange::Wrapping) => self.start_wrap_up(task, now),
            Some(TaskStatusChange::Completed { reason }) => self.finish_task(task, &reason, now),
        }
        Ok(())
    }

    /// Moves an assigned task to wrapping (checked by the caller), until the agent completes it
    /// or its queue's wrap-up limit does.
    fn start_wrap_up(&mut self, task: Sid, now: Millis) {
        let task_ref = self.task_mut(task);
        task_ref.status = TaskStatus::Wrapping;
        let limit = task_ref.queue.map_or(0, |queue| self.queues[queue].wrap_up.limit_seconds);
        if limit > 0 {
            self.schedule(now.saturating_add(i64::from(limit) * 1000), Timer::WrapUpLimit(task));
        }
        self.emit(now, EventType::TaskWrapup, task, |event| event.task = Some(task));
        if let Some(reservation) = self.accepted_reservation(task) {
            self.reservations.get_mut(&reservation).expect("exists").status = ReservationStatus::Wrapping;
            self.emit_reservation(now, EventType::ReservationWrapup, reservation);
        }
    }

    /// Completes an assigned or wrapping task (checked by the caller).
    fn finish_task(&mut self, task: Sid, reason: &str, now: Millis) {
        self.leave_live_set(task);
        let task_ref = self.task_mut(task);
        task_ref.status = TaskStatus::Completed;
        task_ref.reason = Some(reason.to_owned());
        let channel = task_ref.channel;
        let worker = task_ref.assigned_worker;
        let outcome = task_ref.attributes.pointer("/conversations/outcome").and_then(Value::as_str);
        let outcome = outcome.map(str::to_owned);
        self.emit(now, EventType::TaskCompleted, task, |event| {
            event.task = Some(task);
            event.reason = Some(reason.to_owned());
            event.outcome = outcome;
        });
        if let Some(reservation) = self.accepted_reservation(task) {
            self.reservations.get_mut(&reservation).expect("exists").status = ReservationStatus::Completed;
            self.emit_reservation(now, EventType::ReservationCompleted, reservation);
        }
        if let Some(worker) = worker {
            self.release_capacity(worker, channel);
        }
        self.schedule(now.saturating_add(PURGE_AFTER), Timer::Purge(task));
        self.dispatch(now);
    }

    /// Fires every deadline up to `now`, each at its own time, in order.
    pub fn advance(&mut self, now: Millis) {
        while let Some((&key, &timer)) = self.timers.first_key_value() {
            if key.0 > now {
                break;
            }
            self.timers.remove(&key);
            let at = key.0;
            match timer {
                Timer::ReservationTimeout(reservation) => self.reservation_timed_out(reservation, at),
                Timer::StepTimeout(task) => self.step_timed_out(task, at),
                Timer::TaskTtl(task) => {
                    self.task_mut(task).ttl_timer = None;
                    if self.tasks[&task].status.is_waiting() {
                        if let Some(transfer) = self.tasks[&task].transfer {
                            self.emit(at, EventType::TaskTransferFailed, transfer.from, |event| {
                                event.task = Some(transfer.from);
                            });
                        }
                        self.cancel_waiting_task(task, "Task TTL Exceeded", at);
                    }
                }
                Timer::WrapUpLimit(task) => {
                    // Completed by the agent in time, or deleted, the task needs nothing more.
                    if self.tasks.get(&task).is_some_and(|task| task.status == TaskStatus::Wrapping) {
                        self.finish_task(task, WRAP_UP_LIMIT_REASON, at);
                    }
                }
                Timer::Purge(task) => {
                    self.leave_live_set(task);
                    if let Some(removed) = self.tasks.remove(&task) {
                        for reservation in removed.reservations {
                            self.reservations.remove(&reservation);
                        }
                    }
                }
            }
            self.dispatch(at);
        }
    }

    // ----- internals: lookups -----

    fn activity_index(&self, sid: Sid) -> Result<usize, RoutingError> {
        self.activities.iter().position(|activity| activity.sid == sid).ok_or(RoutingError::not_found(sid))
    }

    pub(super) fn worker_position(&self, sid: Sid) -> Option<usize> {
        self.worker_by_sid.get(&sid).copied()
    }

    fn worker_index(&self, sid: Sid) -> Result<usize, RoutingError> {
        self.worker_by_sid.get(&sid).copied().ok_or(RoutingError::not_found(sid))
    }

    fn queue_index(&self, sid: Sid) -> Result<usize, RoutingError> {
        self.queue_by_sid.get(&sid).copied().ok_or(RoutingError::not_found(sid))
    }

    fn workflow_index(&self, sid: Sid) -> Result<usize, RoutingError> {
        self.workflow_by_sid.get(&sid).copied().ok_or(RoutingError::not_found(sid))
    }

    fn channel_index(&self, name_or_sid: &str) -> Result<usize, RoutingError> {
        self.channel_position(name_or_sid).ok_or_else(|| {
            let known: Vec<&str> = self.channels.iter().map(|c| c.unique_name.as_str()).collect();
            RoutingError::invalid(
                "task_channel",
                format!("unknown channel {name_or_sid:?} (known: {})", known.join(", ")),
            )
        })
    }

    fn existing_task(&self, sid: Sid) -> Result<&Task, RoutingError> {
        self.task(sid).ok_or(RoutingError::not_found(sid))
    }

    fn task_mut(&mut self, sid: Sid) -> &mut Task {
        self.tasks.get_mut(&sid).expect("task exists")
    }

    /// The reservation's task and worker, if it is pending; an error naming its state if not.
    fn pending_reservation(&self, sid: Sid) -> Result<(Sid, usize), RoutingError> {
        let reservation = self.reservations.get(&sid).ok_or(RoutingError::not_found(sid))?;
        if reservation.status != ReservationStatus::Pending {
            return Err(RoutingError::ReservationNotPending { sid, status: reservation.status.as_str() });
        }
        Ok((reservation.task, reservation.worker))
    }

    fn accepted_reservation(&self, task: Sid) -> Option<Sid> {
        self.tasks[&task].reservations.iter().copied().find(|sid| {
            matches!(self.reservations[sid].status, ReservationStatus::Accepted | ReservationStatus::Wrapping)
        })
    }

    // ----- internals: events and timers -----

    fn emit(&mut self, at: Millis, event_type: EventType, resource: Sid, fill: impl FnOnce(&mut Event)) {
        self.event_seq += 1;
        let mut event = Event {
            sequence: self.event_seq,
            timestamp: at,
            event_type,
            resource,
            task: None,
            worker: None,
            reservation: None,
            queue: None,
            workflow: None,
            activity: None,
            reason: None,
            channel: None,
            outcome: None,
        };
        fill(&mut event);
        // What an event tells of a task, reservation or worker changed it (`date_updated`).
        if let Some(task) = event.task.and_then(|task| self.tasks.get_mut(&task)) {
            task.updated_at = at;
        }
        if let Some(reservation) = event.reservation.and_then(|sid| self.reservations.get_mut(&sid)) {
            reservation.updated_at = at;
        }
        if resource.kind() == SidKind::Worker
            && let Some(&idx) = self.worker_by_sid.get(&resource)
        {
            self.workers[idx].updated_at = at;
        }
        self.events.push(event);
    }

    /// An event about a task in its workflow; `resource` is the task or the workflow.
    fn emit_task(&mut self, at: Millis, event_type: EventType, resource: Sid, task: Sid, workflow: Sid) {
        self.emit(at, event_type, resource, |event| {
            event.task = Some(task);
            event.workflow = Some(workflow);
        });
    }

    fn emit_task_created(&mut self, at: Millis, task: Sid, workflow: Sid) {
        let channel = self.channels[self.tasks[&task].channel].sid;
        self.emit(at, EventType::TaskCreated, task, |event| {
            event.task = Some(task);
            event.workflow = Some(workflow);
            event.channel = Some(channel);
        });
    }

    fn emit_reservation(&mut self, at: Millis, event_type: EventType, reservation: Sid) {
        let r = &self.reservations[&reservation];
        let (task, worker, queue) = (r.task, self.workers[r.worker].sid, self.queues[r.queue].sid);
        let workflow = self.workflows[self.tasks[&task].workflow].sid;
        self.emit(at, event_type, reservation, |event| {
            event.task = Some(task);
            event.worker = Some(worker);
            event.reservation = Some(reservation);
            event.queue = Some(queue);
            event.workflow = Some(workflow);
        });
    }

    fn schedule(&mut self, at: Millis, timer: Timer) -> TimerKey {
        self.timer_seq += 1;
        let key = (at, self.timer_seq);
        self.timers.insert(key, timer);
        key
    }

    // ----- internals: workers, membership, readiness -----

    fn mark_worker(&mut self, idx: usize) {
        if !self.workers[idx].dirty {
            self.workers[idx].dirty = true;
            self.dirty_workers.push_back(idx);
        }
    }

    fn mark_task(&mut self, sid: Sid) {
        let task = self.task_mut(sid);
        if !task.dirty {
            task.dirty = true;
            self.dirty_tasks.push_back(sid);
        }
    }

    fn change_activity(&mut self, idx: usize, activity: usize, now: Millis) {
        let was_available = self.activities[self.workers[idx].activity].available;
        let worker = &mut self.workers[idx];
        worker.activity = activity;
        worker.activity_changed_at = now;
        if self.activities[activity].available && !was_available {
            worker.available_since = now;
        }
        let (sid, activity_sid) = (worker.sid, self.activities[activity].sid);
        self.emit(now, EventType::WorkerActivityUpdate, sid, |event| {
            event.worker = Some(sid);
            event.activity = Some(activity_sid);
        });
        self.refresh_ready(idx);
        self.mark_worker(idx);
    }

    /// Re-evaluates every queue's target expression for one worker.
    fn update_membership(&mut self, idx: usize) {
        self.remove_from_ready(idx);
        let worker = &self.workers[idx];
        let scope = Scope::worker(self.facts(worker));
        let matching: Vec<usize> = (0..self.queues.len())
            .filter(|&queue| self.queues[queue].target_expression.evaluate(&scope))
            .collect();
        for &queue in &self.workers[idx].queues {
            self.queues[queue].members.remove(&idx);
        }
        for &queue in &matching {
            self.queues[queue].members.insert(idx);
        }
        self.workers[idx].queues = matching;
        self.refresh_ready(idx);
    }

    /// Re-evaluates one queue's target expression for every worker (a queue change, not a
    /// routing path).
    fn recompute_queue_members(&mut self, queue: usize) {
        for idx in 0..self.workers.len() {
            self.remove_from_ready(idx);
            let scope = Scope::worker(self.facts(&self.workers[idx]));
            let is_member = self.queues[queue].target_expression.evaluate(&scope);
            let worker = &mut self.workers[idx];
            worker.queues.retain(|&q| q != queue);
            if is_member {
                worker.queues.push(queue);
                worker.queues.sort_unstable();
                self.queues[queue].members.insert(idx);
            } else {
                self.queues[queue].members.remove(&idx);
            }
            self.refresh_ready(idx);
            if is_member {
                self.mark_worker(idx);
            }
        }
    }

    pub(super) fn facts<'a>(&'a self, worker: &'a Worker) -> WorkerFacts<'a> {
        let activity = &self.activities[worker.activity];
        WorkerFacts {
            attributes: &worker.attributes,
            sid: Some(&worker.sid_text),
            friendly_name: Some(&worker.friendly_name),
            activity_sid: Some(&activity.sid_text),
            activity_name: Some(&activity.friendly_name),
        }
    }

    fn remove_from_ready(&mut self, idx: usize) {
        let worker = &mut self.workers[idx];
        let (key, channels) = (worker.ready_key, std::mem::take(&mut worker.ready_channels));
        for &queue in &self.workers[idx].queues {
            for channel in channels.iter() {
                self.queues[queue].ready[channel].remove(&(key, idx));
            }
        }
    }

    /// Puts the worker in exactly the ready sets it belongs in now, touching only the sets
    /// whose membership changed (a reservation changes one channel; an accept changes the key).
    fn refresh_ready(&mut self, idx: usize) {
        let worker = &self.workers[idx];
        let key = worker.last_assignment.unwrap_or(worker.available_since);
        let mut wanted = ChannelSet::default();
        if self.activities[worker.activity].available {
            for (channel, state) in worker.channels.iter().enumerate() {
                if state.has_room() {
                    wanted.insert(channel);
                }
            }
        }
        if key != worker.ready_key {
            self.remove_from_ready(idx);
        }
        let worker = &self.workers[idx];
        let (current, queues) = (worker.ready_channels, &worker.queues);
        for &queue in queues {
            for channel in current.difference(wanted).iter() {
                self.queues[queue].ready[channel].remove(&(key, idx));
            }
            for channel in wanted.difference(current).iter() {
                self.queues[queue].ready[channel].insert((key, idx));
            }
        }
        let worker = &mut self.workers[idx];
        worker.ready_key = key;
        worker.ready_channels = wanted;
    }

    fn release_capacity(&mut self, worker: usize, channel: usize) {
        let state = &mut self.workers[worker].channels[channel];
        state.busy = state.busy.saturating_sub(1);
        self.refresh_ready(worker);
        self.mark_worker(worker);
    }

    // ----- internals: the workflow walk -----

    /// Puts a task at `step`: its queue, priority, deadline; or ends it if the workflow is done.
    fn enter_step(&mut self, sid: Sid, step: Step, now: Millis, creating: bool) {
        let task = &self.tasks[&sid];
        let workflow = &self.workflows[task.workflow];
        let (workflow_sid, config) = (workflow.sid, &workflow.config);
        let Step::At { position, deadline, .. } = step else {
            let (event_type, reason) = match step {
                Step::Skipped => (EventType::WorkflowSkipped, "Workflow Skipped"),
                _ => (EventType::WorkflowTimeout, "Workflow Timeout"),
            };
            self.emit_task(now, event_type, workflow_sid, sid, workflow_sid);
            if creating {
                self.emit_task_created(now, sid, workflow_sid);
            }
            self.cancel_waiting_task(sid, reason, now);
            return;
        };
        let queue_sid = config.queue_at(position).expect("a step has a queue");
        let priority = config.priority_at(position);
        let queue = self.queue_by_sid[&queue_sid];
        let previous_queue = task.queue;
        self.place_in_queue(sid, queue);
        let task = self.task_mut(sid);
        task.step = step;
        task.step_expired = false;
        task.skip_check_pending = true;
        if let Some(priority) = priority {
            task.priority = priority;
        }
        if previous_queue != Some(queue) {
            task.queue_entered_at = Some(now);
        }
        if let Some(timer) = task.step_timer.take() {
            self.timers.remove(&timer);
        }
        if let Some(deadline) = deadline {
            // `settle` keeps deadlines ahead of `now`; never schedule into the past regardless.
            let timer = self.schedule(deadline.max(now), Timer::StepTimeout(sid));
            self.task_mut(sid).step_timer = Some(timer);
        }
        if let Some(previous) = previous_queue.filter(|&previous| previous != queue) {
            let previous_sid = self.queues[previous].sid;
            self.emit(now, EventType::TaskQueueMoved, queue_sid, |event| {
                event.task = Some(sid);
                event.queue = Some(previous_sid);
            });
        }
        self.emit(now, EventType::TaskQueueEntered, queue_sid, |event| {
            event.task = Some(sid);
            event.queue = Some(queue_sid);
            event.workflow = Some(workflow_sid);
        });
        if creating {
            self.emit_task_created(now, sid, workflow_sid);
        }
        if let Position::Target { .. } = position {
            self.emit(now, EventType::WorkflowTargetMatched, workflow_sid, |event| {
                event.task = Some(sid);
                event.queue = Some(queue_sid);
                event.workflow = Some(workflow_sid);
            });
        }
        if self.tasks[&sid].status == TaskStatus::Pending {
            self.join_queue(sid);
        }
    }

    fn join_queue(&mut self, sid: Sid) {
        let task = &self.tasks[&sid];
        let Some(queue) = task.queue else { return };
        let rank = match self.queues[queue].task_order {
            TaskOrder::Fifo => (-task.priority, task.virtual_start, task.seq as i64),
            TaskOrder::Lifo => (-task.virtual_start, -(task.seq as i64), 0),
        };
        let key = WaitKey { rank, task: sid };
        self.queues[queue].waiting.insert(key);
        self.task_mut(sid).wait_key = Some(key);
        self.mark_task(sid);
    }

    fn leave_queue(&mut self, sid: Sid) {
        let task = self.task_mut(sid);
        if let (Some(key), Some(queue)) = (task.wait_key.take(), task.queue) {
            self.queues[queue].waiting.remove(&key);
        }
    }

    /// Puts a task waiting in a queue back in line by its current priority.
    fn rerank(&mut self, sid: Sid) {
        if self.tasks[&sid].wait_key.is_some() {
            self.leave_queue(sid);
            self.join_queue(sid);
        }
    }

    fn step_timed_out(&mut self, sid: Sid, at: Millis) {
        let Some(task) = self.tasks.get_mut(&sid) else { return };
        task.step_timer = None;
        match task.status {
            TaskStatus::Pending => self.leave_step(sid, at, false),
            // An offer is out: the move waits until it is answered (see `reevaluate`).
            TaskStatus::Reserved => task.step_expired = true,
            _ => {}
        }
    }

    /// Moves a pending task out of its step (timed out or skipped) to wherever the walk says.
    fn leave_step(&mut self, sid: Sid, at: Millis, skipped: bool) {
        self.leave_queue(sid);
        let task = &self.tasks[&sid];
        let config = &self.workflows[task.workflow].config;
        let next =
            config.settle(config.next_step(task.step, &task.attributes, at, skipped), &task.attributes, at);
        if let (Some(queue), false) = (task.queue, skipped) {
            let queue_sid = self.queues[queue].sid;
            self.emit(at, EventType::TaskQueueTimeout, queue_sid, |event| {
                event.task = Some(sid);
                event.queue = Some(queue_sid);
            });
        }
        self.enter_step(sid, next, at, false);
    }

    /// A task whose reservations all ended unaccepted is pending again: it moves on if its
    /// step expired meanwhile, else waits in its queue for the next worker.
    fn reevaluate(&mut self, sid: Sid, at: Millis) {
        let task = self.task_mut(sid);
        task.status = TaskStatus::Pending;
        if !self.step_still_leads_to_queue(&self.tasks[&sid]) {
            // Its workflow changed during the offer, and its step with it.
            self.task_mut(sid).step_expired = false;
            self.rewalk(sid, at);
            return;
        }
        let task = self.task_mut(sid);
        if task.step_expired {
            task.step_expired = false;
            self.leave_step(sid, at, false);
        } else {
            self.join_queue(sid);
        }
    }

    /// Makes `queue` the task's current queue, in the queues' live sets as well.
    pub(super) fn place_in_queue(&mut self, task: Sid, queue: usize) {
        let task_ref = self.task_mut(task);
        let previous = task_ref.queue.replace(queue);
        if let Some(previous) = previous.filter(|&previous| previous != queue) {
            self.queues[previous].live.remove(&task);
        }
        self.queues[queue].live.insert(task);
    }

    /// Takes an ending task out of its queue's live set (it stays the task's queue).
    pub(super) fn leave_live_set(&mut self, task: Sid) {
        if let Some(queue) = self.tasks.get(&task).and_then(|task| task.queue) {
            self.queues[queue].live.remove(&task);
        }
    }

    fn cancel_waiting_task(&mut self, sid: Sid, reason: &str, at: Millis) {
        let pending: Vec<Sid> = self.pending_reservations(&self.tasks[&sid]).iter().map(|r| r.sid).collect();
        for reservation in pending {
            self.end_reservation(reservation, ReservationStatus::Canceled, at);
        }
        self.leave_queue(sid);
        self.leave_live_set(sid);
        let task = self.task_mut(sid);
        task.status = TaskStatus::Canceled;
        task.reason = Some(reason.to_owned());
        let timers = [task.step_timer.take(), task.ttl_timer.take()];
        for timer in timers.into_iter().flatten() {
            self.timers.remove(&timer);
        }
        self.emit(at, EventType::TaskCanceled, sid, |event| {
            event.task = Some(sid);
            event.reason = Some(reason.to_owned());
        });
        self.schedule(at.saturating_add(PURGE_AFTER), Timer::Purge(sid));
    }

    // ----- internals: reservations -----

    fn reserve(&mut self, task_sid: Sid, worker: usize, queue: usize, at: Millis) -> Sid {
        let task = &self.tasks[&task_sid];
        let timeout = i64::from(self.workflows[task.workflow].task_reservation_timeout) * 1000;
        let channel = task.channel;
        if task.status == TaskStatus::Pending {
            self.leave_queue(task_sid);
            let task = self.task_mut(task_sid);
            task.status = TaskStatus::Reserved;
            task.assignment_count += 1;
        }
        let sid = self.sids.mint(SidKind::Reservation);
        let timer = self.schedule(at.saturating_add(timeout), Timer::ReservationTimeout(sid));
        self.reservations.insert(
            sid,
            Reservation {
                sid,
                task: task_sid,
                worker,
                queue,
                status: ReservationStatus::Pending,
                created_at: at,
                updated_at: at,
                timeout_at: at.saturating_add(timeout),
                timer: Some(timer),
            },
        );
        self.task_mut(task_sid).reservations.push(sid);
        self.workers[worker].channels[channel].busy += 1;
        self.refresh_ready(worker);
        self.emit_reservation(at, EventType::ReservationCreated, sid);
        sid
    }

    /// Ends a pending reservation as rejected, timed out, canceled or rescinded: frees the
    /// capacity and, when it was the task's last pending one, routes the task again.
    fn end_reservation(&mut self, sid: Sid, status: ReservationStatus, at: Millis) {
        let reservation = self.reservations.get_mut(&sid).expect("reservation exists");
        reservation.status = status;
        let (task_sid, worker) = (reservation.task, reservation.worker);
        if let Some(timer) = reservation.timer.take() {
            self.timers.remove(&timer);
        }
        let event_type = match status {
            ReservationStatus::Rejected => EventType::ReservationRejected,
            ReservationStatus::Timeout => EventType::ReservationTimeout,
            ReservationStatus::Rescinded => EventType::ReservationRescinded,
            _ => EventType::ReservationCanceled,
        };
        self.emit_reservation(at, event_type, sid);
        let channel = self.tasks[&task_sid].channel;
        self.release_capacity(worker, channel);
        if status == ReservationStatus::Rejected {
            self.task_mut(task_sid).rejected_by.push(worker);
        }
        let task = &self.tasks[&task_sid];
        if task.status == TaskStatus::Reserved
            && matches!(status, ReservationStatus::Rejected | ReservationStatus::Timeout)
            && self.pending_reservations(task).is_empty()
            && !self.transfer_untaken(task_sid, at)
        {
            self.reevaluate(task_sid, at);
        }
    }

    fn reservation_timed_out(&mut self, sid: Sid, at: Millis) {
        let Some(reservation) = self.reservations.get_mut(&sid) else { return };
        reservation.timer = None;
        if reservation.status != ReservationStatus::Pending {
            return;
        }
        let worker = reservation.worker;
        self.end_reservation(sid, ReservationStatus::Timeout, at);
        let timeout_activity = self.activity_index(self.settings.timeout_activity).expect("validated");
        if self.workers[worker].activity != timeout_activity {
            self.change_activity(worker, timeout_activity, at);
        }
    }

    // ----- internals: assignment -----

    fn dispatch(&mut self, now: Millis) {
        loop {
            // Tasks that became routable in the same command are served in priority order,
            // then oldest first, whatever order they became routable in.
            let tasks = &self.tasks;
            self.dirty_tasks
                .make_contiguous()
                .sort_by_key(|sid| tasks.get(sid).map(|task| (-task.priority, task.virtual_start, task.seq)));
            if let Some(task) = self.dirty_tasks.pop_front() {
                if let Some(task_ref) = self.tasks.get_mut(&task) {
                    task_ref.dirty = false;
                    self.route_task(task, now);
                }
            } else if let Some(worker) = self.dirty_workers.pop_front() {
                self.workers[worker].dirty = false;
                self.offer_worker(worker, now);
            } else {
                return;
            }
        }
    }

    /// Task side: reserve up to the queue's `max_reserved_workers` eligible workers, longest
    /// idle first (or by `order_by`); if none and the step has `skip_if`, maybe skip.
    fn route_task(&mut self, sid: Sid, now: Millis) {
        let task = &self.tasks[&sid];
        if task.status != TaskStatus::Pending {
            return;
        }
        let Some(queue) = task.queue else { return };
        if task.assignment_count >= MAX_ASSIGNMENTS {
            self.cancel_waiting_task(sid, "Max assignment count exceeded", now);
            return;
        }
        let chosen = self.eligible_workers(task, queue, now);
        for &worker in &chosen {
            self.reserve(sid, worker, queue, now);
        }
        let task = self.task_mut(sid);
        let check_skip = std::mem::take(&mut task.skip_check_pending);
        if chosen.is_empty() && check_skip && self.should_skip(sid, now) {
            self.leave_step(sid, now, true);
        }
    }

    fn eligible_workers(&self, task: &Task, queue: usize, now: Millis) -> Vec<usize> {
        if let Some(worker) = task.transfer.and_then(|transfer| transfer.worker) {
            // Offered to that worker only, member of the queue or not.
            let idx = self.worker_by_sid.get(&worker).copied();
            let ready = idx.filter(|&idx| {
                self.unready(&self.workers[idx], task.channel).is_none()
                    && self.worker_eligible_for(task, idx, now)
            });
            return ready.into_iter().collect();
        }
        let config = &self.workflows[task.workflow].config;
        let target = config.target(match task.step {
            Step::At { position, .. } => position,
            _ => return Vec::new(),
        });
        let want = self.queues[queue].max_reserved_workers as usize;
        let ready = &self.queues[queue].ready[task.channel];
        let known = target
            .and_then(|target| target.known_worker.as_ref())
            .map(|known| self.known_worker(task, known));
        let candidates = ready.iter().map(|&(_, idx)| idx).filter(|&idx| match known {
            Some(known) => known == Some(idx),
            None => true,
        });
        let eligible = candidates.filter(|&idx| self.worker_eligible_for(task, idx, now));
        match target.filter(|target| !target.order_by.is_empty()) {
            None => eligible.take(want).collect(),
            Some(target) => {
                let mut all: Vec<usize> = eligible.collect();
                // Stable sort: workers equal on every clause keep the longest-idle order.
                all.sort_by(|&a, &b| {
                    for clause in &target.order_by {
                        let value = |idx: usize| {
                            let mut value: &Value = &self.workers[idx].attributes;
                            for key in &clause.path {
                                value = value.get(key).unwrap_or(&Value::Null);
                            }
                            value.as_i64()
                        };
                        let ordering = match (value(a), value(b)) {
                            (Some(x), Some(y)) if clause.descending => y.cmp(&x),
                            (Some(x), Some(y)) => x.cmp(&y),
                            (Some(_), None) => std::cmp::Ordering::Less,
                            (None, Some(_)) => std::cmp::Ordering::Greater,
                            (None, None) => std::cmp::Ordering::Equal,
                        };
                        if ordering.is_ne() {
                            return ordering;
                        }
                    }
                    std::cmp::Ordering::Equal
                });
                all.truncate(want);
                all
            }
        }
    }

    /// The step's expression and the per-task exclusions; queue membership, activity and
    /// capacity are the caller's (the ready set guarantees them).
    fn worker_eligible_for(&self, task: &Task, idx: usize, now: Millis) -> bool {
        if task.rejected_by.contains(&idx) {
            return false;
        }
        let already_offered = task.reservations.iter().any(|sid| {
            self.reservations[sid].worker == idx
                && self.reservations[sid].status == ReservationStatus::Pending
        });
        if already_offered {
            return false;
        }
        if task.transfer.and_then(|transfer| transfer.worker).is_some_and(|to| self.workers[idx].sid != to) {
            return false;
        }
        let Step::At { position, .. } = task.step else { return false };
        let Some(target) = self.workflows[task.workflow].config.target(position) else { return true };
        match &target.expression {
            Some(expression) => {
                let facts = self.facts(&self.workers[idx]);
                expression.evaluate(&Scope::task_and_worker(&task.attributes, facts).at(clock(now)))
            }
            None => true,
        }
    }

    pub(super) fn known_worker(&self, task: &Task, known: &KnownWorker) -> Option<usize> {
        let (path, by_sid) = match known {
            KnownWorker::Sid(path) => (path, true),
            KnownWorker::FriendlyName(path) => (path, false),
        };
        let mut value: &Value = &task.attributes;
        for key in path {
            value = value.get(key)?;
        }
        let text = value.as_str()?;
        if by_sid {
            let sid = Sid::parse(text, SidKind::Worker).ok()?;
            self.worker_by_sid.get(&sid).copied()
        } else {
            self.worker_by_name.get(&text.to_lowercase()).copied()
        }
    }

    /// `skip_if` for the task's step, over the queue's worker counts (`workers.available`,
    /// `workers.unavailable`, `workers.<ActivitySid>`).
    fn should_skip(&self, sid: Sid, now: Millis) -> bool {
        let task = &self.tasks[&sid];
        let Step::At { position, .. } = task.step else { return false };
        let Some(skip_if) =
            self.workflows[task.workflow].config.target(position).and_then(|t| t.skip_if.as_ref())
        else {
            return false;
        };
        let queue = &self.queues[task.queue.expect("a step has a queue")];
        let mut counts = serde_json::Map::new();
        let mut available = 0;
        for &idx in &queue.members {
            let activity = &self.activities[self.workers[idx].activity];
            available += usize::from(activity.available);
            let entry = counts.entry(activity.sid.to_string()).or_insert(Value::from(0));
            *entry = Value::from(entry.as_u64().unwrap_or(0) + 1);
        }
        counts.insert("available".to_owned(), Value::from(available));
        counts.insert("unavailable".to_owned(), Value::from(queue.members.len() - available));
        let scope_document = serde_json::json!({ "workers": counts });
        skip_if.evaluate(&Scope::task(&scope_document).at(clock(now)))
    }

    /// Worker side: while the worker has room on a channel, reserve the best waiting task it
    /// is eligible for across its queues (FIFO: priority then age; LIFO: newest; the
    /// workspace's `prioritize_queue_order` decides between the two kinds).
    fn offer_worker(&mut self, idx: usize, now: Millis) {
        loop {
            let worker = &self.workers[idx];
            if !self.activities[worker.activity].available {
                return;
            }
            let mut best: Option<(bool, WaitKey, usize)> = None;
            for &queue in &worker.queues {
                let preferred = self.queues[queue].task_order == self.settings.prioritize_queue_order;
                if best.is_some_and(|(best_preferred, _, _)| best_preferred && !preferred) {
                    continue;
                }
                let found = self.queues[queue].waiting.iter().find(|key| {
                    let task = &self.tasks[&key.task];
                    worker.channels[task.channel].has_room()
                        && self.known_worker_allows(task, idx)
                        && self.worker_eligible_for(task, idx, now)
                });
                if let Some(&key) = found {
                    let better = match best {
                        None => true,
                        Some((best_preferred, best_key, _)) => {
                            (preferred && !best_preferred) || (preferred == best_preferred && key < best_key)
                        }
                    };
                    if better {
                        best = Some((preferred, key, queue));
                    }
                }
            }
            let Some((_, key, queue)) = best else { return };
            self.reserve(key.task, idx, queue, now);
        }
    }

    fn known_worker_allows(&self, task: &Task, idx: usize) -> bool {
        let Step::At { position, .. } = task.step else { return false };
        match self.workflows[task.workflow].config.target(position).and_then(|t| t.known_worker.as_ref()) {
            Some(known) => self.known_worker(task, known) == Some(idx),
            None => true,
        }
    }
}

/// The step of a task made by a transfer: where the transfer put it, whatever its workflow says.
fn transfer_step(task: &Task) -> Option<Step> {
    matches!(task.step, Step::At { position: Position::Transfer { .. }, .. }).then_some(task.step)
}

fn validate_name(field: &'static str, name: &str) -> Result<(), RoutingError> {
    if name.trim().is_empty() {
        return Err(RoutingError::invalid(field, "must not be empty"));
    }
    if name.chars().count() > MAX_FRIENDLY_NAME_CHARS {
        return Err(RoutingError::invalid(field, "must be at most 64 characters"));
    }
    Ok(())
}

/// Attributes must be a JSON object of at most 4,096 bytes (reference §7.1); the REST API
/// checks this before a multi-part update, so that a refusal changes nothing.
fn validate_priority(priority: i64) -> Result<(), RoutingError> {
    if (0..=MAX_PRIORITY).contains(&priority) {
        Ok(())
    } else {
        Err(RoutingError::invalid("priority", format!("must be between 0 and {MAX_PRIORITY}")))
    }
}

/// Whether a task in status `current` may take the status `change` sets.
fn check_status_change(
    task: Sid,
    current: TaskStatus,
    change: &TaskStatusChange,
) -> Result<(), RoutingError> {
    let (allowed, rule) = match change {
        TaskStatusChange::Canceled { .. } => {
            (current.is_waiting(), "only a pending or reserved task can be canceled")
        }
        TaskStatusChange::Wrapping => (current == TaskStatus::Assigned, "only an assigned task wraps up"),
        TaskStatusChange::Completed { .. } => (
            matches!(current, TaskStatus::Assigned | TaskStatus::Wrapping),
            "only an assigned or wrapping task can be completed",
        ),
    };
    if allowed {
        Ok(())
    } else {
        Err(RoutingError::conflict(format!("task {task} is {}; {rule}", current.as_str())))
    }
}

pub fn validate_attributes(attributes: &Value) -> Result<(), RoutingError> {
    if !attributes.is_object() {
        return Err(RoutingError::invalid("attributes", "must be a JSON object"));
    }
    let size = json_size(attributes);
    if size > MAX_ATTRIBUTES_BYTES {
        return Err(RoutingError::invalid(
            "attributes",
            format!("are {size} bytes as JSON; the limit is 4096"),
        ));
    }
    Ok(())
}

/// A valid name that none of `taken` has, ignoring case (as lists filter names); `what` is
/// what bears it ("a task queue").
fn validate_unique_name<'a>(
    what: &str,
    name: &str,
    mut taken: impl Iterator<Item = &'a str>,
) -> Result<(), RoutingError> {
    validate_name("friendly_name", name)?;
    if taken.any(|other| other.eq_ignore_ascii_case(name)) {
        return Err(RoutingError::invalid("friendly_name", format!("{what} named {name:?} exists")));
    }
    Ok(())
}

fn validate_reservation_timeout(seconds: u32) -> Result<(), RoutingError> {
    if !(1..=MAX_RESERVATION_TIMEOUT).contains(&seconds) {
        return Err(RoutingError::invalid("task_reservation_timeout", "must be between 1 and 86400 seconds"));
    }
    Ok(())
}

/// The `conversations` object of a task's attributes (Flex Insights' links and outcome), made
/// if there is none; refused if the attribute is something else.
fn conversations_of(attributes: &mut Value) -> Result<&mut serde_json::Map<String, Value>, RoutingError> {
    let not_an_object = || {
        RoutingError::invalid(
            "attributes",
            "the task's conversations attribute is not an object (Flex Insights' shape)",
        )
    };
    let entry =
        attributes.as_object_mut().ok_or_else(not_an_object)?.entry("conversations").or_insert(json!({}));
    entry.as_object_mut().ok_or_else(not_an_object)
}

fn validate_wrap_up_limit(seconds: u32) -> Result<(), RoutingError> {
    if seconds > MAX_WRAP_UP_SECONDS {
        return Err(RoutingError::invalid(
            "wrap_up_limit",
            "must be between 0 (no limit) and 86,400 seconds",
        ));
    }
    Ok(())
}

fn validate_dispositions(codes: &[String]) -> Result<(), RoutingError> {
    if codes.len() > MAX_DISPOSITIONS {
        return Err(RoutingError::invalid("disposition_codes", format!("at most {MAX_DISPOSITIONS} codes")));
    }
    for (at, code) in codes.iter().enumerate() {
        let chars = code.chars().count();
        // Commas separate codes in a request (`DispositionCodes=Sale,Callback`).
        if code.trim() != code || chars == 0 || chars > MAX_DISPOSITION_CHARS || code.contains(',') {
            return Err(RoutingError::invalid(
                "disposition_codes",
                format!(
                    "{code:?}: a code is 1 to {MAX_DISPOSITION_CHARS} characters, without a comma or spaces around it"
                ),
            ));
        }
        if codes[..at].contains(code) {
            return Err(RoutingError::invalid("disposition_codes", format!("{code:?} is listed twice")));
        }
    }
    Ok(())
}

fn validate_max_reserved(max: u32) -> Result<(), RoutingError> {
    if !(1..=MAX_RESERVED_WORKERS).contains(&max) {
        return Err(RoutingError::invalid("max_reserved_workers", "must be between 1 and 50"));
    }
    Ok(())
}

fn parse_target_workers(source: &str) -> Result<Expression, RoutingError> {
    Expression::parse(source, Context::Queue).map_err(|err| RoutingError::InvalidExpression {
        field: "target_workers",
        message: format!("{err}\n{}", err.snippet()),
    })
}

/// The length of `value` as compact JSON, counted without building the string.
fn json_size(value: &Value) -> usize {
    struct Counter(usize);
    impl std::fmt::Write for Counter {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            self.0 += text.len();
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match std::fmt::Write::write_fmt(&mut counter, format_args!("{value}")) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}
