//! Where a redirected TCP connection was going: `SO_ORIGINAL_DST` (IPv4) and
//! `IP6T_SO_ORIGINAL_DST` (IPv6).
//!
//! An iptables `REDIRECT` (or `DNAT`) rule rewrites the destination of a
//! connection to a local listener; the kernel's connection tracking keeps
//! the original one, which these socket options read back. A connection
//! that was not redirected has no such entry (or the tracking module is not
//! loaded), and is reported as [`Destination::Direct`] with the address the
//! client actually connected to.

use std::io;
use std::net::SocketAddr;

use transport::Stream;

/// The destination of an accepted TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The connection was redirected here; this is where it was going.
    Redirected(SocketAddr),
    /// The client connected to this local address itself.
    Direct(SocketAddr),
}

impl Destination {
    /// The address, whichever way the connection came.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Destination::Redirected(addr) | Destination::Direct(addr) => *addr,
        }
    }
}

/// Reads the original destination of an accepted TCP connection.
///
/// Fails with `InvalidInput` for a stream that is not TCP.
pub fn original_dst(stream: &Stream) -> io::Result<Destination> {
    let sock = socket2::SockRef::from(stream);
    let local = sock.local_addr()?.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a TCP connection: the original destination exists only for redirected TCP",
        )
    })?;
    let is_v4 = match local {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().is_some(),
    };
    let lookup = if is_v4 {
        sock.original_dst_v4()
    } else {
        sock.original_dst_v6()
    };
    match lookup {
        Ok(orig) => match orig.as_socket() {
            Some(orig) if !same_endpoint(orig, local) => Ok(Destination::Redirected(orig)),
            _ => Ok(Destination::Direct(local)),
        },
        // No conntrack entry, or no conntrack at all: nobody redirected it.
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOPROTOOPT)) => {
            Ok(Destination::Direct(local))
        }
        Err(err) => Err(err),
    }
}

fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_direct_connection_reports_its_local_address() {
        let listener = transport::Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().clone();
        let (client, accepted) = tokio::join!(transport::connect(&addr), listener.accept());
        let _client = client.unwrap();
        let (accepted, _) = accepted.unwrap();
        let transport::Address::Tcp { port, .. } = addr else {
            unreachable!()
        };
        assert_eq!(
            original_dst(&accepted).unwrap(),
            Destination::Direct(SocketAddr::from(([127, 0, 0, 1], port)))
        );
    }

    #[tokio::test]
    async fn a_unix_stream_has_no_original_destination() {
        let dir = tempfile::tempdir().unwrap();
        let addr: transport::Address = format!("unix:{}/s", dir.path().display()).parse().unwrap();
        let listener = transport::Listener::bind(&addr).await.unwrap();
        let (client, accepted) = tokio::join!(transport::connect(&addr), listener.accept());
        let _client = client.unwrap();
        let err = original_dst(&accepted.unwrap().0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
