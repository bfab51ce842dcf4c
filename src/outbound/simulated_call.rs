//! `switchboard call`: plays the telephony provider against a running server, so that a person
//! can try an IVR without a phone. It posts a signed incoming call, then does what the TwiML
//! says as a provider would: says and plays (printed), pauses (waited), gathers (answered with
//! the next keys given), redirects, records (a fake recording), dials (answered with the chosen
//! outcome) and hangs up, sending the status callback at the end.

use std::time::Duration;

use reqwest::Url;

use crate::http::signature;
use crate::live::random_hex;
use crate::twiml::{self, Element};

/// What the simulated call does.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// The incoming-call webhook, e.g. `http://127.0.0.1:8080/voice/incoming`.
    pub url: String,
    pub to: String,
    pub from: String,
    /// Keys for each Gather in turn; `""` is silence. After the last, the caller stays silent.
    pub digits: Vec<String>,
    /// Signs every request with it (X-Twilio-Signature); none: unsigned.
    pub auth_token: Option<String>,
    /// The `DialCallStatus` reported when the call is bridged to an agent.
    pub dial_status: String,
    /// The caller hangs up after holding this many seconds in all.
    pub max_wait: u32,
    /// Wait out each `<Pause>` in real time (off in tests).
    pub real_time: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{0} is not a URL: {1}")]
    Url(String, String),
    #[error("POST {0}: {1}")]
    Request(String, String),
    #[error("POST {url} answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("POST {0} did not answer TwiML: {1}")]
    Twiml(String, twiml::ParseError),
    #[error("more than {0} requests: the call seems to loop forever")]
    Loop(usize),
    #[error("no random numbers for a CallSid: {0}")]
    Random(String),
}

/// Requests one call may make before it is taken to loop.
const MAX_REQUESTS: usize = 1_000;

/// Plays a whole call; every line the caller would hear or see is passed to `out`.
pub async fn call(options: &CallOptions, out: &mut impl FnMut(String)) -> Result<(), ProviderError> {
    let base =
        Url::parse(&options.url).map_err(|err| ProviderError::Url(options.url.clone(), err.to_string()))?;
    let call_sid = format!("CA{}", random_hex().map_err(|err| ProviderError::Random(err.to_string()))?);
    let client = reqwest::Client::new();
    let mut provider =
        Provider { options, client, call_sid, held: 0, requests: 0, keys: options.digits.iter() };
    out(format!("calling {} from {} ({})", options.to, options.from, provider.call_sid));
    let mut verbs = provider.post(&base, &[("CallStatus", "ringing")]).await?;
    let mut at = base.clone();
    'call: loop {
        let mut next = None;
        for verb in &verbs {
            match verb.name.as_str() {
                "Say" => out(format!("  says: {}", verb.text)),
                "Play" => out(format!("  plays: {}", verb.text)),
                "Pause" => {
                    let seconds: u32 = verb.attribute("length").and_then(|l| l.parse().ok()).unwrap_or(1);
                    if provider.held + seconds > options.max_wait {
                        out(format!("(the caller hangs up after holding {} s)", provider.held));
                        break 'call;
                    }
                    provider.held += seconds;
                    out(format!("  ({seconds} s of silence)"));
                    if options.real_time {
                        tokio::time::sleep(Duration::from_secs(u64::from(seconds))).await;
                    }
                }
                "Gather" => {
                    for prompt in &verb.children {
                        out(format!("  says: {}", prompt.text));
                    }
                    let keys = provider.keys.next().cloned().unwrap_or_default();
                    out(if keys.is_empty() {
                        "(the caller says nothing)".to_owned()
                    } else {
                        format!("(the caller presses {keys})")
                    });
                    let action = resolve(&at, verb.attribute("action"))?;
                    next = Some((action, vec![("Digits", keys)]));
                    break;
                }
                "Record" => {
                    out("(the caller leaves a message)".to_owned());
                    let action = resolve(&at, verb.attribute("action"))?;
                    let recording = vec![
                        ("RecordingUrl", "https://recordings.example.invalid/RE0".to_owned()),
                        ("RecordingDuration", "5".to_owned()),
                    ];
                    next = Some((action, recording));
                    break;
                }
                "Dial" => {
                    let target: Vec<String> =
                        verb.children.iter().map(|noun| format!("{} {}", noun.name, noun.text)).collect();
                    out(format!("  connects the caller to {}: {}", target.join(", "), options.dial_status));
                    let action = resolve(&at, verb.attribute("action"))?;
                    next = Some((action, vec![("DialCallStatus", options.dial_status.clone())]));
                    break;
                }
                "Redirect" => {
                    next = Some((resolve(&at, Some(verb.text.as_str()))?, Vec::new()));
                    break;
                }
                "Hangup" | "Reject" => {
                    out("(Switchboard hangs up)".to_owned());
                    break 'call;
                }
                other => out(format!("  (ignores <{other}>)")),
            }
        }
        let Some((url, extra)) = next else {
            out("(the call ends: no more TwiML)".to_owned());
            break;
        };
        let extra: Vec<(&str, &str)> = extra.iter().map(|(name, value)| (*name, value.as_str())).collect();
        verbs = provider.post(&url, &extra).await?;
        at = url;
    }
    let status = resolve(&base, Some("/voice/status"))?;
    provider.post(&status, &[("CallStatus", "completed")]).await?;
    Ok(())
}

struct Provider<'a> {
    options: &'a CallOptions,
    client: reqwest::Client,
    call_sid: String,
    /// Seconds held so far.
    held: u32,
    requests: usize,
    keys: std::slice::Iter<'a, String>,
}

impl Provider<'_> {
    /// Posts a webhook of this call to `url`, signed, and reads the TwiML answer.
    async fn post(&mut self, url: &Url, extra: &[(&str, &str)]) -> Result<Vec<Element>, ProviderError> {
        self.requests += 1;
        if self.requests > MAX_REQUESTS {
            return Err(ProviderError::Loop(MAX_REQUESTS));
        }
        let mut params: Vec<(String, String)> = vec![
            ("CallSid".into(), self.call_sid.clone()),
            ("From".into(), self.options.from.clone()),
            ("To".into(), self.options.to.clone()),
            ("Direction".into(), "inbound".into()),
            ("ApiVersion".into(), "2010-04-01".into()),
        ];
        if !extra.iter().any(|(name, _)| *name == "CallStatus") {
            params.push(("CallStatus".into(), "in-progress".into()));
        }
        params.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
        let mut request = self
            .client
            .post(url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&params).unwrap_or_default());
        if let Some(token) = &self.options.auth_token {
            request = request.header("X-Twilio-Signature", signature::sign(token, url.as_str(), &params));
        }
        let failed = |err: reqwest::Error| ProviderError::Request(url.to_string(), err.to_string());
        let response = request.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(failed)?;
        if status != 200 {
            return Err(ProviderError::Status { url: url.to_string(), status, body });
        }
        twiml::parse(&body).map_err(|err| ProviderError::Twiml(url.to_string(), err))
    }
}

/// `reference` (an action or Redirect URL, often a path) resolved against the current URL.
fn resolve(at: &Url, reference: Option<&str>) -> Result<Url, ProviderError> {
    let reference = reference.unwrap_or(at.as_str());
    at.join(reference).map_err(|err| ProviderError::Url(reference.to_owned(), err.to_string()))
}
