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
//! The same key serves the enclave's applications through ra-web-srv's TLS
//! ingress. For each of [`Request::endpoints`] the client makes a TLS
//! handshake with the endpoint (the handshake signature proves the peer
//! holds the certificate's key) and checks, with the same code as
//! `tls_binding`, that the certificate carries the key the verified
//! `/tls_doc/` document binds: one `endpoint` check per endpoint.
//!
//! [`verify_url`] is the one entry point; the CLI and the end-to-end tests
//! call it.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use rustls::pki_types::ServerName;
use serde::Deserialize;

use crate::binding::TlsBinding;
use crate::defs::{CLIENT_NONCE_LEN, CLIENT_TIMEOUT, MAX_APP_RESPONSE, MAX_RESPONSE};
use crate::hash::Sha3Digest;
use crate::verify::{Binding, Check, Outcome, Policy, Report, Signer, verify};

/// The TLS pieces live in the core ([`ra_verify_core::tls`]); named here
/// too, where the client uses them.
pub use ra_verify_core::tls::{BindLater, bind_later_config, spki_of};

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
    /// The path in the enclave whose document is fetched; `None`: only the
    /// TLS binding (and the endpoints) are checked.
    pub path: Option<String>,
    /// Further TLS endpoints, `https://HOST:PORT`, that must present the
    /// attested key (an application behind ra-web-srv's TLS ingress).
    pub endpoints: Vec<String>,
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
            path: Some(path.into()),
            endpoints: Vec::new(),
            fresh_nonce: true,
            timeout: CLIENT_TIMEOUT,
        }
    }

    /// A request for the TLS binding of `url` only, and for `endpoints`.
    pub fn endpoints(url: impl Into<String>, endpoints: Vec<String>) -> Self {
        Self {
            url: url.into(),
            path: None,
            endpoints,
            fresh_nonce: true,
            timeout: CLIENT_TIMEOUT,
        }
    }
}

/// Fetches the TLS binding and the document of `request.path`, and
/// verifies both against `policy` (whose `binding`, `path` and `nonce` are
/// set here); then checks each of `request.endpoints`. The report holds
/// `tls_binding` first, then the document's checks (without a path: those
/// of the `/tls_doc/` document), then one `endpoint` check per endpoint.
pub async fn verify_url(request: &Request, policy: &Policy) -> Result<Report, ClientError> {
    Ok(verify_url_detailed(request, policy).await?.report)
}

/// What [`verify_url_detailed`] found: the report of [`verify_url`], the
/// document of the path as fetched, and the verified `/tls_doc/` report, to
/// check further TLS sessions against.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The report [`verify_url`] returns.
    pub report: Report,
    /// The COSE_Sign1 bytes of the path's document (with a path).
    pub document: Option<Vec<u8>>,
    tls_report: Report,
}

impl Verified {
    /// `endpoint`: a TLS session (another connection, such as the one an
    /// app's answer came over) presented the key the verified `/tls_doc/`
    /// document binds; `whose` names the session in the detail. The same
    /// code as `tls_binding` and [`endpoint_check`].
    pub fn session_check(&self, whose: &str, spki: &[u8]) -> Check {
        bound_key_check("endpoint", whose, &self.tls_report, spki)
    }
}

/// [`verify_url`], keeping what a caller needs to go on: the raw document
/// and the `/tls_doc/` report (for [`Verified::session_check`]).
pub async fn verify_url_detailed(
    request: &Request,
    policy: &Policy,
) -> Result<Verified, ClientError> {
    let base = parse_base(&request.url)?;
    let endpoints = request
        .endpoints
        .iter()
        .map(|text| Endpoint::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
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

    let mut document = None;
    let mut report = match &request.path {
        Some(path) => {
            let nonce = if request.fresh_nonce {
                Some(random_nonce()?)
            } else {
                None
            };
            let mut doc_url = join(&base, "doc/")?;
            doc_url
                .query_pairs_mut()
                .append_pair("path", path)
                .append_pair("view", "hex");
            if let Some(nonce) = &nonce {
                doc_url
                    .query_pairs_mut()
                    .append_pair("nonce", &hex::encode(nonce));
            }
            let (doc_answer, doc_spki) = get_json::<DocAnswer>(&client, doc_url).await?;
            let doc_policy = Policy {
                binding: Binding::File,
                path: Some(path.clone()),
                nonce,
                ..policy.clone()
            };
            let bytes = hex_document(&doc_answer.document, &base)?;
            let mut report = verify(&bytes, &doc_policy);
            document = Some(bytes);
            report.checks.insert(
                0,
                tls_binding_check(&tls_report, &tls_spki, Some(&doc_spki)),
            );
            report
        }
        None => {
            let mut report = tls_report.clone();
            report
                .checks
                .insert(0, tls_binding_check(&tls_report, &tls_spki, None));
            report
        }
    };
    for endpoint in &endpoints {
        report.push(endpoint_check(endpoint, &tls_report, request.timeout).await);
    }
    Ok(Verified {
        report,
        document,
        tls_report,
    })
}

/// An application's answer to [`post_app`].
#[derive(Debug, Clone)]
pub struct AppAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The response headers (names in lower case; the last of repeated ones).
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body, as received.
    pub body: Vec<u8>,
    /// The DER SubjectPublicKeyInfo of the TLS session's certificate.
    pub spki: Vec<u8>,
}

impl AppAnswer {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// `text` as an `https://` URL; anything else is [`ClientError::BadUrl`],
/// with `not_https` as the reason for another scheme.
fn parse_https(text: &str, not_https: &str) -> Result<Url, ClientError> {
    let bad = |why: String| ClientError::BadUrl {
        url: text.to_string(),
        why,
    };
    let url = Url::parse(text).map_err(|error| bad(error.to_string()))?;
    if url.scheme() != "https" {
        return Err(bad(not_https.to_string()));
    }
    Ok(url)
}

/// POSTs `body` (`application/json`) to an application behind the TLS
/// ingress, `https://HOST:PORT/PATH`, over a session whose certificate is
/// accepted whatever it is ([`bind_later_config`]); the caller checks the
/// session's key with [`Verified::session_check`]. The body read is at most
/// [`MAX_APP_RESPONSE`] bytes.
pub async fn post_app(
    url: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<AppAnswer, ClientError> {
    let parsed = parse_https(
        url,
        "the app is reached over TLS: use https://HOST:PORT/PATH",
    )?;
    let client = http_client(timeout)?;
    let mut response = client
        .post(parsed)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|error| classify(url, &error))?;
    let bad = |why: String| ClientError::BadResponse {
        url: url.to_string(),
        why,
    };
    let spki = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .map(spki_of)
        .transpose()
        .map_err(|why| bad(format!("the app's TLS certificate: {why}")))?
        .ok_or_else(|| bad("no TLS certificate on the session".into()))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|value| (name.as_str().to_string(), value.to_string()))
        })
        .collect();
    let mut received = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| classify(url, &error))?
    {
        if received.len() + chunk.len() > MAX_APP_RESPONSE {
            return Err(bad(format!("answer larger than {MAX_APP_RESPONSE} bytes")));
        }
        received.extend_from_slice(&chunk);
    }
    Ok(AppAnswer {
        status,
        headers,
        body: received,
        spki,
    })
}

/// `tls_binding`: the verified `/tls_doc/` document binds the key of the
/// TLS sessions both answers came over.
fn tls_binding_check(tls_report: &Report, tls_spki: &[u8], doc_spki: Option<&[u8]>) -> Check {
    const NAME: &str = "tls_binding";
    let check = bound_key_check(NAME, "the server's", tls_report, tls_spki);
    if check.outcome == Outcome::Fail {
        return check;
    }
    if doc_spki.is_some_and(|doc_spki| doc_spki != tls_spki) {
        return Check::fail(
            NAME,
            "the /doc/ answer came over a TLS session with another key than the attested one",
        );
    }
    check
}

/// Whether the key whose DER SubjectPublicKeyInfo is `spki` is the one the
/// verified `/tls_doc/` document (`tls_report`) binds; `whose` names the
/// key's holder in the detail. The one implementation behind `tls_binding`
/// and `endpoint`.
fn bound_key_check(name: &'static str, whose: &str, tls_report: &Report, spki: &[u8]) -> Check {
    if !tls_report.passed() {
        let failed: Vec<String> = tls_report
            .checks
            .iter()
            .filter(|check| check.outcome == Outcome::Fail)
            .map(|check| format!("{}: {}", check.name, check.detail))
            .collect();
        return Check::fail(
            name,
            format!("the /tls_doc/ document fails: {}", failed.join("; ")),
        );
    }
    let Some(binding) = tls_report
        .document
        .as_ref()
        .and_then(|document| document.user_data())
        .and_then(|user_data| TlsBinding::from_bytes(user_data).ok())
    else {
        return Check::fail(name, "the /tls_doc/ document has no TLS binding");
    };
    let session = Sha3Digest::of(spki).map(|digest| digest.to_hex());
    let session = session.unwrap_or_default();
    let short = &session[..16.min(session.len())];
    if !binding.matches(spki) {
        return Check::fail(
            name,
            format!(
                "{whose} TLS key (SPKI SHA3-512 {short}) is not the attested one ({}): something else terminates TLS",
                &binding.tls_spki_sha3_512.to_hex()[..16]
            ),
        );
    }
    if tls_report.signer == Signer::Unsigned {
        return Check::skip(
            name,
            format!(
                "the /tls_doc/ document names {whose} TLS key but is unsigned: anyone could have made it, so the binding proves nothing"
            ),
        );
    }
    Check::pass(
        name,
        format!(
            "{whose} TLS key (SPKI SHA3-512 {short}...) is bound by a verified /tls_doc/ document made for a fresh nonce"
        ),
    )
}

/// A TLS endpoint to check, `https://HOST[:PORT]` (port 443 by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The endpoint as given (shown in the report).
    pub shown: String,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// Parses `https://HOST[:PORT]` (a path, if any, is ignored).
    pub fn parse(text: &str) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::BadUrl {
            url: text.to_string(),
            why: why.to_string(),
        };
        let url = parse_https(
            text,
            "an endpoint is checked over TLS: use https://HOST:PORT",
        )?;
        let shown_host = url.host_str().ok_or_else(|| bad("no host"))?;
        let port = url.port_or_known_default().unwrap_or(443);
        Ok(Self {
            shown: format!("https://{shown_host}:{port}"),
            host: shown_host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        })
    }
}

/// `endpoint`: a TLS handshake with `endpoint` presents the key the
/// verified `/tls_doc/` document binds.
pub async fn endpoint_check(endpoint: &Endpoint, tls_report: &Report, timeout: Duration) -> Check {
    const NAME: &str = "endpoint";
    let whose = format!("{}: the endpoint's", endpoint.shown);
    match tokio::time::timeout(timeout, endpoint_spki(endpoint)).await {
        Ok(Ok(spki)) => bound_key_check(NAME, &whose, tls_report, &spki),
        Ok(Err(why)) => Check::fail(NAME, format!("{}: {why}", endpoint.shown)),
        Err(_) => Check::fail(
            NAME,
            format!("{}: no TLS handshake within {timeout:?}", endpoint.shown),
        ),
    }
}

/// Connects to `endpoint`, makes a TLS handshake (any certificate, its
/// handshake signature checked) and returns the DER SubjectPublicKeyInfo
/// of the certificate the endpoint presented.
async fn endpoint_spki(endpoint: &Endpoint) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncWriteExt;
    let server_name =
        ServerName::try_from(endpoint.host.clone()).map_err(|error| error.to_string())?;
    let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await;
    let tcp = tcp.map_err(|error| format!("cannot connect: {error}"))?;
    let config = bind_later_config().map_err(|error| error.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(|error| format!("TLS handshake failed: {error}"))?;
    let spki = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| "no certificate in the TLS handshake".to_string())
        .and_then(|leaf| spki_of(leaf).map_err(|why| format!("its certificate: {why}")))?;
    let _ = tls.shutdown().await;
    Ok(spki)
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

fn http_client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(
            bind_later_config().map_err(|error| ClientError::Tls(error.to_string()))?,
        )
        .tls_info(true)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| ClientError::Tls(error.to_string()))
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
