//! Shared by the integration tests: the real model, found through
//! `INFERENCE_MODEL_GGUF` (set by `fetch-model.sh`'s path), and one server
//! per test binary on an ephemeral loopback port.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use inference_server::Registry;

/// The variable that names the model file.
pub const MODEL_VAR: &str = "INFERENCE_MODEL_GGUF";

/// The model file; fails the test with instructions when it is missing.
pub fn model_path() -> PathBuf {
    let Some(path) = std::env::var_os(MODEL_VAR) else {
        panic!(
            "{MODEL_VAR} is not set: these tests need the real model. Run\n  \
             export {MODEL_VAR}=$(reference_apps/inference_server/fetch-model.sh)\n\
             (tools/devtool test does it for you)"
        );
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{MODEL_VAR}={} is not a file: run reference_apps/inference_server/fetch-model.sh",
        path.display()
    );
    path
}

/// The name the model is served under (its file stem).
pub fn model_name() -> String {
    inference_server::registry::default_name(&model_path()).unwrap()
}

/// A server with the model loaded, started once per test binary with
/// `queue` as its queue capacity, in a thread of its own (it outlives
/// each test's runtime).
pub fn server_with_queue(queue: usize) -> SocketAddr {
    static SERVER: OnceLock<SocketAddr> = OnceLock::new();
    *SERVER.get_or_init(|| {
        let path = model_path();
        let (ready, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let registry = Arc::new(Registry::new(queue));
                registry.load(path, None).await.unwrap();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready.send(listener.local_addr().unwrap()).unwrap();
                inference_server::run(listener, registry, std::future::pending())
                    .await
                    .unwrap();
            });
        });
        address.recv().expect("the test server did not start")
    })
}

/// The shared server with the default queue.
pub fn server() -> SocketAddr {
    server_with_queue(inference_server::defs::DEFAULT_QUEUE_CAPACITY)
}

/// An HTTP client.
pub fn client() -> reqwest::Client {
    // reqwest is built without a default TLS provider (plain HTTP here).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .unwrap()
}

/// POSTs `body` to `path`; returns the status and the JSON answer.
pub async fn post(
    address: SocketAddr,
    path: &str,
    body: serde_json::Value,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = client()
        .post(format!("http://{address}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{path} answered {status} with non-JSON {text:?}: {error}"));
    (status, json)
}

/// A chat request with a short system message (a short prompt keeps the
/// tests fast) and one user message, greedy.
pub fn chat(content: &str, max_tokens: usize) -> serde_json::Value {
    serde_json::json!({
        "model": model_name(),
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": content},
        ],
        "temperature": 0,
        "max_tokens": max_tokens,
    })
}
