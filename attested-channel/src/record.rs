//! The encrypted stream after the handshake.
//!
//! ```text
//! record = length: u16 big-endian (TAG_LEN..=MAX_RECORD_LEN)
//!          ciphertext: one Noise transport message (AES-256-GCM, 16-byte tag)
//! ```
//!
//! Each direction numbers its records 0, 1, 2, ... and Noise uses that
//! number as the AEAD nonce, so a record that was tampered with, replayed,
//! dropped or moved fails its tag check: the reader then fails with an
//! [`IntegrityError`] (an `InvalidData` I/O error) and refuses every later
//! read. A record with an empty plaintext is the end of the stream (sent by
//! `shutdown`); a connection that closes without it is reported as
//! truncated, never as a clean end.
//!
//! The writer gathers records until its buffer is full or it is flushed,
//! so small writes (a frame header, then its body) go out in one system
//! call; callers must flush, as with any buffered writer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::defs::{
    LENGTH_PREFIX_LEN, MAX_RECORD_LEN, MAX_RECORD_PLAINTEXT, MAX_WRITE_BATCH, READ_BATCH, TAG_LEN,
};

/// Why a record was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IntegrityError {
    /// The tag did not verify.
    #[error(
        "integrity check failed on record {record}: the data was tampered with, replayed or reordered on the way; the session is over"
    )]
    BadRecord {
        /// The record's number in its direction.
        record: u64,
    },
    /// A length prefix no record can have.
    #[error(
        "record {record} announces {len} bytes, less than its {TAG_LEN}-byte tag: the session is over"
    )]
    BadLength {
        /// The record's number.
        record: u64,
        /// The length announced.
        len: usize,
    },
    /// The connection closed without the end record.
    #[error(
        "the connection closed after record {record} without the channel's end record: the stream was cut short"
    )]
    Truncated {
        /// Records read.
        record: u64,
    },
    /// Every record number was used (2^64 - 1 records).
    #[error("record numbers are used up")]
    Exhausted,
}

impl From<IntegrityError> for io::Error {
    fn from(error: IntegrityError) -> Self {
        let kind = match error {
            IntegrityError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

/// The integrity error inside an I/O error, if it is one.
pub fn integrity_error(error: &io::Error) -> Option<&IntegrityError> {
    error.get_ref().and_then(|inner| inner.downcast_ref())
}

/// The session keys, shared by the two directions.
pub(crate) type Keys = Arc<StatelessTransportState>;

/// The receiving direction's state.
pub(crate) struct Receiver {
    keys: Keys,
    next: u64,
    /// Ciphertext read from the socket: `buf[start..end]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Plaintext decrypted but not yet read: `plain[pos..len]`.
    plain: Box<[u8]>,
    pos: usize,
    len: usize,
    state: ReadState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadState {
    Open,
    Ended,
    Failed(IntegrityError),
}

impl Receiver {
    pub(crate) fn new(keys: Keys, first: u64) -> Self {
        Self {
            keys,
            next: first,
            buf: vec![0; READ_BATCH * (LENGTH_PREFIX_LEN + MAX_RECORD_LEN)].into_boxed_slice(),
            start: 0,
            end: 0,
            plain: vec![0; MAX_RECORD_LEN].into_boxed_slice(),
            pos: 0,
            len: 0,
            state: ReadState::Open,
        }
    }

    fn fail(&mut self, error: IntegrityError) -> io::Error {
        self.state = ReadState::Failed(error.clone());
        self.pos = 0;
        self.len = 0;
        error.into()
    }

    /// Decrypts the record at the front of `buf`, if one is complete: into
    /// `out` when it fits, else into `plain`. Returns whether one was read.
    fn decrypt_one(&mut self, out: &mut ReadBuf<'_>) -> Result<bool, io::Error> {
        let available = self.end - self.start;
        if available < LENGTH_PREFIX_LEN {
            return Ok(false);
        }
        let len = usize::from(u16::from_be_bytes([
            self.buf[self.start],
            self.buf[self.start + 1],
        ]));
        if !(TAG_LEN..=MAX_RECORD_LEN).contains(&len) {
            return Err(self.fail(IntegrityError::BadLength {
                record: self.next,
                len,
            }));
        }
        if available < LENGTH_PREFIX_LEN + len {
            return Ok(false);
        }
        let record = self.next;
        if record == u64::MAX {
            return Err(self.fail(IntegrityError::Exhausted));
        }
        let body = self.start + LENGTH_PREFIX_LEN;
        let ciphertext = &self.buf[body..body + len];
        let plain_len = len - TAG_LEN;
        let result = if plain_len > 0 && out.remaining() >= plain_len {
            let target = out.initialize_unfilled_to(plain_len);
            let result = self.keys.read_message(record, ciphertext, target);
            if let Ok(n) = result {
                out.advance(n);
            }
            result
        } else {
            let result = self.keys.read_message(record, ciphertext, &mut self.plain);
            if let Ok(n) = result {
                self.pos = 0;
                self.len = n;
            }
            result
        };
        match result {
            Ok(_) => {
                self.start += LENGTH_PREFIX_LEN + len;
                self.next = record + 1;
                if plain_len == 0 {
                    self.state = ReadState::Ended;
                }
                Ok(true)
            }
            Err(_) => Err(self.fail(IntegrityError::BadRecord { record })),
        }
    }

    pub(crate) fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        mut io: Pin<&mut R>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if self.pos < self.len {
                let n = (self.len - self.pos).min(out.remaining());
                out.put_slice(&self.plain[self.pos..self.pos + n]);
                self.pos += n;
                return Poll::Ready(Ok(()));
            }
            match &self.state {
                ReadState::Ended => return Poll::Ready(Ok(())),
                ReadState::Failed(error) => return Poll::Ready(Err(error.clone().into())),
                ReadState::Open => {}
            }
            let before = out.filled().len();
            if self.decrypt_one(out)? {
                if out.filled().len() > before {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            // Need more ciphertext: make room at the back, then read.
            if self.start > 0 && self.buf.len() - self.start < LENGTH_PREFIX_LEN + MAX_RECORD_LEN {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let mut read = ReadBuf::new(&mut self.buf[self.end..]);
            ready!(io.as_mut().poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                return Poll::Ready(Err(
                    self.fail(IntegrityError::Truncated { record: self.next })
                ));
            }
            self.end += n;
        }
    }
}

/// The sending direction's state.
pub(crate) struct Sender {
    keys: Keys,
    next: u64,
    /// Records not yet written: `out[pos..end]`.
    out: Box<[u8]>,
    pos: usize,
    end: usize,
    ended: bool,
}

impl Sender {
    pub(crate) fn new(keys: Keys, first: u64) -> Self {
        Self {
            keys,
            next: first,
            out: vec![0; MAX_WRITE_BATCH * (LENGTH_PREFIX_LEN + MAX_RECORD_LEN)].into_boxed_slice(),
            pos: 0,
            end: 0,
            ended: false,
        }
    }

    /// Encrypts `plaintext` (at most [`MAX_RECORD_PLAINTEXT`] bytes) as the
    /// next record at the back of the buffer, which must have room.
    fn seal(&mut self, plaintext: &[u8]) -> io::Result<()> {
        if self.next == u64::MAX {
            return Err(IntegrityError::Exhausted.into());
        }
        let body = self.end + LENGTH_PREFIX_LEN;
        let n = self
            .keys
            .write_message(self.next, plaintext, &mut self.out[body..])
            .map_err(|e| io::Error::other(format!("cannot encrypt a record: {e}")))?;
        let len =
            u16::try_from(n).map_err(|_| io::Error::other("a record longer than 65535 bytes"))?;
        self.out[self.end..body].copy_from_slice(&len.to_be_bytes());
        self.end = body + n;
        self.next += 1;
        Ok(())
    }

    fn room(&self) -> usize {
        self.out.len() - self.end
    }

    fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pos < self.end {
            let n = ready!(io.as_mut().poll_write(cx, &self.out[self.pos..self.end]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.pos = 0;
        self.end = 0;
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.ended {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the channel's write side was shut down",
            )));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.room() < LENGTH_PREFIX_LEN + TAG_LEN + 1 {
            ready!(self.poll_drain(io.as_mut(), cx))?;
        }
        let mut taken = 0;
        while taken < data.len() && self.room() > LENGTH_PREFIX_LEN + TAG_LEN {
            let n = (data.len() - taken)
                .min(MAX_RECORD_PLAINTEXT)
                .min(self.room() - LENGTH_PREFIX_LEN - TAG_LEN);
            self.seal(&data[taken..taken + n])?;
            taken += n;
        }
        Poll::Ready(Ok(taken))
    }

    pub(crate) fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(io.as_mut(), cx))?;
        io.poll_flush(cx)
    }

    pub(crate) fn poll_shutdown<W: AsyncWrite + Unpin>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.ended {
            if self.room() < LENGTH_PREFIX_LEN + TAG_LEN {
                ready!(self.poll_drain(io.as_mut(), cx))?;
            }
            self.seal(&[])?;
            self.ended = true;
        }
        ready!(self.poll_drain(io.as_mut(), cx))?;
        ready!(io.as_mut().poll_flush(cx))?;
        io.poll_shutdown(cx)
    }
}

/// An encrypted, authenticated stream over `S` (after the handshake).
pub struct SecureStream<S> {
    io: S,
    receiver: Receiver,
    sender: Sender,
}

impl<S> std::fmt::Debug for SecureStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureStream")
            .field("received", &self.receiver.next)
            .field("sent", &self.sender.next)
            .finish_non_exhaustive()
    }
}

impl<S> SecureStream<S> {
    pub(crate) fn new(io: S, keys: Keys, first_received: u64, first_sent: u64) -> Self {
        Self {
            io,
            receiver: Receiver::new(keys.clone(), first_received),
            sender: Sender::new(keys, first_sent),
        }
    }

    /// Splits the stream into its two directions, given a way to split `S`
    /// (for example `transport::Stream::into_split`), so that reading and
    /// writing proceed independently without a lock.
    pub fn split_with<R, W>(
        self,
        split: impl FnOnce(S) -> (R, W),
    ) -> (SecureReader<R>, SecureWriter<W>) {
        let (r, w) = split(self.io);
        (
            SecureReader {
                io: r,
                receiver: self.receiver,
            },
            SecureWriter {
                io: w,
                sender: self.sender,
            },
        )
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SecureStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.receiver.poll_read(Pin::new(&mut this.io), cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SecureStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.sender.poll_write(Pin::new(&mut this.io), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.sender.poll_flush(Pin::new(&mut this.io), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.sender.poll_shutdown(Pin::new(&mut this.io), cx)
    }
}

/// The reading direction of a split [`SecureStream`].
pub struct SecureReader<R> {
    io: R,
    receiver: Receiver,
}

impl<R> std::fmt::Debug for SecureReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureReader")
            .field("received", &self.receiver.next)
            .finish_non_exhaustive()
    }
}

impl<R> SecureReader<R> {
    /// The underlying reader, giving up the channel (what is buffered is lost).
    pub fn into_inner(self) -> R {
        self.io
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for SecureReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.receiver.poll_read(Pin::new(&mut this.io), cx, buf)
    }
}

/// The writing direction of a split [`SecureStream`].
pub struct SecureWriter<W> {
    io: W,
    sender: Sender,
}

impl<W> std::fmt::Debug for SecureWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureWriter")
            .field("sent", &self.sender.next)
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for SecureWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.sender.poll_write(Pin::new(&mut this.io), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.sender.poll_flush(Pin::new(&mut this.io), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.sender.poll_shutdown(Pin::new(&mut this.io), cx)
    }
}
