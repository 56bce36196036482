//! DNS messages on a stream, framed as in DNS over TCP (RFC 1035 4.2.2): a
//! two-byte big-endian length, then the message. Used by the forwarder
//! (`dns`) on the vsock and by the resolver (`resolver`) over TCP, so that
//! neither depends on the other.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::defs::DNS_HEADER_LEN;
use crate::dns_wire;

/// Reads one length-prefixed message; `None` at a clean end of stream.
pub async fn read_message<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match reader.read_exact(&mut len[..1]).await {
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    };
    reader.read_exact(&mut len[1..]).await?;
    // A u16 length is within DNS_MAX_MESSAGE by construction.
    let len = usize::from(u16::from_be_bytes(len));
    if len < DNS_HEADER_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("framed DNS message of {len} byte(s) is shorter than a DNS header"),
        ));
    }
    let mut msg = vec![0u8; len];
    reader.read_exact(&mut msg).await?;
    Ok(Some(msg))
}

/// Writes one length-prefixed message in one write.
pub async fn write_message<W: AsyncWrite + Unpin>(writer: &mut W, msg: &[u8]) -> io::Result<()> {
    let prefix = dns_wire::length_prefix(msg)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    let mut framed = Vec::with_capacity(2 + msg.len());
    framed.extend_from_slice(&prefix);
    framed.extend_from_slice(msg);
    writer.write_all(&framed).await?;
    writer.flush().await
}
