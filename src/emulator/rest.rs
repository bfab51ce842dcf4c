//! The emulator's Voice REST API: Calls, Conferences, Participants and Recordings as Twilio
//! answers them (`voice-api.md` §2 to §4), over the emulator's world. The HTTP routes
//! (`http::emulator`) check Basic auth and hand each request here with its form.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::legs::{self, Placed};
use super::{
    CallStatus, ConferenceStatus, Emulator, Interruption, Leg, Participant, Recording, World, new_leg,
};

/// A refusal in Twilio's shape: HTTP status, error code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: u32, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    /// Twilio's error JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status,
        })
    }
}

pub type ApiResult = Result<(u16, Value), ApiError>;

type Params = [(String, String)];

fn get<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

fn all(params: &Params, name: &str) -> Vec<String> {
    params
        .iter()
        .filter(|(key, _)| key == name)
        .flat_map(|(_, value)| value.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

fn flag(params: &Params, name: &str) -> Option<bool> {
    get(params, name).map(|value| value.eq_ignore_ascii_case("true"))
}

fn seconds(params: &Params, name: &str, default: f64) -> f64 {
    get(params, name).and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(404, 20404, format!("The requested resource {what} was not found"))
}

fn callback(params: &Params, url: &str, events: &str, default: &[&str]) -> Option<(String, Vec<String>)> {
    let url = get(params, url)?;
    let mut wanted = all(params, events);
    if wanted.is_empty() {
        wanted = default.iter().map(|event| (*event).to_owned()).collect();
    }
    Some((url.to_owned(), wanted))
}

/// `POST /Calls.json`: places a call; once answered it runs `Url`'s TwiML.
pub fn create_call(emulator: &Emulator, params: &Params) -> ApiResult {
    let (Some(to), Some(from)) = (get(params, "To"), get(params, "From")) else {
        return Err(ApiError::new(400, 21200, "A 'To' and a 'From' are required"));
    };
    let Some(url) = get(params, "Url") else {
        return Err(ApiError::new(
            400,
            21200,
            "A 'Url' is required (Twiml and ApplicationSid are not emulated)",
        ));
    };
    let status_callback = callback(params, "StatusCallback", "StatusCallbackEvent", &["completed"]);
    let sid = {
        let mut world = emulator.world();
        let sid = world.sid("CA");
        world.legs.insert(sid.clone(), new_leg(&sid, None, from, to, "outbound-api", status_callback));
        sid
    };
    let timeout = seconds(params, "Timeout", 60.0);
    tokio::spawn(legs::place(emulator.clone(), sid.clone(), timeout, Placed::Run(url.to_owned())));
    let world = emulator.world();
    Ok((201, call_json(emulator, &world.legs[&sid])))
}

/// `POST /Calls/{CallSid}.json`: redirects (`Url`, `Twiml`) or ends (`Status`) a live call.
pub fn update_call(emulator: &Emulator, call_sid: &str, params: &Params) -> ApiResult {
    let mut world = emulator.world();
    let Some(leg) = world.legs.get(call_sid) else { return Err(not_found(&format!("Call {call_sid}"))) };
    let status = leg.status;
    let interruption = match (get(params, "Url"), get(params, "Twiml"), get(params, "Status")) {
        (Some(url), _, _) => Interruption::Redirect(url.to_owned()),
        (None, Some(twiml), _) => Interruption::Twiml(twiml.to_owned()),
        (None, None, Some("completed")) => Interruption::HangUp,
        (None, None, Some("canceled")) => {
            if matches!(status, CallStatus::Queued | CallStatus::Ringing) {
                Interruption::HangUp
            } else {
                // No effect on a call in progress.
                return Ok((200, call_json(emulator, &world.legs[call_sid])));
            }
        }
        _ => return Err(ApiError::new(400, 21200, "Give Url, Twiml or Status (completed or canceled)")),
    };
    if interruption != Interruption::HangUp && status != CallStatus::InProgress {
        return Err(ApiError::new(400, 21220, "Call is not in-progress. Cannot redirect."));
    }
    if interruption == Interruption::HangUp && status.is_over() {
        return Err(ApiError::new(400, 21220, "Call is not in-progress. Cannot hang up."));
    }
    if interruption != Interruption::HangUp {
        // Moved out of its conference at once, as Twilio does.
        legs::leave(emulator, &mut world, call_sid, "participant_updated_via_api", false);
    }
    world.interrupt(call_sid, interruption);
    Ok((200, call_json(emulator, &world.legs[call_sid])))
}

/// `GET /Calls/{CallSid}.json`.
pub fn fetch_call(emulator: &Emulator, call_sid: &str) -> ApiResult {
    let world = emulator.world();
    let leg = world.legs.get(call_sid).ok_or_else(|| not_found(&format!("Call {call_sid}")))?;
    Ok((200, call_json(emulator, leg)))
}

/// `GET /Conferences.json?FriendlyName=&Status=`.
pub fn list_conferences(emulator: &Emulator, params: &Params) -> ApiResult {
    let world = emulator.world();
    let mut conferences: Vec<Value> = world
        .conferences
        .values()
        .filter(|c| get(params, "FriendlyName").is_none_or(|name| c.friendly_name == name))
        .filter(|c| get(params, "Status").is_none_or(|status| c.status.as_str() == status))
        .map(|c| conference_json(emulator, c))
        .collect();
    conferences.sort_by(|a, b| a["sid"].as_str().cmp(&b["sid"].as_str()));
    Ok((200, json!({ "conferences": conferences, "page": 0, "page_size": 50, "next_page_uri": null })))
}

/// `GET /Conferences/{ConferenceSid}.json`.
pub fn fetch_conference(emulator: &Emulator, conference_sid: &str) -> ApiResult {
    let world = emulator.world();
    let conference = world
        .conferences
        .get(conference_sid)
        .ok_or_else(|| not_found(&format!("Conference {conference_sid}")))?;
    Ok((200, conference_json(emulator, conference)))
}

/// `POST /Conferences/{ConferenceSid}.json` with `Status=completed`.
pub fn update_conference(emulator: &Emulator, conference_sid: &str, params: &Params) -> ApiResult {
    let mut world = emulator.world();
    if !world.conferences.contains_key(conference_sid) {
        return Err(not_found(&format!("Conference {conference_sid}")));
    }
    if get(params, "Status") == Some("completed") {
        let remaining: Vec<String> =
            world.conferences[conference_sid].participants.iter().map(|p| p.call_sid.clone()).collect();
        legs::end_conference(emulator, &mut world, conference_sid, "conference-ended-via-api", None);
        // Participants added through the API have no TwiML after the conference: they hang up.
        for call_sid in remaining {
            if world.legs.get(&call_sid).is_some_and(|leg| leg.direction == "outbound-api") {
                world.interrupt(&call_sid, Interruption::HangUp);
            }
        }
    }
    Ok((200, conference_json(emulator, &world.conferences[conference_sid])))
}

/// `POST /Conferences/{Sid or FriendlyName}/Participants.json`: calls `To` into the conference.
pub fn create_participant(emulator: &Emulator, conference: &str, params: &Params) -> ApiResult {
    let (Some(to), Some(from)) = (get(params, "To"), get(params, "From")) else {
        return Err(ApiError::new(400, 21200, "A 'To' and a 'From' are required"));
    };
    let label = get(params, "Label").map(str::to_owned);
    let mut world = emulator.world();
    let conference_sid = if conference.starts_with("CF") {
        match world.conferences.get(conference) {
            Some(c) if c.status != ConferenceStatus::Completed => conference.to_owned(),
            _ => return Err(ApiError::new(404, 20404, format!("Conference {conference} is not active"))),
        }
    } else {
        let callback =
            callback(params, "ConferenceStatusCallback", "ConferenceStatusCallbackEvent", &["start", "end"]);
        legs::conference_named(&mut world, conference, callback)
    };
    if let Some(label) = &label {
        // Taken by a participant in the conference, or by one whose phone still rings.
        let taken =
            world.conferences[&conference_sid].participants.iter().any(|p| p.label.as_ref() == Some(label))
                || world.legs.values().any(|leg| {
                    leg.conference.is_none() && !leg.status.is_over() && leg.label.as_ref() == Some(label)
                });
        if taken {
            return Err(ApiError::new(
                409,
                16026,
                format!("Label {label} is already used by an active participant"),
            ));
        }
    }
    let sid = world.sid("CA");
    let status_callback = callback(params, "StatusCallback", "StatusCallbackEvent", &["completed"]);
    let leg = new_leg(&sid, None, from, to, "outbound-api", status_callback);
    let participant = Participant {
        call_sid: sid.clone(),
        label: label.clone(),
        muted: flag(params, "Muted").unwrap_or(false),
        hold: false,
        coaching: flag(params, "Coaching").unwrap_or(false),
        call_sid_to_coach: get(params, "CallSidToCoach").map(str::to_owned),
        start_conference_on_enter: flag(params, "StartConferenceOnEnter").unwrap_or(true),
        end_conference_on_exit: flag(params, "EndConferenceOnExit").unwrap_or(false),
    };
    let joining = Some((conference_sid.clone(), participant.clone()));
    world.legs.insert(sid.clone(), Leg { label: label.clone(), joining, ..leg });
    let answer = participant_json(emulator, &conference_sid, &participant, "queued");
    let timeout = seconds(params, "Timeout", 60.0);
    tokio::spawn(legs::place(emulator.clone(), sid, timeout, Placed::Join(conference_sid, participant)));
    Ok((201, answer))
}

/// `GET /Conferences/{CF}/Participants.json`.
pub fn list_participants(emulator: &Emulator, conference_sid: &str) -> ApiResult {
    let world = emulator.world();
    let conference = world
        .conferences
        .get(conference_sid)
        .ok_or_else(|| not_found(&format!("Conference {conference_sid}")))?;
    let participants: Vec<Value> = conference
        .participants
        .iter()
        .map(|p| participant_json(emulator, conference_sid, p, "connected"))
        .collect();
    Ok((200, json!({ "participants": participants, "page": 0, "page_size": 50, "next_page_uri": null })))
}

/// The participant of `conference_sid` whose call SID or label is `participant`.
fn participant_mut<'a>(
    world: &'a mut World,
    conference_sid: &str,
    participant: &str,
) -> Result<&'a mut Participant, ApiError> {
    world
        .conferences
        .get_mut(conference_sid)
        .filter(|c| c.status != ConferenceStatus::Completed)
        .and_then(|c| {
            c.participants
                .iter_mut()
                .find(|p| p.call_sid == participant || p.label.as_deref() == Some(participant))
        })
        .ok_or_else(|| not_found(&format!("Participant {participant} of {conference_sid}")))
}

/// `GET /Conferences/{CF}/Participants/{CallSid or Label}.json`.
/// A participant still being called in is found too, with its call's progress as its status.
pub fn fetch_participant(emulator: &Emulator, conference_sid: &str, participant: &str) -> ApiResult {
    let mut world = emulator.world();
    let calling = world.legs.values().find_map(|leg| {
        let (joining, found) = leg.joining.as_ref()?;
        let named = leg.sid == participant || leg.label.as_deref() == Some(participant);
        let status = match leg.status {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "connecting",
            _ => return None,
        };
        (named && joining == conference_sid && leg.conference.is_none()).then(|| (found.clone(), status))
    });
    if let Some((found, status)) = calling {
        return Ok((200, participant_json(emulator, conference_sid, &found, status)));
    }
    let found = participant_mut(&mut world, conference_sid, participant)?.clone();
    Ok((200, participant_json(emulator, conference_sid, &found, "connected")))
}

/// `POST /Conferences/{CF}/Participants/{CallSid or Label}.json`: hold, mute, coach.
pub fn update_participant(
    emulator: &Emulator,
    conference_sid: &str,
    participant: &str,
    params: &Params,
) -> ApiResult {
    let mut world = emulator.world();
    let found = participant_mut(&mut world, conference_sid, participant)?;
    let before = found.clone();
    if let Some(hold) = flag(params, "Hold") {
        found.hold = hold;
    }
    if let Some(muted) = flag(params, "Muted") {
        found.muted = muted;
    }
    if let Some(to_coach) = get(params, "CallSidToCoach") {
        found.call_sid_to_coach = Some(to_coach.to_owned());
        found.coaching = true;
    }
    if let Some(coaching) = flag(params, "Coaching") {
        found.coaching = coaching;
    }
    if let Some(end) = flag(params, "EndConferenceOnExit") {
        found.end_conference_on_exit = end;
    }
    let after = found.clone();
    let hold_url = get(params, "HoldUrl").unwrap_or("the default hold music");
    if before.hold != after.hold {
        let line = if after.hold {
            format!("is put on hold, hears {hold_url}")
        } else {
            "is taken off hold".to_owned()
        };
        if let Some(leg) = world.legs.get_mut(&after.call_sid) {
            leg.transcript.push(line);
        }
        let event = if after.hold { "participant-hold" } else { "participant-unhold" };
        legs::conference_event(emulator, &mut world, conference_sid, event, Some(&after), &[]);
    }
    if before.muted != after.muted {
        let event = if after.muted { "participant-mute" } else { "participant-unmute" };
        legs::conference_event(emulator, &mut world, conference_sid, event, Some(&after), &[]);
    }
    if before.coaching != after.coaching || before.end_conference_on_exit != after.end_conference_on_exit {
        legs::conference_event(emulator, &mut world, conference_sid, "participant-modify", Some(&after), &[]);
    }
    Ok((200, participant_json(emulator, conference_sid, &after, "connected")))
}

/// `DELETE /Conferences/{CF}/Participants/{CallSid or Label}.json`: kicks the participant,
/// hanging up its call.
pub fn delete_participant(emulator: &Emulator, conference_sid: &str, participant: &str) -> ApiResult {
    let mut world = emulator.world();
    let call_sid = participant_mut(&mut world, conference_sid, participant)?.call_sid.clone();
    legs::leave(emulator, &mut world, &call_sid, "participant_hung_up", true);
    world.interrupt(&call_sid, Interruption::HangUp);
    Ok((204, Value::Null))
}

/// `POST /Calls/{CallSid}/Recordings.json`: records the call from now on.
pub fn create_recording(emulator: &Emulator, call_sid: &str, params: &Params) -> ApiResult {
    let mut world = emulator.world();
    let Some(leg) = world.legs.get(call_sid) else { return Err(not_found(&format!("Call {call_sid}"))) };
    if leg.status != CallStatus::InProgress {
        return Err(ApiError::new(400, 21220, "Call is not in-progress. Cannot record."));
    }
    if leg.recording.is_some() {
        return Err(ApiError::new(400, 21220, "The call is already being recorded."));
    }
    let sid = world.sid("RE");
    let callback =
        callback(params, "RecordingStatusCallback", "RecordingStatusCallbackEvent", &["completed"]);
    let now = Instant::now();
    let recording = Recording {
        sid: sid.clone(),
        call_sid: call_sid.to_owned(),
        status: "in-progress",
        started: now,
        recorded: Duration::ZERO,
        running_since: Some(now),
        callback,
    };
    recording_event(emulator, &recording, "in-progress");
    let answer = recording_json(emulator, &recording);
    world.recordings.insert(sid.clone(), recording);
    if let Some(leg) = world.legs.get_mut(call_sid) {
        leg.recording = Some(sid);
        leg.transcript.push("is being recorded".to_owned());
    }
    Ok((201, answer))
}

/// `POST /Calls/{CallSid}/Recordings/{RecordingSid or Twilio.CURRENT}.json`: pause, resume, stop.
pub fn update_recording(emulator: &Emulator, call_sid: &str, recording: &str, params: &Params) -> ApiResult {
    let mut world = emulator.world();
    let sid = if recording == "Twilio.CURRENT" {
        world.legs.get(call_sid).and_then(|leg| leg.recording.clone())
    } else {
        world.recordings.get(recording).filter(|r| r.call_sid == call_sid).map(|r| r.sid.clone())
    };
    let Some(sid) = sid else { return Err(not_found(&format!("Recording {recording} of {call_sid}"))) };
    match get(params, "Status") {
        Some("stopped") => {
            stop_recording(emulator, &mut world, &sid);
            if let Some(leg) = world.legs.get_mut(call_sid) {
                leg.recording = None;
            }
        }
        Some(status @ ("paused" | "in-progress")) => {
            let Some(entry) = world.recordings.get_mut(&sid) else { return Err(not_found(&sid)) };
            if entry.status == "completed" {
                return Err(ApiError::new(400, 21220, "The recording is over"));
            }
            match (status, entry.running_since) {
                ("paused", Some(since)) => {
                    entry.recorded += since.elapsed();
                    entry.running_since = None;
                    entry.status = "paused";
                }
                ("in-progress", None) => {
                    entry.running_since = Some(Instant::now());
                    entry.status = "in-progress";
                }
                _ => {}
            }
        }
        _ => return Err(ApiError::new(400, 21200, "Status must be paused, in-progress or stopped")),
    }
    Ok((200, recording_json(emulator, &world.recordings[&sid])))
}

/// Ends a recording: `completed`, with its URL and duration, to its callback.
pub fn stop_recording(emulator: &Emulator, world: &mut World, recording_sid: &str) {
    let Some(recording) = world.recordings.get_mut(recording_sid) else { return };
    if recording.status == "completed" {
        return;
    }
    if let Some(since) = recording.running_since.take() {
        recording.recorded += since.elapsed();
    }
    recording.status = "completed";
    recording_event(emulator, recording, "completed");
}

fn recording_event(emulator: &Emulator, recording: &Recording, status: &str) {
    let Some((url, events)) = &recording.callback else { return };
    if !events.iter().any(|event| event == status) {
        return;
    }
    let duration = emulator.emulated(recording.recorded).round() as u64;
    let mut params = vec![
        ("AccountSid".to_owned(), emulator.settings().account_sid.clone()),
        ("CallSid".to_owned(), recording.call_sid.clone()),
        ("RecordingSid".to_owned(), recording.sid.clone()),
        ("RecordingUrl".to_owned(), emulator.recording_url(&recording.sid)),
        ("RecordingStatus".to_owned(), status.to_owned()),
        ("RecordingChannels".to_owned(), "2".to_owned()),
        ("RecordingSource".to_owned(), "StartCallRecordingAPI".to_owned()),
        ("RecordingTrack".to_owned(), "both".to_owned()),
    ];
    if status == "completed" {
        params.push(("RecordingDuration".to_owned(), duration.to_string()));
    }
    emulator.callback(url, params);
}

/// A recording's audio: a WAV file of silence as long as the recording (8 kHz, 8-bit mono).
pub fn recording_audio(emulator: &Emulator, recording_sid: &str) -> Option<Vec<u8>> {
    let world = emulator.world();
    let recording = world.recordings.get(recording_sid)?;
    let seconds = emulator.emulated(recording.recorded).round().clamp(1.0, 600.0) as u32;
    let samples = 8_000 * seconds;
    let mut wav = Vec::with_capacity(44 + samples as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + samples).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8_000u32.to_le_bytes());
    wav.extend_from_slice(&8_000u32.to_le_bytes()); // bytes per second
    wav.extend_from_slice(&1u16.to_le_bytes()); // block align
    wav.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&samples.to_le_bytes());
    wav.resize(44 + samples as usize, 128); // 8-bit PCM silence
    Some(wav)
}

fn rfc2822(at: Instant) -> String {
    let ago = jiff::SignedDuration::try_from(at.elapsed()).unwrap_or_default();
    let when = jiff::Timestamp::now().checked_sub(ago).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    jiff::fmt::rfc2822::to_string(&when.to_zoned(jiff::tz::TimeZone::UTC)).unwrap_or_default()
}

fn base(emulator: &Emulator) -> String {
    format!("/2010-04-01/Accounts/{}", emulator.settings().account_sid)
}

pub fn call_json(emulator: &Emulator, leg: &Leg) -> Value {
    json!({
        "sid": leg.sid,
        "account_sid": emulator.settings().account_sid,
        "parent_call_sid": leg.parent,
        "to": leg.to,
        "from": leg.from,
        "status": leg.status.as_str(),
        "direction": leg.direction,
        "date_created": rfc2822(leg.created),
        "date_updated": rfc2822(leg.created),
        "start_time": leg.answered.map(rfc2822),
        "api_version": "2010-04-01",
        "uri": format!("{}/Calls/{}.json", base(emulator), leg.sid),
    })
}

pub fn conference_json(emulator: &Emulator, conference: &super::Conference) -> Value {
    json!({
        "sid": conference.sid,
        "account_sid": emulator.settings().account_sid,
        "friendly_name": conference.friendly_name,
        "status": conference.status.as_str(),
        "reason_conference_ended": conference.reason_ended,
        "call_sid_ending_conference": conference.call_sid_ending,
        "api_version": "2010-04-01",
        "uri": format!("{}/Conferences/{}.json", base(emulator), conference.sid),
        "subresource_uris": {
            "participants": format!("{}/Conferences/{}/Participants.json", base(emulator), conference.sid),
        },
    })
}

pub fn participant_json(
    emulator: &Emulator,
    conference_sid: &str,
    participant: &Participant,
    status: &str,
) -> Value {
    json!({
        "account_sid": emulator.settings().account_sid,
        "call_sid": participant.call_sid,
        "conference_sid": conference_sid,
        "label": participant.label,
        "muted": participant.muted,
        "hold": participant.hold,
        "coaching": participant.coaching,
        "call_sid_to_coach": participant.call_sid_to_coach,
        "start_conference_on_enter": participant.start_conference_on_enter,
        "end_conference_on_exit": participant.end_conference_on_exit,
        "status": status,
        "uri": format!("{}/Conferences/{conference_sid}/Participants/{}.json", base(emulator), participant.call_sid),
    })
}

pub fn recording_json(emulator: &Emulator, recording: &Recording) -> Value {
    let duration = (recording.status == "completed")
        .then(|| (emulator.emulated(recording.recorded).round() as u64).to_string());
    json!({
        "sid": recording.sid,
        "account_sid": emulator.settings().account_sid,
        "call_sid": recording.call_sid,
        "status": recording.status,
        "duration": duration,
        "channels": 2,
        "source": "StartCallRecordingAPI",
        "track": "both",
        "date_created": rfc2822(recording.started),
        "api_version": "2010-04-01",
        "uri": format!("{}/Calls/{}/Recordings/{}.json", base(emulator), recording.call_sid, recording.sid),
    })
}

/// The control API's view of a call: its state and what it heard and did.
pub fn call_summary(emulator: &Emulator, leg: &Leg) -> Value {
    let mut summary = call_json(emulator, leg);
    summary["transcript"] = json!(leg.transcript);
    summary["conference"] = json!(leg.conference);
    summary["recording"] = json!(leg.recording);
    summary["bridged_at_ms"] = json!(
        leg.bridged_at
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| since.as_millis() as u64)
    );
    summary
}
