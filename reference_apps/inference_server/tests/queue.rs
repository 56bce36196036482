#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! A full queue answers 503 JSON at once; the requests it took complete.

mod common;

use common::{chat, post, server_with_queue};
use reqwest::StatusCode;

#[tokio::test]
async fn a_full_queue_answers_503_and_the_rest_complete() {
    // Room for one waiting request: of six sent at once, one or two are
    // served (one may already run), the others refused at once.
    let address = server_with_queue(1);
    let requests = (0..6).map(|i| {
        let request = chat(&format!("Count to {i}."), 16);
        tokio::spawn(post(address, "/v1/chat/completions", request))
    });
    let mut ok = 0;
    let mut busy = 0;
    for answer in futures::future::join_all(requests).await {
        let (status, answer) = answer.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer["error"]["code"], "queue_full");
                busy += 1;
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert!(ok >= 1, "{ok} answered, {busy} refused");
    assert!(busy >= 1, "{ok} answered, {busy} refused");

    // The queue drains: a request after the burst is served.
    let (status, answer) = post(address, "/v1/chat/completions", chat("Hi", 2)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}
