//! The running server's cumulative statistics: [`StatisticsCounters`] (pure, in `routing`)
//! behind a lock, rebuilt at start from the stored events and then fed every event the engine
//! produces, so that no `CumulativeStatistics` or `Statistics` request reads the event history.
//!
//! Feeding: the store's publisher (set by [`LiveEngine`](crate::live::LiveEngine)) hands
//! [`Statistics::observe`] each command's events once its group is on disk, in log order, once. Events already counted are
//! skipped by sequence number: those read from the store at start include the events of the
//! commands replayed then, whose events `open` discards.
//!
//! History: the counters cover what the store keeps (`store.event_max_age`,
//! `store.event_max_count`), to the minute: a minute is dropped once it is older than the age
//! limit, or once the events after it reach the count limit, as the store drops its records.
//! What is known of each live task is kept whatever its age.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use crate::config::StoreSettings;
use crate::routing::{
    CumulativeStatistics, Engine, Event, EventFacts, Millis, Scope, Sid, SidMap, StatisticsCounters,
    TaskSeed, Totals, WaitingHistory, Window, WorkerCumulative, WorkerHistory,
};
use crate::store::{EventRecord, Store, StoreError};

const MINUTE: Millis = 60_000;

pub struct Statistics {
    /// Held for the few microseconds a command's events take to count, or a question takes to
    /// answer; taken by [`Statistics::observe`] on the thread that publishes durable events,
    /// which holds no other lock of the engine's then.
    state: Mutex<State>,
}

struct State {
    counters: StatisticsCounters,
    /// Each worker's activity stays and reservation outcomes, for the worker statistics.
    workers: WorkerHistory,
    /// Each task's wait, for the dashboard's charts of the queues over time.
    waiting: WaitingHistory,
    /// The facts of the events being counted (kept to spare an allocation per command).
    facts: Vec<EventFacts>,
    /// The sequence number of the last event counted.
    last_counted: u64,
    /// How many events (counted or not) each minute had, oldest first: what the store's
    /// pruning by count follows. A late event counts in the newest minute.
    history: VecDeque<(i64, u64)>,
    history_events: u64,
    /// The newest event time seen: what the store's pruning by age follows.
    newest: Millis,
    max_age: Millis,
    max_count: u64,
}

impl Statistics {
    /// The statistics of the stored events, read once, oldest first, one stored group at a
    /// time; `engine` (recovered, the log replayed) tells what it knows of the live tasks
    /// created before the oldest event kept.
    pub fn rebuild(
        store: &Store,
        engine: &Engine,
        settings: &StoreSettings,
    ) -> Result<Statistics, StoreError> {
        let mut state = State {
            counters: StatisticsCounters::new(),
            workers: WorkerHistory::new(),
            waiting: WaitingHistory::new(),
            facts: Vec::new(),
            last_counted: 0,
            history: VecDeque::new(),
            history_events: 0,
            newest: Millis::MIN,
            max_age: i64::try_from(settings.event_max_age).unwrap_or(i64::MAX).saturating_mul(1000),
            max_count: settings.event_max_count as u64,
        };
        for task in engine.tasks().filter(|task| !task.status.is_final()) {
            let seed = TaskSeed {
                created_at: task.created_at,
                workflow: engine.task_workflow(task).sid,
                channel: engine.task_channel(task).sid,
                queue: engine
                    .task_queue(task)
                    .zip(task.queue_entered_at)
                    .map(|(queue, since)| (queue.sid, since)),
            };
            state.counters.seed(task.sid, seed);
            if task.status.is_waiting() {
                state.waiting.seed(task.sid, engine.task_queue(task).map(|queue| queue.sid), task.created_at);
            }
        }
        // A command's events share their time: fed together, as they come live.
        let mut command: Vec<EventFacts> = Vec::new();
        for record in store.events_oldest_first()? {
            let record = record?;
            let EventRecord::V1 {
                sequence, timestamp, ref event_type, task, channel, worker, activity, ..
            } = record;
            state.workers.observe_facts(timestamp, event_type, worker, activity, task, channel);
            if command.first().is_some_and(|facts| facts.timestamp != timestamp) {
                state.counters.observe(&command);
                state.waiting.observe(&command);
                command.clear();
            }
            command.extend(record.facts());
            state.note(sequence, timestamp);
        }
        state.counters.observe(&command);
        state.waiting.observe(&command);
        // Workers whose current activity began before the history kept.
        for worker in engine.workers() {
            let activity = engine.worker_activity(worker).sid;
            state.workers.seed(worker.sid, activity, worker.activity_changed_at());
        }
        state.prune();
        state.counters.retain_tasks(|task| engine.task(task).is_some());
        let (minutes, tasks) = state.counters.size();
        tracing::info!(
            events = state.history_events,
            minutes,
            tasks,
            "statistics rebuilt from the stored events"
        );
        Ok(Statistics { state: Mutex::new(state) })
    }

    /// Takes `rebuilt`'s counts in place of these (a standby starting over from a snapshot).
    pub fn replace(&self, rebuilt: Statistics) {
        *self.lock() = rebuilt.state.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    }

    /// Counts `events`, the next ones in log order (those already counted are skipped).
    pub fn observe(&self, events: &[Event]) {
        let mut state = self.lock();
        let state = &mut *state;
        let last_counted = state.last_counted;
        state.facts.clear();
        for event in events.iter().filter(|event| event.sequence > last_counted) {
            state.facts.extend(EventFacts::from_event(event));
            state.workers.observe(event);
            state.note(event.sequence, event.timestamp);
        }
        state.counters.observe(&state.facts);
        state.waiting.observe(&state.facts);
        state.prune();
    }

    /// Everything counted since the statistics began, per queue and channel (monitoring).
    pub fn totals(&self) -> Totals {
        self.lock().counters.totals().clone()
    }

    /// The statistics of `scope` over the minutes `window` touches, for the tasks of `channel`
    /// (all when `None`), split at each of `split_thresholds` seconds.
    pub fn cumulative(
        &self,
        window: Window,
        scope: Scope,
        channel: Option<Sid>,
        split_thresholds: &[u32],
    ) -> CumulativeStatistics {
        self.lock().counters.statistics(window, scope, channel, split_thresholds)
    }

    /// The worker statistics over `window` of the workers `include` keeps, their reservations
    /// on `channel` only when one is given.
    pub fn workers(
        &self,
        window: Window,
        channel: Option<Sid>,
        include: impl Fn(Sid) -> bool,
    ) -> WorkerCumulative {
        self.lock().workers.cumulative(window, channel, include)
    }

    /// The dashboard's charts: at each of `times` (oldest first, `step` apart), what each of
    /// `queues` (with its service-level threshold in seconds) had waiting, and over the `step`
    /// before it, its service level and its abandoned tasks; and the workers in each activity.
    ///
    /// Each point takes the lock on its own: the store's publisher, which counts each group's
    /// events before it acknowledges them, waits for one point at most.
    pub fn history(&self, points: &[HistoryPoint], queues: &[(Sid, u32)]) -> History {
        let mut history = History {
            queues: queues.iter().map(|&(queue, _)| (queue, QueueHistory::default())).collect(),
            activities: SidMap::default(),
        };
        for (index, point) in points.iter().enumerate() {
            let state = self.lock();
            let at = point.at;
            let waiting = state.waiting.at(at);
            let window = point.window;
            for (&(queue, threshold), (_, series)) in queues.iter().zip(history.queues.iter_mut()) {
                let now = waiting.get(&queue).copied().unwrap_or_default();
                series.waiting.push(now.tasks);
                series.longest_wait.push(now.longest / 1000);
                let counted = state.counters.statistics(window, Scope::Queue(queue), None, &[threshold]);
                let within =
                    counted.split_by_wait_time.first().map_or(0, |split| split.below.reservations_accepted);
                let accepted = counted.reservations_accepted;
                series.service_level.push((accepted > 0).then(|| within as f64 / accepted as f64));
                series.abandoned.push(counted.tasks_canceled);
            }
            for (activity, workers) in state.workers.activities_at(at) {
                history.activities.entry(activity).or_insert_with(|| vec![0; points.len()])[index] = workers;
            }
        }
        history
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Counting is plain arithmetic on memory: a panic midway leaves counts, not broken state.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One point of [`Statistics::history`]: the instant the waiting tasks and the workers are
/// counted at, and the window (whole minutes, the windows of the points tiling them) whose
/// accepted and abandoned tasks it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPoint {
    pub at: Millis,
    pub window: Window,
}

impl HistoryPoint {
    /// `count` points `step_minutes` apart, the last one's window holding the minute of `now`
    /// (and its instant `now`).
    pub fn before(now: Millis, count: i64, step_minutes: i64) -> Vec<HistoryPoint> {
        let step = step_minutes * MINUTE;
        let end = (now.div_euclid(MINUTE) + 1) * MINUTE;
        (0..count)
            .map(|index| {
                let window_end = end - (count - 1 - index) * step;
                HistoryPoint {
                    at: (window_end - 1).min(now),
                    window: Window { start: window_end - step, end: window_end - 1 },
                }
            })
            .collect()
    }
}

/// What [`Statistics::history`] answers: one value per time asked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// In the order the queues were asked.
    pub queues: Vec<(Sid, QueueHistory)>,
    /// Workers in each activity (an activity nobody was in at any time asked is missing).
    pub activities: SidMap<Vec<usize>>,
}

/// One queue over time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueHistory {
    pub waiting: Vec<usize>,
    /// Seconds.
    pub longest_wait: Vec<i64>,
    /// Accepted within the threshold ÷ accepted, over the step before; `None`: none accepted.
    pub service_level: Vec<Option<f64>>,
    /// Tasks canceled over the step before.
    pub abandoned: Vec<u64>,
}

impl State {
    /// Notes that event `sequence`, at `at`, was counted.
    fn note(&mut self, sequence: u64, at: Millis) {
        self.last_counted = sequence;
        self.newest = self.newest.max(at);
        let minute = at.div_euclid(MINUTE);
        match self.history.back_mut() {
            Some((newest, events)) if *newest >= minute => *events += 1,
            _ => self.history.push_back((minute, 1)),
        }
        self.history_events += 1;
    }

    /// Drops the minutes that the store no longer keeps (or will not at its next pruning).
    fn prune(&mut self) {
        let by_age = self.newest.saturating_sub(self.max_age);
        let mut before = None;
        while let Some(&(minute, events)) = self.history.front() {
            let end = (minute + 1) * MINUTE;
            if end > by_age && self.history_events - events < self.max_count {
                break;
            }
            self.history.pop_front();
            self.history_events -= events;
            before = Some(end);
        }
        if let Some(before) = before {
            self.counters.prune(before);
            self.workers.prune(before);
            self.waiting.prune(before);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::live::LiveEngine;
    use crate::routing::{Command, EventType, NewTask};
    use crate::workspace::WorkspaceFile;

    /// On a minute boundary.
    const T0: Millis = 1_767_603_600_000;

    #[test]
    fn history_points_tile_whole_minutes_and_the_last_holds_now() {
        let check = |now: Millis, count: i64, step: i64, expected: &[(Millis, Millis, Millis)]| {
            let points: Vec<(Millis, Millis, Millis)> = HistoryPoint::before(T0 + now, count, step)
                .iter()
                .map(|point| (point.at - T0, point.window.start - T0, point.window.end - T0))
                .collect();
            assert_eq!(points, expected, "now {now}, {count} × {step} min");
        };
        check(30_000, 3, 1, &[(-60_001, -120_000, -60_001), (-1, -60_000, -1), (30_000, 0, 59_999)]);
        check(0, 2, 5, &[(-240_001, -540_000, -240_001), (0, -240_000, 59_999)]);
        check(59_999, 1, 20, &[(59_999, -1_140_000, 59_999)]);
    }

    fn open(settings: &StoreSettings, at: Millis) -> LiveEngine {
        LiveEngine::open(settings, &WorkspaceFile::default(), "", at).unwrap()
    }

    async fn create_task(live: &LiveEngine, at: Millis) {
        let workflow = live.read(|engine| {
            engine.workflows().iter().find(|w| w.friendly_name == "Sales and Support Workflow").unwrap().sid
        });
        let new = NewTask {
            attributes: json!({"skillsNeeded": ["Sales"]}),
            priority: None,
            timeout: None,
            workflow: Some(workflow),
            channel: Some("voice".into()),
        };
        live.execute_at(Command::CreateTask(new), at).await.unwrap();
    }

    /// Tasks created in each of the first `minutes` minutes from `T0`.
    fn created_per_minute(live: &LiveEngine, minutes: i64) -> Vec<u64> {
        let minute = |n: i64| Window { start: T0 + n * MINUTE, end: T0 + (n + 1) * MINUTE - 1 };
        let created = |n| live.statistics().cumulative(minute(n), Scope::Workspace, None, &[]).tasks_entered;
        (0..minutes).map(created).collect()
    }

    #[tokio::test]
    async fn a_restart_counts_each_stored_event_once_then_goes_on_live() {
        let dir = tempfile::tempdir().unwrap();
        let settings = StoreSettings { data_dir: dir.path().to_owned(), ..StoreSettings::default() };
        {
            let live = open(&settings, T0);
            create_task(&live, T0 + 1_000).await;
            create_task(&live, T0 + 61_000).await;
            assert_eq!(created_per_minute(&live, 3), [1, 1, 0]);
        }

        // Every command is replayed at the restart (no snapshot since): their events are
        // counted from the store, once.
        let live = open(&settings, T0 + 125_000);
        assert_eq!(created_per_minute(&live, 3), [1, 1, 0]);
        let mut published = live.subscribe();
        create_task(&live, T0 + 126_000).await;
        assert_eq!(created_per_minute(&live, 3), [1, 1, 1]);
        // Events handed over again (their sequence numbers counted already) are not counted again.
        let events: Vec<Event> = std::iter::from_fn(|| published.try_recv().ok()).collect();
        live.statistics().observe(&events);
        assert_eq!(created_per_minute(&live, 3), [1, 1, 1]);
        let mut created =
            events.into_iter().find(|event| event.event_type == EventType::TaskCreated).unwrap();
        created.sequence = live.read(|engine| engine.events_emitted()) + 1;
        live.statistics().observe(&[created]);
        assert_eq!(created_per_minute(&live, 3), [1, 1, 2]);
    }

    #[tokio::test]
    async fn worker_statistics_are_rebuilt_from_the_stored_events_at_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let settings = StoreSettings { data_dir: dir.path().to_owned(), ..StoreSettings::default() };
        let window = Window { start: T0, end: T0 + 600_000 };
        let stays = |live: &LiveEngine| {
            let (bob, available) = live.read(|engine| {
                (engine.worker_by_name("bob").unwrap().sid, engine.activity_by_name("Available").unwrap().sid)
            });
            let statistics = live.statistics().workers(window, None, |worker| worker == bob);
            statistics.durations.get(&available).map(|stays| (stays.stays, stays.total))
        };
        let before = {
            let live = open(&settings, T0);
            let (bob, available, offline) = live.read(|engine| {
                (
                    engine.worker_by_name("bob").unwrap().sid,
                    engine.activity_by_name("Available").unwrap().sid,
                    engine.activity_by_name("Offline").unwrap().sid,
                )
            });
            let set = |activity| Command::SetWorkerActivity { worker: bob, activity, reject_pending: false };
            live.execute_at(set(available), T0 + 60_000).await.unwrap();
            live.execute_at(set(offline), T0 + 180_000).await.unwrap();
            live.execute_at(set(available), T0 + 300_000).await.unwrap();
            stays(&live)
        };

        let after = stays(&open(&settings, T0 + 400_000));

        assert_eq!(
            before,
            Some((2, 120_000 + 300_000)),
            "two stays: 120 s, and 300 s up to the window's end"
        );
        assert_eq!(after, before);
    }

    #[tokio::test]
    async fn minutes_older_than_the_history_kept_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        // A task's creation is more than 3 events (workflow.entered, task-queue.entered...).
        let settings =
            StoreSettings { data_dir: dir.path().to_owned(), event_max_count: 3, ..StoreSettings::default() };
        let live = open(&settings, T0);
        create_task(&live, T0 + 1_000).await;
        create_task(&live, T0 + 61_000).await;
        assert_eq!(created_per_minute(&live, 2), [0, 1], "by count");
        drop(live);
        let settings = StoreSettings { event_max_count: 1_000, event_max_age: 60, ..settings };
        let live = open(&settings, T0 + 200_000);
        // The store prunes continuously, whole groups at a time, and one last time as it closes:
        // each creation's group alone was past the cap, so nothing was left to rebuild from.
        assert_eq!(created_per_minute(&live, 2), [0, 0], "what the store kept");
        create_task(&live, T0 + 200_000).await;
        assert_eq!(created_per_minute(&live, 4), [0, 0, 0, 1], "by age: older than 140 s");
    }
}
