#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Signed responses: the binary with `--signing-key-dir`, the real model
//! over a real socket, and the signatures checked with the verifier's own
//! code (`ra_verify_core::response`) and the key file the server wrote.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ra_verify_core::defs::{DEFAULT_RESPONSE_KEY_PATH, RESPONSE_KEY_FILE};
use ra_verify_core::response::{
    Exchange, ResponseSignature, check_exchange, key_file_contents, signed_message,
    verify_response_signature,
};
use ra_verify_core::verify::Outcome;
use serde_json::{Value, json};

/// The server, killed when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(key_dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_inference-server"))
        .args(["--listen", "127.0.0.1:0", "--signing-key-dir"])
        .arg(key_dir)
        .arg("--model")
        .arg(common::model_path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut address = None;
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            address = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    // Keep draining the logs so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        address: address.expect("the server did not log its address"),
    }
}

fn key_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

struct Answer {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// POSTs exactly `body` (the bytes the signature must cover).
async fn post_bytes(address: &str, path: &str, body: &[u8]) -> Answer {
    let response = common::client()
        .post(format!("http://{address}{path}"))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

fn chat_bytes(content: &str, stream: bool) -> Vec<u8> {
    let mut request = common::chat(content, 6);
    if stream {
        request["stream"] = json!(true);
        request["stream_options"] = json!({"include_usage": true});
    }
    serde_json::to_vec(&request).unwrap()
}

#[tokio::test]
async fn answers_are_signed_by_the_key_in_the_key_file() {
    let dir = key_dir();
    let server = start(dir.path());
    let key_path = dir.path().join(RESPONSE_KEY_FILE);
    let key_file = std::fs::read(&key_path).unwrap();
    assert_eq!(key_file.len(), 65, "64 hex digits and a newline");
    let public_hex = std::str::from_utf8(&key_file[..64]).unwrap().to_owned();
    assert_eq!(
        key_file_contents(&hex::decode(&public_hex).unwrap()),
        key_file
    );
    // Only the key file: no temporary file, no private key, in the directory.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, [RESPONSE_KEY_FILE]);

    // A whole chat completion.
    let request = chat_bytes("What is the capital of France?", false);
    let answer = post_bytes(&server.address, "/v1/chat/completions", &request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-enclave-signed"), Some("v1"));
    assert_eq!(
        answer.header("x-enclave-signing-key"),
        key_path.to_str(),
        "the path as given"
    );
    assert_eq!(
        answer.header("x-enclave-signing-public-key"),
        Some(public_hex.as_str())
    );
    let json: Value = serde_json::from_slice(&answer.body).unwrap();
    let model = json["model_sha3_512"].as_str().unwrap().to_owned();
    assert_eq!(
        model,
        ra_verify_core::hash_file(&common::model_path())
            .unwrap()
            .to_hex()
    );
    // The shared functions, with the key from the file.
    let message = signed_message(&request, &answer.body, &model).unwrap();
    let signature = answer.header("x-enclave-signature").unwrap();
    verify_response_signature(&public_hex, &message, signature).unwrap();

    // The verifier's checks of the exchange, honest and tampered.
    let exchange = Exchange {
        request: request.clone(),
        response: answer.body.clone(),
        stream: false,
        headers: ResponseSignature::from_headers(|name| answer.header(name)),
    };
    let key_path_text = key_path.to_str().unwrap();
    let checks = check_exchange(&exchange, key_path_text);
    assert_eq!(checks.signing_key.outcome, Outcome::Pass, "{checks:?}");
    assert_eq!(checks.response_signature.outcome, Outcome::Pass);
    assert_eq!(
        checks.key_file_hash().unwrap().digest,
        ra_verify_core::hash_file(&key_path).unwrap(),
        "the verifier's key file hash is the file's"
    );
    // Not the image's key path: refused, whoever signed.
    let elsewhere = check_exchange(&exchange, DEFAULT_RESPONSE_KEY_PATH);
    assert_eq!(elsewhere.signing_key.outcome, Outcome::Fail);
    // A hostile relay changes one byte of the answer's text.
    let mut altered = exchange.clone();
    let at = altered.response.len() / 2;
    altered.response[at] ^= 0x01;
    assert_eq!(
        check_exchange(&altered, key_path_text)
            .response_signature
            .outcome,
        Outcome::Fail
    );
    // ... or claims the answer came for another request.
    let mut other_request = exchange.clone();
    other_request.request = chat_bytes("What is the capital of Spain?", false);
    assert_eq!(
        check_exchange(&other_request, key_path_text)
            .response_signature
            .outcome,
        Outcome::Fail
    );

    // A completion through the overview's route is signed too.
    let prompt = serde_json::to_vec(
        &json!({"prompt": "The capital of France is", "temperature": 0, "max_tokens": 4}),
    )
    .unwrap();
    let answer = post_bytes(&server.address, "/completions", &prompt).await;
    assert_eq!(answer.status, 200);
    let exchange = Exchange {
        request: prompt,
        response: answer.body.clone(),
        stream: false,
        headers: ResponseSignature::from_headers(|name| answer.header(name)),
    };
    assert_eq!(
        check_exchange(&exchange, key_path_text)
            .response_signature
            .outcome,
        Outcome::Pass
    );

    // Errors are not signed.
    let answer = post_bytes(&server.address, "/v1/chat/completions", b"{not json").await;
    assert_eq!(answer.status, 400);
    assert!(answer.header("x-enclave-signature").is_none());
    assert!(answer.header("x-enclave-signed").is_none());

    // A stream: the signature event covers every byte before it.
    let request = chat_bytes("Name three colours.", true);
    let answer = post_bytes(&server.address, "/v1/chat/completions", &request).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(answer.header("x-enclave-signed"), Some("v1"));
    let text = String::from_utf8(answer.body.clone()).unwrap();
    assert!(text.contains("\n\nevent: signature\ndata: {"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let stream = Exchange {
        request: request.clone(),
        response: answer.body.clone(),
        stream: true,
        headers: Err("in the event".into()),
    };
    let checks = check_exchange(&stream, key_path_text);
    assert_eq!(
        checks.response_signature.outcome,
        Outcome::Pass,
        "{checks:?}\n{text}"
    );
    assert_eq!(checks.model_sha3_512.as_deref(), Some(model.as_str()));
    // The usage chunk (before the signature) dropped by a relay.
    let usage_at = text.find("data: {\"id\"").unwrap();
    let last_chunk = text[..text.find("event: signature").unwrap()]
        .rfind("data: {")
        .unwrap();
    assert!(last_chunk > usage_at);
    let mut dropped = text.clone();
    let end = last_chunk + dropped[last_chunk..].find("\n\n").unwrap() + 2;
    dropped.replace_range(last_chunk..end, "");
    let dropped = Exchange {
        response: dropped.into_bytes(),
        ..stream.clone()
    };
    assert_eq!(
        check_exchange(&dropped, key_path_text)
            .response_signature
            .outcome,
        Outcome::Fail
    );
}

#[test]
fn a_key_directory_others_could_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o775)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_inference-server"))
        .args(["--listen", "127.0.0.1:0", "--signing-key-dir"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("group or others") && stderr.contains("0775"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A relative path could not be the one the enclave attests.
    let output = Command::new(env!("CARGO_BIN_EXE_inference-server"))
        .args(["--listen", "127.0.0.1:0", "--signing-key-dir", "keys"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not an absolute path"));
}
