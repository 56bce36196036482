#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The whole chain: a file is written -> fs-monitor (in-process, its
//! library `run`) hashes it into KV fs_hashes -> ra-web-srv makes a proof
//! and a document -> `ra_verify::client::verify_url` (what
//! `ra-verify doc --url` runs) passes with the development root, the
//! image's PCR file and the local file; a tampered document, wrong PCRs,
//! the wrong file and the wrong root each fail.

mod common;

use std::path::Path;
use std::time::Duration;

use bus::async_nats::jetstream::kv;
use common::{config, dev_root, start};
use ra_verify::client::{Request, verify_url};
use ra_verify::pcrs::ExpectedPcrs;
use ra_verify::verify::{LocalHash, Policy, Report};
use ra_web_srv::nsm::DevPcrs;
use ra_web_srv::record::Record;

const WAIT: Duration = Duration::from_secs(30);

fn pcrs_file(dir: &Path, name: &str, byte: u8) -> std::path::PathBuf {
    let path = dir.join(name);
    let hex48 = |b: u8| hex::encode([b; 48]);
    std::fs::write(
        &path,
        format!(
            r#"{{"HashAlgorithm":"SHA384","PCR0":"{}","PCR1":"{}","PCR2":"{}"}}"#,
            hex48(byte),
            hex48(byte + 1),
            hex48(byte + 2)
        ),
    )
    .unwrap();
    path
}

/// The report failed, and `name` is among the failed checks.
fn fails_on(report: &Report, name: &str) {
    assert!(!report.passed(), "passed: {}", report.verdict());
    let check = report
        .check(name)
        .unwrap_or_else(|| panic!("no {name} check"));
    assert_eq!(check.outcome, ra_verify::verify::Outcome::Fail, "{check}");
}

/// Waits until `key` is in `docs` (`present`) or not; returns its value.
async fn wait_for(docs: &kv::Store, key: &str, present: bool) -> Option<bytes::Bytes> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = docs.get(key).await.unwrap();
        if value.is_some() == present {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key}: never present={present}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn check(base: &str, path: &str, policy: &Policy) -> Report {
    let request = Request {
        fresh_nonce: false,
        timeout: Duration::from_secs(10),
        ..Request::new(base, path)
    };
    verify_url(&request, policy).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_file_ends_in_a_document_that_verifies_off_the_enclave() {
    let nats = testkit::NatsServer::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().canonicalize().unwrap();
    let image_pcrs = pcrs_file(state.path(), "image.eif.pcrs", 0x10);
    let other_pcrs = pcrs_file(state.path(), "other.eif.pcrs", 0x20);

    let mut cfg = config(state.path(), &data_dir);
    cfg.nats_url = Some(nats.url());
    cfg.dev_pcrs = DevPcrs::Values(ExpectedPcrs::load(&image_pcrs).unwrap().values().clone());
    let mut server = start(cfg.clone()).await;

    // fs-monitor watches the data directory and publishes to fs_hashes.
    let monitor_config = fs_monitor::Config::new(
        std::slice::from_ref(&data_dir),
        None,
        &nats.url(),
        bus::FS_HASHES,
    )
    .unwrap();
    let stats = std::sync::Arc::new(fs_monitor::Stats::default());
    let stop_monitor = tokio_util::sync::CancellationToken::new();
    let monitor = tokio::spawn(fs_monitor::run(
        monitor_config,
        std::sync::Arc::clone(&stats),
        stop_monitor.clone(),
    ));
    let deadline = tokio::time::Instant::now() + WAIT;
    while !stats.scanned.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fs-monitor never scanned"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The file appears.
    let file = data_dir.join("weights.bin");
    std::fs::write(&file, vec![42u8; 1 << 20]).unwrap();
    let js = bus::connect(&nats.url()).await.unwrap();
    let docs = bus::open_bucket(&js, bus::FS_ATT_DOCS).await.unwrap();
    let key = bus::key::encode(&file);
    let stored = wait_for(&docs, &key, true).await.unwrap();

    let path = file.to_str().unwrap();
    let made: Record = serde_json::from_slice(&stored).unwrap();
    assert_eq!(made.source, ra_web_srv::record::Source::FsHashes);
    assert_eq!(made.sha3_512, ra_verify::hash_file(&file).unwrap());
    let good = Policy {
        root: Some(dev_root(state.path())),
        pcrs: Some(ExpectedPcrs::load(&image_pcrs).unwrap()),
        file_hash: Some(LocalHash::of_path(&file).unwrap()),
        ..Policy::default()
    };
    let report = check(&server.base, path, &good).await;
    assert!(report.passed(), "{}", report.verdict());
    for name in [
        "tls_binding",
        "cose_signature",
        "certificate_chain",
        "pcrs",
        "file_hash",
        "vrf_proof",
    ] {
        let found = report
            .check(name)
            .unwrap_or_else(|| panic!("no {name} check"));
        assert_eq!(found.outcome, ra_verify::verify::Outcome::Pass, "{found}");
    }
    let fresh = Request {
        fresh_nonce: true,
        timeout: Duration::from_secs(10),
        ..Request::new(server.base.clone(), path)
    };
    assert!(verify_url(&fresh, &good).await.unwrap().passed());

    // Wrong PCRs, wrong file, wrong root: each fails.
    let wrong_pcrs = Policy {
        pcrs: Some(ExpectedPcrs::load(&other_pcrs).unwrap()),
        ..good.clone()
    };
    fails_on(&check(&server.base, path, &wrong_pcrs).await, "pcrs");
    let other_file = state.path().join("other.bin");
    std::fs::write(&other_file, b"not the weights").unwrap();
    let wrong_file = Policy {
        file_hash: Some(LocalHash::of_path(&other_file).unwrap()),
        ..good.clone()
    };
    fails_on(&check(&server.base, path, &wrong_file).await, "file_hash");
    let aws_root = Policy {
        root: None,
        ..good.clone()
    };
    fails_on(
        &check(&server.base, path, &aws_root).await,
        "certificate_chain",
    );
    let elsewhere = tempfile::tempdir().unwrap();
    ra_web_srv::dev_pki::DevPki::load_or_create(elsewhere.path()).unwrap();
    let other_root = Policy {
        root: Some(dev_root(elsewhere.path())),
        ..good.clone()
    };
    fails_on(
        &check(&server.base, path, &other_root).await,
        "certificate_chain",
    );

    // Deleting a file deletes its document.
    let gone = data_dir.join("gone.txt");
    std::fs::write(&gone, b"short-lived").unwrap();
    let gone_key = bus::key::encode(&gone);
    wait_for(&docs, &gone_key, true).await;
    std::fs::remove_file(&gone).unwrap();
    wait_for(&docs, &gone_key, false).await;

    stop_monitor.cancel();
    monitor.await.unwrap().unwrap();

    // Someone with write access to the bucket tampers with the stored
    // document; the restarted server serves it (the hash still matches)
    // and the verification fails.
    server.stop().await;
    let mut record: Record = serde_json::from_slice(&stored).unwrap();
    let mut bytes = record.document_bytes().unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x55;
    record.document = hex::encode(&bytes);
    docs.put(&key, serde_json::to_vec(&record).unwrap().into())
        .await
        .unwrap();
    let server = start(cfg).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.get("/ready/").await.0 != reqwest::StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fails_on(&check(&server.base, path, &good).await, "cose_signature");
}
