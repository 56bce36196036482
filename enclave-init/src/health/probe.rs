//! One network probe: an HTTP(S) GET whose answer must be 2xx, or a TCP
//! connect that must be accepted, each bounded by the check's timeout.
//! Command probes are run by [`monitor`](crate::health::monitor).

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use hyper::body::Body;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::health::spec::secs;
use crate::health::target::{HttpTarget, TcpTarget};
use crate::health::tls;

/// Most bytes of an answer's body (or a command's output) kept in a result.
pub const MAX_RESULT_DETAIL: usize = 200;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Whether the service is healthy by this probe.
    pub healthy: bool,
    /// In words: `HTTP 200 OK`, `timed out after 2s`, `exit status 1: ...`.
    pub message: String,
}

impl ProbeOutcome {
    /// A healthy result.
    pub fn ok(message: impl Into<String>) -> Self {
        Self {
            healthy: true,
            message: message.into(),
        }
    }

    /// A failed result.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            healthy: false,
            message: message.into(),
        }
    }

    /// The failure of a probe that did not end within `timeout`.
    pub fn timed_out(timeout: Duration) -> Self {
        Self::failed(format!("timed out after {}", secs(timeout)))
    }
}

/// Text for a result: at most [`MAX_RESULT_DETAIL`] bytes of `bytes`,
/// control characters as spaces, trimmed.
pub fn detail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_RESULT_DETAIL)]);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    text.trim().to_owned()
}

/// Connects to `target` within `timeout`.
pub async fn tcp(target: &TcpTarget, timeout: Duration) -> ProbeOutcome {
    match tokio::time::timeout(timeout, TcpStream::connect(target.addr)).await {
        Err(_) => ProbeOutcome::timed_out(timeout),
        Ok(Err(err)) => ProbeOutcome::failed(format!("cannot connect to {}: {err}", target.addr)),
        Ok(Ok(_)) => ProbeOutcome::ok(format!("connected to {}", target.addr)),
    }
}

/// GETs `target` within `timeout`: healthy on a 2xx status; otherwise the
/// status and the beginning of the body are the result.
pub async fn http(target: &HttpTarget, timeout: Duration) -> ProbeOutcome {
    match tokio::time::timeout(timeout, get(target)).await {
        Err(_) => ProbeOutcome::timed_out(timeout),
        Ok(Err(message)) => ProbeOutcome::failed(message),
        Ok(Ok(outcome)) => outcome,
    }
}

async fn get(target: &HttpTarget) -> Result<ProbeOutcome, String> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(|err| format!("cannot connect to {}: {err}", target.addr))?;
    if !target.https {
        return exchange(stream, target).await;
    }
    let connector = tls::connector().map_err(|err| format!("TLS setup: {err}"))?;
    let name = rustls::pki_types::ServerName::IpAddress(target.addr.ip().into());
    let stream = connector
        .connect(name, stream)
        .await
        .map_err(|err| format!("TLS handshake with {}: {err}", target.addr))?;
    exchange(stream, target).await
}

/// One HTTP/1.1 request on an open connection.
async fn exchange<S>(stream: S, target: &HttpTarget) -> Result<ProbeOutcome, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, String>(TokioIo::new(stream))
            .await
            .map_err(|err| format!("HTTP: {err}"))?;
    let request = hyper::Request::get(target.path.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::USER_AGENT, "enclave-init health check")
        .header(hyper::header::CONNECTION, "close")
        .body(String::new())
        .map_err(|err| format!("bad request for {}: {err}", target.url))?;
    let answer = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| format!("HTTP request to {}: {err}", target.url))?;
        let status = response.status();
        let line = format!(
            "HTTP {}{}",
            status.as_u16(),
            status
                .canonical_reason()
                .map(|r| format!(" {r}"))
                .unwrap_or_default()
        );
        if status.is_success() {
            return Ok(ProbeOutcome::ok(line));
        }
        let body = body_start(response.into_body()).await;
        Ok(ProbeOutcome::failed(if body.is_empty() {
            line
        } else {
            format!("{line}: {body}")
        }))
    };
    // The connection is driven until the answer is complete; an error on it
    // surfaces as the request's error.
    let drive = async {
        if let Err(err) = connection.await {
            tracing::debug!("health probe connection to {}: {err}", target.url);
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        result = answer => result,
        () = drive => Err("connection ended".into()),
    }
}

/// The first bytes of a body, as text (errors end it early).
async fn body_start(mut body: hyper::body::Incoming) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_RESULT_DETAIL {
        match poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                }
            }
            _ => break,
        }
    }
    detail(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers every connection with `answer` once it read a request head.
    async fn server(answer: &'static str) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).to_string();
                    assert!(text.starts_with("GET /ready/?x=1 HTTP/1.1\r\n"), "{text}");
                    assert!(
                        text.to_ascii_lowercase().contains("host: 127.0.0.1:"),
                        "{text}"
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        addr
    }

    fn target(addr: std::net::SocketAddr) -> HttpTarget {
        HttpTarget::parse(&format!("http://{addr}/ready/?x=1")).unwrap()
    }

    #[tokio::test]
    async fn http_status_decides() {
        let ok = server("HTTP/1.1 204 No Content\r\n\r\n").await;
        let outcome = http(&target(ok), Duration::from_secs(5)).await;
        assert_eq!(outcome, ProbeOutcome::ok("HTTP 204 No Content"));
        let bad = server(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 16\r\n\r\n{\"ready\":false}\n",
        )
        .await;
        let outcome = http(&target(bad), Duration::from_secs(5)).await;
        assert_eq!(
            outcome,
            ProbeOutcome::failed("HTTP 503 Service Unavailable: {\"ready\":false}")
        );
    }

    #[tokio::test]
    async fn http_failures() {
        // A listener that accepts and never answers: the timeout ends the probe.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let outcome = http(&target(addr), Duration::from_millis(300)).await;
        assert_eq!(outcome, ProbeOutcome::failed("timed out after 0.3s"));
        drop(silent);
        let outcome = http(&target(addr), Duration::from_secs(5)).await;
        assert!(!outcome.healthy);
        assert!(
            outcome.message.starts_with("cannot connect to"),
            "{outcome:?}"
        );
        let garbage = server("SSH-2.0-OpenSSH\r\n\r\n").await;
        let outcome = http(&target(garbage), Duration::from_secs(5)).await;
        assert!(!outcome.healthy);
        assert!(outcome.message.contains("HTTP"), "{outcome:?}");
    }

    #[tokio::test]
    async fn https_to_a_plain_server_fails_clearly() {
        // Answers plain HTTP at once, whatever it receives.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let t = HttpTarget::parse(&format!("https://{plain}/ready/?x=1")).unwrap();
        let outcome = http(&t, Duration::from_secs(5)).await;
        assert!(!outcome.healthy);
        assert!(outcome.message.starts_with("TLS handshake"), "{outcome:?}");
    }

    /// An HTTPS server with a fresh self-signed certificate that answers `answer`.
    async fn https_server(answer: &'static str) -> std::net::SocketAddr {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ra-web-srv".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let Ok(mut s) = acceptor.accept(s).await else {
                    continue;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn https_without_certificate_verification() {
        let ok = https_server("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        let t = HttpTarget::parse(&format!("https://{ok}/ready/")).unwrap();
        assert_eq!(
            http(&t, Duration::from_secs(5)).await,
            ProbeOutcome::ok("HTTP 200 OK")
        );
        let down = https_server(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 15\r\n\r\n{\"ready\":false}",
        )
        .await;
        let t = HttpTarget::parse(&format!("https://{down}/ready/")).unwrap();
        assert_eq!(
            http(&t, Duration::from_secs(5)).await,
            ProbeOutcome::failed("HTTP 503 Service Unavailable: {\"ready\":false}")
        );
    }

    #[tokio::test]
    async fn tcp_connects() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let t = TcpTarget::parse(&addr.to_string()).unwrap();
        assert!(tcp(&t, Duration::from_secs(5)).await.healthy);
        drop(listener);
        let outcome = tcp(&t, Duration::from_secs(5)).await;
        assert!(!outcome.healthy);
        assert!(outcome.message.contains("refused"), "{outcome:?}");
    }

    #[test]
    fn details_are_bounded_and_printable() {
        assert_eq!(detail(b" a\nb\x1b "), "a b");
        assert_eq!(detail(&[b'x'; 1000]).len(), MAX_RESULT_DETAIL);
    }
}
