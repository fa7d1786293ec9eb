//! `--log-level` / `FASTCART_LOG`: logs to standard error through `tracing`,
//! so that fastcart's own AWS calls (the drivers' call frame logs each one,
//! operation and target, at debug, and a failure at info) and the AWS SDK's
//! request logs (operation, attempt, status) are there when something
//! fails.
//!
//! Secrets never reach the log. fastcart logs names, ids and ARNs, never
//! values. The SDK and the HTTP stack below it log no bodies by default
//! (checked: a whole apply at `trace` with this filter switched off holds
//! neither the Redis auth token nor a secret's value), but can be told to
//! (`LOG_SIGNABLE_BODY` makes aws-sigv4 log what it signs), and do so at
//! the TRACE level: their TRACE events are dropped whatever the filter
//! asks for. `tests/e2e.rs` runs a whole apply and destroy at `trace` and
//! looks for the secrets in the log.

use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::prelude::*;

/// Targets that may carry wire bodies at TRACE.
const TRANSPORT: &[&str] = &[
    "aws_smithy",
    "aws_sigv4",
    "aws_config",
    "aws_runtime",
    "aws_sdk_",
    "hyper",
    "h2",
    "rustls",
    "tower",
];

/// Starts logging with `spec`, a level or a tracing filter.
pub fn init(spec: &str) -> Result<(), String> {
    let filter = EnvFilter::builder().parse(spec).map_err(|e| {
        format!(
            "--log-level (or FASTCART_LOG) {spec:?} is not a level or filter: {e}; give \
                 error, warn, info, debug or trace, or a filter such as \
                 `warn,fastcart_drivers=debug`"
        )
    })?;
    let no_bodies = FilterFn::new(|m| {
        !(m.level() == &Level::TRACE && TRANSPORT.iter().any(|t| m.target().starts_with(t)))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(no_bodies),
        )
        .try_init()
        .map_err(|e| format!("cannot start logging: {e}"))
}
