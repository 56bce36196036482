#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The HTTP API over a real socket with the real model.

mod common;

use common::{chat, client, model_name, model_path, post, server};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn content(answer: &Value) -> &str {
    answer["choices"][0]["message"]["content"].as_str().unwrap()
}

#[tokio::test]
async fn chat_at_temperature_zero_is_deterministic() {
    let address = server();
    let request = chat("What is the capital of France?", 12);
    let (status, first) = post(address, "/v1/chat/completions", request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (_, second) = post(address, "/v1/chat/completions", request).await;
    assert!(!content(&first).is_empty(), "{first}");
    assert_eq!(content(&first), content(&second));
    assert_eq!(first["object"], "chat.completion");
    assert_eq!(first["model"], model_name());
    assert_eq!(first["choices"][0]["message"]["role"], "assistant");
    let usage = &first["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 5, "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    // The answer names the weights file's SHA3-512.
    let expected = ra_verify_core::hash_file(&model_path()).unwrap().to_hex();
    assert_eq!(first["model_sha3_512"], expected.as_str());
}

#[tokio::test]
async fn max_tokens_is_respected() {
    let address = server();
    let (status, answer) = post(
        address,
        "/v1/chat/completions",
        chat("Tell me a long story about the sea.", 5),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 5);
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn completions_continue_a_prompt_and_stop_where_asked() {
    let address = server();
    let request = json!({
        "model": model_name(),
        "prompt": "The capital of France is",
        "temperature": 0,
        "max_tokens": 8,
    });
    let (status, answer) = post(address, "/v1/completions", request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["object"], "text_completion");
    let text = answer["choices"][0]["text"].as_str().unwrap().to_owned();
    assert!(text.contains("Paris"), "{answer}");

    // The same through the overview's endpoint, model name optional, with a
    // stop sequence: the answer ends before it.
    let mut stopped = request;
    stopped.as_object_mut().unwrap().remove("model");
    stopped["stop"] = json!("Paris");
    let (status, answer) = post(address, "/completions", stopped).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let prefix = &text[..text.find("Paris").unwrap()];
    assert_eq!(answer["choices"][0]["text"], prefix);
}

/// The `data:` payloads of a server-sent-events body.
fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| data.trim_start().to_owned())
        .collect()
}

#[tokio::test]
async fn streaming_yields_sse_chunks_ending_with_done() {
    let address = server();
    let mut request = chat("Name three colours.", 12);
    let (_, whole) = post(address, "/v1/chat/completions", request.clone()).await;
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let response = client()
        .post(format!("http://{address}/v1/chat/completions"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let body = response.text().await.unwrap();
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|chunk| serde_json::from_str(chunk).unwrap())
        .collect();
    assert!(chunks.len() >= 3, "{body}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let mut streamed = String::new();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model_sha3_512"], whole["model_sha3_512"]);
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            streamed.push_str(piece);
        }
    }
    assert_eq!(streamed, content(&whole));
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(
        finish["choices"][0]["finish_reason"],
        whole["choices"][0]["finish_reason"]
    );
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], whole["usage"]);
}

#[tokio::test]
async fn over_context_requests_are_4xx_json() {
    let address = server();
    let (status, answer) = post(address, "/v1/chat/completions", chat("Hello", 100_000)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "context_length_exceeded");

    // A prompt longer than the context (each " 1" is two tokens).
    let long = " 1".repeat(2_100);
    let (status, answer) = post(
        address,
        "/v1/completions",
        json!({"model": model_name(), "prompt": long}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn missing_models_and_bad_requests_are_4xx_json() {
    let address = server();
    let mut request = chat("Hi", 4);
    request["model"] = json!("no-such-model");
    let (status, answer) = post(address, "/v1/chat/completions", request).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"]["code"], "model_not_found");

    let (status, answer) = post(
        address,
        "/load_model",
        json!({"model_path": "/nonexistent/model.gguf"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"]["code"], "model_file_not_found");

    let (status, answer) = post(
        address,
        "/load_model",
        json!({"model_path": model_path(), "model_name": model_name()}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");

    let (status, answer) = post(address, "/v1/chat/completions", json!({"messages": "Hi"})).await;
    assert!(status.is_client_error(), "{status} {answer}");
    assert!(answer["error"]["message"].is_string());

    let (status, answer) = post(
        address,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "Hi"}], "temperature": 9}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    let response = client()
        .post(format!("http://{address}/v1/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "invalid_json");

    let response = client()
        .get(format!("http://{address}/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let _: Value = response.json().await.unwrap();
}

#[tokio::test]
async fn concurrent_requests_all_complete() {
    let address = server();
    let requests =
        (0..4).map(|_| tokio::spawn(post(address, "/v1/chat/completions", chat("Say hello.", 8))));
    let answers = futures::future::join_all(requests).await;
    let mut texts = Vec::new();
    for answer in answers {
        let (status, answer) = answer.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
        texts.push(content(&answer).to_owned());
    }
    assert!(texts.windows(2).all(|pair| pair[0] == pair[1]), "{texts:?}");
}

#[tokio::test]
async fn models_and_status_list_the_loaded_model() {
    let address = server();
    let models: Value = client()
        .get(format!("http://{address}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], model_name());
    assert_eq!(
        models["data"][0]["model_sha3_512"].as_str().unwrap().len(),
        128
    );
    let status: Value = client()
        .get(format!("http://{address}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "ok");
    assert_eq!(status["models"][0]["name"], model_name());
}
