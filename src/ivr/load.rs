//! Reading a flow file: TOML into [`Flow`], with every mistake collected and reported by line,
//! so that `switchboard ivr check` shows them all at once.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use serde_json::Value;

use super::hours::{self, Hours};
use super::memory::{self, MAX_CARRIED, Memory};
use super::{
    Action, Attempts, Branch, CallbackEnd, CallbackOffer, Choice, Collect, DEFAULT_LOOKUP_TIMEOUT,
    DEFAULT_MAX_LENGTH, DEFAULT_RETRIES, DEFAULT_RING, DEFAULT_TIMEOUT, Dial, DialTarget, Flow, Lookup,
    MAX_COLLECT_DIGITS, MAX_LOOKUP_TIMEOUT, MAX_RECORDING_SECONDS, MAX_WAIT_SECONDS, Menu, MenuOption, Node,
    Pattern, Prompt, Route, Set, When,
};
use crate::expr::{Context, Expression};
use crate::routing::MAX_PRIORITY;
use crate::workspace::line_of;

/// One mistake in a flow file, with its line when it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|line| format!("line {line}: ")).unwrap_or_default())]
pub struct IvrError {
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowFile {
    start: Spanned<String>,
    #[serde(default = "default_language")]
    language: String,
    #[serde(default)]
    languages: Vec<String>,
    voice: Option<String>,
    workflow: Option<String>,
    /// Called numbers (`To`) whose calls start in this flow.
    #[serde(default)]
    numbers: Vec<Spanned<String>>,
    hours: Option<Spanned<HoursFile>>,
    callback: Option<Spanned<CallbackFile>>,
    /// Steps, under their first name (menus); `steps` is the same namespace.
    #[serde(default)]
    menus: BTreeMap<String, Spanned<StepFile>>,
    #[serde(default)]
    steps: BTreeMap<String, Spanned<StepFile>>,
}

/// `[callback]`: callers on hold may ask to be called back, keeping their place.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackFile {
    #[serde(default)]
    offer_after: u32,
    #[serde(default = "default_callback_attempts")]
    attempts: u32,
    #[serde(default = "default_callback_retry_after")]
    retry_after: u32,
    #[serde(default)]
    then: CallbackEnd,
    #[serde(default = "default_callback_key")]
    key: String,
}

fn default_callback_attempts() -> u32 {
    3
}

fn default_callback_retry_after() -> u32 {
    120
}

fn default_callback_key() -> String {
    "1".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursFile {
    time_zone: String,
    closed: Spanned<String>,
    #[serde(default)]
    holidays: Vec<String>,
    monday: Option<String>,
    tuesday: Option<String>,
    wednesday: Option<String>,
    thursday: Option<String>,
    friday: Option<String>,
    saturday: Option<String>,
    sunday: Option<String>,
}

/// A step: what it sets and says on entering, one field saying what it does, and that kind's
/// settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    say: Option<Spanned<TextFile>>,
    /// The prompt as a text message; without it, texters get the `say` text.
    sms: Option<Spanned<TextFile>>,
    play: Option<String>,
    /// Variables set on entering.
    set: Option<toml::Table>,
    /// Task attributes set on entering.
    attributes: Option<toml::Table>,
    priority: Option<i64>,
    skills: Option<Vec<String>>,
    // What the step does: one of these.
    options: Option<BTreeMap<String, Spanned<OptionFile>>>,
    collect: Option<CollectFile>,
    lookup: Option<LookupFile>,
    when: Option<Vec<Spanned<BranchFile>>>,
    dial: Option<DialFile>,
    route: Option<RouteFile>,
    /// Record a message after the prompt, then route a task carrying it.
    voicemail: Option<RouteFile>,
    hangup: Option<bool>,
    next: Option<Spanned<String>>,
    // Menus and collects.
    timeout: Option<u32>,
    retries: Option<u32>,
    no_input: Option<Spanned<TextFile>>,
    invalid: Option<Spanned<TextFile>>,
    on_fail: Option<Spanned<String>>,
    // Menus.
    speech: Option<bool>,
    hints: Option<String>,
    // Lookups, `when`, dials and voicemails.
    on_error: Option<Spanned<String>>,
    #[serde(rename = "else")]
    otherwise: Option<Spanned<String>>,
    on_no_answer: Option<Spanned<String>>,
    on_busy: Option<Spanned<String>>,
    /// The longest message, in seconds.
    max_length: Option<u32>,
}

/// A prompt's text: the same in every language, or one per language.
#[derive(Deserialize)]
#[serde(untagged)]
enum TextFile {
    One(String),
    PerLanguage(BTreeMap<String, String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionFile {
    /// Words a texter may send, or a caller say, instead of the key ("sales").
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(alias = "step")]
    menu: Option<Spanned<String>>,
    route: Option<RouteFile>,
    language: Option<String>,
    /// Said (or played) before the option's transition.
    say: Option<Spanned<TextFile>>,
    play: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    #[serde(default)]
    skills: Vec<String>,
    workflow: Option<String>,
    priority: Option<i64>,
    attributes: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectFile {
    into: String,
    digits: Option<u32>,
    max_digits: Option<u32>,
    pattern: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupFile {
    url: String,
    timeout: Option<u32>,
    #[serde(default)]
    keep: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BranchFile {
    #[serde(rename = "if")]
    condition: String,
    next: Spanned<String>,
    say: Option<Spanned<TextFile>>,
    play: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialFile {
    to: String,
    caller_id: Option<String>,
    ring: Option<u32>,
}

fn default_language() -> String {
    "en-US".to_owned()
}

/// Whether `tag` looks like the provider's language tags (`en-US`, `cmn-CN`, `fr`): two or
/// three lowercase letters, then parts of 2 to 8 letters or digits after `-`.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
        && parts.all(|part| (2..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Keys a caller can press.
const KEYS: &str = "0123456789*#";

/// Reads and validates one flow; `source` is the file's text (for line numbers).
pub fn load_flow(source: &str) -> Result<Flow, Vec<IvrError>> {
    let file: FlowFile = toml::from_str(source).map_err(|err| {
        let line = err.span().map(|span| line_of(source, span.start));
        vec![IvrError { line, message: err.message().to_owned() }]
    })?;
    let languages: Vec<String> =
        if file.languages.is_empty() { vec![file.language.clone()] } else { file.languages.clone() };
    let mut check = Checker {
        source,
        errors: Vec::new(),
        names: file.menus.keys().chain(file.steps.keys()).cloned().collect(),
        languages,
        workflow: file.workflow.clone(),
    };
    for name in file.steps.keys().filter(|name| file.menus.contains_key(*name)) {
        check.error(file.steps[name].span(), format!("step {name:?} is both in [menus] and in [steps]"));
    }
    if !check.languages.contains(&file.language) {
        check.error(file.start.span(), format!("language {:?} is not in languages", file.language));
    }
    for language in check.languages.clone().iter().filter(|language| !is_language_tag(language)) {
        check.error(
            file.start.span(),
            format!("language {language:?} is not a language tag such as en-US or es-MX"),
        );
    }
    if file.voice.as_deref().is_some_and(|voice| voice.trim().is_empty()) {
        check.error(file.start.span(), "voice is empty: name one (Polly.Joanna) or leave it out".to_owned());
    }
    for number in &file.numbers {
        if !is_e164(number.get_ref()) {
            check.error(
                number.span(),
                format!("number {:?} is not in E.164 form (+ and 8 to 15 digits)", number.get_ref()),
            );
        }
    }
    check.target(&file.start, "the flow", "start");
    let hours = file.hours.as_ref().and_then(|hours| check.hours(hours));
    let callback = file.callback.as_ref().and_then(|callback| check.callback(callback));
    let mut steps = BTreeMap::new();
    let mut spans = BTreeMap::new();
    for (name, step) in file.menus.iter().chain(&file.steps) {
        if let Some(node) = check.node(name, step) {
            spans.insert(name.clone(), step.span());
            steps.insert(name.clone(), node);
        }
    }
    check.loops(&steps, &spans);
    if !check.errors.is_empty() {
        let mut errors = check.errors;
        errors.sort_by_key(|err| err.line);
        return Err(errors);
    }
    Ok(Flow {
        start: file.start.into_inner(),
        language: file.language,
        languages: check.languages,
        voice: file.voice,
        workflow: file.workflow,
        numbers: file.numbers.into_iter().map(Spanned::into_inner).collect(),
        hours,
        callback,
        steps,
    })
}

/// Collects the mistakes of one file, each with its line.
struct Checker<'s> {
    source: &'s str,
    errors: Vec<IvrError>,
    /// Every step's name.
    names: std::collections::BTreeSet<String>,
    languages: Vec<String>,
    /// The flow's workflow, which routes without one use.
    workflow: Option<String>,
}

type Span = std::ops::Range<usize>;

impl Checker<'_> {
    fn error(&mut self, span: Span, message: String) {
        self.errors.push(IvrError { line: Some(line_of(self.source, span.start)), message });
    }

    /// Checks that `target` names a step; `place` and `field` say where it was named.
    fn target(&mut self, target: &Spanned<String>, place: &str, field: &str) -> String {
        if !self.names.contains(target.get_ref()) {
            self.error(target.span(), format!("{place}: {field} step {:?} does not exist", target.get_ref()));
        }
        target.get_ref().clone()
    }

    fn hours(&mut self, spanned: &Spanned<HoursFile>) -> Option<Hours> {
        let hours = spanned.get_ref();
        let mut failures = Vec::new();
        let time_zone = hours::time_zone(&hours.time_zone).map_err(|message| failures.push(message)).ok();
        let days = [
            &hours.monday,
            &hours.tuesday,
            &hours.wednesday,
            &hours.thursday,
            &hours.friday,
            &hours.saturday,
            &hours.sunday,
        ];
        let mut week = BTreeMap::new();
        for (day, text) in days.into_iter().enumerate() {
            if let Some(text) = text {
                match hours::spans(text) {
                    Ok(spans) => {
                        week.insert(day as u8, spans);
                    }
                    Err(message) => failures.push(format!("{}: {message}", hours::DAYS[day])),
                }
            }
        }
        let holidays: Vec<_> = hours
            .holidays
            .iter()
            .filter_map(|text| hours::holiday(text).map_err(|message| failures.push(message)).ok())
            .collect();
        for message in failures {
            self.error(spanned.span(), format!("hours: {message}"));
        }
        let closed = self.target(&hours.closed, "hours", "closed");
        Some(Hours { time_zone: time_zone?, week, holidays, closed })
    }

    fn callback(&mut self, spanned: &Spanned<CallbackFile>) -> Option<CallbackOffer> {
        let callback = spanned.get_ref();
        let mut failures = Vec::new();
        if !(1..=10).contains(&callback.attempts) {
            failures.push("attempts must be from 1 to 10");
        }
        if !(5..=86_400).contains(&callback.retry_after) {
            failures.push("retry_after must be from 5 to 86400 seconds");
        }
        if callback.key.chars().count() != 1 || !callback.key.chars().all(|key| KEYS.contains(key)) {
            failures.push("key must be one of 0-9, * or #");
        }
        let ok = failures.is_empty();
        for message in failures {
            self.error(spanned.span(), format!("callback: {message}"));
        }
        ok.then(|| CallbackOffer {
            offer_after: callback.offer_after,
            attempts: callback.attempts,
            retry_after: callback.retry_after,
            then: callback.then,
            key: callback.key.clone(),
        })
    }

    /// A prompt's texts per language, each language of the flow present and no other.
    fn texts(&mut self, place: &str, field: &str, prompt: &Spanned<TextFile>) -> BTreeMap<String, String> {
        let by_language: BTreeMap<String, String> = match prompt.get_ref() {
            TextFile::One(text) => {
                self.languages.iter().map(|language| (language.clone(), text.clone())).collect()
            }
            TextFile::PerLanguage(texts) => texts.clone(),
        };
        for language in self.languages.clone() {
            if !by_language.contains_key(&language) {
                self.error(prompt.span(), format!("{place}: {field} has no text in {language}"));
            }
        }
        for (language, text) in &by_language {
            if !self.languages.contains(language) {
                self.error(
                    prompt.span(),
                    format!("{place}: {field} is in {language}, which is not in languages"),
                );
            }
            if let Err(message) = memory::template_names(text) {
                self.error(prompt.span(), format!("{place}: {field}: {message}"));
            }
        }
        by_language
    }

    /// `say` or `play` (not both) as a prompt.
    fn prompt(
        &mut self,
        place: &str,
        span: Span,
        say: &Option<Spanned<TextFile>>,
        play: &Option<String>,
    ) -> Option<Prompt> {
        match (say, play) {
            (Some(say), None) => Some(Prompt::Say(self.texts(place, "say", say))),
            (None, Some(url)) if url.trim().is_empty() => {
                self.error(span, format!("{place}: play needs the URL of a recording"));
                None
            }
            (None, Some(url)) => Some(Prompt::Play(url.clone())),
            (Some(_), Some(_)) => {
                self.error(span, format!("{place} has both say and play; choose one"));
                None
            }
            (None, None) => None,
        }
    }

    fn node(&mut self, name: &str, spanned: &Spanned<StepFile>) -> Option<Node> {
        let span = spanned.span();
        let step = spanned.get_ref();
        let place = format!("step {name:?}");
        let errors_before = self.errors.len();
        let prompt = self.prompt(&place, span.clone(), &step.say, &step.play);
        let sms = step.sms.as_ref().map(|sms| self.texts(&place, "sms", sms));
        let set = self.set(&place, span.clone(), step);
        let kinds: Vec<&str> = [
            ("options", step.options.is_some()),
            ("collect", step.collect.is_some()),
            ("lookup", step.lookup.is_some()),
            ("when", step.when.is_some()),
            ("dial", step.dial.is_some()),
            ("route", step.route.is_some()),
            ("voicemail", step.voicemail.is_some()),
            ("hangup", step.hangup == Some(true)),
        ]
        .into_iter()
        .filter_map(|(kind, present)| present.then_some(kind))
        .collect();
        let kind = match kinds.as_slice() {
            [] if step.next.is_some() => "next",
            [kind] => kind,
            [] => {
                self.error(
                    span,
                    format!(
                        "{place} does nothing: give it options, collect, lookup, when, dial, route, voicemail, hangup = true or next"
                    ),
                );
                return None;
            }
            [first, second, ..] => {
                self.error(span, format!("{place} has both {first} and {second}; a step does one thing"));
                return None;
            }
        };
        self.misplaced(&place, span.clone(), kind, step);
        self.bounds(&place, span.clone(), step);
        if matches!(kind, "options" | "collect" | "voicemail") && prompt.is_none() {
            self.error(span.clone(), format!("{place} needs a prompt: say or play"));
        }
        let action = match kind {
            "options" => Action::Menu(self.menu(&place, span.clone(), step)),
            "collect" => self.collect(&place, span.clone(), step)?,
            "lookup" => self.lookup(&place, span.clone(), step)?,
            "when" => self.when(&place, span.clone(), step)?,
            "dial" => self.dial(&place, span.clone(), step)?,
            "route" => {
                Action::Route(self.route(span.clone(), &format!("{place}, route"), step.route.as_ref()?))
            }
            "voicemail" => Action::Voicemail {
                route: self.route(span.clone(), &format!("{place}, voicemail"), step.voicemail.as_ref()?),
                max_length: step.max_length.unwrap_or(DEFAULT_MAX_LENGTH),
            },
            "hangup" => Action::Hangup,
            _ => Action::Next(self.target(step.next.as_ref()?, &place, "next")),
        };
        (self.errors.len() == errors_before).then_some(Node { set, prompt, sms, action })
    }

    /// Fields that belong to another kind of step.
    fn misplaced(&mut self, place: &str, span: Span, kind: &str, step: &StepFile) {
        let fields: [(&str, bool, &[&str]); 14] = [
            ("next", step.next.is_some(), &["collect", "lookup", "next"]),
            ("timeout", step.timeout.is_some(), &["options", "collect"]),
            ("retries", step.retries.is_some(), &["options", "collect"]),
            ("no_input", step.no_input.is_some(), &["options", "collect"]),
            ("invalid", step.invalid.is_some(), &["options", "collect"]),
            ("on_fail", step.on_fail.is_some(), &["options", "collect"]),
            ("speech", step.speech.is_some(), &["options"]),
            ("hints", step.hints.is_some(), &["options"]),
            ("on_error", step.on_error.is_some(), &["lookup"]),
            ("else", step.otherwise.is_some(), &["when"]),
            ("on_no_answer", step.on_no_answer.is_some(), &["dial"]),
            ("on_busy", step.on_busy.is_some(), &["dial"]),
            ("max_length", step.max_length.is_some(), &["voicemail"]),
            ("hangup = false", step.hangup == Some(false), &[]),
        ];
        for (field, present, kinds) in fields {
            if present && !kinds.contains(&kind) {
                let used = if kinds.is_empty() { "nothing".to_owned() } else { kinds.join(", ") };
                self.error(
                    span.clone(),
                    format!("{place}: {field} does nothing in a {kind} step (it is for: {used})"),
                );
            }
        }
    }

    /// A name a variable can take (what `collect` and `set` write, `named` in the mistake):
    /// letters, digits and `_`, and not one of the call's facts, which would hide it.
    fn variable_name(&mut self, span: Span, named: &str, name: &str) {
        let facts = super::walk::FACTS;
        if !memory::is_name(name) || name.contains('.') {
            self.error(span, format!("{named}: not a variable name (letters, digits and _)"));
        } else if facts.contains(&name) {
            self.error(
                span,
                format!(
                    "{named}: one of the call's facts ({}), which the variable would hide",
                    facts.join(", ")
                ),
            );
        }
    }

    /// Numbers the provider or the routing engine would refuse at run time, refused here.
    fn bounds(&mut self, place: &str, span: Span, step: &StepFile) {
        let ranges = [
            ("timeout", step.timeout, 1..=MAX_WAIT_SECONDS),
            ("max_length", step.max_length, 1..=MAX_RECORDING_SECONDS),
        ];
        for (field, value, range) in ranges {
            if value.is_some_and(|value| !range.contains(&value)) {
                let (low, high) = range.into_inner();
                self.error(span.clone(), format!("{place}: {field} must be from {low} to {high} seconds"));
            }
        }
    }

    /// A priority and skills a task can have: what `set` and a route give it.
    fn task_settings(&mut self, span: Span, place: &str, priority: Option<i64>, skills: &[String]) {
        if priority.is_some_and(|priority| !(0..=MAX_PRIORITY).contains(&priority)) {
            self.error(span.clone(), format!("{place}: priority must be from 0 to {MAX_PRIORITY}"));
        }
        if skills.iter().any(|skill| skill.trim().is_empty()) {
            self.error(span, format!("{place}: a skill needs a name"));
        }
    }

    fn attempts(&mut self, place: &str, step: &StepFile) -> Attempts {
        Attempts {
            timeout: step.timeout.unwrap_or(DEFAULT_TIMEOUT),
            retries: step.retries.unwrap_or(DEFAULT_RETRIES),
            no_input: step.no_input.as_ref().map(|text| Prompt::Say(self.texts(place, "no_input", text))),
            invalid: step.invalid.as_ref().map(|text| Prompt::Say(self.texts(place, "invalid", text))),
            on_fail: step.on_fail.as_ref().map(|on_fail| self.target(on_fail, place, "on_fail")),
        }
    }

    fn menu(&mut self, place: &str, span: Span, step: &StepFile) -> Menu {
        let attempts = self.attempts(place, step);
        let mut options = BTreeMap::new();
        let mut keywords = BTreeMap::new();
        let files = step.options.as_ref().expect("a menu has options");
        if files.is_empty() {
            self.error(span, format!("{place} has no options; add some"));
        }
        for (key, option) in files {
            let option_span = option.span();
            let mut chars = key.chars();
            let key_char = match (chars.next(), chars.next()) {
                (Some(c), None) if KEYS.contains(c) => c,
                _ => {
                    self.error(option_span, format!("{place}: option {key:?} is not a key (0-9, * or #)"));
                    continue;
                }
            };
            let option_place = format!("{place}, option {key}");
            let option = option.get_ref();
            for keyword in &option.keywords {
                let word = keyword.trim().to_lowercase();
                if word.is_empty() || word.chars().count() == 1 {
                    self.error(
                        option_span.clone(),
                        format!("{option_place}: keyword {keyword:?} must be a word, not a single character"),
                    );
                } else if let Some(other) = keywords.insert(word, key_char) {
                    self.error(
                        option_span.clone(),
                        format!("{option_place}: keyword {keyword:?} is also option {other}'s"),
                    );
                }
            }
            let say = self.prompt(&option_place, option_span.clone(), &option.say, &option.play);
            let choice = match (&option.menu, &option.route, &option.language) {
                (Some(target), None, None) => Choice::Step(self.target(target, &option_place, "the")),
                (None, Some(route), None) => {
                    Choice::Route(self.route(option_span.clone(), &option_place, route))
                }
                (target, None, Some(language)) => {
                    if !self.languages.contains(language) {
                        self.error(
                            option_span.clone(),
                            format!("{option_place}: language {language:?} is not in languages"),
                        );
                    }
                    let menu = target.as_ref().map(|target| self.target(target, &option_place, "the"));
                    Choice::Language { language: language.clone(), menu }
                }
                _ => {
                    self.error(
                        option_span,
                        format!("{option_place}: give one of step (or menu), route or language"),
                    );
                    continue;
                }
            };
            options.insert(key_char, MenuOption { say, choice });
        }
        let speech = (step.speech == Some(true) || step.hints.is_some()).then(|| {
            step.hints.clone().unwrap_or_else(|| keywords.keys().cloned().collect::<Vec<_>>().join(", "))
        });
        Menu { attempts, options, keywords, speech }
    }

    fn collect(&mut self, place: &str, span: Span, step: &StepFile) -> Option<Action> {
        let file = step.collect.as_ref()?;
        self.variable_name(span.clone(), &format!("{place}: collect into {:?}", file.into), &file.into);
        let digits_range = 1..=MAX_COLLECT_DIGITS;
        for (field, value) in [("digits", file.digits), ("max_digits", file.max_digits)] {
            if value.is_some_and(|value| !digits_range.contains(&value)) {
                self.error(
                    span.clone(),
                    format!("{place}: collect {field} must be from 1 to {MAX_COLLECT_DIGITS}"),
                );
            }
        }
        if file.digits.is_some() && file.max_digits.is_some() {
            self.error(
                span.clone(),
                format!("{place}: collect takes digits (exactly) or max_digits (ended by #), not both"),
            );
        }
        let pattern = file.pattern.as_ref().and_then(|source| {
            match regex_lite::Regex::new(&format!("^(?:{source})$")) {
                Ok(regex) => Some(Pattern { source: source.clone(), regex }),
                Err(err) => {
                    self.error(span.clone(), format!("{place}: collect pattern {source:?}: {err}"));
                    None
                }
            }
        });
        let Some(next) = &step.next else {
            self.error(span, format!("{place}: a collect needs next, the step after a valid answer"));
            return None;
        };
        Some(Action::Collect(Collect {
            into: file.into.clone(),
            digits: file.digits,
            max_digits: file.max_digits.unwrap_or(MAX_COLLECT_DIGITS),
            pattern,
            attempts: self.attempts(place, step),
            next: self.target(next, place, "next"),
        }))
    }

    fn lookup(&mut self, place: &str, span: Span, step: &StepFile) -> Option<Action> {
        let file = step.lookup.as_ref()?;
        let host = file.url.strip_prefix("https://").or_else(|| file.url.strip_prefix("http://"));
        if host
            .is_none_or(|host| host.is_empty() || host.starts_with('/') || host.contains(char::is_whitespace))
        {
            self.error(
                span.clone(),
                format!("{place}: lookup url {:?} is not an http:// or https:// URL", file.url),
            );
        }
        let timeout = file.timeout.unwrap_or(DEFAULT_LOOKUP_TIMEOUT);
        if !(1..=MAX_LOOKUP_TIMEOUT).contains(&timeout) {
            self.error(
                span.clone(),
                format!("{place}: lookup timeout must be from 1 to {MAX_LOOKUP_TIMEOUT} seconds"),
            );
        }
        if let Some(name) = file.keep.iter().find(|name| !memory::is_name(name) || name.contains('.')) {
            self.error(
                span.clone(),
                format!("{place}: lookup keep {name:?}: not a field name (letters, digits and _; the answer's own fields, not nested ones)"),
            );
        }
        let (Some(next), Some(on_error)) = (&step.next, &step.on_error) else {
            self.error(
                span,
                format!("{place}: a lookup needs next (after an answer) and on_error (after a failure)"),
            );
            return None;
        };
        Some(Action::Lookup(Lookup {
            url: file.url.clone(),
            timeout,
            keep: file.keep.clone(),
            next: self.target(next, place, "next"),
            on_error: self.target(on_error, place, "on_error"),
        }))
    }

    fn when(&mut self, place: &str, span: Span, step: &StepFile) -> Option<Action> {
        let mut branches = Vec::new();
        for (n, branch) in step.when.as_ref()?.iter().enumerate() {
            let branch_place = format!("{place}, when #{}", n + 1);
            let file = branch.get_ref();
            let condition = match Expression::parse(&file.condition, Context::Filter) {
                Ok(condition) => Some(condition),
                Err(err) => {
                    self.error(branch.span(), format!("{branch_place}: if {:?}: {err}", file.condition));
                    None
                }
            };
            let say = self.prompt(&branch_place, branch.span(), &file.say, &file.play);
            let next = self.target(&file.next, &branch_place, "next");
            if let Some(condition) = condition {
                branches.push(Branch { condition, source: file.condition.clone(), say, next });
            }
        }
        let Some(otherwise) = &step.otherwise else {
            self.error(span, format!("{place}: a when needs else, the step when no condition holds"));
            return None;
        };
        // Every word of the conditions (names, but also operators and words in strings): what a
        // condition may read is among them.
        let reads: std::collections::BTreeSet<String> = branches
            .iter()
            .flat_map(|branch| branch.source.split(|c: char| !c.is_alphanumeric() && c != '_'))
            .filter(|word| word.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_'))
            .map(str::to_owned)
            .collect();
        let otherwise = self.target(otherwise, place, "else");
        Some(Action::When(When { branches, otherwise, reads: reads.into_iter().collect() }))
    }

    fn dial(&mut self, place: &str, span: Span, step: &StepFile) -> Option<Action> {
        let file = step.dial.as_ref()?;
        let target = if let Some(sip) = file.to.strip_prefix("sip:") {
            (!sip.is_empty()).then(|| DialTarget::Sip(file.to.clone()))
        } else if let Some(client) = file.to.strip_prefix("client:") {
            (!client.is_empty()).then(|| DialTarget::Client(client.to_owned()))
        } else {
            is_e164(&file.to).then(|| DialTarget::Number(file.to.clone()))
        };
        if file.to.contains("{{") {
            self.error(
                span.clone(),
                format!(
                    "{place}: dial to {:?}: a dial's number is written out; templates are not filled in here",
                    file.to
                ),
            );
        } else if target.is_none() {
            self.error(
                span.clone(),
                format!(
                    "{place}: dial to {:?}: give a +E.164 number, a sip: address or client:name",
                    file.to
                ),
            );
        }
        if let Some(caller_id) = file.caller_id.as_ref().filter(|id| !is_e164(id)) {
            self.error(span.clone(), format!("{place}: dial caller_id {caller_id:?} is not in E.164 form"));
        }
        let ring = file.ring.unwrap_or(DEFAULT_RING);
        if !(5..=600).contains(&ring) {
            self.error(span, format!("{place}: dial ring must be from 5 to 600 seconds"));
        }
        Some(Action::Dial(Dial {
            target: target?,
            caller_id: file.caller_id.clone(),
            ring,
            on_no_answer: step.on_no_answer.as_ref().map(|next| self.target(next, place, "on_no_answer")),
            on_busy: step.on_busy.as_ref().map(|next| self.target(next, place, "on_busy")),
        }))
    }

    /// What a step sets on entering: `set` (variables), `attributes`, `priority`, `skills`.
    fn set(&mut self, place: &str, span: Span, step: &StepFile) -> Option<Set> {
        if step.set.is_none() && step.attributes.is_none() && step.priority.is_none() && step.skills.is_none()
        {
            return None;
        }
        let json = |table: &Option<toml::Table>| match serde_json::to_value(table.clone().unwrap_or_default())
        {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let (variables, attributes) = (json(&step.set), json(&step.attributes));
        for name in variables.keys() {
            self.variable_name(span.clone(), &format!("{place}: set {name:?}"), name);
        }
        for value in variables.values().chain(attributes.values()) {
            for template in texts_in(value) {
                if let Err(message) = memory::template_names(template) {
                    self.error(span.clone(), format!("{place}: {message}"));
                }
            }
        }
        self.task_settings(span.clone(), place, step.priority, step.skills.as_deref().unwrap_or_default());
        let set = Set {
            variables,
            attributes,
            priority: step.priority,
            skills: step.skills.clone().unwrap_or_default(),
        };
        let memory = Memory {
            variables: set.variables.clone(),
            attributes: set.attributes.clone(),
            skills: set.skills.clone(),
            ..Memory::default()
        };
        if !memory.fits() {
            self.error(span, format!("{place}: sets more than the {MAX_CARRIED} bytes a call carries"));
        }
        Some(set)
    }

    /// A route, after checking that it can create a task.
    fn route(&mut self, span: Span, place: &str, route: &RouteFile) -> Route {
        if route.skills.is_empty() && route.workflow.is_none() && self.workflow.is_none() {
            self.error(span.clone(), format!("{place}: a route needs skills or a workflow"));
        }
        self.task_settings(span, place, route.priority, &route.skills);
        let attributes = route.attributes.clone().unwrap_or_default();
        Route {
            skills: route.skills.clone(),
            workflow: route.workflow.clone(),
            priority: route.priority,
            attributes: serde_json::to_value(attributes).unwrap_or_default(),
        }
    }

    /// Refuses chains of steps that loop without waiting for the caller (`next`, `when`,
    /// `lookup`): a call in one would never be asked anything again.
    fn loops(&mut self, steps: &BTreeMap<String, Node>, spans: &BTreeMap<String, Span>) {
        let onward = |node: &Node| -> Vec<String> {
            match &node.action {
                Action::Next(next) => vec![next.clone()],
                Action::When(when) => when
                    .branches
                    .iter()
                    .map(|branch| branch.next.clone())
                    .chain([when.otherwise.clone()])
                    .collect(),
                Action::Lookup(lookup) => vec![lookup.next.clone(), lookup.on_error.clone()],
                _ => Vec::new(),
            }
        };
        // Depth-first, iteratively (a flow may have thousands of steps): 1 on the path, 2 done.
        let mut state: BTreeMap<&str, u8> = BTreeMap::new();
        for root in steps.keys() {
            if state.contains_key(root.as_str()) {
                continue;
            }
            let mut path: Vec<(&str, Vec<String>)> = vec![(root, onward(&steps[root]))];
            state.insert(root, 1);
            while let Some((name, next)) = path.last_mut() {
                let name: &str = name;
                let Some(to) = next.pop() else {
                    state.insert(name, 2);
                    path.pop();
                    continue;
                };
                let Some((to, node)) = steps.get_key_value(&to) else { continue };
                match state.get(to.as_str()) {
                    Some(1) => {
                        let at = path.iter().position(|(step, _)| *step == to).unwrap_or(0);
                        let cycle: Vec<&str> =
                            path[at..].iter().map(|(step, _)| *step).chain([to.as_str()]).collect();
                        let span = spans.get(to).cloned().unwrap_or(0..0);
                        self.error(
                            span,
                            format!("steps {} loop without waiting for the caller", cycle.join(" → ")),
                        );
                        // One report per loop: the rest of this path is explored no further.
                        state.insert(to, 2);
                    }
                    Some(_) => {}
                    None => {
                        state.insert(to, 1);
                        path.push((to, onward(node)));
                    }
                }
            }
        }
    }
}

/// The texts inside a JSON value.
fn texts_in(value: &Value) -> Vec<&str> {
    match value {
        Value::String(text) => vec![text.as_str()],
        Value::Array(items) => items.iter().flat_map(texts_in).collect(),
        Value::Object(fields) => fields.values().flat_map(texts_in).collect(),
        _ => Vec::new(),
    }
}

/// `path:line: message`, or `path: message` without a line: how file mistakes are shown.
pub fn located(path: &std::path::Path, line: Option<usize>, message: &str) -> String {
    match line {
        Some(line) => format!("{}:{line}: {message}", path.display()),
        None => format!("{}: {message}", path.display()),
    }
}

/// `+` and 8 to 15 digits: the form providers send `To` and `From` in.
pub fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|digits| (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
}
