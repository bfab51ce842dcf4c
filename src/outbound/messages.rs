//! Delivers the agents' replies: the SMS outbox, in order, to the provider's REST API
//! (Twilio's `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, Basic auth,
//! `To`, `From`, `Body`, a `MediaUrl` per picture). A reply is marked sent only once the provider accepted it (2xx);
//! refused for good on a 400 or 422 (the message itself is wrong); otherwise tried again later,
//! waiting longer each time, until accepted.
//!
//! The provider's API takes no idempotency key. So that a reply goes once even when the
//! provider took it and Switchboard did not learn it (a crash before the mark, an answer lost
//! to a timeout or a broken connection), each attempt is noted durably before it starts; a reply
//! whose last attempt has no known outcome is first looked for in the provider's list of
//! messages (`GET .../Messages.json?To=&From=`): the same body, sent since that attempt, under a
//! message SID no other reply has. Found, it is marked sent; not found, it is sent.

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
                let outcome = match entry.attempt_started {
                    Some(started) => {
                        match already_sent(&client, &url, &credentials, &entry, started, &sms).await {
                            Ok(Some(sid)) => {
                                tracing::info!(id = entry.id, %sid, "a reply the provider had already taken is marked sent");
                                Attempt::Accepted(Some(sid))
                            }
                            Ok(None) => attempt(&sms, &client, &url, &credentials, &entry).await,
                            Err(error) => Attempt::Failed { error, answered: false },
                        }
                    }
                    None => attempt(&sms, &client, &url, &credentials, &entry).await,
                };
                let now = live::now();
                let recorded = match outcome {
                    Attempt::Accepted(sid) => sms.delivered(entry.id, sid, now).await,
                    Attempt::Refused(error) => sms.refused(entry.id, error, now).await,
                    Attempt::Failed { error, answered } => {
                        sms.retry_later(entry.id, error, answered, now).await
                    }
                    Attempt::NotNoted(error) => Err(error),
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
    /// Try again later (server error, throttling, network). `answered`: the provider said so;
    /// otherwise (no answer) it may have taken the reply.
    Failed { error: String, answered: bool },
    /// The attempt could not be noted first, so it was not made.
    NotNoted(crate::sms::SmsError),
}

/// Notes the attempt durably, then sends.
async fn attempt(
    sms: &Sms,
    client: &reqwest::Client,
    url: &str,
    credentials: &Credentials,
    entry: &OutboxV1,
) -> Attempt {
    if let Err(err) = sms.attempting(entry.id, live::now()).await {
        return Attempt::NotNoted(err);
    }
    send(client, url, credentials, entry).await
}

/// The provider's SID of `entry` if the provider already took it: a message in its list with
/// the same recipient, sender and body, created since `started` (less a minute for clocks that
/// differ), that no other reply is known as.
async fn already_sent(
    client: &reqwest::Client,
    url: &str,
    credentials: &Credentials,
    entry: &OutboxV1,
    started: crate::routing::Millis,
    sms: &Sms,
) -> Result<Option<String>, String> {
    let query = [("To", entry.to.as_str()), ("From", entry.from.as_str()), ("PageSize", "100")];
    let response = client
        .get(url)
        .query(&query)
        .basic_auth(&credentials.account_sid, Some(&credentials.auth_token))
        .send()
        .await
        .map_err(|err| format!("cannot ask the provider whether it took the reply: {err}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the provider's message list answered {}", status.as_u16()));
    }
    let text = response.text().await.map_err(|err| format!("the provider's message list was cut: {err}"))?;
    let list: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| format!("the provider's message list is not JSON: {err}"))?;
    let known = sms.provider_sids();
    let since = started - 60_000;
    let found = list["messages"].as_array().into_iter().flatten().find(|message| {
        let created = message["date_created"].as_str().and_then(|date| jiff::fmt::rfc2822::parse(date).ok());
        message["body"] == entry.body.as_str()
            && message["to"] == entry.to.as_str()
            && created.is_some_and(|created| created.timestamp().as_millisecond() >= since)
            && message["sid"].as_str().is_some_and(|sid| !known.contains(sid))
    });
    Ok(found.and_then(|message| message["sid"].as_str().map(str::to_owned)))
}

async fn send(client: &reqwest::Client, url: &str, credentials: &Credentials, entry: &OutboxV1) -> Attempt {
    let mut form = vec![("To", entry.to.as_str()), ("From", entry.from.as_str())];
    if !entry.body.is_empty() {
        form.push(("Body", entry.body.as_str()));
    }
    form.extend(entry.media.iter().map(|url| ("MediaUrl", url.as_str())));
    let response = client
        .post(url)
        .basic_auth(&credentials.account_sid, Some(&credentials.auth_token))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap_or_default())
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        // Sent or not, nobody knows: the provider is asked before the next attempt.
        Err(err) => {
            return Attempt::Failed { error: format!("cannot reach the provider: {err}"), answered: false };
        }
    };
    let status = response.status();
    let Ok(body) = response.text().await else {
        // The answer was cut: the provider may have taken the reply.
        return Attempt::Failed {
            error: format!("the provider's answer ({status}) was cut"),
            answered: false,
        };
    };
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
    if matches!(status.as_u16(), 400 | 422) {
        Attempt::Refused(error)
    } else {
        Attempt::Failed { error, answered: true }
    }
}
