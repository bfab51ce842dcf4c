//! Outgoing HTTP: the only module that makes requests (reqwest). Event callbacks to the
//! configured URL, the agents' text replies to the provider's messages API, live call control
//! through the provider's Voice API, and the provider played by `switchboard call`.

pub mod callbacks;
pub mod messages;
pub mod simulated_call;
pub mod voice_api;
pub mod webhooks;
