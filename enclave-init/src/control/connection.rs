//! [`Connection`]: a stream plus its read buffer; reads and writes whole
//! frames. Partial frames stay in the buffer, so `read_frame` is cancel-safe
//! inside `select!`.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::control::frame::{self, FrameError};
use crate::defs::LOG_READ_CHUNK;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The peer announced a frame larger than allowed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The stream failed.
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
}

/// A framed connection over any byte stream.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Wraps `stream` whose first bytes, `read_ahead`, were already read
    /// (to tell an attested-channel client from a plain one).
    pub fn with_read_ahead(stream: S, read_ahead: Vec<u8>) -> Self {
        Self {
            stream,
            buf: read_ahead,
        }
    }

    /// Reads the next frame's payload of at most `max` bytes; `None` when the
    /// peer closed the stream between frames.
    pub async fn read_frame(&mut self, max: usize) -> Result<Option<Vec<u8>>, ConnectionError> {
        let mut chunk = [0u8; LOG_READ_CHUNK];
        loop {
            match frame::parse(&self.buf, max) {
                Ok((range, used)) => {
                    let payload = self.buf[range].to_vec();
                    self.buf.drain(..used);
                    return Ok(Some(payload));
                }
                Err(FrameError::Incomplete) => {}
                Err(err) => return Err(err.into()),
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnectionError::Truncated)
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes one frame around `payload` (at most `max` bytes) and flushes.
    pub async fn write_frame(&mut self, payload: &[u8], max: usize) -> Result<(), ConnectionError> {
        let frame = frame::encode(payload, max)?;
        self.stream.write_all(&frame).await?;
        self.stream.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_across_reads_and_eof() {
        let (a, mut b) = tokio::io::duplex(8);
        let mut conn = Connection::new(a);
        let writer = tokio::spawn(async move {
            let mut bytes = frame::encode(b"first", 100).unwrap();
            bytes.extend(frame::encode(b"second", 100).unwrap());
            b.write_all(&bytes).await.unwrap();
            b.write_all(&[0, 0]).await.unwrap();
        });
        assert_eq!(conn.read_frame(100).await.unwrap().unwrap(), b"first");
        assert_eq!(conn.read_frame(100).await.unwrap().unwrap(), b"second");
        writer.await.unwrap();
        assert!(matches!(
            conn.read_frame(100).await,
            Err(ConnectionError::Truncated)
        ));
    }

    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut conn = Connection::new(a);
        b.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(
            conn.read_frame(1024).await,
            Err(ConnectionError::Frame(FrameError::TooLarge { .. }))
        ));
    }
}
