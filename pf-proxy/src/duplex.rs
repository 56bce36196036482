//! Bidirectional copy between two streams, passing half-close through.
//!
//! Each direction reads into its own buffer and writes it out before
//! reading again, so a slow reader slows its writer down (backpressure).
//! The buffer starts at [`INITIAL_COPY_BUFFER`] bytes and doubles each time a
//! read fills it, up to the maximum given (by default
//! [`COPY_BUFFER_SIZE`](crate::defs::COPY_BUFFER_SIZE)): quiet connections
//! cost little, bulk transfers make few system calls, and no connection
//! ever holds more than two maximum-size buffers. A direction that moved
//! [`SPLICE_AFTER`] bytes between two sockets that allow it goes on with
//! [`splice`](crate::splice) instead, without copying.
//!
//! When one side ends its stream (EOF), the other side's write half is shut
//! down, so the peer sees the end of stream while the opposite direction
//! keeps flowing. Hybrid vsock is the exception: there a write-side shutdown
//! makes vhost-device-vsock drop the connection with the data in flight, so
//! [`transport::Stream`] only flushes, the connection stays open until both
//! directions are done, and before it is closed [`duplex`] waits (bounded by
//! [`HVSOCK_DRAIN_TIMEOUT`]) until the VMM
//! has taken every byte written.
//!
//! The copy ends with an error when either side fails, and with
//! [`DuplexError::Idle`] when no byte moved either way for the idle time-out.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use transport::Stream;

use crate::defs::{HVSOCK_DRAIN_POLL, HVSOCK_DRAIN_TIMEOUT, INITIAL_COPY_BUFFER, SPLICE_AFTER};
use crate::splice::Pipe;

/// Bytes moved by a finished [`duplex`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transferred {
    /// From the first stream to the second.
    pub a_to_b: u64,
    /// From the second stream to the first.
    pub b_to_a: u64,
}

/// Why a [`duplex`] copy ended early.
#[derive(Debug, thiserror::Error)]
pub enum DuplexError {
    /// No byte moved in either direction for the idle time-out.
    #[error("idle for {0:?}, closed")]
    Idle(Duration),
    /// Reading from or writing to one side failed.
    #[error("{direction}: {source}")]
    Io {
        /// Which way the failing copy went (`"a->b"` or `"b->a"`).
        direction: &'static str,
        /// Why.
        source: io::Error,
    },
}

/// One direction of the copy: a buffer and how far it got.
struct Half {
    buf: Box<[u8]>,
    max: usize,
    splice_ok: bool,
    pipe: Option<Pipe>,
    pos: usize,
    cap: usize,
    read_done: bool,
    done: bool,
    need_flush: bool,
    grow: bool,
    amount: u64,
}

impl Half {
    fn new(max: usize, splice_ok: bool) -> Self {
        Self {
            buf: vec![0u8; INITIAL_COPY_BUFFER.min(max).max(1)].into_boxed_slice(),
            max,
            splice_ok,
            pipe: None,
            pos: 0,
            cap: 0,
            read_done: false,
            done: false,
            need_flush: false,
            grow: false,
            amount: 0,
        }
    }

    /// Moves bytes from `reader` to `writer` until it would block or the
    /// direction is finished; sets `active` when a byte moved.
    fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut Stream,
        writer: &mut Stream,
        active: &mut bool,
    ) -> Poll<io::Result<()>> {
        loop {
            if let Some(pipe) = &mut self.pipe {
                return pipe.poll_splice(
                    cx,
                    reader,
                    writer,
                    &mut self.read_done,
                    &mut self.amount,
                    active,
                );
            }
            if self.splice_ok && self.amount >= SPLICE_AFTER && self.pos == self.cap {
                // A bulk transfer: go on without copying (see the splice module).
                match Pipe::new() {
                    Ok(pipe) => {
                        self.pipe = Some(pipe);
                        self.buf = Box::default();
                        continue;
                    }
                    Err(err) => {
                        tracing::debug!(%err, "no pipe for splice; copying on");
                        self.splice_ok = false;
                    }
                }
            }
            if self.grow && self.pos == self.cap {
                // A read filled the buffer: a bulk transfer; double it, up to the maximum.
                let size = (self.buf.len() * 2).min(self.max);
                self.buf = vec![0u8; size].into_boxed_slice();
                self.grow = false;
            }
            if self.pos == self.cap && !self.read_done {
                let mut read_buf = ReadBuf::new(&mut self.buf);
                match Pin::new(&mut *reader).poll_read(cx, &mut read_buf) {
                    Poll::Ready(Ok(())) => {
                        let n = read_buf.filled().len();
                        if n == 0 {
                            self.read_done = true;
                        } else {
                            self.pos = 0;
                            self.cap = n;
                            *active = true;
                            if n == self.buf.len() && n < self.max {
                                self.grow = true;
                            }
                        }
                    }
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Pending => {
                        if self.need_flush {
                            ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                            self.need_flush = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            while self.pos < self.cap {
                let n =
                    ready!(Pin::new(&mut *writer).poll_write(cx, &self.buf[self.pos..self.cap]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
                self.amount += n as u64;
                self.need_flush = true;
                *active = true;
            }
            if self.read_done {
                // On hybrid vsock this only flushes (see the module docs).
                ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// How [`duplex`] copies.
#[derive(Debug, Clone, Copy)]
pub struct DuplexOptions {
    /// Largest copy buffer of each direction.
    pub buffer_size: usize,
    /// Close when no byte moved either way for this long.
    pub idle_timeout: Duration,
    /// Switch bulk transfers between TCP/Unix sockets to `splice(2)`.
    pub splice: bool,
}

/// Copies `a` to `b` and `b` to `a` until both directions reached end of
/// stream, passing each end of stream on as a half-close where the
/// transport supports it.
pub async fn duplex(
    a: &mut Stream,
    b: &mut Stream,
    options: DuplexOptions,
) -> Result<Transferred, DuplexError> {
    let DuplexOptions {
        buffer_size,
        idle_timeout,
        splice,
    } = options;
    let splice_ok = splice && a.supports_readiness() && b.supports_readiness();
    let mut a_to_b = Half::new(buffer_size, splice_ok);
    let mut b_to_a = Half::new(buffer_size, splice_ok);
    let mut last_active = Instant::now();
    let sleep = tokio::time::sleep_until(idle_deadline(last_active, idle_timeout));
    tokio::pin!(sleep);
    let result = poll_fn(|cx| {
        let mut active = false;
        if !a_to_b.done {
            match a_to_b.poll_copy(cx, a, b, &mut active) {
                Poll::Ready(Ok(())) => a_to_b.done = true,
                Poll::Ready(Err(source)) => {
                    return Poll::Ready(Err(DuplexError::Io {
                        direction: "a->b",
                        source,
                    }));
                }
                Poll::Pending => {}
            }
        }
        if !b_to_a.done {
            match b_to_a.poll_copy(cx, b, a, &mut active) {
                Poll::Ready(Ok(())) => b_to_a.done = true,
                Poll::Ready(Err(source)) => {
                    return Poll::Ready(Err(DuplexError::Io {
                        direction: "b->a",
                        source,
                    }));
                }
                Poll::Pending => {}
            }
        }
        if a_to_b.done && b_to_a.done {
            return Poll::Ready(Ok(()));
        }
        if active {
            last_active = Instant::now();
        }
        // The timer is re-armed only when it fires, not on every byte.
        while sleep.as_mut().poll(cx).is_ready() {
            let deadline = idle_deadline(last_active, idle_timeout);
            if deadline <= Instant::now() {
                return Poll::Ready(Err(DuplexError::Idle(idle_timeout)));
            }
            sleep.as_mut().reset(deadline);
        }
        Poll::Pending
    })
    .await;
    for stream in [&*a, &*b] {
        if !stream.supports_half_close() {
            drain(stream).await;
        }
    }
    result.map(|()| Transferred {
        a_to_b: a_to_b.amount,
        b_to_a: b_to_a.amount,
    })
}

/// When a connection last active at `last` becomes idle; a time-out too
/// large to add (`Duration::MAX`) means about never, not a panic.
fn idle_deadline(last: Instant, idle_timeout: Duration) -> Instant {
    last.checked_add(idle_timeout)
        .unwrap_or_else(|| last + NEVER)
}

/// "Never" for time-outs too large to add to an instant (thirty years).
const NEVER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Waits until the peer of a Unix-socket-based stream has read every byte
/// written to it, or [`HVSOCK_DRAIN_TIMEOUT`] passed.
pub async fn drain(stream: &Stream) {
    let deadline = Instant::now() + HVSOCK_DRAIN_TIMEOUT;
    loop {
        match unsent_bytes(stream) {
            Ok(0) => return,
            Ok(left) if Instant::now() >= deadline => {
                tracing::warn!(
                    left,
                    "peer did not take the last bytes in time; closing anyway"
                );
                return;
            }
            Ok(_) => tokio::time::sleep(HVSOCK_DRAIN_POLL).await,
            Err(err) => {
                tracing::debug!(%err, "cannot read the send queue; closing without waiting");
                return;
            }
        }
    }
}

/// Bytes written to the socket that its peer has not read yet (`SIOCOUTQ`).
#[allow(unsafe_code)]
fn unsent_bytes(stream: &Stream) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SIOCOUTQ has the value of TIOCOUTQ on Linux.
    // SAFETY: SIOCOUTQ writes one c_int through the pointer, which points to
    // a live, properly aligned c_int; the descriptor is owned by `stream`,
    // which outlives the call.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(queued).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn options(buffer_size: usize, idle_timeout: Duration, splice: bool) -> DuplexOptions {
        DuplexOptions {
            buffer_size,
            idle_timeout,
            splice,
        }
    }

    #[tokio::test]
    async fn an_unaddable_idle_timeout_means_never() {
        let (a, mut peer_a) = tokio::net::UnixStream::pair().unwrap();
        let (b, mut peer_b) = tokio::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (Stream::from_unix(a), Stream::from_unix(b));
        peer_a.write_all(b"ping").await.unwrap();
        peer_a.shutdown().await.unwrap();
        peer_b.shutdown().await.unwrap();
        let moved = duplex(&mut a, &mut b, options(1024, Duration::MAX, false))
            .await
            .unwrap();
        assert_eq!(moved.a_to_b, 4);
        let mut got = Vec::new();
        peer_b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping");
    }

    #[tokio::test]
    async fn bulk_transfers_switch_to_splice_byte_exact() {
        let (src, mut feeder) = tokio::net::UnixStream::pair().unwrap();
        let (dst, mut sink) = tokio::net::UnixStream::pair().unwrap();
        let (mut src, mut dst) = (Stream::from_unix(src), Stream::from_unix(dst));
        let data: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        tokio::spawn(async move {
            feeder.write_all(&sent).await.unwrap();
            feeder.shutdown().await.unwrap();
        });
        let drained = tokio::spawn(async move {
            let mut got = Vec::new();
            sink.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut half = Half::new(64 * 1024, true);
        let mut active = false;
        poll_fn(|cx| half.poll_copy(cx, &mut src, &mut dst, &mut active))
            .await
            .unwrap();
        assert!(half.pipe.is_some(), "never switched to splice");
        assert_eq!(half.amount, data.len() as u64);
        drop(dst);
        assert!(drained.await.unwrap() == data, "spliced bytes differ");
    }

    #[tokio::test]
    async fn drain_waits_until_the_peer_has_read_everything() {
        let (ours, mut peer) = tokio::net::UnixStream::pair().unwrap();
        let mut ours = Stream::from_hybrid_vsock(ours);
        ours.write_all(&[7u8; 3000]).await.unwrap();
        // (counted with the kernel's per-buffer overhead)
        assert!(unsent_bytes(&ours).unwrap() >= 3000);
        let reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut got = vec![0u8; 3000];
            peer.read_exact(&mut got).await.unwrap();
            peer
        });
        drain(&ours).await;
        assert_eq!(unsent_bytes(&ours).unwrap(), 0);
        assert!(reader.is_finished() || reader.await.is_ok());
    }

    #[tokio::test]
    async fn copies_byte_exact_with_buffers_growing_up_to_the_maximum() {
        let (a, mut client) = tokio::net::UnixStream::pair().unwrap();
        let (b, mut server) = tokio::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (Stream::from_unix(a), Stream::from_unix(b));
        let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            server.shutdown().await.unwrap();
            got
        });
        let moved = duplex(
            &mut a,
            &mut b,
            options(64 * 1024, Duration::from_secs(30), false),
        )
        .await
        .unwrap();
        assert_eq!(moved.a_to_b, data.len() as u64);
        assert_eq!(moved.b_to_a, 0);
        assert!(reader.await.unwrap() == data);
        drop(writer.await.unwrap());

        // One direction on its own: a bulk transfer grows the buffer, never past the maximum.
        let (src, mut feeder) = tokio::net::UnixStream::pair().unwrap();
        let (dst, mut sink) = tokio::net::UnixStream::pair().unwrap();
        let (mut src, mut dst) = (Stream::from_unix(src), Stream::from_unix(dst));
        tokio::spawn(async move {
            feeder.write_all(&[1u8; 2 << 20]).await.unwrap();
            feeder.shutdown().await.unwrap();
        });
        let drained = tokio::spawn(async move {
            let mut got = Vec::new();
            sink.read_to_end(&mut got).await.unwrap();
            got.len()
        });
        let mut half = Half::new(64 * 1024, false);
        assert_eq!(half.buf.len(), INITIAL_COPY_BUFFER);
        let mut active = false;
        poll_fn(|cx| half.poll_copy(cx, &mut src, &mut dst, &mut active))
            .await
            .unwrap();
        drop(dst);
        assert_eq!(drained.await.unwrap(), 2 << 20);
        assert!(half.buf.len() > INITIAL_COPY_BUFFER, "never grew");
        assert!(half.buf.len() <= 64 * 1024, "grew past the maximum");
    }
}
