//! One queue's cumulative statistics (issue #17, point 4), as a wallboard asks for them: from
//! the per-minute counters the server now keeps, and, as the baseline in the same run, the
//! computation they replace (the stored events of the window and of the day before it read from
//! sled, then scanned by `cumulative_statistics`), over the same data.
//!
//! The data: the 100 skill queues of the routing bench with 2,000 agents, and an hour of a
//! contact center at 10 tasks/s (36,000 tasks): each offered at once, accepted after 2-8 s
//! (5% of offers rejected), completed after 30-120 s, 5% abandoned after 20-60 s. Every command
//! is logged in a real store and its events fed to the counters, as the server does.
//!
//! Run: `cargo bench --bench statistics` (setting up the hour takes a few seconds). Target: a
//! wallboard asking 100 queues' `Statistics` each second costs under 5% of one core, so one
//! query under 500 µs. Before the measurements it prints the size of the data, the memory the
//! counters hold and one baseline query allocates, and what feeding and rebuilding cost. The
//! real-time half of a `Statistics` answer is measured too, for the whole request's cost.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use switchboard::config::StoreSettings;
use switchboard::routing::{
    Command, CumulativeStatistics, Engine, EventType, Millis, NewTask, Scope, Sid, Window,
    cumulative_statistics,
};
use switchboard::statistics::Statistics;
use switchboard::store::{Durability, EventRecord, Store};

mod skills;

use skills::{SKILLS, workspace};

/// The hour simulated starts here, on a minute boundary.
const START: Millis = 1_767_603_600_000;
const HOUR: Millis = 3_600_000;
const MINUTE: Millis = 60_000;
/// How far before the window the old computation read (`HISTORY_BEFORE_WINDOW`).
const DAY: Millis = 24 * HOUR;

/// Counts the bytes allocated and not yet freed, and the most at once since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is handed to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bytes `work` leaves allocated, and the most it had allocated at once.
fn memory<T>(work: impl FnOnce() -> T) -> (T, usize, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = work();
    let (after, peak) = (LIVE.load(Ordering::Relaxed), PEAK.load(Ordering::Relaxed));
    (result, after.saturating_sub(before), peak - before)
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The hour, logged in `store`: each applied command's events, in log order.
fn simulate(engine: &mut Engine, store: &Store) -> Vec<Vec<switchboard::routing::Event>> {
    // One for what callers and agents do, one for which skill callers ask for.
    let (mut rng, mut skills) = (Rng(0x9E37_79B9_7F4A_7C15), Rng(0x2545_F491_4F6C_DD1D));
    // What the callers and agents will do, and when: (time, order) → command.
    let mut agenda: BTreeMap<(Millis, u64), Command> = BTreeMap::new();
    let mut order = 0;
    let mut logged = Vec::new();
    let mut apply =
        |engine: &mut Engine, command: Command, at: Millis, agenda: &mut BTreeMap<(Millis, u64), Command>| {
            if engine.apply(&command, at).is_err() {
                return; // Too late: the task was abandoned, or the offer timed out.
            }
            let events = engine.take_events();
            let seq = logged.len() as u64 + 1;
            let _ticket = store.append(seq, at, &command, &events).unwrap();
            for event in &events {
                let mut plan = |after: Millis, command: Command| {
                    order += 1;
                    agenda.insert((at + after, order), command);
                };
                match (event.event_type, event.reservation, event.task) {
                    (EventType::ReservationCreated, Some(reservation), _) if rng.chance(5) => plan(
                        1_000 + rng.below(4_000) as Millis,
                        Command::Reject { reservation, activity: None },
                    ),
                    (EventType::ReservationCreated, Some(reservation), _) => {
                        plan(2_000 + rng.below(6_000) as Millis, Command::Accept { reservation })
                    }
                    (EventType::ReservationAccepted, _, Some(task)) => {
                        let reason = "done".to_owned();
                        plan(30_000 + rng.below(90_000) as Millis, Command::Complete { task, reason })
                    }
                    (EventType::TaskCreated, _, Some(task)) if rng.chance(5) => {
                        let reason = "hung up".to_owned();
                        plan(20_000 + rng.below(40_000) as Millis, Command::Cancel { task, reason })
                    }
                    _ => {}
                }
            }
            logged.push(events);
        };
    for tick in 0..HOUR / 100 {
        let now = START + tick * 100;
        while let Some(entry) = agenda.first_entry().filter(|entry| entry.key().0 <= now) {
            let ((at, _), command) = entry.remove_entry();
            apply(engine, command, at, &mut agenda);
        }
        if engine.next_deadline().is_some_and(|deadline| deadline <= now) {
            apply(engine, Command::Advance, now, &mut agenda);
        }
        let skill = skills.below(SKILLS as u64);
        let attributes = json!({"skillsNeeded": [format!("Skill{skill}")], "from": "+15550100"});
        let new = NewTask {
            attributes,
            priority: None,
            timeout: None,
            workflow: None,
            channel: Some("voice".into()),
        };
        apply(engine, Command::CreateTask(new), now, &mut agenda);
    }
    store.flush().unwrap();
    logged
}

/// The old computation, as `http::taskrouter::statistics` did it: every stored event from a
/// day before the window to its end, read newest first, then scanned oldest first.
fn event_scan(store: &Store, window: Window, scope: Scope) -> CumulativeStatistics {
    let since = window.start - DAY;
    let mut facts = Vec::new();
    for record in store.events_newest_first(None).unwrap() {
        let record = record.unwrap();
        let EventRecord::V1 { timestamp, .. } = record;
        if timestamp < since {
            break;
        }
        if timestamp <= window.end {
            facts.extend(record.facts());
        }
    }
    facts.reverse();
    cumulative_statistics(facts, window, scope, &[])
}

fn queue_statistics(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let periodic = Durability::Periodic { interval: std::time::Duration::from_millis(100) };
    let (store, _) = Store::open(dir.path(), periodic).unwrap();
    let mut engine = workspace(2_000);
    let queues: Vec<Sid> = engine.queues().iter().map(|queue| queue.sid).collect();
    let started = Instant::now();
    let logged = simulate(&mut engine, &store);
    let simulated = started.elapsed();
    let events: usize = logged.iter().map(Vec::len).sum();
    let tasks = logged.iter().flatten().filter(|event| event.event_type == EventType::TaskCreated).count();

    // The counters as the server keeps them: rebuilt from the store (what a restart does).
    let settings = StoreSettings { data_dir: dir.path().to_owned(), ..StoreSettings::default() };
    let started = Instant::now();
    let (statistics, held, _) = memory(|| Statistics::rebuild(&store, &engine, &settings).unwrap());
    let rebuilt = started.elapsed();
    // The last 15 minutes of the hour (whole minutes, so that the old computation counts the
    // same events) and the whole hour.
    let end = START + HOUR - 1;
    let last_15 = Window { start: START + HOUR - 15 * MINUTE, end };
    let hour = Window { start: START, end };
    let (_, _, scan_peak) = memory(|| event_scan(&store, last_15, Scope::Queue(queues[0])));
    // Fed live instead, command by command as `LiveEngine` does under its lock (from an empty
    // history), the same figures: a check that the bench compares like with like.
    let empty = tempfile::tempdir().unwrap();
    let (empty_store, _) = Store::open(empty.path(), Durability::Flush).unwrap();
    let fed = Statistics::rebuild(&empty_store, &Engine::new("Bench", 1, 0), &settings).unwrap();
    let started = Instant::now();
    for events in &logged {
        fed.observe(events);
    }
    let per_command = started.elapsed() / logged.len() as u32;
    for &queue in &queues[..10] {
        let scope = Scope::Queue(queue);
        let counted = statistics.cumulative(last_15, scope, None, &[]);
        assert_eq!(counted, event_scan(&store, last_15, scope), "the counters answer as the scan did");
        assert_eq!(fed.cumulative(last_15, scope, None, &[]), counted);
    }
    println!(
        "an hour: {tasks} tasks, {} commands, {events} events (simulated in {simulated:.1?}); counters: \
         {:.1} MiB held, rebuilt from the store in {rebuilt:.1?}, fed {per_command:.1?} a command; \
         one event-scan query allocates up to {:.1} MiB",
        logged.len(),
        held as f64 / (1 << 20) as f64,
        scan_peak as f64 / (1 << 20) as f64,
    );

    let mut group = c.benchmark_group("one queue's cumulative statistics, 100 queues, an hour at 10 tasks/s");
    let mut next = 0;
    let mut queue = || {
        next = (next + 1) % queues.len();
        Scope::Queue(queues[next])
    };
    group.bench_function("counters, last 15 minutes", |b| {
        b.iter(|| black_box(statistics.cumulative(last_15, queue(), None, &[])))
    });
    group.bench_function("counters, last hour, SplitByWaitTime=5,30", |b| {
        b.iter(|| black_box(statistics.cumulative(hour, queue(), None, &[5, 30])))
    });
    // The other half of a `.../Statistics` answer, for the whole request's cost: the real-time
    // part, computed from the engine (under its lock) at the end of the hour.
    group.bench_function("real-time part (engine), for comparison", |b| {
        b.iter(|| {
            let Scope::Queue(queue) = queue() else { unreachable!() };
            black_box(engine.queue_statistics(queue, end).unwrap())
        })
    });
    group.sample_size(10);
    group.bench_function("event scan (before), last 15 minutes", |b| {
        b.iter(|| black_box(event_scan(&store, last_15, queue())))
    });
    group.finish();
}

criterion_group!(benches, queue_statistics);
criterion_main!(benches);
