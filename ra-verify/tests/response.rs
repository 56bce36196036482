#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! `ra-verify response`: online against a real HTTPS server serving real
//! development-NSM documents (the key file's among them) and an app behind
//! the same TLS key that signs its answers, honestly or not; offline on the
//! evidence saved, and on that evidence tampered with.

mod common;

use std::path::Path;

use common::server::{self, App, Mode};
use common::{PCR0_BYTE, Run, file_document, pcrs_file, ra_verify};
use ra_verify::defs::DEFAULT_RESPONSE_KEY_PATH;

const REQUEST: &[u8] =
    br#"{"messages":[{"role":"user","content":"Capital of France?"}],"temperature":0}"#;

async fn ra_verify_async(args: Vec<String>) -> Run {
    tokio::task::spawn_blocking(move || ra_verify(&args))
        .await
        .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| arg.to_string()).collect()
}

fn line<'a>(run: &'a Run, prefix: &str) -> Option<&'a str> {
    run.stdout.lines().find(|line| line.starts_with(prefix))
}

/// A directory with the development root, the PCR file, the request and a
/// copy of "the model" (bytes whose SHA3-512 is the app's model hash).
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(server: &server::Server) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dev-root.pem"), server.pki.root_pem()).unwrap();
        std::fs::write(dir.path().join("app.eif.pcrs"), pcrs_file(PCR0_BYTE)).unwrap();
        std::fs::write(dir.path().join("request.json"), REQUEST).unwrap();
        std::fs::write(dir.path().join("model.gguf"), b"model").unwrap();
        std::fs::write(dir.path().join("other.gguf"), b"another model").unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `response` online against `server`'s app, with the trust flags.
    fn online(&self, server: &server::Server, app_url: &str, extra: &[&str]) -> Vec<String> {
        let mut args = strings(&[
            "response",
            "--url",
            &server.url(),
            "--app-url",
            app_url,
            "--data",
            &self.path("request.json"),
            "--root",
            &self.path("dev-root.pem"),
            "--pcrs",
            &self.path("app.eif.pcrs"),
        ]);
        args.extend(strings(extra));
        args
    }

    fn offline(&self, evidence: &str, extra: &[&str]) -> Vec<String> {
        let mut args = strings(&[
            "response",
            "--evidence",
            evidence,
            "--root",
            &self.path("dev-root.pem"),
            "--pcrs",
            &self.path("app.eif.pcrs"),
        ]);
        args.extend(strings(extra));
        args
    }
}

fn app_url(server: &server::Server) -> String {
    format!("{}/v1/chat/completions", server.same_key_url())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_answer_verifies_online_and_its_evidence_offline() {
    let key_file = server::app_key_file();
    let server = server::start_with_app(
        Mode::Honest,
        &[(DEFAULT_RESPONSE_KEY_PATH, &key_file)],
        App::Honest,
    )
    .await;
    let setup = Setup::new(&server);
    let out = setup.path("evidence");
    let run = ra_verify_async(setup.online(
        &server,
        &app_url(&server),
        &[
            "--nonce",
            "--out",
            &out,
            "--model-file",
            &setup.path("model.gguf"),
            "--require-profile",
            "debug",
        ],
    ))
    .await;
    assert_eq!(run.status, 1, "the PCR file records no profile");
    assert!(line(&run, "FAIL profile").is_some());
    assert!(
        line(&run, "SKIP response_signature: ")
            .unwrap()
            .contains("not sent"),
        "not sent to an image of unknown profile"
    );

    let run = ra_verify_async(setup.online(
        &server,
        &app_url(&server),
        &[
            "--nonce",
            "--out",
            &out,
            "--model-file",
            &setup.path("model.gguf"),
        ],
    ))
    .await;
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("PASS tls_binding: "));
    for name in [
        "document",
        "cose_signature",
        "certificate_chain",
        "pcrs",
        "user_data",
        "file_hash",
        "vrf_proof",
        "nonce",
        "signing_key",
        "response_signature",
        "model_file",
    ] {
        assert!(
            line(&run, &format!("PASS {name}: ")).is_some(),
            "{name}: {}",
            run.stdout
        );
    }
    assert!(
        line(&run, "PASS user_data: ")
            .unwrap()
            .contains(DEFAULT_RESPONSE_KEY_PATH)
    );
    assert!(
        line(&run, "PASS file_hash: ")
            .unwrap()
            .contains("response-key.pub")
    );
    // The handshake before sending, and the session the answer came over.
    assert_eq!(
        run.stdout
            .lines()
            .filter(|line| line.starts_with("PASS endpoint: "))
            .count(),
        2
    );
    assert!(
        line(&run, "PASS response_signature: ")
            .unwrap()
            .ends_with(server::APP_MODEL)
    );
    for name in [
        "request.json",
        "response.json",
        "signature.json",
        "response-key.pub",
        "document.hex",
    ] {
        assert!(Path::new(&out).join(name).is_file(), "{name}");
    }
    assert_eq!(
        std::fs::read(Path::new(&out).join("request.json")).unwrap(),
        REQUEST
    );
    assert_eq!(
        std::fs::read(Path::new(&out).join("response-key.pub")).unwrap(),
        key_file
    );

    // Offline, later: the same verdict (without a nonce to check).
    let run =
        ra_verify_async(setup.offline(&out, &["--model-file", &setup.path("model.gguf")])).await;
    assert_eq!(run.status, 0);
    assert!(line(&run, "PASS response_signature: ").is_some());
    assert!(line(&run, "PASS file_hash: ").is_some());
    assert!(line(&run, "SKIP nonce: ").is_some());
    assert!(run.stdout.lines().last().unwrap().contains("DEVELOPMENT"));

    // Another model file: that one did not answer.
    let run =
        ra_verify_async(setup.offline(&out, &["--model-file", &setup.path("other.gguf")])).await;
    assert_eq!(run.status, 1);
    assert!(line(&run, "FAIL model_file: ").is_some());
    // Another root: the document does not chain.
    let other_root = setup.path("other-root.der");
    std::fs::write(&other_root, common::DevPki::generate().root_der()).unwrap();
    let mut args = strings(&["response", "--evidence", &out, "--root", &other_root]);
    args.push("--allow-unsigned".into());
    let run = ra_verify_async(args).await;
    assert_eq!(run.status, 1);
    assert!(line(&run, "FAIL certificate_chain: ").is_some());
}

/// Runs the offline check on a copy of `evidence` changed by `change`.
async fn offline_tampered(
    setup: &Setup,
    evidence: &str,
    name: &str,
    change: impl FnOnce(&Path),
) -> Run {
    let copy = setup.dir.path().join(name);
    copy_dir(Path::new(evidence), &copy);
    change(&copy);
    ra_verify_async(setup.offline(&copy.display().to_string(), &[])).await
}

fn flip_byte(path: &Path, needle: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(needle.len())
        .position(|window| window == needle)
        .unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_evidence_fails_offline() {
    let key_file = server::app_key_file();
    let server = server::start_with_app(
        Mode::Honest,
        &[(DEFAULT_RESPONSE_KEY_PATH, &key_file)],
        App::Honest,
    )
    .await;
    let setup = Setup::new(&server);
    let out = setup.path("evidence");
    let run = ra_verify_async(setup.online(&server, &app_url(&server), &["--out", &out])).await;
    assert_eq!(run.status, 0, "{}", run.stdout);

    // One byte of the answer.
    let run = offline_tampered(&setup, &out, "answer", |dir| {
        flip_byte(&dir.join("response.json"), b"Paris")
    })
    .await;
    assert_eq!(run.status, 1);
    assert!(line(&run, "FAIL response_signature: ").is_some());
    // The request: the answer was to another question.
    let run = offline_tampered(&setup, &out, "request", |dir| {
        flip_byte(&dir.join("request.json"), b"France")
    })
    .await;
    assert!(line(&run, "FAIL response_signature: ").is_some());
    // Another model named in the answer.
    let run = offline_tampered(&setup, &out, "model", |dir| {
        flip_byte(
            &dir.join("response.json"),
            &server::APP_MODEL.as_bytes()[1..9],
        )
    })
    .await;
    assert!(line(&run, "FAIL response_signature: ").is_some());

    // A forger with a key of their own signs the answer and names their
    // key: the signature holds, but the attested key file is not theirs.
    let forger = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap();
    let forged_key = {
        use ring::signature::KeyPair;
        hex::encode(forger.public_key().as_ref())
    };
    let run = offline_tampered(&setup, &out, "forged", |dir| {
        let response = std::fs::read(dir.join("response.json")).unwrap();
        let message =
            ra_verify::response::signed_message(REQUEST, &response, server::APP_MODEL).unwrap();
        let signature = ra_verify::response::encode_signature(forger.sign(&message).as_ref());
        let mut saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("signature.json")).unwrap()).unwrap();
        saved["signature"]["signature"] = signature.into();
        saved["signature"]["public_key"] = forged_key.clone().into();
        std::fs::write(dir.join("signature.json"), saved.to_string()).unwrap();
        std::fs::write(dir.join("response-key.pub"), format!("{forged_key}\n")).unwrap();
    })
    .await;
    assert_eq!(run.status, 1);
    assert!(line(&run, "PASS response_signature: ").is_some());
    assert!(
        line(&run, "FAIL file_hash: ").is_some(),
        "the document attests the honest key file: {}",
        run.stdout
    );
    // ... and keeps the honest key file next to it: the file does not hold
    // the key that signed.
    let run = offline_tampered(&setup, &out, "forged-keep-file", |dir| {
        let mut saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("signature.json")).unwrap()).unwrap();
        saved["signature"]["public_key"] = forged_key.clone().into();
        std::fs::write(dir.join("signature.json"), saved.to_string()).unwrap();
    })
    .await;
    assert!(line(&run, "FAIL signing_key: ").is_some());
    assert!(line(&run, "FAIL response_signature: ").is_some());

    // A real document for a key file at another path (say one copied into
    // /data): refused by path, even though everything else verifies.
    let elsewhere = "/data/my-key.pub";
    let run = offline_tampered(&setup, &out, "elsewhere", |dir| {
        let doc = file_document(&server.pki, elsewhere, &key_file, None);
        std::fs::write(dir.join("document.hex"), hex::encode(doc.document)).unwrap();
        let mut saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("signature.json")).unwrap()).unwrap();
        saved["signature"]["signing_key"] = elsewhere.into();
        std::fs::write(dir.join("signature.json"), saved.to_string()).unwrap();
    })
    .await;
    assert!(line(&run, "FAIL user_data: ").is_some(), "{}", run.stdout);
    assert!(line(&run, "FAIL signing_key: ").is_some());
    // The document itself altered.
    let run = offline_tampered(&setup, &out, "document", |dir| {
        let text = std::fs::read_to_string(dir.join("document.hex")).unwrap();
        let mut bytes = hex::decode(text.trim()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(dir.join("document.hex"), hex::encode(bytes)).unwrap();
    })
    .await;
    assert!(line(&run, "FAIL cose_signature: ").is_some());
    // Missing files: bad usage.
    let run = offline_tampered(&setup, &out, "missing", |dir| {
        std::fs::remove_file(dir.join("document.hex")).unwrap()
    })
    .await;
    assert_eq!(run.status, 64);
    assert!(run.stderr.contains("document.hex"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dishonest_apps_and_impostors_fail_online() {
    let key_file = server::app_key_file();
    let files = [(DEFAULT_RESPONSE_KEY_PATH, key_file.as_slice())];
    for (app, failed) in [
        (App::AltersAnswer, "FAIL response_signature: "),
        (App::OtherKey, "FAIL file_hash: "),
        (App::Unsigned, "FAIL response_signature: "),
    ] {
        let server = server::start_with_app(Mode::Honest, &files, app).await;
        let setup = Setup::new(&server);
        let run = ra_verify_async(setup.online(&server, &app_url(&server), &[])).await;
        assert_eq!(run.status, 1, "{app:?}");
        assert!(line(&run, failed).is_some(), "{app:?}: {}", run.stdout);
    }

    // A signed stream verifies, and is saved as response.sse.
    let server = server::start_with_app(Mode::Honest, &files, App::Stream).await;
    let setup = Setup::new(&server);
    let out = setup.path("stream");
    let run = ra_verify_async(setup.online(&server, &app_url(&server), &["--out", &out])).await;
    assert_eq!(run.status, 0, "{}", run.stdout);
    assert!(
        line(&run, "PASS response_signature: ")
            .unwrap()
            .contains("the stream")
    );
    assert!(Path::new(&out).join("response.sse").is_file());
    let run = ra_verify_async(setup.offline(&out, &[])).await;
    assert_eq!(run.status, 0);

    // An app endpoint with another TLS key (the host terminating TLS):
    // nothing is sent to it.
    let impostor = server::start_with_app(Mode::Honest, &files, App::Honest).await;
    let run = ra_verify_async(setup.online(&server, &app_url(&impostor), &[])).await;
    assert_eq!(run.status, 1);
    assert!(line(&run, "FAIL endpoint: ").is_some());
    assert!(
        line(&run, "SKIP response_signature: ")
            .unwrap()
            .contains("not sent")
    );

    // A key file whose document the server does not have: its error.
    let bare = server::start_with_app(Mode::Honest, &[], App::Honest).await;
    let setup = Setup::new(&bare);
    let run = ra_verify_async(setup.online(&bare, &app_url(&bare), &[])).await;
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("404"), "{}", run.stderr);
}

#[test]
fn bad_usage_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("request.json");
    std::fs::write(&data, REQUEST).unwrap();
    let data = data.display().to_string();
    let cases: [&[&str]; 6] = [
        &["response"],
        &[
            "response",
            "--app-url",
            "https://127.0.0.1:1/v1/x",
            "--data",
            &data,
        ],
        &["response", "--url", "https://127.0.0.1:1", "--data", &data],
        &[
            "response",
            "--url",
            "https://127.0.0.1:1",
            "--app-url",
            "http://127.0.0.1:2/v1/x",
            "--data",
            &data,
        ],
        &["response", "--evidence", "/nonexistent/evidence", "--nonce"],
        &[
            "response",
            "--url",
            "https://127.0.0.1:1",
            "--app-url",
            "https://127.0.0.1:2/v1/x",
            "--data",
            "/nonexistent/request.json",
        ],
    ];
    for args in cases {
        let run = ra_verify(&strings(args));
        assert_eq!(run.status, 64, "{args:?}");
        assert!(run.stdout.is_empty());
    }
    let run = ra_verify(&strings(&[
        "response",
        "--evidence",
        "/nonexistent/evidence",
    ]));
    assert_eq!(run.status, 64);
    assert!(run.stderr.contains("signature.json"));
}
