//! Typed TwiML (reference/twiml.md §4) and its rendering: the only module that imports
//! quick-xml. Handlers build a [`Response`] from verbs; [`Response::to_xml`] writes it with the
//! XML declaration, escaped text and attributes, and attributes in a fixed order, so that the
//! same response is always the same bytes (golden files compare them).

mod parse;
#[cfg(test)]
mod tests;

pub use parse::{Element, ParseError, parse};

use std::borrow::Cow;
use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// A TwiML document: verbs run top to bottom.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub verbs: Vec<Verb>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Say(Say),
    Play(Play),
    Pause { length: Option<u32> },
    Gather(Gather),
    Redirect { url: String, method: Option<Method> },
    Hangup,
    Reject { reason: Option<RejectReason> },
    Record(Record),
    Dial(Dial),
    Message(Message),
}

/// Text spoken by text-to-speech.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Say {
    pub text: String,
    /// `man`, `woman`, `alice`, `Polly.Joanna`...; Twilio's default when absent.
    pub voice: Option<String>,
    /// BCP-47, e.g. `en-US`.
    pub language: Option<String>,
    /// Repetitions; 0 repeats until the call moves on.
    pub repeat: Option<u32>,
}

/// An audio file played to the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Play {
    pub url: String,
    pub repeat: Option<u32>,
}

/// What a `<Gather>` says while it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Say(Say),
    Play(Play),
    Pause { length: Option<u32> },
}

/// Collects keypresses (or speech) and posts them to `action`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gather {
    pub action: Option<String>,
    pub method: Option<Method>,
    /// `dtmf`, `speech` or `dtmf speech`.
    pub input: Option<String>,
    /// Seconds of silence before the gather ends.
    pub timeout: Option<u32>,
    pub num_digits: Option<u32>,
    pub finish_on_key: Option<String>,
    /// Post to `action` even when nothing was entered (so the IVR can count a no-input).
    pub action_on_empty_result: Option<bool>,
    /// The language speech is recognized in (and `<Say>` is read in by default).
    pub language: Option<String>,
    /// Phrases the recognizer should expect, comma-separated.
    pub hints: Option<String>,
    /// Seconds of silence that end speech, or `auto`.
    pub speech_timeout: Option<String>,
    pub prompts: Vec<Prompt>,
}

/// Records a message (voicemail) and posts the recording to `action`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub action: Option<String>,
    pub method: Option<Method>,
    /// Seconds of silence that end the recording.
    pub timeout: Option<u32>,
    pub max_length: Option<u32>,
    pub finish_on_key: Option<String>,
    pub play_beep: Option<bool>,
    pub recording_status_callback: Option<String>,
}

/// Connects the caller to one party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub target: DialTarget,
    /// Posted when the dialled call ends, with `DialCallStatus`.
    pub action: Option<String>,
    pub method: Option<Method>,
    /// Ring time in seconds.
    pub timeout: Option<u32>,
    pub caller_id: Option<String>,
    /// Keep the caller hearing ringing (not silence) until the agent answers.
    pub answer_on_bridge: Option<bool>,
}

/// Who a `<Dial>` rings, chosen from an agent's `contact_uri`, or the conference it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// `+E.164`.
    Number(String),
    /// A Twilio Client identity (`client:alice` gives `alice`).
    Client(String),
    /// A `sip:` URI.
    Sip(String),
    /// A conference room, joined (`twiml.md` §4.3, `voice-api.md` §3.1).
    Conference(Conference),
}

/// `<Conference>`: a room named `name`, created by its first participant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conference {
    pub name: String,
    /// Starts the conference when this participant joins (Twilio's default: true).
    pub start_conference_on_enter: Option<bool>,
    /// Ends it, and takes everyone out, when this participant leaves (default: false).
    pub end_conference_on_exit: Option<bool>,
    /// `true`, `false`, `onEnter` or `onExit`.
    pub beep: Option<String>,
    /// What the participant hears while alone (TwiML or audio; `""`: silence).
    pub wait_url: Option<String>,
    pub wait_method: Option<Method>,
    /// Where the conference's events are posted (the first participant's wins)...
    pub status_callback: Option<String>,
    /// ...and which: space-separated, of `start end join leave mute hold modify speaker`.
    pub status_callback_event: Option<String>,
    pub status_callback_method: Option<Method>,
    /// The participant's label, unique in the conference.
    pub participant_label: Option<String>,
}

/// An SMS reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub body: String,
    pub to: Option<String>,
    pub from: Option<String>,
    pub media: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Rejected,
    Busy,
}

impl DialTarget {
    /// The target for an agent's `contact_uri`: `+E.164` is a number, `client:x` a client,
    /// `sip:...` a SIP URI. Anything else is not dialable.
    pub fn from_contact_uri(contact_uri: &str) -> Option<DialTarget> {
        let contact_uri = contact_uri.trim();
        if let Some(identity) = contact_uri.strip_prefix("client:") {
            return (!identity.is_empty()).then(|| DialTarget::Client(identity.to_owned()));
        }
        if contact_uri.starts_with("sip:") || contact_uri.starts_with("sips:") {
            return Some(DialTarget::Sip(contact_uri.to_owned()));
        }
        let digits = contact_uri.strip_prefix('+')?;
        let is_e164 = (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        is_e164.then(|| DialTarget::Number(contact_uri.to_owned()))
    }
}

/// A prompt said outside a `<Gather>` (a menu that only speaks and hangs up).
impl From<Prompt> for Verb {
    fn from(prompt: Prompt) -> Verb {
        match prompt {
            Prompt::Say(say) => Verb::Say(say),
            Prompt::Play(play) => Verb::Play(play),
            Prompt::Pause { length } => Verb::Pause { length },
        }
    }
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

impl Response {
    pub fn new(verbs: Vec<Verb>) -> Response {
        Response { verbs }
    }

    /// The document as sent: the XML declaration, then `<Response>` on one line.
    pub fn to_xml(&self) -> String {
        let mut writer = Writer::new(Vec::new());
        match write_response(&mut writer, self) {
            Ok(()) => String::from_utf8(writer.into_inner()).unwrap_or_default(),
            // Writing to memory does not fail; should it, an empty document is still valid TwiML.
            Err(_) => r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#.to_owned(),
        }
    }
}

/// Attributes in the order given; `None` values are left out.
/// Attribute names and values, borrowed where the verb holds the text: an IVR step's action
/// URL is long, and written on every step.
type Attributes<'a> = Vec<(&'a str, Option<Cow<'a, str>>)>;

fn write_response(writer: &mut Writer<Vec<u8>>, response: &Response) -> io::Result<()> {
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    if response.verbs.is_empty() {
        return writer.write_event(Event::Empty(BytesStart::new("Response")));
    }
    writer.write_event(Event::Start(BytesStart::new("Response")))?;
    for verb in &response.verbs {
        write_verb(writer, verb)?;
    }
    writer.write_event(Event::End(BytesEnd::new("Response")))
}

fn write_verb(writer: &mut Writer<Vec<u8>>, verb: &Verb) -> io::Result<()> {
    match verb {
        Verb::Say(say) => write_say(writer, say),
        Verb::Play(play) => write_play(writer, play),
        Verb::Pause { length } => element(writer, "Pause", vec![("length", number(*length))], None),
        Verb::Gather(gather) => {
            let attributes = vec![
                ("input", text(&gather.input)),
                ("action", text(&gather.action)),
                ("method", method(gather.method)),
                ("timeout", number(gather.timeout)),
                ("numDigits", number(gather.num_digits)),
                ("finishOnKey", text(&gather.finish_on_key)),
                ("actionOnEmptyResult", boolean(gather.action_on_empty_result)),
                ("language", text(&gather.language)),
                ("hints", text(&gather.hints)),
                ("speechTimeout", text(&gather.speech_timeout)),
            ];
            if gather.prompts.is_empty() {
                return element(writer, "Gather", attributes, None);
            }
            writer.write_event(Event::Start(start("Gather", attributes)))?;
            for prompt in &gather.prompts {
                match prompt {
                    Prompt::Say(say) => write_say(writer, say)?,
                    Prompt::Play(play) => write_play(writer, play)?,
                    Prompt::Pause { length } => {
                        element(writer, "Pause", vec![("length", number(*length))], None)?;
                    }
                }
            }
            writer.write_event(Event::End(BytesEnd::new("Gather")))
        }
        Verb::Redirect { url, method: verb_method } => {
            element(writer, "Redirect", vec![("method", method(*verb_method))], Some(url))
        }
        Verb::Hangup => element(writer, "Hangup", vec![], None),
        Verb::Reject { reason } => {
            let reason = reason.map(|reason| {
                Cow::Borrowed(match reason {
                    RejectReason::Rejected => "rejected",
                    RejectReason::Busy => "busy",
                })
            });
            element(writer, "Reject", vec![("reason", reason)], None)
        }
        Verb::Record(record) => element(
            writer,
            "Record",
            vec![
                ("action", text(&record.action)),
                ("method", method(record.method)),
                ("timeout", number(record.timeout)),
                ("maxLength", number(record.max_length)),
                ("finishOnKey", text(&record.finish_on_key)),
                ("playBeep", boolean(record.play_beep)),
                ("recordingStatusCallback", text(&record.recording_status_callback)),
            ],
            None,
        ),
        Verb::Dial(dial) => {
            let attributes = vec![
                ("action", text(&dial.action)),
                ("method", method(dial.method)),
                ("timeout", number(dial.timeout)),
                ("callerId", text(&dial.caller_id)),
                ("answerOnBridge", boolean(dial.answer_on_bridge)),
            ];
            writer.write_event(Event::Start(start("Dial", attributes)))?;
            match &dial.target {
                DialTarget::Number(number) => element(writer, "Number", vec![], Some(number))?,
                DialTarget::Client(identity) => element(writer, "Client", vec![], Some(identity))?,
                DialTarget::Sip(uri) => element(writer, "Sip", vec![], Some(uri))?,
                DialTarget::Conference(room) => {
                    let attributes = vec![
                        ("startConferenceOnEnter", boolean(room.start_conference_on_enter)),
                        ("endConferenceOnExit", boolean(room.end_conference_on_exit)),
                        ("beep", text(&room.beep)),
                        ("waitUrl", text(&room.wait_url)),
                        ("waitMethod", method(room.wait_method)),
                        ("statusCallback", text(&room.status_callback)),
                        ("statusCallbackEvent", text(&room.status_callback_event)),
                        ("statusCallbackMethod", method(room.status_callback_method)),
                        ("participantLabel", text(&room.participant_label)),
                    ];
                    element(writer, "Conference", attributes, Some(&room.name))?
                }
            }
            writer.write_event(Event::End(BytesEnd::new("Dial")))
        }
        Verb::Message(message) => {
            let attributes = vec![("to", text(&message.to)), ("from", text(&message.from))];
            if message.media.is_empty() {
                return element(writer, "Message", attributes, Some(&message.body));
            }
            writer.write_event(Event::Start(start("Message", attributes)))?;
            element(writer, "Body", vec![], Some(&message.body))?;
            for media in &message.media {
                element(writer, "Media", vec![], Some(media))?;
            }
            writer.write_event(Event::End(BytesEnd::new("Message")))
        }
    }
}

fn write_say(writer: &mut Writer<Vec<u8>>, say: &Say) -> io::Result<()> {
    let attributes =
        vec![("voice", text(&say.voice)), ("language", text(&say.language)), ("loop", number(say.repeat))];
    element(writer, "Say", attributes, Some(&say.text))
}

fn write_play(writer: &mut Writer<Vec<u8>>, play: &Play) -> io::Result<()> {
    element(writer, "Play", vec![("loop", number(play.repeat))], Some(&play.url))
}

fn start<'a>(name: &'a str, attributes: Attributes<'_>) -> BytesStart<'a> {
    let mut start = BytesStart::new(name);
    for (key, value) in attributes {
        if let Some(value) = value {
            // `push_attribute` escapes `&`, `<`, `>`, `"` and `'` in the value.
            start.push_attribute((key, xml_chars(&value).as_ref()));
        }
    }
    start
}

/// `<name attributes>text</name>`, or `<name attributes/>` without text.
fn element(
    writer: &mut Writer<Vec<u8>>,
    name: &str,
    attributes: Attributes<'_>,
    text: Option<&str>,
) -> io::Result<()> {
    match text {
        None => writer.write_event(Event::Empty(start(name, attributes))),
        Some(text) => {
            writer.write_event(Event::Start(start(name, attributes)))?;
            writer.write_event(Event::Text(BytesText::new(&xml_chars(text))))?;
            writer.write_event(Event::End(BytesEnd::new(name)))
        }
    }
}

/// `text` without the characters XML 1.0 cannot hold, even escaped (control characters other
/// than tab, newline and carriage return; U+FFFE, U+FFFF), which a caller's variables, a
/// lookup's answer or a texter's message may carry: the provider would refuse the whole answer.
fn xml_chars(text: &str) -> Cow<'_, str> {
    let allowed = |c: char| !matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    // Bytes below 0x20 and 0xEF (the lead byte of U+FFFE and U+FFFF) are the only suspects.
    if text.bytes().all(|b| (b >= 0x20 && b != 0xEF) || matches!(b, b'\t' | b'\n' | b'\r')) {
        return Cow::Borrowed(text);
    }
    if text.chars().all(allowed) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|&c| allowed(c)).collect())
    }
}

fn text(value: &Option<String>) -> Option<Cow<'_, str>> {
    value.as_deref().map(Cow::Borrowed)
}

fn number(value: Option<u32>) -> Option<Cow<'static, str>> {
    value.map(|value| Cow::Owned(value.to_string()))
}

fn boolean(value: Option<bool>) -> Option<Cow<'static, str>> {
    value.map(|value| Cow::Borrowed(if value { "true" } else { "false" }))
}

fn method(value: Option<Method>) -> Option<Cow<'static, str>> {
    value.map(|value| Cow::Borrowed(value.as_str()))
}
