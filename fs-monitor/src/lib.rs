//! fs-monitor: watches directory trees and keeps the NATS KV bucket
//! `fs_hashes` equal to `absolute path -> SHA3-512` of every file in them.
//!
//! - [`config`]: the validated configuration.
//! - [`filter`]: the gitignore-style ignore file.
//! - [`ignore_watch`]: noticing that the ignore file changed.
//! - [`watch`]: inotify watch descriptors and the directories they stand for.
//! - [`scan`]: walking a tree, watching each directory before listing it.
//! - [`hasher`]: hashing one file without following links, and its stamp.
//! - [`writers`]: which files some process has open for writing (`/proc`).
//! - [`monitor`]: the event loop (events, hash jobs, renames, rescans).
//! - [`publish`]: the outbox and the task that writes it to the bucket,
//!   retrying across NATS outages.
//! - [`load`]: reading what the bucket holds at start.
//! - [`defs`]: limits and tunables.
//!
//! [`run`] ties them together; the `fs-monitor` binary parses its command
//! line into a [`Config`] and calls it.
//!
//! Why the `inotify` crate and not `notify`: `notify`'s inotify backend
//! subscribes every directory to `IN_OPEN`, `IN_MODIFY` and `IN_ATTRIB` as
//! well (three extra events per written file, which fill the kernel queue
//! three times as fast in a burst), keeps the old paths of a directory
//! renamed inside the tree (its `IN_MOVE_SELF` handling is a to-do), adds
//! watches for new directories only after it has passed on their events,
//! and follows symbolic links by default. Driving inotify directly gives a
//! minimal event mask, exact rename pairing by cookie, watch-then-list
//! ordering for new directories and `IN_Q_OVERFLOW` as a plain event.

pub mod config;
pub mod defs;
pub mod filter;
pub mod hasher;
pub mod ignore_watch;
pub mod load;
pub mod monitor;
pub mod publish;
pub mod scan;
pub mod watch;
pub mod writers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use inotify::Inotify;
use tokio_util::sync::CancellationToken;

pub use config::{Config, ConfigError};

use crate::defs::EVENT_BUFFER;

/// Counters, for logs, tests and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Set once the first scan of every root has been done (from then on
    /// every change is seen).
    pub scanned: AtomicBool,
    /// Files hashed.
    pub hashed: AtomicU64,
    /// Hashes written to the bucket.
    pub puts: AtomicU64,
    /// Keys deleted from the bucket.
    pub deletes: AtomicU64,
    /// Tree walks (start-up, new directories, rescans).
    pub scans: AtomicU64,
    /// inotify queue overflows recovered from.
    pub overflows: AtomicU64,
    /// Changes of the ignore file applied (each rescans every tree).
    pub ignore_reloads: AtomicU64,
}

/// What stops the monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// inotify cannot be set up.
    #[error("inotify: {0}")]
    Inotify(std::io::Error),
    /// NATS cannot be reached or the bucket opened.
    #[error(transparent)]
    Bus(#[from] bus::BusError),
}

/// Watches `config.roots` and keeps `config.bucket` up to date until
/// `shutdown`, then writes what is still pending (within a grace period).
pub async fn run(
    config: Config,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) -> Result<(), MonitorError> {
    let filter = filter::Filter::new(&config.roots, config.ignore_file.as_deref())
        .map_err(ConfigError::from)?;
    let ignore_changes = config.ignore_file.as_deref().and_then(|file| {
        ignore_watch::changes(file)
            .inspect_err(|error| {
                tracing::warn!(
                    file = %file.display(),
                    %error,
                    "cannot watch the ignore file; changes to it apply after a restart"
                );
            })
            .ok()
    });
    let inotify = Inotify::init().map_err(MonitorError::Inotify)?;
    let watcher = watch::Watcher::new(inotify.watches());
    let events = inotify
        .into_event_stream(vec![0u8; EVENT_BUFFER])
        .map_err(MonitorError::Inotify)?;

    let js = bus::connect(&config.nats_url).await?;
    let store = bus::open_bucket(&js, &config.bucket).await?;
    let loaded = load::load(&store, &config.roots).await?;
    tracing::info!(
        bucket = config.bucket,
        keys = loaded.len(),
        "loaded the bucket's keys under the watched directories"
    );

    let outbox = Arc::new(publish::Outbox::default());
    let publisher_stop = CancellationToken::new();
    let publisher = tokio::spawn(publish::publisher(
        js,
        store,
        config.bucket.clone(),
        Arc::clone(&outbox),
        Arc::clone(&stats),
        publisher_stop.clone(),
    ));
    let monitor = monitor::Monitor::new(config, filter, watcher, loaded, outbox, stats);
    monitor.run(events, ignore_changes, shutdown).await;
    publisher_stop.cancel();
    if let Err(error) = publisher.await {
        tracing::error!(%error, "the KV writer failed");
    }
    Ok(())
}

/// The README's examples, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
