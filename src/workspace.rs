//! The workspace file format: activities, skills, task queues, workflows and workers in TOML,
//! referring to each other by name. `switchboard.toml`'s `[workspace]` defines the starting
//! workspace (the embedded default is the onboarding guide's setup), and scenario files for
//! `switchboard simulate` start with one.
//!
//! Mistakes are reported with the line they are on: serde and toml report syntax, unknown keys
//! and types; [`WorkspaceFile::build`] reports what only the engine can check (unknown queue
//! names, bad expressions, duplicate names) at the line of the item concerned.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use serde_json::{Value, json};
use toml::Spanned;

use crate::routing::{
    Engine, Millis, NewTaskQueue, NewWorker, NewWorkflow, RoutingError, TaskOrder, WrapUpRules,
};

/// The repository's example `switchboard.toml`, whose `[workspace]` is the default workspace.
const EXAMPLE_CONFIG: &str = include_str!("../switchboard.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceFile {
    #[serde(default = "default_friendly_name")]
    pub friendly_name: String,
    /// Activity of new workers; default `Offline`.
    pub default_activity: Option<Spanned<String>>,
    /// Activity a worker moves to when a reservation times out; default `Offline`.
    pub timeout_activity: Option<Spanned<String>>,
    /// `FIFO` or `LIFO`: which queues a worker in both kinds serves first.
    #[serde(default)]
    pub prioritize_queue_order: QueueOrder,
    /// Activities besides Offline, Available, Unavailable and Break.
    #[serde(default)]
    pub activities: Vec<ActivitySpec>,
    #[serde(default)]
    pub skills: Vec<SkillSpec>,
    #[serde(default)]
    pub queues: Vec<QueueSpec>,
    #[serde(default)]
    pub workflows: Vec<WorkflowSpec>,
    #[serde(default)]
    pub workers: Vec<WorkerSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum QueueOrder {
    #[default]
    #[serde(alias = "fifo")]
    FIFO,
    #[serde(alias = "lifo")]
    LIFO,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitySpec {
    pub name: Spanned<String>,
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillSpec {
    pub name: Spanned<String>,
    /// `[minimum, maximum]` when the skill has levels.
    pub levels: Option<[u32; 2]>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    pub name: Spanned<String>,
    /// A skill name: the queue's target workers become that skill's queue expression.
    pub skill: Option<String>,
    /// The target workers expression (default `1==1`, or the skill's expression).
    pub target_workers: Option<String>,
    #[serde(default)]
    pub task_order: QueueOrder,
    #[serde(default = "one")]
    pub max_reserved_workers: u32,
    /// Seconds a task may wrap up before it completes by itself (0: until the agent completes it).
    #[serde(default)]
    pub wrap_up_limit: u32,
    /// The codes an agent picks one of to complete a task (`conversations.outcome`).
    #[serde(default)]
    pub dispositions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    pub name: Spanned<String>,
    #[serde(default = "default_reservation_timeout")]
    pub task_reservation_timeout: u32,
    #[serde(default)]
    pub filters: Vec<Spanned<FilterSpec>>,
    /// The queue of the default filter, for tasks that match no filter.
    pub default_queue: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    pub name: Option<String>,
    /// A skill name: the filter's expression becomes that skill's workflow expression.
    pub skill: Option<String>,
    pub expression: Option<String>,
    /// A single target by queue name (a shortcut for `targets = [{ queue = "..." }]`).
    pub queue: Option<String>,
    #[serde(default)]
    pub targets: Vec<TargetSpec>,
}

/// A workflow target, as in TaskRouter's JSON but with the queue by name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub queue: Option<String>,
    pub priority: Option<i64>,
    pub timeout: Option<u32>,
    pub expression: Option<String>,
    pub order_by: Option<String>,
    pub skip_if: Option<String>,
    pub known_worker_sid: Option<String>,
    pub known_worker_friendly_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    pub name: Spanned<String>,
    /// Default: the workspace's default activity.
    pub activity: Option<String>,
    /// Skill names, written to `routing.skills`.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Skill levels, written to `routing.levels`.
    #[serde(default)]
    pub levels: BTreeMap<String, u32>,
    /// Any other attributes (`contact_uri`, `full_name`...).
    #[serde(default)]
    pub attributes: toml::Table,
    /// Capacity per task channel, e.g. `{ sms = 5 }`.
    #[serde(default)]
    pub capacity: BTreeMap<String, u32>,
}

/// A workspace file mistake, with the 1-based line it is on when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|line| format!("line {line}: ")).unwrap_or_default())]
pub struct WorkspaceError {
    pub line: Option<usize>,
    pub message: String,
}

fn default_friendly_name() -> String {
    "Switchboard".to_owned()
}

fn one() -> u32 {
    1
}

fn default_reservation_timeout() -> u32 {
    120
}

impl Default for WorkspaceFile {
    /// The `[workspace]` of the repository's example `switchboard.toml`: the onboarding guide's
    /// Sales and Support setup.
    fn default() -> WorkspaceFile {
        /// Only the `[workspace]` part of the example; the rest is the other settings'.
        #[derive(Deserialize)]
        struct Example {
            workspace: WorkspaceFile,
        }
        let example: Example = toml::from_str(EXAMPLE_CONFIG)
            .expect("the example switchboard.toml has a valid [workspace]; a test checks it");
        example.workspace
    }
}

impl From<QueueOrder> for TaskOrder {
    fn from(order: QueueOrder) -> TaskOrder {
        match order {
            QueueOrder::FIFO => TaskOrder::Fifo,
            QueueOrder::LIFO => TaskOrder::Lifo,
        }
    }
}

impl WorkspaceFile {
    /// Builds an engine holding this workspace. `source` is the text the file was parsed from
    /// (for line numbers); `salt` seeds the SIDs.
    pub fn build(&self, source: &str, salt: u64, now: Millis) -> Result<Engine, WorkspaceError> {
        let at = |span: Range<usize>| move |err: RoutingError| located(source, span.clone(), err.to_string());
        let mut engine = Engine::new(&self.friendly_name, salt, now);
        for activity in &self.activities {
            engine
                .create_activity(activity.name.get_ref(), activity.available, now)
                .map_err(at(activity.name.span()))?;
        }
        let activity = |engine: &Engine, name: &Spanned<String>| {
            engine.activity_by_name(name.get_ref()).map(|activity| activity.sid).ok_or_else(|| {
                located(source, name.span(), format!("no activity named {:?}", name.get_ref()))
            })
        };
        let default_activity = match &self.default_activity {
            Some(name) => activity(&engine, name)?,
            None => engine.settings().default_activity,
        };
        let timeout_activity = match &self.timeout_activity {
            Some(name) => activity(&engine, name)?,
            None => engine.settings().timeout_activity,
        };
        engine
            .configure_workspace(default_activity, timeout_activity, self.prioritize_queue_order.into())
            .map_err(|err| located(source, 0..0, err.to_string()))?;
        for skill in &self.skills {
            let levels = skill.levels.map(|[minimum, maximum]| (minimum, maximum));
            engine.create_skill(skill.name.get_ref(), levels).map_err(at(skill.name.span()))?;
        }
        for queue in &self.queues {
            let target_workers = match (&queue.skill, &queue.target_workers) {
                (Some(_), Some(_)) => {
                    return Err(located(
                        source,
                        queue.name.span(),
                        "give `skill` or `target_workers`, not both".into(),
                    ));
                }
                (Some(skill), None) => skill_by_name(&engine, skill)
                    .map(|skill| skill.queue_expression())
                    .ok_or_else(|| located(source, queue.name.span(), format!("no skill named {skill:?}")))?,
                (None, Some(expression)) => expression.clone(),
                (None, None) => "1==1".to_owned(),
            };
            let new = NewTaskQueue {
                friendly_name: queue.name.get_ref().clone(),
                target_workers,
                task_order: queue.task_order.into(),
                max_reserved_workers: queue.max_reserved_workers,
                wrap_up: WrapUpRules {
                    limit_seconds: queue.wrap_up_limit,
                    dispositions: queue.dispositions.clone(),
                },
            };
            engine.create_task_queue(new, now).map_err(at(queue.name.span()))?;
        }
        for workflow in &self.workflows {
            let configuration = self.workflow_json(&engine, workflow, source)?;
            let new = NewWorkflow {
                friendly_name: workflow.name.get_ref().clone(),
                configuration,
                task_reservation_timeout: workflow.task_reservation_timeout,
            };
            let err_at = |err: RoutingError| {
                let span = match &err {
                    RoutingError::InvalidWorkflow { location, .. } => filter_span(workflow, location),
                    _ => None,
                };
                let message = format!("workflow {:?}: {err}", workflow.name.get_ref());
                located(source, span.unwrap_or(workflow.name.span()), message)
            };
            engine.create_workflow(new, now).map_err(err_at)?;
        }
        for worker in &self.workers {
            self.add_worker(&mut engine, worker, default_activity, now).map_err(at(worker.name.span()))?;
        }
        engine.take_events();
        Ok(engine)
    }

    /// TaskRouter's JSON configuration for a workflow, queue names replaced by SIDs.
    fn workflow_json(
        &self,
        engine: &Engine,
        workflow: &WorkflowSpec,
        source: &str,
    ) -> Result<String, WorkspaceError> {
        let queue_sid = |name: &str, span: Range<usize>| {
            engine.queue_by_name(name).map(|queue| queue.sid.to_string()).ok_or_else(|| {
                located(
                    source,
                    span,
                    format!("workflow {:?}: no queue named {name:?}", workflow.name.get_ref()),
                )
            })
        };
        let mut filters = Vec::new();
        for filter in &workflow.filters {
            let span = filter.span();
            let filter = filter.get_ref();
            let expression = match (&filter.skill, &filter.expression) {
                (Some(skill), None) => skill_by_name(engine, skill)
                    .map(|skill| skill.workflow_expression())
                    .ok_or_else(|| located(source, span.clone(), format!("no skill named {skill:?}")))?,
                (None, Some(expression)) => expression.clone(),
                _ => {
                    return Err(located(
                        source,
                        span,
                        "a filter needs `skill` or `expression` (one of them)".into(),
                    ));
                }
            };
            let mut targets = Vec::new();
            // A levelled skill's queue offers its task to the highest level first.
            let order_by =
                filter.skill.as_ref().and_then(|skill| skill_by_name(engine, skill)?.target_order_by());
            let shortcut = filter.queue.iter().map(|queue| TargetSpec {
                queue: Some(queue.clone()),
                priority: None,
                timeout: None,
                expression: None,
                order_by: order_by.clone(),
                skip_if: None,
                known_worker_sid: None,
                known_worker_friendly_name: None,
            });
            for target in shortcut.chain(filter.targets.iter().cloned()) {
                let mut json = serde_json::Map::new();
                if let Some(queue) = &target.queue {
                    json.insert("queue".into(), Value::from(queue_sid(queue, span.clone())?));
                }
                let optional = [
                    ("priority", target.priority.map(Value::from)),
                    ("timeout", target.timeout.map(Value::from)),
                    ("expression", target.expression.map(Value::from)),
                    ("order_by", target.order_by.map(Value::from)),
                    ("skip_if", target.skip_if.map(Value::from)),
                    ("known_worker_sid", target.known_worker_sid.map(Value::from)),
                    ("known_worker_friendly_name", target.known_worker_friendly_name.map(Value::from)),
                ];
                json.extend(optional.into_iter().filter_map(|(key, value)| Some((key.to_owned(), value?))));
                targets.push(Value::Object(json));
            }
            let name = filter.name.clone().or(filter.skill.as_ref().map(|skill| format!("Send to {skill}")));
            filters
                .push(json!({ "filter_friendly_name": name, "expression": expression, "targets": targets }));
        }
        let mut routing = json!({ "filters": filters });
        if let Some(queue) = &workflow.default_queue {
            routing["default_filter"] = json!({ "queue": queue_sid(queue, workflow.name.span())? });
        }
        Ok(json!({ "task_routing": routing }).to_string())
    }

    fn add_worker(
        &self,
        engine: &mut Engine,
        worker: &WorkerSpec,
        default_activity: crate::routing::Sid,
        now: Millis,
    ) -> Result<(), RoutingError> {
        let activity = match &worker.activity {
            Some(name) => engine.activity_by_name(name).map(|activity| activity.sid).ok_or_else(|| {
                RoutingError::Invalid { field: "activity", message: format!("no activity named {name:?}") }
            })?,
            None => default_activity,
        };
        let attributes = serde_json::to_value(&worker.attributes)
            .map_err(|err| RoutingError::Invalid { field: "attributes", message: err.to_string() })?;
        let mut skills: Vec<(String, Option<u32>)> =
            worker.skills.iter().map(|skill| (skill.clone(), worker.levels.get(skill).copied())).collect();
        if let Some(orphan) = worker.levels.keys().find(|skill| !worker.skills.contains(skill)) {
            skills.push((orphan.clone(), worker.levels.get(orphan).copied()));
        }
        let attributes = if skills.is_empty() {
            attributes
        } else {
            crate::routing::assign_skills(&attributes, &skills, None, engine.skills())?
        };
        let new =
            NewWorker { friendly_name: worker.name.get_ref().clone(), attributes, activity: Some(activity) };
        let sid = engine.create_worker(new, now)?;
        for (channel, capacity) in &worker.capacity {
            engine.set_worker_channel(sid, channel, Some(*capacity), None, now)?;
        }
        Ok(())
    }
}

fn skill_by_name<'a>(engine: &'a Engine, name: &str) -> Option<&'a crate::routing::Skill> {
    engine.skills().iter().find(|skill| skill.name == name)
}

/// The span of the filter a workflow error names (`filter 2 ...`), if any.
fn filter_span(workflow: &WorkflowSpec, location: &str) -> Option<Range<usize>> {
    let number: usize =
        location.strip_prefix("filter ")?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    workflow.filters.get(number.checked_sub(1)?).map(Spanned::span)
}

fn located(source: &str, span: Range<usize>, message: String) -> WorkspaceError {
    WorkspaceError { line: (span.end > 0).then(|| line_of(source, span.start)), message }
}

/// The 1-based line of byte `offset` in `source`, for errors found through `toml::Spanned`.
pub(crate) fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    /// Builds the `[workspace]` in `text`, rendering the error if it is refused.
    fn check_error(text: &str, expected: Expect) {
        #[derive(Deserialize)]
        struct File {
            workspace: WorkspaceFile,
        }
        let rendered = match toml::from_str::<File>(text) {
            Err(err) => format!("toml: {}", err.message()),
            Ok(file) => match file.workspace.build(text, 0, 0) {
                Ok(_) => "built".to_owned(),
                Err(err) => err.to_string(),
            },
        };
        expected.assert_eq(&rendered);
    }

    #[test]
    fn the_default_workspace_is_the_onboarding_guide_setup() {
        let engine = WorkspaceFile::default().build(EXAMPLE_CONFIG, 0, 0).unwrap();

        let skills: Vec<String> = engine
            .skills()
            .iter()
            .map(|s| format!("{} | {} | {}", s.name, s.queue_expression(), s.workflow_expression()))
            .collect();
        assert_eq!(
            skills,
            [
                r#"Sales | routing.skills HAS "Sales" | "Sales" IN task.skillsNeeded"#,
                r#"Support | routing.skills HAS "Support" | "Support" IN task.skillsNeeded"#,
            ]
        );
        let queues: Vec<String> = engine
            .queues()
            .iter()
            .map(|q| {
                let members: Vec<String> = engine
                    .queue_members(q)
                    .iter()
                    .map(|&sid| engine.worker(sid).unwrap().friendly_name.clone())
                    .collect();
                format!("{}: {} -> {}", q.friendly_name, q.target_workers, members.join(", "))
            })
            .collect();
        assert_eq!(
            queues,
            [
                "Everyone: 1==1 -> alice, bob",
                r#"Sales: routing.skills HAS "Sales" -> alice, bob"#,
                r#"Support: routing.skills HAS "Support" -> bob"#,
            ]
        );
        let workflows: Vec<(String, u32)> = engine
            .workflows()
            .iter()
            .map(|w| (w.friendly_name.clone(), w.task_reservation_timeout))
            .collect();
        assert_eq!(
            workflows,
            [("Assign to Anyone".to_owned(), 120), ("Sales and Support Workflow".to_owned(), 20)]
        );
        // The levelled skills' targets offer a task to the highest level first.
        let routed =
            engine.workflows().iter().find(|w| w.friendly_name == "Sales and Support Workflow").unwrap();
        let configuration: serde_json::Value = serde_json::from_str(&routed.configuration).unwrap();
        let orders: Vec<&serde_json::Value> = configuration["task_routing"]["filters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|filter| &filter["targets"][0]["order_by"])
            .collect();
        assert_eq!(orders, ["worker.routing.levels.Sales DESC", "worker.routing.levels.Support DESC"]);
        let bob = engine.worker_by_name("bob").unwrap();
        assert_eq!(
            *bob.attributes,
            serde_json::json!({
                "full_name": "Bob Example", "contact_uri": "client:bob",
                "routing": {"skills": ["Support", "Sales"], "levels": {"Support": 5, "Sales": 2}}
            })
        );
    }

    #[test]
    fn workspace_mistakes_name_their_line() {
        check_error(
            "[workspace]\n[[workspace.skills]]\nname = \"Tier 1\"\n",
            expect![[
                r#"line 3: skill: "Tier 1" is not a valid skill name: use 1 to 64 letters, digits and `_` (no spaces or hyphens)"#
            ]],
        );
        check_error(
            "[workspace]\n[[workspace.queues]]\nname = \"Sales\"\nskill = \"Sales\"\n",
            expect![[r#"line 3: no skill named "Sales""#]],
        );
        check_error(
            "[workspace]\n[[workspace.queues]]\nname = \"Q\"\n\n[[workspace.workflows]]\nname = \"W\"\n\n[[workspace.workflows.filters]]\nexpression = \"1==1\"\nqueue = \"Nope\"\n",
            expect![[r#"line 8: workflow "W": no queue named "Nope""#]],
        );
        check_error(
            "[workspace]\n[[workspace.queues]]\nname = \"Q\"\n\n[[workspace.workflows]]\nname = \"W\"\n\n[[workspace.workflows.filters]]\nexpression = \"1==1\"\n\n[[workspace.workflows.filters]]\nexpression = \"a ==\"\nqueue = \"Q\"\n",
            expect![[
                r#"line 8: workflow "W": workflow configuration, filter 1: `targets` must be a non-empty array"#
            ]],
        );
        check_error(
            "[workspace]\n[[workspace.skills]]\nname = \"Sales\"\nlevels = [1, 5]\n\n[[workspace.workers]]\nname = \"ann\"\nskills = [\"Sales\"]\nlevels = { Sales = 9 }\n",
            expect!["line 7: levels: Sales level 9 is outside the skill's range 1-5"],
        );
        check_error(
            "[workspace]\ntimeout_activity = \"Lunch\"\n",
            expect![[r#"line 2: no activity named "Lunch""#]],
        );
        check_error(
            "[workspace]\n[[workspace.workers]]\nname = \"ann\"\nskils = []\n",
            expect![
                "toml: unknown field `skils`, expected one of `name`, `activity`, `skills`, `levels`, `attributes`, `capacity`"
            ],
        );
        check_error(
            "[workspace]\n[[workspace.activities]]\nname = \"Training\"\navailable = false\n\n[[workspace.workers]]\nname = \"ann\"\nactivity = \"Training\"\ncapacity = { sms = 5 }\n",
            expect!["built"],
        );
    }
}
