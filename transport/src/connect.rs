//! Connecting to an [`Address`] with bounded retries and exponential back-off.
//!
//! Only failures that can go away by waiting are retried: nothing listening
//! yet (refused, socket file not there yet, hybrid-vsock guest port not open
//! yet), resets and time-outs. Anything else fails at once.

use std::io;
use std::time::Duration;

use tokio::net::{TcpStream, UnixStream};
use tokio_vsock::{VsockAddr, VsockStream};

use crate::address::Address;
use crate::backoff::next_backoff;
use crate::defs::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_ATTEMPTS, DEFAULT_INITIAL_BACKOFF,
    DEFAULT_MAX_BACKOFF, HVSOCK_HANDSHAKE_TIMEOUT,
};
use crate::error::Error;
use crate::hvsock;
use crate::stream::Stream;

/// How hard [`connect_with`] tries.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Attempts in all (at least one is made).
    pub attempts: u32,
    /// Pause after the first failure; doubled after each further one.
    pub initial_backoff: Duration,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
    /// Time-out of one attempt, hybrid-vsock handshake included.
    pub attempt_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            attempts: DEFAULT_CONNECT_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
        }
    }
}

impl ConnectOptions {
    /// A single attempt, no retry.
    pub fn once() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }
}

/// Connects to `addr` with the default retry policy.
pub async fn connect(addr: &Address) -> Result<Stream, Error> {
    connect_with(addr, &ConnectOptions::default()).await
}

/// Connects to `addr`, retrying transient failures as `options` says.
pub async fn connect_with(addr: &Address, options: &ConnectOptions) -> Result<Stream, Error> {
    let attempts = options.attempts.max(1);
    let mut backoff = options.initial_backoff;
    let mut attempt = 1;
    loop {
        let result = match tokio::time::timeout(options.attempt_timeout, connect_once(addr)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {:?}", options.attempt_timeout),
            )),
        };
        match result {
            Ok(stream) => return Ok(stream),
            Err(err) if attempt < attempts && is_retryable(&err) => {
                tracing::debug!(%addr, attempt, %err, ?backoff, "connect failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = next_backoff(backoff, options.max_backoff);
                attempt += 1;
            }
            Err(source) => {
                return Err(Error::Connect {
                    addr: addr.clone(),
                    attempts: attempt,
                    source,
                });
            }
        }
    }
}

async fn connect_once(addr: &Address) -> io::Result<Stream> {
    match addr {
        Address::Tcp { host, port } => TcpStream::connect((host.as_str(), *port))
            .await
            .map(Stream::from_tcp),
        Address::Unix(path) => UnixStream::connect(path).await.map(Stream::from_unix),
        Address::HybridVsock { path, port } => {
            let mut stream = UnixStream::connect(path).await?;
            tokio::time::timeout(
                HVSOCK_HANDSHAKE_TIMEOUT,
                hvsock::client_handshake(&mut stream, *port),
            )
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer to CONNECT {port} within {HVSOCK_HANDSHAKE_TIMEOUT:?}"),
                )
            })??;
            Ok(Stream::from_hybrid_vsock(stream))
        }
        Address::Vsock { cid, port } => VsockStream::connect(VsockAddr::new(*cid, *port))
            .await
            .map(Stream::from_vsock),
    }
}

fn is_retryable(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::NotFound
            | io::ErrorKind::TimedOut
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}
