//! The workspace the routing and statistics benches share: 100 skill queues and a workflow of
//! 100 "Send to <skill>" filters, as the onboarding guide builds them, and available agents
//! with two skills each.

use serde_json::json;
use switchboard::routing::{Engine, NewTaskQueue, NewWorker, NewWorkflow, TaskOrder, WrapUpRules};

pub const SKILLS: usize = 100;

/// A workspace with `n_workers` available agents, each with two of the 100 skills.
pub fn workspace(n_workers: usize) -> Engine {
    let mut engine = Engine::new("Bench", 1, 0);
    let mut filters = Vec::new();
    for skill in 0..SKILLS {
        let queue = engine
            .create_task_queue(
                NewTaskQueue {
                    friendly_name: format!("Skill{skill}"),
                    target_workers: format!(r#"routing.skills HAS "Skill{skill}""#),
                    task_order: TaskOrder::Fifo,
                    max_reserved_workers: 1,
                    wrap_up: WrapUpRules::default(),
                },
                0,
            )
            .unwrap();
        filters.push(json!({
            "filter_friendly_name": format!("Send to Skill{skill}"),
            "expression": format!(r#""Skill{skill}" IN task.skillsNeeded"#),
            "targets": [{"queue": queue.to_string()}],
        }));
    }
    let configuration = json!({"task_routing": {"filters": filters}}).to_string();
    let workflow =
        NewWorkflow { friendly_name: "Skills".into(), configuration, task_reservation_timeout: 20 };
    engine.create_workflow(workflow, 0).unwrap();
    let available = engine.activity_by_name("Available").unwrap().sid;
    for idx in 0..n_workers {
        let skills = [format!("Skill{}", idx % SKILLS), format!("Skill{}", (idx * 7 + 3) % SKILLS)];
        let attributes = json!({
            "full_name": format!("Agent {idx}"),
            "contact_uri": format!("client:agent{idx}"),
            "routing": {"skills": skills, "levels": {skills[0].clone(): 3, skills[1].clone(): 5}},
        });
        let new = NewWorker { friendly_name: format!("agent{idx}"), attributes, activity: Some(available) };
        engine.create_worker(new, 0).unwrap();
    }
    engine.take_events();
    engine
}
