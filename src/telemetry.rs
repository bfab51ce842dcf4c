//! Logging setup: `tracing` events to standard error, filtered by `RUST_LOG` (default `info`).
//!
//! Standard output stays free for command results (`switchboard expr eval` prints `true` or
//! `false` there), so scripts can read it without filtering logs out.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber. Calling it twice is harmless: the second call does nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _already_installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
