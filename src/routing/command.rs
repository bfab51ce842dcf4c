//! Every change to the engine as a value. The durable store logs commands and replays them on
//! recovery: because the engine is deterministic (SIDs are minted from a counter, nothing
//! depends on hash-map order), replaying the same commands at the same times rebuilds exactly
//! the same state, SIDs and events.

use serde_json::Value;

use super::engine::{
    Engine, NewAssigned, NewTask, NewTaskChannel, NewTaskQueue, NewTransfer, NewWorker, NewWorkflow,
    TaskChanges, TaskChannelChanges, TaskQueueChanges, WorkflowChanges, WorkspaceChanges,
};
use super::model::TaskOrder;
use super::sid::{Sid, SidKind};
use super::{Millis, RoutingError};

/// One engine command. Timers firing are a command too (`Advance`), so that a replay fires them
/// at the same points.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Fire every deadline up to the command's time.
    Advance,
    CreateActivity {
        friendly_name: String,
        available: bool,
    },
    /// The default and timeout activities and the queue order, without an event (how logs
    /// written before workspace updates set them).
    ConfigureWorkspace {
        default_activity: Sid,
        timeout_activity: Sid,
        prioritize_queue_order: TaskOrder,
    },
    /// TaskRouter's workspace update: any of its settings, all or nothing.
    UpdateWorkspace(WorkspaceChanges),
    CreateTaskChannel(NewTaskChannel),
    UpdateTaskChannel {
        channel: Sid,
        changes: TaskChannelChanges,
    },
    CreateSkill {
        name: String,
        levels: Option<(u32, u32)>,
    },
    DeleteSkill {
        name: String,
    },
    CreateWorker(NewWorker),
    UpdateWorkerAttributes {
        worker: Sid,
        attributes: Value,
    },
    SetWorkerActivity {
        worker: Sid,
        activity: Sid,
        reject_pending: bool,
    },
    SetWorkerChannel {
        worker: Sid,
        channel: String,
        capacity: Option<u32>,
        available: Option<bool>,
    },
    /// Sets a worker's skills and levels; `disabled` ones keep their level but do not route.
    /// `disabled: None` keeps the switched-off skills there are (less those now given).
    SetWorkerSkills {
        worker: Sid,
        skills: Vec<(String, Option<u32>)>,
        disabled: Option<Vec<(String, Option<u32>)>>,
    },
    CreateTaskQueue(NewTaskQueue),
    UpdateTaskQueue {
        queue: Sid,
        changes: TaskQueueChanges,
    },
    CreateWorkflow(NewWorkflow),
    UpdateWorkflow {
        workflow: Sid,
        changes: WorkflowChanges,
    },
    /// Deletes an activity, worker, task queue, workflow, task channel or task (by the SID's
    /// kind).
    Delete {
        resource: Sid,
    },
    CreateTask(NewTask),
    /// TaskRouter's task update: attributes, priority and status in one step, all or nothing.
    UpdateTask {
        task: Sid,
        changes: TaskChanges,
    },
    /// Logged before `UpdateTask` existed, and still used alone.
    UpdateTaskAttributes {
        task: Sid,
        attributes: Value,
    },
    Accept {
        reservation: Sid,
    },
    Reject {
        reservation: Sid,
        activity: Option<Sid>,
    },
    /// The worker accepted, but the call bridged to them was not answered (no answer, busy,
    /// failed): the task is routed again.
    Unanswered {
        reservation: Sid,
    },
    WrapUp {
        task: Sid,
    },
    Complete {
        task: Sid,
        reason: String,
    },
    /// Completes a task with one of its queue's disposition codes, kept in its attributes as
    /// `conversations.outcome`.
    Dispose {
        task: Sid,
        outcome: String,
        reason: String,
    },
    Cancel {
        task: Sid,
        reason: String,
    },
    /// Transfers an assigned task: creates the task for its new agent or queue.
    Transfer(NewTransfer),
    /// A task a worker starts themselves (an outbound call), assigned to them at once.
    CreateAssigned(NewAssigned),
}

impl Command {
    /// An agent's completion of `task`: with the disposition they picked, which its queue's
    /// codes require (the REST API's completion, as on TaskRouter, asks for none).
    pub fn agent_completion(
        engine: &Engine,
        task: Sid,
        disposition: Option<&str>,
        reason: &str,
    ) -> Result<Command, RoutingError> {
        let reason = reason.to_owned();
        if let Some(outcome) = disposition {
            return Ok(Command::Dispose { task, outcome: outcome.to_owned(), reason });
        }
        let found = engine.task(task).ok_or_else(|| RoutingError::not_found(task))?;
        match engine.task_queue(found) {
            Some(queue) if !queue.wrap_up.dispositions.is_empty() => Err(RoutingError::invalid(
                "disposition",
                format!("pick a disposition: {}", queue.wrap_up.dispositions.join(", ")),
            )),
            _ => Ok(Command::Complete { task, reason }),
        }
    }
}

impl Engine {
    /// Applies `command` at `now`. Returns the SID of what a `Create*` command created.
    pub fn apply(&mut self, command: &Command, now: Millis) -> Result<Option<Sid>, RoutingError> {
        let created = |sid: Sid| Some(sid);
        Ok(match command {
            Command::Advance => {
                self.advance(now);
                None
            }
            Command::CreateActivity { friendly_name, available } => {
                created(self.create_activity(friendly_name, *available, now)?)
            }
            Command::ConfigureWorkspace { default_activity, timeout_activity, prioritize_queue_order } => {
                self.configure_workspace(*default_activity, *timeout_activity, *prioritize_queue_order)?;
                None
            }
            Command::UpdateWorkspace(changes) => {
                self.update_workspace(changes.clone(), now)?;
                None
            }
            Command::CreateTaskChannel(new) => created(self.create_task_channel(new.clone(), now)?),
            Command::UpdateTaskChannel { channel, changes } => {
                self.update_task_channel(*channel, changes.clone(), now)?;
                None
            }
            Command::CreateSkill { name, levels } => {
                self.create_skill(name, *levels)?;
                None
            }
            Command::DeleteSkill { name } => {
                self.delete_skill(name)?;
                None
            }
            Command::CreateWorker(new) => created(self.create_worker(new.clone(), now)?),
            Command::UpdateWorkerAttributes { worker, attributes } => {
                self.update_worker_attributes(*worker, attributes.clone(), now)?;
                None
            }
            Command::SetWorkerActivity { worker, activity, reject_pending } => {
                self.set_worker_activity(*worker, *activity, *reject_pending, now)?;
                None
            }
            Command::SetWorkerChannel { worker, channel, capacity, available } => {
                self.set_worker_channel(*worker, channel, *capacity, *available, now)?;
                None
            }
            Command::SetWorkerSkills { worker, skills, disabled } => {
                self.set_worker_skills(*worker, skills, disabled.as_deref(), now)?;
                None
            }
            Command::CreateTaskQueue(new) => created(self.create_task_queue(new.clone(), now)?),
            Command::UpdateTaskQueue { queue, changes } => {
                self.update_task_queue(*queue, changes.clone(), now)?;
                None
            }
            Command::CreateWorkflow(new) => created(self.create_workflow(new.clone(), now)?),
            Command::UpdateWorkflow { workflow, changes } => {
                self.update_workflow(*workflow, changes.clone(), now)?;
                None
            }
            Command::Delete { resource } => {
                match resource.kind() {
                    SidKind::Activity => self.delete_activity(*resource, now)?,
                    SidKind::Worker => self.delete_worker(*resource, now)?,
                    SidKind::TaskQueue => self.delete_task_queue(*resource, now)?,
                    SidKind::Workflow => self.delete_workflow(*resource, now)?,
                    SidKind::Task => self.delete_task(*resource, now)?,
                    SidKind::TaskChannel => self.delete_task_channel(*resource, now)?,
                    _ => return Err(RoutingError::not_found(*resource)),
                }
                None
            }
            Command::CreateTask(new) => created(self.create_task(new.clone(), now)?),
            Command::UpdateTask { task, changes } => {
                self.update_task(*task, changes.clone(), now)?;
                None
            }
            Command::UpdateTaskAttributes { task, attributes } => {
                self.update_task_attributes(*task, attributes.clone(), now)?;
                None
            }
            Command::Unanswered { reservation } => {
                self.unanswered(*reservation, now)?;
                None
            }
            Command::Accept { reservation } => {
                self.accept(*reservation, now)?;
                None
            }
            Command::Reject { reservation, activity } => {
                self.reject(*reservation, *activity, now)?;
                None
            }
            Command::WrapUp { task } => {
                self.wrap_up(*task, now)?;
                None
            }
            Command::Complete { task, reason } => {
                self.complete(*task, reason, now)?;
                None
            }
            Command::Dispose { task, outcome, reason } => {
                self.dispose(*task, outcome, reason, now)?;
                None
            }
            Command::Cancel { task, reason } => {
                self.cancel(*task, reason, now)?;
                None
            }
            Command::Transfer(new) => created(self.transfer(new.clone(), now)?),
            Command::CreateAssigned(new) => created(self.create_assigned(new.clone(), now)?),
        })
    }
}
