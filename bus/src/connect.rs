//! Connecting to nats-server.
//!
//! At start a component may come up before nats-server (both run under
//! enclave-init), so [`connect`] retries a bounded number of times with
//! exponential back-off, then fails with an error naming the URL. Once
//! connected, the client reconnects by itself for as long as the process
//! lives; requests made while the server is away fail (time out) and the
//! caller decides whether to retry them.

use std::time::Duration;

use async_nats::jetstream::{self, Context};
use async_nats::{ConnectErrorKind, ConnectOptions, Event};

use crate::defs::{CONNECT_ATTEMPTS, CONNECT_FIRST_BACKOFF, CONNECT_MAX_BACKOFF, CONNECT_TIMEOUT};

/// What can go wrong on the bus. Each message names the cause once (it
/// is part of the message, not a separate error source, because
/// `async_nats`' errors already repeat their own causes).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The server could not be reached (after every attempt).
    #[error("cannot connect to NATS at {url} after {attempts} attempt(s): {cause}")]
    Connect {
        /// The URL that was tried.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        cause: async_nats::ConnectError,
    },
    /// Looking up a KV bucket failed.
    #[error("cannot open KV bucket {bucket}: {cause}")]
    GetBucket {
        /// The bucket's name.
        bucket: String,
        /// Why.
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading a bucket's keys or values failed.
    #[error("cannot read KV bucket {bucket}: {cause}")]
    Read {
        /// The bucket's name.
        bucket: String,
        /// Why.
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Creating a missing KV bucket failed.
    #[error("cannot create KV bucket {bucket}: {cause}")]
    CreateBucket {
        /// The bucket's name.
        bucket: String,
        /// Why.
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// How [`connect_with`] retries the first connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all (at least one is made).
    pub attempts: u32,
    /// The wait after the first failure; doubled after each further one.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: CONNECT_ATTEMPTS,
            first_backoff: CONNECT_FIRST_BACKOFF,
            max_backoff: CONNECT_MAX_BACKOFF,
        }
    }
}

/// Connects to `url` (e.g. [`crate::DEFAULT_URL`]) with the default
/// [`Retry`] policy and returns a JetStream context.
pub async fn connect(url: &str) -> Result<Context, BusError> {
    connect_with(url, Retry::default()).await
}

/// Connects to `url`, retrying as `retry` says. A URL that does not parse is
/// not retried.
pub async fn connect_with(url: &str, retry: Retry) -> Result<Context, BusError> {
    let attempts = retry.attempts.max(1);
    let mut backoff = retry.first_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match options(url).connect(url).await {
            Ok(client) => {
                tracing::debug!(url, attempt, "connected to NATS");
                return Ok(jetstream::new(client));
            }
            Err(cause) if attempt >= attempts || cause.kind() == ConnectErrorKind::ServerParse => {
                return Err(BusError::Connect {
                    url: url.to_owned(),
                    attempts: attempt,
                    cause,
                });
            }
            Err(error) => {
                tracing::debug!(url, attempt, %error, ?backoff, "NATS not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(retry.max_backoff);
            }
        }
    }
}

/// Client options: a connect time-out, unlimited reconnects once connected,
/// connection changes logged.
fn options(url: &str) -> ConnectOptions {
    let url = url.to_owned();
    ConnectOptions::new()
        .connection_timeout(CONNECT_TIMEOUT)
        .max_reconnects(None)
        .event_callback(move |event| {
            let url = url.clone();
            async move {
                match event {
                    Event::Connected => tracing::info!(url, "NATS connected"),
                    Event::Disconnected => tracing::warn!(url, "NATS disconnected; reconnecting"),
                    other => tracing::debug!(url, event = %other, "NATS event"),
                }
            }
        })
}
