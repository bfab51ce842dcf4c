//! IVR lookups (a flow's `lookup` step): the call's variables POSTed as a form to the flow's
//! URL, signed with X-Twilio-Signature as the provider signs its webhooks, so the receiver can
//! check it came from Switchboard with the same code it uses for the provider. The answer is
//! read up to [`LOOKUP_ANSWER_LIMIT`] bytes within the step's timeout; every failure is a
//! sentence for the flow's `lookup_error` variable, never an error for the caller.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Map, Value};

use super::failed;
use crate::ivr::{LOOKUP_ANSWER_LIMIT, LookupRequest, lookup_answer};

/// Makes lookups; one connection pool.
pub struct Lookups {
    http: reqwest::Client,
    /// The auth token the requests are signed with, known once the credentials are read.
    auth_token: OnceLock<String>,
}

impl Default for Lookups {
    fn default() -> Lookups {
        // No redirects: a lookup answers where the flow says, or fails.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Lookups { http, auth_token: OnceLock::new() }
    }
}

impl Lookups {
    /// Signs the requests with `auth_token` from now on.
    pub fn sign_with(&self, auth_token: String) {
        let _ = self.auth_token.set(auth_token);
    }

    /// Makes `request`, waiting at most `timeout` for the whole answer; the answer's fields,
    /// or why there are none.
    pub async fn fetch(
        &self,
        request: &LookupRequest,
        timeout: Duration,
    ) -> Result<Map<String, Value>, String> {
        let token = self.auth_token.get().map_or("", String::as_str);
        let sent = super::webhooks::signed_post(&self.http, &request.url, &request.params, token)
            .timeout(timeout)
            .send()
            .await;
        let late = || format!("no answer within {} ms", timeout.as_millis());
        let mut response = sent.map_err(|err| if err.is_timeout() { late() } else { failed(&err) })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("it answered {}", status.as_u16()));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > LOOKUP_ANSWER_LIMIT {
                        return Err(format!("the answer is longer than {LOOKUP_ANSWER_LIMIT} bytes"));
                    }
                }
                Ok(None) => break,
                Err(err) if err.is_timeout() => return Err(late()),
                Err(err) => return Err(failed(&err)),
            }
        }
        let text = String::from_utf8(body).map_err(|_| "the answer is not UTF-8 text".to_owned())?;
        lookup_answer(&text, &request.keep)
    }
}
