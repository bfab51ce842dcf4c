//! The skills catalogue, as Flex keeps it outside TaskRouter: a skill is a name and an optional
//! level range. Each skill yields the two expressions the onboarding guide has you paste: the
//! queue's target workers and the workflow filter.
//!
//! A worker's skills live in its attributes exactly as Flex writes them: `routing.skills` (an
//! array of names) and `routing.levels.<Skill>` (an integer).

use serde_json::{Map, Value};

use super::RoutingError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    pub name: String,
    /// Inclusive (minimum, maximum) level, when the skill has levels.
    pub levels: Option<(u32, u32)>,
}

impl Skill {
    /// Validates a skill. Names are letters, digits and `_`: a space or a hyphen would make the
    /// expressions below fail, as the onboarding guide warns.
    pub fn new(name: &str, levels: Option<(u32, u32)>) -> Result<Skill, RoutingError> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if name.is_empty() || name.len() > 64 || !name.chars().all(valid_char) {
            return Err(RoutingError::invalid(
                "skill",
                format!(
                    "{name:?} is not a valid skill name: use 1 to 64 letters, digits and `_` (no spaces or hyphens)"
                ),
            ));
        }
        if let Some((minimum, maximum)) = levels
            && minimum > maximum
        {
            return Err(RoutingError::invalid(
                "levels",
                format!("minimum {minimum} is above maximum {maximum}"),
            ));
        }
        Ok(Skill { name: name.to_owned(), levels })
    }

    /// The target workers expression of this skill's queue.
    pub fn queue_expression(&self) -> String {
        format!(r#"routing.skills HAS "{}""#, self.name)
    }

    /// The workflow filter expression that sends a task needing this skill to its queue.
    pub fn workflow_expression(&self) -> String {
        format!(r#""{}" IN task.skillsNeeded"#, self.name)
    }

    /// The `order_by` of that filter's target, for a skill with levels: the highest level is
    /// offered the task first, as the onboarding guide promises (workers without a level last).
    pub fn target_order_by(&self) -> Option<String> {
        self.levels.map(|_| format!("worker.routing.levels.{} DESC", self.name))
    }
}

/// Writes `skills` (name, level) into worker attributes as Flex does (`routing.skills`,
/// `routing.levels`), and `disabled` ones in `disabled_skills` (`skills`, `levels`), where they
/// keep their level but match no `routing.skills` expression. `disabled: None` keeps the
/// switched-off skills the worker has, less any now given in `skills` (switched back on).
/// Every other attribute is kept. Skills must exist in `catalogue`, levels must be in the
/// skill's range, and a skill is given once.
pub fn assign_skills(
    attributes: &Value,
    skills: &[(String, Option<u32>)],
    disabled: Option<&[(String, Option<u32>)]>,
    catalogue: &[Skill],
) -> Result<Value, RoutingError> {
    let kept;
    let disabled = match disabled {
        Some(disabled) => disabled,
        None => {
            kept = switched_off(attributes, skills);
            &kept
        }
    };
    let mut seen: Vec<&str> = Vec::new();
    for (name, _) in skills.iter().chain(disabled) {
        if seen.iter().any(|other| other.eq_ignore_ascii_case(name)) {
            return Err(RoutingError::invalid("skills", format!("{name} is given twice")));
        }
        seen.push(name);
    }
    let mut attributes = attributes.as_object().cloned().unwrap_or_default();
    let routing = attributes.entry("routing").or_insert_with(|| Value::Object(Map::new()));
    if !routing.is_object() {
        *routing = Value::Object(Map::new());
    }
    write_skills(routing.as_object_mut().expect("made an object"), skills, catalogue)?;
    if disabled.is_empty() {
        attributes.remove("disabled_skills");
    } else {
        let mut kept = Map::new();
        write_skills(&mut kept, disabled, catalogue)?;
        attributes.insert("disabled_skills".to_owned(), Value::Object(kept));
    }
    Ok(Value::Object(attributes))
}

/// The switched-off skills in `attributes` (name, level), less those in `enabled`.
fn switched_off(attributes: &Value, enabled: &[(String, Option<u32>)]) -> Vec<(String, Option<u32>)> {
    let disabled = &attributes["disabled_skills"];
    let names = disabled["skills"].as_array().map(Vec::as_slice).unwrap_or_default();
    names
        .iter()
        .filter_map(Value::as_str)
        .filter(|name| !enabled.iter().any(|(other, _)| other.eq_ignore_ascii_case(name)))
        .map(|name| {
            let level = disabled["levels"][name].as_u64().and_then(|level| u32::try_from(level).ok());
            (name.to_owned(), level)
        })
        .collect()
}

/// Writes `skills` and `levels` into `into`.
fn write_skills(
    into: &mut Map<String, Value>,
    skills: &[(String, Option<u32>)],
    catalogue: &[Skill],
) -> Result<(), RoutingError> {
    let mut names = Vec::new();
    let mut levels = Map::new();
    for (name, level) in skills {
        let Some(skill) = catalogue.iter().find(|skill| &skill.name == name) else {
            return Err(RoutingError::invalid("skills", format!("unknown skill {name:?}: create it first")));
        };
        match (level, skill.levels) {
            (Some(level), Some((minimum, maximum))) if !(minimum..=maximum).contains(level) => {
                return Err(RoutingError::invalid(
                    "levels",
                    format!("{name} level {level} is outside the skill's range {minimum}-{maximum}"),
                ));
            }
            (Some(_), None) => {
                return Err(RoutingError::invalid("levels", format!("{name} has no levels")));
            }
            (Some(level), Some(_)) => {
                levels.insert(name.clone(), Value::from(*level));
            }
            (None, _) => {}
        }
        names.push(Value::from(name.as_str()));
    }
    into.insert("skills".to_owned(), Value::Array(names));
    into.insert("levels".to_owned(), Value::Object(levels));
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn skills_yield_the_guide_expressions_and_refuse_bad_names() {
        let sales = Skill::new("Sales", None).unwrap();
        assert_eq!(sales.queue_expression(), r#"routing.skills HAS "Sales""#);
        assert_eq!(sales.workflow_expression(), r#""Sales" IN task.skillsNeeded"#);
        assert_eq!(sales.target_order_by(), None);
        let levelled = Skill::new("Spanish", Some((1, 5))).unwrap();
        assert_eq!(levelled.target_order_by().as_deref(), Some("worker.routing.levels.Spanish DESC"));
        for bad in ["Tier 1", "tier-1", "", "Ünicode"] {
            let err = Skill::new(bad, None).unwrap_err().to_string();
            assert!(err.contains("is not a valid skill name"), "{err}");
        }
        assert!(Skill::new("Tier_1", Some((1, 10))).is_ok());
        assert_eq!(
            Skill::new("X", Some((5, 1))).unwrap_err().to_string(),
            "levels: minimum 5 is above maximum 1"
        );
    }

    #[test]
    fn assigning_skills_writes_routing_skills_and_levels_like_flex() {
        let catalogue = [Skill::new("Sales", Some((1, 10))).unwrap(), Skill::new("Support", None).unwrap()];
        let attributes = json!({"contact_uri": "client:alice", "routing": {"skills": ["Old"]}});
        let skills = [("Sales".to_owned(), Some(3)), ("Support".to_owned(), None)];
        let written = assign_skills(&attributes, &skills, Some(&[]), &catalogue).unwrap();
        assert_eq!(
            written,
            json!({"contact_uri": "client:alice", "routing": {"skills": ["Sales", "Support"], "levels": {"Sales": 3}}})
        );
        let check_err = |skills: &[(String, Option<u32>)], message: &str| {
            assert_eq!(
                assign_skills(&attributes, skills, Some(&[]), &catalogue).unwrap_err().to_string(),
                message
            );
        };
        check_err(&[("Billing".into(), None)], r#"skills: unknown skill "Billing": create it first"#);
        check_err(&[("Sales".into(), Some(11))], "levels: Sales level 11 is outside the skill's range 1-10");
        check_err(&[("Support".into(), Some(2))], "levels: Support has no levels");
    }

    #[test]
    fn a_disabled_skill_keeps_its_level_outside_routing_and_comes_back_with_it() {
        let catalogue = [Skill::new("Sales", Some((1, 10))).unwrap(), Skill::new("Support", None).unwrap()];
        let sales = [("Sales".to_owned(), Some(4))];
        let support = [("Support".to_owned(), None)];
        let disabled = assign_skills(&json!({"x": 1}), &support, Some(&sales), &catalogue).unwrap();
        assert_eq!(
            disabled,
            json!({"x": 1, "routing": {"skills": ["Support"], "levels": {}}, "disabled_skills": {"skills": ["Sales"], "levels": {"Sales": 4}}})
        );
        // Without a list of switched-off skills, those there are stay, less those switched on.
        let kept = assign_skills(&disabled, &support, None, &catalogue).unwrap();
        assert_eq!(kept, disabled);
        let enabled = assign_skills(&disabled, &sales, None, &catalogue).unwrap();
        assert_eq!(enabled, json!({"x": 1, "routing": {"skills": ["Sales"], "levels": {"Sales": 4}}}));
        let twice = assign_skills(&enabled, &sales, Some(&[("SALES".to_owned(), None)]), &catalogue);
        assert_eq!(twice.unwrap_err().to_string(), "skills: SALES is given twice");
    }
}
