//! The onboarding guide's workspace as `switchboard.toml` text, for the tests and benchmarks
//! that start the real `switchboard serve` (the crash and chaos tests, the load bench, which
//! includes this file by path).

/// The Sales and Support skills and their queues (after `[workspace]`, or alone).
pub const SKILLS_AND_QUEUES: &str = r#"
[[workspace.skills]]
name = "Sales"

[[workspace.skills]]
name = "Support"

[[workspace.queues]]
name = "Sales"
skill = "Sales"

[[workspace.queues]]
name = "Support"
skill = "Support"
"#;

/// The skills and queues, the "Sales and Support Workflow" (Support to its queue, everything
/// else to Sales) with offers timing out after `reservation_timeout` seconds, and `agents`
/// agents, Available, alternately Sales and Support, each reachable as `client:agentN`.
pub fn sales_and_support(agents: usize, reservation_timeout: u32) -> String {
    let mut config = format!(
        r#"
{SKILLS_AND_QUEUES}
[[workspace.workflows]]
name = "Sales and Support Workflow"
task_reservation_timeout = {reservation_timeout}
default_queue = "Sales"

[[workspace.workflows.filters]]
name = "Support"
skill = "Support"
queue = "Support"
"#
    );
    for agent in 0..agents {
        let skill = if agent % 2 == 0 { "Sales" } else { "Support" };
        config.push_str(&format!(
            "\n[[workspace.workers]]\nname = \"agent{agent}\"\nactivity = \"Available\"\nskills = [\"{skill}\"]\nattributes = {{ contact_uri = \"client:agent{agent}\" }}\n"
        ));
    }
    config
}
