//! IVR scenario tests (`ivr/tests/*.toml`): callers' paths written down as keys pressed and
//! what should come of them, run through the walker. A scenario file:
//!
//! ```toml
//! flow = "main.toml"                 # in the IVR folder
//!
//! [[calls]]
//! name = "a sales caller"
//! keys = ["7", "-", "1"]             # "-" is silence
//! hears = ["Thanks for calling...", "Sorry, that is not...", "Thanks for calling..."]
//! route = { skills = ["Sales"], workflow = "Sales and Support Workflow" }
//! attributes = { language = "en-US", ivr_path = "1" }   # must be among the task's
//! ```
//!
//! `hears` (every prompt, in order, across the call) is optional; a call ends in `route` or
//! `hangup = true`, and exactly one of them must be given. For a flow with business hours,
//! `at = "2026-11-24T10:00:00-05:00"` says when the call comes in.
//!
//! Beside keys, a caller may speak (`{ speech = "sales please" }`) and a forwarded call end
//! (`{ dial = "busy" }`); `dialed = ["+15550100300"]` lists where the call was forwarded. A
//! lookup is answered by the scenario: `lookup.crm = { tier = "gold" }` (the answer's fields)
//! or `lookup.crm = "timed out"` (it failed). `from = "+15550100999"` is who calls,
//! `channel = "sms"` walks it as texts (each entry of `keys` a text), and
//! `variables = { account = "12345678" }` must be among the call's variables at its end.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::Flow;
use super::load::IvrError;
use super::walk::{CallState, Caller, Effect, Input, Medium, step};
use crate::twiml::{DialTarget, Prompt, Verb};
use crate::workspace::line_of;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    flow: String,
    calls: Vec<Spanned<CallFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallFile {
    name: String,
    #[serde(default)]
    keys: Vec<KeyFile>,
    hears: Option<Vec<String>>,
    dialed: Option<Vec<String>>,
    /// What each lookup step answers: its fields, or why it failed.
    #[serde(default)]
    lookup: toml::Table,
    from: Option<String>,
    #[serde(default = "default_channel")]
    channel: String,
    variables: Option<toml::Table>,
    route: Option<ExpectedRoute>,
    attributes: Option<toml::Table>,
    #[serde(default)]
    hangup: bool,
    /// When the call comes in (RFC 3339), for flows with business hours.
    at: Option<String>,
}

/// What a caller does: keys (`-` for silence), or a text by SMS; words said; how a forwarded
/// call ended.
#[derive(Deserialize)]
#[serde(untagged)]
enum KeyFile {
    Keys(String),
    Speech { speech: String },
    Dial { dial: String },
}

fn default_channel() -> String {
    "voice".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedRoute {
    skills: Vec<String>,
    workflow: Option<String>,
    priority: Option<i64>,
}

/// A scenario file read but not yet run: which flow it tests, and its calls.
pub struct Scenarios {
    pub flow: String,
    calls: Vec<(usize, CallFile, Option<Timestamp>)>,
}

/// One call's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    pub name: String,
    pub line: usize,
    /// `None` when the call went as written; otherwise what differed.
    pub failure: Option<String>,
}

/// Reads a scenario file; `source` is its text (for line numbers).
pub fn read_scenarios(source: &str) -> Result<Scenarios, IvrError> {
    let file: ScenarioFile = toml::from_str(source).map_err(|err| IvrError {
        line: err.span().map(|span| line_of(source, span.start)),
        message: err.message().to_owned(),
    })?;
    let mut calls = Vec::new();
    for call in file.calls {
        let line = line_of(source, call.span().start);
        let call = call.into_inner();
        if call.route.is_some() == call.hangup {
            return Err(IvrError {
                line: Some(line),
                message: format!("call {:?}: give exactly one of route or hangup = true", call.name),
            });
        }
        let at = match &call.at {
            Some(text) => Some(text.parse::<Timestamp>().map_err(|_| IvrError {
                line: Some(line),
                message: format!(
                    "call {:?}: at = {text:?} is not an RFC 3339 time (2026-11-24T10:00:00-05:00)",
                    call.name
                ),
            })?),
            None => None,
        };
        calls.push((line, call, at));
    }
    Ok(Scenarios { flow: file.flow, calls })
}

impl Scenarios {
    /// Runs every call through `flow`.
    pub fn run(&self, flow: &Flow) -> Vec<CallOutcome> {
        self.calls
            .iter()
            .map(|(line, call, at)| CallOutcome {
                name: call.name.clone(),
                line: *line,
                failure: run_call(flow, call, *at).err(),
            })
            .collect()
    }
}

fn run_call(flow: &Flow, call: &CallFile, at: Option<Timestamp>) -> Result<(), String> {
    let at = match (at, &flow.hours) {
        (Some(at), _) => at,
        (None, None) => Timestamp::UNIX_EPOCH,
        (None, Some(_)) => return Err("the flow has business hours: give the call an `at` time".to_owned()),
    };
    let by_text = match call.channel.as_str() {
        "voice" => false,
        "sms" | "whatsapp" => true,
        other => return Err(format!("channel {other:?} is not voice, sms or whatsapp")),
    };
    let from = call.from.as_deref().unwrap_or("+15550000000");
    let to = flow.numbers.first().map_or("+15550000001", String::as_str);
    let caller = Caller { from, to, channel: &call.channel, now: at };
    let action = |_: &CallState| "/voice/ivr".to_owned();
    let medium = if by_text { Medium::Text } else { Medium::Voice(&action) };
    let mut state = CallState::new(flow, at);
    let mut heard = Vec::new();
    let mut dialed = Vec::new();
    let mut keys = call.keys.iter();
    let mut input = Input::Start;
    // The route the call ended in; `None` for a hang-up.
    let routed = loop {
        let outcome = step(flow, state, &input, medium, &caller);
        heard.extend(outcome.response.verbs.iter().flat_map(texts));
        dialed.extend(outcome.response.verbs.iter().filter_map(|verb| match verb {
            Verb::Dial(dial) => Some(match &dial.target {
                DialTarget::Number(to) | DialTarget::Sip(to) => to.clone(),
                DialTarget::Client(name) => format!("client:{name}"),
                DialTarget::Conference(room) => room.name.clone(),
            }),
            _ => None,
        }));
        state = outcome.state;
        match outcome.effect {
            Effect::Continue => {}
            Effect::Route(route) => break Some(route),
            Effect::Hangup => break None,
            Effect::Lookup(request) => {
                input = Input::Looked(match call.lookup.get(&state.menu) {
                    // Read as a live answer is, `keep` and all.
                    Some(toml::Value::Table(fields)) => match serde_json::to_string(fields) {
                        Ok(answer) => super::lookup_answer(&answer, &request.keep),
                        Err(_) => Err("the scenario's answer is not JSON".to_owned()),
                    },
                    Some(toml::Value::String(reason)) => Err(reason.clone()),
                    _ => {
                        return Err(format!(
                            "the call looked up at step {:?}: give its answer as lookup.{} = {{ field = ... }} or a reason it failed",
                            state.menu, state.menu
                        ));
                    }
                });
                continue;
            }
        }
        let Some(key) = keys.next() else {
            return Err(format!("the keys ran out at step {:?}; the call had not ended", state.menu));
        };
        input = match key {
            KeyFile::Keys(keys) if by_text => Input::Text(keys.clone()),
            KeyFile::Keys(keys) => Input::Digits(if keys == "-" { String::new() } else { keys.clone() }),
            KeyFile::Speech { speech } => Input::Speech(speech.clone()),
            KeyFile::Dial { dial } => Input::Dialed(dial.clone()),
        };
    };
    if keys.len() > 0 {
        return Err(format!("the call ended with {} key(s) left unpressed", keys.len()));
    }
    if let Some(hears) = &call.hears
        && *hears != heard
    {
        return Err(format!("heard {heard:?}, expected {hears:?}"));
    }
    if let Some(expected) = &call.dialed
        && *expected != dialed
    {
        return Err(format!("dialled {dialed:?}, expected {expected:?}"));
    }
    for (name, value) in call.variables.iter().flatten() {
        let value = serde_json::to_value(value).unwrap_or_default();
        let got = state.memory.variables.get(name);
        if got != Some(&value) {
            return Err(format!("variable {name} is {}, expected {value}", got.unwrap_or(&Value::Null)));
        }
    }
    match (routed, &call.route) {
        (Some(route), Some(expected)) => {
            let skills = route.attributes.get("skillsNeeded").cloned().unwrap_or(Value::Null);
            let actual = (skills, route.workflow.clone(), route.priority);
            let wanted = (serde_json::json!(expected.skills), expected.workflow.clone(), expected.priority);
            if actual != wanted {
                return Err(format!(
                    "routed with skills {}, workflow {:?}, priority {:?}; expected skills {}, workflow {:?}, priority {:?}",
                    actual.0, actual.1, actual.2, wanted.0, wanted.1, wanted.2
                ));
            }
            for (name, value) in call.attributes.iter().flatten() {
                let value = serde_json::to_value(value).unwrap_or_default();
                let got = route.attributes.get(name);
                if got != Some(&value) {
                    return Err(format!(
                        "task attribute {name} is {}, expected {value}",
                        got.unwrap_or(&Value::Null)
                    ));
                }
            }
            Ok(())
        }
        (None, None) => Ok(()),
        (Some(route), None) => Err(format!("the call was routed ({}), expected a hang-up", route.attributes)),
        (None, Some(_)) => Err("the call hung up, expected a route".to_owned()),
    }
}

/// What a caller hears from one verb: spoken text, or the URL of what is played.
fn texts(verb: &Verb) -> Vec<String> {
    match verb {
        Verb::Say(say) => vec![say.text.clone()],
        Verb::Play(play) => vec![play.url.clone()],
        Verb::Message(message) => vec![message.body.clone()],
        Verb::Gather(gather) => gather
            .prompts
            .iter()
            .filter_map(|prompt| match prompt {
                Prompt::Say(say) => Some(say.text.clone()),
                Prompt::Play(play) => Some(play.url.clone()),
                Prompt::Pause { .. } => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
