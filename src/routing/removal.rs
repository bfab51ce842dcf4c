//! Deleting activities, workers, task queues, workflows and tasks (TaskRouter's `DELETE`).
//!
//! A resource still in use is refused with a message that says what holds it: an activity
//! that workers are in, a worker with an offer or a task, a queue a workflow names or a task
//! waits in, a workflow with open tasks, a task channel with open tasks or one Switchboard
//! routes its own calls and texts on.
//!
//! Activities, workers, queues and workflows are rare changes, and the engine refers to them
//! by position in its vectors from many places (queue membership, ready sets, reservations).
//! Rather than patch every such index, a deletion edits the exported [`Snapshot`], which names
//! everything by SID, and imports it again: the engine is rebuilt with consistent indexes by
//! the code that restarts it. That costs time proportional to the state, which an admin change
//! can afford. What the deleted resource leaves behind goes with it: a deleted worker's ended
//! offers, a deleted queue's, workflow's or task channel's completed and canceled tasks (which
//! would be purged within five minutes anyway), the workers' capacities on a deleted channel.
//! The event history keeps all of it.
//!
//! Tasks are deleted in place: deleting one is an everyday operation.

use std::collections::HashSet;

use super::snapshot::{ReservationState, Snapshot};
use super::{DEFAULT_CHANNELS, Engine};
use crate::routing::event::EventType;
use crate::routing::model::{ReservationStatus, Timer};
use crate::routing::{Millis, RoutingError, Sid};

impl Engine {
    /// Deletes an activity no worker is in, which is neither the default nor the timeout
    /// activity.
    pub fn delete_activity(&mut self, sid: Sid, now: Millis) -> Result<(), RoutingError> {
        let idx = self.activity_index(sid)?;
        let role = if sid == self.settings.default_activity {
            Some("default")
        } else if sid == self.settings.timeout_activity {
            Some("timeout")
        } else {
            None
        };
        if let Some(role) = role {
            return Err(RoutingError::conflict(format!(
                "activity {sid} is the workspace's {role} activity and cannot be deleted"
            )));
        }
        let workers = self.workers.iter().filter(|worker| worker.activity == idx).count();
        if workers > 0 {
            return Err(RoutingError::conflict(format!(
                "activity {sid} cannot be deleted: {workers} worker(s) are in it; move them to another activity first"
            )));
        }
        self.rebuild(|snapshot| snapshot.activities.retain(|activity| activity.sid != sid))?;
        self.emit(now, EventType::ActivityDeleted, sid, |event| event.activity = Some(sid));
        Ok(())
    }

    /// Deletes a worker who holds no offer and no task. Their ended offers go with them.
    pub fn delete_worker(&mut self, sid: Sid, now: Millis) -> Result<(), RoutingError> {
        let idx = self.worker_position(sid).ok_or(RoutingError::not_found(sid))?;
        let open = self
            .reservations
            .values()
            .find(|reservation| reservation.worker == idx && !reservation.status.is_final());
        if let Some(open) = open {
            return Err(RoutingError::conflict(format!(
                "worker {sid} cannot be deleted: reservation {} of task {} is {}; end it first",
                open.sid,
                open.task,
                open.status.as_str()
            )));
        }
        self.rebuild(|snapshot| {
            snapshot.workers.retain(|worker| worker.sid != sid);
            snapshot.forget_reservations(|reservation| reservation.worker == sid);
            for task in &mut snapshot.tasks {
                task.rejected_by.retain(|&worker| worker != sid);
                if task.assigned_worker == Some(sid) {
                    task.assigned_worker = None;
                }
            }
        })?;
        self.emit(now, EventType::WorkerDeleted, sid, |event| event.worker = Some(sid));
        Ok(())
    }

    /// Deletes a queue that no workflow names and no open task or offer is in.
    pub fn delete_task_queue(&mut self, sid: Sid, now: Millis) -> Result<(), RoutingError> {
        let idx = self.queue_index(sid)?;
        if let Some(workflow) = self.workflows.iter().find(|workflow| workflow.config.names_queue(sid)) {
            return Err(RoutingError::conflict(format!(
                "task queue {sid} cannot be deleted: workflow {} ({:?}) routes to it; change its configuration first",
                workflow.sid, workflow.friendly_name
            )));
        }
        let open_task = self.tasks.values().find(|task| task.queue == Some(idx) && !task.status.is_final());
        let open_offer = self
            .reservations
            .values()
            .find(|reservation| reservation.queue == idx && !reservation.status.is_final());
        if let Some(task) = open_task.map(|task| task.sid).or(open_offer.map(|reservation| reservation.task))
        {
            return Err(RoutingError::conflict(format!(
                "task queue {sid} cannot be deleted: task {task} is open in it; complete or cancel it first"
            )));
        }
        self.rebuild(|snapshot| {
            snapshot.queues.retain(|queue| queue.sid != sid);
            let ended: HashSet<Sid> =
                snapshot.tasks.iter().filter(|task| task.queue == Some(sid)).map(|task| task.sid).collect();
            snapshot.forget_tasks(&ended);
            snapshot.forget_reservations(|reservation| reservation.queue == sid);
        })?;
        self.emit(now, EventType::TaskQueueDeleted, sid, |event| event.queue = Some(sid));
        Ok(())
    }

    /// Deletes a workflow with no open task. Its ended tasks go with it.
    pub fn delete_workflow(&mut self, sid: Sid, now: Millis) -> Result<(), RoutingError> {
        let idx = self.workflow_index(sid)?;
        let open = self.tasks.values().find(|task| task.workflow == idx && !task.status.is_final());
        if let Some(task) = open {
            return Err(RoutingError::conflict(format!(
                "workflow {sid} cannot be deleted: task {} is {} in it; complete or cancel it first",
                task.sid,
                task.status.as_str()
            )));
        }
        self.rebuild(|snapshot| {
            snapshot.workflows.retain(|workflow| workflow.sid != sid);
            let ended: HashSet<Sid> =
                snapshot.tasks.iter().filter(|task| task.workflow == sid).map(|task| task.sid).collect();
            snapshot.forget_tasks(&ended);
        })?;
        self.emit(now, EventType::WorkflowDeleted, sid, |event| event.workflow = Some(sid));
        Ok(())
    }

    /// Deletes a task channel no open task is on, which is not one of the built-in channels
    /// (`default`, `voice`, `sms`, `chat`, `whatsapp`: tasks created without a channel, calls
    /// and texts are routed on them). The workers' capacities on it and its ended tasks go with it.
    pub fn delete_task_channel(&mut self, sid: Sid, now: Millis) -> Result<(), RoutingError> {
        let idx = self
            .channels
            .iter()
            .position(|channel| channel.sid == sid)
            .ok_or(RoutingError::not_found(sid))?;
        let name = &self.channels[idx].unique_name;
        if DEFAULT_CHANNELS.iter().any(|(built_in, _, _)| built_in == name) {
            let built_in: Vec<&str> = DEFAULT_CHANNELS.iter().map(|(built_in, _, _)| *built_in).collect();
            return Err(RoutingError::in_use(format!(
                "task channel {sid} ({name}) cannot be deleted: it is built in; Switchboard routes its calls, \
                 texts and the tasks created without a TaskChannel on {}",
                built_in.join(", ")
            )));
        }
        let open = self
            .tasks
            .values()
            .filter(|task| task.channel == idx && !task.status.is_final())
            .min_by_key(|task| task.seq);
        if let Some(task) = open {
            return Err(RoutingError::in_use(format!(
                "task channel {sid} ({name}) cannot be deleted: task {} is {} on it; complete or cancel it first",
                task.sid,
                task.status.as_str()
            )));
        }
        self.rebuild(|snapshot| {
            if let Some(position) = snapshot.channels.iter().position(|channel| channel.sid == sid) {
                snapshot.channels.remove(position);
                for worker in &mut snapshot.workers {
                    worker.channels.remove(position);
                }
            }
            let ended: HashSet<Sid> =
                snapshot.tasks.iter().filter(|task| task.channel == sid).map(|task| task.sid).collect();
            snapshot.forget_tasks(&ended);
        })?;
        self.emit(now, EventType::TaskChannelDeleted, sid, |event| event.channel = Some(sid));
        Ok(())
    }

    /// Deletes a task whatever its status. Its open offers are canceled and an assigned
    /// worker's capacity is freed (`reservation.canceled`), then the task and its reservations
    /// are gone (`task.deleted`, and no `task.canceled` or `task.completed`).
    pub fn delete_task(&mut self, sid: Sid, now: Millis) -> Result<(), RoutingError> {
        let (channel, reservations) = {
            let task = self.existing_task(sid)?;
            (task.channel, task.reservations.clone())
        };
        for reservation in reservations {
            match self.reservations[&reservation].status {
                ReservationStatus::Pending => {
                    self.end_reservation(reservation, ReservationStatus::Canceled, now)
                }
                ReservationStatus::Accepted | ReservationStatus::Wrapping => {
                    let held = self.reservations.get_mut(&reservation).expect("listed by its task");
                    held.status = ReservationStatus::Canceled;
                    let worker = held.worker;
                    self.emit_reservation(now, EventType::ReservationCanceled, reservation);
                    self.release_capacity(worker, channel);
                }
                _ => {}
            }
        }
        self.leave_queue(sid);
        self.leave_live_set(sid);
        let task = self.tasks.remove(&sid).expect("checked above");
        for reservation in &task.reservations {
            self.reservations.remove(reservation);
        }
        for timer in [task.step_timer, task.ttl_timer].into_iter().flatten() {
            self.timers.remove(&timer);
        }
        // Only an ended task has a purge timer, whose key it does not keep: look for it then.
        if task.status.is_final() {
            self.timers.retain(|_, timer| *timer != Timer::Purge(sid));
        }
        let queue = task.queue.map(|queue| self.queues[queue].sid);
        let workflow = self.workflows[task.workflow].sid;
        self.emit(now, EventType::TaskDeleted, sid, |event| {
            event.task = Some(sid);
            event.queue = queue;
            event.workflow = Some(workflow);
        });
        self.dispatch(now);
        Ok(())
    }

    /// Replaces the engine by the import of its own snapshot after `edit`. A snapshot that no
    /// longer holds together is refused, and the engine is left as it was.
    fn rebuild(&mut self, edit: impl FnOnce(&mut Snapshot)) -> Result<(), RoutingError> {
        let mut snapshot = self.export();
        edit(&mut snapshot);
        let mut rebuilt = Engine::import(snapshot)?;
        rebuilt.events = std::mem::take(&mut self.events);
        *self = rebuilt;
        Ok(())
    }
}

impl Snapshot {
    /// Removes `tasks`, their reservations and their timers.
    fn forget_tasks(&mut self, tasks: &HashSet<Sid>) {
        self.tasks.retain(|task| !tasks.contains(&task.sid));
        self.reservations.retain(|reservation| !tasks.contains(&reservation.task));
        self.timers.retain(|(_, timer)| timer.task().is_none_or(|task| !tasks.contains(&task)));
    }

    /// Removes the reservations `forget` picks, from the list and from their tasks' lists.
    fn forget_reservations(&mut self, forget: impl Fn(&ReservationState) -> bool) {
        let forgotten: HashSet<Sid> =
            self.reservations.iter().filter(|reservation| forget(reservation)).map(|r| r.sid).collect();
        self.reservations.retain(|reservation| !forgotten.contains(&reservation.sid));
        for task in &mut self.tasks {
            task.reservations.retain(|reservation| !forgotten.contains(reservation));
        }
        self.timers.retain(|(_, timer)| {
            !matches!(timer, Timer::ReservationTimeout(reservation) if forgotten.contains(reservation))
        });
    }
}
