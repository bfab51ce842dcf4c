//! Outgoing HTTP: the only module that makes requests (reqwest). Event callbacks to the
//! configured URL, and the provider played by `switchboard call`.

pub mod callbacks;
pub mod provider;
