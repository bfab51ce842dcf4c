//! IVR flows from TOML files (DESIGN §4): loading with every mistake reported by file and
//! line (`load.rs`), and the pure walker (`walk.rs`): (flow, state, input) → (TwiML, next
//! state, effect). No I/O and no clock: the HTTP layer reads the files, keeps each call's state,
//! makes the lookups the walk asks for and acts on the effect (creating the task, hanging up).
//!
//! A flow is a set of named steps (`[steps.NAME]`, or `[menus.NAME]`: one namespace). Every
//! step may say (or play) something on entering it and `set` variables and task attributes;
//! what it then does is given by one field:
//!
//! | field        | the step                                                              |
//! |--------------|-----------------------------------------------------------------------|
//! | `options`    | a menu: one key (or a keyword, by text or speech) chooses an option  |
//! | `collect`    | reads digits (or a text) into a variable, checked by a pattern        |
//! | `lookup`     | POSTs the variables to a URL (signed); the JSON answer's fields become variables |
//! | `when`       | goes where the first TaskRouter expression over the variables holds   |
//! | `dial`       | forwards the call to a number, SIP address or client                  |
//! | `route`      | routes a task to the agents                                           |
//! | `voicemail`  | records a message, then routes a task carrying it                     |
//! | `hangup`     | ends the call (after its `say`, or in silence)                        |
//! | `next` alone | says and sets, then goes on                                           |
//!
//! The file format is documented in full in `docs/ivr.md`; the shipped examples under `ivr/` use
//! every step, with a scenario for each under `ivr/tests/`.

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzz;
pub mod graph;
mod hours;
mod load;
mod memory;
mod scenario;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::expr::Expression;
pub use crate::twiml::DialTarget;
pub use hours::Hours;
pub use load::{IvrError, is_e164, load_flow, located};
pub use memory::{LOOKUP_ANSWER_LIMIT, MAX_CARRIED, Memory, lookup_answer};
pub use scenario::{CallOutcome, Scenarios, read_scenarios};
pub use walk::{
    CallState, Caller, Effect, Input, LookupRequest, MAX_PATH, Medium, RouteRequest, Step, message,
    one_key_finish, record, say, step,
};

/// A validated flow: every reference resolves, every prompt exists in every language, and no
/// chain of steps loops without waiting for the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub start: String,
    pub language: String,
    pub languages: Vec<String>,
    pub voice: Option<String>,
    pub workflow: Option<String>,
    /// Called numbers (`To`, E.164) whose calls start in this flow.
    pub numbers: Vec<String>,
    /// None: always open.
    pub hours: Option<Hours>,
    /// Callers on hold may ask to be called back; none: they may not.
    pub callback: Option<CallbackOffer>,
    /// The steps by name.
    pub steps: BTreeMap<String, Node>,
}

/// The hold loop's offer to call the caller back, keeping their place in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackOffer {
    /// Seconds in line before it is offered (0: from the start).
    pub offer_after: u32,
    /// Calls tried when an agent takes the request, before giving up.
    pub attempts: u32,
    /// Seconds between two tries.
    pub retry_after: u32,
    /// What happens after the last unanswered try.
    pub then: CallbackEnd,
    /// The key that asks for it.
    pub key: String,
}

/// After a callback's last unanswered try: the agent keeps it as a voicemail, to call back by
/// hand (or complete), or it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackEnd {
    #[default]
    Voicemail,
    Cancel,
}

/// One step of a flow: what it sets and says on entering, then what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Applied on entering, before anything is said.
    pub set: Option<Set>,
    /// Said or played on entering: a menu's or a collect's question, an announcement.
    pub prompt: Option<Prompt>,
    /// The prompt as a text message, per language; none: the `say` text.
    pub sms: Option<BTreeMap<String, String>>,
    pub action: Action,
}

/// What a step does after its prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Menu(Menu),
    Collect(Collect),
    Lookup(Lookup),
    When(When),
    Dial(Dial),
    Route(Route),
    /// Record a message, then route a task that carries it.
    Voicemail {
        route: Route,
        /// The longest message recorded, in seconds.
        max_length: u32,
    },
    Hangup,
    /// Go on to this step.
    Next(String),
}

/// How a step that waits for the caller counts their failed attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempts {
    /// Seconds of silence before it counts a no-input.
    pub timeout: u32,
    /// Extra attempts after the first, on no input or an invalid answer.
    pub retries: u32,
    pub no_input: Option<Prompt>,
    pub invalid: Option<Prompt>,
    /// Where a caller goes after the last failed attempt; none: goodbye and hang up.
    pub on_fail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    pub attempts: Attempts,
    /// By key (`0`-`9`, `*`, `#`).
    pub options: BTreeMap<char, MenuOption>,
    /// Words a texter may send (or a caller say) instead of a key, lowercase, with the key they
    /// stand for.
    pub keywords: BTreeMap<String, char>,
    /// Callers may speak as well as press keys: the hints given to the recognizer.
    pub speech: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MenuOption {
    /// Said or played before the option's transition ("Returning to the main menu").
    pub say: Option<Prompt>,
    pub choice: Choice,
}

/// Reads what the caller keys (or texts) into a variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Collect {
    pub into: String,
    /// Exactly this many digits; none: up to `max_digits`, ended by `#`.
    pub digits: Option<u32>,
    pub max_digits: u32,
    /// What a valid answer looks like, the whole of it.
    pub pattern: Option<Pattern>,
    pub attempts: Attempts,
    pub next: String,
}

/// A regular expression an answer must match whole, with its source for messages.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub regex: regex_lite::Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source
    }
}

/// POSTs the call's variables to a URL and keeps the fields of the JSON answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub url: String,
    /// Seconds to wait for the answer.
    pub timeout: u32,
    /// The answer's fields kept as variables (its own fields, with what they hold); empty: all.
    pub keep: Vec<String>,
    pub next: String,
    /// Where the flow goes when the lookup fails (variable `lookup_error` says why).
    pub on_error: String,
}

/// Goes where the first branch whose expression holds says, else to `otherwise`.
#[derive(Debug, Clone, PartialEq)]
pub struct When {
    pub branches: Vec<Branch>,
    pub otherwise: String,
    /// The names the conditions may read (every word of them, a superset): the facts about
    /// the call among them are added to what the conditions are evaluated against.
    pub reads: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// A TaskRouter filter expression over the call's variables and facts.
    pub condition: Expression,
    /// The expression as written, for pictures and messages.
    pub source: String,
    pub say: Option<Prompt>,
    pub next: String,
}

/// Forwards the call; what follows an unanswered or busy one is a step of the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub target: DialTarget,
    pub caller_id: Option<String>,
    /// Seconds it rings.
    pub ring: u32,
    /// After no answer, a failure or (without `on_busy`) a busy line; none: goodbye.
    pub on_no_answer: Option<String>,
    pub on_busy: Option<String>,
}

/// Variables and task settings a step applies on entering. Strings may name variables as
/// `{{name}}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Set {
    pub variables: serde_json::Map<String, Value>,
    /// Task attributes, for the routing of the task the flow creates.
    pub attributes: serde_json::Map<String, Value>,
    pub priority: Option<i64>,
    /// Added to the skills of the route.
    pub skills: Vec<String>,
}

/// What a menu says: text to speak per language, or an audio URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Say(BTreeMap<String, String>),
    Play(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// Go to this step.
    Step(String),
    Route(Route),
    /// Switch the caller's language, then go to `menu` (the same menu when not given).
    Language {
        language: String,
        menu: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub skills: Vec<String>,
    pub workflow: Option<String>,
    pub priority: Option<i64>,
    /// Extra task attributes, a JSON object.
    pub attributes: Value,
}

/// Seconds of silence before a retry, unless the menu says otherwise.
pub const DEFAULT_TIMEOUT: u32 = 5;
/// Retries after the first attempt, unless the menu says otherwise.
pub const DEFAULT_RETRIES: u32 = 2;
/// The longest voicemail, in seconds, unless the menu says otherwise.
pub const DEFAULT_MAX_LENGTH: u32 = 120;
/// Seconds a forwarded call rings, unless the step says otherwise.
pub const DEFAULT_RING: u32 = 30;
/// Seconds a lookup waits for its answer, unless the step says otherwise.
pub const DEFAULT_LOOKUP_TIMEOUT: u32 = 5;
/// The longest a lookup may wait: the provider waits 15 s for the webhook that makes it.
pub const MAX_LOOKUP_TIMEOUT: u32 = 10;
/// The longest a menu or a collect waits for the caller's first key, in seconds.
pub const MAX_WAIT_SECONDS: u32 = 60;
/// The longest voicemail, in seconds (the provider's `Record` limit: four hours).
pub const MAX_RECORDING_SECONDS: u32 = 14_400;
/// The most digits a collect reads.
pub const MAX_COLLECT_DIGITS: u32 = 32;
/// The longest text a collect keeps from a texter.
pub const MAX_COLLECT_TEXT: usize = 64;
