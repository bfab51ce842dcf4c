//! Cumulative statistics kept as events happen, so that a question never reads the event
//! history again: per minute, per scope (the workspace, each queue, each workflow) and per task
//! channel, the counts and waits of [`CumulativeStatistics`], and for `SplitByWaitTime` the
//! waits until accepted and until canceled as exact histograms (wait in seconds → how many).
//! A question sums the minutes of its window.
//!
//! [`StatisticsCounters::observe`] takes every event once, in log order. Each is understood by
//! `cumulative.rs`'s own `observe` and counted by its `count`, so both computations agree by
//! construction; what is known of each task (creation time, workflow, queue and since when,
//! channel) is kept while the task lives, then until the engine forgets it (`PURGE_AFTER`
//! after it ends, or at `task.deleted`): no later event can name it.
//!
//! Granularity: a minute. A question counts every minute its window touches, from the minute
//! of its start to the minute of its end, both whole: an event counts when its minute is one
//! of the window's minutes. For a window of whole minutes the answer is exactly
//! `cumulative_statistics`'s over the same events (a property test checks it over the engine's
//! random command sequences, for every scope, channel and split).
//!
//! Memory: a minute costs, for each scope and channel that had a counted event in it, one
//! `Bucket` of 336 bytes (264 of counts, a map of dispositions among them) in its own allocation, ~60 bytes in the minute's map,
//! and for each of its two histograms that holds waits, 32 bytes and up (8 per distinct wait in
//! seconds): 400 to 500 bytes. With 100 queues, 10 workflows and the workspace busy on one
//! channel, ~50 KB a minute; a minute without events costs nothing. [`StatisticsCounters::prune`]
//! drops the minutes older than the history kept. A task costs ~140 bytes while it is known
//! (live, or ended less than `PURGE_AFTER` ago).
//!
//! No I/O and no clock: time comes with the events.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

use super::Millis;
use super::cumulative::{
    Counted, CountedEvent, CumulativeStatistics, EventFacts, ReservationEvent, Scope, SplitCounts, TaskTrack,
    Window, observe,
};
use super::model::PURGE_AFTER;
use super::sid::{Sid, SidHasher, SidMap};

const MINUTE: Millis = 60_000;

/// Cumulative statistics per minute, scope and channel, fed event by event.
#[derive(Debug, Default)]
pub struct StatisticsCounters {
    /// The minutes that had a counted event, oldest first. Events come in log order, whose
    /// times almost never go back, so a minute is nearly always the last one or a new one.
    minutes: VecDeque<Minute>,
    /// What is known of each task that an event may still name.
    tasks: SidMap<KnownTask>,
    /// Tasks that ended, in the order they did, with the time after which the engine has
    /// forgotten them (and no event can name them).
    ended: VecDeque<(Millis, Sid)>,
    /// What the engine said of its tasks when the history was read at start, for those whose
    /// creation the history does not hold; taken when the task's first event comes.
    seeds: SidMap<TaskSeed>,
    totals: Totals,
}

/// What an engine's task says of itself, for a task created before the oldest event observed
/// (the engine outlives a pruned history).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSeed {
    pub created_at: Millis,
    pub workflow: Sid,
    pub channel: Sid,
    /// The queue it is in, and since when.
    pub queue: Option<(Sid, Millis)>,
}

/// What happened since the counters began (the history read at start, then every event), per
/// queue and channel, for monitoring (`/metrics`): unlike the minutes, never pruned, so every
/// count only grows while the process lives. Counted from the same [`Counted`] as the minutes,
/// so a queue's totals are its cumulative statistics over the whole history read.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// One per queue (`None`: tasks that ended before entering one) and channel, in the order
    /// they were first counted.
    pub groups: Vec<TotalsGroup>,
}

/// [`Totals`] of one queue and channel: the same [`Bucket`] as a minute's, never pruned, and the
/// waits' sums to the millisecond.
#[derive(Debug, Clone, Default)]
pub struct TotalsGroup {
    pub queue: Option<Sid>,
    bucket: Bucket,
    /// The sums of the waits until accepted and until canceled, in milliseconds.
    pub accepted_wait_ms: i64,
    pub canceled_wait_ms: i64,
}

impl TotalsGroup {
    /// `None`: tasks whose channel is not known (created before the history read).
    pub fn channel(&self) -> Option<Sid> {
        self.bucket.channel
    }

    /// The group's counts, as the queue's cumulative statistics count them.
    pub fn counts(&self) -> &CumulativeStatistics {
        &self.bucket.counts
    }

    /// Accepted reservations whose task had waited under `seconds` (as `SplitByWaitTime`).
    pub fn accepted_under(&self, seconds: u32) -> u64 {
        self.bucket.accepted.under(seconds)
    }

    /// Canceled tasks that had waited under `seconds`.
    pub fn canceled_under(&self, seconds: u32) -> u64 {
        self.bucket.canceled.under(seconds)
    }

    /// Accepted reservations whose wait is known (not those of tasks created before the
    /// history read): the count of the waits' histogram.
    pub fn accepted_waits(&self) -> u64 {
        self.accepted_under(u32::MAX)
    }

    /// Canceled tasks whose wait is known.
    pub fn canceled_waits(&self) -> u64 {
        self.canceled_under(u32::MAX)
    }

    fn count(&mut self, counted: &Counted) {
        // A creation counts where its task enters a queue (`task-queue.entered`), not in the
        // group of tasks outside any queue, which is counted as the workspace would be.
        if counted.event == CountedEvent::TaskCreated {
            return;
        }
        self.bucket.count(counted, self.queue.map_or(Scope::Workspace, Scope::Queue));
        let sum = match counted.event {
            CountedEvent::Reservation(ReservationEvent::Accepted) => &mut self.accepted_wait_ms,
            CountedEvent::TaskCanceled => &mut self.canceled_wait_ms,
            _ => return,
        };
        if let Some(wait) = counted.since_created {
            *sum = sum.saturating_add(wait.max(0));
        }
    }
}

impl Totals {
    fn count(&mut self, counted: &Counted, channel: Option<Sid>) {
        let queue = counted.queue;
        let found = self.groups.iter().position(|group| group.queue == queue && group.channel() == channel);
        let group = match found {
            Some(found) => &mut self.groups[found],
            None => {
                let bucket = Bucket { channel, ..Bucket::default() };
                self.groups.push(TotalsGroup { queue, bucket, ..TotalsGroup::default() });
                self.groups.last_mut().expect("just pushed")
            }
        };
        group.count(counted);
    }
}

#[derive(Debug, Default)]
struct Minute {
    /// Minutes since the Unix epoch.
    minute: i64,
    scopes: HashMap<Scope, Vec<Bucket>, BuildHasherDefault<SidHasher>>,
}

/// One minute of one scope, for the tasks of one channel.
#[derive(Debug, Default, Clone)]
struct Bucket {
    /// `None`: tasks whose channel is not known (created before the history).
    channel: Option<Sid>,
    counts: CumulativeStatistics,
    /// Waits from creation until each accepted reservation, in seconds.
    accepted: WaitHistogram,
    /// Waits from creation until each cancellation, in seconds.
    canceled: WaitHistogram,
}

/// Whole seconds (rounded down, as `cumulative.rs` compares them with thresholds) → how many,
/// sorted by seconds; sparse, as a minute of a queue holds a few waits.
#[derive(Debug, Default, Clone)]
struct WaitHistogram(Vec<(i32, u32)>);

#[derive(Debug, Default)]
struct KnownTask {
    track: TaskTrack,
    channel: Option<Sid>,
}

impl StatisticsCounters {
    pub fn new() -> StatisticsCounters {
        StatisticsCounters::default()
    }

    /// Counts `events`, the next ones in log order. A task's creation events must come in one
    /// call (as one command's events do), so that the channel its `task.created` names is
    /// known for the `task-queue.entered` before it.
    pub fn observe(&mut self, events: &[EventFacts]) {
        for facts in events.iter().filter(|facts| facts.event == CountedEvent::TaskCreated) {
            self.seeds.remove(&facts.task);
            if let Some(channel) = facts.channel {
                self.tasks.entry(facts.task).or_default().channel = Some(channel);
            }
        }
        for facts in events {
            self.forget_ended(facts.timestamp);
            let known = match self.tasks.entry(facts.task) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(unknown) => {
                    // First seen after its creation: what the engine said of it, if anything.
                    let creation = facts.event == CountedEvent::WorkflowEntered;
                    let seed = self.seeds.remove(&facts.task).filter(|_| !creation);
                    unknown.insert(seed.map(KnownTask::from).unwrap_or_default())
                }
            };
            let counted = observe(&mut known.track, facts);
            let channel = known.channel;
            match facts.event {
                CountedEvent::TaskCanceled | CountedEvent::TaskCompleted => {
                    self.ended.push_back((facts.timestamp.saturating_add(PURGE_AFTER), facts.task));
                }
                CountedEvent::TaskDeleted => {
                    self.tasks.remove(&facts.task);
                }
                _ => {}
            }
            if let Some(counted) = counted {
                self.count(facts.timestamp, &counted, channel);
            }
        }
    }

    /// Tells what the engine knows of a live `task`, before the history is observed: when the
    /// history does not begin with the task's creation (it was created before the oldest event
    /// kept), its waits and channel are then known as if its creation had been observed.
    pub fn seed(&mut self, task: Sid, seed: TaskSeed) {
        self.seeds.insert(task, seed);
    }

    /// Forgets the tasks that `keep` turns down (those the engine no longer holds, once the
    /// history was read at start: no event can name them any more).
    pub fn retain_tasks(&mut self, mut keep: impl FnMut(Sid) -> bool) {
        self.tasks.retain(|&task, _| keep(task));
        self.seeds.retain(|&task, _| keep(task));
        self.ended.retain(|&(_, task)| self.tasks.contains_key(&task));
    }

    /// Drops the minutes that end at or before `before`.
    pub fn prune(&mut self, before: Millis) {
        while self.minutes.front().is_some_and(|minute| (minute.minute + 1) * MINUTE <= before) {
            self.minutes.pop_front();
        }
    }

    /// The statistics of `scope` over every minute `window` touches (see the module's doc),
    /// for the tasks of `channel` (every task when `None`), with a split at each of
    /// `split_thresholds` seconds. `window` is given back as it was asked.
    pub fn statistics(
        &self,
        window: Window,
        scope: Scope,
        channel: Option<Sid>,
        split_thresholds: &[u32],
    ) -> CumulativeStatistics {
        let mut statistics = CumulativeStatistics::empty(window, split_thresholds);
        let (first, last) = (window.start.div_euclid(MINUTE), window.end.div_euclid(MINUTE));
        let from = self.minutes.partition_point(|minute| minute.minute < first);
        let minutes = self.minutes.range(from..).take_while(|minute| minute.minute <= last);
        let buckets = minutes.filter_map(|minute| minute.scopes.get(&scope)).flatten();
        for bucket in buckets.filter(|bucket| channel.is_none_or(|channel| bucket.channel == Some(channel))) {
            statistics.merge(&bucket.counts);
            for split in &mut statistics.split_by_wait_time {
                bucket.accepted.split(split.threshold, &mut split.below, &mut split.above, |counts| {
                    &mut counts.reservations_accepted
                });
                bucket.canceled.split(split.threshold, &mut split.below, &mut split.above, |counts| {
                    &mut counts.tasks_canceled
                });
            }
        }
        statistics
    }

    /// How many minutes are kept, and how many tasks known: for tests and diagnostics.
    pub fn size(&self) -> (usize, usize) {
        (self.minutes.len(), self.tasks.len())
    }

    /// Forgets the tasks that the engine has purged by `now` (strictly after their deadline,
    /// as an event at the deadline itself may still come before the purge).
    fn forget_ended(&mut self, now: Millis) {
        while let Some(&(forgotten_after, task)) = self.ended.front() {
            if forgotten_after >= now {
                break;
            }
            self.ended.pop_front();
            self.tasks.remove(&task);
        }
    }

    /// Everything counted since the counters began, per queue and channel.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Counts one event at `at` for the workspace, its queue and its workflow.
    fn count(&mut self, at: Millis, counted: &Counted, channel: Option<Sid>) {
        self.totals.count(counted, channel);
        let minute = self.minute_mut(at.div_euclid(MINUTE));
        let scopes =
            [Some(Scope::Workspace), counted.queue.map(Scope::Queue), counted.workflow.map(Scope::Workflow)];
        for scope in scopes.into_iter().flatten() {
            let buckets = minute.scopes.entry(scope).or_default();
            let bucket = match buckets.iter().position(|bucket| bucket.channel == channel) {
                Some(found) => &mut buckets[found],
                None => {
                    // One channel is the common case: no room for four.
                    buckets.reserve_exact(1);
                    buckets.push(Bucket { channel, ..Bucket::default() });
                    buckets.last_mut().expect("just pushed")
                }
            };
            bucket.count(counted, scope);
        }
    }

    /// The counts of `minute`, made when missing.
    fn minute_mut(&mut self, minute: i64) -> &mut Minute {
        // From the back: the minute is nearly always the last one.
        let after = self.minutes.iter().rposition(|kept| kept.minute <= minute).map_or(0, |found| found + 1);
        if after == 0 || self.minutes[after - 1].minute != minute {
            self.minutes.insert(after, Minute { minute, ..Minute::default() });
            return &mut self.minutes[after];
        }
        &mut self.minutes[after - 1]
    }
}

impl From<TaskSeed> for KnownTask {
    fn from(seed: TaskSeed) -> KnownTask {
        let track = TaskTrack {
            created_at: Some(seed.created_at),
            workflow: Some(seed.workflow),
            queue: seed.queue.map(|(queue, _)| queue),
            queue_entered_at: seed.queue.map(|(_, since)| since),
        };
        KnownTask { track, channel: Some(seed.channel) }
    }
}

impl Bucket {
    /// Counts one event for `scope`, with its wait in the histograms.
    fn count(&mut self, counted: &Counted, scope: Scope) {
        self.counts.count(counted, scope);
        match (counted.event, counted.since_created) {
            (CountedEvent::Reservation(ReservationEvent::Accepted), Some(wait)) => self.accepted.add(wait),
            (CountedEvent::TaskCanceled, Some(wait)) => self.canceled.add(wait),
            _ => {}
        }
    }
}

impl WaitHistogram {
    fn add(&mut self, wait: Millis) {
        let seconds =
            i32::try_from(wait.div_euclid(1000)).unwrap_or(if wait < 0 { i32::MIN } else { i32::MAX });
        match self.0.binary_search_by_key(&seconds, |&(kept, _)| kept) {
            Ok(found) => self.0[found].1 += 1,
            Err(at) => self.0.insert(at, (seconds, 1)),
        }
    }

    /// How many waits are under `seconds`.
    fn under(&self, seconds: u32) -> u64 {
        let under = self.0.partition_point(|&(kept, _)| i64::from(kept) < i64::from(seconds));
        self.0[..under].iter().map(|&(_, count)| u64::from(count)).sum()
    }

    /// Adds the waits under `threshold` seconds to `below`'s field and the others to `above`'s.
    fn split(
        &self,
        threshold: u32,
        below: &mut SplitCounts,
        above: &mut SplitCounts,
        field: impl Fn(&mut SplitCounts) -> &mut u64,
    ) {
        let under = self.under(threshold);
        let all = self.0.iter().map(|&(_, count)| u64::from(count)).sum::<u64>();
        *field(below) += under;
        *field(above) += all - under;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use expect_test::{Expect, expect};

    use super::*;
    use crate::routing::cumulative::cumulative_statistics;
    use crate::routing::cumulative::tests::{fields, script, sid, summary};
    use crate::routing::engine::invariants::random_events;
    use crate::routing::sid::SidKind;

    /// Feeds `events` to counters one timestamp at a time (as commands come), then compares the
    /// statistics of every scope over `window` (seconds), for `channel` (`C1`...) if named,
    /// with `expected`.
    fn check(
        events: &[EventFacts],
        window: (i64, i64),
        channel: Option<&str>,
        thresholds: &[u32],
        expected: Expect,
    ) {
        let counters = fed(events);
        let window = Window { start: window.0 * 1000, end: window.1 * 1000 };
        let channel = channel.map(sid);
        expected.assert_eq(&summary(events, |scope| counters.statistics(window, scope, channel, thresholds)));
    }

    fn fed(events: &[EventFacts]) -> StatisticsCounters {
        let mut counters = StatisticsCounters::new();
        for command in events.chunk_by(|a, b| a.timestamp == b.timestamp) {
            counters.observe(command);
        }
        counters
    }

    #[test]
    fn a_window_counts_every_minute_it_touches() {
        let events = script(
            "0 create T1 Q1 W1
             59 reservation.accepted T1 Q1 W1
             60 task.completed T1
             150 create T2 Q1 W1
             170 task.canceled T2",
        );
        // 30 s to 61 s touches minutes 0 and 1: all of T1, none of T2.
        check(
            &events,
            (30, 61),
            None,
            &[],
            expect![[r#"
                workspace, W1: tasks entered=1 completed=1; reservations accepted=1; until accepted 59
                Q1: tasks entered=1 completed=1; reservations accepted=1; until accepted 59; in queue 59"#]],
        );
        // 119 s to 120 s touches minutes 1 and 2.
        check(
            &events,
            (119, 120),
            None,
            &[],
            expect!["workspace, Q1, W1: tasks entered=1 canceled=1 completed=1; until canceled 20"],
        );
    }

    #[test]
    fn a_channel_counts_its_own_tasks_from_their_creation_on() {
        let events = script(
            "0 create T1 Q1 W1 C1
             0 create T2 Q1 W1 C2
             5 reservation.accepted T1 Q1 W1
             9 task.canceled T2
             12 reservation.accepted T3 Q1 W1",
        );
        check(
            &events,
            (0, 59),
            Some("C1"),
            &[],
            expect![[r#"
                workspace, W1: tasks entered=1; reservations accepted=1; until accepted 5
                Q1: tasks entered=1; reservations accepted=1; until accepted 5; in queue 5"#]],
        );
        check(
            &events,
            (0, 59),
            Some("C2"),
            &[],
            expect!["workspace, Q1, W1: tasks entered=1 canceled=1; until canceled 9"],
        );
        // T3 was created before the history: counted, but on no channel.
        check(&events, (0, 59), Some("C3"), &[], expect!["workspace, Q1, W1: "]);
        check(
            &events,
            (0, 59),
            None,
            &[],
            expect![[r#"
                workspace, W1: tasks entered=2 canceled=1; reservations accepted=2; until accepted 5; until canceled 9
                Q1: tasks entered=2 canceled=1; reservations accepted=2; until accepted 5; until canceled 9; in queue 5"#]],
        );
    }

    #[test]
    fn split_by_wait_time_sums_the_minutes_histograms() {
        let events = script(
            "0 create T1 Q1 W1
             0 create T2 Q1 W1
             0 create T3 Q1 W1
             4.9 reservation.accepted T1 Q1 W1
             65 reservation.accepted T2 Q1 W1
             130 task.canceled T3",
        );
        check(
            &events,
            (0, 179),
            None,
            &[5, 65, 66],
            expect![[r#"
                workspace, W1: tasks entered=3 canceled=1; reservations accepted=2; until accepted n=2 avg=35 min=4 max=65 total=69; until canceled 130; 5s: below canceled=0 accepted=1, above canceled=1 accepted=1; 65s: below canceled=0 accepted=1, above canceled=1 accepted=1; 66s: below canceled=0 accepted=2, above canceled=1 accepted=0
                Q1: tasks entered=3 canceled=1; reservations accepted=2; until accepted n=2 avg=35 min=4 max=65 total=69; until canceled 130; in queue n=2 avg=35 min=4 max=65 total=69; 5s: below canceled=0 accepted=1, above canceled=1 accepted=1; 65s: below canceled=0 accepted=1, above canceled=1 accepted=1; 66s: below canceled=0 accepted=2, above canceled=1 accepted=0"#]],
        );
    }

    #[test]
    fn a_seeded_task_has_its_waits_and_channel_unless_the_history_holds_its_creation() {
        let events = script(
            "100 reservation.accepted T1 Q1 W1
             100 create T2 Q1 W1 C2
             110 reservation.accepted T2 Q1 W1
             130 task.completed T1",
        );
        let mut counters = StatisticsCounters::new();
        let seed = |channel| TaskSeed {
            created_at: 70_000,
            workflow: sid("W1"),
            channel: sid(channel),
            queue: Some((sid("Q1"), 90_000)),
        };
        counters.seed(sid("T1"), seed("C1"));
        counters.seed(sid("T2"), seed("C1"));
        counters.observe(&events);
        let window = Window { start: 60_000, end: 179_999 };
        let queue =
            |channel| fields(&counters.statistics(window, Scope::Queue(sid("Q1")), Some(sid(channel)), &[]));
        expect!["tasks completed=1; reservations accepted=1; until accepted 30; in queue 10"]
            .assert_eq(&queue("C1"));
        expect!["tasks entered=1; reservations accepted=1; until accepted 10; in queue 10"]
            .assert_eq(&queue("C2"));
        assert!(counters.seeds.is_empty(), "every seed taken or dropped");
    }

    #[test]
    fn tasks_are_forgotten_once_the_engine_forgets_them_and_minutes_when_pruned() {
        let events = script(
            "0 create T1 Q1 W1
             10 task.canceled T1
             20 create T2 Q1 W1
             30 task.canceled T2
             40 task.deleted T2
             50 create T3 Q1 W1",
        );
        let mut counters = fed(&events);
        assert_eq!(counters.size(), (1, 2), "T1 (purged later) and T3");
        counters.observe(&script("311 create T4 Q1 W1"));
        assert_eq!(counters.size(), (2, 2), "T1 purged at 310 s");
        counters.prune(300_000);
        assert_eq!(counters.size(), (1, 2), "the minutes before 300 s are dropped");
        let everything = Window { start: 0, end: i64::MAX };
        expect!["tasks entered=1"].assert_eq(&fields(&counters.statistics(
            everything,
            Scope::Workspace,
            None,
            &[],
        )));
    }

    #[test]
    fn a_minute_whose_events_come_late_is_counted_in_its_place() {
        // Concurrent commands take their time before the lock: the log may go back a little.
        let events = script("61 create T1 Q1 W1; 59 create T2 Q1 W1; 121 create T3 Q1 W1");
        let counters = fed(&events);
        let minute = |start: i64| {
            let window = Window { start: start * 1000, end: start * 1000 + 59_999 };
            fields(&counters.statistics(window, Scope::Workspace, None, &[]))
        };
        assert_eq!([minute(0), minute(60), minute(120)], ["tasks entered=1"; 3]);
    }

    /// The sizes the module's doc counts memory with.
    #[test]
    fn a_bucket_is_336_bytes_and_a_known_task_104() {
        assert_eq!((size_of::<Bucket>(), size_of::<KnownTask>()), (336, 104));
    }

    /// The counters and `cumulative_statistics` agree for windows of whole minutes, for every
    /// scope, channel and split, over the engine's own random histories (16 minutes each, so
    /// that ended tasks are purged and forgotten), read from the start or from a point in the
    /// middle (tasks created before the history).
    #[test]
    fn counters_agree_with_the_event_scan_for_windows_of_whole_minutes() {
        let (mut compared, mut forgotten, mut by_channel, mut split_both_ways) = (0, 0, 0, 0);
        for seed in 1..=12 {
            let events: Vec<EventFacts> =
                random_events(seed, 1200).iter().filter_map(EventFacts::from_event).collect();
            for skipped in [0, events.len() / 3] {
                let events = &events[skipped..];
                let counters = fed(events);
                let tasks: BTreeSet<Sid> = events.iter().map(|facts| facts.task).collect();
                forgotten += tasks.len() - counters.size().1;
                let channels: BTreeMap<Sid, Sid> =
                    events.iter().filter_map(|facts| Some((facts.task, facts.channel?))).collect();
                let named: BTreeSet<Sid> =
                    events.iter().flat_map(|facts| [facts.queue, facts.workflow]).flatten().collect();
                let scopes = named.into_iter().map(|sid| match sid.kind() {
                    SidKind::TaskQueue => Scope::Queue(sid),
                    _ => Scope::Workflow(sid),
                });
                let scopes: Vec<Scope> = std::iter::once(Scope::Workspace).chain(scopes).collect();
                let mut channel_choices = vec![None];
                channel_choices
                    .extend(channels.values().copied().collect::<BTreeSet<Sid>>().into_iter().map(Some));
                let first = events[0].timestamp.div_euclid(MINUTE);
                let last = events[events.len() - 1].timestamp.div_euclid(MINUTE);
                let middle = (first + last) / 2;
                let mut windows =
                    vec![(first, last), (first, middle), (middle + 1, last), (first + 1, last - 1)];
                windows.extend((first..=last).map(|minute| (minute, minute)));
                for (from, to) in windows {
                    let window = Window { start: from * MINUTE, end: (to + 1) * MINUTE - 1 };
                    for (&scope, &channel) in scopes
                        .iter()
                        .flat_map(|scope| channel_choices.iter().map(move |channel| (scope, channel)))
                    {
                        let thresholds = [1, 3, 7, 30];
                        let of_channel = events
                            .iter()
                            .filter(|facts| {
                                channel.is_none_or(|channel| channels.get(&facts.task) == Some(&channel))
                            })
                            .cloned();
                        let expected = cumulative_statistics(of_channel, window, scope, &thresholds);
                        let actual = counters.statistics(window, scope, channel, &thresholds);
                        assert_eq!(
                            actual, expected,
                            "seed {seed}, from event {skipped}, minutes {from}..={to}, {scope:?}, channel {channel:?}"
                        );
                        compared += 1;
                        if channel.is_some() {
                            by_channel += actual.reservations_accepted;
                        }
                        let split = &actual.split_by_wait_time[1];
                        if split.below.reservations_accepted > 0 && split.above.tasks_canceled > 0 {
                            split_both_ways += 1;
                        }
                    }
                }
            }
        }
        // The comparison is not empty: tasks were forgotten, channels and splits told apart.
        assert!(
            compared > 5_000 && forgotten > 100 && by_channel > 100 && split_both_ways > 100,
            "{compared} {forgotten} {by_channel} {split_both_ways}"
        );
    }

    #[test]
    fn totals_are_each_queue_and_channel_s_statistics_over_the_whole_history() {
        let mut groups_compared = 0;
        for seed in 1..=6 {
            let events: Vec<EventFacts> =
                random_events(seed, 1200).iter().filter_map(EventFacts::from_event).collect();
            let counters = fed(&events);
            let whole = Window { start: Millis::MIN / 2, end: Millis::MAX / 2 };
            let thresholds = [1, 3, 7, 30];
            for group in &counters.totals().groups {
                let Some(queue) = group.queue else { continue };
                let expected = counters.statistics(whole, Scope::Queue(queue), group.channel(), &thresholds);
                let counts = group.counts();
                let actual = (
                    [counts.tasks_entered, counts.tasks_canceled, counts.tasks_completed, counts.tasks_moved],
                    [counts.reservations_created, counts.reservations_accepted, counts.reservations_rejected],
                    [
                        counts.reservations_timed_out,
                        counts.reservations_canceled,
                        counts.reservations_rescinded,
                    ],
                    thresholds.map(|seconds| (group.accepted_under(seconds), group.canceled_under(seconds))),
                );
                let split = |index: usize| &expected.split_by_wait_time[index].below;
                let wanted = (
                    [
                        expected.tasks_entered,
                        expected.tasks_canceled,
                        expected.tasks_completed,
                        expected.tasks_moved,
                    ],
                    [
                        expected.reservations_created,
                        expected.reservations_accepted,
                        expected.reservations_rejected,
                    ],
                    [
                        expected.reservations_timed_out,
                        expected.reservations_canceled,
                        expected.reservations_rescinded,
                    ],
                    [0, 1, 2, 3]
                        .map(|index| (split(index).reservations_accepted, split(index).tasks_canceled)),
                );
                assert_eq!(actual, wanted, "seed {seed}, queue {queue}, channel {:?}", group.channel());
                groups_compared += 1;
            }
        }
        assert!(groups_compared > 6, "{groups_compared}");
    }
}
