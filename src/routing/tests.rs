//! Scenario tests of the engine on a virtual clock. Each test builds a small workspace, plays a
//! timeline, and snapshots the events it produced, rendered with readable names (`T1` for the
//! first task, workers and queues by name), so that a reviewer reads what happened.

use std::collections::HashMap;

use expect_test::{Expect, expect};
use serde_json::{Value, json};

use super::*;

/// A workspace on a virtual clock, with names for everything it creates.
struct Sim {
    engine: Engine,
    now: Millis,
    names: HashMap<Sid, String>,
    queues: HashMap<String, Sid>,
    n_tasks: usize,
}

fn seconds(t: f64) -> Millis {
    (t * 1000.0) as Millis
}

impl Sim {
    fn new() -> Sim {
        let engine = Engine::new("Test", 7, 0);
        let mut sim = Sim { engine, now: 0, names: HashMap::new(), queues: HashMap::new(), n_tasks: 0 };
        sim.engine.take_events();
        for activity in sim.engine.activities().to_vec() {
            sim.names.insert(activity.sid, activity.friendly_name.clone());
        }
        sim
    }

    fn activity(&self, name: &str) -> Sid {
        self.engine.activity_by_name(name).unwrap().sid
    }

    fn worker(&mut self, name: &str, attributes: Value, activity: &str) -> Sid {
        let activity = Some(self.activity(activity));
        let new = NewWorker { friendly_name: name.to_owned(), attributes, activity };
        let sid = self.engine.create_worker(new, self.now).unwrap();
        self.names.insert(sid, name.to_owned());
        sid
    }

    fn queue_with(
        &mut self,
        name: &str,
        target_workers: &str,
        task_order: TaskOrder,
        max_reserved_workers: u32,
    ) -> Sid {
        let new = NewTaskQueue {
            friendly_name: name.to_owned(),
            target_workers: target_workers.to_owned(),
            task_order,
            max_reserved_workers,
            wrap_up: WrapUpRules::default(),
        };
        let sid = self.engine.create_task_queue(new, self.now).unwrap();
        self.names.insert(sid, name.to_owned());
        self.queues.insert(name.to_owned(), sid);
        sid
    }

    fn queue(&mut self, name: &str, target_workers: &str) -> Sid {
        self.queue_with(name, target_workers, TaskOrder::Fifo, 1)
    }

    /// Replaces `{Queue Name}` with that queue's SID.
    fn with_queue_sids(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (name, sid) in &self.queues {
            text = text.replace(&format!("{{{name}}}"), &sid.to_string());
        }
        text
    }

    fn workflow(
        &mut self,
        name: &str,
        configuration: &str,
        reservation_timeout: u32,
    ) -> Result<Sid, RoutingError> {
        let new = NewWorkflow {
            friendly_name: name.to_owned(),
            configuration: self.with_queue_sids(configuration),
            task_reservation_timeout: reservation_timeout,
        };
        let sid = self.engine.create_workflow(new, self.now)?;
        self.names.insert(sid, name.to_owned());
        Ok(sid)
    }

    fn task_with(
        &mut self,
        attributes: Value,
        priority: Option<i64>,
        timeout: Option<u32>,
        channel: Option<&str>,
    ) -> Sid {
        let new =
            NewTask { attributes, priority, timeout, workflow: None, channel: channel.map(str::to_owned) };
        let sid = self.engine.create_task(new, self.now).unwrap();
        self.n_tasks += 1;
        self.names.insert(sid, format!("T{}", self.n_tasks));
        sid
    }

    fn task(&mut self, attributes: Value) -> Sid {
        self.task_with(attributes, None, None, None)
    }

    /// Transfers the named task to the queue or worker named `to`: the new task's name, or
    /// the refusal.
    fn transfer(
        &mut self,
        task: &str,
        to: &str,
        mode: TransferMode,
        priority: Option<i64>,
    ) -> Result<String, String> {
        let target = self.named(to);
        let to = if target.kind() == SidKind::TaskQueue {
            TransferTarget::Queue(target)
        } else {
            TransferTarget::Worker(target)
        };
        let new = NewTransfer { task: self.named(task), to, mode, priority };
        let sid = self.engine.transfer(new, self.now).map_err(|err| err.to_string())?;
        self.n_tasks += 1;
        let name = format!("T{}", self.n_tasks);
        self.names.insert(sid, name.clone());
        Ok(name)
    }

    /// Moves the clock to `t` seconds, firing every deadline on the way.
    fn at(&mut self, t: f64) {
        self.now = seconds(t);
        self.engine.advance(self.now);
    }

    fn named(&self, name: &str) -> Sid {
        *self.names.iter().find(|(_, n)| *n == name).unwrap_or_else(|| panic!("no {name}")).0
    }

    /// The pending reservation of the named worker.
    fn offer_to(&self, worker: &str) -> Sid {
        let worker = self.named(worker);
        let mut pending: Vec<&Reservation> = self
            .engine
            .reservations
            .values()
            .filter(|r| {
                r.status == ReservationStatus::Pending && self.engine.reservation_worker(r).sid == worker
            })
            .collect();
        pending.sort_by_key(|r| (r.created_at, r.sid));
        pending.first().unwrap_or_else(|| panic!("no pending reservation")).sid
    }

    fn accept(&mut self, worker: &str) {
        let reservation = self.offer_to(worker);
        self.engine.accept(reservation, self.now).unwrap();
    }

    fn reject(&mut self, worker: &str) {
        let reservation = self.offer_to(worker);
        self.engine.reject(reservation, None, self.now).unwrap();
    }

    fn complete(&mut self, task: &str) {
        self.engine.complete(self.named(task), "done", self.now).unwrap();
    }

    fn set_activity(&mut self, worker: &str, activity: &str) {
        let (worker, activity) = (self.named(worker), self.activity(activity));
        self.engine.set_worker_activity(worker, activity, false, self.now).unwrap();
    }

    fn name(&self, sid: Sid) -> String {
        self.names.get(&sid).cloned().unwrap_or_else(|| sid.to_string())
    }

    /// The events since the last call, one line each: time, type, then the resources involved.
    fn events(&mut self) -> String {
        let mut lines = Vec::new();
        for event in self.engine.take_events() {
            let mut line = format!("t={} {}", event.timestamp as f64 / 1000.0, event.event_type.as_str());
            let parts = [
                ("task", event.task),
                ("worker", event.worker),
                ("queue", event.queue),
                ("activity", event.activity),
            ];
            for (label, sid) in parts {
                if let Some(sid) = sid {
                    line.push_str(&format!(" {label}={}", self.name(sid)));
                }
            }
            if let Some(reason) = &event.reason {
                line.push_str(&format!(" reason={reason:?}"));
            }
            if let Some(outcome) = &event.outcome {
                line.push_str(&format!(" outcome={outcome:?}"));
            }
            lines.push(line);
        }
        lines.join("\n")
    }

    fn check(&mut self, expected: Expect) {
        expected.assert_eq(&self.events());
    }

    fn status(&self, task: &str) -> &'static str {
        self.engine.task(self.named(task)).unwrap().status.as_str()
    }
}

/// A Sales queue (skill `Sales`) and a workflow whose one filter has one target with `fields`.
fn sales_with_target(fields: &str) -> Sim {
    let mut sim = Sim::new();
    sim.queue("Sales", r#"routing.skills HAS "Sales""#);
    let configuration = format!(
        r#"{{"task_routing": {{"filters": [{{"expression": "1==1", "targets": [{{"queue": "{{Sales}}", {fields}}}]}}]}}}}"#
    );
    sim.workflow("One target", &configuration, 30).unwrap();
    sim
}

/// The onboarding guide's workspace: Sales and Support queues per skill, Everyone, and the
/// "Sales and Support Workflow" (20 s reservation timeout).
fn onboarding() -> Sim {
    let mut sim = Sim::new();
    sim.queue("Everyone", "1==1");
    sim.queue("Sales", r#"routing.skills HAS "Sales""#);
    sim.queue("Support", r#"routing.skills HAS "Support""#);
    sim.workflow(
        "Sales and Support Workflow",
        r#"{"task_routing": {"filters": [
            {"filter_friendly_name": "Send to Sales", "expression": "\"Sales\" IN task.skillsNeeded", "targets": [{"queue": "{Sales}"}]},
            {"filter_friendly_name": "Send to Support", "expression": "\"Support\" IN task.skillsNeeded", "targets": [{"queue": "{Support}"}]}
        ], "default_filter": {"queue": "{Everyone}"}}}"#,
        20,
    )
    .unwrap();
    sim.events();
    sim
}

#[test]
fn onboarding_guide_sales_call_is_offered_to_the_sales_agent_and_completed() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"], "levels": {"Sales": 3}}}), "Available");
    sim.worker("bob", json!({"routing": {"skills": ["Support"]}}), "Available");
    sim.events();

    sim.at(1.0);
    sim.task(json!({"skillsNeeded": ["Sales"], "channel": "voice"}));
    sim.at(4.0);
    sim.accept("alice");
    sim.at(60.0);
    sim.complete("T1");

    sim.check(expect![[r#"
        t=1 workflow.entered task=T1
        t=1 task-queue.entered task=T1 queue=Sales
        t=1 task.created task=T1
        t=1 workflow.target-matched task=T1 queue=Sales
        t=1 reservation.created task=T1 worker=alice queue=Sales
        t=4 reservation.accepted task=T1 worker=alice queue=Sales
        t=4 task.updated task=T1
        t=60 task.completed task=T1 reason="done"
        t=60 reservation.completed task=T1 worker=alice queue=Sales"#]]);
    assert_eq!(sim.status("T1"), "completed");
}

#[test]
fn a_task_no_filter_matches_goes_to_the_default_filter() {
    let mut sim = onboarding();
    sim.worker("carol", json!({}), "Available");
    sim.events();

    sim.task(json!({"skillsNeeded": ["Billing"]}));

    sim.check(expect![[r#"
        t=0 workflow.entered task=T1
        t=0 task-queue.entered task=T1 queue=Everyone
        t=0 task.created task=T1
        t=0 reservation.created task=T1 worker=carol queue=Everyone"#]]);
}

#[test]
fn documented_timeout_example_deadlines_add_up_on_task_age() {
    // Three targets of 10 s, reservation timeout 5 s; one worker, in Q1 only, available at t=3.
    let mut sim = Sim::new();
    sim.queue("Q1", "q1 == true");
    sim.queue("Q2", "q2 == true");
    sim.queue("Q3", "q3 == true");
    sim.workflow(
        "Timeouts",
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [
            {"queue": "{Q1}", "timeout": 10}, {"queue": "{Q2}", "timeout": 10}, {"queue": "{Q3}", "timeout": "10"}]}]}}"#,
        5,
    )
    .unwrap();
    sim.worker("ann", json!({"q1": true}), "Offline");
    sim.events();

    sim.task(json!({}));
    sim.at(3.0);
    sim.set_activity("ann", "Available");
    sim.at(40.0);

    // The reservation made at t=3 times out at t=8 (ann goes to the timeout activity, Offline);
    // the task moves to Q2 at t=10 and Q2's deadline is t=20, not t=18; Q3's is t=30.
    sim.check(expect![[r#"
        t=0 workflow.entered task=T1
        t=0 task-queue.entered task=T1 queue=Q1
        t=0 task.created task=T1
        t=0 workflow.target-matched task=T1 queue=Q1
        t=3 worker.activity.update worker=ann activity=Available
        t=3 reservation.created task=T1 worker=ann queue=Q1
        t=8 reservation.timeout task=T1 worker=ann queue=Q1
        t=8 worker.activity.update worker=ann activity=Offline
        t=10 task-queue.timeout task=T1 queue=Q1
        t=10 task-queue.moved task=T1 queue=Q1
        t=10 task-queue.entered task=T1 queue=Q2
        t=10 workflow.target-matched task=T1 queue=Q2
        t=20 task-queue.timeout task=T1 queue=Q2
        t=20 task-queue.moved task=T1 queue=Q2
        t=20 task-queue.entered task=T1 queue=Q3
        t=20 workflow.target-matched task=T1 queue=Q3
        t=30 task-queue.timeout task=T1 queue=Q3
        t=30 workflow.timeout task=T1
        t=30 task.canceled task=T1 reason="Workflow Timeout""#]]);
}

#[test]
fn a_step_that_times_out_during_an_offer_moves_on_when_the_offer_ends() {
    let mut sim = Sim::new();
    sim.queue("Q1", "1==1");
    sim.queue("Q2", "1==1");
    sim.workflow(
        "Two steps",
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "{Q1}", "timeout": 10}, {"queue": "{Q2}"}]}]}}"#,
        30,
    )
    .unwrap();
    sim.worker("ann", json!({}), "Available");
    sim.worker("bob", json!({}), "Offline");
    sim.task(json!({}));
    sim.events();

    sim.at(12.0);
    sim.set_activity("bob", "Available");
    sim.reject("ann");

    // The offer to ann outlived Q1's deadline (t=10): the task stays reserved to her, and
    // moves to Q2 only when she rejects; bob then gets it there.
    sim.check(expect![[r#"
        t=12 worker.activity.update worker=bob activity=Available
        t=12 reservation.rejected task=T1 worker=ann queue=Q1
        t=12 task-queue.timeout task=T1 queue=Q1
        t=12 task-queue.moved task=T1 queue=Q1
        t=12 task-queue.entered task=T1 queue=Q2
        t=12 workflow.target-matched task=T1 queue=Q2
        t=12 reservation.created task=T1 worker=bob queue=Q2"#]]);
}

#[test]
fn multi_reservation_offers_several_workers_and_rescinds_the_rest_on_accept() {
    let mut sim = Sim::new();
    sim.queue_with("Wide", "1==1", TaskOrder::Fifo, 3);
    sim.workflow("W", r#"{"task_routing": {"default_filter": {"queue": "{Wide}"}}}"#, 30).unwrap();
    for name in ["ann", "bob", "cat", "dan"] {
        sim.worker(name, json!({}), "Available");
    }
    sim.events();

    sim.task(json!({}));
    sim.at(2.0);
    sim.accept("bob");
    let rescinded = sim.engine.accept(sim.engine.task(sim.named("T1")).unwrap().reservations[0], sim.now);

    sim.check(expect![[r#"
        t=0 workflow.entered task=T1
        t=0 task-queue.entered task=T1 queue=Wide
        t=0 task.created task=T1
        t=0 reservation.created task=T1 worker=ann queue=Wide
        t=0 reservation.created task=T1 worker=bob queue=Wide
        t=0 reservation.created task=T1 worker=cat queue=Wide
        t=2 reservation.accepted task=T1 worker=bob queue=Wide
        t=2 reservation.rescinded task=T1 worker=ann queue=Wide
        t=2 reservation.rescinded task=T1 worker=cat queue=Wide
        t=2 task.updated task=T1"#]]);
    assert!(
        matches!(rescinded, Err(RoutingError::ReservationNotPending { status: "rescinded", .. })),
        "{rescinded:?}"
    );
}

/// Three tasks wait in one queue while its only worker is offline; it then becomes available
/// and takes one task at a time. Returns the order in which the tasks were reserved.
fn serving_order(task_order: TaskOrder, tasks: &[(f64, i64)]) -> Vec<String> {
    let mut sim = Sim::new();
    sim.queue_with("Q", "1==1", task_order, 1);
    sim.workflow("W", r#"{"task_routing": {"default_filter": {"queue": "{Q}"}}}"#, 30).unwrap();
    sim.worker("ann", json!({}), "Offline");
    for &(t, priority) in tasks {
        sim.at(t);
        sim.task_with(json!({}), Some(priority), None, None);
    }
    sim.at(10.0);
    sim.set_activity("ann", "Available");
    let mut order = Vec::new();
    for _ in tasks {
        let reservation = sim.offer_to("ann");
        let task = sim.engine.reservation(reservation).unwrap().task;
        order.push(sim.name(task));
        sim.accept("ann");
        sim.complete(&sim.name(task));
    }
    order
}

#[test]
fn fifo_serves_priority_first_then_oldest_and_lifo_newest_ignoring_priority() {
    let tasks = [(1.0, 0), (2.0, 10), (3.0, 0)];
    assert_eq!(serving_order(TaskOrder::Fifo, &tasks), ["T2", "T1", "T3"]);
    assert_eq!(serving_order(TaskOrder::Lifo, &tasks), ["T3", "T2", "T1"]);
}

#[test]
fn the_longest_idle_worker_is_reserved_first() {
    let mut sim = Sim::new();
    sim.queue("Q", "1==1");
    sim.workflow("W", r#"{"task_routing": {"default_filter": {"queue": "{Q}"}}}"#, 30).unwrap();
    sim.worker("ann", json!({}), "Offline");
    sim.worker("bob", json!({}), "Offline");
    sim.at(1.0);
    sim.set_activity("bob", "Available");
    sim.at(2.0);
    sim.set_activity("ann", "Available");
    sim.events();

    sim.task(json!({}));
    sim.accept("bob");
    sim.complete("T1");
    sim.at(3.0);
    sim.task(json!({}));
    sim.accept("ann");
    sim.complete("T2");
    sim.at(4.0);
    sim.task(json!({}));

    // bob became available first; then ann, whose last assignment is older than bob's.
    let reserved: Vec<String> =
        sim.events().lines().filter(|l| l.contains("reservation.created")).map(str::to_owned).collect();
    assert_eq!(
        reserved,
        [
            "t=2 reservation.created task=T1 worker=bob queue=Q",
            "t=3 reservation.created task=T2 worker=ann queue=Q",
            "t=4 reservation.created task=T3 worker=bob queue=Q",
        ]
    );
}

#[test]
fn order_by_level_desc_picks_the_highest_level_and_missing_levels_go_last() {
    let mut sim = sales_with_target(r#""order_by": "worker.routing.levels.Sales DESC""#);
    sim.worker("nolevel", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.worker("one", json!({"routing": {"skills": ["Sales"], "levels": {"Sales": 1}}}), "Available");
    sim.worker("five", json!({"routing": {"skills": ["Sales"], "levels": {"Sales": 5}}}), "Available");
    sim.worker("text", json!({"routing": {"skills": ["Sales"], "levels": {"Sales": "9"}}}), "Available");
    sim.worker("three", json!({"routing": {"skills": ["Sales"], "levels": {"Sales": 3}}}), "Available");
    sim.events();

    let mut reserved = Vec::new();
    for _ in 0..5 {
        let task = sim.task(json!({}));
        let reservation = sim.engine.pending_reservations(sim.engine.task(task).unwrap())[0];
        reserved.push(sim.engine.reservation_worker(reservation).friendly_name.clone());
    }

    // Non-integer levels count as missing; workers without a level keep longest-idle order.
    assert_eq!(reserved, ["five", "three", "one", "nolevel", "text"]);
}

#[test]
fn skip_if_skips_a_step_with_no_available_workers() {
    let mut sim = Sim::new();
    sim.queue("Experts", "expert == true");
    sim.queue("Everyone", "1==1");
    sim.workflow(
        "Skip",
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [
            {"queue": "{Experts}", "timeout": 300, "skip_if": "workers.available == 0"},
            {"queue": "{Everyone}"}]}]}}"#,
        30,
    )
    .unwrap();
    sim.worker("expert", json!({"expert": true}), "Offline");
    sim.worker("generalist", json!({}), "Available");
    sim.events();

    sim.task(json!({}));

    sim.check(expect![[r#"
        t=0 workflow.entered task=T1
        t=0 task-queue.entered task=T1 queue=Experts
        t=0 task.created task=T1
        t=0 workflow.target-matched task=T1 queue=Experts
        t=0 task-queue.moved task=T1 queue=Experts
        t=0 task-queue.entered task=T1 queue=Everyone
        t=0 workflow.target-matched task=T1 queue=Everyone
        t=0 reservation.created task=T1 worker=generalist queue=Everyone"#]]);
}

#[test]
fn default_filter_takes_only_tasks_that_never_timed_out_of_a_filter() {
    let mut sim = Sim::new();
    sim.queue("Sales", r#"routing.skills HAS "Sales""#);
    sim.queue("Everyone", "1==1");
    sim.workflow(
        "W",
        r#"{"task_routing": {"filters": [{"expression": "type == 'sales'", "targets": [{"queue": "{Sales}", "timeout": 30}]}],
            "default_filter": {"queue": "{Everyone}"}}}"#,
        30,
    )
    .unwrap();
    sim.events();

    sim.task(json!({"type": "sales"}));
    sim.task(json!({"type": "other"}));
    sim.at(31.0);

    sim.check(expect![[r#"
        t=0 workflow.entered task=T1
        t=0 task-queue.entered task=T1 queue=Sales
        t=0 task.created task=T1
        t=0 workflow.target-matched task=T1 queue=Sales
        t=0 workflow.entered task=T2
        t=0 task-queue.entered task=T2 queue=Everyone
        t=0 task.created task=T2
        t=30 task-queue.timeout task=T1 queue=Sales
        t=30 workflow.timeout task=T1
        t=30 task.canceled task=T1 reason="Workflow Timeout""#]]);
    assert_eq!(sim.status("T2"), "pending");
}

#[test]
fn a_later_matching_filter_takes_over_when_the_first_times_out() {
    let mut sim = Sim::new();
    sim.queue("Spanish", "spanish == true");
    sim.queue("Everyone", "1==1");
    sim.workflow(
        "W",
        r#"{"task_routing": {"filters": [
            {"expression": "language == 'es'", "targets": [{"queue": "{Spanish}", "timeout": 20, "priority": 5}]},
            {"expression": "1==1", "targets": [{"queue": "{Everyone}", "priority": 9}]}]}}"#,
        30,
    )
    .unwrap();
    sim.events();

    let task = sim.task(json!({"language": "es"}));
    assert_eq!(sim.engine.task(task).unwrap().priority, 5);
    sim.at(25.0);

    sim.check(expect![[r#"
        t=0 workflow.entered task=T1
        t=0 task-queue.entered task=T1 queue=Spanish
        t=0 task.created task=T1
        t=0 workflow.target-matched task=T1 queue=Spanish
        t=20 task-queue.timeout task=T1 queue=Spanish
        t=20 task-queue.moved task=T1 queue=Spanish
        t=20 task-queue.entered task=T1 queue=Everyone
        t=20 workflow.target-matched task=T1 queue=Everyone"#]]);
    assert_eq!(sim.engine.task(task).unwrap().priority, 9, "the target's priority overrides");
}

#[test]
fn task_ttl_cancels_an_unassigned_task() {
    let mut sim = onboarding();
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, Some(45), None);
    sim.events();

    assert_eq!(sim.engine.next_deadline(), Some(seconds(45.0)));
    sim.at(100.0);

    sim.check(expect![[r#"t=45 task.canceled task=T1 reason="Task TTL Exceeded""#]]);
    assert_eq!(sim.engine.next_deadline(), Some(seconds(45.0) + 5 * 60 * 1000), "the purge timer");
    sim.at(1000.0);
    assert!(sim.engine.task(sim.named("T1")).is_none(), "purged five minutes after canceling");
}

#[test]
fn a_worker_who_rejects_is_not_offered_the_same_task_again() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.events();

    sim.reject("alice");
    sim.worker("amos", json!({"routing": {"skills": ["Sales"]}}), "Available");

    sim.check(expect![[r#"
        t=0 reservation.rejected task=T1 worker=alice queue=Sales
        t=0 worker.created worker=amos activity=Available
        t=0 reservation.created task=T1 worker=amos queue=Sales"#]]);
}

#[test]
fn reject_can_move_the_worker_to_another_activity() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.events();

    let reservation = sim.offer_to("alice");
    sim.engine.reject(reservation, Some(sim.activity("Break")), sim.now).unwrap();

    sim.check(expect![[r#"
        t=0 reservation.rejected task=T1 worker=alice queue=Sales
        t=0 worker.activity.update worker=alice activity=Break"#]]);
}

#[test]
fn channel_capacity_counts_pending_reservations_per_channel() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    for _ in 0..4 {
        sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, None, Some("sms"));
    }
    for _ in 0..2 {
        sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, None, Some("voice"));
    }

    let statuses: Vec<&str> = (1..=6).map(|n| sim.status(&format!("T{n}"))).collect();
    assert_eq!(statuses, ["reserved", "reserved", "reserved", "pending", "reserved", "pending"]);
    let alice = sim.engine.worker_by_name("alice").unwrap();
    assert_eq!(sim.engine.worker_channel(alice, "sms").unwrap().busy, 3);

    sim.accept("alice");
    sim.complete("T1");
    assert_eq!(sim.status("T4"), "reserved", "a freed SMS slot takes the next SMS task");
    assert_eq!(sim.status("T6"), "pending", "voice stays full");
}

#[test]
fn a_worker_in_several_queues_gets_the_highest_priority_then_oldest_task() {
    let mut sim = onboarding();
    sim.worker("both", json!({"routing": {"skills": ["Sales", "Support"]}}), "Offline");
    sim.at(1.0);
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), Some(1), None, None);
    sim.at(2.0);
    sim.task_with(json!({"skillsNeeded": ["Support"]}), Some(1), None, None);
    sim.at(3.0);
    sim.task_with(json!({"skillsNeeded": ["Support"]}), Some(7), None, None);
    sim.at(4.0);
    sim.set_activity("both", "Available");

    let mut order = Vec::new();
    for _ in 0..3 {
        let task = sim.engine.reservation(sim.offer_to("both")).unwrap().task;
        order.push(sim.name(task));
        sim.accept("both");
        sim.complete(&sim.name(task));
    }
    assert_eq!(order, ["T3", "T1", "T2"]);
}

#[test]
fn known_worker_routing_reserves_only_the_named_worker() {
    let mut sim = Sim::new();
    sim.queue("Q", "1==1");
    sim.workflow(
        "Known",
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [
            {"queue": "{Q}", "known_worker_friendly_name": "task.agent", "timeout": 60}, {"queue": "{Q}"}]}]}}"#,
        30,
    )
    .unwrap();
    sim.worker("ann", json!({}), "Available");
    sim.worker("bob", json!({}), "Offline");
    sim.events();

    sim.task(json!({"agent": "BOB"}));
    sim.at(5.0);
    sim.set_activity("bob", "Available");

    sim.check(expect![[r#"
        t=0 workflow.entered task=T1
        t=0 task-queue.entered task=T1 queue=Q
        t=0 task.created task=T1
        t=0 workflow.target-matched task=T1 queue=Q
        t=5 worker.activity.update worker=bob activity=Available
        t=5 reservation.created task=T1 worker=bob queue=Q"#]]);
}

#[test]
fn target_expressions_see_task_and_worker_levels() {
    let mut sim = sales_with_target(r#""expression": "worker.routing.levels.Sales >= task.minimum_level""#);
    sim.worker("junior", json!({"routing": {"skills": ["Sales"], "levels": {"Sales": 1}}}), "Available");
    sim.worker("senior", json!({"routing": {"skills": ["Sales"], "levels": {"Sales": 4}}}), "Available");
    sim.events();

    sim.task(json!({"minimum_level": 3}));

    let created =
        sim.events().lines().filter(|l| l.contains("reservation.created")).collect::<Vec<_>>().join("\n");
    assert_eq!(created, "t=0 reservation.created task=T1 worker=senior queue=Sales");
}

#[test]
fn reservation_timeout_moves_the_worker_to_the_timeout_activity_and_tries_the_next() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.worker("amos", json!({"routing": {"skills": ["Sales"]}}), "Offline");
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.at(1.0);
    sim.set_activity("amos", "Available");
    sim.events();

    sim.at(25.0);

    sim.check(expect![[r#"
        t=20 reservation.timeout task=T1 worker=alice queue=Sales
        t=20 worker.activity.update worker=alice activity=Offline
        t=20 reservation.created task=T1 worker=amos queue=Sales"#]]);
}

#[test]
fn canceling_a_reserved_task_cancels_its_reservation_and_frees_the_worker() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    let first = sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.events();

    sim.engine.cancel(first, "caller hung up", sim.now).unwrap();

    sim.check(expect![[r#"
        t=0 reservation.canceled task=T1 worker=alice queue=Sales
        t=0 task.canceled task=T1 reason="caller hung up"
        t=0 reservation.created task=T2 worker=alice queue=Sales"#]]);
    let err = sim.engine.complete(first, "x", sim.now).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("task {first} is canceled; only an assigned or wrapping task can be completed")
    );
}

#[test]
fn wrap_up_keeps_capacity_until_complete() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.accept("alice");
    sim.events();

    sim.engine.wrap_up(sim.named("T1"), sim.now).unwrap();
    assert_eq!(sim.status("T2"), "pending");
    sim.complete("T1");

    sim.check(expect![[r#"
        t=0 task.wrapup task=T1
        t=0 reservation.wrapup task=T1 worker=alice queue=Sales
        t=0 task.completed task=T1 reason="done"
        t=0 reservation.completed task=T1 worker=alice queue=Sales
        t=0 reservation.created task=T2 worker=alice queue=Sales"#]]);
}

#[test]
fn the_queues_wrap_up_limit_completes_a_task_the_agent_left_wrapping_and_frees_them() {
    let mut sim = onboarding();
    let sales = sim.engine.queue_by_name("Sales").unwrap().sid;
    let rules = TaskQueueChanges {
        wrap_up_limit: Some(30),
        dispositions: Some(vec!["Sale".into(), "No sale".into()]),
        ..TaskQueueChanges::default()
    };
    sim.engine.update_task_queue(sales, rules, sim.now).unwrap();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.accept("alice");
    sim.at(10.0);
    sim.engine.wrap_up(sim.named("T1"), sim.now).unwrap();
    sim.events();

    sim.at(39.9);
    assert_eq!(sim.status("T1"), "wrapping", "inside the limit the agent still writes notes");
    sim.at(40.0);
    sim.accept("alice");
    // Completed by the agent in time, with a disposition: nothing happens at the limit.
    sim.at(50.0);
    sim.engine.wrap_up(sim.named("T2"), sim.now).unwrap();
    let done = TaskChanges {
        attributes: Some(json!({"skillsNeeded": ["Sales"], "conversations": {"outcome": "Sale"}})),
        status: Some(TaskStatusChange::Completed { reason: "Sale".into() }),
        ..TaskChanges::default()
    };
    sim.engine.update_task(sim.named("T2"), done, sim.now).unwrap();
    sim.at(100.0);

    sim.check(expect![[r#"
        t=40 task.completed task=T1 reason="wrap-up time limit reached"
        t=40 reservation.completed task=T1 worker=alice queue=Sales
        t=40 reservation.created task=T2 worker=alice queue=Sales
        t=40 reservation.accepted task=T2 worker=alice queue=Sales
        t=40 task.updated task=T2
        t=50 task.wrapup task=T2
        t=50 reservation.wrapup task=T2 worker=alice queue=Sales
        t=50 task.updated task=T2
        t=50 task.completed task=T2 reason="Sale" outcome="Sale"
        t=50 reservation.completed task=T2 worker=alice queue=Sales"#]]);
}

#[test]
fn wrap_up_rules_are_checked_whole_before_anything_changes() {
    let mut sim = onboarding();
    let sales = sim.engine.queue_by_name("Sales").unwrap().sid;
    let check = |sim: &mut Sim, limit: Option<u32>, codes: &[&str], expected: &str| {
        let changes = TaskQueueChanges {
            friendly_name: Some("Renamed".into()),
            wrap_up_limit: limit,
            dispositions: Some(codes.iter().map(|code| code.to_string()).collect()),
            ..TaskQueueChanges::default()
        };
        let answer = sim.engine.update_task_queue(sales, changes, sim.now).map_err(|err| err.to_string());
        assert_eq!(answer.err().unwrap_or_default(), expected, "{limit:?} {codes:?}");
    };
    check(&mut sim, Some(86_401), &[], "wrap_up_limit: must be between 0 (no limit) and 86,400 seconds");
    check(&mut sim, None, &["Sale", "Sale"], r#"disposition_codes: "Sale" is listed twice"#);
    check(
        &mut sim,
        None,
        &["Sale,Callback"],
        r#"disposition_codes: "Sale,Callback": a code is 1 to 64 characters, without a comma or spaces around it"#,
    );
    check(
        &mut sim,
        None,
        &[" Sale"],
        r#"disposition_codes: " Sale": a code is 1 to 64 characters, without a comma or spaces around it"#,
    );
    assert_eq!(sim.engine.queue(sales).unwrap().friendly_name, "Sales", "a refused change changes nothing");
    check(&mut sim, Some(0), &["Sale", "No sale"], "");
    let queue = sim.engine.queue(sales).unwrap();
    assert_eq!(
        queue.wrap_up,
        WrapUpRules { limit_seconds: 0, dispositions: vec!["Sale".into(), "No sale".into()] }
    );
}

/// Sales (alice, carol) and Support (bob): alice has the Sales call T1 in hand.
fn alice_on_a_sales_call() -> Sim {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.worker("bob", json!({"routing": {"skills": ["Support"]}}), "Available");
    sim.worker("carol", json!({"routing": {"skills": ["Sales"]}}), "Offline");
    sim.at(1.0);
    sim.task(json!({"skillsNeeded": ["Sales"], "from": "+15550001111"}));
    sim.at(5.0);
    sim.accept("alice");
    sim.events();
    sim
}

#[test]
fn a_cold_transfer_to_a_queue_is_a_new_task_for_the_call_that_keeps_its_place_and_attributes() {
    let mut sim = alice_on_a_sales_call();
    sim.at(60.0);
    let support = sim.engine.queue_by_name("Support").unwrap().sid;
    sim.names.insert(support, "Support".into());
    // An earlier Support caller waits: the transferred call, older, goes first.
    sim.set_activity("bob", "Offline");
    sim.task(json!({"skillsNeeded": ["Support"]}));
    sim.events();
    assert_eq!(
        sim.transfer("T1", "Support", TransferMode::Cold, Some(-1)).unwrap_err(),
        "priority: a transfer keeps or raises the priority (0), not -1"
    );
    assert_eq!(sim.transfer("T1", "Support", TransferMode::Cold, None).unwrap(), "T3");
    assert_eq!(
        sim.transfer("T1", "Support", TransferMode::Cold, None).unwrap_err(),
        format!("task {} is being transferred already (task {})", sim.named("T1"), sim.named("T3"))
    );
    sim.engine.wrap_up(sim.named("T1"), sim.now).unwrap();
    sim.at(70.0);
    sim.set_activity("bob", "Available");
    sim.accept("bob");

    sim.check(expect![[r#"
        t=60 task.updated task=T1
        t=60 task.transfer-initiated task=T1
        t=60 task-queue.entered task=T3 queue=Support
        t=60 task.created task=T3
        t=60 task.wrapup task=T1
        t=60 reservation.wrapup task=T1 worker=alice queue=Sales
        t=70 worker.activity.update worker=bob activity=Available
        t=70 reservation.created task=T3 worker=bob queue=Support
        t=70 reservation.accepted task=T3 worker=bob queue=Support
        t=70 task.updated task=T3
        t=70 task.transfer-completed task=T1 worker=bob"#]]);
    let (first, second) =
        (sim.engine.task(sim.named("T1")).unwrap(), sim.engine.task(sim.named("T3")).unwrap());
    assert_eq!(second.virtual_start, first.virtual_start, "the time already waited counts");
    assert_eq!(
        first.attributes["conversations"],
        json!({"conversation_id": first.sid.to_string(), "followed_by": "Transfer to Queue"})
    );
    assert_eq!(
        second.attributes["conversations"],
        json!({"conversation_id": first.sid.to_string(), "preceded_by": "Transfer to Queue"})
    );
    assert_eq!(second.attributes["from"], "+15550001111", "the caller's attributes are kept");
    assert_eq!(
        (second.attributes["transferTargetType"].as_str(), second.attributes["transferMode"].as_str()),
        (Some("queue"), Some("COLD"))
    );
    assert_eq!(sim.status("T2"), "pending", "the later caller waits behind the transferred one");
}

#[test]
fn a_warm_transfer_to_an_agent_goes_to_them_alone_and_comes_back_when_they_reject_it() {
    let mut sim = alice_on_a_sales_call();
    sim.at(30.0);
    assert_eq!(
        sim.transfer("T1", "alice", TransferMode::Warm, None).unwrap_err(),
        "alice cannot take it now: this agent is the one transferring it"
    );
    assert_eq!(
        sim.transfer("T1", "carol", TransferMode::Warm, None).unwrap_err(),
        r#"carol cannot take it now: activity "Offline" is not an available activity"#
    );
    assert_eq!(sim.transfer("T1", "bob", TransferMode::Warm, Some(5)).unwrap(), "T2");
    sim.set_activity("carol", "Available");
    sim.at(31.0);
    sim.reject("bob");
    // Canceled: alice keeps the call; carol, a Sales agent now available, is not offered it.
    assert_eq!((sim.status("T1"), sim.status("T2")), ("assigned", "canceled"));
    // A cold transfer to bob that he does not answer waits in alice's queue for anyone there.
    sim.at(40.0);
    assert_eq!(sim.transfer("T1", "bob", TransferMode::Cold, None).unwrap(), "T3");
    sim.engine.wrap_up(sim.named("T1"), sim.now).unwrap();
    sim.at(60.0);
    sim.accept("carol");

    sim.check(expect![[r#"
        t=30 task.updated task=T1
        t=30 task.transfer-initiated task=T1
        t=30 task-queue.entered task=T2 queue=Sales
        t=30 task.created task=T2
        t=30 reservation.created task=T2 worker=bob queue=Sales
        t=30 worker.activity.update worker=carol activity=Available
        t=31 reservation.rejected task=T2 worker=bob queue=Sales
        t=31 task.transfer-failed task=T1
        t=31 task.canceled task=T2 reason="transfer not taken"
        t=40 task.updated task=T1
        t=40 task.transfer-initiated task=T1
        t=40 task-queue.entered task=T3 queue=Sales
        t=40 task.created task=T3
        t=40 reservation.created task=T3 worker=bob queue=Sales
        t=40 task.wrapup task=T1
        t=40 reservation.wrapup task=T1 worker=alice queue=Sales
        t=60 reservation.timeout task=T3 worker=bob queue=Sales
        t=60 task.transfer-attempt-failed task=T1
        t=60 worker.activity.update worker=bob activity=Offline
        t=60 reservation.created task=T3 worker=carol queue=Sales
        t=60 reservation.accepted task=T3 worker=carol queue=Sales
        t=60 task.updated task=T3
        t=60 task.transfer-completed task=T1 worker=carol"#]]);
    assert_eq!(sim.engine.task(sim.named("T2")).unwrap().reason.as_deref(), Some("transfer not taken"));
    assert_eq!(sim.engine.task(sim.named("T3")).unwrap().priority, 0, "kept");
}

#[test]
fn an_agent_starts_a_task_of_their_own_assigned_to_them_at_once() {
    let mut sim = alice_on_a_sales_call();
    let (alice, bob) = (sim.named("alice"), sim.named("bob"));
    // The Sales call is on the default channel.
    let outbound = |worker| NewAssigned {
        worker,
        attributes: json!({"direction": "outbound"}),
        channel: "default".into(),
    };
    let busy = sim.engine.create_assigned(outbound(alice), sim.now).unwrap_err().to_string();
    assert_eq!(busy, "alice cannot take it now: default capacity is full (1 of 1, pending offers included)");
    let sid = sim.engine.create_assigned(outbound(bob), sim.now).unwrap();
    sim.names.insert(sid, "T2".into());
    sim.check(expect![[r#"
        t=5 task-queue.entered task=T2 queue=Everyone
        t=5 task.created task=T2
        t=5 reservation.created task=T2 worker=bob queue=Everyone
        t=5 reservation.accepted task=T2 worker=bob queue=Everyone
        t=5 task.updated task=T2"#]]);
    assert_eq!(sim.status("T2"), "assigned");
}

#[test]
fn a_task_is_canceled_after_a_thousand_assignment_rounds() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    let task = sim.task(json!({"skillsNeeded": ["Sales"]}));
    let available = sim.activity("Available");
    let alice = sim.named("alice");
    for round in 1..=1000 {
        sim.at(f64::from(round) * 21.0);
        sim.engine.set_worker_activity(alice, available, false, sim.now).unwrap();
    }
    sim.events();
    assert_eq!(sim.engine.task(task).unwrap().assignment_count, 1000);

    sim.at(1001.0 * 21.0);
    sim.engine.set_worker_activity(alice, available, false, sim.now).unwrap();

    assert_eq!(sim.engine.task(task).unwrap().reason.as_deref(), Some("Max assignment count exceeded"));
}

/// The message for a workflow configuration that is refused.
fn check_workflow_error(configuration: &str, expected: Expect) {
    let mut sim = Sim::new();
    sim.queue("Sales", "1==1");
    let err = sim.workflow("W", configuration, 30).unwrap_err();
    expected.assert_eq(&err.to_string());
}

#[test]
fn workflow_mistakes_are_refused_with_filter_target_and_column() {
    check_workflow_error(
        "{",
        expect![
            "workflow configuration, configuration: not valid JSON: EOF while parsing an object at line 1 column 1"
        ],
    );
    check_workflow_error(
        r#"{"task_routing": {"filters": [{"filter_friendly_name": "Send to Sales", "expression": "\"Sales\" IN task.skills-needed", "targets": [{"queue": "{Sales}"}]}]}}"#,
        expect![[r#"
            workflow configuration, filter 1 ("Send to Sales"): expression: column 23: hyphens are not allowed in attribute names: `skills-needed` (TaskRouter cannot reference such a key; rename it, e.g. `skills_needed`)
            "Sales" IN task.skills-needed
                                  ^"#]],
    );
    check_workflow_error(
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "{Sales}", "timeout": 10}, {"expression": "level >= 3"}]}]}}"#,
        expect![[r#"
            workflow configuration, filter 1, target 2: expression: column 1: `level` names neither the task nor the worker: in a target expression write `task.level` or `worker.level`
            level >= 3
            ^"#]],
    );
    check_workflow_error(
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "WQ00000000000000000000000000000099"}]}]}}"#,
        expect![
            "workflow configuration, filter 1, target 1: queue WQ00000000000000000000000000000099 does not exist"
        ],
    );
    check_workflow_error(
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "Sales"}]}]}}"#,
        expect![
            "workflow configuration, filter 1, target 1: queue: `Sales` is not a task queue SID (expected WQ followed by 32 hex digits)"
        ],
    );
    check_workflow_error(
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "{Sales}", "timout": 10}]}]}}"#,
        expect![
            "workflow configuration, filter 1, target 1: unknown key `timout` (expected one of queue, priority, timeout, expression, order_by, skip_if, known_worker_sid, known_worker_friendly_name)"
        ],
    );
    check_workflow_error(
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"timeout": 10}]}]}}"#,
        expect!["workflow configuration, filter 1, target 1: `queue` is required on the first target"],
    );
    check_workflow_error(
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": []}]}}"#,
        expect!["workflow configuration, filter 1: `targets` must be a non-empty array"],
    );
    check_workflow_error(
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "{Sales}", "timeout": 0}]}]}}"#,
        expect!["workflow configuration, filter 1, target 1: `timeout` must be a positive number of seconds"],
    );
    check_workflow_error(
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "{Sales}", "priority": "high"}]}]}}"#,
        expect![[
            r#"workflow configuration, filter 1, target 1: `priority` must be a whole number, found "high""#
        ]],
    );
    check_workflow_error(
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "{Sales}", "order_by": "routing.levels.Sales DESC"}]}]}}"#,
        expect![
            "workflow configuration, filter 1, target 1: order_by: `routing.levels.Sales` must be a worker attribute, like worker.routing.levels.Sales"
        ],
    );
    check_workflow_error(
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "{Sales}", "known_worker_sid": "agent"}]}]}}"#,
        expect![[
            r#"workflow configuration, filter 1, target 1: `known_worker_sid` must name a task attribute, like "task.agent_sid", found "agent""#
        ]],
    );
    check_workflow_error(
        r#"{"task_routing": {}}"#,
        expect![
            "workflow configuration, task_routing: has neither filters nor a default_filter, so no task could be routed"
        ],
    );
}

#[test]
fn invalid_commands_are_refused_and_change_nothing() {
    let mut sim = onboarding();
    sim.worker("alice", json!({}), "Available");
    let before = sim.engine.workers().count();
    let cases: Vec<(Result<Sid, RoutingError>, &str)> = vec![
        (
            sim.engine.create_worker(
                NewWorker { friendly_name: "ALICE".into(), attributes: json!({}), activity: None },
                0,
            ),
            r#"friendly_name: a worker named "ALICE" exists (names are unique, ignoring case)"#,
        ),
        (
            sim.engine.create_worker(
                NewWorker {
                    friendly_name: "big".into(),
                    attributes: json!({"x": "y".repeat(4100)}),
                    activity: None,
                },
                0,
            ),
            "attributes: are 4108 bytes as JSON; the limit is 4096",
        ),
        (
            sim.engine.create_task_queue(
                NewTaskQueue {
                    friendly_name: "Bad".into(),
                    target_workers: "skill-level > 3".into(),
                    task_order: TaskOrder::Fifo,
                    max_reserved_workers: 1,
                    wrap_up: WrapUpRules::default(),
                },
                0,
            ),
            "target_workers: column 6: hyphens are not allowed in attribute names: `skill-level` (TaskRouter cannot reference such a key; rename it, e.g. `skill_level`)\nskill-level > 3\n     ^",
        ),
        (
            sim.engine.create_task_queue(
                NewTaskQueue {
                    friendly_name: "Wide".into(),
                    target_workers: "1==1".into(),
                    task_order: TaskOrder::Fifo,
                    max_reserved_workers: 51,
                    wrap_up: WrapUpRules::default(),
                },
                0,
            ),
            "max_reserved_workers: must be between 1 and 50",
        ),
        (
            sim.engine.create_task(
                NewTask {
                    attributes: json!([]),
                    priority: None,
                    timeout: None,
                    workflow: None,
                    channel: None,
                },
                0,
            ),
            "attributes: must be a JSON object",
        ),
        (
            sim.engine.create_task(
                NewTask {
                    attributes: json!({}),
                    priority: Some(-1),
                    timeout: None,
                    workflow: None,
                    channel: None,
                },
                0,
            ),
            "priority: must be between 0 and 2147483647",
        ),
        (
            sim.engine.create_task(
                NewTask {
                    attributes: json!({}),
                    priority: None,
                    timeout: None,
                    workflow: None,
                    channel: Some("fax".into()),
                },
                0,
            ),
            r#"task_channel: unknown channel "fax" (known: default, voice, sms, chat, whatsapp)"#,
        ),
    ];
    for (result, message) in cases {
        assert_eq!(result.unwrap_err().to_string(), message);
    }
    assert_eq!(sim.engine.workers().count(), before);
    assert_eq!(sim.engine.queues().len(), 3);
    assert!(sim.engine.tasks.is_empty());
    let unknown: Sid = "WR00000000000000000000000000000001".parse().unwrap();
    assert_eq!(
        sim.engine.accept(unknown, 0).unwrap_err().to_string(),
        format!("reservation {unknown} does not exist")
    );
}

#[test]
fn queue_membership_follows_worker_attributes_and_queue_expressions() {
    let mut sim = onboarding();
    let alice = sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    let members = |sim: &Sim, queue: &str| sim.engine.queue_members(sim.engine.queue_by_name(queue).unwrap());
    assert_eq!(members(&sim, "Sales"), [alice]);
    assert!(members(&sim, "Support").is_empty());

    sim.engine.update_worker_attributes(alice, json!({"routing": {"skills": ["Support"]}}), 0).unwrap();
    assert!(members(&sim, "Sales").is_empty());
    assert_eq!(members(&sim, "Support"), [alice]);

    let sales = sim.engine.queue_by_name("Sales").unwrap().sid;
    let changes = TaskQueueChanges {
        target_workers: Some(r#"routing.skills HAS "Support""#.into()),
        ..TaskQueueChanges::default()
    };
    sim.engine.update_task_queue(sales, changes, 0).unwrap();
    assert_eq!(members(&sim, "Sales"), [alice]);
}

/// A Sales queue whose workflow step wants level 3 or more, and five agents who, each for a
/// different reason, do or do not get a Sales call.
fn explain_setup() -> (Sim, Sid) {
    let mut sim = sales_with_target(r#""expression": "worker.routing.levels.Sales >= 3""#);
    let sales = |level: u32| json!({"routing": {"skills": ["Sales"], "levels": {"Sales": level}}});
    sim.worker("busy", sales(5), "Available");
    sim.task_with(json!({}), None, None, Some("voice"));
    sim.accept("busy");
    sim.worker("junior", sales(1), "Available");
    sim.worker("support", json!({"routing": {"skills": ["Support"]}}), "Available");
    sim.worker("away", sales(5), "Break");
    sim.worker("picky", sales(4), "Available");
    let task = sim.task_with(json!({"caller": "+15550100"}), None, None, Some("voice"));
    sim.reject("picky");
    sim.worker("keen", sales(3), "Offline");
    (sim, task)
}

fn check_explain(sim: &Sim, task: Sid, worker: &str, expected: &str) {
    let explanation = sim.engine.explain(task, sim.named(worker), sim.now).unwrap();
    assert_eq!(explanation.to_string(), expected, "{worker}");
}

#[test]
fn explain_names_the_first_reason_a_worker_is_not_offered_a_task() {
    let (mut sim, task) = explain_setup();
    check_explain(
        &sim,
        task,
        "support",
        r#"not offered: not in queue "Sales", whose target workers expression `routing.skills HAS "Sales"` is false (routing.skills is ["Support"])"#,
    );
    check_explain(&sim, task, "away", r#"not offered: activity "Break" is not an available activity"#);
    check_explain(
        &sim,
        task,
        "busy",
        "not offered: voice capacity is full (1 of 1, pending offers included)",
    );
    check_explain(&sim, task, "picky", "not offered: the worker rejected this task");
    check_explain(
        &sim,
        task,
        "junior",
        r#"not offered: level too low: the target expression of filter 1, step 1: `worker.routing.levels.Sales >= 3` is false (worker.routing.levels.Sales is 1)"#,
    );
    check_explain(&sim, task, "keen", r#"not offered: activity "Offline" is not an available activity"#);

    sim.set_activity("keen", "Available");
    let reservation = sim.offer_to("keen");
    check_explain(&sim, task, "keen", &format!("offered now: reservation {reservation} is pending"));
    sim.accept("keen");
    check_explain(&sim, task, "junior", "not offered: the task is assigned, not waiting");
}

#[test]
fn explain_says_when_a_worker_is_eligible_and_waiting_for_a_turn() {
    let mut sim = onboarding();
    sim.worker("first", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.at(1.0);
    sim.worker("second", json!({"routing": {"skills": ["Sales"]}}), "Available");
    let task = sim.task(json!({"skillsNeeded": ["Sales"]}));

    check_explain(
        &sim,
        task,
        "second",
        "eligible: the task is offered to another worker; if that offer ends unaccepted, it is routed again",
    );
    let unknown: Sid = "WK00000000000000000000000000000999".parse().unwrap();
    assert_eq!(
        sim.engine.explain(task, unknown, 0).unwrap_err().to_string(),
        format!("worker {unknown} does not exist")
    );
}

#[test]
fn real_time_statistics_count_tasks_and_workers_like_taskrouter() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.worker("amos", json!({"routing": {"skills": ["Sales"]}}), "Break");
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.at(5.0);
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), Some(7), None, None);
    sim.at(7.0);
    sim.task(json!({"skillsNeeded": ["Support"]}));
    sim.at(10.0);

    let sales = sim.engine.queue_by_name("Sales").unwrap().sid;
    let statistics = sim.engine.queue_statistics(sales, sim.now).unwrap();
    let activities: Vec<String> =
        statistics.activity_statistics.iter().map(|a| format!("{}={}", a.friendly_name, a.workers)).collect();
    assert_eq!(activities, ["Offline=0", "Available=1", "Unavailable=0", "Break=1"]);
    let tasks = &statistics.tasks;
    assert_eq!(
        (tasks.total_tasks, format!("{:?}", tasks.tasks_by_status), format!("{:?}", tasks.tasks_by_priority)),
        (
            2,
            r#"{"assigned": 0, "pending": 1, "reserved": 1, "wrapping": 0}"#.to_owned(),
            "{0: 1, 7: 1}".to_owned()
        )
    );
    assert_eq!((tasks.longest_task_waiting_age, tasks.longest_task_waiting_sid), (10, Some(sim.named("T1"))));
    assert_eq!(statistics.longest_relative_task_age_in_queue, 10);
    assert_eq!((statistics.total_eligible_workers, statistics.total_available_workers), (2, 1));

    let workspace = sim.engine.workspace_statistics(sim.now);
    assert_eq!((workspace.tasks.total_tasks, workspace.total_workers), (3, 2));
    sim.accept("alice");
    sim.complete("T1");
    let workflow = sim.engine.workflows()[0].sid;
    let flow = sim.engine.workflow_statistics(workflow, sim.now).unwrap();
    assert_eq!(
        (flow.total_tasks, flow.longest_task_waiting_age, flow.longest_task_waiting_sid),
        (2, 5, Some(sim.named("T2")))
    );
}

/// A worker in a FIFO and a LIFO queue, with tasks waiting in both: which is served first.
fn first_served_with(prioritize_queue_order: TaskOrder) -> String {
    let mut sim = Sim::new();
    let offline = sim.activity("Offline");
    sim.engine.configure_workspace(offline, offline, prioritize_queue_order).unwrap();
    fifo_and_lifo_tasks(sim)
}

/// [`first_served_with`], the order set by a workspace update.
fn first_served_after_update(prioritize_queue_order: TaskOrder) -> String {
    let mut sim = Sim::new();
    let changes = WorkspaceChanges {
        prioritize_queue_order: Some(prioritize_queue_order),
        ..WorkspaceChanges::default()
    };
    sim.engine.update_workspace(changes, sim.now).unwrap();
    fifo_and_lifo_tasks(sim)
}

/// Which of three tasks (LIFO, FIFO, LIFO, in that order) a worker in both queues gets first.
fn fifo_and_lifo_tasks(mut sim: Sim) -> String {
    sim.queue_with("Fifo", "fifo == true", TaskOrder::Fifo, 1);
    sim.queue_with("Lifo", "lifo == true", TaskOrder::Lifo, 1);
    sim.workflow(
        "W",
        r#"{"task_routing": {"filters": [
            {"expression": "kind == 'f'", "targets": [{"queue": "{Fifo}"}]},
            {"expression": "kind == 'l'", "targets": [{"queue": "{Lifo}"}]}]}}"#,
        30,
    )
    .unwrap();
    sim.worker("ann", json!({"fifo": true, "lifo": true}), "Offline");
    sim.task(json!({"kind": "l"}));
    sim.at(1.0);
    sim.task(json!({"kind": "f"}));
    sim.at(2.0);
    sim.task(json!({"kind": "l"}));
    sim.set_activity("ann", "Available");
    let task = sim.engine.reservation(sim.offer_to("ann")).unwrap().task;
    sim.name(task)
}

#[test]
fn prioritize_queue_order_decides_between_fifo_and_lifo_queues() {
    assert_eq!(first_served_with(TaskOrder::Fifo), "T2");
    assert_eq!(first_served_with(TaskOrder::Lifo), "T3");
}

#[test]
fn known_worker_sid_routes_to_the_worker_named_by_the_task() {
    let mut sim = sales_with_target(r#""known_worker_sid": "task.agent_sid""#);
    sim.worker("ann", json!({"routing": {"skills": ["Sales"]}}), "Available");
    let bob = sim.worker("bob", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.events();

    sim.task(json!({"agent_sid": bob.to_string()}));
    sim.task(json!({"agent_sid": "WK-not-a-sid"}));

    let created: Vec<String> =
        sim.events().lines().filter(|l| l.contains("reservation.created")).map(str::to_owned).collect();
    assert_eq!(
        created,
        ["t=0 reservation.created task=T1 worker=bob queue=Sales"],
        "T2 waits for a worker that cannot exist"
    );
}

#[test]
fn updating_a_waiting_task_routes_it_again_from_the_top() {
    let mut sim = onboarding();
    sim.worker("bob", json!({"routing": {"skills": ["Support"]}}), "Available");
    let task = sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.events();

    sim.at(3.0);
    sim.engine.update_task_attributes(task, json!({"skillsNeeded": ["Support"]}), sim.now).unwrap();

    sim.check(expect![[r#"
        t=3 task.updated task=T1
        t=3 task-queue.moved task=T1 queue=Sales
        t=3 task-queue.entered task=T1 queue=Support
        t=3 workflow.target-matched task=T1 queue=Support
        t=3 reservation.created task=T1 worker=bob queue=Support"#]]);
}

#[test]
fn channel_capacity_and_availability_changes_take_effect_at_once() {
    let mut sim = onboarding();
    let alice = sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.engine.set_worker_channel(alice, "voice", None, Some(false), sim.now).unwrap();
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, None, Some("voice"));
    assert_eq!(sim.status("T1"), "pending", "voice is switched off");
    sim.engine.set_worker_channel(alice, "voice", None, Some(true), sim.now).unwrap();
    assert_eq!(sim.status("T1"), "reserved");
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, None, Some("voice"));
    sim.engine.set_worker_channel(alice, "voice", Some(2), None, sim.now).unwrap();
    assert_eq!(sim.status("T2"), "reserved", "a second voice slot takes the waiting call");
    let err = sim.engine.set_worker_channel(alice, "fax", Some(1), None, sim.now).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"task_channel: unknown channel "fax" (known: default, voice, sms, chat, whatsapp)"#
    );
}

#[test]
fn a_task_back_from_a_long_offer_skips_the_steps_that_expired_meanwhile() {
    // Regression: the next step's deadline was scheduled in the past, its events were stamped
    // back in time and the next agent had 2 s instead of 120 s to answer.
    let mut sim = Sim::new();
    sim.queue("Q0", "g == 1");
    sim.queue("Q1", "g == 2");
    sim.queue("Q2", "g == 3");
    sim.workflow(
        "Escalation",
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [
            {"queue": "{Q0}", "timeout": 1}, {"queue": "{Q1}", "timeout": 1}, {"queue": "{Q2}"}]}]}}"#,
        120,
    )
    .unwrap();
    sim.worker("w1", json!({"g": 1}), "Available");
    sim.worker("w3", json!({"g": 3}), "Available");
    sim.task(json!({}));
    sim.events();

    sim.at(200.0);

    sim.check(expect![[r#"
        t=120 reservation.timeout task=T1 worker=w1 queue=Q0
        t=120 task-queue.timeout task=T1 queue=Q0
        t=120 task-queue.moved task=T1 queue=Q0
        t=120 task-queue.entered task=T1 queue=Q2
        t=120 workflow.target-matched task=T1 queue=Q2
        t=120 worker.activity.update worker=w1 activity=Offline
        t=120 reservation.created task=T1 worker=w3 queue=Q2"#]]);
    let reservation = sim.engine.reservation(sim.offer_to("w3")).unwrap();
    assert_eq!((reservation.created_at, reservation.timeout_at), (seconds(120.0), seconds(240.0)));
}

#[test]
fn tasks_routable_at_the_same_moment_are_served_by_priority() {
    // Regression: they were served in the order their offers happened to end.
    let mut sim = Sim::new();
    sim.queue("Q", "1==1");
    sim.workflow("W", r#"{"task_routing": {"default_filter": {"queue": "{Q}"}}}"#, 30).unwrap();
    let w1 = sim.worker("w1", json!({}), "Available");
    let w2 = sim.worker("w2", json!({}), "Offline");
    sim.engine.set_worker_channel(w2, "chat", Some(1), None, 0).unwrap();
    sim.at(1.0);
    sim.task_with(json!({}), Some(0), None, Some("chat"));
    sim.at(2.0);
    sim.task_with(json!({}), Some(9), None, Some("chat"));
    sim.set_activity("w2", "Available");
    let offline = sim.activity("Offline");

    sim.engine.set_worker_activity(w1, offline, true, sim.now).unwrap();

    assert_eq!((sim.status("T1"), sim.status("T2")), ("pending", "reserved"));
    let offer = sim.engine.reservation(sim.offer_to("w2")).unwrap();
    assert_eq!(sim.name(offer.task), "T2");
}

#[test]
fn updating_a_task_keeps_its_escalation_clock() {
    // Regression: re-walking from the top restarted the step deadlines at the update.
    let mut sim = Sim::new();
    sim.queue("Q0", "nobody == true");
    sim.queue("Q1", "1==1");
    sim.workflow(
        "W",
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "{Q0}", "timeout": 10}, {"queue": "{Q1}"}]}]}}"#,
        30,
    )
    .unwrap();
    let task = sim.task(json!({"note": "first"}));
    sim.at(9.0);
    sim.engine.update_task_attributes(task, json!({"note": "second"}), sim.now).unwrap();
    assert_eq!(sim.engine.next_deadline(), Some(seconds(10.0)));
    sim.at(12.0);
    sim.engine.update_task_attributes(task, json!({"note": "third"}), sim.now).unwrap();
    assert_eq!(sim.engine.task_queue(sim.engine.task(task).unwrap()).unwrap().friendly_name, "Q1");
}

#[test]
fn reject_pending_reservations_applies_only_to_unavailable_activities() {
    let mut sim = onboarding();
    let alice = sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    let available = sim.activity("Available");

    let err = sim.engine.set_worker_activity(alice, available, true, sim.now).unwrap_err();

    assert_eq!(
        err.to_string(),
        "reject_pending_reservations: applies only when moving to an unavailable activity"
    );
    assert_eq!(sim.status("T1"), "reserved", "nothing changed");
}

#[test]
fn timers_at_the_end_of_time_do_not_overflow() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    let near_the_end = Millis::MAX - 1;
    let new = NewTask {
        attributes: json!({"skillsNeeded": ["Sales"]}),
        priority: None,
        timeout: None,
        workflow: None,
        channel: None,
    };
    let task = sim.engine.create_task(new, near_the_end).unwrap();
    assert_eq!(sim.engine.task(task).unwrap().status.as_str(), "reserved");
    assert_eq!(sim.engine.next_deadline(), Some(Millis::MAX));
}

#[test]
fn a_restored_engine_continues_exactly_like_the_original() {
    let mut original = onboarding();
    original.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    original.worker("bob", json!({"routing": {"skills": ["Sales", "Support"]}}), "Offline");
    let sales = json!({"skillsNeeded": ["Sales"]});
    for priority in [1, 5] {
        original.task_with(sales.clone(), Some(priority), Some(100), Some("voice"));
    }
    original.at(3.0);
    original.events();

    let mut restored = Engine::import(original.engine.export()).unwrap();
    let (alice, bob) = (original.named("alice"), original.named("bob"));
    let available = original.activity("Available");
    let timeline: Vec<(f64, Command)> = vec![
        (10.0, Command::SetWorkerActivity { worker: bob, activity: available, reject_pending: false }),
        (25.0, Command::Advance),
        (30.0, Command::SetWorkerActivity { worker: alice, activity: available, reject_pending: false }),
        (
            31.0,
            Command::CreateTask(NewTask {
                attributes: json!({"skillsNeeded": ["Support"]}),
                priority: None,
                timeout: None,
                workflow: None,
                channel: Some("voice".into()),
            }),
        ),
        (200.0, Command::Advance),
    ];
    for (t, command) in &timeline {
        let now = seconds(*t);
        let expected = original.engine.apply(command, now);
        assert_eq!(restored.apply(command, now), expected, "{command:?}");
        assert_eq!(restored.take_events(), original.engine.take_events(), "events after {command:?}");
    }
    assert_eq!(restored.export(), original.engine.export());
}

#[test]
fn a_snapshot_that_does_not_hold_together_is_an_error_not_a_panic() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    let snapshot = sim.engine.export();
    let check = |damage: &dyn Fn(&mut Snapshot), expected: &str| {
        let mut damaged = snapshot.clone();
        damage(&mut damaged);
        assert_eq!(Engine::import(damaged).err().map(|err| err.to_string()).as_deref(), Some(expected));
    };
    let worker = snapshot.workers[0].sid;
    check(&|s| s.workers.clear(), &format!("snapshot: unknown worker {worker}"));
    check(
        &|s| s.queues[0].target_workers = "a ==".into(),
        "target_workers: column 5: expected a value (a string, number, true, false, null, array or attribute), but the expression ends here\na ==\n    ^",
    );
    let task = snapshot.tasks[0].sid;
    check(
        &|s| s.reservations.clear(),
        &format!("snapshot: task {task} names a reservation that does not exist"),
    );
    check(
        &|s| s.workers[0].channels.pop().map(drop).unwrap_or(()),
        &format!("snapshot: worker {worker} has 4 channels"),
    );
}

#[test]
fn an_accepted_call_nobody_answers_is_routed_to_the_next_worker() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.at(1.0);
    sim.worker("bob", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.at(2.0);
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.accept("alice");
    sim.events();

    sim.at(30.0);
    let reservation = sim.engine.tasks[&sim.named("T1")].reservations[0];
    sim.engine.unanswered(reservation, sim.now).unwrap();

    sim.check(expect![[r#"
        t=30 reservation.timeout task=T1 worker=alice queue=Sales
        t=30 worker.activity.update worker=alice activity=Offline
        t=30 task.updated task=T1
        t=30 task-queue.entered task=T1 queue=Sales
        t=30 workflow.target-matched task=T1 queue=Sales
        t=30 reservation.created task=T1 worker=bob queue=Sales"#]]);
    assert_eq!(
        sim.engine.worker_activity(sim.engine.worker(sim.named("alice")).unwrap()).friendly_name,
        "Offline"
    );
    let again = sim.engine.unanswered(reservation, sim.now).unwrap_err().to_string();
    assert!(again.contains("is timeout; only an accepted reservation"), "{again}");
}

/// Each deletion's refusal message, with the engine unchanged by every refused one.
#[test]
fn deleting_what_is_still_in_use_is_refused_and_changes_nothing() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    let (offline, available) = (sim.activity("Offline"), sim.activity("Available"));
    let (sales, workflow) = (sim.queues["Sales"], sim.named("Sales and Support Workflow"));
    let (alice, task) = (sim.named("alice"), sim.named("T1"));
    sim.events();
    let before = sim.engine.export();
    let cases = [
        (offline, "activity {offline} is the workspace's default activity and cannot be deleted"),
        (
            available,
            "activity {available} cannot be deleted: 1 worker(s) are in it; move them to another activity first",
        ),
        (
            alice,
            "worker {alice} cannot be deleted: reservation {offer} of task {task} is pending; end it first",
        ),
        (
            sales,
            "task queue {sales} cannot be deleted: workflow {workflow} (\"Sales and Support Workflow\") routes to it; change its configuration first",
        ),
        (
            workflow,
            "workflow {workflow} cannot be deleted: task {task} is reserved in it; complete or cancel it first",
        ),
    ];
    let offer = sim.offer_to("alice");
    for (sid, expected) in cases {
        let refused = sim.engine.apply(&Command::Delete { resource: sid }, 0);
        let expected = expected
            .replace("{offline}", &offline.to_string())
            .replace("{available}", &available.to_string())
            .replace("{alice}", &alice.to_string())
            .replace("{offer}", &offer.to_string())
            .replace("{task}", &task.to_string())
            .replace("{sales}", &sales.to_string())
            .replace("{workflow}", &workflow.to_string());
        assert_eq!(refused.map_err(|err| err.to_string()), Err(expected));
    }
    assert!(sim.engine.export() == before, "a refused deletion changed the engine");
    assert_eq!(sim.events(), "");
}

#[test]
fn a_deleted_worker_leaves_their_ended_offers_and_the_rest_keeps_routing() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.worker("bob", json!({"routing": {"skills": ["Sales"]}}), "Unavailable");
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.at(1.0);
    sim.reject("alice");
    sim.events();

    let alice = sim.named("alice");
    sim.engine.delete_worker(alice, sim.now).unwrap();
    sim.set_activity("bob", "Available");

    sim.check(expect![[r#"
        t=1 worker.deleted worker=alice
        t=1 worker.activity.update worker=bob activity=Available
        t=1 reservation.created task=T1 worker=bob queue=Sales"#]]);
    assert!(sim.engine.worker(alice).is_none());
    let task = sim.engine.task(sim.named("T1")).unwrap();
    assert_eq!(task.reservations.len(), 1, "only bob's offer is left: {:?}", task.reservations);
}

#[test]
fn deleting_an_assigned_task_frees_its_worker_for_the_next() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.accept("alice");
    sim.events();

    sim.at(5.0);
    sim.engine.delete_task(sim.named("T1"), sim.now).unwrap();

    sim.check(expect![[r#"
        t=5 reservation.canceled task=T1 worker=alice queue=Sales
        t=5 task.deleted task=T1 queue=Sales
        t=5 reservation.created task=T2 worker=alice queue=Sales"#]]);
    assert!(sim.engine.task(sim.named("T1")).is_none());
    assert_eq!(sim.engine.reservations().count(), 1, "T1's reservation went with it");
}

#[test]
fn a_queue_no_workflow_names_is_deleted_with_its_ended_tasks() {
    let mut sim = onboarding();
    sim.worker("bob", json!({"routing": {"skills": ["Support"]}}), "Available");
    sim.task(json!({"skillsNeeded": ["Support"]}));
    sim.accept("bob");
    sim.complete("T1");
    let (workflow, support) = (sim.named("Sales and Support Workflow"), sim.queues["Support"]);
    let sales_only = sim.with_queue_sids(
        r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "{Sales}"}]}]}}"#,
    );
    let changes = WorkflowChanges { configuration: Some(sales_only), ..WorkflowChanges::default() };
    sim.engine.update_workflow(workflow, changes, sim.now).unwrap();
    sim.events();

    sim.engine.delete_task_queue(support, sim.now).unwrap();

    sim.check(expect!["t=0 task-queue.deleted queue=Support"]);
    assert!(sim.engine.queue(support).is_none());
    assert!(sim.engine.task(sim.named("T1")).is_none(), "T1 ended in Support and goes with it");
    assert_eq!(sim.engine.queues().len(), 2);
}

#[test]
fn a_new_workflow_configuration_keeps_tasks_in_place_unless_re_evaluated() {
    let mut sim = onboarding();
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.task(json!({"skillsNeeded": ["Support"]}));
    let workflow = sim.named("Sales and Support Workflow");
    // Sales tasks still start in Sales (then Everyone after 60 s); Support tasks go to Everyone.
    let configuration = sim.with_queue_sids(
        r#"{"task_routing": {"filters": [
            {"expression": "\"Sales\" IN task.skillsNeeded", "targets": [{"queue": "{Sales}", "timeout": 60}, {"queue": "{Everyone}"}]},
            {"expression": "\"Support\" IN task.skillsNeeded", "targets": [{"queue": "{Everyone}"}]}
        ]}}"#,
    );
    sim.events();

    sim.at(2.0);
    let keep = WorkflowChanges { configuration: Some(configuration.clone()), ..WorkflowChanges::default() };
    sim.engine.update_workflow(workflow, keep, sim.now).unwrap();
    sim.at(3.0);
    let again = WorkflowChanges {
        configuration: Some(configuration),
        re_evaluate_tasks: true,
        ..WorkflowChanges::default()
    };
    sim.engine.update_workflow(workflow, again, sim.now).unwrap();

    // At t=2 T1's step still names Sales: it keeps its place, while T2's step now names
    // Everyone. At t=3 both are routed again from the top, where they already are.
    sim.check(expect![[r#"
        t=2 workflow.updated
        t=2 task-queue.moved task=T2 queue=Support
        t=2 task-queue.entered task=T2 queue=Everyone
        t=2 workflow.target-matched task=T2 queue=Everyone
        t=3 workflow.updated
        t=3 task-queue.entered task=T1 queue=Sales
        t=3 workflow.target-matched task=T1 queue=Sales
        t=3 task-queue.entered task=T2 queue=Everyone
        t=3 workflow.target-matched task=T2 queue=Everyone"#]]);
}

#[test]
fn changing_a_queue_order_ranks_its_waiting_tasks_again() {
    let mut sim = onboarding();
    for t in [1.0, 2.0, 3.0] {
        sim.at(t);
        sim.task(json!({"skillsNeeded": ["Sales"]}));
    }
    let sales = sim.queues["Sales"];
    let lifo = TaskQueueChanges { task_order: Some(TaskOrder::Lifo), ..TaskQueueChanges::default() };
    sim.engine.update_task_queue(sales, lifo, sim.now).unwrap();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.events();
    sim.accept("alice");
    assert_eq!(sim.status("T3"), "assigned", "LIFO serves the newest first");
    assert_eq!(sim.engine.queue(sales).unwrap().updated_at, seconds(3.0));
}

#[test]
fn editing_a_workflow_never_times_out_old_tasks_and_leaves_offers_alone() {
    let mut sim = Sim::new();
    sim.queue("Sales", "1==1");
    sim.queue("Everyone", "1==1");
    let workflow = sim
        .workflow(
            "W",
            r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "{Sales}"}]}]}}"#,
            300,
        )
        .unwrap();
    sim.worker("alice", json!({}), "Available");
    sim.task(json!({}));
    sim.task(json!({}));
    sim.events();

    // At t=100 a filter is inserted above: T2's step (filter 0) now names Everyone, and its
    // new escalation (60 s in Sales) counts from the edit, not from its creation.
    sim.at(100.0);
    let inserted = sim.with_queue_sids(
        r#"{"task_routing": {"filters": [
            {"expression": "vip == true", "targets": [{"queue": "{Everyone}"}]},
            {"expression": "1==1", "targets": [{"queue": "{Sales}", "timeout": 60}]}
        ]}}"#,
    );
    let changes = WorkflowChanges { configuration: Some(inserted), ..WorkflowChanges::default() };
    sim.engine.update_workflow(workflow, changes, sim.now).unwrap();
    // T1's offer stands; refused, T1 is walked again too.
    sim.at(110.0);
    let (offer, offline) = (sim.offer_to("alice"), sim.activity("Offline"));
    sim.engine.reject(offer, Some(offline), sim.now).unwrap();

    sim.check(expect![[r#"
        t=100 workflow.updated
        t=100 task-queue.entered task=T2 queue=Sales
        t=100 workflow.target-matched task=T2 queue=Sales
        t=110 reservation.rejected task=T1 worker=alice queue=Sales
        t=110 task-queue.entered task=T1 queue=Sales
        t=110 workflow.target-matched task=T1 queue=Sales
        t=110 worker.activity.update worker=alice activity=Offline"#]]);
    assert_eq!((sim.status("T1"), sim.status("T2")), ("pending", "pending"));
    // Timed from its creation, T2 would have left Sales at once; from the edit, at t=160.
    sim.at(150.0);
    assert_eq!(sim.status("T2"), "pending");
}

/// T1 (skills Sales, priority 1), brought to `state` (pending, reserved, assigned or wrapping)
/// with alice, then updated at t=5 with `changes`: the events, or the refusal (after which
/// nothing changed), then the task's status, priority and attributes.
fn check_update(state: &str, changes: TaskChanges, expected: Expect) {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Offline");
    let task = sim.task_with(json!({"skillsNeeded": ["Sales"]}), Some(1), None, None);
    if state != "pending" {
        sim.set_activity("alice", "Available");
    }
    if state == "assigned" || state == "wrapping" {
        sim.accept("alice");
    }
    if state == "wrapping" {
        sim.engine.wrap_up(task, sim.now).unwrap();
    }
    assert_eq!(sim.status("T1"), state);
    sim.events();
    sim.at(5.0);
    let before = sim.engine.export();

    let outcome = sim.engine.update_task(task, changes, sim.now);

    let mut actual = match outcome {
        Ok(()) => sim.events(),
        Err(err) => {
            assert_eq!(sim.engine.export(), before, "a refused update changes nothing");
            format!("refused: {}", err.to_string().replace(&task.to_string(), "T1"))
        }
    };
    let task = sim.engine.task(task).unwrap();
    actual.push_str(&format!(
        "\n=> {} priority={} attributes={}",
        task.status.as_str(),
        task.priority,
        task.attributes
    ));
    expected.assert_eq(&actual);
}

fn changes(
    attributes: Option<Value>,
    priority: Option<i64>,
    status: Option<TaskStatusChange>,
) -> TaskChanges {
    TaskChanges { attributes, priority, status }
}

fn completed() -> Option<TaskStatusChange> {
    Some(TaskStatusChange::Completed { reason: "done".into() })
}

fn canceled() -> Option<TaskStatusChange> {
    Some(TaskStatusChange::Canceled { reason: "gone".into() })
}

#[test]
fn a_task_update_changes_attributes_and_priority_then_status_in_one_step() {
    let support = || Some(json!({"skillsNeeded": ["Support"]}));
    check_update(
        "assigned",
        changes(support(), Some(7), completed()),
        expect![[r#"
            t=5 task.updated task=T1
            t=5 task.completed task=T1 reason="done"
            t=5 reservation.completed task=T1 worker=alice queue=Sales
            => completed priority=7 attributes={"skillsNeeded":["Support"]}"#]],
    );
    check_update(
        "assigned",
        changes(None, Some(3), Some(TaskStatusChange::Wrapping)),
        expect![[r#"
            t=5 task.updated task=T1
            t=5 task.wrapup task=T1
            t=5 reservation.wrapup task=T1 worker=alice queue=Sales
            => wrapping priority=3 attributes={"skillsNeeded":["Sales"]}"#]],
    );
    check_update(
        "wrapping",
        changes(support(), None, completed()),
        expect![[r#"
            t=5 task.updated task=T1
            t=5 task.completed task=T1 reason="done"
            t=5 reservation.completed task=T1 worker=alice queue=Sales
            => completed priority=1 attributes={"skillsNeeded":["Support"]}"#]],
    );
    // Canceled in the same step: it is not routed again on the way out.
    check_update(
        "reserved",
        changes(support(), None, canceled()),
        expect![[r#"
            t=5 task.updated task=T1
            t=5 reservation.canceled task=T1 worker=alice queue=Sales
            t=5 task.canceled task=T1 reason="gone"
            => canceled priority=1 attributes={"skillsNeeded":["Support"]}"#]],
    );
    // Attributes alone: a pending task is routed again from the top.
    check_update(
        "pending",
        changes(support(), Some(4), None),
        expect![[r#"
            t=5 task.updated task=T1
            t=5 task-queue.moved task=T1 queue=Sales
            t=5 task-queue.entered task=T1 queue=Support
            t=5 workflow.target-matched task=T1 queue=Support
            => pending priority=4 attributes={"skillsNeeded":["Support"]}"#]],
    );
    check_update(
        "assigned",
        changes(None, None, None),
        expect![[r#"
            
            => assigned priority=1 attributes={"skillsNeeded":["Sales"]}"#]],
    );
}

#[test]
fn a_task_update_with_a_refused_part_changes_nothing() {
    let support = || Some(json!({"skillsNeeded": ["Support"]}));
    check_update(
        "pending",
        changes(support(), Some(9), completed()),
        expect![[r#"
            refused: task T1 is pending; only an assigned or wrapping task can be completed
            => pending priority=1 attributes={"skillsNeeded":["Sales"]}"#]],
    );
    check_update(
        "pending",
        changes(support(), None, Some(TaskStatusChange::Wrapping)),
        expect![[r#"
            refused: task T1 is pending; only an assigned task wraps up
            => pending priority=1 attributes={"skillsNeeded":["Sales"]}"#]],
    );
    check_update(
        "assigned",
        changes(support(), None, canceled()),
        expect![[r#"
            refused: task T1 is assigned; only a pending or reserved task can be canceled
            => assigned priority=1 attributes={"skillsNeeded":["Sales"]}"#]],
    );
    check_update(
        "assigned",
        changes(Some(json!(["Support"])), None, completed()),
        expect![[r#"
            refused: attributes: must be a JSON object
            => assigned priority=1 attributes={"skillsNeeded":["Sales"]}"#]],
    );
    check_update(
        "wrapping",
        changes(support(), Some(-1), completed()),
        expect![[r#"
            refused: priority: must be between 0 and 2147483647
            => wrapping priority=1 attributes={"skillsNeeded":["Sales"]}"#]],
    );
}

#[test]
fn a_new_priority_moves_a_waiting_task_up_its_queue() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Offline");
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), Some(5), None, None);
    let second = sim.task_with(json!({"skillsNeeded": ["Sales"]}), Some(1), None, None);
    sim.events();

    sim.at(2.0);
    sim.engine.update_task(second, changes(None, Some(9), None), sim.now).unwrap();
    sim.at(3.0);
    sim.set_activity("alice", "Available");

    sim.check(expect![[r#"
        t=2 task.updated task=T2
        t=3 worker.activity.update worker=alice activity=Available
        t=3 reservation.created task=T2 worker=alice queue=Sales"#]]);
}

// ----- task channels, worker channels and the workspace's settings -----

/// A new task channel (`unique_name`, friendly name `friendly`) in the onboarding workspace
/// with alice (Sales, available): the channel's and alice's capacity on it, or the refusal.
fn check_new_channel(unique_name: &str, friendly: &str, expected: Expect) {
    let mut sim = onboarding();
    let alice = sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    let new = NewTaskChannel {
        friendly_name: friendly.to_owned(),
        unique_name: unique_name.to_owned(),
        channel_optimized_routing: false,
        default_capacity: 1,
    };
    let channels_before = sim.engine.channels().len();
    let rendered = match sim.engine.create_task_channel(new, sim.now) {
        Ok(sid) => {
            let channel = sim.engine.task_channel_by_key(&sid.to_string()).unwrap();
            let worker = sim.engine.worker(alice).unwrap();
            let capacity = sim.engine.worker_channel(worker, unique_name).unwrap();
            format!(
                "{} {:?}: alice capacity {} available {}",
                channel.unique_name, channel.friendly_name, capacity.capacity, capacity.available
            )
        }
        Err(err) => {
            assert_eq!(sim.engine.channels().len(), channels_before, "a refusal changes nothing");
            format!("refused: {err}")
        }
    };
    expected.assert_eq(&rendered);
}

#[test]
fn a_task_channel_is_created_with_capacity_one_for_every_worker_or_refused_whole() {
    check_new_channel("email", "Email", expect![[r#"email "Email": alice capacity 1 available true"#]]);
    check_new_channel("_video2", "Video", expect![[r#"_video2 "Video": alice capacity 1 available true"#]]);
    check_new_channel(
        "e-mail",
        "Email",
        expect![[
            r#"refused: unique_name: "e-mail": use 1 to 64 letters, digits and `_`, starting with a letter (no spaces or hyphens)"#
        ]],
    );
    check_new_channel(
        "2fa",
        "2FA",
        expect![[
            r#"refused: unique_name: "2fa": use 1 to 64 letters, digits and `_`, starting with a letter (no spaces or hyphens)"#
        ]],
    );
    check_new_channel(
        "",
        "Nothing",
        expect![[
            r#"refused: unique_name: "": use 1 to 64 letters, digits and `_`, starting with a letter (no spaces or hyphens)"#
        ]],
    );
    check_new_channel(
        &"x".repeat(65),
        "Long",
        expect![[
            r#"refused: unique_name: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx": use 1 to 64 letters, digits and `_`, starting with a letter (no spaces or hyphens)"#
        ]],
    );
    check_new_channel(
        "VOICE",
        "Calls",
        expect![[
            r#"refused: unique_name: task channel TC00000000000000070000000000000007 is named "voice" (unique names ignore case)"#
        ]],
    );
    check_new_channel(
        "TC0000000000000007000000000000abcd",
        "Shaped",
        expect![[
            r#"refused: unique_name: "TC0000000000000007000000000000abcd" is shaped like a task channel SID"#
        ]],
    );
    check_new_channel("email", " ", expect!["refused: friendly_name: must not be empty"]);
}

#[test]
fn a_channel_created_while_workers_wait_routes_its_tasks_at_once() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, None, Some("voice"));
    let new = NewTaskChannel {
        friendly_name: "Email".into(),
        unique_name: "email".into(),
        channel_optimized_routing: true,
        default_capacity: 1,
    };
    let email = sim.engine.create_task_channel(new, sim.now).unwrap();
    sim.names.insert(email, "email".into());
    sim.events();

    sim.at(1.0);
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, None, Some("email"));

    let created: Vec<String> =
        sim.events().lines().filter(|l| l.contains("reservation.created")).map(str::to_owned).collect();
    assert_eq!(
        created,
        ["t=1 reservation.created task=T2 worker=alice queue=Sales"],
        "voice is full, email is not"
    );
    assert_eq!(sim.engine.task(sim.named("T2")).map(|t| sim.engine.task_channel(t).sid), Some(email));
}

/// Deleting the channel `channel` of the onboarding workspace, where one task on `email` (a
/// channel created for it) was taken to `status`: what is left, or the refusal.
fn check_delete_channel(channel: &str, status: &str, expected: Expect) {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    let new = NewTaskChannel {
        friendly_name: "Email".into(),
        unique_name: "email".into(),
        channel_optimized_routing: false,
        default_capacity: 1,
    };
    sim.engine.create_task_channel(new, sim.now).unwrap();
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, None, Some("email"));
    match status {
        "reserved" => {}
        "assigned" => sim.accept("alice"),
        "completed" => {
            sim.accept("alice");
            sim.complete("T1");
        }
        other => panic!("no status {other}"),
    }
    let sid = sim.engine.task_channel_by_key(channel).unwrap().sid;
    let before = sim.engine.export();
    let rendered = match sim.engine.delete_task_channel(sid, sim.now) {
        Ok(()) => {
            let alice = sim.engine.worker_by_name("alice").unwrap();
            let names: Vec<String> = sim
                .engine
                .worker_channels(alice)
                .map(|(channel, capacity)| format!("{}:{}", channel.unique_name, capacity.capacity))
                .collect();
            format!("deleted; alice has {}; tasks kept: {}", names.join(" "), sim.engine.tasks().count())
        }
        Err(err) => {
            assert_eq!(sim.engine.export(), before, "a refusal changes nothing");
            format!("refused: {err}")
        }
    };
    expected.assert_eq(&rendered);
}

#[test]
fn a_task_channel_is_deleted_only_when_no_open_task_is_on_it_and_it_is_not_built_in() {
    check_delete_channel(
        "email",
        "completed",
        expect!["deleted; alice has default:1 voice:1 sms:3 chat:3 whatsapp:3; tasks kept: 0"],
    );
    check_delete_channel(
        "email",
        "reserved",
        expect![
            "refused: task channel TC00000000000000070000000000000010 (email) cannot be deleted: task WT00000000000000070000000000000011 is reserved on it; complete or cancel it first"
        ],
    );
    check_delete_channel(
        "email",
        "assigned",
        expect![
            "refused: task channel TC00000000000000070000000000000010 (email) cannot be deleted: task WT00000000000000070000000000000011 is assigned on it; complete or cancel it first"
        ],
    );
    check_delete_channel(
        "voice",
        "completed",
        expect![
            "refused: task channel TC00000000000000070000000000000007 (voice) cannot be deleted: it is built in; Switchboard routes its calls, texts and the tasks created without a TaskChannel on default, voice, sms, chat, whatsapp"
        ],
    );
}

/// A workspace saved before `whatsapp` was built in (its snapshot without it) lacks only that
/// channel; added, every worker has its capacity 3 on it and its tasks are offered at once.
#[test]
fn a_workspace_saved_before_whatsapp_was_built_in_gets_it_with_its_capacity() {
    let mut sim = onboarding();
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    assert!(sim.engine.missing_built_in_channels().is_empty());
    let mut older = sim.engine.export();
    let position = older.channels.iter().position(|channel| channel.unique_name == "whatsapp").unwrap();
    older.channels.remove(position);
    for worker in &mut older.workers {
        worker.channels.remove(position);
    }
    sim.engine = Engine::import(older).unwrap();

    let missing = sim.engine.missing_built_in_channels();
    let named: Vec<(&str, &str, u32)> = missing
        .iter()
        .map(|new| (new.unique_name.as_str(), new.friendly_name.as_str(), new.default_capacity))
        .collect();
    assert_eq!(named, [("whatsapp", "WhatsApp", 3)]);
    for new in missing {
        sim.engine.create_task_channel(new, sim.now).unwrap();
    }
    assert!(sim.engine.missing_built_in_channels().is_empty());
    let alice = sim.engine.worker_by_name("alice").unwrap();
    let capacity = sim.engine.worker_channels(alice).find(|(channel, _)| channel.unique_name == "whatsapp");
    assert_eq!(capacity.map(|(_, worker_channel)| worker_channel.capacity), Some(3));
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, None, Some("whatsapp"));
    assert_eq!(sim.status("T1"), "reserved");
}

/// A `WhatsApp` channel an operator made before `whatsapp` was built in is the one WhatsApp
/// conversations are routed on: unique names are unique, and found, ignoring case.
#[test]
fn an_operators_whatsapp_channel_made_before_it_was_built_in_is_used() {
    let mut sim = onboarding();
    let mut older = sim.engine.export();
    let position = older.channels.iter().position(|channel| channel.unique_name == "whatsapp").unwrap();
    older.channels.remove(position);
    sim.engine = Engine::import(older).unwrap();
    let new = NewTaskChannel {
        friendly_name: "WhatsApp (ours)".into(),
        unique_name: "WhatsApp".into(),
        channel_optimized_routing: false,
        default_capacity: 1,
    };
    let sid = sim.engine.create_task_channel(new, sim.now).unwrap();
    assert!(sim.engine.missing_built_in_channels().is_empty());
    assert_eq!(sim.engine.task_channel_by_key("whatsapp").map(|channel| channel.sid), Some(sid));
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    let alice = sim.engine.worker_by_name("alice").unwrap();
    assert_eq!(sim.engine.worker_channel(alice, "whatsapp").map(|channel| channel.capacity), Some(1));
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, None, Some("whatsapp"));
    assert_eq!(sim.status("T1"), "reserved");
}

/// alice (Sales, available) holds one voice call; her voice channel is then set to
/// (`capacity`, `available`) and a second call arrives: its status.
fn second_call_with(capacity: Option<u32>, available: Option<bool>) -> &'static str {
    let mut sim = onboarding();
    let alice = sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, None, Some("voice"));
    sim.accept("alice");
    sim.engine.set_worker_channel(alice, "voice", capacity, available, sim.now).unwrap();
    sim.task_with(json!({"skillsNeeded": ["Sales"]}), None, None, Some("voice"));
    sim.status("T2")
}

#[test]
fn a_worker_channels_capacity_and_availability_decide_the_next_offer() {
    assert_eq!(second_call_with(None, None), "pending");
    assert_eq!(second_call_with(Some(2), None), "reserved");
    assert_eq!(second_call_with(Some(2), Some(false)), "pending");
    assert_eq!(second_call_with(Some(0), None), "pending");
    assert_eq!(second_call_with(Some(3), Some(true)), "reserved");
}

/// A workspace update on the onboarding workspace: the settings after it, or the refusal
/// (after which the settings are as they were).
fn check_workspace_update(changes: WorkspaceChanges, expected: Expect) {
    let mut sim = onboarding();
    let before = sim.engine.settings().clone();
    let rendered = match sim.engine.update_workspace(changes, sim.now) {
        Ok(()) => {
            let settings = sim.engine.settings();
            format!(
                "{:?} default={} timeout={} url={:?} filter={:?} order={}",
                settings.friendly_name,
                sim.name(settings.default_activity),
                sim.name(settings.timeout_activity),
                settings.event_callback_url,
                settings.events_filter,
                settings.prioritize_queue_order.as_str()
            )
        }
        Err(err) => {
            assert_eq!(sim.engine.settings(), &before, "a refusal changes nothing");
            format!("refused: {err}")
        }
    };
    expected.assert_eq(&rendered);
}

#[test]
fn a_workspace_update_sets_every_setting_given_or_none() {
    let break_ = || Some("WA00000000000000070000000000000005".parse::<Sid>().unwrap());
    let unknown = || Some("WA000000000000000700000000000000ff".parse::<Sid>().unwrap());
    let some = |text: &str| Some(text.to_owned());
    let changes = WorkspaceChanges::default;
    check_workspace_update(
        changes(),
        expect![[r#""Test" default=Offline timeout=Offline url=None filter=None order=FIFO"#]],
    );
    check_workspace_update(
        WorkspaceChanges {
            friendly_name: some("Contact center"),
            default_activity: break_(),
            timeout_activity: break_(),
            event_callback_url: some(" https://crm.example.com/events "),
            events_filter: some("task.created, worker.activity.update"),
            prioritize_queue_order: Some(TaskOrder::Lifo),
        },
        expect![[
            r#""Contact center" default=Break timeout=Break url=Some("https://crm.example.com/events") filter=Some("task.created, worker.activity.update") order=LIFO"#
        ]],
    );
    check_workspace_update(
        WorkspaceChanges { event_callback_url: some(""), events_filter: some(""), ..changes() },
        expect![[r#""Test" default=Offline timeout=Offline url=Some("") filter=Some("") order=FIFO"#]],
    );
    check_workspace_update(
        WorkspaceChanges { default_activity: unknown(), ..changes() },
        expect!["refused: activity WA000000000000000700000000000000ff does not exist"],
    );
    check_workspace_update(
        WorkspaceChanges { timeout_activity: break_(), default_activity: unknown(), ..changes() },
        expect!["refused: activity WA000000000000000700000000000000ff does not exist"],
    );
    check_workspace_update(
        WorkspaceChanges { default_activity: break_(), event_callback_url: some("ftp://x"), ..changes() },
        expect![[
            r#"refused: event_callback_url: "ftp://x" is not an absolute http or https URL (empty: no callbacks)"#
        ]],
    );
    check_workspace_update(
        WorkspaceChanges { event_callback_url: some("https:///events"), ..changes() },
        expect![[
            r#"refused: event_callback_url: "https:///events" is not an absolute http or https URL (empty: no callbacks)"#
        ]],
    );
    check_workspace_update(
        WorkspaceChanges { event_callback_url: some("https://a b"), ..changes() },
        expect![[
            r#"refused: event_callback_url: "https://a b" is not an absolute http or https URL (empty: no callbacks)"#
        ]],
    );
    check_workspace_update(
        WorkspaceChanges { events_filter: some("task.created,task.create,worker.moved"), ..changes() },
        expect![
            "refused: events_filter: unknown event type(s): task.create, worker.moved (e.g. task.created,worker.activity.update)"
        ],
    );
    check_workspace_update(
        WorkspaceChanges { friendly_name: some(""), ..changes() },
        expect!["refused: friendly_name: must not be empty"],
    );
}

#[test]
fn the_default_and_timeout_activities_set_by_an_update_apply_from_then_on() {
    let mut sim = onboarding();
    let (unavailable, brk) = (sim.activity("Unavailable"), sim.activity("Break"));
    sim.worker("alice", json!({"routing": {"skills": ["Sales"]}}), "Available");
    let changes = WorkspaceChanges {
        default_activity: Some(unavailable),
        timeout_activity: Some(brk),
        ..WorkspaceChanges::default()
    };
    sim.engine.update_workspace(changes, sim.now).unwrap();
    let new = NewWorker { friendly_name: "amos".into(), attributes: json!({}), activity: None };
    let amos = sim.engine.create_worker(new, sim.now).unwrap();
    sim.names.insert(amos, "amos".into());
    sim.task(json!({"skillsNeeded": ["Sales"]}));
    sim.events();

    sim.at(25.0);

    sim.check(expect![[r#"
        t=20 reservation.timeout task=T1 worker=alice queue=Sales
        t=20 worker.activity.update worker=alice activity=Break"#]]);
    let amos = sim.engine.worker(amos).unwrap();
    assert_eq!(sim.engine.worker_activity(amos).friendly_name, "Unavailable", "the new default");
}

#[test]
fn the_queue_order_set_by_an_update_decides_between_fifo_and_lifo_queues() {
    for (order, first) in [(TaskOrder::Fifo, "T2"), (TaskOrder::Lifo, "T3")] {
        assert_eq!(first_served_after_update(order), first, "{order:?}");
    }
}

#[test]
fn a_workspace_has_at_most_64_task_channels() {
    let mut sim = Sim::new();
    let new = |n: usize| NewTaskChannel {
        friendly_name: format!("Channel {n}"),
        unique_name: format!("c{n}"),
        channel_optimized_routing: false,
        default_capacity: 1,
    };
    for n in sim.engine.channels().len()..64 {
        sim.engine.create_task_channel(new(n), 0).unwrap();
    }
    let refused = sim.engine.create_task_channel(new(64), 0).unwrap_err();
    assert_eq!(refused.to_string(), "unique_name: a workspace has at most 64 task channels");
}
