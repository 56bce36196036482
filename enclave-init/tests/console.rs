#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Field report 002: a console nobody reads must not freeze init.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::Init;
use enclave_init::control::client;
use enclave_init::control::cmd::{Request, Response};
use transport::Address;

#[tokio::test(flavor = "multi_thread")]
async fn a_console_nobody_reads_drops_lines_and_init_keeps_answering() {
    let mut init = Init::prepare("");
    // init's stderr is a pipe this test does not read (yet): like a serial
    // console without a reader, it fills up and then blocks every write.
    let (mut reader, writer) = std::io::pipe().unwrap();
    // At debug level every control connection logs a line.
    init.spawn_with_log(Stdio::from(writer), "debug");
    let addr = Address::Unix(init.socket());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while client::request(&addr, &Request::Ping).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "init did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Far more lines than a pipe holds.
    let mut dropped = 0;
    for round in 0..40 {
        for _ in 0..200 {
            assert_eq!(
                client::request(&addr, &Request::Ping).await.unwrap(),
                Response::Pong
            );
        }
        let Response::SystemStatus { status } = client::request(&addr, &Request::SystemStatus)
            .await
            .unwrap()
        else {
            panic!()
        };
        dropped = status.console_lines_dropped;
        if dropped > 0 && round > 2 {
            break;
        }
    }
    assert!(
        dropped > 0,
        "no line was dropped: the console never filled?"
    );
    // Someone starts reading the console: init reports how much was lost.
    let drain = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
            if String::from_utf8_lossy(&text).contains("dropped because nobody read the console") {
                break;
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    // Keep init talking so the console thread writes its note.
    for _ in 0..50 {
        let _ = client::request(&addr, &Request::Ping).await;
        if drain.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = drain.join().unwrap();
    assert!(
        text.contains("console line(s) dropped because nobody read the console"),
        "{}",
        &text[text.len().saturating_sub(2000)..]
    );
    init.terminate();
}
