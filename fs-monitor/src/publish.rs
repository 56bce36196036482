//! Writing to the KV bucket, with nothing lost when NATS is away.
//!
//! The monitor puts the state each key should have into the [`Outbox`]
//! (a hash, or "deleted"; `bus`'s coalescing outbox); a later state for
//! the same key replaces an earlier one not yet written, so the outbox
//! never holds more than one entry per file. The [`publisher`] task takes
//! the oldest entries in batches, writes them concurrently
//! ([`bus::outbox::write_batch`]: what was written leaves the outbox unless
//! a newer state arrived meanwhile, every failed write stays), then waits
//! with back-off before trying again.
//! The NATS client reconnects by itself; after
//! [`REOPEN_AFTER_FAILURES`] failed rounds the bucket is opened again (and
//! so created again if the server lost it).

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::kv::Store;
use bus::outbox::{Write, write_batch};
use bus::value::{Digest, hash_value};
use tokio_util::sync::CancellationToken;

use crate::Stats;
use crate::defs::{
    PUBLISH_BATCH, PUBLISH_CONCURRENCY, PUBLISH_FIRST_BACKOFF, PUBLISH_MAX_BACKOFF,
    REOPEN_AFTER_FAILURES, SHUTDOWN_GRACE,
};

use bus::async_nats;

/// Key states waiting to be written: a hash, or `None` to delete the key
/// (one entry per key, oldest first; see [`bus::outbox`]).
pub type Outbox = bus::outbox::Outbox<Option<Digest>>;

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
                () = outbox.changed() => {}
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
        let written = {
            let round =
                write_batch(
                    &store,
                    &outbox,
                    batch,
                    PUBLISH_CONCURRENCY,
                    |digest| match digest {
                        Some(digest) => Write::Put(hash_value(digest)),
                        None => Write::Delete,
                    },
                );
            tokio::pin!(round);
            loop {
                tokio::select! {
                    written = &mut round => break written,
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
        stats.puts.fetch_add(written.puts, Ordering::Relaxed);
        stats.deletes.fetch_add(written.deletes, Ordering::Relaxed);
        let failures = written.failures;
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
