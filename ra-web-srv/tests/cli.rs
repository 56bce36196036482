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
    let health = common::get_json(&client, &format!("https://127.0.0.1:{port}/health")).await;
    assert_eq!(health["nsm"], "development");
    sigterm(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM should end it cleanly: {status}");
}

#[test]
fn bad_tls_ingress_settings_are_refused_at_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tls-ingress");
    std::fs::write(
        &file,
        "# apps\n0.0.0.0:10443=127.0.0.1:10070,name=inference\n0.0.0.0:10444=10.0.0.7:80\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let a_directory = dir.path().to_str().unwrap();
    for (args, says) in [
        (vec!["--tls-ingress", "127.0.0.1:9555"], "LISTEN=UPSTREAM"),
        (vec!["--tls-ingress", "127.0.0.1:9555=nowhere"], "UPSTREAM"),
        (
            vec!["--tls-ingress", "127.0.0.1:9555=127.0.0.1:9555"],
            "its own LISTEN (a loop)",
        ),
        (
            vec!["--tls-ingress", "0.0.0.0:9555=localhost:9555"],
            "its own LISTEN (a loop)",
        ),
        (
            vec![
                "--tls-ingress",
                "0.0.0.0:9555=127.0.0.1:1",
                "--tls-ingress",
                "127.0.0.1:9555=127.0.0.1:2",
            ],
            "listen on the same address",
        ),
        (
            vec!["--tls-ingress", "0.0.0.0:9555=127.0.0.1:8443"],
            "HTTPS listener (a loop)",
        ),
        (
            vec!["--tls-ingress", "127.0.0.1:9555=10.1.2.3:80"],
            "loopback",
        ),
        (
            vec!["--tls-ingress", "127.0.0.1:9555=127.0.0.1:1,name=a b"],
            "name",
        ),
        (vec!["--tls-ingress-file", file], "line 3"),
        (
            vec!["--tls-ingress-file", a_directory],
            "--tls-ingress-file",
        ),
    ] {
        let mut command = Command::new(BIN);
        command
            .args(["--nsm", "development", "--state-dir", state])
            .args(&args);
        let out = output_or_kill(command);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(stderr.contains("--tls-ingress"), "{args:?}: {stderr}");
    }
    // A listen address that is taken: start-up fails (1), naming the ingress.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut command = development(&dir.path().join("state2"));
    command.args([
        "--tls-ingress",
        &format!("127.0.0.1:{port}=127.0.0.1:1,name=busy"),
    ]);
    let out = output_or_kill(command);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TLS ingress \"busy\""), "{stderr}");
}

/// Runs `command` to its end; one that is still running after a minute
/// (it started serving instead of refusing) is killed and the test fails.
fn output_or_kill(mut command: Command) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{command:?} kept running: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// An upstream HTTP server on loopback answering every request with `answer`.
fn tiny_http_upstream(answer: &'static str) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_tls_ingress_and_a_missing_ingress_file_means_none() {
    let state = tempfile::tempdir().unwrap();
    let upstream = tiny_http_upstream("hello from the app");
    let missing = state.path().join("no-such-tls-ingress");
    let mut child = development(state.path())
        .args([
            "--tls-ingress",
            &format!("127.0.0.1:0=127.0.0.1:{upstream},name=app"),
            "--tls-ingress-file",
            missing.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let port = loop {
        let line = lines.next().unwrap().unwrap();
        log.push_str(&line);
        log.push('\n');
        if let Some(at) = line.find("https=tcp:127.0.0.1:") {
            let rest = &line[at + "https=tcp:127.0.0.1:".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse::<u16>().unwrap();
        }
    };
    assert!(log.contains("no TLS ingress file"), "{log}");
    let cert = std::fs::read(state.path().join("tls-cert.pem")).unwrap();
    let client = common::client(&cert);
    let health = common::get_json(&client, &format!("https://127.0.0.1:{port}/health")).await;
    let ingress = &health["tls_ingress"];
    assert_eq!(ingress.as_array().unwrap().len(), 1, "{health}");
    assert_eq!(ingress[0]["name"], "app");
    assert_eq!(ingress[0]["upstream"], format!("tcp:127.0.0.1:{upstream}"));
    let listen = ingress[0]["listen"].as_str().unwrap();
    let app_port = listen.rsplit(':').next().unwrap();
    // The same certificate (pinned) serves the app.
    let answer = client
        .get(format!("https://127.0.0.1:{app_port}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer, "hello from the app");
    sigterm(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM should end it cleanly: {status}");
}

fn sigterm(pid: u32) {
    let status = Command::new("kill").arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}
