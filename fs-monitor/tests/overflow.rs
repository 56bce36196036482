#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Recovery from an inotify queue overflow, forced for certain: the
//! `fs-monitor` binary is stopped with SIGSTOP, more events than the
//! kernel's queue holds (`fs.inotify.max_queued_events`, read from /proc)
//! are made, and it is continued with SIGCONT. It must report
//! `IN_Q_OVERFLOW`, rescan, and end with exactly the files on disk in the
//! bucket. (Its own test binary: the burst is large.)

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{Harness, hex_of, write};
use nix::sys::signal::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowed_queue_is_recovered_by_rescanning() {
    let h = Harness::new().await;
    let queue: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Each new file makes two events (IN_CREATE, IN_CLOSE_WRITE).
    let files = queue / 2 + 1000;
    assert!(
        files <= 200_000,
        "max_queued_events {queue} is too large to overflow in a test"
    );

    let gone = h.root.join("gone.txt");
    let moved = h.root.join("moved.txt");
    write(&gone, b"deleted while events are lost");
    write(&moved, b"renamed while events are lost");
    // The burst goes into directories watched already (files in a new
    // directory make no events until the monitor watches it).
    for d in 0..20 {
        std::fs::create_dir(h.root.join(format!("d{d}"))).unwrap();
    }
    let mut monitor = h.spawn_binary();
    h.settle(&common::expect([&gone, &moved])).await;

    monitor.signal(Signal::SIGSTOP);
    let root = h.root.clone();
    let paths: Vec<PathBuf> = tokio::task::spawn_blocking(move || {
        let mut paths = Vec::with_capacity(files + 1);
        for i in 0..files {
            let path = root.join(format!("d{}/f{i}.txt", i % 20));
            write(&path, format!("overflow {i}").as_bytes());
            paths.push(path);
        }
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        let renamed = root.join("d0/renamed.txt");
        std::fs::rename(root.join("moved.txt"), &renamed).unwrap();
        paths.push(renamed);
        paths
    })
    .await
    .unwrap();
    monitor.signal(Signal::SIGCONT);

    let expected: BTreeMap<PathBuf, String> =
        paths.iter().map(|p| (p.clone(), hex_of(p))).collect();
    h.settle(&expected).await;
    let log = monitor.log();
    assert!(
        log.contains("inotify queue overflowed"),
        "no overflow was reported; the test proved nothing:\n{log}"
    );

    assert!(monitor.terminate().success());
}
