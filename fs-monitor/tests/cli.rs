#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The `fs-monitor` binary: usage errors, and a real run ended by SIGTERM.

mod common;

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fs-monitor");

fn usage_error(args: &[&str], says: &str) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
}

#[test]
fn bad_usage_exits_64_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    usage_error(&[], "--directory");
    usage_error(&["--directory", "/no/such/dir"], "/no/such/dir");
    usage_error(
        &["--directory", d, "--ignore-file", "/no/such/file"],
        "--ignore-file",
    );
    usage_error(
        &["--directory", d, "--kv-bucket-name", "a.b"],
        "--kv-bucket-name",
    );
    usage_error(&["--directory", d, "--bogus"], "--bogus");
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--directory",
        "--ignore-file",
        "--nats-url",
        "--kv-bucket-name",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_publishes_and_stops_on_sigterm() {
    let h = common::Harness::new().await;
    let file = h.root.join("hello.txt");
    common::write(&file, b"hello");
    let mut monitor = h.spawn_binary();
    h.settle(&common::expect([&file])).await;
    let later = h.root.join("later.txt");
    common::write(&later, b"later");
    h.settle(&common::expect([&file, &later])).await;
    let status = monitor.terminate();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_nats_is_down_exits_within_the_grace_period() {
    let mut h = common::Harness::new().await;
    let file = h.root.join("first.txt");
    common::write(&file, b"first");
    let mut monitor = h.spawn_binary();
    h.settle(&common::expect([&file])).await;
    h.nats.kill();
    for i in 0..300 {
        common::write(&h.root.join(format!("pending-{i}.txt")), b"never written");
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // terminate() allows 10 s; the grace period for pending writes is 5 s.
    assert!(monitor.terminate().success());
    assert!(
        monitor
            .log()
            .contains("shutting down with KV writes not done"),
        "{}",
        monitor.log()
    );
}
