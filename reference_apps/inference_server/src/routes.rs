//! The HTTP handlers and their JSON errors.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /v1/models` | the loaded models (OpenAI's list) |
//! | `POST /v1/completions` | continue a prompt |
//! | `POST /v1/chat/completions` | answer a conversation (ChatML template) |
//! | `POST /completions` | the overview's name for `/v1/completions` |
//! | `POST /load_model` | load a GGUF: `{"model_path": ..., "model_name": ...}` |
//! | `GET /status` | models, queues, uptime |
//!
//! Errors are JSON, `{"error": {"message", "type", "code"}}`, with a 4xx
//! status for anything the client can fix (bad JSON, a missing model, a
//! prompt over the context) and 503 when the model's queue is full.
//! With `"stream": true` the answer is server-sent events: `data: {chunk}`
//! per new piece of text, then `data: [DONE]`. The response starts when the
//! first piece is ready, so an error before it is still a JSON error.
//!
//! With a [`ResponseSigner`] every 200 answer of the completion routes is
//! signed over the request's bytes, the response's bytes and the model
//! hash (`ra_verify_core::response`): a whole answer in `x-enclave-*` headers, a
//! stream in an `event: signature` before `data: [DONE]`. Errors are not
//! signed.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use ra_verify_core::hash::{Sha3Digest, Sha3Hasher};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::api::{
    ChatMessageOut, ChatRequest, Checked, Choice, CompletionRequest, CompletionResponse, Delta,
    InvalidRequest, LoadModelRequest, Usage,
};
use crate::chat::Message;
use crate::defs::DEFAULT_MAX_TOKENS;
use crate::engine::{Engine, GenerateError, Generation, GenerationRequest, LoadError};
use crate::queue::{Event, QueueError};
use crate::registry::{Registry, RegistryError};
use crate::signing::ResponseSigner;

/// The response header that names the weights' SHA3-512.
pub const MODEL_HASH_HEADER: &str = "x-model-sha3-512";

/// Shared by every handler.
pub struct AppState {
    /// The loaded models.
    pub registry: Arc<Registry>,
    /// Signs the answers, when the server has a signing key.
    pub signer: Option<Arc<ResponseSigner>>,
    started: Instant,
    next_id: AtomicU64,
}

impl AppState {
    /// State around `registry`, signing with `signer` if any.
    pub fn new(registry: Arc<Registry>, signer: Option<Arc<ResponseSigner>>) -> Self {
        Self {
            registry,
            signer,
            started: Instant::now(),
            next_id: AtomicU64::new(1),
        }
    }

    fn id(&self, prefix: &str) -> String {
        format!(
            "{prefix}-{:x}-{}",
            self.started.elapsed().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// An error answer: status, OpenAI-style type and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: String) -> Self {
        Self {
            status,
            kind,
            code,
            message,
        }
    }

    fn invalid(message: impl ToString) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message.to_string(),
        )
    }

    fn internal(message: impl ToString) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            message.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {"message": self.message, "type": self.kind, "code": self.code, "param": null}
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl ApiError {
    /// A request body axum refused: its own client-error status (else 400)
    /// and its text.
    fn rejected(status: StatusCode, text: String) -> Self {
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        Self::new(status, "invalid_request_error", "invalid_json", text)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::rejected(rejection.status(), rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        Self::rejected(rejection.status(), rejection.body_text())
    }
}

/// A JSON body together with its exact bytes (what a signature covers).
/// Rejections are those of axum's `Json` (content type, syntax, shape,
/// body limit).
pub struct RawJson<T> {
    /// The parsed body.
    pub value: T,
    /// The body's bytes, as received.
    pub bytes: Bytes,
}

impl<S, T> FromRequest<S> for RawJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state).await?;
        let again = Request::from_parts(parts, Body::from(bytes.clone()));
        let Json(value) = Json::<T>::from_request(again, state).await?;
        Ok(Self { value, bytes })
    }
}

impl From<InvalidRequest> for ApiError {
    fn from(error: InvalidRequest) -> Self {
        Self::invalid(error)
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        let (status, code) = match &error {
            RegistryError::NotFound(_) | RegistryError::Empty => {
                (StatusCode::NOT_FOUND, "model_not_found")
            }
            RegistryError::Exists(_) => (StatusCode::CONFLICT, "model_exists"),
            RegistryError::Full => (StatusCode::CONFLICT, "too_many_models"),
            RegistryError::BadName(_) => (StatusCode::BAD_REQUEST, "invalid_model_name"),
            RegistryError::Load(LoadError::Hash(ra_verify_core::hash::HashError::Io {
                source,
                ..
            }))
            | RegistryError::Load(LoadError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                (StatusCode::NOT_FOUND, "model_file_not_found")
            }
            RegistryError::Load(LoadError::Hash(_)) | RegistryError::Load(LoadError::Io { .. }) => {
                (StatusCode::BAD_REQUEST, "model_file_unreadable")
            }
            RegistryError::Load(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_model_file"),
            RegistryError::Thread(_) | RegistryError::Task(_) => {
                return Self::internal(error);
            }
        };
        let kind = if status == StatusCode::NOT_FOUND {
            "not_found_error"
        } else {
            "invalid_request_error"
        };
        Self::new(status, kind, code, error.to_string())
    }
}

impl From<GenerateError> for ApiError {
    fn from(error: GenerateError) -> Self {
        match error {
            GenerateError::Context { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "context_length_exceeded",
                error.to_string(),
            ),
            GenerateError::EmptyPrompt => Self::invalid(error),
            GenerateError::Tokenizer(_) => Self::invalid(error),
            GenerateError::Model(_) => Self::internal(error),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        match error {
            QueueError::Full(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_busy",
                "queue_full",
                error.to_string(),
            ),
            QueueError::Stopped => Self::internal(error),
        }
    }
}

/// `GET /v1/models`.
pub async fn list_models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let data: Vec<_> = state
        .registry
        .list()
        .iter()
        .map(|model| {
            let info = model.info();
            json!({
                "id": info.name,
                "object": "model",
                "created": info.created,
                "owned_by": "inference-server",
                "model_sha3_512": info.sha3_512.to_hex(),
                "context_length": info.context_length,
            })
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// `GET /status`.
pub async fn status(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let models: Vec<_> = state
        .registry
        .list()
        .iter()
        .map(|model| {
            let info = model.info();
            json!({
                "name": info.name,
                "path": info.path,
                "description": info.description,
                "model_sha3_512": info.sha3_512.to_hex(),
                "context_length": info.context_length,
                "loaded_at": info.created,
                "load_seconds": info.load_time.as_secs_f64(),
                "pending": model.pending(),
                "completed": model.completed(),
            })
        })
        .collect();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "queue_capacity": state.registry.queue_capacity(),
        "models": models,
    }))
}

/// `POST /load_model`.
pub async fn load_model(
    State(state): State<Arc<AppState>>,
    body: Result<Json<LoadModelRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(request) = body?;
    let model = state
        .registry
        .load(request.model_path.into(), request.model_name)
        .await?;
    let info = model.info();
    Ok(Json(json!({
        "status": "loaded",
        "model": info.name,
        "path": info.path,
        "model_sha3_512": info.sha3_512.to_hex(),
        "context_length": info.context_length,
        "load_seconds": info.load_time.as_secs_f64(),
    })))
}

/// What kind of answer a request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Completion,
    Chat,
}

enum Prompt {
    Text(String),
    Chat(Vec<Message>),
}

/// `POST /v1/completions` and `POST /completions`.
pub async fn completions(
    State(state): State<Arc<AppState>>,
    body: RawJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let RawJson {
        value: request,
        bytes,
    } = body;
    let prompt = Prompt::Text(request.prompt_text()?);
    let checked = request.params.check(None)?;
    generate(
        &state,
        request.params.model.as_deref(),
        prompt,
        checked,
        Kind::Completion,
        &bytes,
    )
    .await
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    body: RawJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let RawJson {
        value: request,
        bytes,
    } = body;
    let prompt = Prompt::Chat(request.messages()?);
    let checked = request.params.check(request.max_completion_tokens)?;
    generate(
        &state,
        request.params.model.as_deref(),
        prompt,
        checked,
        Kind::Chat,
        &bytes,
    )
    .await
}

/// What every response of one request shares.
#[derive(Clone)]
struct ResponseHead {
    id: String,
    created: u64,
    model: String,
    sha3: String,
    kind: Kind,
    include_usage: bool,
}

impl ResponseHead {
    fn response(
        &self,
        object: &str,
        choice: Option<Choice>,
        usage: Option<Usage>,
    ) -> CompletionResponse {
        CompletionResponse {
            id: self.id.clone(),
            object: object.to_owned(),
            created: self.created,
            model: self.model.clone(),
            model_sha3_512: self.sha3.clone(),
            choices: choice.into_iter().collect(),
            usage,
        }
    }

    fn whole(&self, generation: &Generation) -> CompletionResponse {
        let usage = Usage::new(generation.prompt_tokens, generation.completion_tokens);
        let finish = Some(generation.finish_reason.as_str().to_owned());
        match self.kind {
            Kind::Completion => self.response(
                "text_completion",
                Some(Choice {
                    index: 0,
                    text: Some(generation.text.clone()),
                    message: None,
                    delta: None,
                    finish_reason: finish,
                }),
                Some(usage),
            ),
            Kind::Chat => self.response(
                "chat.completion",
                Some(Choice {
                    index: 0,
                    text: None,
                    message: Some(ChatMessageOut {
                        role: "assistant".to_owned(),
                        content: generation.text.clone(),
                    }),
                    delta: None,
                    finish_reason: finish,
                }),
                Some(usage),
            ),
        }
    }

    fn chunk(&self, text: Option<String>, first: bool, finish: Option<&str>) -> CompletionResponse {
        let finish_reason = finish.map(str::to_owned);
        match self.kind {
            Kind::Completion => self.response(
                "text_completion",
                Some(Choice {
                    index: 0,
                    text: Some(text.unwrap_or_default()),
                    message: None,
                    delta: None,
                    finish_reason,
                }),
                None,
            ),
            Kind::Chat => self.response(
                "chat.completion.chunk",
                Some(Choice {
                    index: 0,
                    text: None,
                    message: None,
                    delta: Some(Delta {
                        role: first.then(|| "assistant".to_owned()),
                        content: text,
                    }),
                    finish_reason,
                }),
                None,
            ),
        }
    }

    fn usage_chunk(&self, generation: &Generation) -> CompletionResponse {
        let object = match self.kind {
            Kind::Completion => "text_completion",
            Kind::Chat => "chat.completion.chunk",
        };
        self.response(
            object,
            None,
            Some(Usage::new(
                generation.prompt_tokens,
                generation.completion_tokens,
            )),
        )
    }
}

async fn generate(
    state: &AppState,
    model: Option<&str>,
    prompt: Prompt,
    checked: Checked,
    kind: Kind,
    request_body: &[u8],
) -> Result<Response, ApiError> {
    let handle = state.registry.get(model)?;
    let vocabulary = Arc::clone(handle.vocabulary());
    // Tokenizing a long prompt takes milliseconds: off the async workers.
    let tokens = tokio::task::spawn_blocking(move || match prompt {
        Prompt::Text(text) => vocabulary.tokenizer.encode(&text),
        Prompt::Chat(messages) => vocabulary.encode_chat(&vocabulary.template.render(&messages)),
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(GenerateError::from)?;

    let context = handle.info().context_length;
    let max_tokens = match checked.max_tokens {
        Some(max_tokens) => max_tokens,
        None => DEFAULT_MAX_TOKENS.min(context.saturating_sub(tokens.len()).max(1)),
    };
    Engine::check_context(context, tokens.len(), max_tokens)?;

    let info = handle.info();
    let head = ResponseHead {
        id: state.id(match kind {
            Kind::Completion => "cmpl",
            Kind::Chat => "chatcmpl",
        }),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: info.name.clone(),
        sha3: info.sha3_512.to_hex(),
        kind,
        include_usage: checked.include_usage,
    };
    let events = handle.submit(GenerationRequest {
        prompt: tokens,
        max_tokens,
        sampling: checked.sampling,
        stop: checked.stop,
    })?;
    let signing = match &state.signer {
        Some(signer) => Some(Signing {
            signer: Arc::clone(signer),
            request: Sha3Digest::of(request_body).map_err(ApiError::internal)?,
        }),
        None => None,
    };
    let response = if checked.stream {
        stream_response(head.clone(), events, signing).await?
    } else {
        whole_response(&head, events, signing.as_ref()).await?
    };
    Ok(with_hash_header(response, &head.sha3))
}

/// What signing one answer needs.
struct Signing {
    signer: Arc<ResponseSigner>,
    /// SHA3-512 of the request body.
    request: Sha3Digest,
}

fn with_hash_header(mut response: Response, sha3: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(sha3) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(MODEL_HASH_HEADER), value);
    }
    response
}

async fn whole_response(
    head: &ResponseHead,
    mut events: UnboundedReceiver<Event>,
    signing: Option<&Signing>,
) -> Result<Response, ApiError> {
    while let Some(event) = events.recv().await {
        match event {
            Event::Started { .. } | Event::Text(_) => {}
            Event::Done(generation) => {
                // Serialised here, so the bytes signed are the bytes sent.
                let body =
                    serde_json::to_vec(&head.whole(&generation)).map_err(ApiError::internal)?;
                let signature = signing
                    .map(|signing| signing.signer.headers(&signing.request, &body, &head.sha3))
                    .transpose()
                    .map_err(ApiError::internal)?;
                let mut response = (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body,
                )
                    .into_response();
                for (name, value) in signature.into_iter().flatten() {
                    response
                        .headers_mut()
                        .insert(HeaderName::from_static(name), value);
                }
                return Ok(response);
            }
            Event::Failed(message) => return Err(ApiError::internal(message)),
        }
    }
    Err(ApiError::internal(
        "the generation thread dropped the request",
    ))
}

/// One server-sent event with one `data:` line (the JSON has no newline).
fn sse_data(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

fn sse_json(value: &CompletionResponse) -> Bytes {
    match serde_json::to_string(value) {
        Ok(json) => sse_data(&json),
        Err(error) => sse_data(&json!({"error": {"message": error.to_string()}}).to_string()),
    }
}

/// The stream's end.
const SSE_DONE: &str = "[DONE]";

/// Waits for the first piece (so errors before it are still HTTP errors),
/// then streams the rest.
async fn stream_response(
    head: ResponseHead,
    mut events: UnboundedReceiver<Event>,
    signing: Option<Signing>,
) -> Result<Response, ApiError> {
    let first = loop {
        match events.recv().await {
            Some(Event::Started { .. }) => continue,
            Some(Event::Failed(message)) => return Err(ApiError::internal(message)),
            Some(event) => break event,
            None => {
                return Err(ApiError::internal(
                    "the generation thread dropped the request",
                ));
            }
        }
    };
    let signer_headers = signing
        .as_ref()
        .map(|signing| signing.signer.stream_headers());
    let hasher = match &signing {
        Some(_) => Some(Sha3Hasher::new().map_err(ApiError::internal)?),
        None => None,
    };
    let stream = sse_stream(head, first, events, signing.zip(hasher));
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (name, value) in signer_headers.into_iter().flatten() {
        headers.insert(HeaderName::from_static(name), value);
    }
    Ok(response)
}

/// What the stream sends after the last data event.
enum Tail {
    /// These bytes.
    Bytes(Bytes),
    /// The signature event over everything sent so far.
    Signature,
}

/// The events of a stream: each `data:` chunk as it is generated; at the
/// end the finishing chunk, the usage chunk when asked, the signature event
/// when signing (over every byte sent before it), and `data: [DONE]`.
fn sse_stream(
    head: ResponseHead,
    first: Event,
    events: UnboundedReceiver<Event>,
    signing: Option<(Signing, Sha3Hasher)>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    struct Walk {
        head: ResponseHead,
        pending: Option<Event>,
        events: UnboundedReceiver<Event>,
        first: bool,
        tail: std::collections::VecDeque<Tail>,
        done: bool,
        signing: Option<(Signing, Sha3Hasher)>,
    }
    impl Walk {
        /// `bytes`, hashed on their way out when signing.
        fn send(&mut self, bytes: Bytes) -> Bytes {
            if let Some((_, hasher)) = &mut self.signing
                && let Err(error) = hasher.update(&bytes)
            {
                tracing::error!(%error, "hashing the stream; it will not be signed");
                self.signing = None;
            }
            bytes
        }

        /// The signature event, or nothing when it cannot be made.
        fn signature(&mut self) -> Option<Bytes> {
            let (signing, hasher) = self.signing.take()?;
            let event = hasher
                .finish()
                .map_err(|error| error.to_string())
                .and_then(|response| {
                    signing
                        .signer
                        .stream_event(&signing.request, &response, &self.head.sha3)
                        .map_err(|error| error.to_string())
                });
            match event {
                Ok(event) => Some(Bytes::from(event)),
                Err(error) => {
                    tracing::error!(%error, "signing the stream");
                    None
                }
            }
        }
    }
    let walk = Walk {
        head,
        pending: Some(first),
        events,
        first: true,
        tail: std::collections::VecDeque::new(),
        done: false,
        signing,
    };
    futures::stream::unfold(walk, |mut walk| async move {
        while let Some(item) = walk.tail.pop_front() {
            match item {
                Tail::Bytes(bytes) => {
                    let bytes = walk.send(bytes);
                    return Some((Ok(bytes), walk));
                }
                Tail::Signature => {
                    if let Some(event) = walk.signature() {
                        return Some((Ok(event), walk));
                    }
                }
            }
        }
        if walk.done {
            return None;
        }
        let event = match walk.pending.take() {
            Some(event) => Some(event),
            None => walk.events.recv().await,
        };
        let out = match event {
            Some(Event::Started { .. }) => Bytes::from_static(b":started\n\n"),
            Some(Event::Text(text)) => {
                let chunk = walk.head.chunk(Some(text), walk.first, None);
                walk.first = false;
                sse_json(&chunk)
            }
            Some(Event::Done(generation)) => {
                walk.done = true;
                if walk.head.include_usage {
                    let usage = sse_json(&walk.head.usage_chunk(&generation));
                    walk.tail.push_back(Tail::Bytes(usage));
                }
                walk.tail.push_back(Tail::Signature);
                walk.tail.push_back(Tail::Bytes(sse_data(SSE_DONE)));
                let finish = generation.finish_reason.as_str();
                sse_json(&walk.head.chunk(None, walk.first, Some(finish)))
            }
            Some(Event::Failed(message)) => {
                // A failed generation is an error: not signed.
                walk.done = true;
                walk.signing = None;
                walk.tail.push_back(Tail::Bytes(sse_data(SSE_DONE)));
                sse_data(
                    &json!({"error": {"message": message, "type": "server_error"}}).to_string(),
                )
            }
            None => {
                walk.done = true;
                walk.signing = None;
                sse_data(SSE_DONE)
            }
        };
        let out = walk.send(out);
        Some((Ok(out), walk))
    })
}

/// `404` for every other path, as JSON.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found_error",
        "not_found",
        "no such endpoint".to_owned(),
    )
}
