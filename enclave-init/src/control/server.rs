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
//! The accept loop is [`transport::serve()`]: a failed accept is retried
//! after a pause that doubles from 100 ms to 1 s, with at most one warning
//! a minute; an error that says the listening socket itself is unusable
//! (EBADF, EINVAL, ENOTSOCK, EFAULT) is logged once and ends that
//! listener's server. Init, its services and its other listeners carry on.
//! A listener at its limit stops accepting until a connection ends (new
//! clients wait in the backlog).

use std::sync::Arc;
use std::time::Duration;

use attested_channel::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_util::sync::CancellationToken;
use transport::{Listener, Peer, ServeConfig, Stream, WhenFull};

use crate::control::access::Access;
use crate::control::cmd::{Parsed, Request, Response};
use crate::control::connection::{Connection, ConnectionError};
use crate::defs::*;
use crate::supervisor::SupervisorHandle;

/// At most one warning about failing accepts (or a full listener) this often.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// Time open control connections get to end after `cancel` (they end at
/// their next read; this covers a request being answered).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Accepts and serves connections on `listener`, each with `access` (or
/// more, for a client authenticated on `channel`), until `cancel` fires or
/// the listener fails for good (EBADF, EINVAL, ENOTSOCK: logged once).
/// Other accept errors are retried with a growing pause. Returns once its
/// connections are done (or cut 2 s after `cancel`).
pub async fn serve(
    listener: Listener,
    access: Access,
    channel: Option<Arc<ServerConfig>>,
    handle: SupervisorHandle,
    cancel: CancellationToken,
) {
    let local = listener.local_addr().clone();
    let attested = if channel.is_some() {
        "; full access for keys allowed to manage, over the attested channel"
    } else {
        ""
    };
    tracing::info!("control socket listening on {local} ({access} access{attested})");
    let config = ServeConfig {
        max_connections: MAX_CONTROL_CONNECTIONS,
        when_full: WhenFull::Wait,
        grace: SHUTDOWN_GRACE,
        abort_wait: Duration::ZERO,
        warn_interval: ACCEPT_WARNING_INTERVAL,
    };
    let connection = {
        let (local, cancel) = (local.clone(), cancel.clone());
        move |stream: Stream, peer: Peer| {
            tracing::debug!(%peer, listener = %local, "control connection");
            let (handle, cancel, channel) = (handle.clone(), cancel.clone(), channel.clone());
            async move {
                match channel {
                    Some(channel) => serve_either(stream, access, &channel, &handle, &cancel).await,
                    None => serve_connection(stream, access, &handle, &cancel).await,
                }
            }
        }
    };
    if let Err(err) = transport::serve(listener, &config, cancel, connection).await {
        tracing::error!(
            listener = %local, err = %err.source,
            "control listener failed for good: no more connections on it (init carries on)"
        );
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
