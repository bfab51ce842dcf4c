//! What the engine benchmarks (`durable`, `failover`) load the engine with, shared by both:
//! calls as tasks, 10,000 workers, and concurrent submitters that each wait for durability
//! before their next command, as concurrent HTTP requests would.

use std::sync::Arc;

use serde_json::json;
use switchboard::live::LiveEngine;
use switchboard::routing::{Command, Millis, NewTask, NewWorker, Sid};

/// Concurrent submitters.
pub const SUBMITTERS: usize = 64;

/// A Sales call, numbered `n`, for `workflow`.
pub fn task(n: usize, workflow: Sid) -> Command {
    Command::CreateTask(NewTask {
        attributes: json!({"skillsNeeded": ["Sales"], "call_sid": format!("CA{n:032x}"), "from": "+15550100000"}),
        priority: None,
        timeout: None,
        workflow: Some(workflow),
        channel: Some("voice".into()),
    })
}

/// The default workspace's "Sales and Support Workflow".
pub fn sales_workflow(live: &LiveEngine) -> Sid {
    live.read(|e| e.workflows().iter().find(|w| w.friendly_name == "Sales and Support Workflow").unwrap().sid)
}

/// `count` agents with the Sales skill at level 3, created in the default activity.
pub fn workers(count: usize) -> Vec<Command> {
    (0..count)
        .map(|n| {
            let attributes = json!({"routing": {"skills": ["Sales"], "levels": {"Sales": 3}}, "contact_uri": format!("client:agent{n}")});
            Command::CreateWorker(NewWorker { friendly_name: format!("agent{n}"), attributes, activity: None })
        })
        .collect()
}

/// Submits `commands` at `at` from [`SUBMITTERS`] concurrent tasks, each waiting for
/// durability before its next command.
pub async fn submit_concurrently(live: &Arc<LiveEngine>, commands: Vec<Command>, at: Millis) {
    let commands = Arc::new(std::sync::Mutex::new(commands));
    let mut handles = Vec::new();
    for _ in 0..SUBMITTERS {
        let (live, commands) = (live.clone(), commands.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let Some(command) = commands.lock().unwrap().pop() else { return };
                live.execute_at(command, at).await.unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}
