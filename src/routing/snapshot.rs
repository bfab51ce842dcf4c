//! The engine's whole state as plain data ([`Snapshot`]), and back. Export keeps every fact
//! (including pending timers, with their sequence numbers, so simultaneous deadlines fire in
//! the same order after a restore); import rebuilds what is derived from facts: SID indexes,
//! queue membership, ready sets and waiting sets. `import(export(e))` behaves exactly like `e`.
//!
//! A child of `engine.rs`, which owns the private state it reads and writes.

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::routing::skill::Skill;

/// Everything the engine knows, in plain data; what the durable store writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub salt: u64,
    pub next_sid: u64,
    pub workspace_sid: Sid,
    pub settings: WorkspaceSettings,
    pub activities: Vec<ActivityState>,
    pub channels: Vec<ChannelState>,
    pub skills: Vec<Skill>,
    pub workers: Vec<WorkerState>,
    pub queues: Vec<QueueState>,
    pub workflows: Vec<WorkflowState>,
    /// In creation order.
    pub tasks: Vec<TaskState>,
    /// In creation order.
    pub reservations: Vec<ReservationState>,
    pub timers: Vec<(TimerKey, Timer)>,
    pub timer_seq: u64,
    pub task_seq: u64,
    pub event_seq: u64,
}

impl Snapshot {
    /// Sorts the tasks and reservations into creation order (SIDs are minted from a counter,
    /// so a reservation's SID orders it), as [`Engine::export`] gives them.
    pub fn put_in_order(&mut self) {
        self.tasks.sort_unstable_by_key(|task| task.seq);
        self.reservations.sort_unstable_by_key(|reservation| reservation.sid);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityState {
    pub sid: Sid,
    pub friendly_name: String,
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelState {
    pub sid: Sid,
    pub unique_name: String,
    pub friendly_name: String,
    pub default_capacity: u32,
    pub channel_optimized_routing: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerState {
    pub sid: Sid,
    pub friendly_name: String,
    pub attributes: Attributes,
    pub activity: Sid,
    /// One per channel, in the snapshot's channel order.
    pub channels: Vec<WorkerChannel>,
    pub last_assignment: Option<Millis>,
    pub available_since: Millis,
    pub activity_changed_at: Millis,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueState {
    pub sid: Sid,
    pub friendly_name: String,
    pub target_workers: String,
    pub task_order: TaskOrder,
    pub max_reserved_workers: u32,
    pub wrap_up: WrapUpRules,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowState {
    pub sid: Sid,
    pub friendly_name: String,
    pub configuration: String,
    pub task_reservation_timeout: u32,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub sid: Sid,
    pub seq: u64,
    pub attributes: Attributes,
    pub priority: i64,
    pub channel: Sid,
    pub workflow: Sid,
    pub status: TaskStatus,
    pub reason: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub virtual_start: Millis,
    pub ttl: u32,
    pub step: Step,
    pub queue: Option<Sid>,
    pub queue_entered_at: Option<Millis>,
    pub reservations: Vec<Sid>,
    pub rejected_by: Vec<Sid>,
    pub assignment_count: u32,
    pub step_timer: Option<TimerKey>,
    pub ttl_timer: Option<TimerKey>,
    pub skip_check_pending: bool,
    pub step_expired: bool,
    pub assigned_worker: Option<Sid>,
    pub transfer: Option<TransferOf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationState {
    pub sid: Sid,
    pub task: Sid,
    pub worker: Sid,
    pub queue: Sid,
    pub status: ReservationStatus,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub timeout_at: Millis,
    pub timer: Option<TimerKey>,
}

fn corrupt(message: String) -> RoutingError {
    RoutingError::Invalid { field: "snapshot", message }
}

impl Engine {
    /// The whole state as plain data. Take it between commands (no events pending).
    pub fn export(&self) -> Snapshot {
        let mut snapshot = self.export_unordered();
        snapshot.put_in_order();
        snapshot
    }

    /// [`Engine::export`] with tasks and reservations in no particular order, for a caller
    /// that holds a lock around the engine: [`Snapshot::put_in_order`] can then sort them
    /// after the lock is released.
    pub fn export_unordered(&self) -> Snapshot {
        let (salt, next_sid) = self.sids.parts();
        let tasks = self.tasks.values().map(|task| &**task);
        let reservations = self.reservations.values();
        Snapshot {
            salt,
            next_sid,
            workspace_sid: self.workspace_sid,
            settings: self.settings.clone(),
            activities: self
                .activities
                .iter()
                .map(|a| ActivityState {
                    sid: a.sid,
                    friendly_name: a.friendly_name.clone(),
                    available: a.available,
                })
                .collect(),
            channels: self
                .channels
                .iter()
                .map(|c| ChannelState {
                    sid: c.sid,
                    unique_name: c.unique_name.clone(),
                    friendly_name: c.friendly_name.clone(),
                    default_capacity: c.default_capacity,
                    channel_optimized_routing: c.channel_optimized_routing,
                    created_at: c.created_at,
                    updated_at: c.updated_at,
                })
                .collect(),
            skills: self.skills.clone(),
            workers: self
                .workers
                .iter()
                .map(|w| WorkerState {
                    sid: w.sid,
                    friendly_name: w.friendly_name.clone(),
                    attributes: w.attributes.clone(),
                    activity: self.activities[w.activity].sid,
                    channels: w.channels.clone(),
                    last_assignment: w.last_assignment,
                    available_since: w.available_since,
                    activity_changed_at: w.activity_changed_at,
                    created_at: w.created_at,
                    updated_at: w.updated_at,
                })
                .collect(),
            queues: self
                .queues
                .iter()
                .map(|q| QueueState {
                    sid: q.sid,
                    friendly_name: q.friendly_name.clone(),
                    target_workers: q.target_workers.clone(),
                    task_order: q.task_order,
                    max_reserved_workers: q.max_reserved_workers,
                    wrap_up: q.wrap_up.clone(),
                    created_at: q.created_at,
                    updated_at: q.updated_at,
                })
                .collect(),
            workflows: self
                .workflows
                .iter()
                .map(|w| WorkflowState {
                    sid: w.sid,
                    friendly_name: w.friendly_name.clone(),
                    configuration: w.configuration.clone(),
                    task_reservation_timeout: w.task_reservation_timeout,
                    created_at: w.created_at,
                    updated_at: w.updated_at,
                })
                .collect(),
            tasks: tasks
                .into_iter()
                .map(|t| TaskState {
                    sid: t.sid,
                    seq: t.seq,
                    attributes: t.attributes.clone(),
                    priority: t.priority,
                    channel: self.channels[t.channel].sid,
                    workflow: self.workflows[t.workflow].sid,
                    status: t.status,
                    reason: t.reason.clone(),
                    created_at: t.created_at,
                    updated_at: t.updated_at,
                    virtual_start: t.virtual_start,
                    ttl: t.ttl,
                    step: t.step,
                    queue: t.queue.map(|q| self.queues[q].sid),
                    queue_entered_at: t.queue_entered_at,
                    reservations: t.reservations.clone(),
                    rejected_by: t.rejected_by.iter().map(|&w| self.workers[w].sid).collect(),
                    assignment_count: t.assignment_count,
                    step_timer: t.step_timer,
                    ttl_timer: t.ttl_timer,
                    skip_check_pending: t.skip_check_pending,
                    step_expired: t.step_expired,
                    assigned_worker: t.assigned_worker.map(|w| self.workers[w].sid),
                    transfer: t.transfer,
                })
                .collect(),
            reservations: reservations
                .into_iter()
                .map(|r| ReservationState {
                    sid: r.sid,
                    task: r.task,
                    worker: self.workers[r.worker].sid,
                    queue: self.queues[r.queue].sid,
                    status: r.status,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                    timeout_at: r.timeout_at,
                    timer: r.timer,
                })
                .collect(),
            timers: self.timers.iter().map(|(&key, &timer)| (key, timer)).collect(),
            timer_seq: self.timer_seq,
            task_seq: self.task_seq,
            event_seq: self.event_seq,
        }
    }

    /// Rebuilds an engine from a snapshot. A snapshot that does not hold together (a reference
    /// to a missing resource, a bad expression) is an error, never a panic: it may come from a
    /// damaged disk.
    pub fn import(snapshot: Snapshot) -> Result<Engine, RoutingError> {
        let activities: Vec<Activity> =
            snapshot.activities.iter().map(|a| Activity::new(a.sid, &a.friendly_name, a.available)).collect();
        let activity_index = |sid: Sid| {
            activities
                .iter()
                .position(|a| a.sid == sid)
                .ok_or_else(|| corrupt(format!("unknown activity {sid}")))
        };
        activity_index(snapshot.settings.default_activity)?;
        activity_index(snapshot.settings.timeout_activity)?;
        let channels: Vec<TaskChannel> = snapshot
            .channels
            .iter()
            .map(|c| TaskChannel {
                sid: c.sid,
                unique_name: c.unique_name.clone(),
                friendly_name: c.friendly_name.clone(),
                default_capacity: c.default_capacity,
                channel_optimized_routing: c.channel_optimized_routing,
                created_at: c.created_at,
                updated_at: c.updated_at,
            })
            .collect();
        let mut engine = Engine {
            sids: SidGenerator::resume(snapshot.salt, snapshot.next_sid),
            workspace_sid: snapshot.workspace_sid,
            settings: snapshot.settings.clone(),
            activities: Vec::new(),
            channels,
            skills: snapshot.skills.clone(),
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
            timer_seq: snapshot.timer_seq,
            task_seq: snapshot.task_seq,
            events: Vec::new(),
            event_seq: snapshot.event_seq,
            dirty_tasks: VecDeque::new(),
            dirty_workers: VecDeque::new(),
        };
        for worker in &snapshot.workers {
            if worker.channels.len() != engine.channels.len() {
                return Err(corrupt(format!("worker {} has {} channels", worker.sid, worker.channels.len())));
            }
            let idx = engine.workers.len();
            engine.workers.push(Worker {
                sid: worker.sid,
                sid_text: worker.sid.to_string(),
                friendly_name: worker.friendly_name.clone(),
                attributes: worker.attributes.clone(),
                activity: activity_index(worker.activity)?,
                channels: worker.channels.clone(),
                last_assignment: worker.last_assignment,
                available_since: worker.available_since,
                activity_changed_at: worker.activity_changed_at,
                queues: Vec::new(),
                ready_key: worker.available_since,
                ready_channels: ChannelSet::default(),
                dirty: false,
                created_at: worker.created_at,
                updated_at: worker.updated_at,
            });
            engine.worker_by_sid.insert(worker.sid, idx);
            engine.worker_by_name.insert(worker.friendly_name.to_lowercase(), idx);
        }
        engine.activities = activities;
        for queue in &snapshot.queues {
            engine.queue_by_sid.insert(queue.sid, engine.queues.len());
            engine.queues.push(TaskQueue {
                sid: queue.sid,
                friendly_name: queue.friendly_name.clone(),
                target_workers: queue.target_workers.clone(),
                target_expression: parse_target_workers(&queue.target_workers)?,
                task_order: queue.task_order,
                max_reserved_workers: queue.max_reserved_workers,
                wrap_up: queue.wrap_up.clone(),
                members: Default::default(),
                ready: vec![Default::default(); engine.channels.len()],
                waiting: Default::default(),
                live: Default::default(),
                created_at: queue.created_at,
                updated_at: queue.updated_at,
            });
        }
        for idx in 0..engine.workers.len() {
            engine.update_membership(idx);
        }
        for workflow in &snapshot.workflows {
            let config = WorkflowConfig::parse(&workflow.configuration, |queue| {
                engine.queue_by_sid.contains_key(&queue)
            })?;
            engine.workflow_by_sid.insert(workflow.sid, engine.workflows.len());
            engine.workflows.push(Workflow {
                sid: workflow.sid,
                friendly_name: workflow.friendly_name.clone(),
                configuration: workflow.configuration.clone(),
                config,
                task_reservation_timeout: workflow.task_reservation_timeout,
                created_at: workflow.created_at,
                updated_at: workflow.updated_at,
            });
        }
        let worker_of = |engine: &Engine, sid: Sid| {
            engine.worker_by_sid.get(&sid).copied().ok_or_else(|| corrupt(format!("unknown worker {sid}")))
        };
        let queue_of = |engine: &Engine, sid: Sid| {
            engine.queue_by_sid.get(&sid).copied().ok_or_else(|| corrupt(format!("unknown queue {sid}")))
        };
        for task in &snapshot.tasks {
            let workflow = engine.workflow_by_sid.get(&task.workflow).copied().ok_or_else(|| {
                corrupt(format!("task {} names unknown workflow {}", task.sid, task.workflow))
            })?;
            // Only a pending task walks on from its step; others may keep a step of a
            // configuration since replaced (a reserved one is walked again when its offer ends).
            if let Step::At { position, .. } = task.step
                && task.status == TaskStatus::Pending
                && matches!(position, Position::Target { .. })
                && engine.workflows[workflow].config.target(position).is_none()
            {
                return Err(corrupt(format!(
                    "task {} stands at a step its workflow does not have",
                    task.sid
                )));
            }
            let channel = engine.channels.iter().position(|c| c.sid == task.channel).ok_or_else(|| {
                corrupt(format!("task {} names unknown channel {}", task.sid, task.channel))
            })?;
            let rejected_by =
                task.rejected_by.iter().map(|&sid| worker_of(&engine, sid)).collect::<Result<_, _>>()?;
            let queue = task.queue.map(|sid| queue_of(&engine, sid)).transpose()?;
            let assigned_worker = task.assigned_worker.map(|sid| worker_of(&engine, sid)).transpose()?;
            engine.tasks.insert(
                task.sid,
                Box::new(Task {
                    sid: task.sid,
                    seq: task.seq,
                    attributes: task.attributes.clone(),
                    priority: task.priority,
                    channel,
                    workflow,
                    status: task.status,
                    reason: task.reason.clone(),
                    created_at: task.created_at,
                    updated_at: task.updated_at,
                    virtual_start: task.virtual_start,
                    ttl: task.ttl,
                    step: task.step,
                    queue,
                    queue_entered_at: task.queue_entered_at,
                    wait_key: None,
                    reservations: task.reservations.clone(),
                    rejected_by,
                    assignment_count: task.assignment_count,
                    step_timer: task.step_timer,
                    ttl_timer: task.ttl_timer,
                    skip_check_pending: task.skip_check_pending,
                    step_expired: task.step_expired,
                    dirty: false,
                    assigned_worker,
                    transfer: task.transfer,
                }),
            );
            if let Some(queue) = queue.filter(|_| !task.status.is_final()) {
                engine.queues[queue].live.insert(task.sid);
            }
        }
        for reservation in &snapshot.reservations {
            if !engine.tasks.contains_key(&reservation.task) {
                return Err(corrupt(format!(
                    "reservation {} names unknown task {}",
                    reservation.sid, reservation.task
                )));
            }
            let (worker, queue) =
                (worker_of(&engine, reservation.worker)?, queue_of(&engine, reservation.queue)?);
            engine.reservations.insert(
                reservation.sid,
                Reservation {
                    sid: reservation.sid,
                    task: reservation.task,
                    worker,
                    queue,
                    status: reservation.status,
                    created_at: reservation.created_at,
                    updated_at: reservation.updated_at,
                    timeout_at: reservation.timeout_at,
                    timer: reservation.timer,
                },
            );
        }
        if let Some(task) = snapshot
            .tasks
            .iter()
            .find(|t| t.reservations.iter().any(|r| !engine.reservations.contains_key(r)))
        {
            return Err(corrupt(format!("task {} names a reservation that does not exist", task.sid)));
        }
        engine.timers = snapshot.timers.iter().copied().collect();
        let pending: Vec<Sid> = snapshot
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Pending && t.queue.is_some())
            .map(|t| t.sid)
            .collect();
        for sid in pending {
            engine.join_queue(sid);
        }
        // Joining queues marks tasks for routing; a snapshot is taken between commands, when
        // routing has already run, so nothing is pending.
        for sid in std::mem::take(&mut engine.dirty_tasks) {
            engine.task_mut(sid).dirty = false;
        }
        for idx in 0..engine.workers.len() {
            engine.refresh_ready(idx);
        }
        Ok(engine)
    }
}
