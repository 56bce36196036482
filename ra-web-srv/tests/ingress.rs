#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! TLS ingress over real sockets on loopback: a client reaches an upstream
//! HTTP server through the ingress; a recording relay standing for the host
//! sees only ciphertext; `ra_verify`'s endpoint check (what `ra-verify
//! --endpoint` runs) passes for the ingress, also through the host's relay,
//! and fails for a host answering with its own TLS key; a missing upstream
//! gets a clean 502 while everything else keeps serving; interactive byte
//! streams pass both ways.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{dev_root, start};
use ra_verify::Policy;
use ra_verify::client::{Request, verify_url};
use ra_verify::verify::Outcome;
use ra_web_srv::ingress::IngressSpec;
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const REQUEST_MARKER: &str = "request-marker-7d1f0c2b";
const ANSWER_MARKER: &str = "answer-marker-93ae51f4";

/// A tiny HTTP/1.1 server: answers each request with 200 and a body
/// holding [`ANSWER_MARKER`] and the request's body; keeps every request
/// it received.
async fn http_upstream() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap() == 0 {
                        return;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).await.unwrap();
                let body = String::from_utf8(body).unwrap();
                log.lock().unwrap().push(format!("{head}{body}"));
                let answer = format!("{ANSWER_MARKER} you sent: {body}");
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let mut stream = reader.into_inner();
                stream.write_all(response.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            });
        }
    });
    (port, seen)
}

/// An upstream that echoes every line back, upper-cased, as it comes.
async fn echo_upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer = format!("{}\n", line.to_uppercase());
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// The host: a TCP relay to `target` that records every byte it carries,
/// both ways.
async fn recording_relay(target: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let tape = Arc::clone(&recorded);
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let server = TcpStream::connect(("127.0.0.1", target)).await.unwrap();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, Arc::clone(&tape)));
            tokio::spawn(pump(server_read, client_write, Arc::clone(&tape)));
        }
    });
    (port, recorded)
}

/// Copies `from` to `to`, appending every byte to `tape`.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    tape: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tape.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A host answering TLS on its own with a key of its own (a self-signed
/// certificate for 127.0.0.1, as the enclave's).
async fn impostor() -> u16 {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    port
}

/// A TCP port nobody listens on.
fn closed_port() -> u16 {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    free.local_addr().unwrap().port()
}

fn spec(text: &str) -> IngressSpec {
    text.parse().unwrap()
}

fn port_of(listen: &str) -> u16 {
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_reached_over_the_attested_key_and_the_host_sees_ciphertext_only() {
    let state = tempfile::tempdir().unwrap();
    let (app_port, app_seen) = http_upstream().await;
    let echo_port = echo_upstream().await;
    let down_port = closed_port();
    let mut config = ra_web_srv::Config::development(state.path());
    config.tls_ingress = vec![
        spec(&format!("127.0.0.1:0=127.0.0.1:{app_port},name=app")),
        spec(&format!("127.0.0.1:0=localhost:{echo_port},name=echo")),
        spec(&format!("127.0.0.1:0=127.0.0.1:{down_port},name=down")),
    ];
    let mut server = start(config).await;
    let ingresses = server.running.as_ref().unwrap().ingresses().to_vec();
    let port = |name: &str| {
        port_of(
            &ingresses
                .iter()
                .find(|ingress| ingress.name == name)
                .unwrap()
                .listen,
        )
    };
    let (app, echo, down) = (port("app"), port("echo"), port("down"));

    // /health lists them.
    let (status, health) = server.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    let listed = health["tls_ingress"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{health}");
    assert_eq!(listed[0]["name"], "app");
    assert_eq!(listed[0]["listen"], format!("tcp:127.0.0.1:{app}"));
    assert_eq!(listed[0]["upstream"], format!("tcp:127.0.0.1:{app_port}"));

    // The client goes through the host's recording relay to the ingress,
    // trusting only the enclave's certificate.
    let (relay_port, tape) = recording_relay(app).await;
    let response = server
        .client
        .post(format!("https://127.0.0.1:{relay_port}/v1/completions"))
        .body(format!("{{\"prompt\":\"{REQUEST_MARKER}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let body = response.text().await.unwrap();
    assert!(body.contains(ANSWER_MARKER), "{body}");
    assert!(body.contains(REQUEST_MARKER), "{body}");
    // The app got the plaintext request...
    let seen = app_seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].starts_with("POST /v1/completions HTTP/1.1\r\n"),
        "{}",
        seen[0]
    );
    assert!(seen[0].contains(REQUEST_MARKER));
    // ...while the host carried the bytes both ways and could read neither marker.
    let recorded = tape.lock().unwrap().clone();
    assert!(recorded.len() > 1000, "{} bytes recorded", recorded.len());
    assert!(!contains(&recorded, REQUEST_MARKER));
    assert!(!contains(&recorded, ANSWER_MARKER));
    assert!(!contains(&recorded, "/v1/completions"));

    // ra-verify's endpoint check: the ingress, directly and through the
    // host's relay, presents the attested key; a host with its own key fails.
    let impostor = impostor().await;
    let policy = Policy {
        root: Some(dev_root(&server.state)),
        ..Policy::default()
    };
    let request = Request {
        timeout: Duration::from_secs(10),
        ..Request::endpoints(
            server.base.clone(),
            vec![
                format!("https://127.0.0.1:{app}"),
                format!("https://127.0.0.1:{relay_port}"),
                format!("https://127.0.0.1:{impostor}"),
            ],
        )
    };
    let report = verify_url(&request, &policy).await.unwrap();
    for check in &report.checks {
        eprintln!("{check}");
    }
    let endpoints: Vec<_> = report
        .checks
        .iter()
        .filter(|check| check.name == "endpoint")
        .collect();
    assert_eq!(endpoints.len(), 3);
    assert_eq!(endpoints[0].outcome, Outcome::Pass, "{}", endpoints[0]);
    assert_eq!(endpoints[1].outcome, Outcome::Pass, "{}", endpoints[1]);
    assert_eq!(endpoints[2].outcome, Outcome::Fail, "{}", endpoints[2]);
    assert!(endpoints[2].detail.contains("not the attested one"));
    assert_eq!(report.check("tls_binding").unwrap().outcome, Outcome::Pass);
    assert!(!report.passed());

    // An interactive byte stream (what a websocket needs): each line comes
    // back before the next is sent.
    let tls = tls_client(&server.state);
    let tcp = TcpStream::connect(("127.0.0.1", echo)).await.unwrap();
    let stream = tls
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    for word in ["first", "second", "third"] {
        write
            .write_all(format!("{word}\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(
            lines.next_line().await.unwrap().unwrap(),
            word.to_uppercase()
        );
    }
    write.shutdown().await.unwrap();
    assert_eq!(lines.next_line().await.unwrap(), None);

    // The upstream is down: a clean 502 to an HTTP client...
    let response = server
        .client
        .get(format!("https://127.0.0.1:{down}/anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let text = response.text().await.unwrap();
    assert!(text.contains("TLS ingress down is not reachable"), "{text}");
    // ...a close to anything else...
    let tcp = TcpStream::connect(("127.0.0.1", down)).await.unwrap();
    let mut stream = tls
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    stream.write_all(b"\x00\x01binary protocol").await.unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    // ...and a client that is not TLS at all fails its handshake alone.
    let mut garbage = TcpStream::connect(("127.0.0.1", app)).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = garbage.read_to_end(&mut rest).await;
    assert!(!contains(&rest, ANSWER_MARKER));

    // Everything still serves.
    assert_eq!(server.get("/health").await.0, StatusCode::OK);
    let response = server
        .client
        .post(format!("https://127.0.0.1:{app}/again"))
        .body("again")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("you sent: again"));
    server.stop().await;
}

/// A TLS client trusting only the server's certificate.
fn tls_client(state: &std::path::Path) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(state.join(ra_web_srv::defs::TLS_CERT_FILE)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
