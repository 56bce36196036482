//! JSON responses: every one (errors too) carries `"nsm"`, errors are
//! `{"error": "...", "nsm": ...}` with a fitting status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::nsm::NsmKind;

/// A failed request.
#[derive(Debug)]
pub struct Failure {
    /// Which NSM the server uses.
    pub nsm: NsmKind,
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.message));
        json(self.nsm, self.status, body)
    }
}

/// What a handler returns.
pub type Reply = Result<Response, Failure>;

/// `body` with `"nsm"` added, as JSON with `status`.
pub fn json(nsm: NsmKind, status: StatusCode, mut body: Map<String, Value>) -> Response {
    body.insert("nsm".into(), Value::String(nsm.name().into()));
    (status, axum::Json(Value::Object(body))).into_response()
}

/// Raw bytes with a content type, and the NSM kind in an `x-nsm` header
/// (the body cannot carry it).
pub fn raw(nsm: NsmKind, content_type: &'static str, bytes: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("x-nsm", HeaderValue::from_static(nsm.name()));
    response
}

/// A JSON object from `json!({...})` (anything else becomes `{"value": ...}`).
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("value".into(), other);
            map
        }
    }
}
