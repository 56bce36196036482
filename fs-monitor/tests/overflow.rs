#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Recovery from an inotify queue overflow (its own test binary: it lowers
//! the system-wide queue length for a moment).
//!
//! The kernel copies `fs.inotify.max_queued_events` into an inotify
//! instance when it is created. The test lowers it, starts the monitor
//! (whose instance gets the short queue), puts the old value back at once,
//! then creates far more events than the queue holds. The monitor must see
//! `IN_Q_OVERFLOW`, rescan, and end with every file in the bucket.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use common::{Harness, hex_of, write};

const MAX_QUEUED: &str = "/proc/sys/fs/inotify/max_queued_events";

/// Puts the queue length back when dropped (even if the test fails).
struct Restore(String);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(MAX_QUEUED, &self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowed_queue_is_recovered_by_rescanning() {
    let mut h = Harness::new().await;
    let old = std::fs::read_to_string(MAX_QUEUED).unwrap();
    let gone = h.root.join("gone-during-overflow.txt");
    write(&gone, b"deleted while events are lost");
    {
        let restore = Restore(old.clone());
        if std::fs::write(MAX_QUEUED, "64").is_err() {
            // Not root: forcing an overflow is impossible here.
            panic!("cannot lower {MAX_QUEUED} (the tests run as root)");
        }
        h.start(None).await;
        drop(restore);
    }
    assert_eq!(
        std::fs::read_to_string(MAX_QUEUED).unwrap(),
        old,
        "restored"
    );
    assert_eq!(h.stats.overflows.load(Ordering::Relaxed), 0);

    // Thousands of events against a 64-event queue; the monitor's reader
    // cannot keep up, whatever the machine.
    let root = h.root.clone();
    let paths: Vec<PathBuf> = tokio::task::spawn_blocking(move || {
        let mut paths = Vec::new();
        for i in 0..2000 {
            let path = root.join(format!("d{}/f{i}.txt", i % 10));
            write(&path, format!("overflow {i}").as_bytes());
            paths.push(path);
        }
        std::fs::remove_file(root.join("gone-during-overflow.txt")).unwrap();
        paths
    })
    .await
    .unwrap();
    let expected: BTreeMap<PathBuf, String> =
        paths.iter().map(|p| (p.clone(), hex_of(p))).collect();
    h.settle(&expected).await;
    assert!(
        h.stats.overflows.load(Ordering::Relaxed) >= 1,
        "no overflow happened; the test proved nothing"
    );
    assert!(!Path::new(&gone).exists());
    h.stop().await;
}
