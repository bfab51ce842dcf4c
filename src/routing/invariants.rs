//! Random command sequences against the engine, with every invariant checked after each
//! command: busy counts match pending offers plus assigned and wrapping tasks; ready, waiting
//! and live sets hold exactly what they should; every waiting task and pending reservation has
//! its timer and no timer is orphaned or in the past; events never go back in time; and no
//! pending task is left while an eligible worker is ready for it.
//!
//! A child of `engine.rs`, so that it can read the engine's private state. Seeds are fixed:
//! a failure names its seed and replays exactly.
use std::collections::BTreeSet;

use serde_json::json;

use super::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

pub(super) fn check_invariants(e: &Engine, now: Millis, label: &str) -> Result<(), String> {
    // 1. busy counts
    for (w, worker) in e.workers.iter().enumerate() {
        for (c, state) in worker.channels.iter().enumerate() {
            let pending = e
                .reservations
                .values()
                .filter(|r| {
                    r.worker == w
                        && r.status == ReservationStatus::Pending
                        && e.tasks.get(&r.task).map(|t| t.channel) == Some(c)
                })
                .count();
            let assigned = e
                .tasks
                .values()
                .filter(|t| {
                    t.assigned_worker == Some(w)
                        && t.channel == c
                        && matches!(t.status, TaskStatus::Assigned | TaskStatus::Wrapping)
                })
                .count();
            if state.busy as usize != pending + assigned {
                return Err(format!(
                    "{label}: worker {w} channel {c} busy {} != pending {pending} + assigned {assigned}",
                    state.busy
                ));
            }
        }
    }
    // 2. membership + ready sets
    for (q, queue) in e.queues.iter().enumerate() {
        for (w, worker) in e.workers.iter().enumerate() {
            let member = queue.target_expression.evaluate(&Scope::worker(e.facts(worker)));
            if member != queue.members.contains(&w) || member != worker.queues.contains(&q) {
                return Err(format!("{label}: membership mismatch q{q} w{w}"));
            }
        }
        for c in 0..e.channels.len() {
            let expected: BTreeSet<(Millis, usize)> = queue
                .members
                .iter()
                .copied()
                .filter(|&w| {
                    let worker = &e.workers[w];
                    e.activities[worker.activity].available && worker.channels[c].has_room()
                })
                .map(|w| {
                    let worker = &e.workers[w];
                    (worker.last_assignment.unwrap_or(worker.available_since), w)
                })
                .collect();
            if expected != queue.ready[c] {
                return Err(format!(
                    "{label}: ready set q{q} c{c} is {:?}, expected {:?}",
                    queue.ready[c], expected
                ));
            }
        }
        // 3. waiting sets
        let expected: BTreeSet<WaitKey> = e
            .tasks
            .values()
            .filter(|t| t.status == TaskStatus::Pending && t.queue == Some(q))
            .map(|t| t.wait_key.expect("pending task has a wait key"))
            .collect();
        if expected != queue.waiting {
            return Err(format!("{label}: waiting set q{q} mismatch {:?} vs {:?}", queue.waiting, expected));
        }
        let live: BTreeSet<Sid> =
            e.tasks.values().filter(|t| !t.status.is_final() && t.queue == Some(q)).map(|t| t.sid).collect();
        if live != queue.live {
            return Err(format!("{label}: live set q{q} is {:?}, expected {live:?}", queue.live));
        }
    }
    // 4. tasks vs reservations, timers
    let mut referenced: BTreeSet<TimerKey> = BTreeSet::new();
    for task in e.tasks.values() {
        let pending = e.pending_reservations(task).len();
        if task.transfer.is_some_and(|transfer| transfer.worker.is_some())
            && task.status == TaskStatus::Pending
        {
            return Err(format!("{label}: transfer task {} waits for its one worker", task.sid));
        }
        match task.status {
            TaskStatus::Pending if pending != 0 => return Err(format!("{label}: pending task with offers")),
            TaskStatus::Reserved if pending == 0 => {
                return Err(format!("{label}: reserved task without offers"));
            }
            _ => {}
        }
        if !task.status.is_waiting() && (task.step_timer.is_some() || task.ttl_timer.is_some()) {
            return Err(format!("{label}: finished task {} keeps timers", task.sid));
        }
        if task.status.is_waiting() {
            let Some(ttl) = task.ttl_timer else { return Err(format!("{label}: waiting task without ttl")) };
            if e.timers.get(&ttl) != Some(&Timer::TaskTtl(task.sid)) {
                return Err(format!("{label}: ttl timer missing"));
            }
            referenced.insert(ttl);
            if let Some(step) = task.step_timer {
                if e.timers.get(&step) != Some(&Timer::StepTimeout(task.sid)) {
                    return Err(format!("{label}: step timer missing"));
                }
                referenced.insert(step);
            } else if let Step::At { deadline: Some(_), .. } = task.step {
                if !task.step_expired {
                    return Err(format!("{label}: task {} has a deadline but no step timer", task.sid));
                }
            }
        }
    }
    for r in e.reservations.values() {
        match (r.status, r.timer) {
            (ReservationStatus::Pending, Some(key)) => {
                if e.timers.get(&key) != Some(&Timer::ReservationTimeout(r.sid)) {
                    return Err(format!("{label}: reservation timer missing"));
                }
                referenced.insert(key);
            }
            (ReservationStatus::Pending, None) => {
                return Err(format!("{label}: pending reservation w/o timer"));
            }
            (_, Some(_)) => return Err(format!("{label}: ended reservation keeps timer")),
            _ => {}
        }
    }
    for (key, timer) in &e.timers {
        if key.0 < now {
            return Err(format!("{label}: timer {timer:?} scheduled at {} < now {now}", key.0));
        }
        match timer {
            Timer::Purge(t) if e.tasks.get(t).is_some_and(|t| t.status.is_waiting()) => {
                return Err(format!("{label}: purge timer for a waiting task"));
            }
            Timer::Purge(_) => {}
            // Left in place when the agent completes the task first: it then finds nothing to do.
            Timer::WrapUpLimit(t)
                if e.tasks
                    .get(t)
                    .is_some_and(|t| !matches!(t.status, TaskStatus::Wrapping | TaskStatus::Completed)) =>
            {
                return Err(format!("{label}: wrap-up limit for a task neither wrapping nor completed"));
            }
            Timer::WrapUpLimit(_) => {}
            _ if !referenced.contains(key) => return Err(format!("{label}: orphan timer {timer:?}")),
            _ => {}
        }
    }
    // 5. liveness: no pending task at a step has an eligible ready worker
    for task in e.tasks.values().filter(|t| t.status == TaskStatus::Pending) {
        let q = task.queue.unwrap();
        let chosen = e.eligible_workers(task, q, now);
        if !chosen.is_empty() {
            return Err(format!(
                "{label}: pending task {} left unassigned with eligible workers {chosen:?}",
                task.sid
            ));
        }
    }
    Ok(())
}

/// The events of sequence `seed` (`steps` commands), in the order the engine produced them: a
/// realistic history for checks of what is computed from events (`counters.rs`).
pub(crate) fn random_events(seed: u64, steps: usize) -> Vec<Event> {
    let mut events = Vec::new();
    if let Err(failure) = run(seed, steps, &mut BTreeSet::new(), &mut events) {
        panic!("{failure}");
    }
    events
}

/// Plays one sequence; adds the name of each command that was carried out to `carried_out`,
/// and the events taken after each command to `events`.
fn run(
    seed: u64,
    steps: usize,
    carried_out: &mut BTreeSet<String>,
    events: &mut Vec<Event>,
) -> Result<(), String> {
    let mut rng = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let mut now: Millis = 1_000;
    let mut e = Engine::new("fuzz", 1, now);
    let available = e.activity_by_name("Available").unwrap().sid;
    let acts: Vec<Sid> = e.activities().iter().map(|a| a.sid).collect();
    if rng.chance(30) {
        e.configure_workspace(acts[0], available, TaskOrder::Fifo).unwrap();
    }
    let mut queues = Vec::new();
    let exprs = ["skill == \"a\"", "skill IN [\"a\",\"b\"]", "1 == 1", "level > 2"];
    for (i, expr) in exprs.iter().enumerate().take(1 + rng.below(4)) {
        let order = if rng.chance(25) { TaskOrder::Lifo } else { TaskOrder::Fifo };
        let q = e
            .create_task_queue(
                NewTaskQueue {
                    friendly_name: format!("Q{i}"),
                    target_workers: expr.to_string(),
                    task_order: order,
                    max_reserved_workers: 1 + rng.below(3) as u32,
                    wrap_up: WrapUpRules {
                        limit_seconds: if rng.chance(30) { rng.below(40) as u32 } else { 0 },
                        dispositions: vec!["Sale".into(), "No sale".into()],
                    },
                },
                now,
            )
            .unwrap();
        queues.push(q);
    }
    let q = |i: usize| queues[i % queues.len()].to_string();
    let config = json!({"task_routing": {
        "filters": [
            {"expression": "kind == \"x\"", "targets": [
                {"queue": q(0), "timeout": 3, "priority": 1},
                {"queue": q(1), "timeout": 4, "skip_if": "workers.available == 0", "order_by": "worker.level DESC"},
                {"timeout": 5, "priority": 7, "expression": "worker.level >= task.min"},
            ]},
            {"expression": "kind == \"y\"", "targets": [
                {"queue": q(2), "known_worker_friendly_name": "task.agent", "timeout": 4},
                {"queue": q(3), "skip_if": "1 == 1"},
            ]},
            {"expression": "kind IN [\"x\", \"z\"]", "targets": [ {"queue": q(1), "timeout": 6} ]}
        ],
        "default_filter": {"queue": q(0)}
    }})
    .to_string();
    // A second configuration for workflow updates: fewer filters, targets in another order,
    // and only the first queue, so that the others can be deleted while it is in force.
    let other_config = json!({"task_routing": {
        "filters": [
            {"expression": "kind IN [\"y\", \"x\"]", "targets": [
                {"queue": q(0), "timeout": 2, "expression": "worker.level >= task.min"},
                {"queue": q(0), "priority": 3},
            ]},
        ],
        "default_filter": {"queue": q(0)}
    }})
    .to_string();
    e.create_workflow(
        NewWorkflow {
            friendly_name: "W".into(),
            configuration: config.clone(),
            task_reservation_timeout: 1 + rng.below(6) as u32,
        },
        now,
    )
    .unwrap();
    let mut workers: Vec<Sid> = Vec::new();
    let mut tasks: Vec<Sid> = Vec::new();
    // The built-in channels, then `email` while it exists (made and deleted by commands).
    let mut channels: Vec<&str> = vec!["default", "voice", "sms", "chat", "whatsapp"];
    let skills = ["a", "b", "c"];
    let kinds = ["x", "y", "z", "w"];
    let mut log = Vec::new();
    for step in 0..steps {
        // Every 50 commands, carry on with a restored copy: a restore must lose nothing.
        if step % 50 == 25 {
            let snapshot = e.export();
            let restored = Engine::import(snapshot.clone())
                .map_err(|err| format!("seed {seed} step {step}: import: {err}"))?;
            if restored.export() != snapshot {
                return Err(format!(
                    "seed {seed} step {step}: export(import(snapshot)) differs from snapshot"
                ));
            }
            e = restored;
        }
        // time moves on
        if rng.chance(40) {
            now += rng.below(4000) as Millis;
            e.advance(now);
            log.push(format!("advance({now})"));
            check_invariants(&e, now, &format!("seed {seed} step {step} advance"))
                .map_err(|m| format!("{m}\n{}", log.join("\n")))?;
        }
        let op = rng.below(28);
        let pick =
            |rng: &mut Rng, v: &Vec<Sid>| if v.is_empty() { None } else { Some(v[rng.below(v.len())]) };
        let desc;
        let result: Result<(), RoutingError> = match op {
            0 if workers.len() < 6 => {
                let n = workers.len();
                let attrs = json!({"skill": skills[rng.below(3)], "level": rng.below(5)});
                let act = acts[rng.below(acts.len())];
                desc = format!("create_worker(w{n}, {attrs}, {act})");
                e.create_worker(
                    NewWorker { friendly_name: format!("w{n}"), attributes: attrs, activity: Some(act) },
                    now,
                )
                .map(|sid| workers.push(sid))
            }
            1 | 2 => {
                let agent = format!("w{}", rng.below(7));
                let attrs = json!({"kind": kinds[rng.below(4)], "min": rng.below(5), "agent": agent});
                let channel = channels[rng.below(channels.len())];
                let prio = rng.below(3) as i64;
                desc = format!("create_task({attrs}, {channel}, p{prio})");
                e.create_task(
                    NewTask {
                        attributes: attrs,
                        priority: Some(prio),
                        timeout: Some(5 + rng.below(30) as u32),
                        workflow: None,
                        channel: Some(channel.into()),
                    },
                    now,
                )
                .map(|sid| tasks.push(sid))
            }
            3..=5 => {
                let pending: Vec<Sid> = {
                    let mut v: Vec<Sid> = e
                        .reservations
                        .values()
                        .filter(|r| r.status == ReservationStatus::Pending)
                        .map(|r| r.sid)
                        .collect();
                    v.sort();
                    v
                };
                match pick(&mut rng, &pending) {
                    Some(r) => {
                        if rng.chance(60) {
                            desc = format!("accept({r})");
                            e.accept(r, now)
                        } else {
                            let act = if rng.chance(50) { Some(acts[rng.below(acts.len())]) } else { None };
                            desc = format!("reject({r}, {act:?})");
                            e.reject(r, act, now)
                        }
                    }
                    None => continue,
                }
            }
            6 | 7 => match pick(&mut rng, &tasks) {
                Some(t) if rng.chance(30) => {
                    let outcome = ["Sale", "No sale", "Unknown"][rng.below(3)];
                    desc = format!("dispose({t}, {outcome})");
                    e.dispose(t, outcome, "done", now)
                }
                Some(t) => {
                    desc = format!("complete({t})");
                    e.complete(t, "done", now)
                }
                None => continue,
            },
            8 => match pick(&mut rng, &tasks) {
                Some(t) => {
                    desc = format!("wrap_up({t})");
                    e.wrap_up(t, now)
                }
                None => continue,
            },
            9 => match pick(&mut rng, &tasks) {
                Some(t) => {
                    desc = format!("cancel({t})");
                    e.cancel(t, "c", now)
                }
                None => continue,
            },
            10 | 11 => match pick(&mut rng, &workers) {
                Some(w) => {
                    let act = acts[rng.below(acts.len())];
                    let rp = rng.chance(40);
                    desc = format!("set_worker_activity({w}, {act}, {rp})");
                    e.set_worker_activity(w, act, rp, now)
                }
                None => continue,
            },
            12 => match pick(&mut rng, &workers) {
                Some(w) => {
                    let ch = channels[rng.below(channels.len())];
                    let cap = if rng.chance(50) { Some(rng.below(4) as u32) } else { None };
                    let av = if rng.chance(50) { Some(rng.chance(50)) } else { None };
                    desc = format!("set_worker_channel({w}, {ch}, {cap:?}, {av:?})");
                    e.set_worker_channel(w, ch, cap, av, now)
                }
                None => continue,
            },
            13 => match pick(&mut rng, &workers) {
                Some(w) => {
                    let attrs = json!({"skill": skills[rng.below(3)], "level": rng.below(5)});
                    desc = format!("update_worker_attributes({w}, {attrs})");
                    e.update_worker_attributes(w, attrs, now)
                }
                None => continue,
            },
            14 => match pick(&mut rng, &tasks) {
                Some(t) => {
                    let attrs = json!({"kind": kinds[rng.below(4)], "min": rng.below(5), "agent": format!("w{}", rng.below(7))});
                    desc = format!("update_task_attributes({t}, {attrs})");
                    e.update_task_attributes(t, attrs, now)
                }
                None => continue,
            },
            15 => {
                let qi = rng.below(queues.len());
                let changes = TaskQueueChanges {
                    friendly_name: rng.chance(20).then(|| format!("Q{}", rng.below(6))),
                    target_workers: rng.chance(50).then(|| exprs[rng.below(4)].to_string()),
                    task_order: rng
                        .chance(30)
                        .then(|| if rng.chance(50) { TaskOrder::Lifo } else { TaskOrder::Fifo }),
                    max_reserved_workers: rng.chance(50).then(|| 1 + rng.below(3) as u32),
                    wrap_up_limit: rng.chance(20).then(|| rng.below(40) as u32),
                    dispositions: rng.chance(10).then(Vec::new),
                };
                desc = format!("update_task_queue(Q{qi}, {changes:?})");
                e.update_task_queue(queues[qi], changes, now)
            }
            17 => {
                let configuration = if rng.chance(50) { config.clone() } else { other_config.clone() };
                let changes = WorkflowChanges {
                    friendly_name: None,
                    configuration: Some(configuration),
                    task_reservation_timeout: rng.chance(30).then(|| 1 + rng.below(6) as u32),
                    re_evaluate_tasks: rng.chance(50),
                };
                desc = format!("update_workflow({changes:?})");
                e.update_workflow(e.workflows[0].sid, changes, now)
            }
            18 => match pick(&mut rng, &workers) {
                Some(w) => {
                    desc = format!("delete_worker({w})");
                    e.delete_worker(w, now).map(|()| workers.retain(|&other| other != w))
                }
                None => continue,
            },
            19 => match pick(&mut rng, &tasks) {
                Some(t) => {
                    desc = format!("delete_task({t})");
                    e.delete_task(t, now)
                }
                None => continue,
            },
            20 => {
                // The last queue is named by the first configuration only.
                let last = *queues.last().expect("one queue at least");
                desc = format!("delete_task_queue({last})");
                e.delete_task_queue(last, now)
            }
            21 => match pick(&mut rng, &tasks) {
                Some(t) => {
                    let attributes = rng.chance(50).then(|| {
                        let outcome = ["Sale", "No sale"][rng.below(2)];
                        json!({"kind": kinds[rng.below(4)], "min": rng.below(5), "agent": format!("w{}", rng.below(7)),
                            "conversations": {"outcome": outcome}})
                    });
                    let priority = rng.chance(40).then(|| rng.below(4) as i64);
                    let status = match rng.below(4) {
                        0 => Some(TaskStatusChange::Canceled { reason: "c".into() }),
                        1 => Some(TaskStatusChange::Wrapping),
                        2 => Some(TaskStatusChange::Completed { reason: "done".into() }),
                        _ => None,
                    };
                    let changes = TaskChanges { attributes, priority, status };
                    desc = format!("update_task({t}, {changes:?})");
                    let before = e.export();
                    let result = e.update_task(t, changes, now);
                    if result.is_err() && e.export() != before {
                        return Err(format!("seed {seed} step {step}: a refused {desc} changed the engine"));
                    }
                    result
                }
                None => continue,
            },
            16 => {
                let accepted: Vec<Sid> = e
                    .reservations
                    .values()
                    .filter(|r| r.status == ReservationStatus::Accepted)
                    .map(|r| r.sid)
                    .collect();
                match pick(&mut rng, &accepted) {
                    Some(r) => {
                        desc = format!("unanswered({r})");
                        e.unanswered(r, now)
                    }
                    None => continue,
                }
            }
            22 | 23 => {
                let mut assigned: Vec<Sid> =
                    e.tasks.values().filter(|t| t.status == TaskStatus::Assigned).map(|t| t.sid).collect();
                assigned.sort();
                let Some(task) = pick(&mut rng, &assigned) else { continue };
                let to = if rng.chance(50) {
                    TransferTarget::Queue(queues[rng.below(queues.len())])
                } else {
                    match pick(&mut rng, &workers) {
                        Some(worker) => TransferTarget::Worker(worker),
                        None => continue,
                    }
                };
                let mode = if rng.chance(50) { TransferMode::Cold } else { TransferMode::Warm };
                let priority = rng.chance(30).then(|| rng.below(4) as i64);
                desc = format!("transfer({task}, {to:?}, {mode:?}, {priority:?})");
                e.transfer(NewTransfer { task, to, mode, priority }, now).map(|sid| tasks.push(sid))
            }
            24 => {
                let Some(worker) = pick(&mut rng, &workers) else { continue };
                let channel = ["voice", "sms"][rng.below(2)].to_owned();
                let attributes = json!({"direction": "outbound", "kind": "x"});
                desc = format!("create_assigned({worker}, {channel})");
                e.create_assigned(NewAssigned { worker, attributes, channel }, now).map(|sid| tasks.push(sid))
            }
            25 => {
                let new = NewTaskChannel {
                    friendly_name: "Email".into(),
                    unique_name: "email".into(),
                    channel_optimized_routing: rng.chance(50),
                    default_capacity: 1,
                };
                desc = "create_task_channel(email)".to_owned();
                e.create_task_channel(new, now).map(|_| channels.push("email"))
            }
            26 => {
                let Some(email) = e.task_channel_by_key("email").map(|channel| channel.sid) else { continue };
                desc = format!("delete_task_channel({email})");
                e.delete_task_channel(email, now).map(|()| {
                    channels.retain(|&channel| channel != "email");
                    tasks.retain(|task| e.task(*task).is_some());
                })
            }
            27 => {
                let order = if rng.chance(50) { TaskOrder::Lifo } else { TaskOrder::Fifo };
                let changes = WorkspaceChanges {
                    default_activity: rng.chance(50).then(|| acts[rng.below(acts.len())]),
                    timeout_activity: rng.chance(50).then(|| acts[rng.below(acts.len())]),
                    prioritize_queue_order: Some(order),
                    ..WorkspaceChanges::default()
                };
                desc = format!("update_workspace({changes:?})");
                e.update_workspace(changes, now)
            }
            _ => continue,
        };
        log.push(format!("{desc} @{now} -> {:?}", result.as_ref().err()));
        if result.is_ok() {
            carried_out.insert(desc.split('(').next().unwrap_or_default().to_owned());
        }
        check_invariants(&e, now, &format!("seed {seed} step {step} {desc}"))
            .map_err(|m| format!("{m}\n{}", log.join("\n")))?;
        // events monotonic
        let evs = e.take_events();
        for pair in evs.windows(2) {
            if pair[1].timestamp < pair[0].timestamp {
                return Err(format!(
                    "seed {seed} step {step}: event time goes back {:?} {} -> {:?} {}\n{}",
                    pair[0].event_type,
                    pair[0].timestamp,
                    pair[1].event_type,
                    pair[1].timestamp,
                    log.join("\n")
                ));
            }
        }
        events.extend(evs);
    }
    Ok(())
}

/// How many command sequences `cargo test` plays, and how long each is: enough to reach every
/// command in many states, small enough for a few seconds on a 2-core machine.
const SEQUENCES: u64 = 200;
const STEPS: usize = 300;

#[test]
fn random_command_sequences_keep_every_invariant() {
    let mut carried_out = BTreeSet::new();
    for seed in 1..=SEQUENCES {
        if let Err(failure) = run(seed, STEPS, &mut carried_out, &mut Vec::new()) {
            panic!("{failure}");
        }
    }
    // Every kind of command was not only tried but carried out somewhere.
    let expected = [
        "accept",
        "cancel",
        "complete",
        "create_assigned",
        "create_task",
        "create_task_channel",
        "create_worker",
        "delete_task",
        "delete_task_channel",
        "delete_task_queue",
        "delete_worker",
        "dispose",
        "reject",
        "set_worker_activity",
        "set_worker_channel",
        "transfer",
        "unanswered",
        "update_task",
        "update_task_attributes",
        "update_task_queue",
        "update_worker_attributes",
        "update_workflow",
        "update_workspace",
        "wrap_up",
    ];
    assert_eq!(carried_out.iter().map(String::as_str).collect::<Vec<_>>(), expected);
}
