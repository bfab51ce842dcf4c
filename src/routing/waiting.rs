//! The queues' waiting tasks over time, for the dashboard's charts: each task's wait, from its
//! creation until a reservation of it was first accepted or it ended, and the queue it waited
//! in. Fed the same event facts as the cumulative counters, in log order; a task waiting since
//! before the oldest event kept is seeded from the engine ([`WaitingHistory::seed`]).
//!
//! Memory: ~48 bytes per task wait kept; [`WaitingHistory::prune`] drops the waits that ended
//! before the history kept, which `store.event_max_count` bounds (a task makes several events:
//! at the default million, a few hundred thousand waits, ~20 MB at most).
//!
//! No I/O and no clock: time comes with the events and the question.

use super::Millis;
use super::cumulative::{CountedEvent, EventFacts, ReservationEvent};
use super::sid::{Sid, SidMap};

/// One task's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wait {
    task: Sid,
    queue: Option<Sid>,
    from: Millis,
    /// When it stopped waiting; `None` while it still waits.
    until: Option<Millis>,
}

/// What a queue had waiting at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitingAt {
    pub tasks: usize,
    /// The longest wait then, in milliseconds.
    pub longest: Millis,
}

/// Every task's wait, for the waiting tasks of each queue at any instant of the history kept.
#[derive(Debug, Default)]
pub struct WaitingHistory {
    waits: Vec<Wait>,
    /// Each task's index in `waits`.
    index: SidMap<usize>,
}

impl WaitingHistory {
    pub fn new() -> WaitingHistory {
        WaitingHistory::default()
    }

    /// Tells of `task`, waiting in `queue` since `from`, before the history is observed.
    pub fn seed(&mut self, task: Sid, queue: Option<Sid>, from: Millis) {
        self.index.insert(task, self.waits.len());
        self.waits.push(Wait { task, queue, from, until: None });
    }

    /// Takes the next events, in log order. A new task's events come in one command: the
    /// workflow and the queue it entered, then its creation.
    pub fn observe(&mut self, events: &[EventFacts]) {
        for facts in events {
            let known = self.index.get(&facts.task).copied();
            match (facts.event, known) {
                (CountedEvent::WorkflowEntered | CountedEvent::TaskCreated, None) => {
                    self.seed(facts.task, None, facts.timestamp);
                }
                (CountedEvent::TaskQueueEntered, None) => self.seed(facts.task, facts.queue, facts.timestamp),
                (CountedEvent::TaskQueueEntered, Some(index)) if self.waits[index].until.is_none() => {
                    self.waits[index].queue = facts.queue;
                }
                (
                    CountedEvent::Reservation(ReservationEvent::Accepted)
                    | CountedEvent::TaskCanceled
                    | CountedEvent::TaskCompleted
                    | CountedEvent::TaskDeleted,
                    Some(index),
                ) => {
                    let wait = &mut self.waits[index];
                    wait.until = wait.until.or(Some(facts.timestamp));
                }
                _ => {}
            }
        }
    }

    /// Forgets the waits that ended before `before`.
    pub fn prune(&mut self, before: Millis) {
        if !self.waits.iter().any(|wait| wait.until.is_some_and(|until| until < before)) {
            return;
        }
        self.waits.retain(|wait| wait.until.is_none_or(|until| until >= before));
        self.index = self.waits.iter().enumerate().map(|(index, wait)| (wait.task, index)).collect();
    }

    /// What each queue had waiting at `at`: tasks that had been created and not yet accepted
    /// nor ended (and had entered the queue by then, as far as the events say).
    pub fn at(&self, at: Millis) -> SidMap<WaitingAt> {
        let mut queues: SidMap<WaitingAt> = SidMap::default();
        for wait in &self.waits {
            let Some(queue) = wait.queue else { continue };
            if wait.from <= at && wait.until.is_none_or(|until| until > at) {
                let waiting = queues.entry(queue).or_default();
                waiting.tasks += 1;
                waiting.longest = waiting.longest.max(at - wait.from);
            }
        }
        queues
    }

    /// How many waits are kept (tests and diagnostics).
    pub fn len(&self) -> usize {
        self.waits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waits.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::sid::{SidGenerator, SidKind};

    #[test]
    fn a_queue_waits_from_creation_until_the_first_accept_or_the_end() {
        let mut sids = SidGenerator::new(7);
        let (sales, support) = (sids.mint(SidKind::TaskQueue), sids.mint(SidKind::TaskQueue));
        let tasks: Vec<Sid> = (0..10).map(|_| sids.mint(SidKind::Task)).collect();
        let task = |n: usize| tasks[n];
        let facts = |at: Millis, event: CountedEvent, task: Sid, queue: Option<Sid>| EventFacts {
            timestamp: at,
            event,
            task,
            queue,
            workflow: None,
            channel: None,
            outcome: None,
        };
        let accepted = CountedEvent::Reservation(ReservationEvent::Accepted);
        let mut history = WaitingHistory::new();
        history.seed(task(9), Some(support), -5_000);
        history.observe(&[
            facts(1_000, CountedEvent::TaskQueueEntered, task(1), Some(sales)),
            facts(1_000, CountedEvent::TaskCreated, task(1), None),
            facts(2_000, CountedEvent::TaskCreated, task(2), None),
            facts(2_000, CountedEvent::TaskQueueEntered, task(2), Some(sales)),
            facts(4_000, accepted, task(1), Some(sales)),
            facts(5_000, CountedEvent::TaskCanceled, task(2), Some(sales)),
            facts(6_000, accepted, task(9), Some(support)),
            // Ended after it was accepted: it had stopped waiting already.
            facts(7_000, CountedEvent::TaskCompleted, task(9), Some(support)),
        ]);
        let check = |history: &WaitingHistory, at: Millis, expected: &[(Sid, usize, Millis)]| {
            let found = history.at(at);
            let mut found: Vec<(Sid, usize, Millis)> =
                found.iter().map(|(queue, waiting)| (*queue, waiting.tasks, waiting.longest)).collect();
            found.sort_by_key(|(queue, _, _)| *queue == support);
            assert_eq!(found, expected, "at {at}");
        };
        check(&history, 0, &[(support, 1, 5_000)]);
        check(&history, 1_500, &[(sales, 1, 500), (support, 1, 6_500)]);
        check(&history, 3_000, &[(sales, 2, 2_000), (support, 1, 8_000)]);
        check(&history, 4_000, &[(sales, 1, 2_000), (support, 1, 9_000)]);
        check(&history, 5_500, &[(support, 1, 10_500)]);
        check(&history, 6_000, &[]);
        history.prune(4_500);
        assert_eq!(history.len(), 2, "task 1's wait ended before; 2 and 9 ended after");
        check(&history, 4_600, &[(sales, 1, 2_600), (support, 1, 9_600)]);
    }
}
