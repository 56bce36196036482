//! Limits, time-outs and wire constants of the transport layer.

use std::time::Duration;

/// The vsock CID that means "any": listen on every CID of this machine.
pub const VSOCK_CID_ANY: u32 = u32::MAX;

/// Longest hybrid-vsock handshake line accepted (`CONNECT 4294967295\n` is 19
/// bytes, `OK 4294967295\n` 14): anything longer is a protocol violation.
pub const HVSOCK_MAX_LINE: usize = 32;

/// How long a hybrid-vsock handshake may take before it is abandoned.
pub const HVSOCK_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection attempts made by [`crate::connect()`] before it gives up.
pub const DEFAULT_CONNECT_ATTEMPTS: u32 = 5;

/// Pause after the first failed connection attempt; doubled after each one.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Longest pause between two connection attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Time-out of one connection attempt, handshake included.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause of the accept loop after a resource error (EMFILE, ENOBUFS...).
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Longest pause of the accept loop after repeated resource errors.
pub const ACCEPT_ERROR_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Backlog of listening sockets.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Shortest interval between two copies of a repeated accept-loop warning
/// (accept failing, connection limit reached); the ones in between are counted.
pub const DEFAULT_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Connections [`crate::serve()`] serves at once unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Time open connections get to finish after shutdown unless told otherwise.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
