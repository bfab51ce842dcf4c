//! The full task cycle (create, reserve, accept, complete) through the in-memory engine, with
//! 100 skill queues and a workflow of 100 "Send to <skill>" filters, as the onboarding guide
//! builds them, at 1,000, 10,000 and 100,000 workers.
//!
//! Run: `cargo bench --bench routing`. Targets (issue #3): at 10,000 workers at least 100,000
//! cycles/s, and the cost per cycle at 100,000 workers at most twice the cost at 1,000.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use switchboard::routing::{Engine, Millis, NewTask};

mod skills;

use skills::{SKILLS, workspace};

/// One cycle: a task needing skill `n % 100` is created, reserved, accepted and completed.
fn cycle(engine: &mut Engine, n: usize, now: Millis) {
    let attributes = json!({"skillsNeeded": [format!("Skill{}", n % SKILLS)], "call_sid": "CA0123"});
    let new =
        NewTask { attributes, priority: None, timeout: None, workflow: None, channel: Some("voice".into()) };
    let task = engine.create_task(new, now).unwrap();
    let reservation = *engine.task(task).unwrap().reservations.last().expect("an agent is free");
    engine.accept(reservation, now).unwrap();
    engine.complete(task, "done", now).unwrap();
    engine.advance(now);
    black_box(engine.take_events());
}

fn full_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("task cycle, 100 skill queues");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    for n_workers in [1_000, 10_000, 100_000] {
        let mut engine = workspace(n_workers);
        let mut n = 0;
        group.bench_function(BenchmarkId::new("workers", n_workers), |b| {
            b.iter(|| {
                n += 1;
                // One millisecond per cycle: purges (5 min after completion) keep memory flat.
                cycle(&mut engine, n, n as Millis);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, full_cycle);
criterion_main!(benches);
