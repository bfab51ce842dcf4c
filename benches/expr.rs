//! Expression benchmarks: compiling, and evaluating a compiled Flex skill-and-level queue
//! expression against a typical Flex worker (the figure issue #2 targets: <= 300 ns).
//!
//! Run: `cargo bench --bench expr`. Figures and the machine go in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use switchboard::expr::{Clock, Context, Expression, Scope, WorkerFacts};

const SKILL_AND_LEVEL: &str = r#"routing.skills HAS "Sales" AND routing.levels.Sales >= 3"#;

/// What Flex writes for an agent: contact details, roles, skills with levels, disabled skills.
fn flex_worker() -> serde_json::Value {
    json!({
        "full_name": "Ann Agent",
        "email": "ann.agent@example.com",
        "image_url": "https://example.com/avatars/ann.png",
        "contact_uri": "client:ann_agent",
        "roles": ["agent"],
        "location": "Lisbon",
        "routing": {
            "skills": ["Billing", "Sales", "Support", "Spanish"],
            "levels": {"Billing": 2, "Sales": 4, "Support": 3, "Spanish": 5}
        },
        "disabled_skills": {"skills": ["Retention"], "levels": {"Retention": 1}}
    })
}

fn evaluate(c: &mut Criterion) {
    let worker = flex_worker();
    let facts = WorkerFacts::attributes_only(&worker);
    let queue = Expression::parse(SKILL_AND_LEVEL, Context::Queue).unwrap();
    let scope = Scope::worker(facts);
    assert!(queue.evaluate(&scope), "the benchmark worker must match");
    c.bench_function("evaluate skills HAS + level >= (queue, Flex worker)", |b| {
        b.iter(|| black_box(&queue).evaluate(black_box(&scope)))
    });

    let task = json!({"skillsNeeded": ["Sales"], "language": "es", "priority": 5});
    let filter = Expression::parse(r#""Sales" IN task.skillsNeeded"#, Context::Filter).unwrap();
    let task_scope = Scope::task(&task);
    c.bench_function("evaluate \"Sales\" IN task.skillsNeeded (filter)", |b| {
        b.iter(|| black_box(&filter).evaluate(black_box(&task_scope)))
    });

    let target = Expression::parse(
        "worker.routing.levels.Sales >= 3 AND task.language IN ['en', 'es'] AND taskrouter.currentTime > 0800",
        Context::Target,
    )
    .unwrap();
    let target_scope = Scope::task_and_worker(&task, facts).at(Clock::from_unix_seconds(1_795_000_000));
    c.bench_function("evaluate 3-clause target with clock", |b| {
        b.iter(|| black_box(&target).evaluate(black_box(&target_scope)))
    });
}

fn compile(c: &mut Criterion) {
    c.bench_function("compile skills HAS + level >= (queue)", |b| {
        b.iter(|| Expression::parse(black_box(SKILL_AND_LEVEL), Context::Queue).unwrap())
    });
}

criterion_group!(benches, evaluate, compile);
criterion_main!(benches);
