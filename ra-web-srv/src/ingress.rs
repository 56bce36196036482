//! TLS ingress for the enclave's applications.
//!
//! An application in the enclave (say an inference server on
//! `127.0.0.1:10070`, plain HTTP) is published to the host through the
//! vsock proxy. To keep the host from reading its traffic, ra-web-srv
//! terminates TLS for it **inside the enclave**, with the same TLS key and
//! certificate as its own attested HTTPS endpoint, and relays the plaintext
//! bytes to the application on loopback. The one `/tls_doc/` document that
//! binds that key therefore covers every ingress: `ra-verify --endpoint`
//! checks that an endpoint presents the attested key.
//!
//! - [`spec`]: the `LISTEN=UPSTREAM[,name=NAME]...` entries of
//!   `--tls-ingress` and `--tls-ingress-file`, and the checks at start
//!   (duplicate listeners, loops, upstreams off loopback).
//! - [`relay`]: the byte relay between the TLS session and the upstream
//!   (idle time-out, a clean answer when the upstream is down).
//!
//! The listeners use the server's accept loop and TLS handshake
//! ([`crate::listen`]), with a per-ingress connection limit.

pub mod relay;
pub mod spec;

use std::sync::Arc;

use serde::Serialize;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use transport::{Address, ConnectOptions, Listener};

use crate::defs::UPSTREAM_CONNECT_TIMEOUT;
use crate::listen::{listener_config, serve_listener, tls_handshake};

pub use spec::{IngressSpec, SpecError};

/// What `/health` shows of one ingress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct IngressInfo {
    /// The entry's name.
    pub name: String,
    /// The bound listen address (with the port the kernel chose for port 0).
    pub listen: String,
    /// Where the plaintext goes.
    pub upstream: String,
}

/// One ingress with its bound listener.
pub struct Bound {
    spec: IngressSpec,
    listener: Listener,
}

impl Bound {
    /// Binds the listener of `spec`.
    pub async fn bind(spec: IngressSpec) -> Result<Self, transport::Error> {
        let listener = Listener::bind(&spec.listen).await?;
        Ok(Self { spec, listener })
    }

    /// What `/health` shows of it.
    pub fn info(&self) -> IngressInfo {
        IngressInfo {
            name: self.spec.name.clone(),
            listen: self.listener.local_addr().to_string(),
            upstream: self.spec.upstream.to_string(),
        }
    }
}

/// Accepts TLS connections on `bound` until `shutdown` and relays each one
/// to the upstream; at shutdown, open connections get [`crate::defs::SHUTDOWN_GRACE`]
/// to finish and are then closed.
pub async fn serve(bound: Bound, acceptor: TlsAcceptor, shutdown: CancellationToken) {
    let Bound { spec, listener } = bound;
    let spec = Arc::new(spec);
    tracing::info!(name = %spec.name, listen = %listener.local_addr(), upstream = %spec.upstream, "TLS ingress");
    let config = listener_config(spec.max_connections);
    serve_listener(listener, &config, shutdown, move |stream, peer| {
        let spec = Arc::clone(&spec);
        let acceptor = acceptor.clone();
        async move { connection(stream, &peer, &spec, acceptor).await }
    })
    .await;
}

/// One client: TLS handshake, connect the upstream, relay.
async fn connection(
    stream: transport::Stream,
    peer: &transport::Peer,
    spec: &IngressSpec,
    acceptor: TlsAcceptor,
) {
    let Some(tls) = tls_handshake(&acceptor, stream, peer).await else {
        return;
    };
    let options = ConnectOptions {
        attempt_timeout: UPSTREAM_CONNECT_TIMEOUT,
        ..ConnectOptions::once()
    };
    let upstream = match transport::connect_with(&spec.upstream, &options).await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::warn!(name = %spec.name, upstream = %spec.upstream, %peer, %error, "the upstream cannot be reached; answering the client and closing");
            relay::upstream_unavailable(tls, &spec.name).await;
            return;
        }
    };
    match relay::relay(tls, upstream, spec.idle_timeout).await {
        Ok(moved) => tracing::debug!(
            name = %spec.name,
            %peer,
            to_upstream = moved.to_upstream,
            to_client = moved.to_client,
            "connection done"
        ),
        Err(error) => tracing::debug!(name = %spec.name, %peer, %error, "connection ended"),
    }
}

/// Whether two addresses can name the same listening socket: the same Unix
/// path or vsock port, or the same TCP port on the same host or where one
/// side is a wildcard (`0.0.0.0`, `::`) or `localhost` against a loopback
/// address.
pub fn same_socket(a: &Address, b: &Address) -> bool {
    match (a, b) {
        (Address::Tcp { host: ha, port: pa }, Address::Tcp { host: hb, port: pb }) => {
            *pa != 0 && pa == pb && spec::same_host(ha, hb)
        }
        (Address::Unix(pa), Address::Unix(pb)) => pa == pb,
        (Address::Vsock { port: pa, .. }, Address::Vsock { port: pb, .. }) => *pa != 0 && pa == pb,
        (
            Address::HybridVsock { path: pa, port: na },
            Address::HybridVsock { path: pb, port: nb },
        ) => pa == pb && na == nb,
        _ => false,
    }
}
