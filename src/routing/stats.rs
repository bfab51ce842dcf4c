//! Real-time statistics with the fields of TaskRouter's RealTimeStatistics (reference §6.3),
//! for a task queue, a workflow and the workspace, computed on demand at `now`.
//!
//! "Waiting" means pending or reserved, as in TaskRouter's `longest_task_waiting_*`.

use std::collections::BTreeMap;

use super::engine::Engine;
use super::model::{Task, TaskStatus};
use super::sid::Sid;
use super::{Millis, RoutingError};

/// Counts shared by the queue, workflow and workspace statistics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskStatistics {
    /// Tasks pending, reserved, assigned or wrapping.
    pub total_tasks: usize,
    /// Status name (`pending`, `reserved`, `assigned`, `wrapping`) to count; every status listed.
    pub tasks_by_status: BTreeMap<&'static str, usize>,
    /// Priority to count.
    pub tasks_by_priority: BTreeMap<i64, usize>,
    /// Seconds since creation of the oldest waiting task, and its SID.
    pub longest_task_waiting_age: i64,
    pub longest_task_waiting_sid: Option<Sid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStatistics {
    pub tasks: TaskStatistics,
    /// Seconds since the oldest waiting task entered this queue, and its SID.
    pub longest_relative_task_age_in_queue: i64,
    pub longest_relative_task_sid_in_queue: Option<Sid>,
    /// Workers matching the queue's target expression, whatever their activity.
    pub total_eligible_workers: usize,
    /// Of those, workers in an available activity (they may be busy on a channel).
    pub total_available_workers: usize,
    pub activity_statistics: Vec<ActivityCount>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceStatistics {
    pub tasks: TaskStatistics,
    pub total_workers: usize,
    pub activity_statistics: Vec<ActivityCount>,
}

/// Workers in one activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityCount {
    pub sid: Sid,
    pub friendly_name: String,
    pub workers: usize,
}

/// A queue as monitoring sees it: its live tasks by channel and status, and how long the
/// oldest waiting one has waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCensus {
    pub sid: Sid,
    pub friendly_name: String,
    /// (channel's unique name, status) → how many; every live status of every channel seen.
    pub tasks: BTreeMap<(String, &'static str), usize>,
    /// Seconds since the oldest waiting task was created (as `longest_task_waiting_age`).
    pub longest_waiting: i64,
    pub available_workers: usize,
}

const LIVE_STATUSES: [TaskStatus; 4] =
    [TaskStatus::Pending, TaskStatus::Reserved, TaskStatus::Assigned, TaskStatus::Wrapping];

impl TaskStatistics {
    fn collect<'a>(tasks: impl Iterator<Item = &'a Task>, now: Millis) -> TaskStatistics {
        let mut statistics = TaskStatistics {
            tasks_by_status: LIVE_STATUSES.iter().map(|status| (status.as_str(), 0)).collect(),
            ..TaskStatistics::default()
        };
        let mut oldest: Option<(Millis, Sid)> = None;
        for task in tasks.filter(|task| LIVE_STATUSES.contains(&task.status)) {
            statistics.total_tasks += 1;
            *statistics.tasks_by_status.entry(task.status.as_str()).or_default() += 1;
            *statistics.tasks_by_priority.entry(task.priority).or_default() += 1;
            if task.status.is_waiting()
                && oldest.is_none_or(|candidate| (task.created_at, task.sid) < candidate)
            {
                oldest = Some((task.created_at, task.sid));
            }
        }
        if let Some((created_at, sid)) = oldest {
            statistics.longest_task_waiting_age = (now - created_at) / 1000;
            statistics.longest_task_waiting_sid = Some(sid);
        }
        statistics
    }
}

impl Engine {
    /// A task queue's real-time statistics.
    pub fn queue_statistics(&self, queue: Sid, now: Millis) -> Result<QueueStatistics, RoutingError> {
        let queue_ref = self.queue(queue).ok_or(RoutingError::not_found(queue))?;
        // The queue's own live tasks: a wallboard asks every queue every second, and the engine
        // keeps every ended task for minutes.
        let in_queue = || queue_ref.live.iter().filter_map(|sid| self.task(*sid));
        let tasks = TaskStatistics::collect(in_queue(), now);
        let oldest_in_queue = in_queue()
            .filter(|task| task.status.is_waiting())
            .filter_map(|task| Some((task.queue_entered_at?, task.sid)))
            .min();
        let members = self.queue_members(queue_ref);
        let available = members
            .iter()
            .filter(|&&sid| self.worker(sid).is_some_and(|w| self.worker_activity(w).available));
        Ok(QueueStatistics {
            tasks,
            longest_relative_task_age_in_queue: oldest_in_queue
                .map_or(0, |(entered, _)| (now - entered) / 1000),
            longest_relative_task_sid_in_queue: oldest_in_queue.map(|(_, sid)| sid),
            total_eligible_workers: members.len(),
            total_available_workers: available.count(),
            activity_statistics: self.activity_counts(members.iter().copied()),
        })
    }

    /// A workflow's real-time statistics.
    pub fn workflow_statistics(&self, workflow: Sid, now: Millis) -> Result<TaskStatistics, RoutingError> {
        let index =
            self.workflows.iter().position(|w| w.sid == workflow).ok_or(RoutingError::not_found(workflow))?;
        Ok(TaskStatistics::collect(self.tasks().filter(|task| task.workflow == index), now))
    }

    /// The workspace's real-time statistics.
    pub fn workspace_statistics(&self, now: Millis) -> WorkspaceStatistics {
        WorkspaceStatistics {
            tasks: TaskStatistics::collect(self.tasks(), now),
            total_workers: self.workers.len(),
            activity_statistics: self.activity_counts(self.workers.iter().map(|worker| worker.sid)),
        }
    }

    /// Every queue's [`QueueCensus`] at `now`: the queues' own live tasks, so that it costs
    /// what they hold, not the tasks kept after they ended.
    pub fn queue_census(&self, now: Millis) -> Vec<QueueCensus> {
        self.queues
            .iter()
            .map(|queue| {
                let mut tasks = BTreeMap::new();
                for channel in &self.channels {
                    for status in LIVE_STATUSES {
                        tasks.insert((channel.unique_name.clone(), status.as_str()), 0);
                    }
                }
                let mut oldest: Option<Millis> = None;
                for task in queue.live.iter().filter_map(|sid| self.task(*sid)) {
                    let channel = self.task_channel(task).unique_name.clone();
                    *tasks.entry((channel, task.status.as_str())).or_default() += 1;
                    if task.status.is_waiting() {
                        oldest = Some(oldest.map_or(task.created_at, |seen| seen.min(task.created_at)));
                    }
                }
                let available = self
                    .queue_members(queue)
                    .iter()
                    .filter(|&&sid| self.worker(sid).is_some_and(|w| self.worker_activity(w).available))
                    .count();
                QueueCensus {
                    sid: queue.sid,
                    friendly_name: queue.friendly_name.clone(),
                    tasks,
                    longest_waiting: oldest.map_or(0, |created| (now - created) / 1000),
                    available_workers: available,
                }
            })
            .collect()
    }

    /// The workers in each activity.
    pub fn activity_census(&self) -> Vec<ActivityCount> {
        self.activity_counts(self.workers.iter().map(|worker| worker.sid))
    }

    fn activity_counts(&self, workers: impl Iterator<Item = Sid>) -> Vec<ActivityCount> {
        let mut counts: Vec<ActivityCount> = self
            .activities
            .iter()
            .map(|activity| ActivityCount {
                sid: activity.sid,
                friendly_name: activity.friendly_name.clone(),
                workers: 0,
            })
            .collect();
        for worker in workers.filter_map(|sid| self.worker(sid)) {
            counts[worker.activity].workers += 1;
        }
        counts
    }
}
