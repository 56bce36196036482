//! The HTTP handlers of the JSON API (the verification endpoints are in
//! [`crate::verify_api`]), and their routes with the documentation
//! `/openapi.json` is made from ([`routes`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use ra_verify_core::pcrs::Profile;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::app::{App, BusState};
use crate::defs::{
    DEFAULT_LIST_LIMIT, DEFAULT_RNG_COUNT, MAX_LIST_LIMIT, MAX_NONCE, MAX_RNG_COUNT,
};
use crate::paths;
use crate::record::Record;
use crate::reply::{Failure, Reply, json, object, raw};
use crate::store::{Page, Status};
use crate::views::{self, ShownDoc, VIEW_NAMES, View};

mod bodies;
mod route_table;
pub use bodies::*;
pub use route_table::routes;

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

/// `value` (an object) as a 200 JSON response.
pub fn ok(app: &App, value: impl Serialize) -> Reply {
    reply_with(app, StatusCode::OK, value)
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
        Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            records: app.store.summary().ready,
            bus: app.bus_state(),
            image_profile: app.image_profile.map(Profile::name),
            debug_image: app.image_profile == Some(Profile::Debug),
            tls_ingress: app.ingresses.clone(),
        },
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
    let reply = Generated {
        poll: format!("/ready/?path={encoded}"),
        doc: format!("/doc/?path={encoded}"),
        path: key,
        status: "pending",
        started,
    };
    reply_with(&app, StatusCode::ACCEPTED, reply)
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

fn overall(app: &App) -> Overall {
    let summary = app.store.summary();
    let bus = app.bus_state();
    let bus_ready = matches!(
        bus,
        BusState::Disabled | BusState::Watching { caught_up: true }
    );
    Overall {
        ready: summary.pending == 0 && bus_ready,
        summary,
        bus,
        unwritten: app.store.unwritten_count(),
    }
}

fn path_state(app: &App, path: &str) -> Result<PathState, Failure> {
    let key = paths::lookup_key(path).map_err(|e| app.path_failure(e))?;
    let state = app.store.state(&key).ok_or_else(|| {
        app.fail(
            StatusCode::NOT_FOUND,
            format!("nothing known about {key:?}"),
        )
    })?;
    Ok(PathState {
        path: key,
        status: state.status,
        error: state.error,
        has_document: state.record.is_some(),
    })
}

/// `value` (an object) as a JSON response with `status`.
fn reply_with(app: &App, status: StatusCode, value: impl Serialize) -> Reply {
    let value = serde_json::to_value(value).map_err(|e| internal(app, e))?;
    Ok(json(app.nsm_kind(), status, object(value)))
}

/// `GET /ready/`: 200 when ready, 503 while pending, 422 when failed.
pub async fn ready(State(app): State<App>, q: Result<Query<PathQuery>, QueryRejection>) -> Reply {
    let q = query(&app, q)?;
    match &q.path {
        Some(path) => {
            let state = path_state(&app, path)?;
            let code = match state.status {
                Status::Ready => StatusCode::OK,
                Status::Pending => StatusCode::SERVICE_UNAVAILABLE,
                Status::Failed => StatusCode::UNPROCESSABLE_ENTITY,
            };
            reply_with(&app, code, Ready::Path(state))
        }
        None => {
            let overall = overall(&app);
            let code = if overall.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply_with(&app, code, Ready::Overall(overall))
        }
    }
}

/// `GET /readiness/`: a page of every path's state (or one path's), always 200.
pub async fn readiness(
    State(app): State<App>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Reply {
    let q = query(&app, q)?;
    if let Some(path) = &q.path {
        return ok(&app, Readiness::Path(path_state(&app, path)?));
    }
    let limit = limit(&app, &q)?;
    let page = app
        .store
        .state_page(q.prefix.as_deref(), q.after.as_deref(), limit);
    let paths: Vec<PathEntry> = page
        .items
        .into_iter()
        .map(|(path, state)| PathEntry {
            path,
            status: state.status,
            error: state.error,
        })
        .collect();
    ok(
        &app,
        Readiness::Page {
            overall: overall(&app),
            count: paths.len(),
            paths,
            next: page.next,
        },
    )
}

/// `GET /hash/?path=`
pub async fn hash(State(app): State<App>, q: Result<Query<PathQuery>, QueryRejection>) -> Reply {
    let q = query(&app, q)?;
    let record = lookup(&app, &q.path)?;
    ok(&app, PathHash::from(&*record))
}

/// `GET /hashes/?prefix=&limit=&after=`
pub async fn hashes(State(app): State<App>, q: Result<Query<ListQuery>, QueryRejection>) -> Reply {
    let page = record_page(&app, &query(&app, q)?)?;
    let hashes: Vec<PathHash> = page.items.iter().map(|r| PathHash::from(&**r)).collect();
    ok(
        &app,
        HashPage {
            count: hashes.len(),
            hashes,
            next: page.next,
        },
    )
}

/// `GET /proof/?path=`
pub async fn proof(State(app): State<App>, q: Result<Query<PathQuery>, QueryRejection>) -> Reply {
    let q = query(&app, q)?;
    let record = lookup(&app, &q.path)?;
    ok(&app, Proof::from(&*record))
}

/// `GET /proofs/?prefix=&limit=&after=`
pub async fn proofs(State(app): State<App>, q: Result<Query<ListQuery>, QueryRejection>) -> Reply {
    let page = record_page(&app, &query(&app, q)?)?;
    let proofs: Vec<Proof> = page.items.iter().map(|r| Proof::from(&**r)).collect();
    ok(
        &app,
        ProofPage {
            count: proofs.len(),
            proofs,
            next: page.next,
        },
    )
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
    let view = q.view.unwrap_or_default();
    if view == View::AttDoc {
        return Ok(raw(app.nsm_kind(), "application/cbor", bytes));
    }
    ok(&app, shown(&app, &record.path, &bytes, view)?)
}

/// The document `bytes` of `path` in `view` (not [`View::AttDoc`]).
fn shown(app: &App, path: &str, bytes: &[u8], view: View) -> Result<ShownDoc, Failure> {
    Ok(ShownDoc {
        path: path.to_string(),
        shown: views::show(bytes, view).map_err(|e| internal(app, e))?,
    })
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
    let mut docs = Vec::new();
    for record in &page.items {
        let bytes = document_bytes(&app, record)?;
        docs.push(shown(&app, &record.path, &bytes, view)?);
    }
    ok(
        &app,
        DocPage {
            count: docs.len(),
            docs,
            next: page.next,
        },
    )
}

/// `GET /pubkeys/`
pub async fn pubkeys(State(app): State<App>) -> Reply {
    ok(
        &app,
        Pubkeys {
            vrf_suite: app.attester.suite(),
            vrf_public_key: hex::encode(app.attester.vrf_public_key()),
            tls_spki_sha3_512: app.tls_spki_sha3_512,
            tls_certificate: app.tls_cert_pem.clone(),
        },
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
    let pcrs = pcrs
        .into_iter()
        .map(|(index, value)| (index.to_string(), hex::encode(value)))
        .collect();
    ok(&app, Pcrs { pcrs })
}

/// `GET /nsm_desc`
pub async fn nsm_desc(State(app): State<App>) -> Reply {
    let description = app
        .attester
        .nsm()
        .describe()
        .await
        .map_err(|e| internal(&app, e))?;
    ok(&app, description)
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
    ok(
        &app,
        Random {
            count,
            random: hex::encode(bytes),
        },
    )
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
        TlsDoc {
            document: hex::encode(bytes),
            spki_sha3_512: app.tls_spki_sha3_512,
        },
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
