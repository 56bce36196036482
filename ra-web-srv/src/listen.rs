//! The accept side every listener of the server shares (the HTTPS API, the
//! HTTP redirect, each TLS ingress): [`transport::serve()`] with the
//! server's limits, and the TLS handshake within its time limit.

use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use transport::{Handler, Listener, Peer, ServeConfig, Stream, WhenFull};

use crate::defs::{SHUTDOWN_GRACE, TLS_HANDSHAKE_TIMEOUT};

/// The accept loop of every listener (the HTTPS API, the HTTP redirect,
/// each TLS ingress): at most `max_connections` at once (more wait in the
/// backlog), open connections cut [`SHUTDOWN_GRACE`] after shutdown.
pub(crate) fn listener_config(max_connections: usize) -> ServeConfig {
    ServeConfig {
        max_connections,
        when_full: WhenFull::Wait,
        grace: SHUTDOWN_GRACE,
        ..ServeConfig::default()
    }
}

/// Runs [`transport::serve()`] until `shutdown` and logs a listener that
/// failed for good.
pub(crate) async fn serve_listener(
    listener: Listener,
    config: &ServeConfig,
    shutdown: CancellationToken,
    handler: impl Handler,
) {
    if let Err(error) = transport::serve(listener, config, shutdown, handler).await {
        tracing::error!(listener = %error.listener, error = %error.source, "the listener failed");
    }
}

/// The server side of a TLS handshake, within [`TLS_HANDSHAKE_TIMEOUT`];
/// `None` (logged at debug) when it fails or times out.
pub(crate) async fn tls_handshake(
    acceptor: &TlsAcceptor,
    stream: Stream,
    peer: &Peer,
) -> Option<tokio_rustls::server::TlsStream<Stream>> {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}
