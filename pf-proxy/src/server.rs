//! The accept loop every proxy shares: connection limit, one task per
//! connection, graceful shutdown.
//!
//! [`serve`] accepts until its shutdown token is cancelled. A connection
//! beyond [`Limits::max_connections`] is accepted and closed at once (and
//! logged), so a flood cannot grow memory without bound and the client
//! learns at once. On shutdown the listener is closed, open connections get
//! [`Limits::shutdown_grace`] to finish, and whatever is still open then is
//! cut. Each connection's task is tracked with a [`TaskTracker`]; a failing
//! or misbehaving connection ends only its own task.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transport::{Listener, Peer, Stream};

use crate::defs::{
    COPY_BUFFER_SIZE, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_GRACE, WARN_INTERVAL,
};

/// Limits of one proxy.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time-out of connecting to a target.
    pub connect_timeout: Duration,
    /// A connection idle this long in both directions is closed.
    pub idle_timeout: Duration,
    /// Time-out of reading the original-destination header.
    pub header_timeout: Duration,
    /// Time open connections get to finish after shutdown is asked.
    pub shutdown_grace: Duration,
    /// Largest copy buffer per direction and connection (buffers start small and grow).
    pub buffer_size: usize,
    /// Move bulk transfers between TCP and Unix sockets with `splice(2)`.
    pub splice: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            buffer_size: COPY_BUFFER_SIZE,
            splice: true,
        }
    }
}

/// The listening socket itself failed.
#[derive(Debug, thiserror::Error)]
#[error("accepting on {listener} failed: {source}")]
pub struct ServeError {
    /// The listener's address.
    pub listener: transport::Address,
    /// Why.
    pub source: std::io::Error,
}

/// Accepts connections on `listener` and runs `handler` on each in its own
/// task, until `shutdown` is cancelled; then waits for open connections as
/// [`Limits::shutdown_grace`] allows and returns.
pub async fn serve<H, F>(
    listener: Listener,
    limits: &Limits,
    shutdown: CancellationToken,
    handler: H,
) -> Result<(), ServeError>
where
    H: Fn(Stream, Peer) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let local = listener.local_addr().clone();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    let cut = CancellationToken::new();
    let mut limit_warnings = Throttle::default();
    tracing::info!(listen = %local, max_connections = limits.max_connections, "serving");
    let result = loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(source) => break Err(ServeError { listener: local.clone(), source }),
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            if let Some(suppressed) = limit_warnings.allow() {
                tracing::warn!(%peer, limit = limits.max_connections, suppressed, "connection limit reached, closing the new connection");
            }
            drop(stream);
            continue;
        };
        let connection = handler(stream, peer);
        let cut = cut.clone();
        tracker.spawn(async move {
            tokio::select! {
                () = connection => {}
                () = cut.cancelled() => tracing::debug!("connection cut at the end of the shutdown grace period"),
            }
            drop(permit);
        });
    };
    drop(listener);
    tracker.close();
    if !tracker.is_empty() {
        tracing::info!(
            open = tracker.len(),
            grace = ?limits.shutdown_grace,
            "no longer accepting; waiting for open connections"
        );
    }
    if tokio::time::timeout(limits.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.len(),
            "shutdown grace period over; cutting open connections"
        );
        cut.cancel();
        tracker.wait().await;
    }
    tracing::info!(listen = %local, "stopped");
    result
}

/// Lets a repeated warning through at most once per [`WARN_INTERVAL`], so a
/// flood of bad clients cannot flood the log; counts what it held back.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(held back since the last one)` when a warning may be written now.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < WARN_INTERVAL)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throttle_lets_one_warning_through_per_interval() {
        let mut throttle = Throttle::default();
        assert_eq!(throttle.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(throttle.allow(), None);
        }
        tokio::time::advance(WARN_INTERVAL).await;
        assert_eq!(throttle.allow(), Some(5));
        assert_eq!(throttle.allow(), None);
    }
}
