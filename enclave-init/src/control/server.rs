//! The control server: accepts connections on every configured address,
//! at most [`MAX_CONTROL_CONNECTIONS`] at once per listener, and answers
//! framed requests through the supervisor. A connection that sends an
//! oversized frame, garbage, or nothing for [`CONTROL_IDLE_TIMEOUT`] loses
//! the connection; init and the other clients carry on.
//!
//! Each connection carries an [`Access`] level, that of its listener to
//! begin with; a request the level does not permit is answered with a
//! refusal and never reaches the supervisor (see [`crate::control::access`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transport::Listener;

use crate::control::access::Access;
use crate::control::cmd::{Parsed, Request, Response};
use crate::control::connection::{Connection, ConnectionError};
use crate::defs::*;
use crate::supervisor::SupervisorHandle;

/// Accepts and serves connections on `listener`, each with `access`, until
/// `cancel` fires. Connection tasks are spawned on `tracker` so shutdown can
/// wait for them.
pub async fn serve(
    listener: Listener,
    access: Access,
    handle: SupervisorHandle,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONTROL_CONNECTIONS));
    let local = listener.local_addr().clone();
    tracing::info!("control socket listening on {local} ({access} access)");
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
                tracing::debug!(%peer, listener = %local, "control connection");
                let (handle, cancel) = (handle.clone(), cancel.clone());
                tracker.spawn(async move {
                    serve_connection(stream, access, &handle, &cancel).await;
                    drop(permit);
                });
            }
            Err(err) => {
                tracing::error!(listener = %local, %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
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
    let mut conn = Connection::new(stream);
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
