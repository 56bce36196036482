#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The coalescing outbox written to a real nats-server with JetStream.

use bus::outbox::{Outbox, Write, Written, write_batch};
use bus::{FS_HASHES, connect, open_bucket};
use bytes::Bytes;
use testkit::NatsServer;

/// `Some(value)`: put it; `None`: delete the key.
fn to_write(value: &Option<&'static str>) -> Write {
    match value {
        Some(text) => Write::Put(Bytes::from_static(text.as_bytes())),
        None => Write::Delete,
    }
}

async fn value_of(store: &bus::async_nats::jetstream::kv::Store, key: &str) -> Option<Bytes> {
    store.get(key).await.unwrap()
}

#[tokio::test]
async fn coalesced_puts_and_deletes_reach_the_bucket_and_leave_the_outbox() {
    let server = NatsServer::start().unwrap();
    let js = connect(&server.url()).await.unwrap();
    let store = open_bucket(&js, FS_HASHES).await.unwrap();
    store.put("gone", "old".into()).await.unwrap();

    let outbox = Outbox::default();
    for text in ["1", "2", "3"] {
        outbox.set("a", Some(text));
    }
    outbox.set("gone", None);
    outbox.set("b", Some("x"));
    assert_eq!(outbox.len(), 3, "three changes of one key wait as one");

    let batch = outbox.take(10);
    let order: Vec<&str> = batch.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(order, ["a", "gone", "b"], "oldest first");
    let written = write_batch(&store, &outbox, batch, 2, to_write).await;
    assert_eq!(
        written,
        Written {
            puts: 2,
            deletes: 1,
            failures: 0
        }
    );
    assert!(outbox.is_empty());
    assert_eq!(value_of(&store, "a").await.unwrap(), "3");
    assert_eq!(value_of(&store, "b").await.unwrap(), "x");
    assert_eq!(value_of(&store, "gone").await, None);
}

#[tokio::test]
async fn a_change_made_during_a_write_is_written_next() {
    let server = NatsServer::start().unwrap();
    let js = connect(&server.url()).await.unwrap();
    let store = open_bucket(&js, FS_HASHES).await.unwrap();

    let outbox = Outbox::default();
    outbox.set("a", Some("first"));
    let batch = outbox.take(10);
    outbox.set("a", Some("second"));
    let written = write_batch(&store, &outbox, batch, 1, to_write).await;
    assert_eq!(written.puts, 1);
    assert_eq!(value_of(&store, "a").await.unwrap(), "first");
    assert_eq!(outbox.len(), 1, "the newer state still waits");

    let batch = outbox.take(10);
    write_batch(&store, &outbox, batch, 1, to_write).await;
    assert_eq!(value_of(&store, "a").await.unwrap(), "second");
    assert!(outbox.is_empty());
}

#[tokio::test]
async fn failed_writes_stay_in_the_outbox_until_they_succeed() {
    let server = NatsServer::start().unwrap();
    let js = connect(&server.url()).await.unwrap();
    let store = open_bucket(&js, FS_HASHES).await.unwrap();

    // Without the bucket's stream every write is refused.
    js.delete_key_value(FS_HASHES).await.unwrap();
    let outbox = Outbox::default();
    outbox.set("a", Some("1"));
    outbox.set("b", None);
    let batch = outbox.take(10);
    let written = write_batch(&store, &outbox, batch, 4, to_write).await;
    assert_eq!(
        written,
        Written {
            puts: 0,
            deletes: 0,
            failures: 2
        }
    );
    assert_eq!(outbox.len(), 2, "nothing written, nothing dropped");

    // The bucket is back: the same entries go through.
    let store = open_bucket(&js, FS_HASHES).await.unwrap();
    outbox.set("a", Some("2"));
    let batch = outbox.take(10);
    let written = write_batch(&store, &outbox, batch, 4, to_write).await;
    assert_eq!((written.puts, written.deletes, written.failures), (1, 1, 0));
    assert!(outbox.is_empty());
    assert_eq!(value_of(&store, "a").await.unwrap(), "2");
}

#[tokio::test]
async fn the_writer_wakes_when_a_key_is_set() {
    let outbox = std::sync::Arc::new(Outbox::<Option<&'static str>>::default());
    let waiter = tokio::spawn({
        let outbox = std::sync::Arc::clone(&outbox);
        async move {
            outbox.changed().await;
            outbox.len()
        }
    });
    outbox.set("a", Some("1"));
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(seen, 1);
}
