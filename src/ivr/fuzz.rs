//! What any text must do when it is read as a flow file, and a flow when it is walked: the
//! checks behind the IVR fuzz targets, shared by the proptest targets (`tests.rs`) and cargo
//! fuzz's `ivr` target (`crate::fuzzing`, `fuzz/`).

use proptest::prelude::*;

use super::{CallState, Caller, Effect, Flow, Input, IvrError, Medium, load_flow, located, step};

/// `source` is a flow (returned, to be walked) or mistakes that each name a line of it.
pub(crate) fn check_source(source: &str) -> Result<Option<Flow>, TestCaseError> {
    match load_flow(source) {
        Ok(flow) => Ok(Some(flow)),
        Err(errors) => assert_located(source, &errors).map(|()| None),
    }
}

/// Every refusal names a line of the file, and is shown as `file:line: message`.
fn assert_located(source: &str, errors: &[IvrError]) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty());
    let lines = source.matches('\n').count() + 1;
    for err in errors {
        let line = err.line;
        prop_assert!(line.is_some_and(|line| (1..=lines).contains(&line)), "{:?} in {:?}", err, source);
        let shown = located(std::path::Path::new("ivr/fuzz.toml"), line, &err.message);
        prop_assert!(
            shown.starts_with(&format!("ivr/fuzz.toml:{}: ", line.unwrap_or_default())),
            "{}",
            shown
        );
        prop_assert!(!err.message.is_empty());
    }
    Ok(())
}

/// Walks `flow` from `state` through `inputs` by voice or by text.
pub(crate) fn assert_walks(
    flow: &Flow,
    mut state: CallState,
    inputs: &[Input],
    by_text: bool,
) -> Result<(), TestCaseError> {
    let action = |state: &CallState| format!("/voice/ivr?menu={}", state.menu);
    let medium = if by_text { Medium::Text } else { Medium::Voice(&action) };
    for input in inputs {
        let caller = Caller {
            from: "+15550100999",
            to: "+15550100200",
            channel: if by_text { "sms" } else { "voice" },
            now: jiff::Timestamp::UNIX_EPOCH,
        };
        let next = step(flow, state.clone(), input, medium, &caller);
        let _ = next.response.to_xml();
        match &next.effect {
            Effect::Continue | Effect::Lookup(_) => {
                prop_assert!(flow.steps.contains_key(&next.state.menu), "{:?}", next.state)
            }
            Effect::Route(route) => {
                prop_assert!(route.attributes.get("skillsNeeded").is_some(), "{:?}", route)
            }
            Effect::Hangup => {}
        }
        state = next.state;
    }
    Ok(())
}
