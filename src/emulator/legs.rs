//! Running calls: each leg's TwiML, verb by verb, as Twilio runs it; phones that ring and
//! answer as scripted; conferences joined and left. One tokio task per leg, which waits on
//! the leg's `changed` signal whenever the TwiML waits (a pause, a Gather, a ringing phone, a
//! conference), so that keys, hang-ups and the REST API's changes take effect at once.

use std::time::Instant;

use tokio::time::sleep_until;

use super::{CallStatus, ConferenceStatus, Emulator, Interruption, Participant, PhoneScript, World, new_leg};
use crate::outbound::webhooks::resolve;
use crate::twiml::{self, Element};

/// What a leg does next.
#[derive(Debug, Clone)]
pub enum Next {
    /// Fetch TwiML from this URL, posting the call's parameters and these.
    Fetch(String, Vec<(String, String)>),
    /// Run this TwiML (a Calls update with `Twiml`).
    Inline(String),
    /// Hang up.
    End,
}

/// How a wait ended.
enum Woke {
    Elapsed,
    Ready,
    Interrupted(Interruption),
}

/// Runs the leg's TwiML from `next` until the call ends.
pub async fn run(emulator: Emulator, call_sid: String, mut next: Next) {
    let mut at = emulator.settings().voice_url.clone();
    loop {
        let document = match next {
            Next::End => break,
            Next::Inline(twiml) => twiml,
            Next::Fetch(url, extra) => {
                let Some(mut params) =
                    emulator.world().legs.get(&call_sid).map(|leg| emulator.call_params(leg))
                else {
                    return;
                };
                params.extend(extra);
                match emulator.poster().post(&url, &params).await {
                    Ok(document) => {
                        at = url;
                        let mut world = emulator.world();
                        let Some(leg) = world.legs.get_mut(&call_sid) else { return };
                        if leg.status == CallStatus::Ringing {
                            leg.status = CallStatus::InProgress;
                            leg.answered = Some(Instant::now());
                        }
                        // Redirected or hung up while the answer was on its way: as Twilio does,
                        // what the answer says is dropped and the call does what came since.
                        if let Some(interruption) = leg.interruption.take() {
                            drop(world);
                            next = interrupted(&at, interruption);
                            continue;
                        }
                        document
                    }
                    Err(err) => {
                        note(
                            &emulator,
                            &call_sid,
                            format!("hears \"An application error has occurred\" ({err})"),
                        );
                        break;
                    }
                }
            }
        };
        let verbs = match twiml::parse(&document) {
            Ok(verbs) => verbs,
            Err(err) => {
                note(
                    &emulator,
                    &call_sid,
                    format!("hears \"An application error has occurred\" (not TwiML: {err})"),
                );
                break;
            }
        };
        next = execute(&emulator, &call_sid, &verbs, &at).await;
    }
    finish(&emulator, &call_sid, CallStatus::Completed);
}

/// Runs one document's verbs; answers what comes after it.
async fn execute(emulator: &Emulator, call_sid: &str, verbs: &[Element], at: &str) -> Next {
    for verb in verbs {
        let woke = match verb.name.as_str() {
            "Say" => {
                note(emulator, call_sid, format!("hears \"{}\"", verb.text));
                continue;
            }
            "Play" => {
                note(emulator, call_sid, format!("hears {}", verb.text));
                continue;
            }
            "Pause" => {
                let length = number(verb, "length").unwrap_or(1.0);
                wait(emulator, call_sid, Some(length), |_| false).await
            }
            "Gather" => {
                for prompt in &verb.children {
                    note(emulator, call_sid, format!("hears \"{}\"", prompt.text));
                }
                let timeout = number(verb, "timeout").unwrap_or(5.0);
                let pressed =
                    |world: &World| world.legs.get(call_sid).is_some_and(|leg| !leg.keys.is_empty());
                match wait(emulator, call_sid, Some(timeout), pressed).await {
                    Woke::Ready => {
                        let keys = emulator
                            .world()
                            .legs
                            .get_mut(call_sid)
                            .and_then(|leg| leg.keys.pop_front())
                            .unwrap_or_default();
                        note(emulator, call_sid, format!("presses {keys:?}"));
                        if keys.is_empty() && verb.attribute("actionOnEmptyResult") != Some("true") {
                            continue;
                        }
                        return Next::Fetch(
                            resolve(at, verb.attribute("action")),
                            vec![param("Digits", &keys)],
                        );
                    }
                    Woke::Elapsed if verb.attribute("actionOnEmptyResult") == Some("true") => {
                        return Next::Fetch(resolve(at, verb.attribute("action")), vec![param("Digits", "")]);
                    }
                    Woke::Elapsed => continue,
                    woke => woke,
                }
            }
            "Record" => return record(emulator, call_sid, verb, at).await,
            "Redirect" => return Next::Fetch(resolve(at, Some(verb.text.as_str())), Vec::new()),
            "Hangup" | "Reject" => return Next::End,
            "Dial" => match dial(emulator, call_sid, verb).await {
                Ok(outcome) => match verb.attribute("action") {
                    Some(action) => return Next::Fetch(resolve(at, Some(action)), outcome),
                    None => continue,
                },
                Err(interruption) => {
                    // Twilio still requests the Dial's action, and ignores what it answers.
                    if let Some(action) = verb.attribute("action") {
                        let mut params = emulator
                            .world()
                            .legs
                            .get(call_sid)
                            .map(|leg| emulator.call_params(leg))
                            .unwrap_or_default();
                        params.push(param("DialCallStatus", "completed"));
                        let _ = emulator.poster().post(&resolve(at, Some(action)), &params).await;
                    }
                    Woke::Interrupted(interruption)
                }
            },
            other => {
                note(emulator, call_sid, format!("(<{other}> is not emulated: skipped)"));
                continue;
            }
        };
        if let Woke::Interrupted(interruption) = woke {
            return interrupted(at, interruption);
        }
    }
    Next::End
}

fn interrupted(at: &str, interruption: Interruption) -> Next {
    match interruption {
        Interruption::Redirect(url) => Next::Fetch(resolve(at, Some(&url)), Vec::new()),
        Interruption::Twiml(twiml) => Next::Inline(twiml),
        Interruption::HangUp => Next::End,
    }
}

/// `<Record>`: the caller speaks for a few seconds (or until they hang up), then the action
/// gets the recording.
async fn record(emulator: &Emulator, call_sid: &str, verb: &Element, at: &str) -> Next {
    note(emulator, call_sid, "leaves a message after the beep".to_owned());
    let max_length = number(verb, "maxLength").unwrap_or(3600.0);
    let started = Instant::now();
    let woke = wait(emulator, call_sid, Some(max_length.min(3.0)), |_| false).await;
    let seconds = emulator.emulated(started.elapsed()).round().max(1.0) as u64;
    let recording_sid = {
        let mut world = emulator.world();
        let sid = world.sid("RE");
        world.recordings.insert(
            sid.clone(),
            super::Recording {
                sid: sid.clone(),
                call_sid: call_sid.to_owned(),
                status: "completed",
                started,
                recorded: std::time::Duration::from_secs(seconds),
                running_since: None,
                callback: None,
            },
        );
        sid
    };
    let params = vec![
        param("RecordingUrl", &emulator.recording_url(&recording_sid)),
        param("RecordingSid", &recording_sid),
        param("RecordingDuration", &seconds.to_string()),
    ];
    let action = resolve(at, verb.attribute("action"));
    match woke {
        Woke::Interrupted(Interruption::HangUp) => {
            // The caller hung up to end the message: the action still gets it, unanswered.
            let mut form =
                emulator.world().legs.get(call_sid).map(|leg| emulator.call_params(leg)).unwrap_or_default();
            form.extend(params);
            let _ = emulator.poster().post(&action, &form).await;
            Next::End
        }
        Woke::Interrupted(interruption) => interrupted(at, interruption),
        _ => Next::Fetch(action, params),
    }
}

/// `<Dial>`: a phone (`Number`, `Client`, `Sip`, or a bare number) or a `Conference`. Answers
/// the action's parameters, or how the caller's own call was interrupted.
async fn dial(
    emulator: &Emulator,
    call_sid: &str,
    verb: &Element,
) -> Result<Vec<(String, String)>, Interruption> {
    let noun = verb.children.first();
    if let Some(conference) = noun.filter(|noun| noun.name == "Conference") {
        return in_conference(emulator, call_sid, conference).await;
    }
    let address = match noun {
        Some(noun) if noun.name == "Client" => format!("client:{}", noun.text),
        Some(noun) => noun.text.clone(),
        None => verb.text.clone(),
    };
    let timeout = number(verb, "timeout").unwrap_or(30.0);
    let (from, parent) = {
        let world = emulator.world();
        let Some(leg) = world.legs.get(call_sid) else { return Err(Interruption::HangUp) };
        (verb.attribute("callerId").map(str::to_owned).unwrap_or_else(|| leg.from.clone()), leg.sid.clone())
    };
    let child = {
        let mut world = emulator.world();
        let sid = world.sid("CA");
        world.legs.insert(sid.clone(), new_leg(&sid, Some(parent), &from, &address, "outbound-dial", None));
        sid
    };
    note(emulator, call_sid, format!("is connected to {address}"));
    bridged(emulator, call_sid);
    let started = Instant::now();
    let outcome = ring(emulator, call_sid, &child, &address, timeout).await;
    let status = match outcome {
        Ring::Answered => {
            let script = emulator.phone(&address);
            let child_done =
                |world: &World| world.legs.get(&child).is_none_or(|leg| leg.interruption.is_some());
            let woke = wait(emulator, call_sid, script.hang_up_after, child_done).await;
            finish(emulator, &child, CallStatus::Completed);
            if let Woke::Interrupted(interruption) = woke {
                return Err(interruption);
            }
            "completed"
        }
        Ring::Failed(status) => {
            finish(emulator, &child, status);
            status.as_str()
        }
        Ring::CallerLeft(interruption) => {
            finish(emulator, &child, CallStatus::Canceled);
            return Err(interruption);
        }
    };
    let duration = emulator.emulated(started.elapsed()).round() as u64;
    Ok(vec![
        param("DialCallStatus", status),
        param("DialCallSid", &child),
        param("DialCallDuration", &duration.to_string()),
    ])
}

enum Ring {
    Answered,
    /// Busy, no answer or failed.
    Failed(CallStatus),
    /// The call that waits for this one (`waiter`) was interrupted meanwhile.
    CallerLeft(Interruption),
}

/// Rings the phone at `address` for `leg` (at most `timeout` s), as scripted, while `waiter`
/// (the caller in a Dial, or the leg itself) waits.
async fn ring(emulator: &Emulator, waiter: &str, leg: &str, address: &str, timeout: f64) -> Ring {
    let script = emulator.phone(address);
    set_status(emulator, leg, CallStatus::Ringing);
    if script.busy {
        return Ring::Failed(CallStatus::Busy);
    }
    let rings_for = script.answer_after.filter(|after| *after <= timeout).unwrap_or(timeout);
    let leg_interrupted = |world: &World| world.legs.get(leg).is_none_or(|leg| leg.interruption.is_some());
    match wait(emulator, waiter, Some(rings_for), leg_interrupted).await {
        Woke::Interrupted(interruption) => Ring::CallerLeft(interruption),
        // Hung up or canceled through the API while ringing.
        Woke::Ready => Ring::Failed(CallStatus::Canceled),
        Woke::Elapsed if script.answer_after.is_some_and(|after| after <= timeout) => {
            set_status(emulator, leg, CallStatus::InProgress);
            Ring::Answered
        }
        Woke::Elapsed => Ring::Failed(CallStatus::NoAnswer),
    }
}

/// A call placed by the REST API (Calls create, or Participants create when `conference` is
/// given): rings the phone, then runs `url`'s TwiML or joins the conference.
pub async fn place(emulator: Emulator, call_sid: String, timeout: f64, then: Placed) {
    let address = emulator.world().legs.get(&call_sid).map(|leg| leg.to.clone()).unwrap_or_default();
    status_event(&emulator, &call_sid, "initiated");
    match ring(&emulator, &call_sid, &call_sid, &address, timeout).await {
        Ring::Answered => {}
        Ring::Failed(status) => return finish(&emulator, &call_sid, status),
        Ring::CallerLeft(_) => return finish(&emulator, &call_sid, CallStatus::Canceled),
    }
    match then {
        Placed::Run(url) => run(emulator, call_sid, Next::Fetch(url, Vec::new())).await,
        Placed::Join(conference, participant) => {
            {
                let mut world = emulator.world();
                // Ended while the phone rang: a new conference of the same name, as Twilio
                // starts one for a name with no active conference.
                let conference = match world.conferences.get(&conference) {
                    Some(ended) if ended.status == ConferenceStatus::Completed => {
                        let name = ended.friendly_name.clone();
                        let callback = ended.status_callback.clone();
                        conference_named(&mut world, &name, callback)
                    }
                    _ => conference,
                };
                join(&emulator, &mut world, &conference, participant);
            }
            let script = emulator.phone(&address);
            let left = |world: &World| world.legs.get(&call_sid).is_none_or(|leg| leg.conference.is_none());
            let woke = wait(&emulator, &call_sid, script.hang_up_after, left).await;
            match woke {
                Woke::Interrupted(Interruption::Redirect(url)) => {
                    leave_conference(&emulator, &call_sid, "participant_updated_via_api");
                    run(emulator, call_sid, Next::Fetch(url, Vec::new())).await;
                }
                Woke::Interrupted(Interruption::Twiml(twiml)) => {
                    leave_conference(&emulator, &call_sid, "participant_updated_via_api");
                    run(emulator, call_sid, Next::Inline(twiml)).await;
                }
                _ => finish(&emulator, &call_sid, CallStatus::Completed),
            }
        }
    }
}

/// What a placed call does once answered.
pub enum Placed {
    /// Runs this URL's TwiML.
    Run(String),
    /// Joins this conference (its SID) as this participant.
    Join(String, Participant),
}

/// `<Dial><Conference>`: joins (creating it if need be) and stays until the conference ends,
/// the participant is removed, or the call is interrupted.
async fn in_conference(
    emulator: &Emulator,
    call_sid: &str,
    noun: &Element,
) -> Result<Vec<(String, String)>, Interruption> {
    let flag = |name: &str, default: bool| noun.attribute(name).map_or(default, |value| value == "true");
    let participant = Participant {
        call_sid: call_sid.to_owned(),
        label: noun.attribute("participantLabel").map(str::to_owned),
        muted: flag("muted", false),
        hold: false,
        coaching: false,
        call_sid_to_coach: noun.attribute("coach").map(str::to_owned),
        start_conference_on_enter: flag("startConferenceOnEnter", true),
        end_conference_on_exit: flag("endConferenceOnExit", false),
    };
    let callback = noun.attribute("statusCallback").map(|url| {
        let events = noun.attribute("statusCallbackEvent").unwrap_or("start end");
        (url.to_owned(), events.split_whitespace().map(str::to_owned).collect())
    });
    {
        let mut world = emulator.world();
        let conference = conference_named(&mut world, &noun.text, callback);
        join(emulator, &mut world, &conference, participant);
    }
    note(emulator, call_sid, format!("joins conference {}", noun.text));
    bridged(emulator, call_sid);
    let left = |world: &World| world.legs.get(call_sid).is_none_or(|leg| leg.conference.is_none());
    match wait(emulator, call_sid, None, left).await {
        Woke::Interrupted(interruption) => {
            let reason = if interruption == Interruption::HangUp {
                "participant_hung_up"
            } else {
                "participant_updated_via_api"
            };
            leave_conference(emulator, call_sid, reason);
            Err(interruption)
        }
        _ => Ok(vec![param("DialCallStatus", "completed")]),
    }
}

/// The active conference named `name`, created (`init`) if there is none; the first
/// participant's callback is the conference's.
pub fn conference_named(world: &mut World, name: &str, callback: Option<(String, Vec<String>)>) -> String {
    if let Some(conference) = world.active_conference(name) {
        let sid = conference.sid.clone();
        let conference = world.conferences.get_mut(&sid).expect("just found");
        if conference.status_callback.is_none() {
            conference.status_callback = callback;
        }
        return sid;
    }
    let sid = world.sid("CF");
    world.conferences.insert(
        sid.clone(),
        super::Conference {
            sid: sid.clone(),
            friendly_name: name.to_owned(),
            status: ConferenceStatus::Init,
            participants: Vec::new(),
            status_callback: callback,
            sequence: 0,
            reason_ended: None,
            call_sid_ending: None,
        },
    );
    sid
}

/// Adds `participant` to `conference`: `participant-join`, then `conference-start` once two
/// are in and one of them starts it.
pub fn join(emulator: &Emulator, world: &mut World, conference: &str, participant: Participant) {
    let call_sid = participant.call_sid.clone();
    if let Some(leg) = world.legs.get_mut(&call_sid) {
        leg.conference = Some(conference.to_owned());
    }
    let Some(room) = world.conferences.get_mut(conference) else { return };
    room.participants.push(participant.clone());
    conference_event(emulator, world, conference, "participant-join", Some(&participant), &[]);
    let Some(room) = world.conferences.get_mut(conference) else { return };
    if room.status == ConferenceStatus::Init
        && room.participants.len() >= 2
        && room.participants.iter().any(|p| p.start_conference_on_enter)
    {
        room.status = ConferenceStatus::InProgress;
        conference_event(emulator, world, conference, "conference-start", None, &[]);
    }
    world.wake(&call_sid);
}

/// Takes `call_sid` out of its conference (`participant-leave` with `reason`); the conference
/// ends when it was the last one in, or one whose leaving ends it.
pub fn leave_conference(emulator: &Emulator, call_sid: &str, reason: &str) {
    let mut world = emulator.world();
    leave(emulator, &mut world, call_sid, reason, false);
}

/// [`leave_conference`] under the world's lock; `kicked`: removed through the API.
pub fn leave(emulator: &Emulator, world: &mut World, call_sid: &str, reason: &str, kicked: bool) {
    let Some(conference) = world.legs.get_mut(call_sid).and_then(|leg| leg.conference.take()) else { return };
    let call_status = if reason == "participant_hung_up" { "completed" } else { "in-progress" };
    let Some(room) = world.conferences.get_mut(&conference) else { return };
    let Some(position) = room.participants.iter().position(|p| p.call_sid == call_sid) else { return };
    let participant = room.participants.remove(position);
    let remaining = room.participants.len();
    conference_event(
        emulator,
        world,
        &conference,
        "participant-leave",
        Some(&participant),
        &[("ReasonParticipantLeft", reason), ("ParticipantCallStatus", call_status)],
    );
    world.wake(call_sid);
    if participant.end_conference_on_exit {
        let ended = if kicked {
            "participant-with-end-conference-on-exit-kicked"
        } else {
            "participant-with-end-conference-on-exit-left"
        };
        end_conference(emulator, world, &conference, ended, Some(call_sid));
    } else if remaining == 0 {
        let ended = if kicked { "last-participant-kicked" } else { "last-participant-left" };
        end_conference(emulator, world, &conference, ended, Some(call_sid));
    }
}

/// Ends `conference`: everyone still in it leaves (their `Dial` continues), `conference-end`.
pub fn end_conference(
    emulator: &Emulator,
    world: &mut World,
    conference: &str,
    reason: &'static str,
    ending: Option<&str>,
) {
    let Some(room) = world.conferences.get_mut(conference) else { return };
    if room.status == ConferenceStatus::Completed {
        return;
    }
    room.status = ConferenceStatus::Completed;
    room.reason_ended = Some(reason);
    room.call_sid_ending = ending.map(str::to_owned);
    let remaining: Vec<Participant> = std::mem::take(&mut room.participants);
    for participant in &remaining {
        if let Some(leg) = world.legs.get_mut(&participant.call_sid) {
            leg.conference = None;
        }
        conference_event(
            emulator,
            world,
            conference,
            "participant-leave",
            Some(participant),
            &[
                ("ReasonParticipantLeft", "conference_ended_via_api"),
                ("ParticipantCallStatus", "in-progress"),
            ],
        );
        world.wake(&participant.call_sid);
    }
    let mut extra = vec![("ReasonConferenceEnded", reason), ("Reason", reason)];
    if let Some(ending) = ending {
        extra.push(("CallSidEndingConference", ending));
    }
    conference_event(emulator, world, conference, "conference-end", None, &extra);
}

/// Posts a conference event to its callback when it asked for the event's kind.
pub fn conference_event(
    emulator: &Emulator,
    world: &mut World,
    conference: &str,
    event: &str,
    participant: Option<&Participant>,
    extra: &[(&str, &str)],
) {
    let Some(room) = world.conferences.get_mut(conference) else { return };
    let Some((url, events)) = room.status_callback.clone() else { return };
    let kind = match event {
        "conference-start" => "start",
        "conference-end" => "end",
        "participant-join" => "join",
        "participant-leave" => "leave",
        "participant-mute" | "participant-unmute" => "mute",
        "participant-hold" | "participant-unhold" => "hold",
        _ => "modify",
    };
    if !events.iter().any(|wanted| wanted == kind) {
        return;
    }
    room.sequence += 1;
    let mut params = vec![
        param("AccountSid", &emulator.settings().account_sid),
        param("ConferenceSid", &room.sid),
        param("FriendlyName", &room.friendly_name),
        param("SequenceNumber", &room.sequence.to_string()),
        param(
            "Timestamp",
            &jiff::fmt::rfc2822::to_string(&jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC))
                .unwrap_or_default(),
        ),
        param("StatusCallbackEvent", event),
    ];
    if let Some(participant) = participant {
        let flag = |value: bool| if value { "true" } else { "false" };
        params.extend([
            param("CallSid", &participant.call_sid),
            param("Muted", flag(participant.muted)),
            param("Hold", flag(participant.hold)),
            param("Coaching", flag(participant.coaching)),
            param("EndConferenceOnExit", flag(participant.end_conference_on_exit)),
            param("StartConferenceOnEnter", flag(participant.start_conference_on_enter)),
        ]);
        if let Some(label) = &participant.label {
            params.push(param("ParticipantLabel", label));
        }
    }
    params.extend(extra.iter().map(|(name, value)| param(name, value)));
    emulator.callback(&url, params);
}

/// The call is over with `status`: out of its conference, its recording finished, its status
/// callback sent.
pub fn finish(emulator: &Emulator, call_sid: &str, status: CallStatus) {
    let mut world = emulator.world();
    let Some(leg) = world.legs.get_mut(call_sid) else { return };
    if leg.status.is_over() {
        return;
    }
    // A call hung up after it was answered is `completed`, whatever ended it.
    leg.status =
        if leg.answered.is_some() && status == CallStatus::Canceled { CallStatus::Completed } else { status };
    leg.transcript.push(format!("call over: {}", leg.status.as_str()));
    let recording = leg.recording.take();
    leave(emulator, &mut world, call_sid, "participant_hung_up", false);
    if let Some(recording) = recording {
        super::rest::stop_recording(emulator, &mut world, &recording);
    }
    let Some(leg) = world.legs.get(call_sid) else { return };
    if let Some((url, _)) = &leg.status_callback {
        let mut params = emulator.call_params(leg);
        let duration =
            leg.answered.map_or(0, |answered| emulator.emulated(answered.elapsed()).round() as u64);
        params.push(param("CallDuration", &duration.to_string()));
        params.push(param("CallbackSource", "call-progress-events"));
        emulator.callback(url, params);
    }
    world.wake(call_sid);
}

fn set_status(emulator: &Emulator, call_sid: &str, status: CallStatus) {
    {
        let mut world = emulator.world();
        let Some(leg) = world.legs.get_mut(call_sid) else { return };
        leg.status = status;
        if status == CallStatus::InProgress {
            leg.answered = Some(Instant::now());
        }
    }
    match status {
        CallStatus::Ringing => status_event(emulator, call_sid, "ringing"),
        CallStatus::InProgress => status_event(emulator, call_sid, "answered"),
        _ => {}
    }
}

/// Posts the leg's status callback for `event` (`initiated`, `ringing`, `answered`) if it
/// asked for it; `completed` goes from [`finish`].
fn status_event(emulator: &Emulator, call_sid: &str, event: &str) {
    let world = emulator.world();
    let Some(leg) = world.legs.get(call_sid) else { return };
    let Some((url, events)) = &leg.status_callback else { return };
    if events.iter().any(|wanted| wanted == event) {
        let mut params = emulator.call_params(leg);
        if event == "initiated" {
            params.retain(|(name, _)| name != "CallStatus");
            params.push(param("CallStatus", "initiated"));
        }
        params.push(param("CallbackSource", "call-progress-events"));
        emulator.callback(url, params);
    }
}

/// Waits up to `seconds` of emulated time (none: for ever) or until `ready`, whichever comes
/// first, unless the leg is interrupted meanwhile (the interruption is taken).
async fn wait(
    emulator: &Emulator,
    call_sid: &str,
    seconds: Option<f64>,
    ready: impl Fn(&World) -> bool,
) -> Woke {
    let deadline = seconds.map(|seconds| tokio::time::Instant::now() + emulator.wall(seconds));
    loop {
        let mut changed = {
            let mut world = emulator.world();
            let Some(leg) = world.legs.get_mut(call_sid) else {
                return Woke::Interrupted(Interruption::HangUp);
            };
            if let Some(interruption) = leg.interruption.take() {
                return Woke::Interrupted(interruption);
            }
            let changed = leg.changed.subscribe();
            if ready(&world) {
                return Woke::Ready;
            }
            changed
        };
        let sleep = async {
            match deadline {
                Some(deadline) => sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => return Woke::Elapsed,
            changed = changed.changed() => if changed.is_err() { return Woke::Interrupted(Interruption::HangUp) },
        }
    }
}

impl Emulator {
    /// What the phone at `address` is scripted to do: its own script, or every phone's.
    pub fn phone(&self, address: &str) -> PhoneScript {
        let world = self.world();
        world.phones.get(address).copied().unwrap_or(world.every_phone)
    }

    /// Where a recording's audio is served.
    pub fn recording_url(&self, recording_sid: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Recordings/{recording_sid}",
            self.settings().public_url,
            self.settings().account_sid
        )
    }
}

/// The leg leaves the hold loop toward an agent: the first time is kept.
fn bridged(emulator: &Emulator, call_sid: &str) {
    if let Some(leg) = emulator.world().legs.get_mut(call_sid) {
        leg.bridged_at.get_or_insert_with(std::time::SystemTime::now);
    }
}

fn note(emulator: &Emulator, call_sid: &str, line: String) {
    if let Some(leg) = emulator.world().legs.get_mut(call_sid) {
        leg.transcript.push(line);
    }
}

fn number(verb: &Element, name: &str) -> Option<f64> {
    verb.attribute(name).and_then(|value| value.parse().ok())
}

fn param(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}
