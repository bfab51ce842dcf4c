//! Store tests on real sled directories and real PostgreSQL databases (a private cluster,
//! `test_postgres`): what is appended and flushed comes back, snapshots compact the log, damage
//! is reported with the key, and group commit serves many waiters. The tests of what every
//! backend must do run on both ([`on_both`]); those of sled's own layout on sled alone.

use std::path::Path;

use serde_json::json;

use super::sled_backend::{Part, SNAPSHOTS, snapshot_file_name};
use super::*;
use crate::routing::{Engine, NewTask, NewTaskQueue, NewWorker, NewWorkflow, TaskOrder, WrapUpRules};

fn open(dir: &Path) -> Result<(Store, Recovered), StoreError> {
    Store::open(dir, Durability::Flush)
}

/// Where a test's store lives, and how it is opened again.
enum Medium {
    Sled(tempfile::TempDir),
    Postgres(String),
}

impl Medium {
    fn open(&self) -> Result<(Store, Recovered), StoreError> {
        match self {
            Medium::Sled(dir) => open(dir.path()),
            Medium::Postgres(url) => {
                Store::open_on(Arc::new(PostgresBackend::connect(url, "main")?), Durability::Flush)
            }
        }
    }
}

/// Runs `test` on a new sled directory, then on a new PostgreSQL database.
fn on_both(test: impl Fn(&Medium)) {
    test(&Medium::Sled(tempfile::tempdir().unwrap()));
    test(&Medium::Postgres(super::test_postgres::new_database()));
}

/// A small workspace: one queue, one workflow, two workers (one available).
fn workspace() -> Engine {
    let mut engine = Engine::new("Store test", 42, 1_000);
    let available = engine.activity_by_name("Available").unwrap().sid;
    let queue = engine
        .create_task_queue(
            NewTaskQueue {
                friendly_name: "Everyone".into(),
                target_workers: "1==1".into(),
                task_order: TaskOrder::Fifo,
                max_reserved_workers: 1,
                wrap_up: WrapUpRules::default(),
            },
            1_000,
        )
        .unwrap();
    let configuration = json!({"task_routing": {"default_filter": {"queue": queue.to_string()}}}).to_string();
    engine
        .create_workflow(
            NewWorkflow { friendly_name: "W".into(), configuration, task_reservation_timeout: 30 },
            1_000,
        )
        .unwrap();
    for (name, activity) in [("ann", Some(available)), ("bob", None)] {
        let new = NewWorker { friendly_name: name.into(), attributes: json!({"n": name}), activity };
        engine.create_worker(new, 1_000).unwrap();
    }
    engine.take_events();
    engine
}

fn task(n: i64) -> Command {
    Command::CreateTask(NewTask {
        attributes: json!({"n": n}),
        priority: Some(n % 3),
        timeout: Some(60),
        workflow: None,
        channel: Some("voice".into()),
    })
}

/// Applies `commands` to `engine` and logs them from sequence `first`.
fn run(store: &Store, engine: &mut Engine, first: u64, commands: &[(Millis, Command)]) {
    for (offset, (at, command)) in commands.iter().enumerate() {
        engine.apply(command, *at).unwrap();
        let _ticket = store.append(first + offset as u64, *at, command, &engine.take_events()).unwrap();
    }
}

/// The engine a recovery rebuilds: the snapshot, then the log replayed.
fn restore(recovered: Recovered) -> Engine {
    let mut engine = Engine::import(recovered.snapshot.expect("a snapshot")).unwrap();
    for (_, at, command) in &recovered.commands {
        engine.apply(command, *at).unwrap();
        engine.take_events();
    }
    engine
}

/// Reopens `dir` and checks that it recovers the snapshot after command `snapshot_seq`,
/// `replayed` commands after it, and together exactly `engine`'s state.
fn reopens_as(dir: &Path, snapshot_seq: u64, replayed: usize, engine: &Engine) -> Store {
    let (store, recovered) = open(dir).unwrap();
    assert_eq!((recovered.snapshot_seq, recovered.commands.len()), (snapshot_seq, replayed));
    assert_eq!(restore(recovered).export(), engine.export());
    store
}

/// The files in the data directory's snapshot folder.
fn snapshot_files(dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(dir.join(SNAPSHOTS)).unwrap();
    entries.map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect()
}

#[test]
fn a_reopened_store_rebuilds_exactly_the_engine_it_logged() {
    on_both(|medium| {
        let mut engine = workspace();
        {
            let (store, recovered) = medium.open().unwrap();
            assert!(recovered.snapshot.is_none() && recovered.commands.is_empty(), "a new store is empty");
            store.write_snapshot(0, &engine.export()).unwrap();
            let commands: Vec<(Millis, Command)> = (1..=5).map(|n| (1_000 + n * 100, task(n))).collect();
            run(&store, &mut engine, 1, &commands);
            run(&store, &mut engine, 6, &[(40_000, Command::Advance)]);
            store.flush().unwrap();
        }

        let (_store, recovered) = medium.open().unwrap();

        assert_eq!((recovered.snapshot_seq, recovered.commands.len()), (0, 6));
        assert!(recovered.last_event > 0);
        assert_eq!(restore(recovered).export(), engine.export());
    });
}

#[test]
fn a_snapshot_is_encoded_one_entity_at_a_time_exactly_as_its_record() {
    let mut engine = workspace();
    for n in 1..=4 {
        engine.apply(&task(n), 1_000 + n * 100).unwrap();
    }
    let snapshot = engine.export();
    assert!(!snapshot.reservations.is_empty() && !snapshot.timers.is_empty(), "every kind of entity");

    let streamed = serde_json::to_string(&SnapshotEncoding(&snapshot)).unwrap();

    assert_eq!(streamed, serde_json::to_string(&SnapshotRecord::from(&snapshot)).unwrap());
    let decoded: SnapshotRecord = serde_json::from_str(&streamed).unwrap();
    assert_eq!(decoded.into_snapshot().unwrap(), snapshot);
}

#[test]
fn a_snapshot_replaces_the_commands_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = workspace();
    let (store, _) = open(dir.path()).unwrap();
    store.write_snapshot(0, &engine.export()).unwrap();
    run(&store, &mut engine, 1, &[(2_000, task(1)), (3_000, task(2))]);
    store.write_snapshot(2, &engine.export()).unwrap();
    run(&store, &mut engine, 3, &[(4_000, task(3))]);
    drop(store);

    let (store, recovered) = open(dir.path()).unwrap();

    let sequences: Vec<u64> = recovered.commands.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!((recovered.snapshot_seq, sequences), (2, vec![3]));
    let keys: Vec<String> =
        store.debug_dump().lines().map(|line| line.split(" = ").next().unwrap().to_owned()).collect();
    let kinds: Vec<&str> = keys.iter().map(|key| key.split(':').take(2).collect::<Vec<_>>()[1]).collect();
    assert!(kinds.starts_with(&["3"]), "commands first in key order: {keys:?}");
    assert!(
        keys.contains(&"m:snapshot_file".to_owned()) && !keys.iter().any(|key| key.starts_with("s:")),
        "{keys:?}"
    );
    assert_eq!(snapshot_files(dir.path()), [snapshot_file_name(2)]);
    assert_eq!(restore(recovered).export(), engine.export());
}

#[test]
fn commands_are_written_in_groups_and_a_group_may_straddle_a_snapshot() {
    on_both(|medium| {
        let mut engine = workspace();
        let (store, _) = medium.open().unwrap();
        store.write_snapshot(0, &engine.export()).unwrap();
        run(&store, &mut engine, 1, &[(2_000, task(1))]);
        let after_first = engine.export();
        run(&store, &mut engine, 2, &[(3_000, task(2)), (4_000, task(3))]);

        // The snapshot after command 1 writes the pending group 1..=3 first, under key c:3.
        store.write_snapshot(1, &after_first).unwrap();
        let commands: Vec<String> = store
            .debug_dump()
            .lines()
            .filter(|line| line.starts_with("c:"))
            .map(|line| line[..3].to_owned())
            .collect();
        assert_eq!(commands, ["c:3"]);
        drop(store);

        let (_store, recovered) = medium.open().unwrap();
        let sequences: Vec<u64> = recovered.commands.iter().map(|(seq, _, _)| *seq).collect();
        assert_eq!((recovered.snapshot_seq, sequences), (1, vec![2, 3]));
        assert_eq!(restore(recovered).export(), engine.export());
    });
}

#[test]
fn commands_logged_one_per_record_by_the_first_stores_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = workspace();
    {
        let (store, _) = open(dir.path()).unwrap();
        store.write_snapshot(0, &engine.export()).unwrap();
        for (seq, at) in [(1, 2_000), (2, 3_000)] {
            let command = task(seq as i64);
            engine.apply(&command, at).unwrap();
            engine.take_events();
            store
                .sled()
                .db()
                .insert(key_u64(b"c:", seq), Store::encode_command(at, &command).unwrap())
                .unwrap();
        }
        store.flush().unwrap();
    }

    let (_store, recovered) = open(dir.path()).unwrap();

    assert_eq!(recovered.commands.len(), 2);
    assert_eq!(restore(recovered).export(), engine.export());
}

#[test]
fn damaged_directories_are_clear_errors_not_panics() {
    // A record that is not JSON.
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(dir.path()).unwrap();
        store.sled().db().insert(key_u64(b"c:", 7), b"{not json".as_slice()).unwrap();
    }
    let err = open(dir.path()).err().expect("refused").to_string();
    assert!(err.contains("holds a damaged record at key c:7: key must be a string"), "{err}");

    // Another program's sled database.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(b"x", b"y").unwrap();
        db.flush().unwrap();
    }
    let err = open(dir.path()).err().expect("refused").to_string();
    assert!(err.contains("damaged record at key m:format: format none, expected 1"), "{err}");

    // Truncated database files.
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(dir.path()).unwrap();
        store.write_snapshot(0, &workspace().export()).unwrap();
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(file.metadata().unwrap().len() / 3).unwrap();
        }
    }
    let err = open(dir.path()).err().expect("a truncated directory is refused").to_string();
    let expected = format!("cannot open the data directory {}: Read corrupted data", dir.path().display());
    assert!(err.starts_with(&expected), "{err}");
}

#[test]
fn many_concurrent_waiters_share_flushes() {
    on_both(many_concurrent_waiters_share_flushes_on);
}

fn many_concurrent_waiters_share_flushes_on(medium: &Medium) {
    let (store, _) = medium.open().unwrap();
    let store = Arc::new(store);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let sequence = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let lock = Arc::new(Mutex::new(()));
    runtime.block_on(async {
        let mut handles = Vec::new();
        for _ in 0..64 {
            let (store, sequence, lock) = (store.clone(), sequence.clone(), lock.clone());
            handles.push(tokio::spawn(async move {
                for n in 0..20 {
                    let ticket = {
                        // Sequence numbers are handed out in log order, as the engine lock does.
                        let _guard = lock.lock().unwrap();
                        let seq = sequence.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        store.append(seq, n, &Command::Advance, &[]).unwrap()
                    };
                    store.durable(ticket).await.unwrap();
                }
            }));
        }
        for handle in handles {
            tokio::time::timeout(Duration::from_secs(120), handle).await.expect("no waiter hangs").unwrap();
        }
    });
    assert_eq!(*store.flusher.flushed.borrow(), Ok(64 * 20));
}

#[test]
fn a_directory_held_by_another_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_held, _) = open(dir.path()).unwrap();

    let err = open(dir.path()).err().expect("refused while held").to_string();

    assert_eq!(
        err,
        format!(
            "cannot open the data directory {}: it is in use by another process (is another Switchboard running on it?)",
            dir.path().display()
        )
    );
}

/// `commands` task creations, one a second, each flushed: one group, so one event record (of
/// several events), per command.
fn one_group_per_command(medium: &Medium, commands: i64) -> (Store, Engine) {
    let mut engine = workspace();
    let (store, _) = medium.open().unwrap();
    for n in 1..=commands {
        run(&store, &mut engine, n as u64, &[(n * 1_000, task(n))]);
        store.flush().unwrap();
    }
    (store, engine)
}

#[test]
fn events_are_pruned_by_count_and_age_whole_groups_at_a_time() {
    on_both(|medium| {
        let (store, engine) = one_group_per_command(medium, 5);
        let last = engine.events_emitted();
        let stored = |store: &Store| -> Vec<u64> {
            store
                .debug_dump()
                .lines()
                .filter_map(|line| line.strip_prefix("e:")?.split(' ').next()?.parse().ok())
                .collect()
        };
        let before = stored(&store);
        assert_eq!(before.len(), 5, "one record per group");

        // Keep exactly the last two commands' events: the 3 oldest records go, whole.
        let removed = store.prune_events(0, last - before[3] + 1).unwrap();
        assert_eq!((removed, stored(&store)), (before[3] - before[0], before[3..].to_vec()));

        // Older than the last command's time: all but the last go.
        store.prune_events(5_000, u64::MAX).unwrap();
        assert_eq!(stored(&store), before[4..].to_vec());
    });
}

#[test]
fn stored_events_are_read_in_either_order_and_below_a_position_group_by_group() {
    on_both(|medium| {
        // More groups than PostgreSQL's scans read per query.
        let (store, mut engine) = one_group_per_command(medium, 70);
        let last = engine.events_emitted();

        let oldest_first = sequences(store.events_oldest_first().unwrap());
        let newest_first = sequences(store.events_newest_first(None).unwrap());

        let first = oldest_first[0];
        assert_eq!(oldest_first, (first..=last).collect::<Vec<u64>>());
        assert_eq!(newest_first, (first..=last).rev().collect::<Vec<u64>>());
        // Below a position in the middle of a group: that group's older events, then the rest.
        let middle = last - 2;
        let below = sequences(store.events_newest_first(Some(middle)).unwrap());
        assert_eq!(below, (first..middle).rev().collect::<Vec<u64>>());
        assert_eq!(sequences(store.events_newest_first(Some(first)).unwrap()), Vec::<u64>::new());
        // A command appended but not yet on disk is not read: it could still be lost. Once
        // flushed, it is.
        run(&store, &mut engine, 71, &[(71_000, task(71))]);
        let newest = |store: &Store| {
            let EventRecord::V1 { sequence, .. } =
                store.events_newest_first(None).unwrap().next().unwrap().unwrap();
            sequence
        };
        assert_eq!(newest(&store), last);
        store.flush().unwrap();
        assert_eq!(newest(&store), engine.events_emitted());
    });
}

fn sequences(events: impl Iterator<Item = Result<EventRecord, StoreError>>) -> Vec<u64> {
    let sequence =
        |record: Result<EventRecord, StoreError>| record.map(|EventRecord::V1 { sequence, .. }| sequence);
    events.map(sequence).collect::<Result<_, _>>().unwrap()
}

#[test]
fn a_damaged_event_group_stops_a_full_read_not_the_newest_events() {
    let dir = tempfile::tempdir().unwrap();
    let medium = Medium::Sled(dir);
    let (store, _engine) = one_group_per_command(&medium, 4);
    let first = sequences(store.events_oldest_first().unwrap())[0];
    // Groups are read only as the iterator comes to them: a damaged oldest group stops a full
    // read, not the newest events.
    store.sled().db().insert(key_u64(b"e:", first), b"not json".as_slice()).unwrap();
    let newest: Vec<u64> = sequences(store.events_newest_first(None).unwrap().take(3));
    assert_eq!(newest.len(), 3);
    let err = store.events_oldest_first().unwrap().next().unwrap().unwrap_err().to_string();
    assert!(err.contains(&format!("e:{first}")), "{err}");
    assert_eq!(
        store.events_newest_first(None).unwrap().filter(Result::is_err).count(),
        1,
        "then nothing more"
    );
}

/// Writes `snapshot`, taken after `seq`, as the stores before snapshot files kept it: in sled,
/// under `s:`, its entities in chunks of 500 (`one_per_task`: the tasks one `v1` record each,
/// as the very first stores wrote them).
fn write_first_layout(store: &Store, seq: u64, snapshot: &Snapshot, one_per_task: bool) {
    fn chunks<T: Serialize>(store: &Store, prefix: &[u8], entities: &[T]) {
        for (number, chunk) in entities.chunks(500).enumerate() {
            let value = serde_json::to_vec(&Part::<&T>::ChunkV1(chunk.iter().collect())).unwrap();
            store.sled().db().insert(key_u64(prefix, number as u64), value).unwrap();
        }
    }
    let SnapshotRecord::V1(record) = SnapshotRecord::from(snapshot);
    let mut head = *record;
    chunks(store, b"s:1worker:", &std::mem::take(&mut head.workers));
    chunks(store, b"s:2queue:", &std::mem::take(&mut head.queues));
    chunks(store, b"s:3workflow:", &std::mem::take(&mut head.workflows));
    let tasks = std::mem::take(&mut head.tasks);
    if one_per_task {
        for task in &tasks {
            store
                .sled()
                .db()
                .insert(key_u64(b"s:4task:", task.seq), serde_json::to_vec(&Part::V1(task)).unwrap())
                .unwrap();
        }
    } else {
        chunks(store, b"s:4task:", &tasks);
    }
    chunks(store, b"s:5reservation:", &std::mem::take(&mut head.reservations));
    chunks(store, b"s:6timer:", &std::mem::take(&mut head.timers));
    store.sled().db().insert(b"s:0head", serde_json::to_vec(&Part::V1(&head)).unwrap()).unwrap();
    store.sled().db().insert(b"m:snapshot_seq", seq.to_be_bytes().as_slice()).unwrap();
    store.sled().db().remove(b"m:snapshot_file").unwrap();
    for folder in std::fs::read_dir(store.sled().dir().join(SNAPSHOTS)).into_iter().flatten() {
        std::fs::remove_file(folder.unwrap().path()).unwrap();
    }
    store.flush().unwrap();
}

#[test]
fn snapshots_in_the_first_layouts_in_sled_are_still_read_then_replaced_by_a_file() {
    for one_per_task in [false, true] {
        // Arrange: more tasks than one record of the first layout held, stored that way.
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).unwrap();
        let mut engine = workspace();
        let commands: Vec<(Millis, Command)> = (0..1_200).map(|n| (2_000 + n, task(n))).collect();
        run(&store, &mut engine, 1, &commands);
        store.write_snapshot(1_200, &engine.export()).unwrap();
        write_first_layout(&store, 1_200, &engine.export(), one_per_task);
        run(&store, &mut engine, 1_201, &[(5_000, task(5_000))]);
        drop(store);

        // Act + assert: the same state comes back...
        let store = reopens_as(dir.path(), 1_200, 1, &engine);

        // ...and the next snapshot is a file, with nothing left of the old layout.
        store.write_snapshot(1_201, &engine.export()).unwrap();
        assert_eq!(store.sled().db().scan_prefix(b"s:").count(), 0, "one_per_task: {one_per_task}");
        drop(store);
        reopens_as(dir.path(), 1_201, 0, &engine);
    }
}

#[test]
fn a_snapshot_cut_short_by_a_crash_leaves_the_previous_one_current() {
    // Arrange: a snapshot at 1, then commands, then a later snapshot's file cut short before
    // it was renamed and before sled named it (as a crash in the middle leaves them).
    let dir = tempfile::tempdir().unwrap();
    let mut engine = workspace();
    let (store, _) = open(dir.path()).unwrap();
    run(&store, &mut engine, 1, &[(2_000, task(1))]);
    store.write_snapshot(1, &engine.export()).unwrap();
    run(&store, &mut engine, 2, &[(3_000, task(2)), (4_000, task(3))]);
    let folder = dir.path().join(SNAPSHOTS);
    std::fs::write(folder.join("00000000000000000003.partial"), b"{\"v1\":{\"ta").unwrap();
    std::fs::write(folder.join(snapshot_file_name(3)), b"{\"v1\":{\"ta").unwrap();
    store.flush().unwrap();
    drop(store);

    // Act + assert: the previous snapshot and the commands since recover the state...
    let store = reopens_as(dir.path(), 1, 2, &engine);

    // ...and the next snapshot (after the same command) replaces what was left.
    store.write_snapshot(3, &engine.export()).unwrap();
    assert_eq!(snapshot_files(dir.path()), [snapshot_file_name(3)]);
    drop(store);
    reopens_as(dir.path(), 3, 0, &engine);
}

#[test]
fn a_missing_or_damaged_snapshot_file_is_a_clear_error() {
    for damage in ["missing", "damaged"] {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = workspace();
        let (store, _) = open(dir.path()).unwrap();
        run(&store, &mut engine, 1, &[(2_000, task(1))]);
        store.write_snapshot(1, &engine.export()).unwrap();
        drop(store);
        let file = dir.path().join(SNAPSHOTS).join(snapshot_file_name(1));
        match damage {
            "missing" => std::fs::remove_file(&file).unwrap(),
            _ => std::fs::write(&file, b"{\"v1\": [").unwrap(),
        }

        let err = open(dir.path()).err().expect("refused").to_string();

        assert!(
            err.contains("00000000000000000001.json") && err.contains("damaged or missing"),
            "{damage}: {err}"
        );
    }
}

#[test]
fn calls_are_put_and_deleted_durably_with_the_commands_around_them() {
    on_both(|medium| {
        let call = |sid: &str, menu: &str| CallV1 {
            call_sid: sid.into(),
            from: "+15550100".into(),
            to: "+15550199".into(),
            flow: "main".into(),
            menu: menu.into(),
            failures: 0,
            language: "en-US".into(),
            path: vec!["1".into()],
            task: None,
            started_at: 1_000,
            last_seen: 2_000,
            announced_at: None,
            bridged: None,
            voicemail: false,
            message_left: false,
            ended_at: None,
            conference: None,
            room: None,
            retry_at: None,
        };
        {
            let (store, _) = medium.open().unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _ = store.put(&CallRecord::V1(call("CA1", "main"))).unwrap();
            let _ = store.put(&CallRecord::V1(call("CA2", "main"))).unwrap();
            let _ = store.put(&CallRecord::V1(call("CA1", "support"))).unwrap();
            let last = store.delete::<CallRecord>("CA2");
            runtime.block_on(store.durable(last)).unwrap();
        }

        let (store, _) = medium.open().unwrap();

        assert_eq!(store.all::<CallRecord>().unwrap(), vec![CallRecord::V1(call("CA1", "support"))]);
    });
}

#[test]
fn a_hole_in_the_command_log_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = workspace();
    {
        let (store, _) = open(dir.path()).unwrap();
        store.write_snapshot(0, &engine.export()).unwrap();
        for n in 1..=3 {
            run(&store, &mut engine, n as u64, &[(n * 1_000, task(n))]);
            store.flush().unwrap();
        }
        store.sled().db().remove(key_u64(b"c:", 2)).unwrap();
        store.sled().db().flush().unwrap();
    }

    let err = open(dir.path()).err().expect("refused").to_string();

    assert!(err.ends_with("holds a damaged record at key c:3: command 2 is missing from the log"), "{err}");
}

#[test]
fn updates_and_deletions_replay_exactly_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = workspace();
    let (queue, workflow) = (engine.queues()[0].sid, engine.workflows()[0].sid);
    let bob = engine.worker_by_name("bob").unwrap().sid;
    {
        let (store, _) = open(dir.path()).unwrap();
        store.write_snapshot(0, &engine.export()).unwrap();
        let configuration = json!({"task_routing": {"filters": [{"expression": "n > 1", "targets": [{"queue": queue.to_string(), "timeout": 5}]}], "default_filter": {"queue": queue.to_string()}}}).to_string();
        let commands = [
            (2_000, task(1)),
            (2_100, task(2)),
            (
                2_200,
                Command::UpdateWorkflow {
                    workflow,
                    changes: crate::routing::WorkflowChanges {
                        configuration: Some(configuration),
                        re_evaluate_tasks: true,
                        ..Default::default()
                    },
                },
            ),
            (
                2_300,
                Command::UpdateTaskQueue {
                    queue,
                    changes: crate::routing::TaskQueueChanges {
                        task_order: Some(TaskOrder::Lifo),
                        ..Default::default()
                    },
                },
            ),
            (2_400, Command::Delete { resource: bob }),
            (2_500, task(3)),
            (9_000, Command::Advance),
        ];
        run(&store, &mut engine, 1, &commands);
        store.flush().unwrap();
    }
    let (_store, recovered) = open(dir.path()).unwrap();
    assert_eq!(restore(recovered).export(), engine.export());
}

/// Task channels, a worker's capacity on one and the workspace's settings are logged commands
/// like the others, and a snapshot taken after them keeps them.
#[test]
fn channel_and_workspace_changes_replay_and_snapshot_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = workspace();
    let ann = engine.worker_by_name("ann").unwrap().sid;
    let brk = engine.activity_by_name("Break").unwrap().sid;
    let commands = [
        (
            2_000,
            Command::CreateTaskChannel(crate::routing::NewTaskChannel {
                friendly_name: "Email".into(),
                unique_name: "email".into(),
                channel_optimized_routing: true,
                default_capacity: 2,
            }),
        ),
        (
            2_100,
            Command::SetWorkerChannel {
                worker: ann,
                channel: "email".into(),
                capacity: Some(4),
                available: None,
            },
        ),
        (
            2_200,
            Command::UpdateWorkspace(crate::routing::WorkspaceChanges {
                friendly_name: Some("Renamed".into()),
                timeout_activity: Some(brk),
                event_callback_url: Some("https://crm.example.com/events".into()),
                events_filter: Some("task.created".into()),
                prioritize_queue_order: Some(TaskOrder::Lifo),
                ..Default::default()
            }),
        ),
    ];
    {
        let (store, _) = open(dir.path()).unwrap();
        store.write_snapshot(0, &engine.export()).unwrap();
        run(&store, &mut engine, 1, &commands);
        store.flush().unwrap();
    }
    let store = reopens_as(dir.path(), 0, 3, &engine);
    let email = engine.task_channel_by_key("email").unwrap().sid;
    let changes =
        crate::routing::TaskChannelChanges { friendly_name: Some("E-mail".into()), ..Default::default() };
    run(&store, &mut engine, 4, &[(3_000, Command::UpdateTaskChannel { channel: email, changes })]);
    store.write_snapshot(4, &engine.export()).unwrap();
    run(&store, &mut engine, 5, &[(4_000, Command::Delete { resource: email })]);
    store.flush().unwrap();
    drop(store);

    let _store = reopens_as(dir.path(), 4, 1, &engine);
    assert!(engine.task_channel_by_key("email").is_none());
    assert_eq!(engine.settings().event_callback_url.as_deref(), Some("https://crm.example.com/events"));
}

/// A snapshot written before task channels were made through the API (each channel a
/// (SID, unique name, default capacity) triple, no callback settings) still loads: the
/// channels named by their unique names, dated as the workspace's oldest resource.
#[test]
fn snapshots_written_before_channels_had_names_and_dates_still_load() {
    let engine = workspace();
    let snapshot = engine.export();
    let mut old = serde_json::to_value(SnapshotRecord::from(&snapshot)).unwrap();
    let channels: Vec<serde_json::Value> = snapshot
        .channels
        .iter()
        .map(|channel| json!([channel.sid, channel.unique_name, channel.default_capacity]))
        .collect();
    old["v1"]["channels"] = json!(channels);
    assert!(old["v1"].get("event_callback_url").is_none(), "absent until set");

    let decoded: SnapshotRecord = serde_json::from_value(old).unwrap();
    let restored = Engine::import(decoded.into_snapshot().unwrap()).unwrap();

    let names: Vec<(String, String, u32, Millis)> = restored
        .channels()
        .iter()
        .map(|c| (c.unique_name.clone(), c.friendly_name.clone(), c.default_capacity, c.created_at))
        .collect();
    assert_eq!(
        names,
        [
            ("default".into(), "default".into(), 1, 1_000),
            ("voice".into(), "voice".into(), 1, 1_000),
            ("sms".into(), "sms".into(), 3, 1_000),
            ("chat".into(), "chat".into(), 3, 1_000),
            ("whatsapp".into(), "whatsapp".into(), 3, 1_000),
        ]
    );
    assert_eq!(restored.settings(), engine.settings());
}

/// Records written before a field existed decode as they meant: each case is the old JSON of a
/// command and the command it must replay as.
#[test]
fn commands_logged_before_later_fields_replay_as_they_did() {
    let worker = "WK0000000000002a00000000000000000a";
    let queue = "WQ0000000000002a00000000000000000b";
    let cases = [
        (
            json!({"v1": {"at": 5, "command": {"set_worker_skills": {"worker": worker, "skills": [["Sales", 3]]}}}}),
            Command::SetWorkerSkills {
                worker: worker.parse().unwrap(),
                skills: vec![("Sales".into(), Some(3))],
                disabled: None,
            },
        ),
        (
            json!({"v1": {"at": 5, "command": {"update_task_queue": {"queue": queue, "target_workers": "1==1", "max_reserved_workers": null}}}}),
            Command::UpdateTaskQueue {
                queue: queue.parse().unwrap(),
                changes: crate::routing::TaskQueueChanges {
                    target_workers: Some("1==1".into()),
                    ..Default::default()
                },
            },
        ),
    ];
    let created_through_the_api = json!({"v1": {"at": 5, "command": {"create_task_channel": {
        "friendly_name": "Email", "unique_name": "email", "channel_optimized_routing": false}}}});
    let cases = cases.into_iter().chain([(
        created_through_the_api,
        Command::CreateTaskChannel(crate::routing::NewTaskChannel {
            friendly_name: "Email".into(),
            unique_name: "email".into(),
            channel_optimized_routing: false,
            default_capacity: 1,
        }),
    )]);
    for (old, expected) in cases {
        let record: CommandRecord =
            serde_json::from_value(old.clone()).unwrap_or_else(|err| panic!("{old}: {err}"));
        assert_eq!(record.into_command(), (5, expected), "{old}");
    }
    let event = json!({"v1": {"sequence": 1, "timestamp": 5, "event_type": "task.created", "resource": "WT0000000000002a00000000000000000c", "task": null, "worker": null, "reservation": null, "queue": null, "workflow": null, "activity": null, "reason": null}});
    let EventRecord::V1 { channel, .. } = serde_json::from_value(event).unwrap();
    assert_eq!(channel, None);
}

/// A task update is logged as one `update_task` record; the four commands that earlier logs
/// hold for the same updates still decode as they were written.
#[test]
fn task_updates_are_one_logged_command_and_the_older_task_commands_still_replay() {
    use crate::routing::{TaskChanges, TaskStatusChange};
    let task = "WT0000000000002a00000000000000000c";
    let sid: Sid = task.parse().unwrap();
    let update = Command::UpdateTask {
        task: sid,
        changes: TaskChanges {
            attributes: Some(json!({"a": 1})),
            priority: Some(4),
            status: Some(TaskStatusChange::Completed { reason: "done".into() }),
        },
    };
    let written = serde_json::to_value(CommandRecord::new(5, &update)).unwrap();
    assert_eq!(
        written,
        json!({"v1": {"at": 5, "command": {"update_task": {"task": task, "attributes": {"a": 1}, "priority": 4, "status": {"completed": {"reason": "done"}}}}}})
    );
    let cases = [
        (written, update),
        (
            json!({"v1": {"at": 5, "command": {"update_task": {"task": task, "attributes": null, "priority": null, "status": "wrapping"}}}}),
            Command::UpdateTask {
                task: sid,
                changes: TaskChanges { status: Some(TaskStatusChange::Wrapping), ..TaskChanges::default() },
            },
        ),
        (
            json!({"v1": {"at": 5, "command": {"update_task_attributes": {"task": task, "attributes": {"a": 2}}}}}),
            Command::UpdateTaskAttributes { task: sid, attributes: json!({"a": 2}) },
        ),
        (
            json!({"v1": {"at": 5, "command": {"complete": {"task": task, "reason": "r"}}}}),
            Command::Complete { task: sid, reason: "r".into() },
        ),
        (
            json!({"v1": {"at": 5, "command": {"cancel": {"task": task, "reason": "r"}}}}),
            Command::Cancel { task: sid, reason: "r".into() },
        ),
        (json!({"v1": {"at": 5, "command": {"wrap_up": {"task": task}}}}), Command::WrapUp { task: sid }),
    ];
    for (stored, expected) in cases {
        let record: CommandRecord =
            serde_json::from_value(stored.clone()).unwrap_or_else(|err| panic!("{stored}: {err}"));
        assert_eq!(record.into_command(), (5, expected), "{stored}");
    }
}

/// The sequences of the events the Events API would list now, newest first.
fn listed(store: &Store) -> Vec<u64> {
    let events = store.events_newest_first(None).unwrap();
    events.map(|record| record.unwrap()).map(|EventRecord::V1 { sequence, .. }| sequence).collect()
}

#[test]
fn events_are_published_and_listed_only_once_flushed_in_log_order() {
    on_both(|medium| {
        let (store, _) = medium.open().unwrap();
        let published = Arc::new(Mutex::new(Vec::new()));
        let into = published.clone();
        store.publish_when_durable(Box::new(move |events| {
            into.lock().unwrap().extend(events.iter().map(|event| event.sequence));
        }));
        let mut engine = workspace();
        let before = engine.events_emitted();
        run(&store, &mut engine, 1, &[(2_000, task(1)), (2_001, task(2))]);
        // Written to sled, not yet flushed: neither announced nor listed.
        store.flusher.write_pending().unwrap();
        assert_eq!((published.lock().unwrap().len(), listed(&store)), (0, vec![]));

        store.flush().unwrap();

        let announced = published.lock().unwrap().clone();
        assert_eq!(
            announced,
            (before + 1..=engine.events_emitted()).collect::<Vec<u64>>(),
            "all, in log order"
        );
        assert_eq!(listed(&store), announced.iter().rev().copied().collect::<Vec<u64>>());
    });
}

#[test]
fn a_publisher_that_panics_stops_the_store_instead_of_hanging_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path()).unwrap();
    store.publish_when_durable(Box::new(|_| panic!("a subscriber's bug")));
    let mut engine = workspace();
    engine.apply(&task(1), 2_000).unwrap();
    let ticket = store.append(1, 2_000, &task(1), &engine.take_events()).unwrap();

    let waited = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), store.durable(ticket)).await });

    let err = waited.expect("answered, not hung").unwrap_err();
    assert!(err.to_string().contains("publishing durable events failed"), "{err}");
}

#[test]
fn on_postgresql_the_first_node_to_keep_a_value_wins_and_workspaces_are_apart() {
    let url = super::test_postgres::new_database();
    let connect = |workspace: &str| PostgresBackend::connect(&url, workspace).unwrap();
    let (main, other) = (connect("main"), connect("other"));
    main.recover().unwrap();
    other.recover().unwrap();

    let kept = main.kept_value("auth_token", "first".to_owned()).unwrap();
    let kept_elsewhere = other.kept_value("auth_token", "its own".to_owned()).unwrap();
    let put = |key: &[u8]| backend::Group {
        records: vec![(key.to_vec(), Some(b"{}".to_vec()))],
        ..Default::default()
    };
    main.write_group(put(b"v:CA1")).unwrap();
    // A standby of the same workspace reads what its leader keeps.
    let main_again = PostgresBackend::open(&url, "main", LeaseSettings::default()).unwrap();
    let kept_again = main_again.kept_value("auth_token", "second".to_owned()).unwrap();

    assert_eq!((kept.as_str(), kept_again.as_str(), kept_elsewhere.as_str()), ("first", "first", "its own"));
    assert_eq!(main_again.get(b"v:CA1").unwrap(), Some(b"{}".to_vec()));
    assert_eq!(other.get(b"v:CA1").unwrap(), None);
}

#[test]
fn on_postgresql_a_node_taken_over_from_never_writes_or_acknowledges_again() {
    let medium = Medium::Postgres(super::test_postgres::new_database());
    let mut engine = workspace();
    let (first, _) = medium.open().unwrap();
    first.write_snapshot(0, &engine.export()).unwrap();
    run(&first, &mut engine, 1, &[(2_000, task(1))]);
    first.flush().unwrap();
    let acknowledged = engine.export();

    // The first node stops renewing its lease (paused, or cut off from the database) and
    // another one takes the workspace over once the lease ran out, by the database's clock.
    let postgres =
        |store: &Store| store.backend.as_any().downcast_ref::<PostgresBackend>().unwrap().leading();
    first.backend.as_any().downcast_ref::<PostgresBackend>().unwrap().pause_lease(true);
    let (second, recovered) = medium.open().unwrap();
    assert!(postgres(&first), "the first node does not know yet: only its writes are refused");
    run(&first, &mut engine, 2, &[(3_000, task(2))]);
    let refused = first.flush().unwrap_err().to_string();
    let snapshot_refused = first.write_snapshot(2, &engine.export()).unwrap_err().to_string();
    drop((first, second));

    assert_eq!(restore(recovered).export(), acknowledged, "everything acknowledged before, nothing after");
    assert!(refused.contains("took workspace main over"), "{refused}");
    assert!(snapshot_refused.contains("took workspace main over"), "{snapshot_refused}");
    let (_third, later) = medium.open().unwrap();
    assert_eq!((later.snapshot_seq, later.commands.len()), (0, 1), "the refused command is nowhere");
}

#[test]
fn a_damaged_postgresql_record_is_a_clear_error_naming_the_database_and_key() {
    let url = super::test_postgres::new_database();
    let medium = Medium::Postgres(url.clone());
    {
        let (store, _) = medium.open().unwrap();
        let mut engine = workspace();
        run(&store, &mut engine, 1, &[(2_000, task(1))]);
        store.flush().unwrap();
    }
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.execute("UPDATE sb_log SET commands = 'not json'", &[]).unwrap();

    let err = medium.open().err().expect("refused").to_string();

    assert!(err.starts_with("the store at postgresql://"), "{err}");
    assert!(err.contains("(workspace main) holds a damaged record at key c:1"), "{err}");
}

#[test]
fn within_one_group_the_last_change_of_a_key_is_the_one_kept() {
    on_both(|medium| {
        let sign_out = |nonce: &str| {
            SignOutRecord::V1(SignOutV1 { nonce: nonce.into(), subject: "WK1".into(), expires: 1 })
        };
        {
            let (store, _) = medium.open().unwrap();
            let encoded =
                |nonce| Store::encode(&sign_out(nonce)).map(|(key, value)| (key, Some(value))).unwrap();
            let gone = Store::key_of::<SignOutRecord>("n1");
            let _ = store.put_together(vec![
                encoded("n1"),
                (gone, None),
                (Store::key_of::<SignOutRecord>("n2"), None),
                encoded("n2"),
            ]);
            store.flush().unwrap();
        }

        let (store, _) = medium.open().unwrap();

        assert_eq!(store.all::<SignOutRecord>().unwrap(), vec![sign_out("n2")]);
    });
}
