//! The HTTP handlers of the JSON API (the verification endpoints are in
//! [`crate::verify_api`]), and their routes with the documentation
//! `/openapi.json` is made from ([`routes`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::routing::{MethodRouter, get, post};
use ra_verify::Sha3Digest;
use ra_verify::pcrs::Profile;
use ra_verify::proof::Suite;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::app::{App, BusState};
use crate::defs::{
    DEFAULT_LIST_LIMIT, DEFAULT_RNG_COUNT, MAX_LIST_LIMIT, MAX_NONCE, MAX_RNG_COUNT,
};
use crate::ingress::IngressInfo;
use crate::openapi::{Param, RouteDoc, schema};
use crate::paths;
use crate::record::Record;
use crate::reply::{Failure, Reply, json, object, raw};
use crate::store::{Page, Status, Summary};
use crate::views::{self, ShownDoc, VIEW_NAMES, View};

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
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateBody {
    /// File or directory to hash and attest: an absolute path under a `--root-dir`.
    pub path: String,
}

/// Reply of `POST /generate` (202).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Generated {
    /// The path, canonical.
    pub path: String,
    /// Always `pending`.
    pub status: &'static str,
    /// Whether a job was started (false: one is running already).
    pub started: bool,
    /// Where to poll: `/ready/?path=`.
    pub poll: String,
    /// Where the document will be: `/doc/?path=`.
    pub doc: String,
}

/// Reply of `GET /health`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// The server's version.
    pub version: &'static str,
    /// How many records are ready.
    pub records: usize,
    /// The NATS side.
    pub bus: BusState,
    /// The image's profile (`production`, `debug`, ...), when known.
    pub image_profile: Option<&'static str>,
    /// The image is a debug one (its documents prove nothing).
    pub debug_image: bool,
    /// The TLS ingresses.
    pub tls_ingress: Vec<IngressInfo>,
}

/// A path and its SHA3-512 (`/hash/`, an item of `/hashes/`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct PathHash {
    /// The path.
    pub path: String,
    /// Its SHA3-512, 128 hex digits.
    #[schemars(with = "String")]
    pub sha3_512: Sha3Digest,
}

/// A path's VRF proof (`/proof/`, an item of `/proofs/`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Proof {
    /// The path.
    pub path: String,
    /// Its SHA3-512, 128 hex digits: what is proven.
    #[schemars(with = "String")]
    pub sha3_512: Sha3Digest,
    /// The ECVRF suite: `P256_SHA256_TAI` or `SECP256K1_SHA256_TAI`.
    #[schemars(with = "String")]
    pub vrf_suite: Suite,
    /// The proof, hex.
    pub vrf_proof: String,
    /// The VRF public key, hex.
    pub vrf_public_key: String,
}

/// A page of `/hashes/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HashPage {
    /// Items in this page.
    pub count: usize,
    /// The hashes, in path order.
    pub hashes: Vec<PathHash>,
    /// The `after` of the next page (null: the last page).
    pub next: Option<String>,
}

/// A page of `/proofs/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProofPage {
    /// Items in this page.
    pub count: usize,
    /// The proofs, in path order.
    pub proofs: Vec<Proof>,
    /// The `after` of the next page (null: the last page).
    pub next: Option<String>,
}

/// A page of `/docs/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DocPage {
    /// Items in this page.
    pub count: usize,
    /// The documents, in path order.
    pub docs: Vec<ShownDoc>,
    /// The `after` of the next page (null: the last page).
    pub next: Option<String>,
}

/// The readiness of everything (`/ready/` without a path, `/readiness/`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Overall {
    /// No job is pending and the NATS catch-up is done.
    pub ready: bool,
    /// Paths by state.
    pub summary: Summary,
    /// The NATS side.
    pub bus: BusState,
    /// Records not yet written to NATS.
    pub unwritten: usize,
}

/// One path's state (`/ready/?path=`, `/readiness/?path=`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct PathState {
    /// The path.
    pub path: String,
    /// `pending`, `ready` or `failed`.
    pub status: Status,
    /// Why the last job failed (null: it did not).
    pub error: Option<String>,
    /// A document is there (a new job may be running).
    pub has_document: bool,
}

/// One path of a `/readiness/` page.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PathEntry {
    /// The path.
    pub path: String,
    /// `pending`, `ready` or `failed`.
    pub status: Status,
    /// Why the last job failed (null: it did not).
    pub error: Option<String>,
}

/// Reply of `/ready/`: one path's state (200 ready, 503 pending, 422
/// failed), or the overall readiness (200 ready, 503 not yet).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Ready {
    /// With `path=`.
    Path(PathState),
    /// Without.
    Overall(Overall),
}

/// Reply of `/readiness/`: one path's state, or a page of them with the
/// overall readiness.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Readiness {
    /// With `path=`.
    Path(PathState),
    /// Without.
    Page {
        /// The overall readiness.
        #[serde(flatten)]
        overall: Overall,
        /// Items in this page.
        count: usize,
        /// The paths' states, in path order.
        paths: Vec<PathEntry>,
        /// The `after` of the next page (null: the last page).
        next: Option<String>,
    },
}

impl From<&Record> for PathHash {
    fn from(record: &Record) -> Self {
        Self {
            path: record.path.clone(),
            sha3_512: record.sha3_512,
        }
    }
}

impl From<&Record> for Proof {
    fn from(record: &Record) -> Self {
        Self {
            path: record.path.clone(),
            sha3_512: record.sha3_512,
            vrf_suite: record.vrf_suite,
            vrf_proof: record.vrf_proof.clone(),
            vrf_public_key: record.vrf_public_key.clone(),
        }
    }
}

/// Reply of `GET /tls_doc/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TlsDoc {
    /// The document, hex.
    pub document: String,
    /// The SHA3-512 of the TLS certificate's SPKI it binds.
    #[schemars(with = "String")]
    pub spki_sha3_512: Sha3Digest,
}

/// Reply of `GET /pubkeys/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Pubkeys {
    /// The ECVRF suite.
    #[schemars(with = "String")]
    pub vrf_suite: Suite,
    /// The VRF public key, hex.
    pub vrf_public_key: String,
    /// SHA3-512 of the TLS certificate's DER SPKI.
    #[schemars(with = "String")]
    pub tls_spki_sha3_512: Sha3Digest,
    /// The TLS certificate, PEM.
    pub tls_certificate: String,
}

/// Reply of `GET /pcrs/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Pcrs {
    /// PCR index to value, hex.
    pub pcrs: BTreeMap<String, String>,
}

/// Reply of `GET /rng_seq`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Random {
    /// How many bytes.
    pub count: usize,
    /// The bytes, hex.
    pub random: String,
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

const PATH: Param = Param {
    name: "path",
    required: true,
    description: "absolute path of a file or directory",
};
const PATH_OPT: Param = Param {
    name: "path",
    required: false,
    description: "one path instead of all",
};
const PREFIX: Param = Param {
    name: "prefix",
    required: false,
    description: "only paths starting with this",
};
const LIMIT: Param = Param {
    name: "limit",
    required: false,
    description: "items in this page: 1 to 10000 (default 1000)",
};
const AFTER: Param = Param {
    name: "after",
    required: false,
    description: "only paths sorted after this one: the `next` of the previous page (null on the last page)",
};
const VIEW: Param = Param {
    name: "view",
    required: false,
    description: "hex (default), json_hex, json_str, att_doc (raw COSE, application/cbor; /doc/ only), pcrs",
};
const NONCE: Param = Param {
    name: "nonce",
    required: false,
    description: "hex, 1 to 64 bytes: a fresh document carrying this nonce (not stored)",
};

const LOOKUP: &[(u16, &str)] = &[
    (200, "found"),
    (400, "bad path or parameter"),
    (403, "path outside the roots (`..`)"),
    (404, "nothing for this path"),
    (422, "the job for this path failed"),
    (503, "still being made"),
];
const LIST: &[(u16, &str)] = &[
    (
        200,
        "one page of the list, in path order: count, the items, next",
    ),
    (400, "bad parameter"),
];
const PLAIN: &[(u16, &str)] = &[(200, "ok"), (500, "the NSM failed")];

/// The routes of this module, with their documentation.
pub fn routes() -> Vec<(RouteDoc, MethodRouter<App>)> {
    vec![
        (
            RouteDoc {
                method: "get",
                path: "/health",
                summary: "liveness, version, record count, the NATS state and the TLS ingresses",
                params: &[],
                body: None,
                reply: Some(schema::<Health>),
                reply_also_on: &[],
                responses: &[(200, "alive")],
            },
            get(health),
        ),
        (
            RouteDoc {
                method: "post",
                path: "/generate",
                summary: "hash, prove and attest a file or directory in the background",
                params: &[],
                body: Some(schema::<GenerateBody>),
                reply: Some(schema::<Generated>),
                reply_also_on: &[],
                responses: &[
                    (202, "accepted; poll /ready/?path="),
                    (400, "malformed JSON or path"),
                    (403, "outside the roots"),
                    (404, "no such file"),
                    (413, "body too large"),
                    (415, "not JSON"),
                    (422, "wrong fields"),
                ],
            },
            post(generate),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/ready/",
                summary: "200 when ready (one path, or everything incl. the NATS catch-up), 503 while pending, 422 failed",
                params: &[PATH_OPT],
                body: None,
                reply: Some(schema::<Ready>),
                reply_also_on: &[422, 503],
                responses: &[
                    (200, "ready"),
                    (404, "unknown path"),
                    (422, "failed"),
                    (503, "pending"),
                ],
            },
            get(ready),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/readiness/",
                summary: "a page of every path's state (or one path's) and a summary",
                params: &[PATH_OPT, PREFIX, LIMIT, AFTER],
                body: None,
                reply: Some(schema::<Readiness>),
                reply_also_on: &[],
                responses: &[(200, "states"), (404, "unknown path")],
            },
            get(readiness),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/hash/",
                summary: "the SHA3-512 of a path",
                params: &[PATH],
                body: None,
                reply: Some(schema::<PathHash>),
                reply_also_on: &[],
                responses: LOOKUP,
            },
            get(hash),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/hashes/",
                summary: "every hash",
                params: &[PREFIX, LIMIT, AFTER],
                body: None,
                reply: Some(schema::<HashPage>),
                reply_also_on: &[],
                responses: LIST,
            },
            get(hashes),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/proof/",
                summary: "the VRF proof of a path's hash, with suite and public key",
                params: &[PATH],
                body: None,
                reply: Some(schema::<Proof>),
                reply_also_on: &[],
                responses: LOOKUP,
            },
            get(proof),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/proofs/",
                summary: "every proof",
                params: &[PREFIX, LIMIT, AFTER],
                body: None,
                reply: Some(schema::<ProofPage>),
                reply_also_on: &[],
                responses: LIST,
            },
            get(proofs),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/doc/",
                summary: "the attestation document of a path (user_data binds path, hash, proof; public_key is the VRF key)",
                params: &[PATH, VIEW, NONCE],
                body: None,
                reply: Some(schema::<ShownDoc>),
                reply_also_on: &[],
                responses: LOOKUP,
            },
            get(doc),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/docs/",
                summary: "every document",
                params: &[PREFIX, VIEW, LIMIT, AFTER],
                body: None,
                reply: Some(schema::<DocPage>),
                reply_also_on: &[],
                responses: LIST,
            },
            get(docs),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/tls_doc/",
                summary: "a document binding the SHA3-512 of the TLS certificate's SPKI",
                params: &[NONCE],
                body: None,
                reply: Some(schema::<TlsDoc>),
                reply_also_on: &[],
                responses: &[
                    (200, "document"),
                    (400, "bad nonce"),
                    (500, "the NSM failed"),
                ],
            },
            get(tls_doc),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/pubkeys/",
                summary: "VRF public key and suite, TLS SPKI hash and certificate",
                params: &[],
                body: None,
                reply: Some(schema::<Pubkeys>),
                reply_also_on: &[],
                responses: &[(200, "keys")],
            },
            get(pubkeys),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/pcrs/",
                summary: "the enclave's PCRs 0-4 and 8",
                params: &[],
                body: None,
                reply: Some(schema::<Pcrs>),
                reply_also_on: &[],
                responses: PLAIN,
            },
            get(pcrs),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/nsm_desc",
                summary: "the NSM's description (simulated: true in development)",
                params: &[],
                body: None,
                reply: None,
                reply_also_on: &[],
                responses: PLAIN,
            },
            get(nsm_desc),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/rng_seq",
                summary: "random bytes from the NSM",
                params: &[Param {
                    name: "count",
                    required: false,
                    description: "1 to 4096, default 32",
                }],
                body: None,
                reply: Some(schema::<Random>),
                reply_also_on: &[],
                responses: &[
                    (200, "hex bytes"),
                    (400, "bad count"),
                    (500, "the NSM failed"),
                ],
            },
            get(rng_seq),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_help_states_the_limits_in_force() {
        assert!(LIMIT.description.contains(&format!(
            "1 to {MAX_LIST_LIMIT} (default {DEFAULT_LIST_LIMIT})"
        )));
    }
}
