//! The router and the serving loop.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::defs::MAX_BODY_BYTES;
use crate::registry::Registry;
use crate::routes::{self, AppState};
use crate::signing::ResponseSigner;

/// The API's router over `registry`, answers unsigned.
pub fn app(registry: Arc<Registry>) -> Router {
    app_with_signer(registry, None)
}

/// The API's router over `registry`, signing answers with `signer` if any.
pub fn app_with_signer(registry: Arc<Registry>, signer: Option<Arc<ResponseSigner>>) -> Router {
    let state = Arc::new(AppState::new(registry, signer));
    Router::new()
        .route("/v1/models", get(routes::list_models))
        .route("/v1/completions", post(routes::completions))
        .route("/v1/chat/completions", post(routes::chat_completions))
        .route("/completions", post(routes::completions))
        .route("/load_model", post(routes::load_model))
        .route("/status", get(routes::status))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes; requests in
/// flight are finished first.
pub async fn run(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with_signer(listener, registry, None, shutdown).await
}

/// [`run`], signing answers with `signer` if any.
pub async fn run_with_signer(
    listener: TcpListener,
    registry: Arc<Registry>,
    signer: Option<Arc<ResponseSigner>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app_with_signer(registry, signer))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn call(method: &str, path: &str, body: &str) -> (StatusCode, serde_json::Value) {
        let app = app(Arc::new(Registry::new(2)));
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_BODY_BYTES)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn without_a_model_requests_get_404_json() {
        let chat = r#"{"messages":[{"role":"user","content":"Hi"}]}"#;
        let (status, body) = call("POST", "/v1/chat/completions", chat).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "model_not_found");
        let (status, body) = call("POST", "/completions", r#"{"prompt":"x"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["type"], "not_found_error");
    }

    #[tokio::test]
    async fn bad_bodies_get_4xx_json() {
        let (status, body) = call("POST", "/v1/completions", "{").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "invalid_json");
        let (status, body) = call("POST", "/v1/completions", r#"{"prompt":5}"#).await;
        assert!(status.is_client_error(), "{status}");
        assert_eq!(body["error"]["code"], "invalid_json");
        let big = format!(r#"{{"prompt":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        let (status, _) = call("POST", "/v1/completions", &big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, body) = call(
            "POST",
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"x"}],"top_p":0}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"]["message"].as_str().unwrap().contains("top_p"));
    }

    #[tokio::test]
    async fn listing_status_and_unknown_paths() {
        let (status, body) = call("GET", "/v1/models", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::json!({"object": "list", "data": []}));
        let (status, body) = call("GET", "/status", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["queue_capacity"], 2);
        let (status, body) = call("GET", "/v2/anything", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
        let (status, body) = call("POST", "/load_model", r#"{"model_path":"/no/such.gguf"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "model_file_not_found");
    }
}
