//! Reading and writing frames on a stream.
//!
//! [`FrameReader`] owns the read half and its buffers; a partial frame stays
//! in the reader, so [`FrameReader::read_frame`] is cancel-safe and can sit
//! in a `select!`. Control frames and headers are read in small pieces into
//! a small buffer; the body of a data frame is read straight into a pooled
//! chunk buffer ([`crate::buffers`]), so file content is copied once, from
//! the socket to its final buffer. [`FrameWriter`] owns the write half; data
//! frames go out as a header and the caller's slice, never copied into an
//! intermediate buffer.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::buffers::{BufferPool, PooledBuf};
use crate::defs::{DATA_CHUNK_LEN, FRAME_HEADER_LEN, LINGER_TIMEOUT, MAGIC, READ_BUFFER_LEN};
use crate::error::Error;
use crate::protocol::{Channel, Frame, Message};

/// Chunk buffers a reader keeps for reuse.
const POOL_KEEP: usize = 16;

/// The body of a data frame being read into a pooled buffer.
#[derive(Debug)]
struct PendingBody {
    channel: Channel,
    buf: PooledBuf,
    filled: usize,
    len: usize,
}

/// Reads frames from `R`.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    idle_timeout: Option<Duration>,
    pool: BufferPool,
    body: Option<PendingBody>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a reader; `idle_timeout` bounds the wait for each read.
    pub fn new(inner: R, idle_timeout: Option<Duration>) -> Self {
        Self {
            inner,
            buf: BytesMut::with_capacity(READ_BUFFER_LEN),
            idle_timeout,
            pool: BufferPool::new(DATA_CHUNK_LEN, POOL_KEEP),
            body: None,
        }
    }

    /// Changes the limit on waiting for the peer's next bytes.
    pub fn set_idle_timeout(&mut self, idle_timeout: Option<Duration>) {
        self.idle_timeout = idle_timeout;
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
            if let Some(body) = &mut self.body {
                if body.filled < body.len {
                    let target = &mut body.buf[body.filled..body.len];
                    let n = with_idle_limit(self.idle_timeout, self.inner.read(target)).await?;
                    if n == 0 {
                        return Err(Error::Truncated);
                    }
                    body.filled += n;
                    continue;
                }
                if let Some(body) = self.body.take() {
                    return Ok(Some(Frame::Data(body.channel, body.buf.freeze(body.len))));
                }
            }
            if let Some((channel, len)) = data_header(&self.buf)?
                && len <= self.pool.chunk_len()
            {
                // Bytes of the body already buffered move over; the rest is
                // read straight into the pooled buffer.
                self.buf.advance(FRAME_HEADER_LEN);
                let mut buf = self.pool.get();
                let have = len.min(self.buf.len());
                buf[..have].copy_from_slice(&self.buf[..have]);
                self.buf.advance(have);
                self.body = Some(PendingBody {
                    channel,
                    buf,
                    filled: have,
                    len,
                });
                continue;
            }
            if let Some(frame) = Frame::parse(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() && self.body.is_none() {
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
    /// passes, so that the last frames sent reach the peer before this side
    /// closes.
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

    /// Reads what is available, in small pieces: data-frame bodies are
    /// better read directly into their own buffers.
    async fn fill(&mut self) -> Result<usize, Error> {
        self.buf.reserve(READ_BUFFER_LEN);
        let mut limited = (&mut self.inner).take(READ_BUFFER_LEN as u64);
        with_idle_limit(self.idle_timeout, limited.read_buf(&mut self.buf)).await
    }
}

/// Runs one read, failing with [`Error::Idle`] when the peer makes it wait
/// longer than `limit`.
async fn with_idle_limit<T>(
    limit: Option<Duration>,
    io: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, Error> {
    limited(limit, io, Error::Idle).await
}

/// Runs one write, failing with [`Error::Stalled`] when the peer makes it
/// wait longer than `limit`.
async fn with_stall_limit<T>(
    limit: Option<Duration>,
    io: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, Error> {
    limited(limit, io, Error::Stalled).await
}

async fn limited<T>(
    limit: Option<Duration>,
    io: impl std::future::Future<Output = std::io::Result<T>>,
    expired: fn(Duration) -> Error,
) -> Result<T, Error> {
    let result = match limit {
        Some(limit) => tokio::time::timeout(limit, io)
            .await
            .map_err(|_| expired(limit))?,
        None => io.await,
    };
    result.map_err(Error::Connection)
}

/// The channel and length of a data frame whose header is at the front of
/// `buf`; `None` for control frames and incomplete headers. The header is
/// validated (kind, length limit) as the parser would.
fn data_header(buf: &[u8]) -> Result<Option<(Channel, usize)>, Error> {
    if buf.len() < FRAME_HEADER_LEN || buf[4] == 0 {
        return Ok(None);
    }
    match Frame::check(&buf[..FRAME_HEADER_LEN]) {
        Ok(_) | Err(crate::protocol::FrameError::Incomplete) => {}
        Err(err) => return Err(err.into()),
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    Ok(Channel::from_kind(buf[4]).map(|channel| (channel, len)))
}

/// Writes frames to `W`.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    scratch: Vec<u8>,
    idle_timeout: Option<Duration>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps a writer; `idle_timeout` bounds how long one write may wait
    /// for a peer that does not read.
    pub fn new(inner: W, idle_timeout: Option<Duration>) -> Self {
        Self {
            inner,
            scratch: Vec::with_capacity(1024),
            idle_timeout,
        }
    }

    /// Sends the magic bytes (client side, first thing on a connection).
    pub async fn write_magic(&mut self) -> Result<(), Error> {
        with_stall_limit(self.idle_timeout, self.inner.write_all(&MAGIC)).await
    }

    /// Sends a control message.
    pub async fn write_message(&mut self, message: &Message) -> Result<(), Error> {
        self.scratch.clear();
        Frame::encode_control(message, &mut self.scratch)?;
        let write = async {
            self.inner.write_all(&self.scratch).await?;
            self.inner.flush().await
        };
        with_stall_limit(self.idle_timeout, write).await
    }

    /// Sends `data` on `channel`, split into frames of at most
    /// [`DATA_CHUNK_LEN`] bytes.
    pub async fn write_data(&mut self, channel: Channel, data: &[u8]) -> Result<(), Error> {
        for chunk in data.chunks(DATA_CHUNK_LEN) {
            let header = Frame::data_header(channel, chunk.len())?;
            let write = async {
                self.inner.write_all(&header).await?;
                self.inner.write_all(chunk).await
            };
            with_stall_limit(self.idle_timeout, write).await?;
        }
        with_stall_limit(self.idle_timeout, self.inner.flush()).await
    }

    /// Shuts the write side down (a no-op on links without half-close).
    pub async fn shutdown(&mut self) -> Result<(), Error> {
        self.inner.shutdown().await.map_err(Error::Connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::MAX_FRAME_LEN;
    use tokio::io::AsyncWriteExt;

    async fn frames_through(wire: Vec<u8>) -> Vec<Frame> {
        let (mut tx, rx) = tokio::io::duplex(8192);
        let writer = tokio::spawn(async move {
            tx.write_all(&wire).await.unwrap();
        });
        let mut reader = FrameReader::new(rx, None);
        let mut frames = Vec::new();
        while let Some(frame) = reader.read_frame().await.unwrap() {
            frames.push(frame);
        }
        writer.await.unwrap();
        frames
    }

    #[tokio::test]
    async fn data_frames_of_every_size_up_to_the_limit() {
        for len in [
            0,
            1,
            4999,
            DATA_CHUNK_LEN,
            DATA_CHUNK_LEN + 1,
            MAX_FRAME_LEN,
        ] {
            let body: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
            let mut wire = Frame::data_header(Channel::FileData, len).unwrap().to_vec();
            wire.extend_from_slice(&body);
            Frame::encode_control(&Message::TreeEnd, &mut wire).unwrap();
            let frames = frames_through(wire).await;
            assert_eq!(frames.len(), 2, "len {len}");
            assert_eq!(
                frames[0],
                Frame::Data(Channel::FileData, body.into()),
                "len {len}"
            );
            assert_eq!(frames[1], Frame::Control(Message::TreeEnd));
        }
    }

    #[tokio::test]
    async fn eof_inside_a_data_body_is_truncation() {
        let mut wire = Frame::data_header(Channel::Stdout, 100_000)
            .unwrap()
            .to_vec();
        wire.extend_from_slice(&[1u8; 50_000]);
        let (mut tx, rx) = tokio::io::duplex(8192);
        tokio::spawn(async move {
            tx.write_all(&wire).await.unwrap();
        });
        let mut reader = FrameReader::new(rx, None);
        assert!(matches!(reader.read_frame().await, Err(Error::Truncated)));
    }
}
