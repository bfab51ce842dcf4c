//! Switchboard: a self-hosted contact-center router in one binary.
//!
//! A telephony provider posts Twilio-style webhooks; Switchboard answers with TwiML, walks the
//! caller through an IVR, routes the resulting task with TaskRouter semantics and bridges the
//! caller to the agent who accepted. ARCHITECTURE.md has the bird's-eye view.
//!
//! # Layout
//!
//! In reading order, from the pure core outwards:
//!
//! - [`expr`]: the TaskRouter expression language (pure).
//! - [`routing`]: the routing engine, TaskRouter semantics on a caller-supplied clock (pure).
//! - [`ivr`]: IVR flows from TOML files and their walker (pure).
//! - [`store`]: snapshots and the command log in sled, with group commit; the only module that
//!   knows sled.
//! - [`live`]: the engine running live: recovery, durable commands, timers, events.
//! - [`statistics`]: the cumulative statistics, kept per minute as the engine's events come.
//! - [`outbound`]: outgoing HTTP, the only module that knows reqwest: event callbacks, text
//!   replies, the provider's Voice API for live call control, signed webhooks, and the
//!   provider played by `switchboard call`.
//! - [`twiml`]: typed TwiML, its rendering and reading, the only module that knows quick-xml.
//! - [`agents`]: agents' sign-in secrets (issued once to the admin, stored as digests).
//! - [`voice`]: the caller's journey: each voice webhook's effect on the call, task and store.
//! - [`http`]: the HTTP edge, the only module that knows actix-web.
//! - [`config`]: settings from defaults, `switchboard.toml` and `SWITCHBOARD_*` variables.
//! - [`workspace`]: the workspace file format (skills, queues, workflows, agents by name).
//! - [`simulate`]: scenario files run through the engine on a virtual clock.
//! - [`telemetry`]: logging setup.
//! - [`app`]: builds the server from settings and runs it until a shutdown signal.
//! - [`emulator`]: `switchboard provider`, a telephony provider in memory (calls, conferences,
//!   TwiML, the Voice REST API, signed webhooks) for trying Switchboard and for the tests.
//! - [`cli`]: the `switchboard` command line.

pub mod expr;
pub mod ivr;
pub mod routing;

pub mod store;

pub mod agents;
pub mod live;
pub mod locks;
pub mod metrics;
pub mod statistics;

pub mod outbound;

pub mod twiml;
pub mod voice;

pub mod http;

pub mod app;
pub mod cli;
pub mod config;
pub mod emulator;
pub mod simulate;
pub mod sms;
pub mod telemetry;
pub mod workspace;

/// What the fuzz targets share: the proptest targets (`fuzz_*` property tests beside the code
/// they attack) and, with the `fuzzing` feature, the entry points of cargo fuzz's targets.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
