//! The provider's Voice REST API, as Switchboard uses it to control live calls: Twilio's
//! 2010-04-01 Calls (create; update with `Url`, `Twiml` or `Status`), Conferences (update),
//! Participants (create, update `Hold`/`HoldUrl`/`Muted`/`Coaching`/`CallSidToCoach`, remove)
//! and Recordings (start, pause, resume, stop), with Twilio's parameter names, form encoding
//! and Basic auth (the account SID and auth token, or an API key SID and secret), at
//! `voice.api_base` (`../shared/reference/voice-api.md` §1 to §4).
//!
//! Each operation is first built as a [`Request`] (pure: its endpoint, path and form), which
//! the tests check against the parameters Twilio documents for that endpoint; [`VoiceApi`]
//! sends it. Retries (`voice-api.md` §6.1): a request the provider never processed (429,
//! or a connection that could not be made) is always sent again, with backoff; after a 5xx,
//! a timeout or a broken answer only a request that is safe to repeat is: updates and removals
//! (they set a state), and a participant created with a `Label` (a second one with the same
//! label is refused with 16026 while the first is in the conference). Creating a call is
//! never repeated once it may have reached the provider: the error says the outcome is unknown
//! ([`VoiceApiError::Unknown`]) and the caller looks before trying again.

use std::time::Duration;

use serde::Deserialize;

/// One attempt's limit: the provider answers control requests in well under a second.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts for a request that may be repeated, the first included.
const ATTEMPTS: u32 = 4;
/// Wait before the first retry; each further wait doubles.
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// The longest a `Retry-After` is obeyed: past it, the next attempt is as good as any.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Twilio's error codes that the callers act on (`voice-api.md` §1.2).
pub mod codes {
    /// The resource does not exist (or the participant is no longer in the conference).
    pub const NOT_FOUND: u32 = 20404;
    /// The call is not in progress: it cannot be redirected or recorded.
    pub const CALL_NOT_IN_PROGRESS: u32 = 21220;
    /// A participant with this label is already in the conference.
    pub const LABEL_IN_USE: u32 = 16026;
}

/// Where and as whom to reach the provider.
#[derive(Clone, PartialEq, Eq)]
pub struct VoiceApiSettings {
    /// E.g. `https://api.twilio.com`, without a trailing slash.
    pub api_base: String,
    pub account_sid: String,
    /// The Basic-auth user and password: the account SID and auth token, or an API key's SID
    /// and secret.
    pub user: String,
    pub secret: String,
}

impl std::fmt::Debug for VoiceApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret by accident.
        f.debug_struct("VoiceApiSettings")
            .field("api_base", &self.api_base)
            .field("account_sid", &self.account_sid)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoiceApiError {
    /// The provider refused the request; `code` is Twilio's error code when it gave one.
    #[error("the provider refused to {operation}: {status} {message}{}", code.map(|code| format!(" (code {code})")).unwrap_or_default())]
    Refused { operation: &'static str, status: u16, code: Option<u32>, message: String },
    /// The request did not get through, after every attempt allowed: nothing was done.
    #[error("cannot {operation}: the provider cannot be reached ({reason})")]
    Unreachable { operation: &'static str, reason: String },
    /// The request may or may not have been carried out (a timeout, a 5xx or a broken answer
    /// to a request that is not repeated, or after the last attempt).
    #[error("cannot {operation}: the provider's answer is unknown ({reason})")]
    Unknown { operation: &'static str, reason: String },
}

impl VoiceApiError {
    /// Twilio's error code, when the provider refused with one.
    pub fn code(&self) -> Option<u32> {
        match self {
            VoiceApiError::Refused { code, .. } => *code,
            _ => None,
        }
    }
}

/// The endpoints used, each with the parameters Twilio documents for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    CreateCall,
    UpdateCall,
    FetchCall,
    ListConferences,
    UpdateConference,
    CreateParticipant,
    FetchParticipant,
    UpdateParticipant,
    DeleteParticipant,
    CreateCallRecording,
    UpdateCallRecording,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Delete,
}

/// A request, before it is sent: what the tests check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub endpoint: Endpoint,
    pub method: HttpMethod,
    /// Under `/2010-04-01/Accounts/{AccountSid}`, e.g. `/Calls/CA….json`.
    pub path: String,
    /// The form (POST) or the query (GET), in Twilio's parameter names; a list-valued
    /// parameter repeats its name.
    pub params: Vec<(&'static str, String)>,
}

impl Request {
    fn new(endpoint: Endpoint, method: HttpMethod, path: String) -> Request {
        Request { endpoint, method, path, params: Vec::new() }
    }

    fn param(mut self, name: &'static str, value: impl ToString) -> Request {
        self.params.push((name, value.to_string()));
        self
    }

    fn param_if(self, name: &'static str, value: Option<impl ToString>) -> Request {
        match value {
            Some(value) => self.param(name, value),
            None => self,
        }
    }

    fn params_each(mut self, name: &'static str, values: &[&str]) -> Request {
        self.params.extend(values.iter().map(|value| (name, (*value).to_owned())));
        self
    }

    /// Whether sending it twice does what sending it once does.
    fn repeatable(&self) -> bool {
        match self.endpoint {
            Endpoint::CreateCall | Endpoint::CreateCallRecording => false,
            Endpoint::CreateParticipant => self.params.iter().any(|(name, _)| *name == "Label"),
            _ => true,
        }
    }

    /// What it does, for errors and logs: "create a call", "update participant CA… of CF…".
    pub fn operation(&self) -> &'static str {
        match self.endpoint {
            Endpoint::CreateCall => "create a call",
            Endpoint::UpdateCall => "update a call",
            Endpoint::FetchCall => "fetch a call",
            Endpoint::ListConferences => "list conferences",
            Endpoint::UpdateConference => "update a conference",
            Endpoint::CreateParticipant => "add a participant",
            Endpoint::FetchParticipant => "fetch a participant",
            Endpoint::UpdateParticipant => "update a participant",
            Endpoint::DeleteParticipant => "remove a participant",
            Endpoint::CreateCallRecording => "start a recording",
            Endpoint::UpdateCallRecording => "change a recording",
        }
    }
}

/// A call to place (`POST /Calls.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCall {
    pub to: String,
    pub from: String,
    /// Fetched (POST) for the call's TwiML once it is answered.
    pub url: String,
    pub status_callback: Option<String>,
    /// Of `initiated`, `ringing`, `answered`, `completed`.
    pub status_callback_events: Vec<&'static str>,
    /// Seconds to ring.
    pub timeout: Option<u32>,
}

/// What to do to a live call (`POST /Calls/{CallSid}.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallUpdate {
    /// Stop its TwiML and fetch (POST) this URL's instead.
    Redirect(String),
    /// Stop its TwiML and run this instead (at most 4,000 characters; absolute URLs only).
    Twiml(String),
    /// Hang it up, whatever it is doing (`Status=completed`).
    HangUp,
    /// Stop it ringing if it has not been answered (`Status=canceled`).
    Cancel,
}

/// A call into a conference (`POST /Conferences/{Sid or FriendlyName}/Participants.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewParticipant {
    /// The conference's SID, or its friendly name (a conference of that name is started when
    /// none is active).
    pub conference: String,
    pub from: String,
    pub to: String,
    /// Unique among the conference's participants: makes the request safe to repeat.
    pub label: Option<String>,
    /// Seconds to ring.
    pub timeout: Option<u32>,
    pub status_callback: Option<String>,
    /// Of `initiated`, `ringing`, `answered`, `completed`.
    pub status_callback_events: Vec<&'static str>,
    pub early_media: Option<bool>,
    /// Joins muted (a supervisor listening), or coaching `call_sid_to_coach` (whispering).
    pub muted: Option<bool>,
    pub coaching: Option<bool>,
    pub call_sid_to_coach: Option<String>,
    pub start_conference_on_enter: Option<bool>,
    pub end_conference_on_exit: Option<bool>,
    pub beep: Option<&'static str>,
    /// Music while alone; empty string: silence.
    pub wait_url: Option<String>,
    /// The conference's own callbacks (the first participant's win).
    pub conference_status_callback: Option<String>,
    /// Of `start`, `end`, `join`, `leave`, `mute`, `hold`, `modify`, `speaker`, `announcement`.
    pub conference_status_callback_events: Vec<&'static str>,
    /// `record-from-start` or `do-not-record`.
    pub conference_record: Option<&'static str>,
    pub conference_recording_status_callback: Option<String>,
}

/// A change to a participant (`POST /Conferences/{CF}/Participants/{CallSid or Label}.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParticipantUpdate {
    pub hold: Option<bool>,
    /// Played while held (fetched with `HoldMethod`).
    pub hold_url: Option<String>,
    pub muted: Option<bool>,
    pub coaching: Option<bool>,
    pub call_sid_to_coach: Option<String>,
    pub end_conference_on_exit: Option<bool>,
}

/// A recording's new state (`Status` of `POST /Calls/{CA}/Recordings/{RE}.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingStatus {
    Paused,
    InProgress,
    Stopped,
}

impl RecordingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Paused => "paused",
            RecordingStatus::InProgress => "in-progress",
            RecordingStatus::Stopped => "stopped",
        }
    }
}

/// The parts of a Call resource Switchboard reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallResource {
    pub sid: String,
    #[serde(default)]
    pub status: String,
}

/// The parts of a Conference resource Switchboard reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConferenceResource {
    pub sid: String,
    #[serde(default)]
    pub friendly_name: String,
    #[serde(default)]
    pub status: String,
}

/// The parts of a Participant resource Switchboard reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ParticipantResource {
    pub call_sid: String,
    pub conference_sid: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub hold: bool,
    #[serde(default)]
    pub muted: bool,
}

/// The parts of a Recording resource Switchboard reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordingResource {
    pub sid: String,
    #[serde(default)]
    pub status: String,
}

/// `POST /Calls.json`.
pub fn create_call(call: &NewCall) -> Request {
    Request::new(Endpoint::CreateCall, HttpMethod::Post, "/Calls.json".to_owned())
        .param("To", &call.to)
        .param("From", &call.from)
        .param("Url", &call.url)
        .param("Method", "POST")
        .param_if("StatusCallback", call.status_callback.as_ref())
        .param_if("StatusCallbackMethod", call.status_callback.as_ref().map(|_| "POST"))
        .params_each("StatusCallbackEvent", &call.status_callback_events)
        .param_if("Timeout", call.timeout)
}

/// `POST /Calls/{CallSid}.json`.
pub fn update_call(call_sid: &str, update: &CallUpdate) -> Request {
    let request =
        Request::new(Endpoint::UpdateCall, HttpMethod::Post, format!("/Calls/{}.json", segment(call_sid)));
    match update {
        CallUpdate::Redirect(url) => request.param("Url", url).param("Method", "POST"),
        CallUpdate::Twiml(twiml) => request.param("Twiml", twiml),
        CallUpdate::HangUp => request.param("Status", "completed"),
        CallUpdate::Cancel => request.param("Status", "canceled"),
    }
}

/// `GET /Calls/{CallSid}.json`.
pub fn fetch_call(call_sid: &str) -> Request {
    Request::new(Endpoint::FetchCall, HttpMethod::Get, format!("/Calls/{}.json", segment(call_sid)))
}

/// `GET /Conferences.json?FriendlyName=…&Status=…`: conferences of that name in that state
/// (`init`, `in-progress` or `completed`).
pub fn list_conferences(friendly_name: &str, status: &str) -> Request {
    Request::new(Endpoint::ListConferences, HttpMethod::Get, "/Conferences.json".to_owned())
        .param("FriendlyName", friendly_name)
        .param("Status", status)
}

/// `POST /Conferences/{ConferenceSid}.json` with `Status=completed`: ends it, hanging up
/// everyone in it.
pub fn end_conference(conference_sid: &str) -> Request {
    Request::new(
        Endpoint::UpdateConference,
        HttpMethod::Post,
        format!("/Conferences/{}.json", segment(conference_sid)),
    )
    .param("Status", "completed")
}

/// `POST /Conferences/{Sid or FriendlyName}/Participants.json`.
pub fn create_participant(new: &NewParticipant) -> Request {
    let path = format!("/Conferences/{}/Participants.json", segment(&new.conference));
    Request::new(Endpoint::CreateParticipant, HttpMethod::Post, path)
        .param("From", &new.from)
        .param("To", &new.to)
        .param_if("Label", new.label.as_ref())
        .param_if("Timeout", new.timeout)
        .param_if("StatusCallback", new.status_callback.as_ref())
        .param_if("StatusCallbackMethod", new.status_callback.as_ref().map(|_| "POST"))
        .params_each("StatusCallbackEvent", &new.status_callback_events)
        .param_if("EarlyMedia", new.early_media)
        .param_if("Muted", new.muted)
        .param_if("Coaching", new.coaching)
        .param_if("CallSidToCoach", new.call_sid_to_coach.as_ref())
        .param_if("StartConferenceOnEnter", new.start_conference_on_enter)
        .param_if("EndConferenceOnExit", new.end_conference_on_exit)
        .param_if("Beep", new.beep)
        .param_if("WaitUrl", new.wait_url.as_ref())
        .param_if("WaitMethod", new.wait_url.as_ref().filter(|url| !url.is_empty()).map(|_| "POST"))
        .param_if("ConferenceStatusCallback", new.conference_status_callback.as_ref())
        .param_if("ConferenceStatusCallbackMethod", new.conference_status_callback.as_ref().map(|_| "POST"))
        .params_each("ConferenceStatusCallbackEvent", &new.conference_status_callback_events)
        .param_if("ConferenceRecord", new.conference_record)
        .param_if("ConferenceRecordingStatusCallback", new.conference_recording_status_callback.as_ref())
        .param_if(
            "ConferenceRecordingStatusCallbackMethod",
            new.conference_recording_status_callback.as_ref().map(|_| "POST"),
        )
}

/// `GET /Conferences/{ConferenceSid}/Participants/{CallSid or Label}.json`.
pub fn fetch_participant(conference_sid: &str, participant: &str) -> Request {
    let path = format!("/Conferences/{}/Participants/{}.json", segment(conference_sid), segment(participant));
    Request::new(Endpoint::FetchParticipant, HttpMethod::Get, path)
}

/// `POST /Conferences/{ConferenceSid}/Participants/{CallSid or Label}.json`.
pub fn update_participant(conference_sid: &str, participant: &str, update: &ParticipantUpdate) -> Request {
    let path = format!("/Conferences/{}/Participants/{}.json", segment(conference_sid), segment(participant));
    Request::new(Endpoint::UpdateParticipant, HttpMethod::Post, path)
        .param_if("Hold", update.hold)
        .param_if("HoldUrl", update.hold_url.as_ref())
        // The spec's default is GET and the 2016 announcement's POST: say which (§3.5).
        .param_if("HoldMethod", update.hold_url.as_ref().map(|_| "POST"))
        .param_if("Muted", update.muted)
        .param_if("Coaching", update.coaching)
        .param_if("CallSidToCoach", update.call_sid_to_coach.as_ref())
        .param_if("EndConferenceOnExit", update.end_conference_on_exit)
}

/// `DELETE /Conferences/{ConferenceSid}/Participants/{CallSid or Label}.json`: hangs the
/// participant's call up.
pub fn delete_participant(conference_sid: &str, participant: &str) -> Request {
    let path = format!("/Conferences/{}/Participants/{}.json", segment(conference_sid), segment(participant));
    Request::new(Endpoint::DeleteParticipant, HttpMethod::Delete, path)
}

/// `POST /Calls/{CallSid}/Recordings.json`: records the call (both parties, one channel each).
pub fn start_recording(call_sid: &str, status_callback: &str) -> Request {
    let path = format!("/Calls/{}/Recordings.json", segment(call_sid));
    Request::new(Endpoint::CreateCallRecording, HttpMethod::Post, path)
        .param("RecordingStatusCallback", status_callback)
        .param("RecordingStatusCallbackMethod", "POST")
        .param("RecordingStatusCallbackEvent", "in-progress")
        .param("RecordingStatusCallbackEvent", "completed")
        .param("RecordingStatusCallbackEvent", "absent")
        .param("RecordingChannels", "dual")
}

/// `POST /Calls/{CallSid}/Recordings/{RecordingSid}.json`; `Twilio.CURRENT` names the call's
/// recording in progress.
pub fn update_recording(call_sid: &str, recording_sid: &str, status: RecordingStatus) -> Request {
    let path = format!("/Calls/{}/Recordings/{}.json", segment(call_sid), segment(recording_sid));
    Request::new(Endpoint::UpdateCallRecording, HttpMethod::Post, path).param("Status", status.as_str())
}

/// `text` as one path segment (a label may hold anything but `/`).
fn segment(text: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

/// The client: one connection pool, shared by every call.
#[derive(Clone)]
pub struct VoiceApi {
    http: reqwest::Client,
    settings: VoiceApiSettings,
}

/// How one attempt ended, before deciding whether to try again.
enum Attempt {
    Answered {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// The connection could not be made: the provider never saw the request.
    NotSent(String),
    /// Sent, but no (whole) answer: the provider may have acted on it.
    Lost(String),
}

impl VoiceApi {
    pub fn new(settings: VoiceApiSettings) -> Result<VoiceApi, VoiceApiError> {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|err| VoiceApiError::Unreachable {
                operation: "build the HTTP client",
                reason: err.to_string(),
            })?;
        Ok(VoiceApi { http, settings })
    }

    pub async fn create_call(&self, call: &NewCall) -> Result<CallResource, VoiceApiError> {
        self.send(&create_call(call)).await
    }

    pub async fn update_call(
        &self,
        call_sid: &str,
        update: &CallUpdate,
    ) -> Result<CallResource, VoiceApiError> {
        self.send(&update_call(call_sid, update)).await
    }

    pub async fn fetch_call(&self, call_sid: &str) -> Result<CallResource, VoiceApiError> {
        self.send(&fetch_call(call_sid)).await
    }

    /// The active conference named `friendly_name` (in progress, or waiting for its second
    /// participant), if any.
    pub async fn active_conference(
        &self,
        friendly_name: &str,
    ) -> Result<Option<ConferenceResource>, VoiceApiError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            conferences: Vec<ConferenceResource>,
        }
        for status in ["in-progress", "init"] {
            let page: Page = self.send(&list_conferences(friendly_name, status)).await?;
            if let Some(conference) = page.conferences.into_iter().next() {
                return Ok(Some(conference));
            }
        }
        Ok(None)
    }

    pub async fn end_conference(&self, conference_sid: &str) -> Result<ConferenceResource, VoiceApiError> {
        self.send(&end_conference(conference_sid)).await
    }

    pub async fn create_participant(
        &self,
        new: &NewParticipant,
    ) -> Result<ParticipantResource, VoiceApiError> {
        self.send(&create_participant(new)).await
    }

    pub async fn fetch_participant(
        &self,
        conference_sid: &str,
        participant: &str,
    ) -> Result<ParticipantResource, VoiceApiError> {
        self.send(&fetch_participant(conference_sid, participant)).await
    }

    pub async fn update_participant(
        &self,
        conference_sid: &str,
        participant: &str,
        update: &ParticipantUpdate,
    ) -> Result<ParticipantResource, VoiceApiError> {
        self.send(&update_participant(conference_sid, participant, update)).await
    }

    /// Hangs up a participant; one already gone counts as removed.
    pub async fn remove_participant(
        &self,
        conference_sid: &str,
        participant: &str,
    ) -> Result<(), VoiceApiError> {
        match self.send_raw(&delete_participant(conference_sid, participant)).await {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some(codes::NOT_FOUND) => Ok(()),
            Err(err) => Err(err),
        }
    }

    pub async fn start_recording(
        &self,
        call_sid: &str,
        status_callback: &str,
    ) -> Result<RecordingResource, VoiceApiError> {
        self.send(&start_recording(call_sid, status_callback)).await
    }

    pub async fn update_recording(
        &self,
        call_sid: &str,
        recording_sid: &str,
        status: RecordingStatus,
    ) -> Result<RecordingResource, VoiceApiError> {
        self.send(&update_recording(call_sid, recording_sid, status)).await
    }

    /// Sends `request` and reads the resource it answers.
    async fn send<T: for<'de> Deserialize<'de>>(&self, request: &Request) -> Result<T, VoiceApiError> {
        let body = self.send_raw(request).await?;
        serde_json::from_str(&body).map_err(|err| VoiceApiError::Unknown {
            operation: request.operation(),
            reason: format!("the answer is not the expected JSON: {err}"),
        })
    }

    /// Sends `request`, trying again as its kind allows, and answers the body of its 2xx.
    async fn send_raw(&self, request: &Request) -> Result<String, VoiceApiError> {
        let operation = request.operation();
        let mut wait = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS;
            let outcome = self.attempt(request).await;
            let retry_after = match outcome {
                Attempt::Answered { status, body, .. } if (200..300).contains(&status) => return Ok(body),
                Attempt::Answered { status: 429, retry_after, .. } if !last => retry_after,
                Attempt::Answered { status, body, .. } if status >= 500 && request.repeatable() && !last => {
                    tracing::debug!(operation, status, body = %truncated(&body), "the provider failed: trying again");
                    None
                }
                Attempt::Answered { status, body, .. } if status < 500 => {
                    return Err(refusal(operation, status, &body));
                }
                Attempt::Answered { status, body, .. } => {
                    return Err(VoiceApiError::Unknown {
                        operation,
                        reason: format!("{status} {}", truncated(&body)),
                    });
                }
                Attempt::NotSent(reason) if last => {
                    return Err(VoiceApiError::Unreachable { operation, reason });
                }
                Attempt::NotSent(_) => None,
                Attempt::Lost(reason) if request.repeatable() && !last => {
                    tracing::debug!(operation, %reason, "no answer from the provider: trying again");
                    None
                }
                Attempt::Lost(reason) => return Err(VoiceApiError::Unknown { operation, reason }),
            };
            tokio::time::sleep(retry_after.map_or(wait, |after| after.min(LONGEST_RETRY_AFTER))).await;
            wait *= 2;
        }
        unreachable!("the last attempt returns")
    }

    /// A recording's audio, as WAV: what the provider serves the account at
    /// `/Recordings/{RE}.wav` (with Basic auth, which Twilio can require for media). The pages
    /// play recordings through Switchboard, which alone holds the credentials.
    pub async fn recording_audio(&self, recording_sid: &str) -> Result<Vec<u8>, VoiceApiError> {
        let operation = "fetch a recording's audio";
        let url = self.account_url(&format!("/Recordings/{}.wav", segment(recording_sid)));
        let answer =
            self.http.get(&url).basic_auth(&self.settings.user, Some(&self.settings.secret)).send().await;
        let response =
            answer.map_err(|err| VoiceApiError::Unreachable { operation, reason: err.to_string() })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|err| VoiceApiError::Unknown {
            operation,
            reason: format!("the answer was cut: {err}"),
        })?;
        match status {
            200..300 => Ok(body.to_vec()),
            400..500 => Err(refusal(operation, status, &String::from_utf8_lossy(&body))),
            _ => Err(VoiceApiError::Unknown { operation, reason: format!("{status}") }),
        }
    }

    /// `path` under the account: `{api_base}/2010-04-01/Accounts/{AccountSid}{path}`.
    fn account_url(&self, path: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}{path}",
            self.settings.api_base,
            segment(&self.settings.account_sid)
        )
    }

    async fn attempt(&self, request: &Request) -> Attempt {
        let url = self.account_url(&request.path);
        let builder = match request.method {
            HttpMethod::Get => self.http.get(&url).query(&request.params),
            HttpMethod::Delete => self.http.delete(&url),
            HttpMethod::Post => self
                .http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(&request.params).unwrap_or_default()),
        };
        let response = match builder.basic_auth(&self.settings.user, Some(&self.settings.secret)).send().await
        {
            Ok(response) => response,
            Err(err) if err.is_connect() => return Attempt::NotSent(err.to_string()),
            Err(err) => return Attempt::Lost(err.to_string()),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match response.text().await {
            Ok(body) => Attempt::Answered { status, body, retry_after },
            Err(err) => Attempt::Lost(format!("the answer ({status}) was cut: {err}")),
        }
    }
}

/// A 4xx, with Twilio's `code` and `message` when the body is its error JSON.
fn refusal(operation: &'static str, status: u16, body: &str) -> VoiceApiError {
    #[derive(Deserialize)]
    struct TwilioError {
        code: Option<u32>,
        message: Option<String>,
    }
    let parsed = serde_json::from_str::<TwilioError>(body).ok();
    let code = parsed.as_ref().and_then(|error| error.code);
    let message = parsed.and_then(|error| error.message).unwrap_or_else(|| truncated(body));
    VoiceApiError::Refused { operation, status, code, message }
}

fn truncated(body: &str) -> String {
    body.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The parameters Twilio documents for each endpoint, as `../shared/reference/voice-api.md`
    /// lists them (§2.1, §2.4, §3.4, §3.5, §4.2; from the OpenAPI spec `twilio_api_v2010.json`).
    fn documented(endpoint: Endpoint) -> &'static [&'static str] {
        match endpoint {
            Endpoint::CreateCall => &[
                "To",
                "From",
                "Url",
                "Method",
                "Twiml",
                "ApplicationSid",
                "FallbackUrl",
                "FallbackMethod",
                "StatusCallback",
                "StatusCallbackMethod",
                "StatusCallbackEvent",
                "Timeout",
                "SendDigits",
                "Record",
                "RecordingChannels",
                "RecordingTrack",
                "Trim",
                "RecordingStatusCallback",
                "RecordingStatusCallbackMethod",
                "RecordingStatusCallbackEvent",
                "CallerId",
                "SipAuthUsername",
                "SipAuthPassword",
                "TimeLimit",
                "Byoc",
                "CallReason",
                "CallToken",
                "ClientNotificationUrl",
                "MachineDetection",
                "MachineDetectionTimeout",
                "MachineDetectionSpeechThreshold",
                "MachineDetectionSpeechEndThreshold",
                "MachineDetectionSilenceTimeout",
                "AsyncAmd",
                "AsyncAmdStatusCallback",
                "AsyncAmdStatusCallbackMethod",
            ],
            Endpoint::UpdateCall => &[
                "Url",
                "Method",
                "Twiml",
                "Status",
                "FallbackUrl",
                "FallbackMethod",
                "StatusCallback",
                "StatusCallbackMethod",
                "TimeLimit",
            ],
            Endpoint::ListConferences => &[
                "FriendlyName",
                "Status",
                "DateCreated",
                "DateCreated<",
                "DateCreated>",
                "DateUpdated",
                "DateUpdated<",
                "DateUpdated>",
                "PageSize",
                "Page",
                "PageToken",
            ],
            Endpoint::UpdateConference => &["Status", "AnnounceUrl", "AnnounceMethod"],
            Endpoint::CreateParticipant => &[
                "From",
                "To",
                "Label",
                "StatusCallback",
                "StatusCallbackMethod",
                "StatusCallbackEvent",
                "Timeout",
                "Record",
                "Muted",
                "Beep",
                "StartConferenceOnEnter",
                "EndConferenceOnExit",
                "WaitUrl",
                "WaitMethod",
                "EarlyMedia",
                "MaxParticipants",
                "ConferenceRecord",
                "ConferenceTrim",
                "ConferenceStatusCallback",
                "ConferenceStatusCallbackMethod",
                "ConferenceStatusCallbackEvent",
                "RecordingStatusCallbackEvent",
                "ConferenceRecordingStatusCallback",
                "ConferenceRecordingStatusCallbackMethod",
                "ConferenceRecordingStatusCallbackEvent",
                "Coaching",
                "CallSidToCoach",
                "JitterBufferSize",
                "CallerDisplayName",
                "RecordingChannels",
                "RecordingStatusCallback",
                "RecordingStatusCallbackMethod",
                "Region",
                "SipAuthUsername",
                "SipAuthPassword",
                "Byoc",
                "CallerId",
                "CallReason",
                "RecordingTrack",
                "TimeLimit",
                "Trim",
                "CallToken",
                "ClientNotificationUrl",
                "MachineDetection",
                "MachineDetectionTimeout",
                "MachineDetectionSpeechThreshold",
                "MachineDetectionSpeechEndThreshold",
                "MachineDetectionSilenceTimeout",
                "AmdStatusCallback",
                "AmdStatusCallbackMethod",
            ],
            Endpoint::UpdateParticipant => &[
                "Muted",
                "Hold",
                "HoldUrl",
                "HoldMethod",
                "AnnounceUrl",
                "AnnounceMethod",
                "WaitUrl",
                "WaitMethod",
                "BeepOnExit",
                "EndConferenceOnExit",
                "Coaching",
                "CallSidToCoach",
            ],
            Endpoint::CreateCallRecording => &[
                "RecordingStatusCallback",
                "RecordingStatusCallbackMethod",
                "RecordingStatusCallbackEvent",
                "Trim",
                "RecordingChannels",
                "RecordingTrack",
            ],
            Endpoint::UpdateCallRecording => &["Status", "PauseBehavior"],
            Endpoint::FetchCall | Endpoint::FetchParticipant | Endpoint::DeleteParticipant => &[],
        }
    }

    /// Every request Switchboard can build, each option set.
    fn every_request() -> Vec<Request> {
        let new_call = NewCall {
            to: "client:alice".into(),
            from: "+15550001111".into(),
            url: "https://sb.example.com/voice/agent".into(),
            status_callback: Some("https://sb.example.com/voice/leg".into()),
            status_callback_events: vec!["initiated", "ringing", "answered", "completed"],
            timeout: Some(20),
        };
        let participant = NewParticipant {
            conference: "WT0123".into(),
            from: "+15550001111".into(),
            to: "client:alice".into(),
            label: Some("agent".into()),
            timeout: Some(20),
            status_callback: Some("https://sb.example.com/voice/leg".into()),
            status_callback_events: vec!["initiated", "ringing", "answered", "completed"],
            early_media: Some(true),
            muted: None,
            coaching: None,
            call_sid_to_coach: None,
            start_conference_on_enter: Some(true),
            end_conference_on_exit: Some(false),
            beep: Some("false"),
            wait_url: Some("https://sb.example.com/music".into()),
            conference_status_callback: Some("https://sb.example.com/voice/conference".into()),
            conference_status_callback_events: vec!["start", "end", "join", "leave", "mute", "hold"],
            conference_record: Some("record-from-start"),
            conference_recording_status_callback: Some("https://sb.example.com/voice/recording".into()),
        };
        let update = ParticipantUpdate {
            hold: Some(true),
            hold_url: Some("https://sb.example.com/music".into()),
            muted: Some(true),
            coaching: Some(true),
            call_sid_to_coach: Some("CA1".into()),
            end_conference_on_exit: Some(true),
        };
        let mut requests = vec![
            create_call(&new_call),
            fetch_call("CA1"),
            list_conferences("WT0123", "in-progress"),
            end_conference("CF1"),
            create_participant(&participant),
            fetch_participant("CF1", "agent"),
            update_participant("CF1", "CA1", &update),
            delete_participant("CF1", "CA1"),
            start_recording("CA1", "https://sb.example.com/voice/recording"),
        ];
        for update in [
            CallUpdate::Redirect("https://x/".into()),
            CallUpdate::Twiml("<Response/>".into()),
            CallUpdate::HangUp,
            CallUpdate::Cancel,
        ] {
            requests.push(update_call("CA1", &update));
        }
        for status in [RecordingStatus::Paused, RecordingStatus::InProgress, RecordingStatus::Stopped] {
            requests.push(update_recording("CA1", "Twilio.CURRENT", status));
        }
        requests
    }

    #[test]
    fn every_request_uses_only_parameters_twilio_documents_for_its_endpoint() {
        for request in every_request() {
            let allowed = documented(request.endpoint);
            for (name, _) in &request.params {
                assert!(
                    allowed.contains(name),
                    "{:?} {} sends {name}, not documented for it",
                    request.endpoint,
                    request.path
                );
            }
        }
    }

    #[test]
    fn requests_are_encoded_as_twilio_expects() {
        let check = |request: Request, expected: &str| {
            let form = serde_urlencoded::to_string(&request.params).unwrap();
            assert_eq!(format!("{:?} {} {form}", request.method, request.path), expected);
        };
        check(
            update_call("CA1", &CallUpdate::Redirect("https://sb.example.com/voice/join?task=WT1".into())),
            "Post /Calls/CA1.json Url=https%3A%2F%2Fsb.example.com%2Fvoice%2Fjoin%3Ftask%3DWT1&Method=POST",
        );
        check(update_call("CA1", &CallUpdate::HangUp), "Post /Calls/CA1.json Status=completed");
        check(
            update_participant(
                "CF1",
                "CA2",
                &ParticipantUpdate {
                    hold: Some(true),
                    hold_url: Some("https://m/".into()),
                    ..ParticipantUpdate::default()
                },
            ),
            "Post /Conferences/CF1/Participants/CA2.json Hold=true&HoldUrl=https%3A%2F%2Fm%2F&HoldMethod=POST",
        );
        check(
            update_participant(
                "CF1",
                "agent WR/1",
                &ParticipantUpdate { muted: Some(false), ..ParticipantUpdate::default() },
            ),
            "Post /Conferences/CF1/Participants/agent%20WR%2F1.json Muted=false",
        );
        check(delete_participant("CF1", "CA2"), "Delete /Conferences/CF1/Participants/CA2.json ");
        check(
            update_recording("CA1", "Twilio.CURRENT", RecordingStatus::Paused),
            "Post /Calls/CA1/Recordings/Twilio.CURRENT.json Status=paused",
        );
        let events = create_call(&NewCall {
            to: "+15550002222".into(),
            from: "+15550001111".into(),
            url: "https://x/".into(),
            status_callback: Some("https://y/".into()),
            status_callback_events: vec!["answered", "completed"],
            timeout: None,
        });
        check(
            events,
            "Post /Calls.json To=%2B15550002222&From=%2B15550001111&Url=https%3A%2F%2Fx%2F&Method=POST&StatusCallback=https%3A%2F%2Fy%2F&StatusCallbackMethod=POST&StatusCallbackEvent=answered&StatusCallbackEvent=completed",
        );
    }

    /// A provider that answers each request with the next of `answers` (status, body), or
    /// closes the connection without a word for status 0, and notes what it was sent.
    struct Scripted {
        base: String,
        seen: Arc<Mutex<Vec<String>>>,
    }

    async fn scripted(answers: Vec<(u16, &'static str)>) -> Scripted {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let noted = seen.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Reads the head and the body its Content-Length announces.
                loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: HashMap<String, String> = head
                            .lines()
                            .filter_map(|line| line.split_once(": "))
                            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
                            .collect();
                        let wanted = length.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                        if body.len() >= wanted {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                let first = text.lines().next().unwrap_or_default().to_owned();
                let body_sent =
                    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
                noted.lock().unwrap().push(format!("{first} {body_sent}").trim_end().to_owned());
                if status == 0 {
                    continue;
                }
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        Scripted { base, seen }
    }

    fn client(base: &str) -> VoiceApi {
        VoiceApi::new(VoiceApiSettings {
            api_base: base.to_owned(),
            account_sid: "AC1".into(),
            user: "AC1".into(),
            secret: "token".into(),
        })
        .unwrap()
    }

    const CALL: &str = r#"{"sid": "CA1", "status": "in-progress"}"#;

    #[tokio::test]
    async fn an_update_is_sent_again_after_a_server_error_or_a_throttle() {
        let provider = scripted(vec![(500, "oops"), (429, r#"{"code": 20429}"#), (200, CALL)]).await;

        let call = client(&provider.base).update_call("CA1", &CallUpdate::HangUp).await.unwrap();

        assert_eq!(call.status, "in-progress");
        assert_eq!(provider.seen.lock().unwrap().len(), 3);
        assert!(
            provider.seen.lock().unwrap()[0]
                .starts_with("POST /2010-04-01/Accounts/AC1/Calls/CA1.json HTTP/1.1 Status=completed")
        );
    }

    #[tokio::test]
    async fn a_call_is_never_created_twice_when_the_first_answer_is_unknown() {
        let provider = scripted(vec![(503, "unavailable"), (201, CALL)]).await;
        let new = NewCall {
            to: "client:a".into(),
            from: "+1555".into(),
            url: "https://x/".into(),
            ..NewCall::default()
        };

        let err = client(&provider.base).create_call(&new).await.unwrap_err();

        assert!(matches!(err, VoiceApiError::Unknown { .. }), "{err}");
        assert_eq!(provider.seen.lock().unwrap().len(), 1, "not sent again");
    }

    #[tokio::test]
    async fn a_throttled_call_creation_is_sent_again_since_it_was_never_processed() {
        let provider =
            scripted(vec![(429, r#"{"code": 20429, "message": "Too many requests"}"#), (201, CALL)]).await;
        let new = NewCall {
            to: "client:a".into(),
            from: "+1555".into(),
            url: "https://x/".into(),
            ..NewCall::default()
        };

        let call = client(&provider.base).create_call(&new).await.unwrap();

        assert_eq!(call.sid, "CA1");
        assert_eq!(provider.seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn twilios_error_json_becomes_a_typed_refusal() {
        let body = r#"{"code": 21220, "message": "Call is not in-progress. Cannot redirect.", "more_info": "https://www.twilio.com/docs/errors/21220", "status": 400}"#;
        let provider = scripted(vec![(400, body)]).await;

        let err = client(&provider.base)
            .update_call("CA1", &CallUpdate::Redirect("https://x/".into()))
            .await
            .unwrap_err();

        assert_eq!(err.code(), Some(codes::CALL_NOT_IN_PROGRESS));
        assert_eq!(
            err.to_string(),
            "the provider refused to update a call: 400 Call is not in-progress. Cannot redirect. (code 21220)"
        );
        assert_eq!(provider.seen.lock().unwrap().len(), 1, "a refusal is final");
    }

    #[tokio::test]
    async fn removing_a_participant_already_gone_counts_as_removed() {
        let provider = scripted(vec![(404, r#"{"code": 20404, "message": "not found"}"#)]).await;

        client(&provider.base).remove_participant("CF1", "CA2").await.unwrap();
    }

    #[tokio::test]
    async fn a_provider_that_cannot_be_reached_is_a_clear_error_after_the_retries() {
        // A port that was just free: nothing listens there.
        let base = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };

        let err = client(&base).update_call("CA1", &CallUpdate::HangUp).await.unwrap_err();

        assert!(matches!(err, VoiceApiError::Unreachable { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_labelled_participant_is_added_again_when_the_answer_was_lost() {
        let participant =
            r#"{"call_sid": "CA9", "conference_sid": "CF1", "label": "agent", "status": "queued"}"#;
        let provider = scripted(vec![(0, ""), (201, participant)]).await;
        let new = NewParticipant {
            conference: "WT1".into(),
            from: "+1555".into(),
            to: "client:alice".into(),
            label: Some("agent".into()),
            ..NewParticipant::default()
        };

        let added = client(&provider.base).create_participant(&new).await.unwrap();

        assert_eq!((added.call_sid.as_str(), provider.seen.lock().unwrap().len()), ("CA9", 2));
    }
}
