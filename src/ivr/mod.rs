//! IVR flows from TOML files (DESIGN §4): loading with every mistake reported by file and
//! line (`load.rs`), and the pure walker (`walk.rs`): (flow, state, input) → (TwiML, next
//! state, effect). No I/O and no clock: the HTTP layer reads the files, keeps each call's state
//! and acts on the effect (creating the task, hanging up).
//!
//! A flow file:
//!
//! ```toml
//! start = "main"
//! language = "en-US"              # the caller's language until they choose another
//! languages = ["en-US", "es-MX"]  # every prompt must then exist in each of these
//! voice = "Polly.Joanna"
//! workflow = "Sales and Support Workflow"   # routes use it unless they name another
//! numbers = ["+15550100200"]      # calls to these numbers start here (`main.toml`: all others)
//!
//! [menus.main]
//! say = { en-US = "For sales press 1...", es-MX = "Para ventas oprima 1..." }
//! timeout = 5      # seconds of silence before a retry
//! retries = 2      # then on_fail (or goodbye)
//! on_fail = "goodbye"
//!
//! sms = "Reply 1 (or SALES) for sales..."   # the prompt as a text; default: the say text
//!
//! [menus.main.options]
//! "1" = { route = { skills = ["Sales"] }, keywords = ["sales"] }   # texters may send the word
//! "2" = { menu = "support" }
//! "9" = { language = "es-MX" }    # switch language, hear this menu again
//!
//! [menus.goodbye]
//! say = "Goodbye."
//! hangup = true
//!
//! [menus.closed]                  # record a message, then route a task carrying it
//! say = "We are closed. Leave a message after the tone."
//! voicemail = { skills = ["Sales"], attributes = { callback = true } }
//! max_length = 120                # seconds
//!
//! [hours]                         # optional; without it the line is always open
//! time_zone = "America/New_York"
//! monday = "09:00-17:00"          # several spans: "09:00-12:00, 13:00-17:00"; no entry: closed
//! friday = "09:00-15:00"
//! holidays = ["2026-12-25"]
//! closed = "closed"               # the menu a call starts in outside these hours
//! ```

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzz;
pub mod graph;
mod hours;
mod load;
mod scenario;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::Value;

pub use hours::Hours;
pub use load::{IvrError, is_e164, load_flow, located};
pub use scenario::{CallOutcome, Scenarios, read_scenarios};
pub use walk::{CallState, Effect, Input, Medium, RouteRequest, Step, message, record, say, step};

/// A validated flow: every reference resolves and every prompt exists in every language.
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
    pub menus: BTreeMap<String, Menu>,
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

#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    pub prompt: Prompt,
    /// The prompt as a text message, per language; none: the `say` text.
    pub sms: Option<BTreeMap<String, String>>,
    /// Seconds of silence before the menu counts a no-input.
    pub timeout: u32,
    /// Extra attempts after the first, on no input or an invalid key.
    pub retries: u32,
    pub no_input: Option<Prompt>,
    pub invalid: Option<Prompt>,
    /// Where a caller goes after the last failed attempt; none: goodbye and hang up.
    pub on_fail: Option<String>,
    /// Say the prompt and hang up (no options).
    pub hangup: bool,
    /// Record a message after the prompt, then route a task that carries it (no options).
    pub voicemail: Option<Route>,
    /// The longest message recorded, in seconds.
    pub max_length: u32,
    /// By key (`0`-`9`, `*`, `#`).
    pub options: BTreeMap<char, Choice>,
    /// Words a texter may send instead of a key, lowercase, with the key they stand for.
    pub keywords: BTreeMap<String, char>,
}

/// What a menu says: text to speak per language, or an audio URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Say(BTreeMap<String, String>),
    Play(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    Menu(String),
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
