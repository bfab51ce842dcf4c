//! Webhooks as a provider posts them: a form POST signed with X-Twilio-Signature (the HMAC of
//! the URL and the parameters, keyed with the auth token), for the provider emulator's TwiML
//! fetches and status callbacks.

use std::time::Duration;

use crate::http::signature;

/// Twilio waits this long for a webhook's answer (`voice-api.md` §6.3: 15 s read timeout).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);

/// Posts signed webhooks; one connection pool.
#[derive(Clone)]
pub struct Poster {
    http: reqwest::Client,
    auth_token: String,
}

impl Poster {
    pub fn new(auth_token: String) -> Poster {
        let http = reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build().unwrap_or_default();
        Poster { http, auth_token }
    }

    /// Posts `params` to `url`, signed; answers the body of a 2xx, else an error saying what
    /// came back.
    pub async fn post(&self, url: &str, params: &[(String, String)]) -> Result<String, String> {
        let response = signed_post(&self.http, url, params, &self.auth_token)
            .send()
            .await
            .map_err(|err| format!("POST {url}: {err}"))?;
        let status = response.status();
        let body = response.text().await.map_err(|err| format!("POST {url}: the answer was cut: {err}"))?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!(
                "POST {url} answered {}: {}",
                status.as_u16(),
                body.chars().take(300).collect::<String>()
            ))
        }
    }
}

/// A form POST of `params` to `url`, signed with `auth_token` as Twilio signs its webhooks
/// (the emulator's webhooks, the IVR's lookups).
pub fn signed_post(
    http: &reqwest::Client,
    url: &str,
    params: &[(String, String)],
    auth_token: &str,
) -> reqwest::RequestBuilder {
    http.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", signature::sign(auth_token, url, params))
        .body(serde_urlencoded::to_string(params).unwrap_or_default())
}

/// `reference` (an action or Redirect URL, often a path) resolved against the URL of the
/// document it is in; none or empty: that URL itself, as Twilio does.
pub fn resolve(at: &str, reference: Option<&str>) -> String {
    let Some(reference) = reference.filter(|reference| !reference.is_empty()) else { return at.to_owned() };
    reqwest::Url::parse(at)
        .and_then(|base| base.join(reference))
        .map(String::from)
        .unwrap_or_else(|_| reference.to_owned())
}
