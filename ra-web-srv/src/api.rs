//! The HTTP handlers of the JSON API (the verification endpoints are in
//! [`crate::verify_api`]). Routes and their documentation are in
//! [`crate::routes`].

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use ra_verify_core::pcrs::Profile;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::app::{App, BusState};
use crate::defs::{
    DEFAULT_LIST_LIMIT, DEFAULT_RNG_COUNT, MAX_LIST_LIMIT, MAX_NONCE, MAX_RNG_COUNT,
};
use crate::paths;
use crate::record::Record;
use crate::reply::{Failure, Reply, json, object, raw};
use crate::store::{Page, Status};
use crate::views::{self, VIEW_NAMES, View};

/// `?path=`
#[derive(Debug, Deserialize)]
pub struct PathQuery {
    /// An absolute path.
    pub path: Option<String>,
}

/// `?path=&view=&nonce=`
#[derive(Debug, Deserialize)]
pub struct DocQuery {
    /// An absolute path.
    pub path: Option<String>,
    /// How to show the document.
    pub view: Option<View>,
    /// Hex nonce: a fresh document carrying it.
    pub nonce: Option<String>,
}

/// `?prefix=&limit=&after=` of the list endpoints, with `view=` for
/// `/docs/` and `path=` for `/readiness/`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only paths starting with this.
    pub prefix: Option<String>,
    /// How to show documents (`/docs/`).
    pub view: Option<View>,
    /// One path's state instead of a page (`/readiness/`).
    pub path: Option<String>,
    /// Items in this page (default [`DEFAULT_LIST_LIMIT`], at most
    /// [`MAX_LIST_LIMIT`]).
    pub limit: Option<usize>,
    /// Only paths sorted after this one: the `next` of the previous page.
    pub after: Option<String>,
}

impl<T> Page<T> {
    /// `items` under `name`, with `count` and `next`, added to `into`.
    fn listing(&self, name: &str, items: Vec<Value>, into: &mut Value) {
        into["count"] = json!(items.len());
        into[name] = Value::Array(items);
        into["next"] = json!(self.next);
    }

    /// The reply: `items` under `name`, with `count` and `next`.
    fn reply(&self, app: &App, name: &str, items: Vec<Value>) -> Reply {
        let mut value = json!({});
        self.listing(name, items, &mut value);
        ok(app, value)
    }
}

/// The `limit` of `q` (default [`DEFAULT_LIST_LIMIT`]), or a 400 when it
/// is out of range.
fn limit(app: &App, q: &ListQuery) -> Result<usize, Failure> {
    let limit = q.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(app.fail(
            StatusCode::BAD_REQUEST,
            format!("limit: 1 to {MAX_LIST_LIMIT}, not {limit}"),
        ));
    }
    Ok(limit)
}

/// The page of records `q`'s `prefix`, `limit` and `after` ask for, or a
/// 400 for a bad `limit`.
fn record_page(app: &App, q: &ListQuery) -> Result<Page<Arc<Record>>, Failure> {
    let limit = limit(app, q)?;
    Ok(app
        .store
        .record_page(q.prefix.as_deref(), q.after.as_deref(), limit))
}

/// `?nonce=`
#[derive(Debug, Deserialize)]
pub struct NonceQuery {
    /// Hex nonce.
    pub nonce: Option<String>,
}

/// `?count=`
#[derive(Debug, Deserialize)]
pub struct RngQuery {
    /// How many random bytes.
    pub count: Option<usize>,
}

/// Body of `POST /generate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateBody {
    /// File or directory to hash and attest.
    pub path: String,
}

/// The query, or a 400 naming what is wrong.
pub fn query<T>(app: &App, query: Result<Query<T>, QueryRejection>) -> Result<T, Failure> {
    query.map(|Query(value)| value).map_err(|rejection| {
        let mut message = rejection.body_text();
        if message.contains("view") {
            message.push_str(&format!(" (views: {VIEW_NAMES})"));
        }
        app.fail(StatusCode::BAD_REQUEST, message)
    })
}

/// The JSON body, or the fitting error (400 syntax, 413 too large, 415 not
/// JSON, 422 wrong fields).
pub fn body<T: DeserializeOwned>(
    app: &App,
    body: Result<Json<T>, JsonRejection>,
) -> Result<T, Failure> {
    body.map(|Json(value)| value)
        .map_err(|rejection| app.fail(rejection.status(), rejection.body_text()))
}

fn required<'a>(app: &App, path: &'a Option<String>) -> Result<&'a str, Failure> {
    path.as_deref().ok_or_else(|| {
        app.fail(
            StatusCode::BAD_REQUEST,
            "the query needs path=ABSOLUTE_PATH",
        )
    })
}

/// A hex nonce of at most [`MAX_NONCE`] bytes.
pub fn nonce(app: &App, text: Option<&str>) -> Result<Option<Vec<u8>>, Failure> {
    let Some(text) = text else { return Ok(None) };
    let bytes = hex::decode(text).map_err(|e| {
        app.fail(
            StatusCode::BAD_REQUEST,
            format!("nonce: not hexadecimal: {e}"),
        )
    })?;
    if bytes.is_empty() || bytes.len() > MAX_NONCE {
        return Err(app.fail(
            StatusCode::BAD_REQUEST,
            format!("nonce: 1 to {MAX_NONCE} bytes, not {}", bytes.len()),
        ));
    }
    Ok(Some(bytes))
}

/// The record of `?path=`, or why there is none.
fn lookup(app: &App, path: &Option<String>) -> Result<Arc<Record>, Failure> {
    let path = required(app, path)?;
    let key = paths::lookup_key(path).map_err(|e| app.path_failure(e))?;
    let Some(state) = app.store.state(&key) else {
        return Err(app.fail(
            StatusCode::NOT_FOUND,
            format!("nothing for {key:?} yet (POST /generate, or wait for fs-monitor)"),
        ));
    };
    match (state.record, state.status) {
        (Some(record), _) => Ok(record),
        (None, Status::Failed) => Err(app.fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{key}: {}", state.error.unwrap_or_else(|| "failed".into())),
        )),
        (None, _) => Err(app.fail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{key}: still being hashed and attested; poll /ready/?path="),
        )),
    }
}

fn proof_json(record: &Record) -> Value {
    json!({
        "path": record.path,
        "sha3_512": record.sha3_512,
        "vrf_suite": record.vrf_suite,
        "vrf_proof": record.vrf_proof,
        "vrf_public_key": record.vrf_public_key,
    })
}

/// `value` (an object) as a 200 JSON response.
pub fn ok(app: &App, value: Value) -> Reply {
    Ok(json(app.nsm_kind(), StatusCode::OK, object(value)))
}

fn document_bytes(app: &App, record: &Record) -> Result<Vec<u8>, Failure> {
    record.document_bytes().map_err(|e| {
        app.fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored document of {} is damaged: {e}", record.path),
        )
    })
}

fn internal(app: &App, error: impl std::fmt::Display) -> Failure {
    app.fail(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

/// `GET /health`
pub async fn health(State(app): State<App>) -> Reply {
    ok(
        &app,
        json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "records": app.store.summary().ready,
            "bus": app.bus_state(),
            "image_profile": app.image_profile.map(Profile::name),
            "debug_image": app.image_profile == Some(Profile::Debug),
            "tls_ingress": app.ingresses,
        }),
    )
}

/// `POST /generate {"path"}`
pub async fn generate(
    State(app): State<App>,
    input: Result<Json<GenerateBody>, JsonRejection>,
) -> Reply {
    let input = body(&app, input)?;
    let (path, key) = app.confine(&input.path)?;
    let started = app.start_generate(path);
    let encoded = encode_query(&key);
    Ok(json(
        app.nsm_kind(),
        StatusCode::ACCEPTED,
        object(json!({
            "path": key,
            "status": "pending",
            "started": started,
            "poll": format!("/ready/?path={encoded}"),
            "doc": format!("/doc/?path={encoded}"),
        })),
    ))
}

/// Percent-encodes a query value.
pub fn encode_query(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn overall(app: &App) -> (bool, Value) {
    let summary = app.store.summary();
    let bus = app.bus_state();
    let bus_ready = matches!(
        bus,
        BusState::Disabled | BusState::Watching { caught_up: true }
    );
    let ready = summary.pending == 0 && bus_ready;
    (
        ready,
        json!({
            "ready": ready,
            "summary": summary,
            "bus": bus,
            "unwritten": app.store.unwritten_count(),
        }),
    )
}

fn path_status(app: &App, path: &str) -> Result<(Status, Value), Failure> {
    let key = paths::lookup_key(path).map_err(|e| app.path_failure(e))?;
    let state = app.store.state(&key).ok_or_else(|| {
        app.fail(
            StatusCode::NOT_FOUND,
            format!("nothing known about {key:?}"),
        )
    })?;
    let value = json!({
        "path": key,
        "status": state.status,
        "error": state.error,
        "has_document": state.record.is_some(),
    });
    Ok((state.status, value))
}

/// `GET /ready/`: 200 when ready, 503 while pending, 422 when failed.
pub async fn ready(State(app): State<App>, q: Result<Query<PathQuery>, QueryRejection>) -> Reply {
    let q = query(&app, q)?;
    let (status, value) = match &q.path {
        Some(path) => {
            let (status, value) = path_status(&app, path)?;
            let code = match status {
                Status::Ready => StatusCode::OK,
                Status::Pending => StatusCode::SERVICE_UNAVAILABLE,
                Status::Failed => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (code, value)
        }
        None => {
            let (ready, value) = overall(&app);
            let code = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (code, value)
        }
    };
    Ok(json(app.nsm_kind(), status, object(value)))
}

/// `GET /readiness/`: a page of every path's state (or one path's), always 200.
pub async fn readiness(
    State(app): State<App>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Reply {
    let q = query(&app, q)?;
    if let Some(path) = &q.path {
        return ok(&app, path_status(&app, path)?.1);
    }
    let limit = limit(&app, &q)?;
    let page = app
        .store
        .state_page(q.prefix.as_deref(), q.after.as_deref(), limit);
    let paths: Vec<Value> = page
        .items
        .iter()
        .map(|(path, state)| json!({"path": path, "status": state.status, "error": state.error}))
        .collect();
    let (_, mut value) = overall(&app);
    page.listing("paths", paths, &mut value);
    ok(&app, value)
}

/// `GET /hash/?path=`
pub async fn hash(State(app): State<App>, q: Result<Query<PathQuery>, QueryRejection>) -> Reply {
    let q = query(&app, q)?;
    let record = lookup(&app, &q.path)?;
    ok(
        &app,
        json!({"path": record.path, "sha3_512": record.sha3_512}),
    )
}

/// `GET /hashes/?prefix=&limit=&after=`
pub async fn hashes(State(app): State<App>, q: Result<Query<ListQuery>, QueryRejection>) -> Reply {
    let page = record_page(&app, &query(&app, q)?)?;
    let list: Vec<Value> = page
        .items
        .iter()
        .map(|r| json!({"path": r.path, "sha3_512": r.sha3_512}))
        .collect();
    page.reply(&app, "hashes", list)
}

/// `GET /proof/?path=`
pub async fn proof(State(app): State<App>, q: Result<Query<PathQuery>, QueryRejection>) -> Reply {
    let q = query(&app, q)?;
    let record = lookup(&app, &q.path)?;
    ok(&app, proof_json(&record))
}

/// `GET /proofs/?prefix=&limit=&after=`
pub async fn proofs(State(app): State<App>, q: Result<Query<ListQuery>, QueryRejection>) -> Reply {
    let page = record_page(&app, &query(&app, q)?)?;
    let list: Vec<Value> = page.items.iter().map(|r| proof_json(r)).collect();
    page.reply(&app, "proofs", list)
}

/// `GET /doc/?path=&view=&nonce=`
pub async fn doc(State(app): State<App>, q: Result<Query<DocQuery>, QueryRejection>) -> Reply {
    let q = query(&app, q)?;
    let nonce = nonce(&app, q.nonce.as_deref())?;
    let record = lookup(&app, &q.path)?;
    let bytes = match nonce {
        None => document_bytes(&app, &record)?,
        Some(nonce) => app
            .attester
            .document_for(&record.binding(), Some(nonce))
            .await
            .map_err(|e| internal(&app, e))?,
    };
    show(&app, Some(&record.path), bytes, q.view.unwrap_or_default())
}

/// One document in `view`, with `path` when it belongs to one.
fn show(app: &App, path: Option<&str>, bytes: Vec<u8>, view: View) -> Reply {
    if view == View::AttDoc {
        return Ok(raw(app.nsm_kind(), "application/cbor", bytes));
    }
    let mut fields = views::fields(&bytes, view).map_err(|e| internal(app, e))?;
    if let Some(path) = path {
        fields.insert("path".into(), Value::String(path.into()));
    }
    Ok(json(app.nsm_kind(), StatusCode::OK, fields))
}

/// `GET /docs/?view=&prefix=&limit=&after=`
pub async fn docs(State(app): State<App>, q: Result<Query<ListQuery>, QueryRejection>) -> Reply {
    let q = query(&app, q)?;
    let view = q.view.unwrap_or_default();
    if view == View::AttDoc {
        return Err(app.fail(
            StatusCode::BAD_REQUEST,
            "view=att_doc shows one document: use /doc/?path=",
        ));
    }
    let page = record_page(&app, &q)?;
    let mut list = Vec::new();
    for record in &page.items {
        let bytes = document_bytes(&app, record)?;
        let mut fields = views::fields(&bytes, view).map_err(|e| internal(&app, e))?;
        fields.insert("path".into(), Value::String(record.path.clone()));
        list.push(Value::Object(fields));
    }
    page.reply(&app, "docs", list)
}

/// `GET /pubkeys/`
pub async fn pubkeys(State(app): State<App>) -> Reply {
    ok(
        &app,
        json!({
            "vrf_suite": app.attester.suite(),
            "vrf_public_key": hex::encode(app.attester.vrf_public_key()),
            "tls_spki_sha3_512": app.tls_spki_sha3_512,
            "tls_certificate": app.tls_cert_pem,
        }),
    )
}

/// `GET /pcrs/`
pub async fn pcrs(State(app): State<App>) -> Reply {
    let pcrs = app
        .attester
        .nsm()
        .pcrs()
        .await
        .map_err(|e| internal(&app, e))?;
    let pcrs: serde_json::Map<String, Value> = pcrs
        .into_iter()
        .map(|(index, value)| (index.to_string(), Value::String(hex::encode(value))))
        .collect();
    ok(&app, json!({"pcrs": pcrs}))
}

/// `GET /nsm_desc`
pub async fn nsm_desc(State(app): State<App>) -> Reply {
    let description = app
        .attester
        .nsm()
        .describe()
        .await
        .map_err(|e| internal(&app, e))?;
    ok(&app, json!(description))
}

/// `GET /rng_seq?count=`
pub async fn rng_seq(State(app): State<App>, q: Result<Query<RngQuery>, QueryRejection>) -> Reply {
    let q = query(&app, q)?;
    let count = q.count.unwrap_or(DEFAULT_RNG_COUNT);
    if count == 0 || count > MAX_RNG_COUNT {
        return Err(app.fail(
            StatusCode::BAD_REQUEST,
            format!("count: 1 to {MAX_RNG_COUNT}, not {count}"),
        ));
    }
    let bytes = app
        .attester
        .nsm()
        .random(count)
        .await
        .map_err(|e| internal(&app, e))?;
    ok(&app, json!({"count": count, "random": hex::encode(bytes)}))
}

/// `GET /tls_doc/?nonce=`
pub async fn tls_doc(
    State(app): State<App>,
    q: Result<Query<NonceQuery>, QueryRejection>,
) -> Reply {
    let q = query(&app, q)?;
    let nonce = nonce(&app, q.nonce.as_deref())?;
    let bytes = app
        .attester
        .tls_document(app.tls_spki_sha3_512, nonce)
        .await
        .map_err(|e| internal(&app, e))?;
    ok(
        &app,
        json!({"document": hex::encode(bytes), "spki_sha3_512": app.tls_spki_sha3_512}),
    )
}

/// Any route that does not exist.
pub async fn not_found(State(app): State<App>, uri: Uri) -> Failure {
    app.fail(
        StatusCode::NOT_FOUND,
        format!("no endpoint {} (see /openapi.json)", uri.path()),
    )
}

/// A route with another method.
pub async fn method_not_allowed(State(app): State<App>, uri: Uri) -> Failure {
    app.fail(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} does not take this method (see /openapi.json)",
            uri.path()
        ),
    )
}
