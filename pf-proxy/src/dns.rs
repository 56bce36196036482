//! DNS over vsock: the enclave's resolver on `127.0.0.1:53`, forwarded to
//! the host's resolver.
//!
//! ```text
//! enclave app --udp--> dns-to-vsock 127.0.0.1:53 --vsock 3:8053--> vsock-to-dns --udp/tcp--> host resolver
//!             --tcp--> (same listener, DNS over TCP passed through as bytes)
//! ```
//!
//! On the vsock, messages are framed as in DNS over TCP (RFC 1035 4.2.2):
//! a two-byte big-endian length, then the message. The enclave side opens
//! one stream per UDP query; a TCP client's connection is passed through
//! as it is, since it already speaks that framing. The host side answers
//! each framed query in order, asking the resolver over UDP and again over
//! TCP when the answer is truncated, and answers SERVFAIL when the resolver
//! fails, so the client does not wait for nothing.
//!
//! An answer bigger than the UDP client accepts (512 bytes, or its EDNS0
//! size) is replaced by an empty one with the TC flag, so the client asks
//! again over TCP.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transport::{Address, ConnectOptions, Listener, Peer, Stream};

use crate::defs::{DNS_MAX_IN_FLIGHT, DNS_QUERY_TIMEOUT, DNS_UDP_RECV_BUFFER, WARN_INTERVAL};
use crate::dns_stream::{read_message, write_message};
use crate::dns_wire;
use crate::resolver;
use crate::server::{Limits, ServeError, Throttle, serve};

/// Enclave side: answers UDP queries on `socket` by asking `target` over a
/// stream, until `shutdown` is cancelled.
pub async fn serve_udp(
    socket: UdpSocket,
    target: Address,
    connect_timeout: std::time::Duration,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let socket = Arc::new(socket);
    let target = Arc::new(target);
    let in_flight = Arc::new(Semaphore::new(DNS_MAX_IN_FLIGHT));
    let tracker = TaskTracker::new();
    let mut buf = vec![0u8; DNS_UDP_RECV_BUFFER];
    let mut busy_warnings = Throttle::new(WARN_INTERVAL);
    tracing::info!(listen = %socket.local_addr()?, %target, "forwarding DNS over a stream");
    loop {
        let (n, client) = tokio::select! {
            () = shutdown.cancelled() => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(err) => {
                    // ICMP errors of earlier replies surface here; they are not fatal.
                    tracing::debug!(%err, "UDP receive failed");
                    continue;
                }
            },
        };
        let query = &buf[..n];
        if let Err(err) = dns_wire::check_message(query) {
            tracing::debug!(%client, %err, "ignoring a datagram that is not a DNS query");
            continue;
        }
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            if let Some(suppressed) = busy_warnings.allow() {
                tracing::warn!(%client, limit = DNS_MAX_IN_FLIGHT, suppressed, "too many DNS queries in flight; dropping one (the client will retry)");
            }
            continue;
        };
        let query = query.to_vec();
        let (socket, target) = (Arc::clone(&socket), Arc::clone(&target));
        tracker.spawn(async move {
            let answer = match tokio::time::timeout(
                DNS_QUERY_TIMEOUT,
                ask_over_stream(&target, &query, connect_timeout),
            )
            .await
            {
                Ok(Ok(answer)) => fit_for_udp(&query, answer),
                Ok(Err(err)) => {
                    tracing::warn!(%client, %target, %err, "DNS query failed");
                    dns_wire::empty_reply(&query, false, 2).ok()
                }
                Err(_) => {
                    tracing::warn!(%client, %target, "DNS query timed out");
                    None
                }
            };
            if let Some(answer) = answer
                && let Err(err) = socket.send_to(&answer, client).await
            {
                tracing::debug!(%client, %err, "cannot send the DNS answer");
            }
            drop(permit);
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(DNS_QUERY_TIMEOUT, tracker.wait()).await;
    Ok(())
}

/// The answer if the UDP client accepts its size, else an empty truncated one.
fn fit_for_udp(query: &[u8], answer: Vec<u8>) -> Option<Vec<u8>> {
    if answer.len() <= dns_wire::udp_payload_limit(query) {
        Some(answer)
    } else {
        dns_wire::empty_reply(query, true, 0).ok()
    }
}

async fn ask_over_stream(
    target: &Address,
    query: &[u8],
    connect_timeout: std::time::Duration,
) -> Result<Vec<u8>, ResolverHop> {
    let options = ConnectOptions {
        attempt_timeout: connect_timeout,
        ..ConnectOptions::once()
    };
    let mut stream = transport::connect_with(target, &options).await?;
    write_message(&mut stream, query).await?;
    let answer = read_message(&mut stream)
        .await?
        .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
    if dns_wire::message_id(&answer) != dns_wire::message_id(query) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "answer id does not match the query",
        )
        .into());
    }
    Ok(answer)
}

/// Why a query sent over the stream got no answer.
#[derive(Debug, thiserror::Error)]
enum ResolverHop {
    #[error(transparent)]
    Connect(#[from] transport::Error),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Host side: answers the framed queries of every connection on `listener`
/// by asking `upstream`, until `shutdown` is cancelled. A connection's
/// queries are answered one at a time, in order, so a peer cannot have more
/// than one of them in flight.
pub async fn serve_stream(
    listener: Listener,
    upstream: SocketAddr,
    limits: &Limits,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let idle = limits.idle_timeout;
    tracing::info!(%upstream, "answering DNS over a stream from the host's resolver");
    serve(listener, limits, shutdown, move |stream, peer| {
        answer_connection(stream, peer, upstream, idle)
    })
    .await
}

async fn answer_connection(
    mut stream: Stream,
    peer: Peer,
    upstream: SocketAddr,
    idle: std::time::Duration,
) {
    loop {
        let query = match tokio::time::timeout(idle, read_message(&mut stream)).await {
            Ok(Ok(Some(query))) => query,
            Ok(Ok(None)) => return,
            Ok(Err(err)) => {
                tracing::warn!(%peer, %err, "bad DNS stream; closing it");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "DNS stream idle; closing it");
                return;
            }
        };
        let answer = match resolver::exchange(upstream, &query).await {
            Ok(answer) => answer,
            Err(err) => {
                tracing::warn!(%peer, %err, "resolver failed; answering SERVFAIL");
                match dns_wire::empty_reply(&query, false, 2) {
                    Ok(reply) => reply,
                    Err(err) => {
                        tracing::warn!(%peer, %err, "malformed DNS query; closing the stream");
                        return;
                    }
                }
            }
        };
        if let Err(err) = write_message(&mut stream, &answer).await {
            tracing::debug!(%peer, %err, "cannot send the DNS answer");
            return;
        }
    }
}

/// Why a DNS forwarder could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// Binding the UDP socket failed.
    #[error("cannot listen on udp:{addr}: {source}")]
    BindUdp {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Binding a stream listener failed.
    #[error(transparent)]
    Bind(#[from] transport::Error),
    /// A proxy failed.
    #[error(transparent)]
    Proxy(#[from] crate::proxy::ProxyError),
    /// A listener failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The UDP socket failed.
    #[error("udp:{addr}: {source}")]
    Udp {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// Enclave side: answers UDP on `udp`, and passes DNS over TCP on `tcp`
/// through as bytes, both to `target`, until `shutdown` is cancelled.
pub async fn run_enclave_side(
    udp: SocketAddr,
    tcp: Option<Address>,
    target: Address,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<(), DnsError> {
    let socket = UdpSocket::bind(udp)
        .await
        .map_err(|source| DnsError::BindUdp { addr: udp, source })?;
    let tcp_proxy = match tcp {
        Some(listen) => Some(Listener::bind(&listen).await?),
        None => None,
    };
    let udp_task = serve_udp(
        socket,
        target.clone(),
        limits.connect_timeout,
        shutdown.clone(),
    );
    match tcp_proxy {
        Some(listener) => {
            let config = crate::proxy::ProxyConfig {
                listen: listener.local_addr().clone(),
                mode: crate::proxy::Mode::Forward { target },
                limits,
            };
            let (udp_result, tcp_result) =
                tokio::join!(udp_task, crate::proxy::run_on(listener, config, shutdown));
            udp_result.map_err(|source| DnsError::Udp { addr: udp, source })?;
            tcp_result?;
        }
        None => udp_task
            .await
            .map_err(|source| DnsError::Udp { addr: udp, source })?,
    }
    Ok(())
}

/// Host side: binds `listen` and answers from `upstream` until `shutdown`
/// is cancelled.
pub async fn run_host_side(
    listen: Address,
    upstream: SocketAddr,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<(), DnsError> {
    let listener = Listener::bind(&listen).await?;
    serve_stream(listener, upstream, &limits, shutdown).await?;
    Ok(())
}
