//! Writing to the KV bucket, with nothing lost when NATS is away.
//!
//! The monitor puts the state each key should have into the [`Outbox`]
//! (a hash, or "deleted"); a later state for the same key replaces an
//! earlier one not yet written, so the outbox never holds more than one
//! entry per file. The [`publisher`] task takes entries in batches, writes
//! them concurrently and puts back every write that failed (unless a newer
//! state arrived meanwhile), then waits with back-off before trying again.
//! The NATS client reconnects by itself; after
//! [`REOPEN_AFTER_FAILURES`] failed rounds the bucket is opened again (and
//! so created again if the server lost it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::kv::Store;
use bus::value::{Digest, hash_value};
use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Stats;
use crate::defs::{
    PUBLISH_BATCH, PUBLISH_CONCURRENCY, PUBLISH_FIRST_BACKOFF, PUBLISH_MAX_BACKOFF,
    REOPEN_AFTER_FAILURES, SHUTDOWN_GRACE,
};

use bus::async_nats;

/// Key states waiting to be written.
#[derive(Debug, Default)]
pub struct Outbox {
    pending: Mutex<HashMap<String, Option<Digest>>>,
    ready: Notify,
}

impl Outbox {
    /// Asks for `key` to hold `digest` (`None`: to be deleted).
    pub fn set(&self, key: String, digest: Option<Digest>) {
        self.lock().insert(key, digest);
        self.ready.notify_one();
    }

    /// How many keys wait to be written.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Takes up to `most` entries.
    fn take(&self, most: usize) -> Vec<(String, Option<Digest>)> {
        let mut pending = self.lock();
        let keys: Vec<String> = pending.keys().take(most).cloned().collect();
        keys.into_iter()
            .filter_map(|key| pending.remove(&key).map(|value| (key, value)))
            .collect()
    }

    /// Puts back a failed write unless a newer state is waiting.
    fn put_back(&self, key: String, digest: Option<Digest>) {
        self.lock().entry(key).or_insert(digest);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Digest>>> {
        // A panic while holding this lock cannot leave the map half-changed
        // (single insert/remove calls), so a poisoned lock is still usable.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Writes the outbox to `store` until `shutdown`, then drains what it can
/// within [`SHUTDOWN_GRACE`].
pub async fn publisher(
    js: Context,
    mut store: Store,
    bucket: String,
    outbox: std::sync::Arc<Outbox>,
    stats: std::sync::Arc<Stats>,
    shutdown: CancellationToken,
) {
    let mut backoff = PUBLISH_FIRST_BACKOFF;
    let mut failed_rounds = 0u32;
    let deadline = tokio::time::sleep(Duration::MAX);
    tokio::pin!(deadline);
    let mut draining = false;
    loop {
        if outbox.is_empty() {
            if draining {
                return;
            }
            tokio::select! {
                () = outbox.ready.notified() => {}
                () = shutdown.cancelled() => {
                    draining = true;
                    grace_from_now(deadline.as_mut());
                }
            }
            continue;
        }
        let batch = outbox.take(PUBLISH_BATCH);
        // A round can take long while NATS is away (each write waits for
        // its time-out): shutdown is noticed during it too.
        let failures = {
            let round = write_batch(&store, batch, &outbox, &stats);
            tokio::pin!(round);
            loop {
                tokio::select! {
                    failures = &mut round => break failures,
                    () = shutdown.cancelled(), if !draining => {
                        draining = true;
                        grace_from_now(deadline.as_mut());
                    }
                    () = &mut deadline, if draining => {
                        tracing::warn!(left = outbox.len(), "shutting down with KV writes not done");
                        return;
                    }
                }
            }
        };
        if failures == 0 {
            backoff = PUBLISH_FIRST_BACKOFF;
            failed_rounds = 0;
            continue;
        }
        failed_rounds += 1;
        tracing::warn!(
            failures,
            waiting = outbox.len(),
            ?backoff,
            "KV writes failed; retrying"
        );
        if failed_rounds.is_multiple_of(REOPEN_AFTER_FAILURES) {
            match bus::open_bucket(&js, &bucket).await {
                Ok(reopened) => store = reopened,
                Err(error) => tracing::warn!(%error, "cannot reopen the bucket"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = &mut deadline, if draining => return,
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                grace_from_now(deadline.as_mut());
            }
        }
        backoff = (backoff * 2).min(PUBLISH_MAX_BACKOFF);
    }
}

/// Sets the shutdown deadline [`SHUTDOWN_GRACE`] from now.
fn grace_from_now(deadline: std::pin::Pin<&mut tokio::time::Sleep>) {
    deadline.reset(tokio::time::Instant::now() + SHUTDOWN_GRACE);
}

/// Writes one batch concurrently; returns how many writes failed (they are
/// back in the outbox).
async fn write_batch(
    store: &Store,
    batch: Vec<(String, Option<Digest>)>,
    outbox: &Outbox,
    stats: &Stats,
) -> usize {
    let writes = futures::stream::iter(batch).map(|(key, digest)| async move {
        let result = match &digest {
            Some(digest) => store
                .put(&key, hash_value(digest))
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            None => store.delete(&key).await.map_err(|e| e.to_string()),
        };
        (key, digest, result)
    });
    let mut writes = writes.buffer_unordered(PUBLISH_CONCURRENCY);
    let mut failures = 0;
    while let Some((key, digest, result)) = writes.next().await {
        match result {
            Ok(()) => {
                let counter = if digest.is_some() {
                    &stats.puts
                } else {
                    &stats.deletes
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::debug!(key, error, "KV write failed");
                failures += 1;
                outbox.put_back(key, digest);
            }
        }
    }
    failures
}
