//! The pure walk of a flow: one step per webhook. The state travels with the call: the caller
//! of [`step`] chooses how (the voice webhooks write it into the signed action URL); the step
//! says what the caller hears next and what to do.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{Choice, Flow, Menu, Prompt, Route};
use crate::routing::{NewTask, Workflow};
use crate::twiml::{self, Gather, Method, Response, Say, Verb};

/// Where a call is in its flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallState {
    pub menu: String,
    /// Failed attempts (no input, invalid key) in this menu so far.
    pub failures: u32,
    pub language: String,
    /// Keys pressed so far, for the task's attributes and the agent's screen.
    pub path: Vec<String>,
}

/// What the caller did since the last step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The call just arrived.
    Start,
    /// Keys pressed (the `Digits` of a Gather); empty means nothing was pressed.
    Digits(String),
    /// A text message: a key, or one of the menu's keywords in any case.
    Text(String),
    /// A message recorded in a voicemail menu; an empty URL means nothing was recorded.
    Recording { url: String, duration: u32 },
}

/// What the HTTP layer does after a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Play `response` and wait for the next input at the action URL.
    Continue,
    /// Create a task and put the caller on hold; `response` is empty.
    Route(RouteRequest),
    /// The flow ends: `response` says goodbye and hangs up.
    Hangup,
}

/// The task an IVR route asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRequest {
    /// The workflow by name; none: the workspace's only workflow.
    pub workflow: Option<String>,
    pub priority: Option<i64>,
    /// `skillsNeeded`, `language`, `ivr_path`, the route's own attributes and, for a
    /// voicemail, `voicemail: {url, duration}`.
    pub attributes: Value,
    /// The caller left a message and is hanging up (the response says thanks): the task is a
    /// call-back, and the caller's hang-up must not cancel it.
    pub voicemail: bool,
}

impl RouteRequest {
    /// The task this route creates on `channel` among the workspace's `workflows`, with
    /// `extra` attributes (who called, which flow...) beside the route's own. An error names
    /// a workflow that does not exist.
    pub fn into_task(
        self,
        workflows: &[Workflow],
        channel: &str,
        extra: &[(&str, Value)],
    ) -> Result<NewTask, String> {
        let workflow = match &self.workflow {
            Some(name) => Some(
                workflows
                    .iter()
                    .find(|workflow| &workflow.friendly_name == name)
                    .map(|workflow| workflow.sid)
                    .ok_or_else(|| format!("the IVR routes to workflow {name:?}, which does not exist"))?,
            ),
            None => None,
        };
        let mut attributes = self.attributes;
        for (name, value) in extra {
            attributes[*name] = value.clone();
        }
        Ok(NewTask {
            attributes,
            priority: self.priority,
            timeout: None,
            workflow,
            channel: Some(channel.to_owned()),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub response: Response,
    pub state: CallState,
    pub effect: Effect,
}

/// Said when a caller has used up a menu's attempts and the menu has no `on_fail`.
const GOODBYE: &str = "Sorry, we could not understand your choice. Goodbye.";
/// Said after a voicemail was recorded.
const MESSAGE_TAKEN: &str = "Thank you. We will call you back. Goodbye.";

impl CallState {
    /// A new call arriving at `now`: at the flow's start, or in its `closed` menu outside
    /// business hours; in the flow's default language.
    pub fn new(flow: &Flow, now: Timestamp) -> CallState {
        let menu = match &flow.hours {
            Some(hours) if !hours.is_open(now) => hours.closed.clone(),
            _ => flow.start.clone(),
        };
        CallState { menu, failures: 0, language: flow.language.clone(), path: Vec::new() }
    }
}

/// How the flow reaches the person.
#[derive(Clone, Copy)]
pub enum Medium<'a> {
    /// A phone call: TwiML verbs; `action` gives, for the state the call moves to, the URL the
    /// caller's next keys are posted to.
    Voice(&'a dyn Fn(&CallState) -> String),
    /// Text messages: each reply is one `<Message>`, with the menu's `sms` text (or its `say`
    /// text) and the answer expected by text.
    Text,
}

/// One step of `flow` for a call (or conversation) in `state` after `input`.
pub fn step(flow: &Flow, state: &CallState, input: &Input, medium: Medium<'_>) -> Step {
    let mut state = state.clone();
    let Some(menu) = flow.menus.get(&state.menu) else {
        // A flow edited while the call was in it: start over rather than fail the caller.
        let restart = CallState { menu: flow.start.clone(), failures: 0, path: Vec::new(), ..state };
        return enter(flow, restart, medium, None);
    };
    let digits = match input {
        Input::Start => return enter(flow, state, medium, None),
        Input::Digits(digits) if menu.voicemail.is_none() => digits.trim().to_owned(),
        Input::Text(text) if menu.voicemail.is_none() => {
            let text = text.trim();
            match menu.keywords.get(&text.to_lowercase()) {
                Some(key) => key.to_string(),
                None => text.to_owned(),
            }
        }
        Input::Recording { url, duration } if !url.is_empty() && menu.voicemail.is_some() => {
            let route = menu.voicemail.as_ref().expect("checked");
            let mut request = route_request(flow, &state, route);
            request.attributes["voicemail"] = json!({"url": url, "duration": duration});
            request.voicemail = true;
            let response = farewell(flow, &state.language, Some(MESSAGE_TAKEN), medium);
            return Step { response, state, effect: Effect::Route(request) };
        }
        // No message (or keys where a message was expected): nothing to route.
        _ => {
            let response = farewell(flow, &state.language, None, medium);
            return Step { response, state, effect: Effect::Hangup };
        }
    };
    let choice = digits.chars().next().and_then(|key| menu.options.get(&key).map(|choice| (key, choice)));
    let Some((key, choice)) = choice else {
        let complaint = if digits.is_empty() { &menu.no_input } else { &menu.invalid };
        // The count arrives in the action URL, so it may already be u32::MAX (found by fuzzing).
        state.failures = state.failures.saturating_add(1);
        if state.failures > menu.retries {
            return match &menu.on_fail {
                Some(on_fail) => {
                    state.menu = on_fail.clone();
                    state.failures = 0;
                    enter(flow, state, medium, None)
                }
                None => Step {
                    response: farewell(flow, &state.language, Some(GOODBYE), medium),
                    state,
                    effect: Effect::Hangup,
                },
            };
        }
        return enter(flow, state, medium, complaint.as_ref());
    };
    state.path.push(key.to_string());
    state.failures = 0;
    match choice {
        Choice::Menu(next) => {
            state.menu = next.clone();
            enter(flow, state, medium, None)
        }
        Choice::Language { language, menu: next } => {
            state.language = language.clone();
            if let Some(next) = next {
                state.menu = next.clone();
            }
            enter(flow, state, medium, None)
        }
        Choice::Route(route) => {
            let request = route_request(flow, &state, route);
            Step { response: Response::default(), state, effect: Effect::Route(request) }
        }
    }
}

fn route_request(flow: &Flow, state: &CallState, route: &Route) -> RouteRequest {
    let mut attributes = json!({
        "skillsNeeded": route.skills,
        "language": state.language,
        "ivr_path": state.path.join(","),
    });
    if let (Value::Object(into), Value::Object(extra)) = (&mut attributes, &route.attributes) {
        for (name, value) in extra {
            into.insert(name.clone(), value.clone());
        }
    }
    RouteRequest {
        workflow: route.workflow.clone().or_else(|| flow.workflow.clone()),
        priority: route.priority,
        attributes,
        voicemail: false,
    }
}

/// The TwiML of `state.menu`, preceded by `complaint` (why the caller hears it again).
fn enter(flow: &Flow, state: CallState, medium: Medium<'_>, complaint: Option<&Prompt>) -> Step {
    let Some(menu) = flow.menus.get(&state.menu) else {
        let response = farewell(flow, &state.language, None, medium);
        return Step { response, state, effect: Effect::Hangup };
    };
    let action = match medium {
        Medium::Voice(action) => action,
        Medium::Text => {
            let mut texts: Vec<String> =
                complaint.map(|c| text(flow, &state.language, c)).into_iter().collect();
            texts.push(match &menu.sms {
                Some(sms) => localized(flow, &state.language, sms),
                None => text(flow, &state.language, &menu.prompt),
            });
            let body = texts.into_iter().filter(|text| !text.is_empty()).collect::<Vec<_>>().join(" ");
            // A menu that hangs up or records a voicemail ends a text conversation.
            let effect =
                if menu.hangup || menu.voicemail.is_some() { Effect::Hangup } else { Effect::Continue };
            return Step { response: Response::new(vec![Verb::Message(message(body))]), state, effect };
        }
    };
    let mut prompts: Vec<twiml::Prompt> =
        complaint.map(|c| prompt(flow, &state.language, c)).into_iter().collect();
    prompts.push(prompt(flow, &state.language, &menu.prompt));
    if menu.hangup {
        let mut verbs: Vec<Verb> = prompts.into_iter().map(Verb::from).collect();
        verbs.push(Verb::Hangup);
        return Step { response: Response::new(verbs), state, effect: Effect::Hangup };
    }
    if menu.voicemail.is_some() {
        let mut verbs: Vec<Verb> = prompts.into_iter().map(Verb::from).collect();
        verbs.push(Verb::Record(record(&action(&state), menu.max_length)));
        return Step { response: Response::new(verbs), state, effect: Effect::Continue };
    }
    let response = Response::new(vec![Verb::Gather(gather(menu, &action(&state), prompts, &state.language))]);
    Step { response, state, effect: Effect::Continue }
}

fn gather(menu: &Menu, action: &str, prompts: Vec<twiml::Prompt>, language: &str) -> Gather {
    Gather {
        action: Some(action.to_owned()),
        method: Some(Method::Post),
        input: Some("dtmf".to_owned()),
        timeout: Some(menu.timeout),
        num_digits: Some(1),
        // Silence posts to the action too, so that the walk counts it as a failed attempt.
        action_on_empty_result: Some(true),
        language: Some(language.to_owned()),
        prompts,
        ..Gather::default()
    }
}

/// A voicemail recording whose result is posted to `action`.
pub fn record(action: &str, max_length: u32) -> twiml::Record {
    twiml::Record {
        action: Some(action.to_owned()),
        method: Some(Method::Post),
        timeout: Some(5),
        max_length: Some(max_length),
        finish_on_key: Some("#".to_owned()),
        play_beep: Some(true),
        ..twiml::Record::default()
    }
}

/// Text spoken in the flow's voice, in `language`.
pub fn say(flow: &Flow, language: &str, text: &str) -> Say {
    Say {
        text: text.to_owned(),
        voice: flow.voice.clone(),
        language: Some(language.to_owned()),
        repeat: None,
    }
}

/// How a conversation or call ends: `text` said (or texted), then, on a call, hang up.
fn farewell(flow: &Flow, language: &str, text: Option<&str>, medium: Medium<'_>) -> Response {
    match medium {
        Medium::Voice(_) => {
            let said = text.map(|text| Verb::Say(say(flow, language, text)));
            Response::new(said.into_iter().chain([Verb::Hangup]).collect())
        }
        Medium::Text => {
            Response::new(text.map(|text| Verb::Message(message(text.to_owned()))).into_iter().collect())
        }
    }
}

/// A text message with `body`, to whoever wrote.
pub fn message(body: String) -> twiml::Message {
    twiml::Message { body, to: None, from: None, media: Vec::new() }
}

/// A prompt's text in `language` (falling back to the flow's); an audio prompt has none.
fn text(flow: &Flow, language: &str, prompt: &Prompt) -> String {
    match prompt {
        Prompt::Say(texts) => localized(flow, language, texts),
        Prompt::Play(_) => String::new(),
    }
}

fn localized(flow: &Flow, language: &str, texts: &std::collections::BTreeMap<String, String>) -> String {
    // Loading guarantees a text per language; the default language is the fallback.
    texts.get(language).or_else(|| texts.get(&flow.language)).cloned().unwrap_or_default()
}

fn prompt(flow: &Flow, language: &str, prompt: &Prompt) -> twiml::Prompt {
    match prompt {
        Prompt::Say(texts) => twiml::Prompt::Say(say(flow, language, &localized(flow, language, texts))),
        Prompt::Play(url) => twiml::Prompt::Play(twiml::Play { url: url.clone(), repeat: None }),
    }
}
