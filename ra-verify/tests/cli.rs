#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The `ra-verify` binary: offline on real signed documents saved to
//! files, online against a real HTTPS server, and its exit statuses.

mod common;

use std::path::{Path, PathBuf};

use common::{DevPki, PCR0_BYTE, Run, file_document, pcrs_file, ra_verify, unsigned_document};
use ra_verify::UserData;
use ra_verify::hash::Sha3Digest;
use ra_verify::proof::{Suite, VrfKey};

const PATH: &str = "/data/report.txt";
const CONTENT: &[u8] = b"the attested content\n";

/// A directory with a development root (PEM), a .pcrs file, the local copy
/// of the file, and documents.
struct Setup {
    dir: tempfile::TempDir,
    pki: DevPki,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::generate();
        std::fs::write(dir.path().join("dev-root.pem"), pki.root_pem()).unwrap();
        std::fs::write(dir.path().join("app.eif.pcrs"), pcrs_file(PCR0_BYTE)).unwrap();
        std::fs::write(dir.path().join("other.eif.pcrs"), pcrs_file(PCR0_BYTE + 1)).unwrap();
        std::fs::write(dir.path().join("local.txt"), CONTENT).unwrap();
        std::fs::write(dir.path().join("other.txt"), b"other").unwrap();
        Self { dir, pki }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn save(&self, name: &str, bytes: &[u8]) -> String {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn saved_hex_document(&self, nonce: Option<Vec<u8>>) -> String {
        let doc = file_document(&self.pki, PATH, CONTENT, nonce);
        self.save(
            "doc.hex",
            format!("{}\n", hex::encode(doc.document)).as_bytes(),
        )
    }
}

fn lines_starting(run: &Run, word: &str) -> Vec<String> {
    run.stdout
        .lines()
        .filter(|line| line.starts_with(word))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_saved_development_document_passes_with_its_root() {
    let setup = Setup::new();
    let document = setup.saved_hex_document(Some(b"\x01\x02".to_vec()));
    let run = ra_verify(&[
        "doc",
        "--document",
        &document,
        "--path",
        PATH,
        "--root",
        &setup.path("dev-root.pem"),
        "--pcrs",
        &setup.path("app.eif.pcrs"),
        "--file",
        &setup.path("local.txt"),
        "--expect-nonce",
        "0102",
    ]);
    assert_eq!(run.status, 0);
    let names: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix("PASS "))
        .map(|rest| rest.split(':').next().unwrap())
        .collect();
    assert_eq!(names, common::FILE_CHECKS);
    let verdict = run.stdout.lines().last().unwrap();
    assert!(verdict.starts_with("VERDICT PASS"), "{verdict}");
    assert!(verdict.contains("DEVELOPMENT"), "{verdict}");

    // Raw bytes work as well as hex, and unchecked things are SKIP lines.
    let doc = file_document(&setup.pki, PATH, CONTENT, None);
    let raw = setup.save("doc.cbor", &doc.document);
    let run = ra_verify(&[
        "doc",
        "--document",
        &raw,
        "--root",
        &setup.path("dev-root.pem"),
    ]);
    assert_eq!(run.status, 0);
    assert_eq!(lines_starting(&run, "SKIP").len(), 3);
}

#[test]
fn a_development_document_is_refused_without_its_root_and_says_development() {
    let setup = Setup::new();
    let document = setup.saved_hex_document(None);
    let run = ra_verify(&["doc", "--document", &document]);
    assert_eq!(run.status, 1);
    let fails = lines_starting(&run, "FAIL");
    assert_eq!(fails.len(), 1, "{fails:?}");
    assert!(fails[0].starts_with("FAIL certificate_chain: "));
    assert!(fails[0].contains("development"));
    assert!(
        run.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("VERDICT FAIL")
    );
    // Another development root is as wrong.
    let other = DevPki::generate();
    let other_root = setup.save("other-root.der", &other.root_der());
    let run = ra_verify(&["doc", "--document", &document, "--root", &other_root]);
    assert_eq!(run.status, 1);
    assert!(run.stdout.contains("FAIL certificate_chain"));
}

#[test]
fn each_mismatch_fails_its_own_check() {
    let setup = Setup::new();
    let document = setup.saved_hex_document(Some(vec![7]));
    let root = setup.path("dev-root.pem");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--pcrs", &setup.path("other.eif.pcrs")],
            "FAIL pcrs: PCR0",
        ),
        (&["--file", &setup.path("other.txt")], "FAIL file_hash"),
        (&["--path", "/data/else"], "FAIL user_data"),
        (&["--expect-nonce", "08"], "FAIL nonce"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["doc", "--document", &document, "--root", &root];
        args.extend_from_slice(extra);
        let run = ra_verify(&args);
        assert_eq!(run.status, 1, "{extra:?}");
        let fails = lines_starting(&run, "FAIL");
        assert_eq!(fails.len(), 1, "{fails:?}");
        assert!(fails[0].starts_with(expected), "{fails:?}");
    }
}

#[test]
fn tampered_truncated_and_garbage_documents_fail() {
    let setup = Setup::new();
    let root = setup.path("dev-root.pem");
    let doc = file_document(&setup.pki, PATH, CONTENT, None);
    let mut tampered = doc.document.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let tampered = setup.save("tampered", &tampered);
    let run = ra_verify(&["doc", "--document", &tampered, "--root", &root]);
    assert_eq!(run.status, 1);
    assert!(run.stdout.contains("FAIL cose_signature"));

    let truncated = setup.save("truncated", &doc.document[..doc.document.len() / 2]);
    let garbage = setup.save("garbage", b"this is not a document");
    let odd_hex = setup.save("odd", b"abc\n");
    for file in [truncated, garbage, odd_hex] {
        let run = ra_verify(&["doc", "--document", &file, "--root", &root]);
        assert_eq!(run.status, 1);
        assert!(run.stdout.starts_with("FAIL document: "), "{}", run.stdout);
    }
}

#[test]
fn unsigned_documents_need_allow_unsigned() {
    let setup = Setup::new();
    let key = VrfKey::generate(Suite::P256Sha256Tai).unwrap();
    let binding = UserData::prove(PATH, Sha3Digest::of(CONTENT).unwrap(), &key).unwrap();
    let document = setup.save(
        "qemu.cbor",
        &unsigned_document(binding.to_bytes().unwrap(), key.public_key().to_vec()),
    );
    let run = ra_verify(&["doc", "--document", &document]);
    assert_eq!(run.status, 1);
    assert!(
        run.stdout
            .contains("FAIL cose_signature: unsigned document")
    );
    assert!(run.stdout.contains("--allow-unsigned"));
    let run = ra_verify(&[
        "doc",
        "--document",
        &document,
        "--allow-unsigned",
        "--file",
        &setup.path("local.txt"),
    ]);
    assert_eq!(run.status, 0);
    assert!(
        run.stdout
            .contains("SKIP cose_signature: unsigned document")
    );
    assert!(run.stdout.lines().last().unwrap().contains("UNSIGNED"));
}

#[test]
fn bad_usage_exits_64_with_a_message() {
    let setup = Setup::new();
    let document = setup.saved_hex_document(None);
    let missing = setup.path("missing");
    let cases: [&[&str]; 10] = [
        &[],
        &["doc"],
        &["doc", "--url", "https://127.0.0.1:1"],
        &[
            "doc",
            "--url",
            "https://127.0.0.1:1",
            "--path",
            "/x",
            "--document",
            &document,
        ],
        &["doc", "--document", &document, "--root", &missing],
        &["doc", "--document", &document, "--pcrs", &document],
        &["doc", "--url", "http://127.0.0.1:1", "--path", "/x"],
        &[
            "doc",
            "--endpoint",
            "https://127.0.0.1:1",
            "--path",
            "/x",
            "--document",
            &document,
        ],
        &[
            "doc",
            "--url",
            "https://127.0.0.1:1",
            "--endpoint",
            "http://127.0.0.1:2",
        ],
        &[
            "doc",
            "--url",
            "https://127.0.0.1:1",
            "--endpoint",
            "https://127.0.0.1:2",
            "--file",
            &document,
        ],
    ];
    for args in cases {
        let run = ra_verify(args);
        assert_eq!(run.status, 64, "{args:?}");
        assert!(!run.stderr.is_empty());
        assert!(run.stdout.is_empty());
    }
    let run = ra_verify(&["doc", "--document", &missing]);
    assert_eq!(run.status, 64);
    assert!(run.stderr.contains("missing"));
    assert!(Path::new(&document).exists());
}

#[test]
fn an_unreachable_server_exits_69() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let url = format!("https://127.0.0.1:{port}");
    let run = ra_verify(&["doc", "--url", &url, "--path", "/x"]);
    assert_eq!(run.status, 69);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("cannot reach"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_against_a_real_https_server() {
    let server = common::server::start(common::server::Mode::Honest, &[(PATH, CONTENT)]).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dev-root.pem");
    std::fs::write(&root, server.pki.root_pem()).unwrap();
    let local = dir.path().join("local");
    std::fs::write(&local, CONTENT).unwrap();
    let url = server.url();
    let root = root.display().to_string();
    let local = local.display().to_string();
    let run = tokio::task::spawn_blocking(move || {
        ra_verify(&[
            "doc", "--url", &url, "--path", PATH, "--root", &root, "--nonce", "--file", &local,
        ])
    })
    .await
    .unwrap();
    assert_eq!(run.status, 0);
    assert!(run.stdout.starts_with("PASS tls_binding: "));
    assert!(run.stdout.contains("PASS nonce"));
    assert!(run.stdout.contains("PASS file_hash"));

    let url = server.url();
    let run = tokio::task::spawn_blocking(move || {
        ra_verify(&["doc", "--url", &url, "--path", "/data/unknown"])
    })
    .await
    .unwrap();
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("404") && run.stderr.contains("no document for /data/unknown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_pass_or_fail_one_line_each() {
    let server = common::server::start(common::server::Mode::Honest, &[(PATH, CONTENT)]).await;
    let impostor = common::server::start(common::server::Mode::Honest, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dev-root.pem");
    std::fs::write(&root, server.pki.root_pem()).unwrap();
    let pcrs = dir.path().join("app.eif.pcrs");
    std::fs::write(&pcrs, pcrs_file(PCR0_BYTE)).unwrap();
    let (url, app, other) = (server.url(), server.same_key_url(), impostor.url());
    let (root, pcrs) = (root.display().to_string(), pcrs.display().to_string());
    let run = {
        let (url, app, root, pcrs) = (url.clone(), app.clone(), root.clone(), pcrs.clone());
        tokio::task::spawn_blocking(move || {
            ra_verify(&[
                "doc",
                "--url",
                &url,
                "--root",
                &root,
                "--pcrs",
                &pcrs,
                "--endpoint",
                &app,
            ])
        })
        .await
        .unwrap()
    };
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("PASS tls_binding: "));
    assert!(run.stdout.contains("PASS pcrs: "));
    assert_eq!(lines_starting(&run, "PASS endpoint: ").len(), 1);
    assert!(run.stdout.contains(&format!("PASS endpoint: {app}: ")));

    let run = tokio::task::spawn_blocking(move || {
        ra_verify(&[
            "doc",
            "--url",
            &url,
            "--path",
            PATH,
            "--root",
            &root,
            "--endpoint",
            &app,
            "--endpoint",
            &other,
        ])
    })
    .await
    .unwrap();
    assert_eq!(run.status, 1);
    assert!(run.stdout.contains("PASS vrf_proof"));
    assert_eq!(lines_starting(&run, "PASS endpoint: ").len(), 1);
    let failed = lines_starting(&run, "FAIL endpoint: ");
    assert_eq!(failed.len(), 1, "{}", run.stdout);
    assert!(failed[0].contains(&impostor.url()) && failed[0].contains("not the attested one"));
    assert!(run.stdout.contains("VERDICT FAIL"));
}

/// The real AWS Nitro document of `tests/data` (base64), saved raw.
fn saved_real_nitro_document(setup: &Setup) -> String {
    let text = include_str!("data/nitro-2024-09-17.b64");
    let bytes = openssl::base64::decode_block(text.trim()).unwrap();
    setup.save("nitro.cose", &bytes)
}

#[test]
fn a_document_of_other_software_verifies_with_any_user_data() {
    let setup = Setup::new();
    let document = saved_real_nitro_document(&setup);
    let run = ra_verify(&["doc", "--document", &document]);
    assert_eq!(run.status, 1, "its user_data is not our binding");
    assert_eq!(lines_starting(&run, "FAIL").len(), 1);
    assert!(run.stdout.contains("FAIL user_data"));

    let run = ra_verify(&["doc", "--document", &document, "--any-user-data"]);
    assert_eq!(run.status, 0);
    assert!(run.stdout.contains("PASS certificate_chain"));
    assert!(run.stdout.contains("SKIP user_data: not checked"));
    assert!(run.stdout.contains("VERDICT PASS"));
    // The signature still counts.
    let mut tampered = std::fs::read(&document).unwrap();
    let at = tampered
        .windows(10)
        .position(|w| w == b"i-0bbf1bfe")
        .unwrap();
    tampered[at + 2] = b'1';
    let tampered = setup.save("tampered.cose", &tampered);
    let run = ra_verify(&["doc", "--document", &tampered, "--any-user-data"]);
    assert_eq!(run.status, 1);
    assert!(run.stdout.contains("FAIL cose_signature"));

    // Nothing to bind, so nothing to compare a path or a file with.
    let local = setup.path("local.txt");
    for extra in [["--path", "/x"], ["--file", local.as_str()]] {
        let mut args = vec!["doc", "--document", &document, "--any-user-data"];
        args.extend(extra);
        assert_eq!(ra_verify(&args).status, 64, "{args:?}");
    }
    let run = ra_verify(&[
        "doc",
        "--url",
        "https://127.0.0.1:1",
        "--path",
        "/x",
        "--any-user-data",
    ]);
    assert_eq!(run.status, 64);
}

/// The PCR file of `pcrs_file`, as rbuilds.sh writes it for a profile.
fn pcrs_file_of_profile(pcr0: u8, profile: &str) -> String {
    pcrs_file(pcr0).replacen('{', &format!(r#"{{"Profile":"{profile}","#), 1)
}

#[test]
fn require_profile_passes_only_for_an_image_of_that_profile_whose_pcrs_matched() {
    let setup = Setup::new();
    let document = setup.saved_hex_document(None);
    let production = setup.save(
        "prod.eif.pcrs",
        pcrs_file_of_profile(PCR0_BYTE, "production").as_bytes(),
    );
    let debug = setup.save(
        "debug.eif.pcrs",
        pcrs_file_of_profile(PCR0_BYTE, "debug").as_bytes(),
    );
    let other = setup.save(
        "other-prod.eif.pcrs",
        pcrs_file_of_profile(PCR0_BYTE + 1, "production").as_bytes(),
    );
    let root = setup.path("dev-root.pem");
    let run_with = |pcrs: &str, require: &[&str]| {
        let mut args = vec![
            "doc",
            "--document",
            &document,
            "--path",
            PATH,
            "--root",
            &root,
        ];
        args.extend(["--pcrs", pcrs]);
        args.extend(require);
        ra_verify(&args)
    };

    let run = run_with(&production, &["--require-profile", "production"]);
    assert_eq!(run.status, 0);
    assert_eq!(
        lines_starting(&run, "PASS profile"),
        ["PASS profile: production image (no remote exec; attested, encrypted pipeline)"]
    );

    // A debug image is verifiable, loudly, and fails when production is required.
    let run = run_with(&debug, &[]);
    assert_eq!(run.status, 0);
    assert!(
        run.stdout.contains("PASS profile: DEBUG image"),
        "{}",
        run.stdout
    );
    let run = run_with(&debug, &["--require-profile", "production"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stdout.contains("FAIL profile: DEBUG image"),
        "{}",
        run.stdout
    );

    // Profile recorded, PCRs not matched: the profile is unknown.
    let run = run_with(&other, &["--require-profile", "production"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stdout
            .contains("FAIL profile: the PCRs were not matched"),
        "{}",
        run.stdout
    );

    // No profile in the file (nitro-cli's), or no --pcrs at all.
    let run = run_with(&setup.path("app.eif.pcrs"), &["--require-profile", "debug"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stdout
            .contains("FAIL profile: the PCR file records no profile")
    );
    let run = ra_verify(&[
        "doc",
        "--document",
        &document,
        "--require-profile",
        "production",
    ]);
    assert_eq!(run.status, 64, "--require-profile needs --pcrs");
}
