//! [`Stream`]: one connected stream type for TCP, Unix, vsock and hybrid vsock.
//!
//! Callers read and write without caring what is underneath. The one
//! difference that matters is half-close: on hybrid vsock a write-side
//! shutdown would tear the connection down (vhost-device-vsock drops the
//! connection and the data in flight), so there [`AsyncWrite::poll_shutdown`]
//! only flushes and [`Stream::supports_half_close`] says false; protocols that
//! need an end-of-stream marker over such a link must send one in-band.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream, tcp, unix};
use tokio_vsock::VsockStream;

/// A connected byte stream of any supported kind.
#[derive(Debug)]
pub struct Stream {
    inner: Inner,
    half_close: bool,
}

#[derive(Debug)]
enum Inner {
    Tcp(TcpStream),
    Unix(UnixStream),
    Vsock(VsockStream),
}

impl Stream {
    /// Wraps a TCP stream (Nagle's algorithm off: the protocols here are
    /// request/response and latency-sensitive).
    pub fn from_tcp(stream: TcpStream) -> Self {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
        Self {
            inner: Inner::Tcp(stream),
            half_close: true,
        }
    }

    /// Wraps a Unix stream.
    pub fn from_unix(stream: UnixStream) -> Self {
        Self {
            inner: Inner::Unix(stream),
            half_close: true,
        }
    }

    /// Wraps the Unix stream of a hybrid-vsock connection, whose write side
    /// must never be shut down (see the module documentation).
    pub fn from_hybrid_vsock(stream: UnixStream) -> Self {
        Self {
            inner: Inner::Unix(stream),
            half_close: false,
        }
    }

    /// Wraps an AF_VSOCK stream.
    pub fn from_vsock(stream: VsockStream) -> Self {
        Self {
            inner: Inner::Vsock(stream),
            half_close: true,
        }
    }

    /// Whether shutting down the write side sends an end of stream to the
    /// peer while the read side keeps working.
    pub fn supports_half_close(&self) -> bool {
        self.half_close
    }

    /// Whether [`Stream::poll_read_ready`], [`Stream::poll_write_ready`] and
    /// [`Stream::try_io`] work: for TCP and Unix (hybrid vsock included),
    /// not for AF_VSOCK streams.
    pub fn supports_readiness(&self) -> bool {
        !matches!(self.inner, Inner::Vsock(_))
    }

    /// Polls until the socket may be readable, for system calls made on its
    /// descriptor directly (with [`Stream::try_io`]). `Unsupported` on vsock.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.inner {
            Inner::Tcp(s) => s.poll_read_ready(cx),
            Inner::Unix(s) => s.poll_read_ready(cx),
            Inner::Vsock(_) => Poll::Ready(Err(no_readiness())),
        }
    }

    /// Polls until the socket may be writable (see [`Stream::poll_read_ready`]).
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.inner {
            Inner::Tcp(s) => s.poll_write_ready(cx),
            Inner::Unix(s) => s.poll_write_ready(cx),
            Inner::Vsock(_) => Poll::Ready(Err(no_readiness())),
        }
    }

    /// Runs `f`, a system call on the socket's descriptor; when it fails with
    /// `WouldBlock` the readiness is cleared so that the next poll waits.
    /// `Unsupported` on vsock.
    pub fn try_io<R>(
        &self,
        interest: tokio::io::Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        match &self.inner {
            Inner::Tcp(s) => s.try_io(interest, f),
            Inner::Unix(s) => s.try_io(interest, f),
            Inner::Vsock(_) => Err(no_readiness()),
        }
    }

    /// Splits the stream into halves that can move to different tasks.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self.inner {
            Inner::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Inner::Unix(s) => {
                let (r, w) = s.into_split();
                let w = if self.half_close {
                    WriteHalf::Unix(w)
                } else {
                    WriteHalf::HybridVsock(Some(w))
                };
                (ReadHalf::Unix(r), w)
            }
            Inner::Vsock(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Vsock(r), WriteHalf::Vsock(w))
            }
        }
    }
}

/// The socket underneath, for socket options the wrappers do not cover
/// (`SO_ORIGINAL_DST`, `getsockname`, ...).
impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            Inner::Tcp(s) => s.as_fd(),
            Inner::Unix(s) => s.as_fd(),
            Inner::Vsock(s) => s.as_fd(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Vsock(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Vsock(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Vsock(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Tcp(s) => s.is_write_vectored(),
            Inner::Unix(s) => s.is_write_vectored(),
            Inner::Vsock(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => Pin::new(s).poll_flush(cx),
            Inner::Unix(s) => Pin::new(s).poll_flush(cx),
            Inner::Vsock(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.half_close {
            return Pin::new(this).poll_flush(cx);
        }
        match &mut this.inner {
            Inner::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Vsock(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The reading half of a [`Stream`].
#[derive(Debug)]
pub enum ReadHalf {
    /// Of a TCP stream.
    Tcp(tcp::OwnedReadHalf),
    /// Of a Unix or hybrid-vsock stream.
    Unix(unix::OwnedReadHalf),
    /// Of a vsock stream.
    Vsock(tokio_vsock::OwnedReadHalf),
}

/// The writing half of a [`Stream`].
///
/// Dropping it shuts the write side down, except on hybrid vsock, where the
/// connection stays open until the reading half is dropped too.
#[derive(Debug)]
pub enum WriteHalf {
    /// Of a TCP stream.
    Tcp(tcp::OwnedWriteHalf),
    /// Of a Unix stream.
    Unix(unix::OwnedWriteHalf),
    /// Of a hybrid-vsock stream (never shut down; `None` only while dropping).
    HybridVsock(Option<unix::OwnedWriteHalf>),
    /// Of a vsock stream.
    Vsock(tokio_vsock::OwnedWriteHalf),
}

impl WriteHalf {
    /// Whether shutting this half down sends an end of stream to the peer.
    pub fn supports_half_close(&self) -> bool {
        !matches!(self, WriteHalf::HybridVsock(_))
    }
}

impl Drop for WriteHalf {
    fn drop(&mut self) {
        if let WriteHalf::HybridVsock(half) = self
            && let Some(half) = half.take()
        {
            // Leave the socket open for the reading half: tokio would
            // otherwise shut the write side down, which tears the
            // hybrid-vsock connection down.
            half.forget();
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ReadHalf::Unix(s) => Pin::new(s).poll_read(cx, buf),
            ReadHalf::Vsock(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

fn no_readiness() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "readiness is not available on vsock streams",
    )
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "write half already released")
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            WriteHalf::Unix(s) => Pin::new(s).poll_write(cx, buf),
            WriteHalf::HybridVsock(Some(s)) => Pin::new(s).poll_write(cx, buf),
            WriteHalf::HybridVsock(None) => Poll::Ready(Err(gone())),
            WriteHalf::Vsock(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(s) => Pin::new(s).poll_flush(cx),
            WriteHalf::Unix(s) => Pin::new(s).poll_flush(cx),
            WriteHalf::HybridVsock(Some(s)) => Pin::new(s).poll_flush(cx),
            WriteHalf::HybridVsock(None) => Poll::Ready(Err(gone())),
            WriteHalf::Vsock(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            WriteHalf::Unix(s) => Pin::new(s).poll_shutdown(cx),
            WriteHalf::HybridVsock(Some(s)) => Pin::new(s).poll_flush(cx),
            WriteHalf::HybridVsock(None) => Poll::Ready(Err(gone())),
            WriteHalf::Vsock(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
