//! The pure walk of a flow: one step per webhook. The state travels with the call: the caller
//! of [`step`] chooses how (the voice webhooks write it into the signed action URL, texts keep it
//! in the conversation); the step says what the caller hears next and what to do.
//!
//! A walk goes through the steps that do not wait for the caller (`next`, `when`, `set`) in
//! one go, saying their prompts on the way, until one waits (a menu, a collect, a dial, a
//! voicemail), ends the call, routes it, or needs a lookup: then the shell makes the request
//! and walks on from the lookup with its result ([`Input::Looked`]).

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::memory::{self, Memory};
use super::{Action, Attempts, Choice, Flow, Menu, Node, Prompt, Route, Set};
use crate::expr::{Clock, Scope};
use crate::routing::{NewTask, Workflow};
use crate::twiml::{self, Gather, Method, Response, Say, Verb};

/// Where a call is in its flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallState {
    /// The step the call is at.
    pub menu: String,
    /// Failed attempts (no input, invalid answer) at this step so far.
    pub failures: u32,
    pub language: String,
    /// Menu keys pressed so far (the last [`MAX_PATH`]), for the task's attributes and the
    /// agent's screen.
    pub path: Vec<String>,
    pub memory: Memory,
}

/// Who is calling (or texting) whom, on which channel, and when: what `when` expressions and
/// `{{...}}` templates read besides the variables (`from`, `to`, `channel`, `language`,
/// `taskrouter.currentTime`...).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub from: &'a str,
    pub to: &'a str,
    /// `voice`, `sms` or `whatsapp`.
    pub channel: &'a str,
    pub now: Timestamp,
}

/// The most menu choices a call's path keeps (the newest): a caller going round a menu must
/// not grow the action URL and the task's attributes past their bounds.
pub const MAX_PATH: usize = 50;

/// What the caller did since the last step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The call just arrived.
    Start,
    /// Keys pressed (the `Digits` of a Gather); empty means nothing was pressed.
    Digits(String),
    /// A text message: a key, or one of the menu's keywords in any case.
    Text(String),
    /// What the caller said (a Gather's `SpeechResult`).
    Speech(String),
    /// A message recorded in a voicemail menu; an empty URL means nothing was recorded.
    Recording { url: String, duration: u32 },
    /// How a forwarded call ended (`DialCallStatus`).
    Dialed(String),
    /// A lookup's answer fields, or why it failed.
    Looked(Result<Map<String, Value>, String>),
}

/// What the shell does after a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Play `response` and wait for the next input at the action URL.
    Continue,
    /// Create a task and put the caller on hold after `response` (what was said on the way).
    Route(RouteRequest),
    /// The flow ends: `response` says goodbye and hangs up.
    Hangup,
    /// Make this request, then step again from `state` with [`Input::Looked`]; `response` is
    /// what was said on the way, to be played before what follows.
    Lookup(LookupRequest),
}

/// A lookup to make: a form POST of `params` to `url`, signed like the provider's webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRequest {
    pub url: String,
    /// Seconds to wait for the answer.
    pub timeout: u32,
    /// The answer's fields to keep; empty: all.
    pub keep: Vec<String>,
    /// `From`, `To`, `Channel`, `Language`, `Step`, then every variable (objects and lists as
    /// JSON).
    pub params: Vec<(String, String)>,
}

/// The task an IVR route asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRequest {
    /// The workflow by name; none: the workspace's only workflow.
    pub workflow: Option<String>,
    pub priority: Option<i64>,
    /// `skillsNeeded`, `language`, `ivr_path`, the route's own attributes, those the flow set,
    /// `ivr_variables` and, for a voicemail, `voicemail: {url, duration}`.
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
/// What a texter hears once their message for a voicemail step is taken.
const TEXT_TAKEN: &str = "Thank you, we have your message.";
/// Said when a forwarded call was not answered and the step says nothing more.
const NOBODY_ANSWERED: &str = "Sorry, nobody could take your call. Goodbye.";
/// What a texter gets at a `dial` with nowhere to go after it (a text cannot be forwarded).
const NOBODY_TO_TEXT: &str = "Sorry, nobody can take your message here. Goodbye.";
/// Said when a walk goes through more steps than any flow that loads can make it (a flow that
/// changed under the call).
const LOST: &str = "Sorry, something went wrong. Goodbye.";
/// Steps walked without waiting for the caller, at most, in one step of the walk. Loading
/// refuses flows that loop without waiting, so only a flow changed under a call gets here.
const MAX_HOPS: usize = 256;

impl CallState {
    /// A new call arriving at `now`: at the flow's start, or in its `closed` menu outside
    /// business hours; in the flow's default language.
    pub fn new(flow: &Flow, now: Timestamp) -> CallState {
        let menu = match &flow.hours {
            Some(hours) if !hours.is_open(now) => hours.closed.clone(),
            _ => flow.start.clone(),
        };
        CallState {
            menu,
            failures: 0,
            language: flow.language.clone(),
            path: Vec::new(),
            memory: Memory::default(),
        }
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
pub fn step(
    flow: &Flow,
    mut state: CallState,
    input: &Input,
    medium: Medium<'_>,
    caller: &Caller<'_>,
) -> Step {
    let walk = Walk { flow, medium, caller, said: Vec::new() };
    let Some(node) = flow.steps.get(&state.menu) else {
        // A flow edited while the call was in it: start over rather than fail the caller.
        let restart = CallState { menu: flow.start.clone(), failures: 0, path: Vec::new(), ..state };
        return walk.enter(restart, None);
    };
    match (&node.action, input) {
        (_, Input::Start) => walk.enter(state, None),
        (Action::Menu(menu), input) => walk.choose(state, menu, input),
        (Action::Collect(collect), input) => {
            let answer = match input {
                Input::Digits(digits) => digits.trim().trim_end_matches('#').to_owned(),
                // A texter may end their answer with # as a caller does.
                Input::Text(text) => text.trim().trim_end_matches('#').trim_end().to_owned(),
                Input::Speech(text) => text.trim().to_owned(),
                _ => String::new(),
            };
            if answer.is_empty() {
                return walk.failed(state, &collect.attempts, false);
            }
            if !collect.accepts(&answer, matches!(medium, Medium::Voice(_))) {
                return walk.failed(state, &collect.attempts, true);
            }
            let before = state.memory.variables.insert(collect.into.clone(), Value::String(answer));
            if !state.memory.fits() {
                match before {
                    Some(before) => state.memory.variables.insert(collect.into.clone(), before),
                    None => state.memory.variables.shift_remove(&collect.into),
                };
                return walk.failed(state, &collect.attempts, true);
            }
            walk.go(state, &collect.next)
        }
        (Action::Voicemail { route, .. }, Input::Recording { url, duration }) if !url.is_empty() => {
            let mut request = route_request(flow, &state, route);
            request.attributes["voicemail"] = json!({"url": url, "duration": duration});
            request.voicemail = true;
            walk.finish(state, Some(MESSAGE_TAKEN), Effect::Route(request))
        }
        // By text: the text is the message, carried by the task as a recording is.
        (Action::Voicemail { route, .. }, Input::Text(message)) if !message.trim().is_empty() => {
            let mut request = route_request(flow, &state, route);
            request.attributes["voicemail"] = json!({"text": message});
            walk.finish(state, Some(TEXT_TAKEN), Effect::Route(request))
        }
        // No message (or keys where a message was expected): nothing to route.
        (Action::Voicemail { .. }, _) => walk.finish(state, None, Effect::Hangup),
        (Action::Dial(dial), Input::Dialed(status)) => {
            let next = match status.as_str() {
                "completed" | "answered" => return walk.finish(state, None, Effect::Hangup),
                "busy" => dial.on_busy.as_ref().or(dial.on_no_answer.as_ref()),
                _ => dial.on_no_answer.as_ref(),
            };
            match next {
                Some(next) => walk.go(state, next),
                None => walk.finish(state, Some(NOBODY_ANSWERED), Effect::Hangup),
            }
        }
        (Action::Lookup(lookup), Input::Looked(answer)) => {
            let mut memory = state.memory.clone();
            memory.variables.remove("lookup_error");
            let failure = match answer {
                Ok(fields) => {
                    memory.variables.extend(fields.clone());
                    (!memory.fits()).then(|| {
                        format!(
                            "the answer's fields take more than the {} bytes a call carries; name the fields to keep",
                            memory::MAX_CARRIED
                        )
                    })
                }
                Err(reason) => Some(reason.clone()),
            };
            match failure {
                None => {
                    state.memory = memory;
                    walk.go(state, &lookup.next)
                }
                Some(reason) => {
                    let mut with_error = state.memory.clone();
                    let reason: String = reason.chars().take(200).collect();
                    with_error.variables.insert("lookup_error".to_owned(), Value::String(reason));
                    if with_error.fits() {
                        state.memory = with_error;
                    }
                    walk.go(state, &lookup.on_error)
                }
            }
        }
        // A step that does not wait for this input (the flow changed under the call, or the
        // provider retried): carry on from it.
        _ => walk.enter(state, None),
    }
}

impl super::Collect {
    /// Whether `answer` is what this step collects: the keys it expects (by voice: digits, and
    /// `*` when the pattern allows it), and its pattern.
    fn accepts(&self, answer: &str, by_voice: bool) -> bool {
        let star = self.pattern.is_some();
        let digits = answer.bytes().all(|b| b.is_ascii_digit() || (star && b == b'*'));
        let count = answer.chars().count();
        let shape = match self.digits {
            Some(wanted) => digits && count == wanted as usize,
            None if by_voice => digits && count <= self.max_digits as usize,
            None => count <= super::MAX_COLLECT_TEXT,
        };
        shape && self.pattern.as_ref().is_none_or(|pattern| pattern.regex.is_match(answer))
    }
}

/// One step of a walk: the flow, how it reaches the caller, and what was said on the way.
struct Walk<'a> {
    flow: &'a Flow,
    medium: Medium<'a>,
    caller: &'a Caller<'a>,
    /// Prompts of the steps walked through, to be said before what the walk stops at.
    said: Vec<Said>,
}

/// What a step that waits for the caller asks for.
#[derive(Clone, Copy)]
enum Asking<'a> {
    Menu(&'a Menu),
    Collect(&'a super::Collect),
}

/// A prompt on its way to the caller: TwiML by voice, a text by message.
enum Said {
    Voice(twiml::Prompt),
    Text(String),
}

impl Walk<'_> {
    /// Enters `state.menu` (after `complaint`, why the caller hears it again) and walks on
    /// until a step waits for the caller or ends the walk.
    fn enter(mut self, mut state: CallState, mut complaint: Option<&Prompt>) -> Step {
        for _ in 0..MAX_HOPS {
            let Some(node) = self.flow.steps.get(&state.menu) else {
                return self.finish(state, None, Effect::Hangup);
            };
            if let Some(set) = &node.set {
                apply(set, &mut state, self.caller);
            }
            if let Some(complaint) = complaint.take() {
                self.say(&state, complaint);
            }
            match &node.action {
                Action::Menu(menu) => return self.ask(state, node, Asking::Menu(menu)),
                Action::Collect(collect) => return self.ask(state, node, Asking::Collect(collect)),
                Action::Next(next) => {
                    self.say_node(&state, node);
                    state.menu = next.clone();
                    state.failures = 0;
                }
                Action::When(when) => {
                    self.say_node(&state, node);
                    let clock = Clock::from_unix_seconds(self.caller.now.as_second());
                    let branch = with_facts(&mut state, self.caller, &when.reads, |document| {
                        let scope = Scope::task(document).at(clock);
                        when.branches.iter().find(|branch| branch.condition.evaluate(&scope))
                    });
                    if let Some(say) = branch.and_then(|branch| branch.say.as_ref()) {
                        self.say(&state, say);
                    }
                    state.menu = branch.map_or(&when.otherwise, |branch| &branch.next).clone();
                    state.failures = 0;
                }
                Action::Lookup(lookup) => {
                    self.say_node(&state, node);
                    let request = LookupRequest {
                        url: lookup.url.clone(),
                        timeout: lookup.timeout,
                        keep: lookup.keep.clone(),
                        params: lookup_params(&state, self.caller),
                    };
                    let response = self.response(Vec::new());
                    return Step { response, state, effect: Effect::Lookup(request) };
                }
                Action::Dial(dial) => {
                    self.say_node(&state, node);
                    let Medium::Voice(action) = self.medium else {
                        // A text cannot be forwarded: it goes where an unanswered call would.
                        match &dial.on_no_answer {
                            Some(next) => {
                                state.menu = next.clone();
                                state.failures = 0;
                                continue;
                            }
                            None => return self.finish(state, Some(NOBODY_TO_TEXT), Effect::Hangup),
                        }
                    };
                    let verb = Verb::Dial(twiml::Dial {
                        target: dial.target.clone(),
                        action: Some(action(&state)),
                        method: Some(Method::Post),
                        timeout: Some(dial.ring),
                        caller_id: dial.caller_id.clone(),
                        answer_on_bridge: None,
                    });
                    return Step { response: self.response(vec![verb]), state, effect: Effect::Continue };
                }
                Action::Route(route) => {
                    self.say_node(&state, node);
                    let request = route_request(self.flow, &state, route);
                    return Step {
                        response: self.response(Vec::new()),
                        state,
                        effect: Effect::Route(request),
                    };
                }
                Action::Voicemail { max_length, .. } => {
                    self.say_node(&state, node);
                    let Medium::Voice(action) = self.medium else {
                        // By text the message is the next text: the step waits for it.
                        return Step { response: self.response(Vec::new()), state, effect: Effect::Continue };
                    };
                    let verb = Verb::Record(record(&action(&state), *max_length));
                    return Step { response: self.response(vec![verb]), state, effect: Effect::Continue };
                }
                Action::Hangup => {
                    self.say_node(&state, node);
                    return self.finish(state, None, Effect::Hangup);
                }
            }
        }
        self.finish(state, Some(LOST), Effect::Hangup)
    }

    /// Goes to step `next` (its failures start again) and walks on.
    fn go(self, mut state: CallState, next: &str) -> Step {
        state.menu = next.to_owned();
        state.failures = 0;
        self.enter(state, None)
    }

    /// A menu's (or a collect's) question, with whatever was said on the way, waiting for the
    /// caller's answer.
    fn ask(mut self, state: CallState, node: &Node, asking: Asking<'_>) -> Step {
        let action = match self.medium {
            Medium::Voice(action) => action,
            Medium::Text => {
                let text = match &node.sms {
                    Some(sms) => self.render(&state, localized(self.flow, &state.language, sms)),
                    None => node.prompt.as_ref().map(|prompt| self.text(&state, prompt)).unwrap_or_default(),
                };
                self.said.push(Said::Text(text));
                return Step { response: self.response(Vec::new()), state, effect: Effect::Continue };
            }
        };
        self.say_node(&state, node);
        let prompts = self.said.drain(..).filter_map(|said| match said {
            Said::Voice(prompt) => Some(prompt),
            Said::Text(_) => None,
        });
        let (attempts, speech, num_digits, finish_on_key) = match asking {
            Asking::Menu(menu) => (
                &menu.attempts,
                menu.speech.as_ref(),
                Some(1),
                one_key_finish(menu.options.contains_key(&'#')),
            ),
            Asking::Collect(collect) => (&collect.attempts, None, collect.digits, Some("#".to_owned())),
        };
        let gather = Gather {
            action: Some(action(&state)),
            method: Some(Method::Post),
            input: Some(if speech.is_some() { "dtmf speech" } else { "dtmf" }.to_owned()),
            timeout: Some(attempts.timeout),
            num_digits,
            finish_on_key,
            // Silence posts to the action too, so that the walk counts it as a failed attempt.
            action_on_empty_result: Some(true),
            language: Some(state.language.clone()),
            hints: speech.filter(|hints| !hints.is_empty()).cloned(),
            speech_timeout: speech.map(|_| "auto".to_owned()),
            prompts: prompts.collect(),
        };
        Step { response: Response::new(vec![Verb::Gather(gather)]), state, effect: Effect::Continue }
    }

    /// The caller chose (or failed to choose) at `menu`.
    fn choose(self, mut state: CallState, menu: &Menu, input: &Input) -> Step {
        let key = match input {
            // A menu gathers one key: more were meant for another kind of step (a collect this
            // step was before a reload), not a choice here.
            Input::Digits(digits) => {
                let mut keys = digits.trim().chars();
                keys.next().filter(|_| keys.next().is_none())
            }
            Input::Text(text) => {
                let text = text.trim();
                let word = text.to_lowercase();
                menu.keywords
                    .get(&word)
                    .copied()
                    .or_else(|| text.chars().next().filter(|key| menu.options.contains_key(key)))
                    .or_else(|| heard(menu, text))
                    .or_else(|| text.chars().next())
            }
            Input::Speech(words) => heard(menu, words),
            _ => None,
        };
        let empty = match input {
            Input::Digits(text) | Input::Text(text) | Input::Speech(text) => text.trim().is_empty(),
            _ => true,
        };
        let Some((key, option)) = key.and_then(|key| menu.options.get(&key).map(|option| (key, option)))
        else {
            return self.failed(state, &menu.attempts, !empty);
        };
        if state.path.len() >= MAX_PATH {
            // The newest choices: the path travels in the action URL and lands in the task.
            state.path.remove(0);
        }
        state.path.push(key.to_string());
        state.failures = 0;
        let mut walk = self;
        if let Some(say) = &option.say {
            walk.say(&state, say);
        }
        match &option.choice {
            Choice::Step(next) => walk.go(state, next),
            Choice::Language { language, menu: next } => {
                state.language = language.clone();
                let next = next.clone().unwrap_or_else(|| state.menu.clone());
                walk.go(state, &next)
            }
            Choice::Route(route) => {
                let request = route_request(walk.flow, &state, route);
                Step { response: walk.response(Vec::new()), state, effect: Effect::Route(request) }
            }
        }
    }

    /// A failed attempt (`invalid`: an answer that was not one; else silence): the question
    /// again with the complaint, or, past the retries, `on_fail` (or goodbye).
    fn failed(self, mut state: CallState, attempts: &Attempts, invalid: bool) -> Step {
        // The count arrives in the action URL, so it may already be u32::MAX (found by fuzzing).
        state.failures = state.failures.saturating_add(1);
        if state.failures > attempts.retries {
            return match &attempts.on_fail {
                Some(on_fail) => self.go(state, on_fail),
                None => self.finish(state, Some(GOODBYE), Effect::Hangup),
            };
        }
        let complaint = if invalid { &attempts.invalid } else { &attempts.no_input };
        self.enter(state, complaint.as_ref())
    }

    /// Ends the walk with `effect`: what was said, then `text`, then (on a call that does not
    /// route) a hang-up.
    fn finish(mut self, state: CallState, text: Option<&str>, effect: Effect) -> Step {
        if let Some(text) = text {
            self.said.push(match self.medium {
                Medium::Voice(_) => Said::Voice(twiml::Prompt::Say(say(self.flow, &state.language, text))),
                Medium::Text => Said::Text(text.to_owned()),
            });
        }
        // A caller who left a message hangs up too: the task waits for an agent without them.
        let ends = matches!(&effect, Effect::Hangup | Effect::Route(RouteRequest { voicemail: true, .. }));
        let hang_up = matches!(self.medium, Medium::Voice(_)) && ends;
        let response = self.response(if hang_up { vec![Verb::Hangup] } else { Vec::new() });
        Step { response, state, effect }
    }

    /// What was said, then `verbs`: TwiML verbs by voice, one message by text.
    fn response(&mut self, verbs: Vec<Verb>) -> Response {
        let mut out = Vec::new();
        let mut texts = Vec::new();
        for said in self.said.drain(..) {
            match said {
                Said::Voice(prompt) => out.push(Verb::from(prompt)),
                Said::Text(text) if !text.is_empty() => texts.push(text),
                Said::Text(_) => {}
            }
        }
        if !texts.is_empty() {
            out.push(Verb::Message(message(texts.join(" "))));
        }
        out.extend(verbs);
        Response::new(out)
    }

    /// Says a step's own prompt (by text, its `sms` text when it has one).
    fn say_node(&mut self, state: &CallState, node: &Node) {
        match (&node.sms, self.medium) {
            (Some(sms), Medium::Text) => {
                let text = self.render(state, localized(self.flow, &state.language, sms));
                self.said.push(Said::Text(text));
            }
            _ => {
                if let Some(prompt) = &node.prompt {
                    self.say(state, prompt);
                }
            }
        }
    }

    fn say(&mut self, state: &CallState, prompt: &Prompt) {
        let said = match self.medium {
            Medium::Voice(_) => Said::Voice(match prompt {
                Prompt::Say(texts) => {
                    let text = self.render(state, localized(self.flow, &state.language, texts));
                    twiml::Prompt::Say(say(self.flow, &state.language, &text))
                }
                Prompt::Play(url) => twiml::Prompt::Play(twiml::Play { url: url.clone(), repeat: None }),
            }),
            Medium::Text => Said::Text(self.text(state, prompt)),
        };
        self.said.push(said);
    }

    /// A prompt's text in the caller's language; an audio prompt has none.
    fn text(&self, state: &CallState, prompt: &Prompt) -> String {
        match prompt {
            Prompt::Say(texts) => self.render(state, localized(self.flow, &state.language, texts)),
            Prompt::Play(_) => String::new(),
        }
    }

    fn render(&self, state: &CallState, template: &str) -> String {
        memory::render(template, |name| fact(state, self.caller, name).map(|value| memory::as_text(&value)))
    }
}

/// Applies a step's `set`, unless the memory would no longer fit in what a call carries.
fn apply(set: &Set, state: &mut CallState, caller: &Caller<'_>) {
    let mut memory = state.memory.clone();
    for (name, value) in &set.variables {
        memory.variables.insert(name.clone(), rendered(value, state, caller));
    }
    for (name, value) in &set.attributes {
        memory.attributes.insert(name.clone(), rendered(value, state, caller));
    }
    if set.priority.is_some() {
        memory.priority = set.priority;
    }
    for skill in &set.skills {
        if !memory.skills.contains(skill) {
            memory.skills.push(skill.clone());
        }
    }
    if memory.fits() {
        state.memory = memory;
    }
}

/// `value` with the templates of its texts filled in.
fn rendered(value: &Value, state: &CallState, caller: &Caller<'_>) -> Value {
    match value {
        Value::String(template) => Value::String(memory::render(template, |name| {
            fact(state, caller, name).map(|value| memory::as_text(&value))
        })),
        Value::Array(items) => Value::Array(items.iter().map(|item| rendered(item, state, caller)).collect()),
        Value::Object(fields) => Value::Object(
            fields.iter().map(|(name, item)| (name.clone(), rendered(item, state, caller))).collect(),
        ),
        other => other.clone(),
    }
}

/// What `name` reads: a fact about the call, else a variable.
fn fact(state: &CallState, caller: &Caller<'_>, name: &str) -> Option<Value> {
    let text = match name {
        "from" => caller.from,
        "to" => caller.to,
        "channel" => caller.channel,
        "language" => &state.language,
        _ => return state.memory.get(name).cloned(),
    };
    Some(Value::String(text.to_owned()))
}

/// The facts about the call every flow may read, by name.
pub(super) const FACTS: [&str; 4] = ["from", "to", "channel", "language"];

/// Runs `read` on the variables and the facts in `reads`, as one document (the one `when`
/// expressions are evaluated against; facts win over variables of the same name). The
/// variables are lent, not copied: a `when` runs on every step of a busy line.
fn with_facts<T>(
    state: &mut CallState,
    caller: &Caller<'_>,
    reads: &[String],
    read: impl FnOnce(&Value) -> T,
) -> T {
    let facts: Vec<(&str, Value)> = FACTS
        .iter()
        .filter(|name| reads.iter().any(|read| read == *name))
        .filter_map(|&name| Some((name, fact(state, caller, name)?)))
        .collect();
    let mut fields = std::mem::take(&mut state.memory.variables);
    let displaced: Vec<(&str, Option<Value>)> =
        facts.into_iter().map(|(name, value)| (name, fields.insert(name.to_owned(), value))).collect();
    let document = Value::Object(fields);
    let result = read(&document);
    let Value::Object(mut fields) = document else { unreachable!("built as an object above") };
    for (name, before) in displaced.into_iter().rev() {
        match before {
            Some(before) => fields.insert(name.to_owned(), before),
            None => fields.shift_remove(name),
        };
    }
    state.memory.variables = fields;
    result
}

/// What a lookup posts: the facts, the step, then every variable.
fn lookup_params(state: &CallState, caller: &Caller<'_>) -> Vec<(String, String)> {
    let mut params = vec![
        ("From".to_owned(), caller.from.to_owned()),
        ("To".to_owned(), caller.to.to_owned()),
        ("Channel".to_owned(), caller.channel.to_owned()),
        ("Language".to_owned(), state.language.clone()),
        ("Step".to_owned(), state.menu.clone()),
    ];
    for (name, value) in &state.memory.variables {
        let text = match value {
            Value::Array(_) | Value::Object(_) => value.to_string(),
            other => memory::as_text(other),
        };
        params.push((name.clone(), text));
    }
    params
}

/// Which option's keyword `words` contain: the one said first (the longest of those said
/// at the same place). Keywords match whole words, in any case, punctuation aside.
fn heard(menu: &Menu, words: &str) -> Option<char> {
    let said = tokens(words);
    let mut best: Option<(usize, usize, char)> = None;
    for (keyword, key) in &menu.keywords {
        let keyword = tokens(keyword);
        if keyword.is_empty() || keyword.len() > said.len() {
            continue;
        }
        let Some(at) = said.windows(keyword.len()).position(|window| window == keyword.as_slice()) else {
            continue;
        };
        let better = match best {
            None => true,
            Some((best_at, best_len, _)) => at < best_at || (at == best_at && keyword.len() > best_len),
        };
        if better {
            best = Some((at, keyword.len(), *key));
        }
    }
    best.map(|(_, _, key)| key)
}

/// Lowercase words: runs of letters and digits.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn route_request(flow: &Flow, state: &CallState, route: &Route) -> RouteRequest {
    let memory = &state.memory;
    let mut skills = route.skills.clone();
    skills.extend(memory.skills.iter().filter(|skill| !route.skills.contains(skill)).cloned());
    let mut attributes = json!({
        "skillsNeeded": skills,
        "language": state.language,
        "ivr_path": state.path.join(","),
    });
    if let Value::Object(into) = &mut attributes {
        if let Value::Object(extra) = &route.attributes {
            into.extend(extra.clone());
        }
        into.extend(memory.attributes.clone());
        if !memory.variables.is_empty() {
            into.insert("ivr_variables".to_owned(), Value::Object(memory.variables.clone()));
        }
    }
    RouteRequest {
        workflow: route.workflow.clone().or_else(|| flow.workflow.clone()),
        // The larger: a caller the flow found to be a VIP is never pushed back by a route.
        priority: route.priority.max(memory.priority),
        attributes,
        voicemail: false,
    }
}

/// The `finishOnKey` of a one-key `<Gather>`: none (the provider's `#`), or an empty one when
/// `#` is a choice, which the provider would otherwise take as the end of no input.
pub fn one_key_finish(pound_is_a_choice: bool) -> Option<String> {
    pound_is_a_choice.then(String::new)
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

/// A text message with `body`, to whoever wrote.
pub fn message(body: String) -> twiml::Message {
    twiml::Message { body, to: None, from: None, media: Vec::new() }
}

fn localized<'t>(
    flow: &Flow,
    language: &str,
    texts: &'t std::collections::BTreeMap<String, String>,
) -> &'t str {
    // Loading guarantees a text per language; the default language is the fallback.
    texts.get(language).or_else(|| texts.get(&flow.language)).map(String::as_str).unwrap_or_default()
}
