//! The durable engine under load (issue #4), measured against raw sled on the same machine in
//! the same run. Not a criterion benchmark: these are throughputs of concurrent submitters and
//! one-off figures (memory, restart time), printed as a table for BENCHMARKS.md.
//!
//! Run: `cargo bench --bench durable` (about a minute; writes only under a temporary directory);
//! `cargo bench --bench durable -- --throughput-only` stops after part 1.
//!
//! 1. Durable task creations per second, 64 concurrent submitters, each create answered only
//!    after group commit made it durable; beside it, raw sled insert + flush of records of the
//!    same size from 64 threads, one flush per record (what a naive durable store does); and the
//!    same durable creations on PostgreSQL (`store.backend = "postgres"`, a private cluster
//!    started from Debian's binaries, as the tests do).
//! 2. Resident memory with 10,000 workers and 100,000 waiting tasks.
//! 3. The snapshot's export under the engine lock at that size, beside the whole snapshot.
//! 4. Restart time with those 100,000 open tasks: open, load the snapshot, replay, ready.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use switchboard::config::{StoreBackend, StoreSettings};
use switchboard::live::LiveEngine;
use switchboard::workspace::WorkspaceFile;

// A private PostgreSQL cluster, as the tests start it.
#[path = "../src/store/test_postgres.rs"]
mod test_postgres;

#[path = "support/mod.rs"]
mod support;
use support::{SUBMITTERS, sales_workflow, submit_concurrently, task, workers};

const PER_SUBMITTER: usize = 400;

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// The highest resident memory since the last [`reset_peak_rss`].
fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Starts a new peak for [`peak_rss_mib`] (Linux: writing 5 to `clear_refs`).
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("the peak resident memory can be reset");
}

fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

fn settings(dir: &std::path::Path) -> StoreSettings {
    // Snapshots are written by the 100,000-task part only when asked; keep them out of the
    // throughput figure, as a production default of 10,000 would amortise them.
    StoreSettings { data_dir: dir.to_owned(), snapshot_every: u64::MAX, ..StoreSettings::default() }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if std::env::args().any(|arg| arg == "--memory-and-restart") {
        return memory_and_restart(&runtime);
    }
    let dir = tempfile::tempdir().unwrap();
    let live = Arc::new(LiveEngine::open(&settings(dir.path()), &WorkspaceFile::default(), "", 0).unwrap());
    let workflow = sales_workflow(&live);
    let record_size = {
        let json = serde_json::to_vec(&json!({"v1": {"at": 0, "command": {"create_task": {
            "attributes": {"skillsNeeded": ["Sales"], "call_sid": format!("CA{:032x}", 0), "from": "+15550100000"},
            "priority": null, "timeout": null, "workflow": workflow.to_string(), "channel": "voice"}}}}))
        .unwrap();
        json.len()
    };

    // 1a. Durable task creations, 64 concurrent submitters.
    let started = Instant::now();
    runtime.block_on(submit_concurrently(
        &live,
        (0..SUBMITTERS * PER_SUBMITTER).map(|n| task(n, workflow)).collect(),
        1_000,
    ));
    let durable_per_second = (SUBMITTERS * PER_SUBMITTER) as f64 / started.elapsed().as_secs_f64();
    let flushes = live.flush_statistics();
    drop(live);

    // 1c. The same on PostgreSQL (a private cluster on this machine, on a Unix socket).
    let postgres_settings = StoreSettings {
        backend: StoreBackend::Postgres,
        postgres_url: test_postgres::new_database(),
        ..settings(dir.path())
    };
    let live = Arc::new(LiveEngine::open(&postgres_settings, &WorkspaceFile::default(), "", 0).unwrap());
    let postgres_workflow = sales_workflow(&live);
    let started = Instant::now();
    runtime.block_on(submit_concurrently(
        &live,
        (0..SUBMITTERS * PER_SUBMITTER).map(|n| task(n, postgres_workflow)).collect(),
        1_000,
    ));
    let postgres_per_second = (SUBMITTERS * PER_SUBMITTER) as f64 / started.elapsed().as_secs_f64();
    let postgres_flushes = live.flush_statistics();
    drop(live);

    // 1b. Raw sled: insert + flush per record, 64 threads, same record size.
    let raw_dir = tempfile::tempdir().unwrap();
    let db = sled::open(raw_dir.path()).unwrap();
    let value = vec![b'x'; record_size];
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..SUBMITTERS {
            let (db, value) = (&db, &value);
            scope.spawn(move || {
                for n in 0..PER_SUBMITTER / 4 {
                    db.insert(((thread * PER_SUBMITTER + n) as u64).to_be_bytes(), value.as_slice()).unwrap();
                    db.flush().unwrap();
                }
            });
        }
    });
    let raw_per_second = (SUBMITTERS * PER_SUBMITTER / 4) as f64 / started.elapsed().as_secs_f64();
    drop(db);

    println!("| Measurement | Figure |");
    println!("|---|---|");
    println!(
        "| Durable task creations, {SUBMITTERS} concurrent submitters, acknowledged after flush | {durable_per_second:.0} tasks/s |"
    );
    println!(
        "| Raw sled insert + flush per record ({record_size} bytes), {SUBMITTERS} threads | {raw_per_second:.0} records/s |"
    );
    println!("| Ratio durable / raw | {:.2} |", durable_per_second / raw_per_second);
    println!(
        "| Durable task creations on PostgreSQL, same load (one statement per group) | {postgres_per_second:.0} tasks/s, {:.2} of sled's; {} groups, {:.1} commands each, {:.2} ms each |",
        postgres_per_second / durable_per_second,
        postgres_flushes.flushes,
        (SUBMITTERS * PER_SUBMITTER) as f64 / postgres_flushes.flushes.max(1) as f64,
        postgres_flushes.total.as_secs_f64() * 1000.0 / postgres_flushes.flushes.max(1) as f64
    );
    println!(
        "| Group commit: flushes, commands per flush, mean flush time | {}, {:.1}, {:.2} ms |",
        flushes.flushes,
        (SUBMITTERS * PER_SUBMITTER) as f64 / flushes.flushes.max(1) as f64,
        flushes.total.as_secs_f64() * 1000.0 / flushes.flushes.max(1) as f64
    );
    // Memory and restart are measured in a fresh process, as a server would hold that state.
    if std::env::args().any(|arg| arg == "--throughput-only") {
        return;
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--memory-and-restart")
        .output()
        .expect("the measuring process runs");
    print!("{}", String::from_utf8_lossy(&child.stdout));
}

/// Part 2 and 3, in a process of their own.
fn memory_and_restart(runtime: &tokio::runtime::Runtime) {
    // 2. 10,000 workers and 100,000 waiting tasks (all workers offline: every task waits).
    let big_dir = tempfile::tempdir().unwrap();
    let rss_before = rss_mib();
    let live = LiveEngine::open(&settings(big_dir.path()), &WorkspaceFile::default(), "", 0).unwrap();
    let workflow = sales_workflow(&live);
    let live = Arc::new(live);
    runtime.block_on(submit_concurrently(&live, workers(10_000), 1_000));
    runtime.block_on(submit_concurrently(&live, (0..100_000).map(|n| task(n, workflow)).collect(), 2_000));
    let open_tasks = live.read(|e| e.workspace_statistics(2_000).tasks.total_tasks);
    let rss_loaded = rss_mib();
    // What a snapshot holds the engine lock for: the export (the maintenance thread encodes,
    // writes and flushes it afterwards, off the lock). Beside it, the whole snapshot, which
    // ran on the request's worker thread before.
    let mut exports: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let snapshot = live.read(|e| e.export_unordered());
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            drop(snapshot);
            elapsed
        })
        .collect();
    exports.sort_by(f64::total_cmp);
    let rss_idle = rss_mib();
    reset_peak_rss();
    let started = Instant::now();
    live.snapshot_now().unwrap();
    let whole_snapshot = started.elapsed().as_secs_f64() * 1000.0;
    let rss_snapshot_peak = peak_rss_mib();
    drop(live);

    // 3. Restart with those 100,000 open tasks.
    let started = Instant::now();
    let live = LiveEngine::open(&settings(big_dir.path()), &WorkspaceFile::default(), "", 3_000).unwrap();
    live.catch_up(3_000).unwrap();
    let restart = started.elapsed();
    let reopened_tasks = live.read(|e| e.workspace_statistics(3_000).tasks.total_tasks);

    println!(
        "| Resident memory, 10,000 workers + {open_tasks} waiting tasks (fresh process; {rss_before:.0} MiB at start) | {rss_loaded:.0} MiB |"
    );
    println!(
        "| Peak resident memory while a snapshot is written, over the {rss_idle:.0} MiB before it | +{:.0} MiB |",
        rss_snapshot_peak - rss_idle
    );
    println!(
        "| Snapshot export under the engine lock, 10,000 workers + {open_tasks} tasks (median of 5; max) | {:.1} ms; {:.1} ms |",
        exports[2], exports[4]
    );
    println!(
        "| The whole snapshot (export, encode, write, flush), now on the maintenance thread | {whole_snapshot:.0} ms ({:.0}× the export) |",
        whole_snapshot / exports[2]
    );
    println!(
        "| Restart with {reopened_tasks} open tasks (open, load snapshot, replay, ready) | {:.2} s |",
        restart.as_secs_f64()
    );
}
