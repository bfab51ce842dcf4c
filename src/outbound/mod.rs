//! Outgoing HTTP: the only module that makes requests (reqwest). Event callbacks to the
//! configured URL, the agents' text replies to the provider's messages API, and the provider
//! played by `switchboard call`.

pub mod callbacks;
pub mod messages;
pub mod provider;
