//! A real HTTPS server (tokio-rustls, a self-signed certificate made by
//! rcgen) answering `/tls_doc/` and `/doc/` as the contract with ra-web-srv
//! says, with real documents signed by the development NSM. It stands in
//! for ra-web-srv, which depends on this crate and so cannot be used in its
//! tests; the end-to-end test against ra-web-srv itself lives there.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ra_verify::TlsBinding;
use ra_verify::client::spki_of;
use ra_verify::document::Document;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{DevPki, file_document, unsigned_document_with};

/// How the server misbehaves, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As the contract says.
    Honest,
    /// `/tls_doc/` binds another key than the one TLS uses (what a
    /// TLS-terminating middlebox relaying the enclave's answers looks like).
    OtherKey,
    /// Nonces are ignored (replayed documents).
    IgnoresNonce,
    /// Every answer is `200` with a body that is not JSON.
    NotJson,
    /// Documents are unsigned, as under QEMU's emulated NSM.
    Unsigned,
}

pub struct Server {
    pub addr: SocketAddr,
    /// A second listener with the same TLS key and certificate (what an
    /// application behind ra-web-srv's TLS ingress looks like).
    pub same_key_addr: SocketAddr,
    pub pki: Arc<DevPki>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn same_key_url(&self) -> String {
        format!("https://{}", self.same_key_addr)
    }
}

struct State {
    pki: Arc<DevPki>,
    mode: Mode,
    spki: Vec<u8>,
    files: HashMap<String, Vec<u8>>,
}

/// Starts a server serving documents for `files` (path -> content).
pub async fn start(mode: Mode, files: &[(&str, &[u8])]) -> Server {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_der: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let pki = Arc::new(DevPki::generate());
    let state = Arc::new(State {
        pki: pki.clone(),
        mode,
        spki: spki_of(&cert_der).unwrap(),
        files: files
            .iter()
            .map(|(path, content)| (path.to_string(), content.to_vec()))
            .collect(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let same_key = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let same_key_addr = same_key.local_addr().unwrap();
    tokio::spawn(serve(listener, acceptor.clone(), state.clone()));
    tokio::spawn(serve(same_key, acceptor, state));
    Server {
        addr,
        same_key_addr,
        pki,
    }
}

async fn serve(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, state: Arc<State>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let line = String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let target = line.split(' ').nth(1).unwrap_or("/").to_string();
            let (status, body) = answer(&state, &target);
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(response.as_bytes()).await;
            let _ = tls.shutdown().await;
        });
    }
}

fn query(target: &str) -> (String, HashMap<String, String>) {
    let url = reqwest::Url::parse(&format!("https://x{target}")).unwrap();
    let pairs = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (url.path().to_string(), pairs)
}

fn answer(state: &State, target: &str) -> (&'static str, String) {
    if state.mode == Mode::NotJson {
        return ("200 OK", "<html>a proxy's login page</html>".into());
    }
    let (path, pairs) = query(target);
    let nonce = match state.mode {
        Mode::IgnoresNonce => None,
        _ => pairs.get("nonce").map(|n| hex::decode(n).unwrap()),
    };
    match path.as_str() {
        "/tls_doc/" => {
            let spki = if state.mode == Mode::OtherKey {
                b"another key".to_vec()
            } else {
                state.spki.clone()
            };
            let binding = TlsBinding::new(&spki).unwrap();
            let user_data = Some(binding.to_bytes().unwrap());
            let document = if state.mode == Mode::Unsigned {
                unsigned_document_with(user_data, nonce, None)
            } else {
                state.pki.document(user_data, nonce, None)
            };
            (
                "200 OK",
                serde_json::json!({
                    "nsm": "development",
                    "document": hex::encode(document),
                    "spki_sha3_512": binding.tls_spki_sha3_512.to_hex(),
                })
                .to_string(),
            )
        }
        "/doc/" => {
            let file = pairs.get("path").cloned().unwrap_or_default();
            match state.files.get(&file) {
                Some(content) => {
                    let mut document =
                        file_document(&state.pki, &file, content, nonce.clone()).document;
                    if state.mode == Mode::Unsigned {
                        let signed = Document::parse(&document).unwrap();
                        document = unsigned_document_with(
                            signed.user_data().map(<[u8]>::to_vec),
                            nonce,
                            signed.public_key().map(<[u8]>::to_vec),
                        );
                    }
                    (
                        "200 OK",
                        serde_json::json!({
                            "nsm": "development",
                            "path": file,
                            "document": hex::encode(document),
                        })
                        .to_string(),
                    )
                }
                None => (
                    "404 Not Found",
                    serde_json::json!({
                        "error": format!("no document for {file} yet"),
                        "nsm": "development",
                    })
                    .to_string(),
                ),
            }
        }
        _ => (
            "404 Not Found",
            serde_json::json!({"error": "no such endpoint", "nsm": "development"}).to_string(),
        ),
    }
}
