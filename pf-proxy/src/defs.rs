//! Limits, time-outs, default ports and wire constants of the proxies.

use std::time::Duration;

/// First bytes of the original-destination header (`"PF"`).
pub const HEADER_MAGIC: [u8; 2] = *b"PF";

/// Version of the original-destination header this build writes and reads.
pub const HEADER_VERSION: u8 = 1;

/// Address-family byte of an IPv4 destination in the header.
pub const HEADER_FAMILY_V4: u8 = 4;

/// Address-family byte of an IPv6 destination in the header.
pub const HEADER_FAMILY_V6: u8 = 6;

/// Bytes before the address: magic (2), version (1), family (1), port (2).
pub const HEADER_PREFIX_LEN: usize = 6;

/// Longest header: the prefix and an IPv6 address.
pub const HEADER_MAX_LEN: usize = HEADER_PREFIX_LEN + 16;

/// How long the header of a transparent connection may take to arrive.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting to the target of a connection may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection with no byte moving in either direction for this long is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Connections served at once by one proxy; more are accepted and closed at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Time open connections get to finish after SIGTERM before they are cut.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Largest copy buffer of one direction of one connection: with two
/// directions this bounds the proxy's own memory per connection.
pub const COPY_BUFFER_SIZE: usize = 256 * 1024;

/// First copy buffer of one direction of one connection; it doubles while
/// reads fill it, up to the largest.
pub const INITIAL_COPY_BUFFER: usize = 16 * 1024;

/// Longest wait for a hybrid-vsock peer to take the last bytes written before
/// the socket is closed (closing earlier could lose them in the VMM).
pub const HVSOCK_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Poll interval while waiting for a hybrid-vsock socket to drain.
pub const HVSOCK_DRAIN_POLL: Duration = Duration::from_millis(5);

/// Longest DNS message (DNS over TCP carries a 16-bit length).
pub const DNS_MAX_MESSAGE: usize = 65_535;

/// Shortest DNS message: the fixed header.
pub const DNS_HEADER_LEN: usize = 12;

/// UDP payload size the forwarder receives (EDNS0 allows up to 65535 bytes).
pub const DNS_UDP_RECV_BUFFER: usize = 65_535;

/// How long one DNS query may take end to end.
pub const DNS_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// DNS queries in flight at once in one forwarder; more are dropped (the
/// client retries, as it would after a lost UDP datagram).
pub const DNS_MAX_IN_FLIGHT: usize = 256;

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// Where the host's resolver is read from when none is configured.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Shortest time a resolved policy host name is kept, whatever its TTL says
/// (a TTL of 0 would otherwise mean one lookup per connection).
pub const POLICY_MIN_TTL: Duration = Duration::from_secs(5);

/// Longest time a resolved policy host name is kept, whatever its TTL says.
pub const POLICY_MAX_TTL: Duration = Duration::from_secs(3600);

/// How long a failed policy host-name lookup is remembered before it is retried.
pub const POLICY_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// Longest policy file read.
pub const POLICY_MAX_FILE: u64 = 1024 * 1024;

/// Longest host name (RFC 1035).
pub const DNS_MAX_NAME: usize = 253;

/// Most addresses kept for one resolved policy host name.
pub const POLICY_MAX_ADDRS_PER_HOST: usize = 64;

/// Shortest interval between two copies of a repeated warning (connection
/// limit reached, DNS queries dropped); the ones in between are counted.
pub const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes one direction of a connection moves through its copy buffer
/// before it switches to `splice(2)` (when both sockets allow it): short
/// exchanges cost no pipe, bulk transfers skip the copies to and from user
/// space.
pub const SPLICE_AFTER: u64 = 1024 * 1024;

/// Capacity asked for the pipe of a spliced direction (the kernel may give
/// less; it is one direction's in-flight bytes inside the proxy).
pub const SPLICE_PIPE_SIZE: usize = 256 * 1024;
