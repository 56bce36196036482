#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The bus against a real nats-server with JetStream.

use std::path::Path;
use std::time::Duration;

use bus::connect::Retry;
use bus::value::{Digest, HashChange, hash_value, read_entry};
use bus::{BusError, FS_ATT_DOCS, FS_HASHES, connect, connect_with, key, open_bucket};
use futures::StreamExt as _;
use testkit::NatsServer;

#[tokio::test]
async fn open_creates_the_bucket_once_then_reuses_it() {
    let server = NatsServer::start().unwrap();
    let js = connect(&server.url()).await.unwrap();
    let store = open_bucket(&js, FS_HASHES).await.unwrap();
    let status = store.status().await.unwrap();
    assert_eq!(status.history(), 1);
    assert_eq!(
        status.info.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );

    let digest = Digest([7u8; 64]);
    let path = Path::new("/data/a.txt");
    store
        .put(key::encode(path), hash_value(&digest))
        .await
        .unwrap();

    // A second open (another process) sees the same bucket and its data.
    let js2 = connect(&server.url()).await.unwrap();
    let again = open_bucket(&js2, FS_HASHES).await.unwrap();
    let entry = again.entry("/data/a=2Etxt").await.unwrap().unwrap();
    // The value is the digest's 128 lowercase hex digits, nothing else.
    assert_eq!(entry.value, "07".repeat(64).as_bytes());
    assert_eq!(
        read_entry(&entry).unwrap(),
        (path.to_path_buf(), HashChange::Put(digest))
    );

    // Both buckets can live side by side.
    open_bucket(&js, FS_ATT_DOCS).await.unwrap();
}

#[tokio::test]
async fn a_delete_is_seen_as_removed_never_as_a_hash() {
    let server = NatsServer::start().unwrap();
    let js = connect(&server.url()).await.unwrap();
    let store = open_bucket(&js, FS_HASHES).await.unwrap();
    let path = Path::new("/data/gone=1.bin");
    let key = key::encode(path);
    let mut watch = store.watch_all().await.unwrap();
    store
        .put(&key, hash_value(&Digest([1u8; 64])))
        .await
        .unwrap();
    store.delete(&key).await.unwrap();
    let put = watch.next().await.unwrap().unwrap();
    assert!(matches!(read_entry(&put).unwrap().1, HashChange::Put(_)));
    let delete = watch.next().await.unwrap().unwrap();
    assert!(delete.value.is_empty());
    assert_eq!(
        read_entry(&delete).unwrap(),
        (path.to_path_buf(), HashChange::Removed)
    );
}

#[tokio::test]
async fn a_whole_bucket_is_read_live_keys_only() {
    let server = NatsServer::start().unwrap();
    let js = connect(&server.url()).await.unwrap();
    let store = open_bucket(&js, FS_HASHES).await.unwrap();
    assert!(bus::bucket::entries(&store).await.unwrap().is_empty());
    for i in 0..300u16 {
        let key = key::encode(Path::new(&format!("/d/{i}.txt")));
        store
            .put(
                &key,
                hash_value(&Digest([u8::try_from(i % 256).unwrap(); 64])),
            )
            .await
            .unwrap();
    }
    for i in 0..100u16 {
        store
            .delete(key::encode(Path::new(&format!("/d/{i}.txt"))))
            .await
            .unwrap();
    }
    assert_eq!(
        bus::bucket::keys(&store).await.unwrap().len(),
        300,
        "markers are keys too"
    );
    let entries = bus::bucket::entries(&store).await.unwrap();
    assert_eq!(entries.len(), 200);
    for (key, value) in entries {
        let path = key::decode(&key).unwrap();
        let i: u16 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        assert!(i >= 100, "{key} was deleted");
        let digest = bus::value::parse_hash(&value).unwrap();
        assert_eq!(digest, Digest([u8::try_from(i % 256).unwrap(); 64]));
    }
}

#[tokio::test]
async fn a_bad_bucket_name_is_an_error_naming_it() {
    let server = NatsServer::start().unwrap();
    let js = connect(&server.url()).await.unwrap();
    let error = open_bucket(&js, "no spaces").await.unwrap_err();
    assert!(error.to_string().contains("no spaces"), "{error}");
}

#[tokio::test]
async fn connect_retries_until_the_server_is_up() {
    let mut server = NatsServer::start().unwrap();
    let url = server.url();
    server.kill();
    let retry = Retry {
        attempts: 50,
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    };
    let connecting = tokio::spawn(async move { connect_with(&url, retry).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart().unwrap();
    let js = connecting.await.unwrap().unwrap();
    open_bucket(&js, FS_HASHES).await.unwrap();
}

#[tokio::test]
async fn connect_gives_up_naming_the_url() {
    let mut server = NatsServer::start().unwrap();
    let url = server.url();
    server.kill();
    let retry = Retry {
        attempts: 3,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    };
    let error = connect_with(&url, retry).await.unwrap_err();
    assert!(
        matches!(error, BusError::Connect { attempts: 3, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&url), "{error}");
}

#[tokio::test]
async fn a_malformed_url_is_not_retried() {
    let error = connect("nats://[::1").await.unwrap_err();
    assert!(
        matches!(error, BusError::Connect { attempts: 1, .. }),
        "{error:?}"
    );
}
