#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The NATS side against a real nats-server: fs_hashes puts become
//! documents in fs_att_docs, deletes remove them, malformed values never
//! get one, a restart (of the server or of NATS) loses nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use bus::async_nats::jetstream::kv;
use common::{TestServer, config, dev_root, q, start};
use ra_verify::verify::{LocalHash, Policy};
use ra_web_srv::record::{Record, Source};
use reqwest::StatusCode;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

async fn buckets(url: &str) -> (kv::Store, kv::Store) {
    let js = bus::connect(url).await.unwrap();
    (
        bus::open_bucket(&js, bus::FS_HASHES).await.unwrap(),
        bus::open_bucket(&js, bus::FS_ATT_DOCS).await.unwrap(),
    )
}

async fn put_hash(hashes: &kv::Store, path: &Path) {
    let digest = ra_verify::hash_path(path).unwrap();
    hashes
        .put(bus::key::encode(path), digest.to_hex().into())
        .await
        .unwrap();
}

/// Waits until `fs_att_docs` holds a record for `path` satisfying `ok`.
async fn wait_record(docs: &kv::Store, path: &Path, ok: impl Fn(&Record) -> bool) -> Record {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = docs.get(bus::key::encode(path)).await.unwrap() {
            let record: Record = serde_json::from_slice(&value).unwrap();
            if ok(&record) {
                return record;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no record for {}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_gone(docs: &kv::Store, server: &TestServer, path: &Path) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let in_kv = docs.get(bus::key::encode(path)).await.unwrap().is_some();
        let served = server
            .get(&format!("/doc/?path={}", q(path.to_str().unwrap())))
            .await
            .0;
        if !in_kv && served == StatusCode::NOT_FOUND {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} still there",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_ready(server: &TestServer) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = server.get("/ready/").await;
        if status == StatusCode::OK {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn check_document(record: &Record, state: &Path, file: &Path) -> ra_verify::verify::Report {
    let policy = Policy {
        root: Some(dev_root(state)),
        path: Some(record.path.clone()),
        file_hash: Some(LocalHash::of_path(file).unwrap()),
        ..Policy::default()
    };
    ra_verify::verify::verify(&record.document_bytes().unwrap(), &policy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_hashes_entries_become_documents_and_survive_restarts() {
    let nats = testkit::NatsServer::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().canonicalize().unwrap();
    let (hashes, docs) = buckets(&nats.url()).await;
    // An entry that was there before the server started.
    let early = data_dir.join("early.txt");
    std::fs::write(&early, b"there before").unwrap();
    put_hash(&hashes, &early).await;

    let mut cfg = config(state.path(), &data_dir);
    cfg.nats_url = Some(nats.url());
    let mut server = start(cfg.clone()).await;
    let ready = wait_ready(&server).await;
    assert_eq!(ready["bus"]["caught_up"], true, "{ready}");
    let early_record = wait_record(&docs, &early, |_| true).await;
    assert_eq!(early_record.source, Source::FsHashes);

    let file = data_dir.join("a b.txt");
    std::fs::write(&file, b"first").unwrap();
    put_hash(&hashes, &file).await;
    let record = wait_record(&docs, &file, |_| true).await;
    assert_eq!(record.path, file.to_str().unwrap());
    assert_eq!(record.sha3_512, ra_verify::hash_file(&file).unwrap());
    assert_eq!(record.nsm, ra_web_srv::nsm::NsmKind::Development);
    let report = check_document(&record, state.path(), &file);
    assert!(report.passed(), "{}", report.verdict());
    let (_, keys) = server.get("/pubkeys/").await;
    assert_eq!(
        record.vrf_public_key,
        keys["vrf_public_key"].as_str().unwrap()
    );
    let (_, served) = server.get(&format!("/doc/?path={}", q(&record.path))).await;
    assert_eq!(served["document"], record.document.as_str());

    // A change makes a new document; the old one no longer matches the file.
    std::fs::write(&file, b"second").unwrap();
    put_hash(&hashes, &file).await;
    let changed = wait_record(&docs, &file, |r| r.sha3_512 != record.sha3_512).await;
    assert!(check_document(&changed, state.path(), &file).passed());
    assert!(
        !check_document(&record, state.path(), &file).passed(),
        "wrong file must fail"
    );

    // Malformed values never get a document.
    let bad = data_dir.join("bad");
    for value in ["", "xyz", &"A".repeat(128)] {
        hashes
            .put(bus::key::encode(&bad), value.to_string().into())
            .await
            .unwrap();
    }
    let after = data_dir.join("after");
    std::fs::write(&after, b"after").unwrap();
    put_hash(&hashes, &after).await;
    wait_record(&docs, &after, |_| true).await;
    wait_ready(&server).await;
    assert!(docs.get(bus::key::encode(&bad)).await.unwrap().is_none());
    assert_eq!(
        server
            .get(&format!("/readiness/?path={}", q(bad.to_str().unwrap())))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // A delete removes the document, from the bucket and from the server.
    hashes.delete(bus::key::encode(&after)).await.unwrap();
    wait_gone(&docs, &server, &after).await;

    // /generate results are stored in the bucket too.
    let generated = data_dir.join("generated");
    std::fs::write(&generated, b"generated").unwrap();
    server.generate(&generated).await;
    let gen_record = wait_record(&docs, &generated, |_| true).await;
    assert_eq!(gen_record.source, Source::Generate);

    // Restart: a key deleted while the server was down loses its record;
    // the others are reused, not made again.
    server.stop().await;
    hashes.delete(bus::key::encode(&early)).await.unwrap();
    let server = start(cfg).await;
    wait_ready(&server).await;
    wait_gone(&docs, &server, &early).await;
    let (_, again) = server
        .get(&format!("/doc/?path={}", q(&changed.path)))
        .await;
    assert_eq!(
        again["document"],
        changed.document.as_str(),
        "re-made instead of reused"
    );
    let kept = wait_record(&docs, &file, |_| true).await;
    assert_eq!(kept.created_at, changed.created_at);
    let (status, _) = server
        .get(&format!("/doc/?path={}", q(&gen_record.path)))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_is_survived() {
    let mut nats = testkit::NatsServer::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().canonicalize().unwrap();
    let mut cfg = config(state.path(), &data_dir);
    cfg.nats_url = Some(nats.url());
    let server = start(cfg).await;
    wait_ready(&server).await;
    let (hashes, docs) = buckets(&nats.url()).await;
    let first = data_dir.join("first");
    std::fs::write(&first, b"1").unwrap();
    put_hash(&hashes, &first).await;
    wait_record(&docs, &first, |_| true).await;
    let changed = data_dir.join("changed");
    std::fs::write(&changed, b"before the outage").unwrap();
    server.generate(&changed).await;
    wait_record(&docs, &changed, |_| true).await;

    // While NATS is away, /generate still works; its records reach the
    // bucket once NATS is back, and a newer record is not replaced by the
    // older one the bucket still holds.
    nats.kill();
    let offline = data_dir.join("offline");
    std::fs::write(&offline, b"made while NATS was down").unwrap();
    server.generate(&offline).await;
    std::fs::write(&changed, b"changed during the outage").unwrap();
    let new_hash = ra_verify::hash_path(&changed).unwrap();
    for _ in 0..3 {
        server.generate(&changed).await;
    }
    let (_, ready) = server.get("/ready/").await;
    assert_eq!(
        ready["unwritten"], 2,
        "three records of one path wait as one: {ready}"
    );
    // Longer than a write's ack timeout (5 s): a write fails and is
    // retried, the changes stay.
    tokio::time::sleep(Duration::from_secs(6)).await;
    nats.restart().unwrap();
    let (hashes, docs) = buckets(&nats.url()).await;
    wait_record(&docs, &offline, |r| r.source == Source::Generate).await;
    wait_record(&docs, &changed, |r| r.sha3_512 == new_hash).await;
    wait_ready(&server).await;
    let (status, body) = server
        .get(&format!("/hash/?path={}", q(changed.to_str().unwrap())))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sha3_512"], new_hash.to_hex(), "{body}");
    // The writer clears a change just after the bucket took it.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, ready) = server.get("/ready/").await;
        if ready["unwritten"] == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = data_dir.join("second");
    std::fs::write(&second, b"2").unwrap();
    put_hash(&hashes, &second).await;
    let record = wait_record(&docs, &second, |_| true).await;
    assert!(check_document(&record, state.path(), &second).passed());
    assert!(docs.get(bus::key::encode(&first)).await.unwrap().is_some());
}
