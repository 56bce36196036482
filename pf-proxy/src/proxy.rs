//! The proxy modes: what happens to one accepted connection.
//!
//! | mode | binary | accepts on | connects to |
//! | --- | --- | --- | --- |
//! | [`Mode::Forward`] | `vsock-to-ip`, `ip-to-vsock` | any address | one fixed target |
//! | [`Mode::TransparentOut`] | `ip-to-vsock-transparent` | TCP, fed by an iptables redirect | the fixed vsock target, with the original destination sent first in a [`header`] |
//! | [`Mode::TransparentIn`] | `vsock-to-ip-transparent` | vsock | the destination named in the header, if the [`Policy`] allows it |
//! | [`Mode::PortToVsock`] | `transparent-port-to-vsock` | TCP, fed by an iptables redirect | the vsock target with the port replaced by the original destination port |
//!
//! Every failure (target down, bad header, denied destination) closes that
//! one connection and is logged with the peer and the destination.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use transport::{Address, ConnectOptions, Listener, Peer, Stream};

use crate::defs::HEADER_PREFIX_LEN;
use crate::duplex::{DuplexOptions, duplex};
use crate::header::{self, HeaderError};
use crate::original_dst::{Destination, original_dst};
use crate::policy::{Decision, Policy};
use crate::server::{Limits, ServeError, serve};

/// What a proxy does with each connection.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Connect every connection to one fixed target.
    Forward {
        /// Where to connect.
        target: Address,
    },
    /// Enclave side of transparent egress: recover the original destination
    /// of a redirected TCP connection and send it ahead of the stream.
    TransparentOut {
        /// The host-side `vsock-to-ip-transparent`.
        target: Address,
    },
    /// Host side of transparent egress: read the header, check the policy,
    /// connect to the destination.
    TransparentIn {
        /// What may be reached.
        policy: Arc<Policy>,
    },
    /// Host side of transparent ingress: connect to the enclave on the port
    /// the client originally connected to.
    PortToVsock {
        /// The enclave; its port is replaced by the original destination port
        /// (`unix:PATH` becomes `unix:PATH_PORT`).
        target: Address,
    },
}

/// A proxy: where it listens, what it does, within which limits.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where to accept connections.
    pub listen: Address,
    /// What to do with them.
    pub mode: Mode,
    /// Limits and time-outs.
    pub limits: Limits,
}

/// Why a proxy could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Binding the listening address failed.
    #[error(transparent)]
    Bind(#[from] transport::Error),
    /// The listening socket failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Why one connection was closed early.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("{0}")]
    Connect(#[from] transport::Error),
    #[error("no original destination: {0}")]
    OriginalDst(std::io::Error),
    #[error("connection made to the proxy itself ({0}), not redirected to it; closing")]
    NotRedirected(SocketAddr),
    #[error("reading the header: {0}")]
    HeaderIo(std::io::Error),
    #[error("bad header: {0}")]
    Header(#[from] HeaderError),
    #[error("no header within {0:?}")]
    HeaderTimeout(std::time::Duration),
    #[error("writing the header: {0}")]
    HeaderWrite(std::io::Error),
    #[error("egress to {0} denied by policy")]
    Denied(SocketAddr),
    #[error("{0}")]
    Duplex(#[from] crate::duplex::DuplexError),
}

/// Binds `config.listen` and serves until `shutdown` is cancelled.
pub async fn run(config: ProxyConfig, shutdown: CancellationToken) -> Result<(), ProxyError> {
    let listener = Listener::bind(&config.listen).await?;
    run_on(listener, config, shutdown).await
}

/// Serves on a listener already bound (tests bind port 0 and read the port).
pub async fn run_on(
    listener: Listener,
    config: ProxyConfig,
    shutdown: CancellationToken,
) -> Result<(), ProxyError> {
    let shared = Arc::new(config);
    let limits = shared.limits.clone();
    serve(listener, &limits, shutdown, move |stream, peer| {
        let shared = Arc::clone(&shared);
        async move { handle(stream, peer, &shared).await }
    })
    .await?;
    Ok(())
}

async fn handle(stream: Stream, peer: Peer, config: &ProxyConfig) {
    match proxy_one(stream, &peer, config).await {
        Ok(()) => {}
        Err(ConnError::Denied(dst)) => {
            tracing::warn!(%peer, destination = %dst, "egress denied by policy; connection closed");
        }
        Err(err @ ConnError::Duplex(_)) => tracing::debug!(%peer, %err, "connection ended"),
        // A health probe (init's TCP check) connects directly; so does a
        // client iptables did not redirect. Neither is a fault of the proxy.
        Err(err @ ConnError::NotRedirected(_)) => tracing::info!(%peer, %err),
        Err(err) => tracing::warn!(%peer, %err, "connection closed"),
    }
}

async fn proxy_one(mut stream: Stream, peer: &Peer, config: &ProxyConfig) -> Result<(), ConnError> {
    let limits = &config.limits;
    let (mut upstream, dst) = match &config.mode {
        Mode::Forward { target } => (connect(target, limits).await?, target.to_string()),
        Mode::TransparentOut { target } => {
            let dst = redirected_dst(&stream)?;
            let mut upstream = connect(target, limits).await?;
            let (buf, len) = header::encode(&dst);
            upstream
                .write_all(&buf[..len])
                .await
                .map_err(ConnError::HeaderWrite)?;
            (upstream, dst.to_string())
        }
        Mode::TransparentIn { policy } => {
            let dst = tokio::time::timeout(limits.header_timeout, read_header(&mut stream))
                .await
                .map_err(|_| ConnError::HeaderTimeout(limits.header_timeout))??;
            if policy.check(dst).await == Decision::Deny {
                return Err(ConnError::Denied(dst));
            }
            let target = Address::Tcp {
                host: dst.ip().to_string(),
                port: dst.port(),
            };
            (connect(&target, limits).await?, dst.to_string())
        }
        Mode::PortToVsock { target } => {
            let target = with_port(target, redirected_dst(&stream)?.port());
            (connect(&target, limits).await?, target.to_string())
        }
    };
    tracing::debug!(%peer, destination = %dst, "connected");
    let options = DuplexOptions {
        buffer_size: limits.buffer_size,
        idle_timeout: limits.idle_timeout,
        splice: limits.splice,
    };
    let moved = duplex(&mut stream, &mut upstream, options).await?;
    tracing::debug!(%peer, destination = %dst, sent = moved.a_to_b, received = moved.b_to_a, "connection done");
    Ok(())
}

/// The original destination of a redirected connection; a connection made
/// to the proxy's own port directly has none and is refused, so that the
/// proxy cannot be used to reach its own port on the other side.
fn redirected_dst(stream: &Stream) -> Result<SocketAddr, ConnError> {
    match original_dst(stream).map_err(ConnError::OriginalDst)? {
        Destination::Redirected(dst) => Ok(dst),
        Destination::Direct(local) => Err(ConnError::NotRedirected(local)),
    }
}

async fn connect(target: &Address, limits: &Limits) -> Result<Stream, transport::Error> {
    let options = ConnectOptions {
        attempt_timeout: limits.connect_timeout,
        ..ConnectOptions::once()
    };
    transport::connect_with(target, &options).await
}

/// Reads exactly one header from the stream, nothing after it.
async fn read_header(stream: &mut Stream) -> Result<SocketAddr, ConnError> {
    let mut buf = [0u8; crate::defs::HEADER_MAX_LEN];
    stream
        .read_exact(&mut buf[..HEADER_PREFIX_LEN])
        .await
        .map_err(ConnError::HeaderIo)?;
    let mut prefix = [0u8; HEADER_PREFIX_LEN];
    prefix.copy_from_slice(&buf[..HEADER_PREFIX_LEN]);
    let total = HEADER_PREFIX_LEN + header::address_len(&prefix)?;
    stream
        .read_exact(&mut buf[HEADER_PREFIX_LEN..total])
        .await
        .map_err(ConnError::HeaderIo)?;
    let (dst, _) = header::decode(&buf[..total])?;
    Ok(dst)
}

/// `target` with its port replaced by `port`; a `unix:PATH` target becomes
/// `unix:PATH_PORT`, as hybrid-vsock listeners name their sockets.
pub fn with_port(target: &Address, port: u16) -> Address {
    match target {
        Address::Vsock { cid, .. } => Address::Vsock {
            cid: *cid,
            port: port.into(),
        },
        Address::HybridVsock { path, .. } => Address::HybridVsock {
            path: path.clone(),
            port: port.into(),
        },
        Address::Tcp { host, .. } => Address::Tcp {
            host: host.clone(),
            port,
        },
        Address::Unix(path) => Address::Unix(Address::hvsock_listen_path(path, port.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_port_replaces_the_port_of_every_form() {
        for (target, expected) in [
            ("vsock:16:1", "vsock:16:443"),
            ("hvsock:/run/vm.vsock:1", "hvsock:/run/vm.vsock:443"),
            ("tcp:10.0.0.1:1", "tcp:10.0.0.1:443"),
            ("unix:/tmp/enclave", "unix:/tmp/enclave_443"),
        ] {
            assert_eq!(
                with_port(&target.parse().unwrap(), 443).to_string(),
                expected
            );
        }
    }
}
