//! A real HTTPS server (tokio-rustls, a self-signed certificate made by
//! rcgen) answering `/tls_doc/` and `/doc/` as the contract with ra-web-srv
//! says, with real documents signed by the development NSM. It stands in
//! for ra-web-srv, which depends on this crate and so cannot be used in its
//! tests; the end-to-end test against ra-web-srv itself lives there.
//!
//! With an [`App`], every `POST` is answered as an app behind the TLS
//! ingress that signs its answers (`ra_verify::response`) would, honestly
//! or not.

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

/// What the app endpoint (any `POST`) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// No app: `POST` is a 404.
    None,
    /// A JSON answer signed by the key of [`app_key`].
    Honest,
    /// A signed stream of server-sent events.
    Stream,
    /// Signs, then changes a byte of the answer.
    AltersAnswer,
    /// Signs with a key of its own and names it (not the attested one).
    OtherKey,
    /// No signature headers.
    Unsigned,
}

/// The model hash the app's answers name.
pub const APP_MODEL: &str = "f35525cc0510ed5271721594a8408db3a9414097dbda502bc33df0a8ca0e80c6e58c95415675fc948ccdc78acdcd9b70ee37c729a1984307e41b2d0ea478c899";

/// The app's signing key (a fixed seed, so the test knows its file).
pub fn app_key() -> ring::signature::Ed25519KeyPair {
    ring::signature::Ed25519KeyPair::from_seed_unchecked(&[42; 32]).unwrap()
}

/// The key file of [`app_key`], as the app writes it.
pub fn app_key_file() -> Vec<u8> {
    use ring::signature::KeyPair;
    ra_verify::response::key_file_contents(app_key().public_key().as_ref())
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
    app: App,
}

/// Starts a server serving documents for `files` (path -> content).
pub async fn start(mode: Mode, files: &[(&str, &[u8])]) -> Server {
    start_with_app(mode, files, App::None).await
}

/// [`start`], with an app answering every `POST`.
pub async fn start_with_app(mode: Mode, files: &[(&str, &[u8])], app: App) -> Server {
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
        app,
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
            let head = String::from_utf8_lossy(&head).to_string();
            let line = head.lines().next().unwrap_or("").to_string();
            let target = line.split(' ').nth(1).unwrap_or("/").to_string();
            let response = if line.starts_with("POST ") && state.app != App::None {
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0)
                    .min(1 << 20);
                let mut body = vec![0u8; length];
                if tls.read_exact(&mut body).await.is_err() {
                    return;
                }
                app_answer(state.app, &body)
            } else {
                let (status, body) = answer(&state, &target);
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            };
            let _ = tls.write_all(&response).await;
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

/// The app's HTTP response to a `POST` of `request`.
fn app_answer(app: App, request: &[u8]) -> Vec<u8> {
    use ra_verify::hash::Sha3Digest;
    use ra_verify::response::{StreamSignature, encode_signature, signed_message};
    use ring::signature::KeyPair;
    let key = app_key();
    let other = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[43; 32]).unwrap();
    let path = ra_verify::defs::DEFAULT_RESPONSE_KEY_PATH;
    if app == App::Stream {
        let mut body = Vec::new();
        for piece in ["Red", ", green"] {
            body.extend_from_slice(
                format!(
                    "data: {}\n\n",
                    serde_json::json!({"object": "chat.completion.chunk", "model_sha3_512": APP_MODEL,
                        "choices": [{"index": 0, "delta": {"content": piece}}]})
                )
                .as_bytes(),
            );
        }
        let message = signed_message(request, &body, APP_MODEL).unwrap();
        let event = StreamSignature {
            signature: encode_signature(key.sign(&message).as_ref()),
            signing_key: path.into(),
            public_key: hex::encode(key.public_key().as_ref()),
            response_sha3_512: Sha3Digest::of(&body).unwrap().to_hex(),
            model_sha3_512: APP_MODEL.into(),
        };
        body.extend_from_slice(&event.sse_event().unwrap());
        body.extend_from_slice(b"data: [DONE]\n\n");
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nx-enclave-signed: v1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(&body);
        return response;
    }
    let body = serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "smollm2",
        "model_sha3_512": APP_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."},
                     "finish_reason": "stop"}],
    })
    .to_string();
    let signer = if app == App::OtherKey { &other } else { &key };
    let message = signed_message(request, body.as_bytes(), APP_MODEL).unwrap();
    let signature = encode_signature(signer.sign(&message).as_ref());
    let body = if app == App::AltersAnswer {
        body.replace("Paris.", "Rome..")
    } else {
        body
    };
    let headers = if app == App::Unsigned {
        String::new()
    } else {
        format!(
            "x-enclave-signed: v1\r\nx-enclave-signature: {signature}\r\nx-enclave-signing-key: {path}\r\nx-enclave-signing-public-key: {}\r\n",
            hex::encode(signer.public_key().as_ref())
        )
    };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
