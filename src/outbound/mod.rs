//! Outgoing HTTP: the only module that makes requests (reqwest). Event callbacks to the
//! configured URL, the agents' text replies to the provider's messages API, live call control
//! through the provider's Voice API, the IVR's lookups, and the webhooks the provider emulator
//! posts.

pub mod callbacks;
pub mod lookup;
pub mod messages;
pub mod voice_api;
pub mod webhooks;
