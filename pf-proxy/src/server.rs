//! The proxies' limits, and their accept loop: [`transport::serve()`] with
//! them.
//!
//! [`serve`] accepts until its shutdown token is cancelled. A connection
//! beyond [`Limits::max_connections`] is accepted and closed at once (and
//! logged, at most once per [`WARN_INTERVAL`]), so a flood cannot grow
//! memory without bound and the client learns at once. On shutdown the
//! listener is closed, open connections get [`Limits::shutdown_grace`] to
//! finish, and whatever is still open then is cut. A failing or
//! misbehaving connection ends only its own task; accept errors are waited
//! out, except one that says the listening socket itself is unusable.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use transport::{Listener, Peer, ServeConfig, Stream, WhenFull};
pub use transport::{ServeError, Throttle};

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

/// Accepts connections on `listener` and runs `handler` on each in its own
/// task, until `shutdown` is cancelled; then waits for open connections as
/// [`Limits::shutdown_grace`] allows and returns. An `Err` says the
/// listening socket failed for good.
pub async fn serve<H, F>(
    listener: Listener,
    limits: &Limits,
    shutdown: CancellationToken,
    handler: H,
) -> Result<(), ServeError>
where
    H: FnMut(Stream, Peer) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let local = listener.local_addr().clone();
    let config = ServeConfig {
        max_connections: limits.max_connections,
        when_full: WhenFull::Close,
        grace: limits.shutdown_grace,
        abort_wait: Duration::ZERO,
        warn_interval: WARN_INTERVAL,
    };
    tracing::info!(listen = %local, max_connections = limits.max_connections, "serving");
    transport::serve(listener, &config, shutdown, handler).await?;
    tracing::info!(listen = %local, "stopped");
    Ok(())
}
