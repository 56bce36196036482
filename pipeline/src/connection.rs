//! Reading and writing frames on a stream.
//!
//! [`FrameReader`] owns the read half and its buffer; partial frames stay in
//! the buffer, so [`FrameReader::read_frame`] is cancel-safe and can sit in
//! a `select!`. [`FrameWriter`] owns the write half; data frames go out as a
//! header and the caller's slice, never copied into an intermediate buffer.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::defs::{DATA_CHUNK_LEN, LINGER_TIMEOUT, MAGIC, READ_BUFFER_LEN};
use crate::error::Error;
use crate::protocol::{Channel, Frame, Message};

/// Reads frames from `R`.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    idle_timeout: Option<Duration>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a reader; `idle_timeout` bounds the wait for each read.
    pub fn new(inner: R, idle_timeout: Option<Duration>) -> Self {
        Self {
            inner,
            buf: BytesMut::with_capacity(READ_BUFFER_LEN),
            idle_timeout,
        }
    }

    /// Reads the client's magic bytes (server side, first thing on a connection).
    pub async fn read_magic(&mut self) -> Result<(), Error> {
        while self.buf.len() < MAGIC.len() {
            if self.fill().await? == 0 {
                return Err(Error::Handshake(
                    "connection closed before the greeting".into(),
                ));
            }
        }
        let magic = self.buf.split_to(MAGIC.len());
        if magic[..] != MAGIC {
            return Err(Error::Handshake(format!(
                "bad magic bytes {:02x?} (expected {:02x?})",
                &magic[..],
                MAGIC
            )));
        }
        Ok(())
    }

    /// The next frame; `Ok(None)` when the peer closed the connection
    /// cleanly between frames. Cancel-safe.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, Error> {
        loop {
            if let Some(frame) = Frame::parse(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Error::Truncated)
                };
            }
        }
    }

    /// The next frame; a closed connection is [`Error::Closed`].
    pub async fn next(&mut self) -> Result<Frame, Error> {
        self.read_frame().await?.ok_or(Error::Closed)
    }

    /// The next frame, which must be a control message.
    pub async fn next_message(&mut self, expected: &'static str) -> Result<Message, Error> {
        match self.next().await? {
            Frame::Control(Message::Error(frame)) => Err(Error::Remote(frame)),
            Frame::Control(message) => Ok(message),
            Frame::Data(channel, _) => Err(Error::Unexpected {
                got: format!("{channel:?} data"),
                expected,
            }),
        }
    }

    /// Reads and discards until the peer closes or [`LINGER_TIMEOUT`]
    /// passes, so that an error frame just sent is read by the peer rather
    /// than lost to a connection reset.
    pub async fn linger(&mut self) {
        let discard = async {
            let mut sink = [0u8; 64 * 1024];
            loop {
                match self.inner.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIMEOUT, discard).await;
    }

    async fn fill(&mut self) -> Result<usize, Error> {
        if self.buf.capacity() - self.buf.len() < DATA_CHUNK_LEN {
            self.buf.reserve(READ_BUFFER_LEN);
        }
        let read = self.inner.read_buf(&mut self.buf);
        let result = match self.idle_timeout {
            Some(limit) => tokio::time::timeout(limit, read)
                .await
                .map_err(|_| Error::Idle(limit))?,
            None => read.await,
        };
        result.map_err(Error::Connection)
    }
}

/// Writes frames to `W`.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    scratch: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps a writer.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            scratch: Vec::with_capacity(1024),
        }
    }

    /// Sends the magic bytes (client side, first thing on a connection).
    pub async fn write_magic(&mut self) -> Result<(), Error> {
        self.inner
            .write_all(&MAGIC)
            .await
            .map_err(Error::Connection)
    }

    /// Sends a control message.
    pub async fn write_message(&mut self, message: &Message) -> Result<(), Error> {
        self.scratch.clear();
        Frame::encode_control(message, &mut self.scratch)?;
        self.inner
            .write_all(&self.scratch)
            .await
            .map_err(Error::Connection)?;
        self.inner.flush().await.map_err(Error::Connection)
    }

    /// Sends `data` on `channel`, split into frames of at most
    /// [`DATA_CHUNK_LEN`] bytes.
    pub async fn write_data(&mut self, channel: Channel, data: &[u8]) -> Result<(), Error> {
        for chunk in data.chunks(DATA_CHUNK_LEN) {
            let header = Frame::data_header(channel, chunk.len())?;
            self.inner
                .write_all(&header)
                .await
                .map_err(Error::Connection)?;
            self.inner
                .write_all(chunk)
                .await
                .map_err(Error::Connection)?;
        }
        self.inner.flush().await.map_err(Error::Connection)
    }

    /// Shuts the write side down (a no-op on links without half-close).
    pub async fn shutdown(&mut self) -> Result<(), Error> {
        self.inner.shutdown().await.map_err(Error::Connection)
    }
}
