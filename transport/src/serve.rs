//! [`serve()`]: the accept loop every server of the workspace shares.
//!
//! It accepts on a [`Listener`] until its shutdown token is cancelled or the
//! listening socket fails for good, and runs a [`Handler`] on each
//! connection in its own task, inside a `connection{peer=...}` span:
//!
//! - **Limit**: at most [`ServeConfig::max_connections`] handlers run at
//!   once; what happens to one more is [`ServeConfig::when_full`] (wait in
//!   the backlog, be closed at once, or be handed to [`Handler::refuse`]).
//! - **Accept errors** ([`crate::accept`]): a pending connection that failed
//!   is skipped; resource exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM) and
//!   passing network errors are retried after a pause doubling from 100 ms
//!   to 1 s; an error of the listening socket itself (EBADF, EINVAL,
//!   ENOTSOCK, EFAULT) ends the loop with a [`ServeError`] instead of
//!   spinning. Warnings (failures, limit reached) are written at most once
//!   per [`ServeConfig::warn_interval`], with the count held back.
//! - **Misbehaving clients**: a handler that fails or panics ends its own
//!   task only (a panic is logged; with `panic = "abort"`, as in the
//!   workspace's release profile, it ends the process instead).
//! - **Shutdown** (and after a permanent error): the listener is closed at
//!   once (a Unix socket file is removed), open connections get
//!   [`ServeConfig::grace`] to finish; then each handler's `abort` token is
//!   cancelled and it gets [`ServeConfig::abort_wait`] to wrap up before it
//!   is dropped.

use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::accept::{AcceptPacing, Throttle};
use crate::address::Address;
use crate::defs::{DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_GRACE, DEFAULT_WARN_INTERVAL};
use crate::listener::{Listener, Peer};
use crate::stream::Stream;

/// What [`serve()`] does with a connection while the limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Stop accepting until a connection ends: new clients wait in the
    /// listen backlog (and the kernel refuses them when it is full).
    Wait,
    /// Accept it and close it at once, so the client learns straight away.
    Close,
    /// Accept it and run [`Handler::refuse`] on it (say, to answer "busy"),
    /// at most `max_in_flight` refusals at once; beyond, close it at once.
    Refuse {
        /// Refusals running at once.
        max_in_flight: usize,
    },
}

/// Settings of [`serve()`].
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Connections served at once (at least one).
    pub max_connections: usize,
    /// What happens to a connection beyond `max_connections`.
    pub when_full: WhenFull,
    /// Time open connections get to finish after shutdown is asked.
    pub grace: Duration,
    /// Time a handler gets after its `abort` token is cancelled (at the end
    /// of `grace`) before it is dropped; zero drops it at once.
    pub abort_wait: Duration,
    /// Shortest interval between two copies of a repeated warning.
    pub warn_interval: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            when_full: WhenFull::Wait,
            grace: DEFAULT_SHUTDOWN_GRACE,
            abort_wait: Duration::ZERO,
            warn_interval: DEFAULT_WARN_INTERVAL,
        }
    }
}

/// What [`serve()`] runs on each accepted connection. Any
/// `FnMut(Stream, Peer) -> impl Future<Output = ()>` is one.
pub trait Handler {
    /// Serves one connection. `abort` is cancelled when the shutdown grace
    /// period is over; the handler then has [`ServeConfig::abort_wait`] to
    /// wrap up (tell the client, clean up) before it is dropped.
    fn serve(
        &mut self,
        stream: Stream,
        peer: Peer,
        abort: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static;

    /// Turns away a connection beyond the limit under
    /// [`WhenFull::Refuse`]; by default it is closed.
    fn refuse(&mut self, stream: Stream, peer: Peer) -> impl Future<Output = ()> + Send + 'static {
        drop((stream, peer));
        std::future::ready(())
    }
}

impl<F, Fut> Handler for F
where
    F: FnMut(Stream, Peer) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn serve(
        &mut self,
        stream: Stream,
        peer: Peer,
        _abort: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        self(stream, peer)
    }
}

/// How a [`serve()`] that was asked to stop went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Connections handed to the handler.
    pub served: u64,
    /// Connections turned away because the limit was reached.
    pub refused: u64,
    /// Connections still open at the end of the grace period (aborted).
    pub aborted: u64,
}

/// The listening socket failed for good (EBADF, EINVAL, ENOTSOCK, EFAULT).
#[derive(Debug, thiserror::Error)]
#[error("accepting on {listener} failed: {source}")]
pub struct ServeError {
    /// The listener's address.
    pub listener: Address,
    /// Why.
    pub source: io::Error,
}

/// Accepts connections on `listener` and runs `handler` on each in its own
/// task until `shutdown` is cancelled (then `Ok`) or the listening socket
/// fails for good (then `Err`, not logged here); either way the listener is
/// closed and open connections are wound down as the module documentation
/// says before it returns.
pub async fn serve<H: Handler>(
    listener: Listener,
    config: &ServeConfig,
    shutdown: CancellationToken,
    mut handler: H,
) -> Result<Stopped, ServeError> {
    let local = listener.local_addr().clone();
    let max = config.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let refusals = Arc::new(Semaphore::new(match config.when_full {
        WhenFull::Refuse { max_in_flight } => max_in_flight,
        WhenFull::Wait | WhenFull::Close => 0,
    }));
    let tasks = Tasks {
        tracker: TaskTracker::new(),
        abort: CancellationToken::new(),
        abort_wait: config.abort_wait,
        aborted: Arc::new(AtomicU64::new(0)),
    };
    let mut pacing = AcceptPacing::new(config.warn_interval);
    let mut full_warnings = Throttle::new(config.warn_interval);
    let mut stopped = Stopped::default();
    tracing::debug!(listen = %local, max_connections = max, when_full = ?config.when_full, "accepting");
    let result = loop {
        let waited_slot = if config.when_full == WhenFull::Wait {
            let slot = match Arc::clone(&slots).try_acquire_owned() {
                Ok(slot) => Ok(slot),
                Err(_) => {
                    if let Some(suppressed) = full_warnings.allow() {
                        tracing::warn!(listen = %local, limit = max, suppressed, "connection limit reached; new clients wait");
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => break Ok(()),
                        slot = Arc::clone(&slots).acquire_owned() => slot,
                    }
                }
            };
            // The semaphore is never closed.
            let Ok(slot) = slot else { break Ok(()) };
            Some(slot)
        } else {
            None
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            accepted = listener.accept_paced(&mut pacing) => match accepted {
                Ok(accepted) => accepted,
                Err(source) => break Err(ServeError { listener: local.clone(), source }),
            },
        };
        let slot = match waited_slot {
            Some(slot) => slot,
            None => match Arc::clone(&slots).try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    stopped.refused += 1;
                    let refusal = Arc::clone(&refusals).try_acquire_owned().ok();
                    if let Some(suppressed) = full_warnings.allow() {
                        let action = if refusal.is_some() {
                            "refusing"
                        } else {
                            "closing"
                        };
                        tracing::warn!(%peer, listen = %local, limit = max, suppressed, "connection limit reached; {action} the new connection");
                    }
                    if let Some(refusal) = refusal {
                        let span = tracing::info_span!("refusal", %peer);
                        tasks.spawn(handler.refuse(stream, peer), refusal, span);
                    }
                    continue;
                }
            },
        };
        stopped.served += 1;
        let span = tracing::info_span!("connection", %peer);
        let abort = tasks.abort.clone();
        tasks.spawn(handler.serve(stream, peer, abort), slot, span);
    };
    drop(listener);
    tasks.wind_down(&local, config.grace).await;
    stopped.aborted = tasks.aborted.load(Ordering::Relaxed);
    tracing::debug!(listen = %local, ?stopped, "no longer serving");
    result.map(|()| stopped)
}

/// The connection tasks of one [`serve()`].
struct Tasks {
    tracker: TaskTracker,
    abort: CancellationToken,
    abort_wait: Duration,
    aborted: Arc<AtomicU64>,
}

impl Tasks {
    /// Runs `work` in its own task holding `permit`, inside `span`.
    fn spawn<F>(&self, work: F, permit: OwnedSemaphorePermit, span: tracing::Span)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let abort = self.abort.clone();
        let abort_wait = self.abort_wait;
        let aborted = Arc::clone(&self.aborted);
        self.tracker.spawn(
            async move {
                let _permit = permit;
                let mut work = std::pin::pin!(catch_panic(work));
                let outcome = tokio::select! {
                    outcome = &mut work => outcome,
                    () = abort.cancelled() => match tokio::time::timeout(abort_wait, work).await {
                        Ok(outcome) => outcome,
                        Err(_) => {
                            aborted.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!("connection aborted at the end of the shutdown grace period");
                            return;
                        }
                    },
                };
                if let Err(panic) = outcome {
                    tracing::error!(%panic, "connection handler panicked; the server carries on");
                }
            }
            .instrument(span),
        );
    }

    /// Waits up to `grace` for open connections, then aborts the rest.
    async fn wind_down(&self, local: &Address, grace: Duration) {
        self.tracker.close();
        if self.tracker.is_empty() {
            return;
        }
        tracing::info!(listen = %local, open = self.tracker.len(), ?grace, "no longer accepting; waiting for open connections");
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(listen = %local, open = self.tracker.len(), "shutdown grace period over; aborting open connections");
            self.abort.cancel();
            self.tracker.wait().await;
        }
    }
}

/// Runs `work`, turning a panic into `Err(message)`.
async fn catch_panic<F: Future<Output = ()>>(work: F) -> Result<(), String> {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx))) {
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    })
    .await
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "(no message)".to_owned()
    }
}
