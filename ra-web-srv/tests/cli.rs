#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The `ra-web-srv` binary: usage errors, and a real start in development
//! mode that says loudly it is a simulation.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ra-web-srv");

/// The binary in development mode on a free port, state in `state`.
fn development(state: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["--nsm", "development", "--http-listen", "off"])
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state);
    command
}

#[test]
fn bad_usage_and_bad_configuration_exit_64_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ra.yaml");
    std::fs::write(&file, "listen: 127.0.0.1:1\nunknown_key: 1\n").unwrap();
    for (args, says) in [
        (vec!["--no-such-flag"], "--no-such-flag"),
        (vec!["--vrf-suite", "K163"], "K163"),
        (vec!["--config", file.to_str().unwrap()], "unknown_key"),
        (vec!["--listen", "nowhere"], "--listen"),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--nats-url"));
    // A start-up failure (the state directory is a file) is status 1.
    let out = development(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_warns_that_development_is_a_simulation() {
    let state = tempfile::tempdir().unwrap();
    let mut child = development(state.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = String::new();
    let port = loop {
        assert!(Instant::now() < deadline, "{log}");
        let line = lines.next().unwrap().unwrap();
        log.push_str(&line);
        log.push('\n');
        if let Some(at) = line.find("https=tcp:127.0.0.1:") {
            let rest = &line[at + "https=tcp:127.0.0.1:".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse::<u16>().unwrap();
        }
    };
    assert!(log.contains("WARN") && log.contains("SIMULATION"), "{log}");
    let cert = std::fs::read(state.path().join("tls-cert.pem")).unwrap();
    let client = common::client(&cert);
    let health: serde_json::Value = client
        .get(format!("https://127.0.0.1:{port}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["nsm"], "development");
    sigterm(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM should end it cleanly: {status}");
}

fn sigterm(pid: u32) {
    let status = Command::new("kill").arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}
