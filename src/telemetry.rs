//! Logging setup: `tracing` events to standard error, filtered by `RUST_LOG` (default `info`),
//! as text for people or as one JSON object per line for a log collector (`log.format`).
//!
//! Standard output stays free for command results (`switchboard expr eval` prints `true` or
//! `false` there), so scripts can read it without filtering logs out.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber, writing text. Calling it twice is harmless: the second call
/// does nothing.
pub fn init() {
    init_as(LogFormat::Text);
}

/// Installs the global subscriber, writing lines of `format`. Calling it twice is harmless: the
/// second call does nothing.
pub fn init_as(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _already_installed = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        // The event's fields beside `message` at the top level, where collectors look for them
        // (so no event may have a field named `timestamp`, `level` or `target`).
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).try_init(),
    };
}
