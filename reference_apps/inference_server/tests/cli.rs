#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The binary: a model given with --model is served under its file stem.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn a_model_given_at_start_is_listed_under_its_file_stem() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_inference-server"))
        .args(["--listen", "127.0.0.1:0", "--model"])
        .arg(common::model_path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut address = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            address = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let address = address.expect("the server did not log its address");
    let models: serde_json::Value = common::client()
        .get(format!("http://{address}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(models["data"][0]["id"], common::model_name());
}

#[test]
fn bad_usage_exits_64() {
    let status = Command::new(env!("CARGO_BIN_EXE_inference-server"))
        .args(["--threads", "0"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(64));
}
