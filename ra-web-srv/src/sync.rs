//! The NATS side: `fs_hashes` in, `fs_att_docs` out.
//!
//! One session, started again after any failure (NATS restarted, bucket
//! gone) with a growing pause:
//!
//! 1. connect, open (or create) both buckets;
//! 2. load every record of `fs_att_docs` into the store (a restart loses
//!    nothing) except where the store has a newer change the bucket lacks
//!    (made while NATS was away), and write the store's unwritten changes
//!    to the bucket, oldest first, for as long as the session lasts; a
//!    change that cannot be written ends the session and stays unwritten;
//! 3. watch `fs_hashes` with its history (the latest entry of each key,
//!    then every change). A put (128 lowercase hex digits) gets a VRF proof
//!    and a document, unless the stored record already has that hash with
//!    the same key and NSM (then it is reused, not made again); a delete or
//!    purge removes the record; a malformed value never gets a document
//!    (and removes a stale one). Updates are spread over
//!    [`SYNC_LANES`] workers by key, so one key's updates stay in order.
//! 4. once every entry present at the start is handled, records from
//!    `fs_hashes` whose key is no longer there are removed, and `/ready/`
//!    says the bus is caught up.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bus::async_nats::jetstream::kv;
use bus::value::{HashChange, read_entry};
use bus::{FS_ATT_DOCS, FS_HASHES};
use futures::StreamExt;
use ra_verify_core::Sha3Digest;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::app::{App, BusState};
use crate::defs::{KV_PUT_ATTEMPTS, SYNC_LANE_QUEUE, SYNC_LANES, SYNC_RETRY_MAX, SYNC_RETRY_MIN};
use crate::record::{Record, Source};
use crate::store::Change;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Connecting or opening a bucket failed.
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    /// A NATS call failed.
    #[error("{what}: {error}")]
    Nats {
        /// What was being done.
        what: &'static str,
        /// The client's message.
        error: String,
    },
    /// The watch of `fs_hashes` ended.
    #[error("the watch of {FS_HASHES} ended")]
    WatchEnded,
    /// A change could not be stored in `fs_att_docs`.
    #[error("storing {path} in {FS_ATT_DOCS}: {error}")]
    Store {
        /// The path whose change is kept for the next session.
        path: String,
        /// The client's message.
        error: String,
    },
}

fn nats(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> SyncError {
    move |error| SyncError::Nats {
        what,
        error: error.to_string(),
    }
}

/// Runs sessions until `shutdown`.
pub async fn run(app: App, url: String, shutdown: CancellationToken) {
    let mut pause = SYNC_RETRY_MIN;
    loop {
        let started = tokio::time::Instant::now();
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            outcome = session(&app, &url) => outcome,
        };
        let error = match outcome {
            Ok(()) => return,
            Err(error) => error,
        };
        tracing::warn!(%url, %error, ?pause, "NATS session ended; starting again");
        app.set_bus_state(BusState::Down {
            error: error.to_string(),
        });
        if started.elapsed() > SYNC_RETRY_MAX * 4 {
            pause = SYNC_RETRY_MIN;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(SYNC_RETRY_MAX);
    }
}

enum LaneWork {
    Update(kv::Entry),
    Barrier(oneshot::Sender<()>),
}

async fn session(app: &App, url: &str) -> Result<(), SyncError> {
    app.set_bus_state(BusState::Starting);
    let js = bus::connect(url).await?;
    let hashes = bus::open_bucket(&js, FS_HASHES).await?;
    let docs = bus::open_bucket(&js, FS_ATT_DOCS).await?;

    let loaded = load_records(app, &docs).await?;
    // Records the bucket lost (purged, or made again) go back to it.
    for record in app.store.records() {
        if !loaded.contains(&record.path) {
            app.store.mark_unwritten(&record.path);
        }
    }
    tracing::info!(%url, loaded = loaded.len(), unwritten = app.store.unwritten_count(), "loaded {FS_ATT_DOCS}");
    tokio::select! {
        outcome = follow_hashes(app, &hashes) => outcome,
        outcome = write_changes(app, &docs) => outcome,
    }
}

/// Turns `fs_hashes` updates into records until the watch fails.
async fn follow_hashes(app: &App, hashes: &kv::Store) -> Result<(), SyncError> {
    let info = hashes
        .stream
        .get_info()
        .await
        .map_err(|e| nats("reading the fs_hashes stream")(&e))?;
    let last_at_start = info.state.last_sequence;
    let mut caught_up = info.state.messages == 0;
    let mut watch = hashes
        .watch_with_history(">")
        .await
        .map_err(|e| nats("watching fs_hashes")(&e))?;
    let lanes: Vec<mpsc::Sender<LaneWork>> = (0..SYNC_LANES)
        .map(|_| {
            let (tx, rx) = mpsc::channel(SYNC_LANE_QUEUE);
            tokio::spawn(lane(app.clone(), rx));
            tx
        })
        .collect();
    let mut seen = HashSet::new();
    if caught_up {
        finish_catch_up(app, &lanes, &seen).await;
    }
    tracing::info!("watching {FS_HASHES}");
    while let Some(entry) = watch.next().await {
        let entry = entry.map_err(|e| nats("watching fs_hashes")(&e))?;
        let revision = entry.revision;
        if !caught_up && matches!(entry.operation, kv::Operation::Put) {
            seen.insert(entry.key.clone());
        }
        let lane = &lanes[lane_of(&entry.key)];
        if lane.send(LaneWork::Update(entry)).await.is_err() {
            return Err(SyncError::WatchEnded);
        }
        if !caught_up && revision >= last_at_start {
            caught_up = true;
            finish_catch_up(app, &lanes, &seen).await;
        }
    }
    Err(SyncError::WatchEnded)
}

/// Waits until every lane has handled what it was given, then removes
/// `fs_hashes` records whose key was not in the bucket.
async fn finish_catch_up(app: &App, lanes: &[mpsc::Sender<LaneWork>], seen: &HashSet<String>) {
    for lane in lanes {
        let (done, wait) = oneshot::channel();
        if lane.send(LaneWork::Barrier(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
    for record in app.store.records() {
        if record.source == Source::FsHashes
            && !seen.contains(&bus::key::encode(std::path::Path::new(&record.path)))
        {
            tracing::info!(path = %record.path, "no longer in {FS_HASHES}; removing its document");
            app.store.remove(&record.path);
        }
    }
    app.set_bus_state(BusState::Watching { caught_up: true });
}

fn lane_of(key: &str) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % SYNC_LANES as u64) as usize
}

async fn lane(app: App, mut work: mpsc::Receiver<LaneWork>) {
    while let Some(item) = work.recv().await {
        match item {
            LaneWork::Update(entry) => handle(&app, &entry).await,
            LaneWork::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// One `fs_hashes` entry.
async fn handle(app: &App, entry: &kv::Entry) {
    let (path, change) = match read_entry(entry) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::warn!(key = %entry.key, %error, "ignoring a malformed {FS_HASHES} entry");
            if let Ok(path) = bus::key::decode(&entry.key)
                && let Some(path) = path.to_str()
                && app.store.remove(path).is_some()
            {
                tracing::info!(%path, "removed the document of a path whose hash is now malformed");
            }
            return;
        }
    };
    let Some(path) = path.to_str().map(str::to_string) else {
        tracing::warn!(key = %entry.key, "ignoring a path that is not UTF-8");
        return;
    };
    match change {
        HashChange::Removed => {
            app.store.remove(&path);
        }
        HashChange::Put(digest) => {
            if let Some(record) = app.store.record(&path)
                && reusable(app, &record, digest)
            {
                return;
            }
            app.store.begin(&path);
            let outcome = app.attester.attest(&path, digest, Source::FsHashes).await;
            if let Err(error) = &outcome {
                tracing::warn!(%path, %error, "no document for this fs_hashes entry");
            }
            app.store.finish(&path, outcome.map_err(|e| e.to_string()));
        }
    }
}

/// Whether `record` is still right for `digest` with this server's key and NSM.
fn reusable(app: &App, record: &Record, digest: Sha3Digest) -> bool {
    record.sha3_512 == digest
        && record.nsm == app.nsm_kind()
        && record.vrf_suite == app.attester.suite()
        && record.vrf_public_key == hex::encode(app.attester.vrf_public_key())
}

/// Loads `fs_att_docs` into the store; returns the paths loaded.
async fn load_records(app: &App, docs: &kv::Store) -> Result<HashSet<String>, SyncError> {
    let mut loaded = HashSet::new();
    for (key, value) in bus::bucket::entries(docs).await? {
        match serde_json::from_slice::<Record>(&value) {
            Ok(record) => {
                loaded.insert(record.path.clone());
                if !app.store.load(record) {
                    tracing::debug!(%key, "kept the newer record the bucket lacks");
                }
            }
            Err(error) => {
                tracing::warn!(%key, %error, "ignoring an unreadable {FS_ATT_DOCS} record")
            }
        }
    }
    Ok(loaded)
}

/// Writes the store's unwritten changes to `fs_att_docs`, oldest first,
/// each retried a while; returns when one cannot be written.
async fn write_changes(app: &App, docs: &kv::Store) -> Result<(), SyncError> {
    while let Some((taken, change)) = app.store.next_change().await {
        let mut pause = SYNC_RETRY_MIN;
        let mut attempt = 1;
        loop {
            let result = match &change {
                Change::Put(record) => put_record(docs, record).await,
                Change::Delete(path) => {
                    let key = bus::key::encode(std::path::Path::new(path));
                    bus::outbox::write(docs, &key, bus::outbox::Write::Delete)
                        .await
                        .map_err(|e| e.to_string())
                }
            };
            match result {
                Ok(()) => {
                    app.store.written(&taken);
                    break;
                }
                Err(error) if attempt == KV_PUT_ATTEMPTS => {
                    // To the back: one change that cannot be stored does
                    // not hold up the others in the next session.
                    app.store.mark_unwritten(&taken.key);
                    return Err(SyncError::Store {
                        path: taken.key,
                        error,
                    });
                }
                Err(error) => {
                    tracing::debug!(%error, "storing in {FS_ATT_DOCS} failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(SYNC_RETRY_MAX);
                    attempt += 1;
                }
            }
        }
    }
    // Only a store that is not mirrored has no changes to wait for.
    std::future::pending().await
}

async fn put_record(docs: &kv::Store, record: &Arc<Record>) -> Result<(), String> {
    let value = serde_json::to_vec(record.as_ref()).map_err(|e| e.to_string())?;
    let key = bus::key::encode(std::path::Path::new(&record.path));
    bus::outbox::write(docs, &key, bus::outbox::Write::Put(value.into()))
        .await
        .map_err(|e| e.to_string())
}
