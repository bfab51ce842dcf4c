//! What each worker did, kept as events happen, for TaskRouter's worker statistics
//! (`Workers/Statistics`, `Workers/CumulativeStatistics`, `Workers/{WK}/Statistics`): the
//! activities it stayed in and from when (for `activity_durations`: the shortest, longest,
//! mean and total stay in each activity within a window, in seconds) and the outcome of each of
//! its reservations (created, accepted, rejected, timed out, canceled, rescinded), with the
//! reservation's task channel for `TaskChannel`.
//!
//! Fed every event once, in log order ([`WorkerHistory::observe`]); a worker known to the
//! engine before the oldest event kept is seeded with its current activity and since when
//! ([`WorkerHistory::seed`]). [`WorkerHistory::prune`] drops what ended before the history
//! kept. A stay is cut to the window: one that began before the window counts from its
//! start, the current one up to the window's end.
//!
//! Memory: 24 bytes per activity change and per reservation outcome kept; a busy agent makes a
//! few hundred a day.
//!
//! No I/O and no clock: time comes with the events and the question.

use std::collections::VecDeque;

use super::Millis;
use super::cumulative::{ReservationEvent, Window};
use super::event::Event;
use super::sid::{Sid, SidMap};

/// Reservations by outcome, as TaskRouter names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReservationCounts {
    pub created: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub timed_out: u64,
    pub canceled: u64,
    pub rescinded: u64,
}

/// Stays in one activity within a window, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StayDurations {
    pub stays: u64,
    pub min: Millis,
    pub max: Millis,
    pub total: Millis,
}

impl StayDurations {
    fn add(&mut self, stay: Millis) {
        self.min = if self.stays == 0 { stay } else { self.min.min(stay) };
        self.max = self.max.max(stay);
        self.total += stay;
        self.stays += 1;
    }

    /// The mean stay.
    pub fn avg(&self) -> Millis {
        if self.stays == 0 { 0 } else { self.total / self.stays as Millis }
    }
}

/// One or more workers' cumulative statistics over a window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkerCumulative {
    pub reservations: ReservationCounts,
    /// By activity SID.
    pub durations: SidMap<StayDurations>,
}

#[derive(Debug, Default)]
struct Track {
    /// `(since, activity)`, oldest first; each lasts until the next, the last until `left`.
    stays: VecDeque<(Millis, Sid)>,
    /// When the worker was deleted, if it was.
    left: Option<Millis>,
    /// `(at, outcome, task channel)`, oldest first.
    reservations: VecDeque<(Millis, ReservationEvent, Option<Sid>)>,
}

/// Every worker's activity stays and reservation outcomes.
#[derive(Debug, Default)]
pub struct WorkerHistory {
    workers: SidMap<Track>,
    /// The channel of each task that has not ended, from its `task.created`.
    channels: SidMap<Sid>,
}

impl WorkerHistory {
    pub fn new() -> WorkerHistory {
        WorkerHistory::default()
    }

    /// Takes the next event, in log order.
    pub fn observe(&mut self, event: &Event) {
        let Event { timestamp, event_type, worker, activity, task, channel, .. } = event;
        self.observe_facts(*timestamp, event_type.as_str(), *worker, *activity, *task, *channel);
    }

    /// [`WorkerHistory::observe`] for an event read from the stored history, `event_type` its
    /// TaskRouter name.
    pub fn observe_facts(
        &mut self,
        at: Millis,
        event_type: &str,
        worker: Option<Sid>,
        activity: Option<Sid>,
        task: Option<Sid>,
        channel: Option<Sid>,
    ) {
        let outcome = match event_type {
            "task.created" => {
                if let (Some(task), Some(channel)) = (task, channel) {
                    self.channels.insert(task, channel);
                }
                return;
            }
            "task.completed" | "task.canceled" | "task.deleted" => {
                if let Some(task) = task {
                    self.channels.remove(&task);
                }
                return;
            }
            "worker.created" | "worker.activity.update" => {
                if let (Some(worker), Some(activity)) = (worker, activity) {
                    let track = self.workers.entry(worker).or_default();
                    track.stays.push_back((at, activity));
                    track.left = None;
                }
                return;
            }
            "worker.deleted" => {
                if let Some(track) = worker.and_then(|worker| self.workers.get_mut(&worker)) {
                    track.left = Some(at);
                }
                return;
            }
            "reservation.created" => ReservationEvent::Created,
            "reservation.accepted" => ReservationEvent::Accepted,
            "reservation.rejected" => ReservationEvent::Rejected,
            "reservation.timeout" => ReservationEvent::TimedOut,
            "reservation.canceled" => ReservationEvent::Canceled,
            "reservation.rescinded" => ReservationEvent::Rescinded,
            _ => return,
        };
        if let Some(worker) = worker {
            let channel = task.and_then(|task| self.channels.get(&task).copied());
            self.workers.entry(worker).or_default().reservations.push_back((at, outcome, channel));
        }
    }

    /// A worker that the engine holds in `activity` since `since`, for one whose activity the
    /// history does not tell (its events are older than those kept).
    pub fn seed(&mut self, worker: Sid, activity: Sid, since: Millis) {
        let track = self.workers.entry(worker).or_default();
        if track.stays.front().is_none_or(|(first, _)| *first > since) {
            track.stays.push_front((since, activity));
        }
    }

    /// Forgets what ended before `before` (a stay that still lasts then is kept), and the
    /// workers deleted before it.
    pub fn prune(&mut self, before: Millis) {
        self.workers.retain(|_, track| {
            while track.stays.len() > 1 && track.stays[1].0 <= before {
                track.stays.pop_front();
            }
            while track.reservations.front().is_some_and(|(at, _, _)| *at < before) {
                track.reservations.pop_front();
            }
            track.left.is_none_or(|left| left >= before)
        });
    }

    /// How many workers were in each activity at `at`, as far as the history kept tells: a
    /// worker whose first stay kept began later is not counted.
    pub fn activities_at(&self, at: Millis) -> SidMap<usize> {
        let mut counts: SidMap<usize> = SidMap::default();
        for track in self.workers.values().filter(|track| track.left.is_none_or(|left| left > at)) {
            if let Some(&(_, activity)) = track.stays.iter().rev().find(|(since, _)| *since <= at) {
                *counts.entry(activity).or_default() += 1;
            }
        }
        counts
    }

    /// The statistics of the workers `include` keeps over `window`, their reservations on
    /// `channel` only when one is given.
    pub fn cumulative(
        &self,
        window: Window,
        channel: Option<Sid>,
        include: impl Fn(Sid) -> bool,
    ) -> WorkerCumulative {
        let mut statistics = WorkerCumulative::default();
        for (worker, track) in &self.workers {
            if !include(*worker) {
                continue;
            }
            let counts = &mut statistics.reservations;
            for (at, outcome, on) in &track.reservations {
                if *at < window.start || *at > window.end || channel.is_some_and(|wanted| *on != Some(wanted))
                {
                    continue;
                }
                let count = match outcome {
                    ReservationEvent::Created => &mut counts.created,
                    ReservationEvent::Accepted => &mut counts.accepted,
                    ReservationEvent::Rejected => &mut counts.rejected,
                    ReservationEvent::TimedOut => &mut counts.timed_out,
                    ReservationEvent::Canceled => &mut counts.canceled,
                    ReservationEvent::Rescinded => &mut counts.rescinded,
                };
                *count += 1;
            }
            let ends = track
                .stays
                .iter()
                .skip(1)
                .map(|(since, _)| *since)
                .chain([track.left.unwrap_or(Millis::MAX)]);
            for ((since, activity), until) in track.stays.iter().zip(ends) {
                let (from, to) = ((*since).max(window.start), until.min(window.end));
                if to > from {
                    statistics.durations.entry(*activity).or_default().add(to - from);
                }
            }
        }
        statistics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::SidKind;

    fn sid(kind: SidKind, n: u64) -> Sid {
        Sid::parse(&format!("{}{n:032x}", kind.prefix()), kind).unwrap()
    }

    /// Alice: created Offline at 0 s, Available at 100 s, Busy at 250 s; two reservations (one
    /// accepted at 260 s, one timed out at 400 s, on the voice channel's task); Bob: created
    /// Available at 50 s, deleted at 300 s.
    fn history() -> WorkerHistory {
        let (alice, bob) = (sid(SidKind::Worker, 1), sid(SidKind::Worker, 2));
        let (offline, available, busy) =
            (sid(SidKind::Activity, 1), sid(SidKind::Activity, 2), sid(SidKind::Activity, 3));
        let (task, voice) = (sid(SidKind::Task, 1), sid(SidKind::TaskChannel, 1));
        let mut history = WorkerHistory::new();
        let s = 1_000;
        for (at, event, worker, activity, task, channel) in [
            (0, "worker.created", Some(alice), Some(offline), None, None),
            (50 * s, "worker.created", Some(bob), Some(available), None, None),
            (100 * s, "worker.activity.update", Some(alice), Some(available), None, None),
            (240 * s, "task.created", None, None, Some(task), Some(voice)),
            (250 * s, "reservation.created", Some(alice), None, Some(task), None),
            (250 * s, "worker.activity.update", Some(alice), Some(busy), None, None),
            (260 * s, "reservation.accepted", Some(alice), None, Some(task), None),
            (300 * s, "worker.deleted", Some(bob), None, None, None),
            (390 * s, "reservation.created", Some(alice), None, None, None),
            (400 * s, "reservation.timeout", Some(alice), None, None, None),
            (400 * s, "task.completed", None, None, Some(task), None),
        ] {
            history.observe_facts(at, event, worker, activity, task, channel);
        }
        history
    }

    /// Stays in one activity: `(stays, min, max, total)` in seconds.
    type Stays = (u64, i64, i64, i64);

    /// The statistics over `[start, end]` seconds of `workers` (1 alice, 2 bob), on `channel`
    /// (1 voice): reservations created, accepted, timed out, and per activity (1 offline,
    /// 2 available, 3 busy) `(stays, min, max, total)` in seconds.
    fn check(
        start: i64,
        end: i64,
        workers: &[u64],
        channel: Option<u64>,
        expected: (u64, u64, u64, [Stays; 3]),
    ) {
        let window = Window { start: start * 1_000, end: end * 1_000 };
        let included: Vec<Sid> = workers.iter().map(|n| sid(SidKind::Worker, *n)).collect();
        let statistics =
            history().cumulative(window, channel.map(|n| sid(SidKind::TaskChannel, n)), |worker| {
                included.contains(&worker)
            });
        let counts = statistics.reservations;
        let stays = [1, 2, 3].map(|n| {
            let stays = statistics.durations.get(&sid(SidKind::Activity, n)).copied().unwrap_or_default();
            (stays.stays, stays.min / 1_000, stays.max / 1_000, stays.total / 1_000)
        });
        assert_eq!(
            (counts.created, counts.accepted, counts.timed_out, stays),
            expected,
            "[{start}, {end}] {workers:?} {channel:?}"
        );
    }

    #[test]
    fn stays_are_cut_to_the_window_and_reservations_counted_by_when_they_ended() {
        check(0, 500, &[1], None, (2, 1, 1, [(1, 100, 100, 100), (1, 150, 150, 150), (1, 250, 250, 250)]));
        check(0, 500, &[1, 2], None, (2, 1, 1, [(1, 100, 100, 100), (2, 150, 250, 400), (1, 250, 250, 250)]));
        check(120, 260, &[1, 2], None, (1, 1, 0, [(0, 0, 0, 0), (2, 130, 140, 270), (1, 10, 10, 10)]));
        check(0, 500, &[1], Some(1), (1, 1, 0, [(1, 100, 100, 100), (1, 150, 150, 150), (1, 250, 250, 250)]));
        check(0, 500, &[2], Some(1), (0, 0, 0, [(0, 0, 0, 0), (1, 250, 250, 250), (0, 0, 0, 0)]));
        check(301, 500, &[2], None, (0, 0, 0, [(0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)]));
    }

    #[test]
    fn a_worker_seeded_from_the_engine_counts_from_its_activity_change_and_pruning_keeps_the_current_stay() {
        let (carol, away) = (sid(SidKind::Worker, 3), sid(SidKind::Activity, 4));
        let mut history = history();
        history.seed(carol, away, -100_000);
        history.prune(350_000);
        let window = Window { start: 0, end: 500_000 };
        let statistics =
            history.cumulative(window, None, |worker| worker == carol || worker == sid(SidKind::Worker, 1));
        let stays = |n| {
            statistics
                .durations
                .get(&sid(SidKind::Activity, n))
                .map(|stays| (stays.stays, stays.total / 1_000))
        };

        assert_eq!(stays(4), Some((1, 500)), "carol, away since before the window");
        assert_eq!(stays(3), Some((1, 250)), "alice's current stay outlives the pruning");
        assert_eq!(stays(2), None, "alice's earlier stays ended before the pruning");
        assert_eq!(statistics.reservations.created, 1, "only the reservation after the pruning");
        assert!(!history.workers.contains_key(&sid(SidKind::Worker, 2)), "bob, deleted before, is forgotten");
    }
}
