//! Asking the host's DNS resolver: one message exchange, and A/AAAA lookups
//! with their TTL.
//!
//! Used by the host side of DNS over vsock (to forward the enclave's
//! queries) and by the egress policy (to resolve allowed host names). The
//! resolver is the first `nameserver` of `/etc/resolv.conf` unless one is
//! configured. Queries go over UDP; an answer with the TC flag is asked
//! again over TCP, as RFC 7766 says.

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use transport::{Address, ConnectOptions};

use crate::defs::{DNS_PORT, DNS_QUERY_TIMEOUT, DNS_UDP_RECV_BUFFER, RESOLV_CONF};
use crate::dns_stream::{read_message, write_message};
use crate::dns_wire::{self, TYPE_A, TYPE_AAAA, WireError};

/// Why a DNS exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    /// `/etc/resolv.conf` could not be read.
    #[error("cannot read {path}: {source}")]
    ResolvConf {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// `/etc/resolv.conf` names no usable name server.
    #[error("{0} names no nameserver")]
    NoNameserver(String),
    /// Sending or receiving failed.
    #[error("DNS exchange with {server} failed: {source}")]
    Io {
        /// The resolver.
        server: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The TCP retry could not connect.
    #[error(transparent)]
    Connect(#[from] transport::Error),
    /// No answer in time.
    #[error("no answer from {server} within {timeout:?}")]
    Timeout {
        /// The resolver.
        server: SocketAddr,
        /// The time-out.
        timeout: Duration,
    },
    /// The answer or the name is malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// The name server `/etc/resolv.conf` names first.
pub fn system_resolver() -> Result<SocketAddr, ResolverError> {
    let text =
        std::fs::read_to_string(RESOLV_CONF).map_err(|source| ResolverError::ResolvConf {
            path: RESOLV_CONF.to_owned(),
            source,
        })?;
    parse_resolv_conf(&text).ok_or_else(|| ResolverError::NoNameserver(RESOLV_CONF.to_owned()))
}

/// The first usable `nameserver` line of a resolv.conf text.
pub fn parse_resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| {
            let addr = rest.trim();
            // A link-local IPv6 server may carry a zone (fe80::1%eth0): skip it.
            addr.parse::<IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .next()
}

/// Sends `query` to `server` and returns its answer (UDP, TCP if truncated).
pub async fn exchange(server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, ResolverError> {
    dns_wire::check_message(query)?;
    let timeout = DNS_QUERY_TIMEOUT;
    let exchanged = tokio::time::timeout(timeout, async {
        let answer = exchange_udp(server, query).await?;
        if dns_wire::is_truncated(&answer) {
            exchange_tcp(server, query).await
        } else {
            Ok(answer)
        }
    })
    .await;
    exchanged.map_err(|_| ResolverError::Timeout { server, timeout })?
}

async fn exchange_udp(server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, ResolverError> {
    let io_err = |source| ResolverError::Io { server, source };
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind).await.map_err(io_err)?;
    socket.connect(server).await.map_err(io_err)?;
    socket.send(query).await.map_err(io_err)?;
    let id = dns_wire::message_id(query);
    let mut buf = vec![0u8; DNS_UDP_RECV_BUFFER];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io_err)?;
        let answer = &buf[..n];
        // A stray datagram (late answer to someone else) is not ours: wait on.
        if dns_wire::check_message(answer).is_ok() && dns_wire::message_id(answer) == id {
            return Ok(answer.to_vec());
        }
        tracing::debug!(%server, len = n, "ignoring a datagram that does not answer the query");
    }
}

async fn exchange_tcp(server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, ResolverError> {
    let io_err = |source| ResolverError::Io { server, source };
    let addr = Address::Tcp {
        host: server.ip().to_string(),
        port: server.port(),
    };
    let mut stream = transport::connect_with(&addr, &ConnectOptions::once()).await?;
    write_message(&mut stream, query).await.map_err(io_err)?;
    read_message(&mut stream)
        .await
        .map_err(io_err)?
        .ok_or_else(|| io_err(io::ErrorKind::UnexpectedEof.into()))
}

/// The addresses of a name and how long they may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// A and AAAA records found (empty when the name does not exist).
    pub addrs: Vec<IpAddr>,
    /// The smallest TTL among them (`None` when there is none).
    pub ttl: Option<Duration>,
}

/// Looks up the A and AAAA records of `name` at `server`.
pub async fn lookup(server: SocketAddr, name: &str) -> Result<Lookup, ResolverError> {
    let (v4, v6) = tokio::join!(
        lookup_type(server, name, TYPE_A),
        lookup_type(server, name, TYPE_AAAA)
    );
    let mut records = v4?;
    records.extend(v6?);
    Ok(Lookup {
        ttl: records
            .iter()
            .map(|(_, ttl)| Duration::from_secs((*ttl).into()))
            .min(),
        addrs: records.into_iter().map(|(ip, _)| ip).collect(),
    })
}

async fn lookup_type(
    server: SocketAddr,
    name: &str,
    qtype: u16,
) -> Result<Vec<(IpAddr, u32)>, ResolverError> {
    let id = query_id();
    let query = dns_wire::build_query(id, name, qtype)?;
    let answer = exchange(server, &query).await?;
    Ok(dns_wire::parse_addresses(&answer, id)?.records)
}

/// A query id hard to guess from outside (it guards against spoofed answers).
fn query_id() -> u16 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Truncation intended: 16 bits of a keyed hash.
    RandomState::new().hash_one(n) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_first_usable_nameserver() {
        let text = "# comment\nsearch example\nnameserver fe80::1%eth0\nnameserver 127.0.0.53\nnameserver 8.8.8.8\n";
        assert_eq!(
            parse_resolv_conf(text),
            Some("127.0.0.53:53".parse().unwrap())
        );
        assert_eq!(parse_resolv_conf("options edns0\n"), None);
        assert_eq!(
            parse_resolv_conf("nameserver ::1"),
            Some("[::1]:53".parse().unwrap())
        );
    }
}
