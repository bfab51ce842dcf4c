//! Delivers the agents' replies: the SMS outbox, in order, to the provider's REST API
//! (Twilio's `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, Basic auth,
//! `To`, `From`, `Body`). A reply is marked sent only once the provider accepted it (2xx);
//! refused for good on a 400 or 422 (the message itself is wrong); otherwise tried again later,
//! waiting longer each time, until accepted. The provider's API takes no idempotency key, so a
//! reply goes twice when the provider accepted it but Switchboard did not learn it: a crash
//! before the mark, or an answer lost to a timeout or a broken connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Credentials;
use crate::live;
use crate::sms::{Outgoing, Sms};
use crate::store::OutboxV1;

/// How long one attempt may take before it counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Delivers queued replies until `shutdown` completes.
pub async fn deliver(
    sms: Arc<Sms>,
    api_base: String,
    credentials: Credentials,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let client = match reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).build() {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(%err, "cannot build the HTTP client: replies stay queued");
            return;
        }
    };
    let url = format!("{api_base}/2010-04-01/Accounts/{}/Messages.json", credentials.account_sid);
    loop {
        let wait = match sms.next_outgoing(live::now()) {
            Outgoing::Send(entry) => {
                let outcome = send(&client, &url, &credentials, &entry).await;
                let now = live::now();
                let recorded = match outcome {
                    Attempt::Accepted(sid) => sms.delivered(entry.id, sid, now).await,
                    Attempt::Refused(error) => sms.refused(entry.id, error, now).await,
                    Attempt::Failed(error) => sms.retry_later(entry.id, error, now).await,
                };
                if let Err(err) = recorded {
                    tracing::error!(%err, id = entry.id, "a reply's delivery could not be recorded");
                    return;
                }
                continue;
            }
            Outgoing::WaitUntil(at) => Duration::from_millis(u64::try_from(at - live::now()).unwrap_or(0)),
            Outgoing::Idle => Duration::from_secs(3600),
        };
        tokio::select! {
            () = &mut shutdown => return,
            () = sms.outbox_changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

enum Attempt {
    /// The provider took it, with its message SID when it said one.
    Accepted(Option<String>),
    /// The provider will never take it (bad number, bad body...).
    Refused(String),
    /// Try again later (server error, throttling, network).
    Failed(String),
}

async fn send(client: &reqwest::Client, url: &str, credentials: &Credentials, entry: &OutboxV1) -> Attempt {
    let form = [("To", entry.to.as_str()), ("From", entry.from.as_str()), ("Body", entry.body.as_str())];
    let response = client
        .post(url)
        .basic_auth(&credentials.account_sid, Some(&credentials.auth_token))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap_or_default())
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(err) => return Attempt::Failed(format!("cannot reach the provider: {err}")),
    };
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        let sid = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|json| json["sid"].as_str().map(str::to_owned));
        return Attempt::Accepted(sid);
    }
    let error =
        format!("the provider answered {}: {}", status.as_u16(), body.chars().take(300).collect::<String>());
    // Only a refusal of the message itself is final (400: a bad number or body; 422 likewise
    // for some providers). Credentials, addresses and throttling get fixed: keep trying.
    if matches!(status.as_u16(), 400 | 422) { Attempt::Refused(error) } else { Attempt::Failed(error) }
}
