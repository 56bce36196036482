//! Fetching and verifying documents from a running ra-web-srv over HTTPS.
//!
//! The server's TLS certificate is self-signed (its key is made inside the
//! enclave), so no certificate authority can vouch for it. Instead the TLS
//! session is accepted whatever the certificate (the handshake signature is
//! still checked, so the server holds the certificate's key) and then
//! **bound**: the client asks `/tls_doc/?nonce=N` with a fresh random nonce,
//! verifies that document like any other (signature, chain to the pinned
//! root, PCRs, nonce), and checks that its `user_data`
//! ([`TlsBinding`]) names the SHA3-512 of the SubjectPublicKeyInfo of the
//! certificate the TLS session actually used, for that response and for the
//! `/doc/` response. That is the `tls_binding` check: it fails when anything
//! between the client and the enclave terminates TLS.
//!
//! [`verify_url`] is the one entry point; the CLI and the end-to-end tests
//! call it.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Deserialize;

use crate::binding::TlsBinding;
use crate::defs::{CLIENT_NONCE_LEN, CLIENT_TIMEOUT, MAX_RESPONSE};
use crate::hash::Sha3Digest;
use crate::verify::{Binding, Check, Policy, Report, Signer, verify};

/// What can go wrong talking to the server (a failed check is not an
/// error: it is in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not an `https://` URL.
    #[error("bad URL {url:?}: {why}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The server could not be reached (refused, unreachable, timed out).
    #[error("cannot reach {url}: {why}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// The server answered with an error.
    #[error("{url}: the server answered {status}: {message}")]
    Server {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Its `error` message, or the start of the body.
        message: String,
    },
    /// The answer is not what the API promises.
    #[error("{url}: unexpected answer: {why}")]
    BadResponse {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The TLS client could not be set up.
    #[error("TLS client: {0}")]
    Tls(String),
}

impl ClientError {
    /// True when the server could not be reached at all (the CLI exits 69).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }
}

/// What to fetch and how.
#[derive(Debug, Clone)]
pub struct Request {
    /// The server, `https://HOST:PORT`.
    pub url: String,
    /// The path in the enclave whose document is fetched.
    pub path: String,
    /// Ask the server for a fresh document carrying a random nonce (and
    /// check it), instead of the stored one.
    pub fresh_nonce: bool,
    /// Limit for each HTTP exchange.
    pub timeout: Duration,
}

impl Request {
    /// A request for `path` at `url` with a fresh nonce and the default
    /// time limit ([`CLIENT_TIMEOUT`]).
    pub fn new(url: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            path: path.into(),
            fresh_nonce: true,
            timeout: CLIENT_TIMEOUT,
        }
    }
}

/// Fetches the TLS binding and the document of `request.path`, and
/// verifies both against `policy` (whose `binding`, `path` and `nonce` are
/// set here). The report holds `tls_binding` first, then the document's
/// checks.
pub async fn verify_url(request: &Request, policy: &Policy) -> Result<Report, ClientError> {
    let base = parse_base(&request.url)?;
    let client = http_client(request.timeout)?;

    let tls_nonce = random_nonce()?;
    let mut tls_url = join(&base, "tls_doc/")?;
    tls_url
        .query_pairs_mut()
        .append_pair("nonce", &hex::encode(&tls_nonce));
    let (tls_answer, tls_spki) = get_json::<TlsDocAnswer>(&client, tls_url).await?;
    let tls_policy = Policy {
        binding: Binding::Tls,
        path: None,
        file_hash: None,
        nonce: Some(tls_nonce),
        ..policy.clone()
    };
    let tls_report = verify(&hex_document(&tls_answer.document, &base)?, &tls_policy);

    let nonce = if request.fresh_nonce {
        Some(random_nonce()?)
    } else {
        None
    };
    let mut doc_url = join(&base, "doc/")?;
    doc_url
        .query_pairs_mut()
        .append_pair("path", &request.path)
        .append_pair("view", "hex");
    if let Some(nonce) = &nonce {
        doc_url
            .query_pairs_mut()
            .append_pair("nonce", &hex::encode(nonce));
    }
    let (doc_answer, doc_spki) = get_json::<DocAnswer>(&client, doc_url).await?;
    let doc_policy = Policy {
        binding: Binding::File,
        path: Some(request.path.clone()),
        nonce,
        ..policy.clone()
    };
    let mut report = verify(&hex_document(&doc_answer.document, &base)?, &doc_policy);
    report
        .checks
        .insert(0, tls_binding_check(&tls_report, &tls_spki, &doc_spki));
    Ok(report)
}

/// `tls_binding`: the verified `/tls_doc/` document binds the key of the
/// TLS sessions both answers came over.
fn tls_binding_check(tls_report: &Report, tls_spki: &[u8], doc_spki: &[u8]) -> Check {
    const NAME: &str = "tls_binding";
    if !tls_report.passed() {
        let failed: Vec<String> = tls_report
            .checks
            .iter()
            .filter(|check| check.outcome == crate::verify::Outcome::Fail)
            .map(|check| format!("{}: {}", check.name, check.detail))
            .collect();
        return Check::fail(
            NAME,
            format!("the /tls_doc/ document fails: {}", failed.join("; ")),
        );
    }
    let Some(binding) = tls_report
        .document
        .as_ref()
        .and_then(|document| document.user_data())
        .and_then(|user_data| TlsBinding::from_bytes(user_data).ok())
    else {
        return Check::fail(NAME, "the /tls_doc/ document has no TLS binding");
    };
    let session = Sha3Digest::of(tls_spki).map(|digest| digest.to_hex());
    let session = session.unwrap_or_default();
    if !binding.matches(tls_spki) {
        return Check::fail(
            NAME,
            format!(
                "the TLS session's key (SPKI SHA3-512 {}) is not the attested one ({}): something else terminates TLS",
                &session[..16.min(session.len())],
                &binding.tls_spki_sha3_512.to_hex()[..16]
            ),
        );
    }
    if doc_spki != tls_spki {
        return Check::fail(
            NAME,
            "the /doc/ answer came over a TLS session with another key than the attested one",
        );
    }
    if tls_report.signer == Signer::Unsigned {
        return Check::skip(
            NAME,
            "the /tls_doc/ document names the session's key but is unsigned: anyone could have made it, so the binding proves nothing",
        );
    }
    Check::pass(
        NAME,
        format!(
            "the server's TLS key (SPKI SHA3-512 {}...) is bound by a verified /tls_doc/ document made for a fresh nonce",
            &session[..16.min(session.len())]
        ),
    )
}

/// `GET /tls_doc/` answer.
#[derive(Debug, Deserialize)]
struct TlsDocAnswer {
    document: String,
}

/// `GET /doc/?view=hex` answer.
#[derive(Debug, Deserialize)]
struct DocAnswer {
    document: String,
}

/// An error answer.
#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    error: String,
}

fn parse_base(url: &str) -> Result<Url, ClientError> {
    let bad = |why: &str| ClientError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let mut base = Url::parse(url).map_err(|error| bad(&error.to_string()))?;
    if base.scheme() != "https" {
        return Err(bad("the server speaks HTTPS only: use https://HOST:PORT"));
    }
    if base.host_str().is_none() {
        return Err(bad("no host"));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.set_query(None);
    Ok(base)
}

fn join(base: &Url, endpoint: &str) -> Result<Url, ClientError> {
    base.join(endpoint).map_err(|error| ClientError::BadUrl {
        url: base.to_string(),
        why: error.to_string(),
    })
}

fn hex_document(text: &str, base: &Url) -> Result<Vec<u8>, ClientError> {
    hex::decode(text.trim()).map_err(|error| ClientError::BadResponse {
        url: base.to_string(),
        why: format!("document is not hexadecimal: {error}"),
    })
}

fn random_nonce() -> Result<Vec<u8>, ClientError> {
    let mut nonce = vec![0u8; CLIENT_NONCE_LEN];
    openssl::rand::rand_bytes(&mut nonce)
        .map_err(|error| ClientError::Tls(format!("random nonce: {error}")))?;
    Ok(nonce)
}

/// GETs `url`, returns its JSON and the DER SubjectPublicKeyInfo of the
/// certificate of the TLS session it came over.
async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: Url,
) -> Result<(T, Vec<u8>), ClientError> {
    let shown = url.to_string();
    let bad = |why: String| ClientError::BadResponse {
        url: shown.clone(),
        why,
    };
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|error| classify(&shown, &error))?;
    let status = response.status();
    let spki = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .map(spki_of)
        .transpose()
        .map_err(|why| bad(format!("the server's TLS certificate: {why}")))?
        .ok_or_else(|| bad("no TLS certificate on the session".into()))?;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| classify(&shown, &error))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(bad(format!("answer larger than {MAX_RESPONSE} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    if status != StatusCode::OK {
        let message = serde_json::from_slice::<ErrorAnswer>(&body)
            .map(|answer| answer.error)
            .unwrap_or_else(|_| {
                String::from_utf8_lossy(&body[..body.len().min(200)])
                    .trim()
                    .replace(['\r', '\n'], " ")
            });
        let message = if message.is_empty() {
            "(no error message)".to_string()
        } else {
            message
        };
        return Err(ClientError::Server {
            url: shown,
            status: status.as_u16(),
            message,
        });
    }
    let value = serde_json::from_slice(&body)
        .map_err(|error| bad(format!("not the JSON expected: {error}")))?;
    Ok((value, spki))
}

fn classify(url: &str, error: &reqwest::Error) -> ClientError {
    // The innermost cause says it best ("Connection refused (os error 111)").
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let why = if error.is_timeout() {
        "timed out".to_string()
    } else {
        cause.to_string()
    };
    let url = url.split('?').next().unwrap_or(url).to_string();
    if error.is_connect() || error.is_timeout() {
        ClientError::Unreachable { url, why }
    } else {
        ClientError::BadResponse { url, why }
    }
}

/// The DER SubjectPublicKeyInfo of a DER certificate.
pub fn spki_of(certificate: &[u8]) -> Result<Vec<u8>, String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(certificate).map_err(|error| error.to_string())?;
    Ok(parsed.tbs_certificate.subject_pki.raw.to_vec())
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientError::Tls(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(BindLater {
            algorithms: provider.signature_verification_algorithms,
        }))
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .tls_info(true)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| ClientError::Tls(error.to_string()))
}

/// Accepts any server certificate (no authority vouches for the enclave's
/// self-signed one) but still checks the handshake signature, so the peer
/// holds the certificate's key; the `tls_binding` check then ties that key
/// to an attestation document.
#[derive(Debug)]
struct BindLater {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for BindLater {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_are_accepted() {
        assert!(parse_base("http://127.0.0.1:8080").is_err());
        assert!(parse_base("127.0.0.1:8443").is_err());
        assert!(parse_base("https://").is_err());
        let base = parse_base("https://127.0.0.1:8443").unwrap();
        assert_eq!(
            join(&base, "tls_doc/").unwrap().as_str(),
            "https://127.0.0.1:8443/tls_doc/"
        );
        let base = parse_base("https://host:1/prefix?x=1").unwrap();
        assert_eq!(
            join(&base, "doc/").unwrap().as_str(),
            "https://host:1/prefix/doc/"
        );
    }
}
