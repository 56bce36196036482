#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! 10,000 files created in a burst all end up in the bucket with the right
//! hashes (its own test binary, so that other tests do not share the CPU
//! and the inotify limits with it).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Harness, hex_of};

/// Files in the burst.
const FILES: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_files_in_a_burst_none_missed() {
    let mut h = Harness::new().await;
    h.start(None).await;
    let root = h.root.clone();
    // Written from a blocking thread as fast as it goes: 100 directories
    // (created during the burst, so their first files race with the new
    // watches) of 100 files each.
    let paths: Vec<PathBuf> = tokio::task::spawn_blocking(move || {
        let mut paths = Vec::with_capacity(FILES);
        for i in 0..FILES {
            let dir = root.join(format!("d{:03}", i / 100));
            if i % 100 == 0 {
                std::fs::create_dir(&dir).unwrap();
            }
            let path = dir.join(format!("f{i:05}.txt"));
            std::fs::write(&path, format!("file number {i}\n").repeat(1 + i % 7)).unwrap();
            paths.push(path);
        }
        paths
    })
    .await
    .unwrap();
    let expected: BTreeMap<PathBuf, String> =
        paths.iter().map(|p| (p.clone(), hex_of(p))).collect();
    // Wait for the writes to be acknowledged before reading the bucket back
    // (reading 10,000 keys repeatedly would only slow the monitor down).
    let deadline = Instant::now() + common::SETTLE;
    while h.stats.puts.load(Ordering::Relaxed) < FILES as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.settle(&expected).await;
    eprintln!(
        "hashed {}, put {}, overflows {}, scans {}",
        h.stats.hashed.load(Ordering::Relaxed),
        h.stats.puts.load(Ordering::Relaxed),
        h.stats.overflows.load(Ordering::Relaxed),
        h.stats.scans.load(Ordering::Relaxed)
    );
    h.stop().await;
}
