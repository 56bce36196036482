//! Shared helpers: a real server on loopback ports and an HTTPS client that
//! pins the server's own certificate.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ra_web_srv::Config;
use ra_web_srv::server::Running;
use reqwest::StatusCode;
use serde_json::Value;

pub struct TestServer {
    pub running: Option<Running>,
    pub client: reqwest::Client,
    pub base: String,
    pub state: PathBuf,
}

/// A development configuration with `state` and one root.
pub fn config(state: &Path, root: &Path) -> Config {
    let mut config = Config::development(state);
    config.root_dirs = vec![root.to_owned()];
    config
}

pub async fn start(config: Config) -> TestServer {
    let state = config.state_dir.clone();
    let running = ra_web_srv::start(config).await.unwrap();
    let port = match running.https_addr() {
        transport::Address::Tcp { port, .. } => *port,
        other => panic!("not tcp: {other}"),
    };
    let cert_pem = std::fs::read(state.join(ra_web_srv::defs::TLS_CERT_FILE)).unwrap();
    TestServer {
        running: Some(running),
        client: client(&cert_pem),
        base: format!("https://127.0.0.1:{port}"),
        state,
    }
}

/// A reqwest client over rustls (ring) trusting only `cert_pem`.
pub fn client(cert_pem: &[u8]) -> reqwest::Client {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        split(response).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        split(response).await
    }

    /// POST /generate and wait until the path is ready; returns the canonical path.
    pub async fn generate(&self, path: &Path) -> String {
        let (status, body) = self
            .post("/generate", &serde_json::json!({"path": path}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let poll = body["poll"].as_str().unwrap().to_string();
        for _ in 0..600 {
            let (status, body) = self.get(&poll).await;
            match status {
                StatusCode::OK => return body["path"].as_str().unwrap().to_string(),
                StatusCode::SERVICE_UNAVAILABLE => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                _ => panic!("{status} {body}"),
            }
        }
        panic!("{} never got ready", path.display());
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

/// GET `url` with `client` and read the JSON it answers (any status).
pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

async fn split(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{status}: content-type {content_type:?}: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["nsm"], "development", "{body}");
    (status, body)
}

/// `?path=` with the path percent-encoded.
pub fn q(path: &str) -> String {
    ra_web_srv::api::encode_query(path)
}

/// The development root the server wrote.
pub fn dev_root(state: &Path) -> ra_verify::roots::Root {
    ra_verify::roots::Root::load(&state.join(ra_web_srv::defs::DEV_ROOT_PEM)).unwrap()
}
