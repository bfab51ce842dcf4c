//! Reading a flow file: TOML into [`Flow`], with every mistake collected and reported by line,
//! so that `switchboard ivr check` shows them all at once.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::hours::{self, Hours};
use super::{
    CallbackEnd, CallbackOffer, Choice, DEFAULT_MAX_LENGTH, DEFAULT_RETRIES, DEFAULT_TIMEOUT, Flow, Menu,
    Prompt, Route,
};
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
    menus: BTreeMap<String, Spanned<MenuFile>>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MenuFile {
    say: Option<Spanned<TextFile>>,
    /// The prompt as a text message; without it, texters get the `say` text.
    sms: Option<Spanned<TextFile>>,
    play: Option<String>,
    timeout: Option<u32>,
    retries: Option<u32>,
    no_input: Option<Spanned<TextFile>>,
    invalid: Option<Spanned<TextFile>>,
    on_fail: Option<Spanned<String>>,
    #[serde(default)]
    hangup: bool,
    /// Record a message after the prompt, then route a task carrying it.
    voicemail: Option<RouteFile>,
    /// The longest message, in seconds.
    max_length: Option<u32>,
    #[serde(default)]
    options: BTreeMap<String, Spanned<OptionFile>>,
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
    /// Words a texter may send instead of the key ("sales").
    #[serde(default)]
    keywords: Vec<String>,
    menu: Option<Spanned<String>>,
    route: Option<RouteFile>,
    language: Option<String>,
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

fn default_language() -> String {
    "en-US".to_owned()
}

/// Keys a caller can press.
const KEYS: &str = "0123456789*#";

/// Reads and validates one flow; `source` is the file's text (for line numbers).
pub fn load_flow(source: &str) -> Result<Flow, Vec<IvrError>> {
    let file: FlowFile = toml::from_str(source).map_err(|err| {
        let line = err.span().map(|span| line_of(source, span.start));
        vec![IvrError { line, message: err.message().to_owned() }]
    })?;
    let mut errors = Vec::new();
    let mut error = |span: std::ops::Range<usize>, message: String| {
        errors.push(IvrError { line: Some(line_of(source, span.start)), message });
    };
    let languages: Vec<String> =
        if file.languages.is_empty() { vec![file.language.clone()] } else { file.languages.clone() };
    if !languages.contains(&file.language) {
        error(file.start.span(), format!("language {:?} is not in languages", file.language));
    }
    for number in &file.numbers {
        if !is_e164(number.get_ref()) {
            error(
                number.span(),
                format!("number {:?} is not in E.164 form (+ and 8 to 15 digits)", number.get_ref()),
            );
        }
    }
    let known = |name: &str| file.menus.contains_key(name);
    if !known(file.start.get_ref()) {
        error(file.start.span(), format!("start menu {:?} does not exist", file.start.get_ref()));
    }
    let hours = file.hours.as_ref().and_then(|spanned| {
        let hours = spanned.get_ref();
        let mut fail = |message: String| error(spanned.span(), format!("hours: {message}"));
        let time_zone = hours::time_zone(&hours.time_zone).map_err(&mut fail).ok();
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
                    Err(message) => fail(format!("{}: {message}", hours::DAYS[day])),
                }
            }
        }
        let holidays: Vec<_> =
            hours.holidays.iter().filter_map(|text| hours::holiday(text).map_err(&mut fail).ok()).collect();
        if !known(hours.closed.get_ref()) {
            error(
                hours.closed.span(),
                format!("hours: closed menu {:?} does not exist", hours.closed.get_ref()),
            );
        }
        Some(Hours { time_zone: time_zone?, week, holidays, closed: hours.closed.get_ref().clone() })
    });
    let callback = file.callback.as_ref().and_then(|spanned| {
        let callback = spanned.get_ref();
        let mut fail = |message: &str| error(spanned.span(), format!("callback: {message}"));
        let mut ok = true;
        if !(1..=10).contains(&callback.attempts) {
            fail("attempts must be from 1 to 10");
            ok = false;
        }
        if !(5..=86_400).contains(&callback.retry_after) {
            fail("retry_after must be from 5 to 86400 seconds");
            ok = false;
        }
        if callback.key.chars().count() != 1
            || !callback.key.chars().all(|key| key.is_ascii_digit() || key == '*' || key == '#')
        {
            fail("key must be one of 0-9, * or #");
            ok = false;
        }
        ok.then(|| CallbackOffer {
            offer_after: callback.offer_after,
            attempts: callback.attempts,
            retry_after: callback.retry_after,
            then: callback.then,
            key: callback.key.clone(),
        })
    });
    let mut menus = BTreeMap::new();
    for (name, menu) in &file.menus {
        let span = menu.span();
        let menu = menu.get_ref();
        let mut text =
            |field: &str, prompt: &Option<Spanned<TextFile>>| -> Option<BTreeMap<String, String>> {
                let prompt = prompt.as_ref()?;
                let by_language: BTreeMap<String, String> = match prompt.get_ref() {
                    TextFile::One(text) => {
                        languages.iter().map(|language| (language.clone(), text.clone())).collect()
                    }
                    TextFile::PerLanguage(texts) => texts.clone(),
                };
                for language in &languages {
                    if !by_language.contains_key(language) {
                        error(prompt.span(), format!("menu {name:?}: {field} has no text in {language}"));
                    }
                }
                for language in by_language.keys() {
                    if !languages.contains(language) {
                        error(
                            prompt.span(),
                            format!("menu {name:?}: {field} is in {language}, which is not in languages"),
                        );
                    }
                }
                Some(by_language)
            };
        let say = text("say", &menu.say);
        let sms = text("sms", &menu.sms);
        let no_input = text("no_input", &menu.no_input).map(Prompt::Say);
        let invalid = text("invalid", &menu.invalid).map(Prompt::Say);
        let prompt = match (say, &menu.play) {
            (Some(say), None) => Prompt::Say(say),
            (None, Some(url)) => Prompt::Play(url.clone()),
            (Some(_), Some(_)) => {
                error(span.clone(), format!("menu {name:?} has both say and play; choose one"));
                continue;
            }
            (None, None) => {
                error(span.clone(), format!("menu {name:?} needs a prompt: say or play"));
                continue;
            }
        };
        if let Some(on_fail) = &menu.on_fail
            && !known(on_fail.get_ref())
        {
            error(
                on_fail.span(),
                format!("menu {name:?}: on_fail menu {:?} does not exist", on_fail.get_ref()),
            );
        }
        if menu.hangup && !menu.options.is_empty() {
            error(span.clone(), format!("menu {name:?} hangs up, so it cannot have options"));
        }
        let voicemail = menu.voicemail.as_ref().map(|route| {
            if menu.hangup || !menu.options.is_empty() {
                error(
                    span.clone(),
                    format!("menu {name:?} records a voicemail, so it cannot have options or hang up"),
                );
            }
            checked_route(
                &mut error,
                span.clone(),
                &format!("menu {name:?}, voicemail"),
                route,
                &file.workflow,
            )
        });
        if !menu.hangup && menu.options.is_empty() && voicemail.is_none() {
            error(
                span.clone(),
                format!("menu {name:?} has no options; add some, or hangup = true, or a voicemail route"),
            );
        }
        let mut options = BTreeMap::new();
        let mut keywords = BTreeMap::new();
        for (key, option) in &menu.options {
            let option_span = option.span();
            let mut chars = key.chars();
            let key_char = match (chars.next(), chars.next()) {
                (Some(c), None) if KEYS.contains(c) => c,
                _ => {
                    error(option_span, format!("menu {name:?}: option {key:?} is not a key (0-9, * or #)"));
                    continue;
                }
            };
            let option = option.get_ref();
            for keyword in &option.keywords {
                let word = keyword.trim().to_lowercase();
                if word.is_empty() || word.chars().count() == 1 {
                    error(
                        option_span.clone(),
                        format!(
                            "menu {name:?}, option {key}: keyword {keyword:?} must be a word, not a single character"
                        ),
                    );
                } else if let Some(other) = keywords.insert(word, key_char) {
                    error(
                        option_span.clone(),
                        format!("menu {name:?}, option {key}: keyword {keyword:?} is also option {other}'s"),
                    );
                }
            }
            let choice = match (&option.menu, &option.route, &option.language) {
                (Some(target), None, None) => {
                    if !known(target.get_ref()) {
                        error(
                            target.span(),
                            format!(
                                "menu {name:?}, option {key}: menu {:?} does not exist",
                                target.get_ref()
                            ),
                        );
                    }
                    Choice::Menu(target.get_ref().clone())
                }
                (None, Some(route), None) => Choice::Route(checked_route(
                    &mut error,
                    option_span.clone(),
                    &format!("menu {name:?}, option {key}"),
                    route,
                    &file.workflow,
                )),
                (target, None, Some(language)) => {
                    if !languages.contains(language) {
                        error(
                            option_span.clone(),
                            format!("menu {name:?}, option {key}: language {language:?} is not in languages"),
                        );
                    }
                    if let Some(target) = target
                        && !known(target.get_ref())
                    {
                        error(
                            target.span(),
                            format!(
                                "menu {name:?}, option {key}: menu {:?} does not exist",
                                target.get_ref()
                            ),
                        );
                    }
                    Choice::Language {
                        language: language.clone(),
                        menu: target.as_ref().map(|t| t.get_ref().clone()),
                    }
                }
                _ => {
                    error(
                        option_span,
                        format!("menu {name:?}, option {key}: give one of menu, route or language"),
                    );
                    continue;
                }
            };
            options.insert(key_char, choice);
        }
        menus.insert(
            name.clone(),
            Menu {
                prompt,
                sms,
                timeout: menu.timeout.unwrap_or(DEFAULT_TIMEOUT),
                retries: menu.retries.unwrap_or(DEFAULT_RETRIES),
                no_input,
                invalid,
                on_fail: menu.on_fail.as_ref().map(|on_fail| on_fail.get_ref().clone()),
                hangup: menu.hangup,
                voicemail,
                max_length: menu.max_length.unwrap_or(DEFAULT_MAX_LENGTH),
                options,
                keywords,
            },
        );
    }
    if !errors.is_empty() {
        errors.sort_by_key(|err| err.line);
        return Err(errors);
    }
    Ok(Flow {
        start: file.start.into_inner(),
        language: file.language,
        languages,
        voice: file.voice,
        workflow: file.workflow,
        numbers: file.numbers.into_iter().map(Spanned::into_inner).collect(),
        hours,
        callback,
        menus,
    })
}

/// A route, after checking that it can create a task.
fn checked_route(
    error: &mut impl FnMut(std::ops::Range<usize>, String),
    span: std::ops::Range<usize>,
    place: &str,
    route: &RouteFile,
    flow_workflow: &Option<String>,
) -> Route {
    if route.skills.is_empty() && route.workflow.is_none() && flow_workflow.is_none() {
        error(span.clone(), format!("{place}: a route needs skills or a workflow"));
    }
    if route.priority.is_some_and(|priority| priority < 0) {
        error(span, format!("{place}: priority must be 0 or more"));
    }
    let attributes = route.attributes.clone().unwrap_or_default();
    Route {
        skills: route.skills.clone(),
        workflow: route.workflow.clone(),
        priority: route.priority,
        attributes: serde_json::to_value(attributes).unwrap_or_default(),
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
