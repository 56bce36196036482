//! The byte relay between a client's TLS session and the upstream.
//!
//! Bytes are copied both ways as they come (HTTP/1.1, server-sent events,
//! websockets and any other protocol pass), an end of stream on one side is
//! passed on as a half-close (TLS `close_notify` towards the client, a TCP
//! FIN towards the upstream), and the connection is closed when no byte
//! moved either way for the idle time-out.
//!
//! When the upstream cannot be reached, [`upstream_unavailable`] answers a
//! client whose first bytes are an HTTP/1.x request line with
//! `502 Bad Gateway` (`Connection: close`), and closes any other client's
//! session with a `close_notify`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use crate::defs::{UNAVAILABLE_DRAIN_LIMIT, UNAVAILABLE_FIRST_BYTES_WAIT};

/// Why a relay ended early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No byte moved either way for the idle time-out.
    #[error("idle for {0:?}, closed")]
    Idle(Duration),
    /// Reading from or writing to one side failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Bytes moved by a finished relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// From the client to the upstream.
    pub to_upstream: u64,
    /// From the upstream to the client.
    pub to_client: u64,
}

/// Copies `client` to `upstream` and back until both directions ended,
/// or until nothing moved for `idle`.
pub async fn relay<C, U>(client: C, upstream: U, idle: Duration) -> Result<Moved, RelayError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let clock = Clock::new();
    let mut client = Watched {
        inner: client,
        clock: clock.clone(),
    };
    let mut upstream = Watched {
        inner: upstream,
        clock: clock.clone(),
    };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        let deadline = clock.last().checked_add(idle).unwrap_or_else(Instant::now);
        tokio::select! {
            result = &mut copy => {
                let (to_upstream, to_client) = result?;
                return Ok(Moved { to_upstream, to_client });
            }
            () = tokio::time::sleep_until(deadline) => {
                if clock.last().elapsed() >= idle {
                    return Err(RelayError::Idle(idle));
                }
            }
        }
    }
}

/// Answers a client whose upstream cannot be reached: `502` to an HTTP/1.x
/// request, and in any case a TLS `close_notify`; reads (and drops) what
/// the client still sends, within limits, so the answer is not lost to a
/// reset.
pub async fn upstream_unavailable<S>(mut client: S, name: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut first = [0u8; 16];
    let n = match tokio::time::timeout(UNAVAILABLE_FIRST_BYTES_WAIT, client.read(&mut first)).await
    {
        Ok(Ok(n)) => n,
        Ok(Err(_)) | Err(_) => 0,
    };
    if looks_like_http(&first[..n]) {
        let body = format!("the application behind TLS ingress {name} is not reachable\n");
        let answer = format!(
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        if client.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
    if client.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut total = 0usize;
        while total < UNAVAILABLE_DRAIN_LIMIT {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(UNAVAILABLE_FIRST_BYTES_WAIT, drain).await;
}

/// Whether `bytes` start with an HTTP/1.x request line's method and space.
pub fn looks_like_http(bytes: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"HEAD ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    METHODS.iter().any(|method| bytes.starts_with(method))
}

/// When a byte last moved, shared by both sides of a relay.
#[derive(Clone)]
struct Clock {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Clock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        let ms = self.last_ms.load(Ordering::Relaxed);
        self.start
            .checked_add(Duration::from_millis(ms))
            .unwrap_or(self.start)
    }
}

/// A stream that notes on `clock` every read or write that moved bytes.
struct Watched<S> {
    inner: S,
    clock: Clock,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_lines_are_told_from_other_bytes() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"POST /v1/chat"));
        assert!(!looks_like_http(b"GET"));
        assert!(!looks_like_http(b"get / HTTP/1.1"));
        assert!(!looks_like_http(b"PRI * HTTP/2.0"));
        assert!(!looks_like_http(b"\x16\x03\x01"));
        assert!(!looks_like_http(b""));
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_and_half_closes_pass_on() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (upstream, mut upstream_peer) = tokio::io::duplex(64);
        let relay = tokio::spawn(relay(client, upstream, Duration::from_secs(3600)));
        client_peer.write_all(b"request").await.unwrap();
        client_peer.shutdown().await.unwrap();
        let mut got = Vec::new();
        upstream_peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        upstream_peer.write_all(b"answer").await.unwrap();
        upstream_peer.shutdown().await.unwrap();
        let mut got = Vec::new();
        client_peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"answer");
        let moved = relay.await.unwrap().unwrap();
        assert_eq!(
            moved,
            Moved {
                to_upstream: 7,
                to_client: 6
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_after_the_idle_time_out() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (upstream, _upstream_peer) = tokio::io::duplex(64);
        let relay = tokio::spawn(relay(client, upstream, Duration::from_secs(60)));
        // Activity keeps it open (the clock is paused: time moves only when all tasks wait).
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(40)).await;
            client_peer.write_all(b"x").await.unwrap();
        }
        assert!(!relay.is_finished());
        let error = relay.await.unwrap().unwrap_err();
        assert!(matches!(error, RelayError::Idle(_)), "{error}");
    }

    #[tokio::test]
    async fn an_http_client_of_a_missing_upstream_gets_502_others_a_close() {
        let (server, mut client) = tokio::io::duplex(1024);
        let answer = tokio::spawn(upstream_unavailable(server, "app"));
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = String::new();
        client.read_to_string(&mut got).await.unwrap();
        assert!(got.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{got}");
        assert!(
            got.contains("Connection: close") && got.ends_with("ingress app is not reachable\n")
        );
        drop(client);
        answer.await.unwrap();

        let (server, mut client) = tokio::io::duplex(1024);
        let answer = tokio::spawn(upstream_unavailable(server, "app"));
        client.write_all(b"\x00binary hello").await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty());
        drop(client);
        answer.await.unwrap();
    }
}
