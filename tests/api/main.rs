//! The integration tests: one binary, so it links once (which matters on 2-core CI machines).
//! Each module tests one area against the real server or the real `switchboard` executable.

mod agent;
mod browser;
mod call_crash;
mod callbacks;
mod chaos;
mod crash;
mod durable_events;
mod emulator;
mod expr_cli;
mod failover;
mod framing;
mod health;
mod helpers;
mod hostile;
mod install;
mod ivr_cli;
mod ivr_flows;
mod metrics;
mod packaging;
mod pages;
mod process;
mod proxies;
mod sdk;
mod sessions;
mod simulate;
mod sms;
mod store_copy;
mod supervisor;
mod taskrouter;
mod taskrouter_channels;
// The same private PostgreSQL cluster as the store's unit tests.
mod taskrouter_cumulative;
mod taskrouter_lists;
#[path = "../../src/store/test_postgres.rs"]
mod test_postgres;
mod tidy;
mod transfers;
mod voice;
mod workspaces;
