//! The control server: accepts connections on every configured address,
//! at most [`MAX_CONTROL_CONNECTIONS`] at once per listener, and answers
//! framed requests through the supervisor. A connection that sends an
//! oversized frame, garbage, or nothing for [`CONTROL_IDLE_TIMEOUT`] loses
//! the connection; init and the other clients carry on.
//!
//! Each connection carries an [`Access`] level, that of its listener to
//! begin with; a request the level does not permit is answered with a
//! refusal and never reaches the supervisor (see [`crate::control::access`]).
//!
//! A listener given the attested channel (`control.attested`) tells its
//! clients apart by their first four bytes: the channel's magic starts the
//! attested handshake (the same as pipeline's: init's key, made at start,
//! bound into an NSM document with the client's nonce; only authorised
//! keys accepted), after which the connection carries the same frames,
//! encrypted, with full access for a key allowed to `manage` and the
//! listener's access for any other; anything else is a plain client with
//! the listener's access.
//!
//! A failed accept is retried after a pause that doubles from 100 ms to
//! 5 s, with at most one warning a minute; an error that says the listening
//! socket itself is unusable (EBADF, EINVAL, ENOTSOCK, EFAULT) is logged
//! once and ends that listener's server. Init, its services and its other
//! listeners carry on.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use attested_channel::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transport::Listener;

use crate::control::access::Access;
use crate::control::cmd::{Parsed, Request, Response};
use crate::control::connection::{Connection, ConnectionError};
use crate::defs::*;
use crate::supervisor::SupervisorHandle;

/// The pause after the first of consecutive failed accepts.
const ACCEPT_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between failed accepts.
const ACCEPT_RETRY_MAX: Duration = Duration::from_secs(5);
/// At most one warning about failing accepts this often.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// What to do after a failed accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptRetry {
    /// Try again after this pause; `warn` says whether to log it.
    After {
        /// The pause.
        pause: Duration,
        /// Whether this failure is to be logged (the first one, then one
        /// per [`ACCEPT_WARNING_INTERVAL`]).
        warn: bool,
    },
    /// The listening socket is unusable: stop accepting on it.
    GiveUp,
}

/// Paces the retries of a listener's failed accepts: a pause doubling from
/// [`ACCEPT_RETRY_FIRST`] to [`ACCEPT_RETRY_MAX`], warnings throttled to one
/// per [`ACCEPT_WARNING_INTERVAL`], and no retry after an error of the
/// listening socket itself.
#[derive(Debug)]
struct AcceptBackoff {
    pause: Duration,
    failures: u64,
    last_warning: Option<Instant>,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            pause: ACCEPT_RETRY_FIRST,
            failures: 0,
            last_warning: None,
        }
    }
}

impl AcceptBackoff {
    /// Notes a failed accept at `now` and says what to do.
    fn failed(&mut self, err: &io::Error, now: Instant) -> AcceptRetry {
        if is_permanent(err) {
            return AcceptRetry::GiveUp;
        }
        self.failures += 1;
        let pause = self.pause;
        self.pause = (self.pause * 2).min(ACCEPT_RETRY_MAX);
        let warn = self
            .last_warning
            .is_none_or(|at| now.duration_since(at) >= ACCEPT_WARNING_INTERVAL);
        if warn {
            self.last_warning = Some(now);
        }
        AcceptRetry::After { pause, warn }
    }

    /// Failed accepts since the last success.
    fn failures(&self) -> u64 {
        self.failures
    }

    /// Notes a successful accept: the next failure starts from the shortest pause.
    fn succeeded(&mut self) {
        self.pause = ACCEPT_RETRY_FIRST;
        self.failures = 0;
    }
}

/// Whether an accept error means the listening socket itself is unusable
/// (closed, no longer listening, not a socket), so that retrying cannot
/// help. Everything else (ECONNABORTED, EINTR, EMFILE, ENFILE, ENOBUFS,
/// EPERM, the network errors Linux passes on from pending connections...)
/// is treated as passing.
fn is_permanent(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT)
    )
}

/// Accepts and serves connections on `listener`, each with `access` (or
/// more, for a client authenticated on `channel`), until `cancel` fires or
/// the listener fails for good (EBADF, EINVAL, ENOTSOCK: logged once).
/// Other accept errors are retried with a growing pause.
/// Connection tasks are spawned on `tracker` so shutdown can wait for them.
pub async fn serve(
    listener: Listener,
    access: Access,
    channel: Option<Arc<ServerConfig>>,
    handle: SupervisorHandle,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONTROL_CONNECTIONS));
    let local = listener.local_addr().clone();
    let attested = if channel.is_some() {
        "; full access for keys allowed to manage, over the attested channel"
    } else {
        ""
    };
    tracing::info!("control socket listening on {local} ({access} access{attested})");
    let mut backoff = AcceptBackoff::default();
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = cancel.cancelled() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = cancel.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff.succeeded();
                tracing::debug!(%peer, listener = %local, "control connection");
                let (handle, cancel) = (handle.clone(), cancel.clone());
                let channel = channel.clone();
                tracker.spawn(async move {
                    match channel {
                        Some(channel) => {
                            serve_either(stream, access, &channel, &handle, &cancel).await
                        }
                        None => serve_connection(stream, access, &handle, &cancel).await,
                    }
                    drop(permit);
                });
            }
            Err(err) => match backoff.failed(&err, Instant::now()) {
                AcceptRetry::After { pause, warn } => {
                    if warn {
                        tracing::warn!(
                            listener = %local, %err, failures = backoff.failures(), ?pause,
                            "accept failed; retrying (next warning in {ACCEPT_WARNING_INTERVAL:?} at the earliest)"
                        );
                    }
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = cancel.cancelled() => return,
                    }
                }
                AcceptRetry::GiveUp => {
                    tracing::error!(
                        listener = %local, %err,
                        "control listener failed for good: no more connections on it (init carries on)"
                    );
                    return;
                }
            },
        }
    }
}

/// Serves a connection on a listener with the attested channel: an
/// attested-channel client after its handshake (full access if its key may
/// `manage`), any other client as plain with `access`.
pub async fn serve_either<S>(
    mut stream: S,
    access: Access,
    channel: &ServerConfig,
    handle: &SupervisorHandle,
    cancel: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut first = [0u8; FRAME_HEADER_LEN];
    let read = tokio::select! {
        read = tokio::time::timeout(CONTROL_IDLE_TIMEOUT, stream.read_exact(&mut first)) => read,
        _ = cancel.cancelled() => return,
    };
    match read {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => return tracing::debug!("control client went away: {err}"),
        Err(_) => return tracing::debug!("control client sent nothing: closed"),
    }
    if first != attested_channel::defs::MAGIC {
        let conn = Connection::with_read_ahead(stream, first.to_vec());
        return serve_frames(conn, access, handle, cancel).await;
    }
    let accepted = tokio::select! {
        accepted = attested_channel::accept_after_magic(stream, channel) => accepted,
        _ = cancel.cancelled() => return,
    };
    match accepted {
        Ok((secure, entry)) => {
            let access = if entry.permissions.manage {
                Access::Full
            } else {
                access
            };
            tracing::info!(
                key = %entry.key.short(),
                comment = %entry.comment,
                %access,
                "control client authenticated over the attested channel"
            );
            serve_frames(Connection::new(secure), access, handle, cancel).await
        }
        Err(error) => {
            tracing::warn!(%error, "attested control handshake failed; connection dropped")
        }
    }
}

/// Serves one connection with `access`: read a request, answer it (or refuse
/// it), until the peer closes, misbehaves, stays idle too long, or `cancel`
/// fires.
pub async fn serve_connection<S>(
    stream: S,
    access: Access,
    handle: &SupervisorHandle,
    cancel: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    serve_frames(Connection::new(stream), access, handle, cancel).await
}

/// The request loop of one connection.
async fn serve_frames<S>(
    mut conn: Connection<S>,
    access: Access,
    handle: &SupervisorHandle,
    cancel: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout(CONTROL_IDLE_TIMEOUT, conn.read_frame(MAX_REQUEST_FRAME)) => read,
            _ = cancel.cancelled() => return,
        };
        let (response, close) = match read {
            Err(_) => {
                tracing::debug!("control connection idle for {CONTROL_IDLE_TIMEOUT:?}: closed");
                return;
            }
            Ok(Ok(None)) => return,
            Ok(Ok(Some(payload))) => match Request::parse(&payload) {
                Ok(Parsed::Known(request)) if !access.permits(&request) => {
                    tracing::warn!(
                        "control request {} refused: the connection is {access}",
                        request.tag()
                    );
                    (access.refusal(&request), false)
                }
                Ok(parsed) => (handle.answer(parsed).await, false),
                Err(err) => (Response::error(err.to_string()), false),
            },
            Ok(Err(ConnectionError::Frame(err))) => {
                tracing::warn!("control request refused: {err}");
                (Response::error(format!("request refused: {err}")), true)
            }
            Ok(Err(err)) => {
                tracing::debug!("control connection: {err}");
                return;
            }
        };
        let payload = encode_response(&response);
        match tokio::time::timeout(
            CONTROL_WRITE_TIMEOUT,
            conn.write_frame(&payload, MAX_RESPONSE_FRAME),
        )
        .await
        {
            Ok(Ok(())) if !close => {}
            Ok(Ok(())) => return,
            Ok(Err(err)) => {
                tracing::debug!("cannot send control response: {err}");
                return;
            }
            Err(_) => {
                tracing::debug!("control client did not read its response in time");
                return;
            }
        }
    }
}

/// Serialises a response; one that cannot be sent whole becomes an error.
fn encode_response(response: &Response) -> Vec<u8> {
    match serde_json::to_vec(response) {
        Ok(bytes) if bytes.len() <= MAX_RESPONSE_FRAME => bytes,
        Ok(bytes) => error_bytes(&format!(
            "response of {} bytes exceeds the limit of {MAX_RESPONSE_FRAME} bytes",
            bytes.len()
        )),
        Err(err) => error_bytes(&format!("cannot encode response: {err}")),
    }
}

fn error_bytes(message: &str) -> Vec<u8> {
    // Serialising a plain string cannot fail; the fallback keeps it total.
    serde_json::to_vec(&Response::error(message))
        .unwrap_or_else(|_| br#"{"Error":{"message":"internal error"}}"#.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os_error(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn errors_of_the_listening_socket_are_permanent_the_rest_pass() {
        for code in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK, libc::EFAULT] {
            assert!(is_permanent(&os_error(code)), "{code}");
            let mut backoff = AcceptBackoff::default();
            assert_eq!(
                backoff.failed(&os_error(code), Instant::now()),
                AcceptRetry::GiveUp
            );
        }
        for code in [
            libc::ECONNABORTED,
            libc::EINTR,
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::EPROTO,
            libc::EPERM,
        ] {
            assert!(!is_permanent(&os_error(code)), "{code}");
        }
        assert!(!is_permanent(&io::Error::other("no errno")));
    }

    #[test]
    fn pauses_double_up_to_the_maximum_and_restart_after_a_success() {
        let mut backoff = AcceptBackoff::default();
        let now = Instant::now();
        let pauses: Vec<Duration> = (0..9)
            .map(|_| match backoff.failed(&os_error(libc::EMFILE), now) {
                AcceptRetry::After { pause, .. } => pause,
                AcceptRetry::GiveUp => panic!("EMFILE passes"),
            })
            .collect();
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(
            pauses,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000].map(ms)
        );
        assert_eq!(backoff.failures(), 9);
        backoff.succeeded();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(
            backoff.failed(&os_error(libc::EMFILE), now),
            AcceptRetry::After {
                pause: ACCEPT_RETRY_FIRST,
                warn: false
            }
        );
    }

    #[test]
    fn one_warning_per_interval() {
        let mut backoff = AcceptBackoff::default();
        let start = Instant::now();
        let mut warned = |at: Duration| match backoff.failed(&os_error(libc::ENFILE), start + at) {
            AcceptRetry::After { warn, .. } => warn,
            AcceptRetry::GiveUp => panic!("ENFILE passes"),
        };
        assert!(warned(Duration::ZERO));
        assert!(!warned(Duration::from_secs(1)));
        assert!(!warned(ACCEPT_WARNING_INTERVAL - Duration::from_millis(1)));
        assert!(warned(ACCEPT_WARNING_INTERVAL));
        assert!(!warned(ACCEPT_WARNING_INTERVAL + Duration::from_secs(5)));
    }
}
