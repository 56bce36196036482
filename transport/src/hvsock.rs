//! The hybrid-vsock handshake of vhost-device-vsock, Firecracker and Cloud
//! Hypervisor.
//!
//! Host to guest: the host connects to the VMM's Unix socket and writes
//! `CONNECT <port>\n`; the VMM answers `OK <host_port>\n` once the guest
//! accepted on that vsock port, or closes the socket. After the answer the
//! socket carries the guest connection's bytes.
//!
//! Guest to host needs no handshake: the VMM connects to the Unix socket
//! `<path>_<port>` for a guest connection to host port `<port>`.
//!
//! Lines are read one byte at a time into a fixed buffer of
//! [`HVSOCK_MAX_LINE`] bytes, so nothing past
//! the newline is consumed and a peer cannot make us buffer without bound.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::defs::HVSOCK_MAX_LINE;

/// Sends `CONNECT <port>\n` and waits for `OK <host_port>\n`; returns the
/// host port the VMM assigned.
pub async fn client_handshake<S>(stream: &mut S, port: u32) -> io::Result<u32>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .await?;
    stream.flush().await?;
    let line = read_line(stream).await.map_err(|err| match err.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!(
                "the VMM closed the connection: nothing in the guest accepted on vsock port {port}"
            ),
        ),
        _ => err,
    })?;
    let reply = line.strip_prefix("OK ").ok_or_else(|| {
        invalid(format!(
            "expected \"OK <port>\" in reply to CONNECT {port}, got {line:?}"
        ))
    })?;
    reply
        .parse::<u32>()
        .map_err(|_| invalid(format!("bad port in handshake reply {line:?}")))
}

/// Reads a `CONNECT <port>\n` request (the VMM's side); returns the port.
pub async fn read_connect_request<S>(stream: &mut S) -> io::Result<u32>
where
    S: AsyncRead + Unpin,
{
    let line = read_line(stream).await?;
    let port = line
        .strip_prefix("CONNECT ")
        .ok_or_else(|| invalid(format!("expected \"CONNECT <port>\", got {line:?}")))?;
    port.parse::<u32>()
        .map_err(|_| invalid(format!("bad port in handshake request {line:?}")))
}

/// Writes the `OK <host_port>\n` answer (the VMM's side).
pub async fn write_ok<S>(stream: &mut S, host_port: u32) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    stream
        .write_all(format!("OK {host_port}\n").as_bytes())
        .await?;
    stream.flush().await
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Reads one `\n`-terminated ASCII line of at most `HVSOCK_MAX_LINE` bytes,
/// without reading past the newline.
async fn read_line<S>(stream: &mut S) -> io::Result<String>
where
    S: AsyncRead + Unpin,
{
    let mut buf = [0u8; HVSOCK_MAX_LINE];
    let mut len = 0;
    loop {
        let byte = stream.read_u8().await?;
        if byte == b'\n' {
            break;
        }
        if len == buf.len() {
            return Err(invalid(format!(
                "handshake line longer than {HVSOCK_MAX_LINE} bytes"
            )));
        }
        buf[len] = byte;
        len += 1;
    }
    let line = &buf[..len];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    std::str::from_utf8(line)
        .map(str::to_owned)
        .map_err(|_| invalid("handshake line is not ASCII".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn handshake_both_sides() {
        let (mut host, mut vmm) = tokio::io::duplex(64);
        let vmm_side = tokio::spawn(async move {
            let port = read_connect_request(&mut vmm).await.unwrap();
            write_ok(&mut vmm, 1234).await.unwrap();
            vmm.write_all(b"payload").await.unwrap();
            port
        });
        assert_eq!(client_handshake(&mut host, 53000).await.unwrap(), 1234);
        assert_eq!(vmm_side.await.unwrap(), 53000);
        let mut rest = [0u8; 7];
        host.read_exact(&mut rest).await.unwrap();
        assert_eq!(
            &rest, b"payload",
            "bytes after the OK line must stay in the stream"
        );
    }

    #[tokio::test]
    async fn closed_without_answer_is_connection_refused() {
        let (mut host, vmm) = tokio::io::duplex(64);
        drop(vmm);
        let err = client_handshake(&mut host, 7).await.unwrap_err();
        assert!(matches!(
            err.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::BrokenPipe
        ));
    }

    #[tokio::test]
    async fn rejects_bad_replies() {
        for reply in [
            &b"NO\n"[..],
            b"OK x\n",
            b"OK 99999999999\n",
            &[b'O'; 100],
            b"OK \xff\n",
        ] {
            let (mut host, mut vmm) = tokio::io::duplex(256);
            vmm.write_all(reply).await.unwrap();
            let err = client_handshake(&mut host, 7).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{reply:?}: {err}");
        }
    }

    #[tokio::test]
    async fn rejects_bad_requests() {
        for request in [
            &b"GET / HTTP/1.1\n"[..],
            b"CONNECT\n",
            b"CONNECT -1\n",
            &[b'C'; 40],
        ] {
            let (mut vmm, mut host) = tokio::io::duplex(256);
            host.write_all(request).await.unwrap();
            let err = read_connect_request(&mut vmm).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{request:?}: {err}");
        }
    }

    #[tokio::test]
    async fn accepts_crlf() {
        let (mut vmm, mut host) = tokio::io::duplex(256);
        host.write_all(b"CONNECT 5\r\n").await.unwrap();
        assert_eq!(read_connect_request(&mut vmm).await.unwrap(), 5);
    }
}
