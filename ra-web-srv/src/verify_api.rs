//! The verification endpoints, all `POST` with a JSON body, all through
//! `ra_verify_core` (the same code the off-enclave client runs). Certificate
//! chains are checked up to the server's pinned root (`--trust-root`; the
//! AWS Nitro root, or the development root with the development NSM),
//! never the root a document carries. A well-formed request gets 200 with
//! `"passed": true|false` and the reasons; a malformed one gets 400/422.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, post};
use ra_verify_core::document::Document;
use ra_verify_core::pcrs::ExpectedPcrs;
use ra_verify_core::verify::{self, Binding, ChainTime, Check, LocalHash, Outcome, Policy, Report};
use serde_json::Value;

use crate::api::{body, nonce, ok};
use crate::app::App;
use crate::openapi::{RouteDoc, schema};
use crate::paths;
use crate::reply::{Failure, Reply};

mod bodies;
pub use bodies::*;

/// Whether `rejection` is an unreadable value of the body's field `name`.
fn bad_field(rejection: &JsonRejection, name: &str) -> bool {
    let JsonRejection::JsonDataError(error) = rejection else {
        return false;
    };
    std::error::Error::source(error)
        .and_then(std::error::Error::source)
        .and_then(|e| e.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>())
        .is_some_and(|e| e.path().to_string() == name)
}

fn parse_document(app: &App, text: &str) -> Result<Document, Failure> {
    Document::parse_hex_or_raw(text.as_bytes())
        .map_err(|e| app.fail(StatusCode::UNPROCESSABLE_ENTITY, format!("document: {e}")))
}

fn expected_pcrs(app: &App, value: &Value) -> Result<ExpectedPcrs, Failure> {
    let text =
        serde_json::to_vec(value).map_err(|e| app.fail(StatusCode::BAD_REQUEST, e.to_string()))?;
    ExpectedPcrs::from_json(&text)
        .map_err(|e| app.fail(StatusCode::UNPROCESSABLE_ENTITY, format!("pcrs: {e}")))
}

fn check_replies(checks: &[Check]) -> Vec<CheckReply> {
    checks
        .iter()
        .map(|check| CheckReply {
            name: check.name,
            outcome: check.outcome,
            detail: check.detail.clone(),
        })
        .collect()
}

fn doc_verdict(report: &Report) -> DocVerdict {
    DocVerdict {
        passed: report.passed(),
        signer: report.signer.to_string(),
        verdict: report.verdict(),
        checks: check_replies(&report.checks),
    }
}

/// `POST /verify_doc/`: every check of `ra_verify_core::verify`.
pub async fn verify_doc(
    State(app): State<App>,
    input: Result<Json<DocBody>, JsonRejection>,
) -> Reply {
    // A binding that is none of file, tls, any is a malformed field (400),
    // as a bad nonce is, not the 422 of other unreadable fields.
    let input = match input {
        Err(rejection) if bad_field(&rejection, "binding") => {
            return Err(app.fail(StatusCode::BAD_REQUEST, rejection.body_text()));
        }
        input => body(&app, input)?,
    };
    let document = parse_document(&app, &input.document)?;
    if input.binding == Binding::Any && (input.path.is_some() || input.sha3_512.is_some()) {
        return Err(app.fail(
            StatusCode::BAD_REQUEST,
            "binding any checks no path or sha3_512",
        ));
    }
    let policy = Policy {
        root: Some(app.trust_root.clone()),
        allow_unsigned: input.allow_unsigned,
        pcrs: input
            .pcrs
            .as_ref()
            .map(|v| expected_pcrs(&app, v))
            .transpose()?,
        binding: input.binding,
        path: input.path,
        file_hash: input.sha3_512.map(|digest| LocalHash {
            label: "the given sha3_512".into(),
            digest,
        }),
        nonce: nonce(&app, input.nonce.as_deref())?,
        chain_time: ChainTime::Document,
    };
    let report = tokio::task::spawn_blocking(move || verify::verify_document(document, &policy))
        .await
        .map_err(|e| app.fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    ok(&app, doc_verdict(&report))
}

/// `POST /verify_pcrs/`: a document's PCRs (or the server's) against expected ones.
pub async fn verify_pcrs(
    State(app): State<App>,
    input: Result<Json<PcrsBody>, JsonRejection>,
) -> Reply {
    let input = body(&app, input)?;
    let expected = expected_pcrs(&app, &input.pcrs)?;
    let (source, actual): (PcrSource, std::collections::BTreeMap<usize, Vec<u8>>) =
        match &input.document {
            Some(text) => {
                let document = parse_document(&app, text)?;
                let pcrs = document
                    .pcrs()
                    .into_iter()
                    .map(|(i, v)| (i, v.to_vec()))
                    .collect();
                (PcrSource::Document, pcrs)
            }
            None => {
                let pcrs = app
                    .attester
                    .nsm()
                    .pcrs()
                    .await
                    .map_err(|e| app.fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                (
                    PcrSource::Server,
                    pcrs.into_iter().map(|(i, v)| (usize::from(i), v)).collect(),
                )
            }
        };
    let borrowed = actual.iter().map(|(i, v)| (*i, v.as_slice())).collect();
    let mismatches: Vec<PcrMismatchReply> = match expected.compare(&borrowed) {
        Ok(()) => Vec::new(),
        Err(list) => list
            .into_iter()
            .map(|m| PcrMismatchReply {
                index: m.index,
                expected: m.expected,
                actual: m.actual,
            })
            .collect(),
    };
    ok(
        &app,
        PcrsVerdict {
            passed: mismatches.is_empty(),
            compared: expected.names(),
            source,
            mismatches,
        },
    )
}

/// `POST /verify_hash/`: the file's hash now against the given one (and the stored one).
pub async fn verify_hash(
    State(app): State<App>,
    input: Result<Json<HashBody>, JsonRejection>,
) -> Reply {
    let input = body(&app, input)?;
    let (path, key) = app.confine(&input.path)?;
    let current = app
        .attester
        .hash(path)
        .await
        .map_err(|e| app.fail(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let stored = app.store.record(&key).map(|r| r.sha3_512);
    ok(
        &app,
        HashVerdict {
            passed: current == input.sha3_512,
            path: key,
            current,
            given: input.sha3_512,
            stored,
            stored_matches: stored.map(|s| s == current),
        },
    )
}

/// `POST /verify_proof/`: an ECVRF proof against a hash and a public key.
pub async fn verify_proof(
    State(app): State<App>,
    input: Result<Json<ProofBody>, JsonRejection>,
) -> Reply {
    let input = body(&app, input)?;
    let record = match &input.path {
        Some(path) => {
            let key = paths::lookup_key(path).map_err(|e| app.path_failure(e))?;
            Some(app.store.record(&key).ok_or_else(|| {
                app.fail(
                    StatusCode::NOT_FOUND,
                    format!("no proof stored for {key:?}"),
                )
            })?)
        }
        None => None,
    };
    let missing = |what: &str| {
        app.fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what} is needed (or a path with a stored proof)"),
        )
    };
    let digest = input
        .sha3_512
        .or(record.as_ref().map(|r| r.sha3_512))
        .ok_or_else(|| missing("sha3_512"))?;
    let proof_hex = input
        .vrf_proof
        .or(record.as_ref().map(|r| r.vrf_proof.clone()))
        .ok_or_else(|| missing("vrf_proof"))?;
    let suite = input
        .vrf_suite
        .or(record.as_ref().map(|r| r.vrf_suite))
        .unwrap_or(app.attester.suite());
    let key_hex = input
        .vrf_public_key
        .or(record.as_ref().map(|r| r.vrf_public_key.clone()))
        .unwrap_or_else(|| hex::encode(app.attester.vrf_public_key()));
    let bad_hex = |what: &str, e: hex::FromHexError| {
        app.fail(
            StatusCode::BAD_REQUEST,
            format!("{what}: not hexadecimal: {e}"),
        )
    };
    let proof = hex::decode(&proof_hex).map_err(|e| bad_hex("vrf_proof", e))?;
    let public_key = hex::decode(&key_hex).map_err(|e| bad_hex("vrf_public_key", e))?;
    let result = ra_verify_core::proof::verify(suite, &public_key, &proof, digest.as_bytes());
    ok(
        &app,
        ProofVerdict {
            passed: result.is_ok(),
            sha3_512: digest,
            vrf_suite: suite,
            vrf_public_key: key_hex,
            vrf_output: result.as_ref().ok().map(hex::encode),
            error: result.err().map(|e| e.to_string()),
        },
    )
}

/// `POST /verify_cert_valid/`: each certificate of a document inside its validity period now.
pub async fn verify_cert_valid(
    State(app): State<App>,
    input: Result<Json<CertBody>, JsonRejection>,
) -> Reply {
    let input = body(&app, input)?;
    let document = parse_document(&app, &input.document)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let mut all_valid = true;
    let mut certificates = Vec::new();
    let bundle = document.cabundle();
    let named = bundle
        .iter()
        .enumerate()
        .map(|(i, der)| (format!("cabundle[{i}]"), *der))
        .chain(std::iter::once((
            "certificate".to_string(),
            document.certificate(),
        )));
    for (name, der) in named {
        match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => {
                let validity = cert.validity();
                let valid =
                    validity.not_before.timestamp() <= now && now <= validity.not_after.timestamp();
                all_valid &= valid;
                certificates.push(CertValidity {
                    name,
                    subject: Some(cert.subject().to_string()),
                    not_before: Some(validity.not_before.to_string()),
                    not_after: Some(validity.not_after.to_string()),
                    error: None,
                    valid_now: valid,
                });
            }
            Err(e) => {
                all_valid = false;
                certificates.push(CertValidity {
                    name,
                    subject: None,
                    not_before: None,
                    not_after: None,
                    error: Some(e.to_string()),
                    valid_now: false,
                });
            }
        }
    }
    ok(
        &app,
        CertValidVerdict {
            passed: all_valid,
            certificates,
        },
    )
}

/// `POST /verify_cert_bundle/`: signature and chain up to the pinned root.
pub async fn verify_cert_bundle(
    State(app): State<App>,
    input: Result<Json<CertBody>, JsonRejection>,
) -> Reply {
    let input = body(&app, input)?;
    let document = parse_document(&app, &input.document)?;
    let policy = Policy {
        root: Some(app.trust_root.clone()),
        ..Policy::default()
    };
    let report = tokio::task::spawn_blocking(move || verify::verify_document(document, &policy))
        .await
        .map_err(|e| app.fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let checks: Vec<Check> = report
        .checks
        .iter()
        .filter(|c| matches!(c.name, "cose_signature" | "certificate_chain"))
        .cloned()
        .collect();
    let passed = !checks.is_empty() && checks.iter().all(|c| c.outcome == Outcome::Pass);
    ok(
        &app,
        BundleVerdict {
            passed,
            signer: report.signer.to_string(),
            root_sha256: app.trust_root.sha256_fingerprint(),
            checks: check_replies(&checks),
        },
    )
}

const VERIFY: &[(u16, &str)] = &[
    (200, "checked: passed true or false, with the reasons"),
    (400, "malformed JSON or field"),
    (413, "body too large"),
    (415, "not JSON"),
    (422, "unreadable document, PCR file or fields"),
];

/// The verification routes.
pub fn routes() -> Vec<(RouteDoc, MethodRouter<App>)> {
    vec![
        (
            RouteDoc {
                method: "post",
                path: "/verify_doc/",
                summary: "verify a document: signature, chain to the pinned root, PCRs, binding, hash, VRF proof, nonce",
                params: &[],
                body: Some(schema::<DocBody>),
                reply: Some(schema::<DocVerdict>),
                reply_also_on: &[],
                responses: VERIFY,
            },
            post(verify_doc),
        ),
        (
            RouteDoc {
                method: "post",
                path: "/verify_pcrs/",
                summary: "compare PCRs (of a document, or the server's) with expected ones",
                params: &[],
                body: Some(schema::<PcrsBody>),
                reply: Some(schema::<PcrsVerdict>),
                reply_also_on: &[],
                responses: VERIFY,
            },
            post(verify_pcrs),
        ),
        (
            RouteDoc {
                method: "post",
                path: "/verify_hash/",
                summary: "hash a file now and compare with a given SHA3-512 (and the stored one)",
                params: &[],
                body: Some(schema::<HashBody>),
                reply: Some(schema::<HashVerdict>),
                reply_also_on: &[],
                responses: &[
                    (200, "compared"),
                    (400, "malformed"),
                    (403, "outside the roots"),
                    (404, "no such file"),
                    (422, "unreadable"),
                ],
            },
            post(verify_hash),
        ),
        (
            RouteDoc {
                method: "post",
                path: "/verify_proof/",
                summary: "verify an ECVRF proof of a hash (fields default to the stored record of path, then the server's key)",
                params: &[],
                body: Some(schema::<ProofBody>),
                reply: Some(schema::<ProofVerdict>),
                reply_also_on: &[],
                responses: &[
                    (200, "checked"),
                    (400, "malformed"),
                    (404, "no record for path"),
                    (422, "fields missing"),
                ],
            },
            post(verify_proof),
        ),
        (
            RouteDoc {
                method: "post",
                path: "/verify_cert_valid/",
                summary: "whether each certificate of a document is inside its validity period now",
                params: &[],
                body: Some(schema::<CertBody>),
                reply: Some(schema::<CertValidVerdict>),
                reply_also_on: &[],
                responses: VERIFY,
            },
            post(verify_cert_valid),
        ),
        (
            RouteDoc {
                method: "post",
                path: "/verify_cert_bundle/",
                summary: "the document's signature and certificate chain up to the server's pinned root",
                params: &[],
                body: Some(schema::<CertBody>),
                reply: Some(schema::<BundleVerdict>),
                reply_also_on: &[],
                responses: VERIFY,
            },
            post(verify_cert_bundle),
        ),
    ]
}
