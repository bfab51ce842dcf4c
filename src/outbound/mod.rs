//! Outgoing HTTP: the only module that makes requests (reqwest). Event callbacks to the
//! configured URL, the agents' text replies to the provider's messages API, live call control
//! through the provider's Voice API, the IVR's lookups, the webhooks the provider emulator
//! posts, and `switchboard healthcheck`'s question to a running server.

pub mod callbacks;
pub mod health;
pub mod lookup;
pub mod messages;
pub mod voice_api;
pub mod webhooks;

/// A failed request in a sentence, with its cause (the first error alone says little).
fn failed(err: &reqwest::Error) -> String {
    let mut reason = "the request failed".to_owned();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(cause) = source {
        reason = format!("the request failed: {cause}");
        source = cause.source();
    }
    reason
}
