#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! `/openapi.json` against the serde types: every documented request body
//! is what serializing a real value of its struct gives (each field
//! documented, with its JSON type; required exactly when not optional), and
//! every documented reply is what the server really answers.

mod common;

use std::collections::BTreeSet;

use common::{config, get_json, q, start};
use ra_verify::verify::Binding;
use ra_web_srv::api::GenerateBody;
use ra_web_srv::verify_api::{CertBody, DocBody, HashBody, PcrsBody, ProofBody};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn nullable(schema: &Value) -> bool {
    schema["nullable"] == true
}

/// What in `value` the OpenAPI `schema` does not describe (field names,
/// JSON types, enum values, required fields), and where the schema itself
/// marks a field required that is optional or the other way round.
fn problems(schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if value.is_null() {
        let typed = ["type", "oneOf", "anyOf"]
            .iter()
            .any(|k| schema.get(k).is_some());
        if !nullable(schema) && typed {
            out.push(format!("{at}: null, documented not nullable"));
        }
        return;
    }
    if let Some(branches) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        // Fields beside the branches (a flattened struct's) belong to each.
        let fits = branches.iter().any(|branch| {
            let mut branch = branch.clone();
            for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                branch["properties"][name] = property.clone();
            }
            for name in schema["required"].as_array().into_iter().flatten() {
                match branch["required"].as_array_mut() {
                    Some(required) => required.push(name.clone()),
                    None => branch["required"] = json!([name]),
                }
            }
            let mut none = Vec::new();
            problems(&branch, value, at, &mut none);
            none.is_empty()
        });
        if !fits {
            out.push(format!("{at}: {value} fits none of {branches:?}"));
        }
        return;
    }
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let fits = match kind {
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        };
        if !fits {
            out.push(format!("{at}: {value} is not the documented {kind}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::Object(fields) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                let required: BTreeSet<&str> = schema["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for (name, property) in properties {
                    let optional = nullable(property) || property.get("default").is_some();
                    if required.contains(name.as_str()) == optional {
                        out.push(format!(
                            "{at}.{name}: documented required={}, but optional={optional}",
                            !optional
                        ));
                    }
                }
                for name in &required {
                    if !fields.contains_key(*name) {
                        out.push(format!("{at}: required {name} missing"));
                    }
                }
                for (name, field) in fields {
                    match properties.get(name) {
                        Some(property) => problems(property, field, &format!("{at}.{name}"), out),
                        None => out.push(format!("{at}: field {name} is not documented")),
                    }
                }
            } else if let Some(each) = schema.get("additionalProperties").filter(|s| s.is_object())
            {
                for (name, field) in fields {
                    problems(each, field, &format!("{at}.{name}"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(each) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    problems(each, item, &format!("{at}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn check(schema: &Value, value: &Value, what: &str) {
    let mut out = Vec::new();
    problems(schema, value, what, &mut out);
    assert!(
        out.is_empty(),
        "{what}: {out:#?}\nvalue {value:#}\nschema {schema:#}"
    );
}

fn request_schema(openapi: &Value, path: &str) -> Value {
    openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"].clone()
}

fn reply_schema(openapi: &Value, method: &str, path: &str, status: StatusCode) -> Value {
    openapi["paths"][path][method]["responses"][status.as_str()]["content"]["application/json"]
        ["schema"]
        .clone()
}

/// The routes whose documented `what` is a typed object (has properties,
/// or is one of several that have).
fn typed(openapi: &Value, what: impl Fn(&Value) -> Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (path, item) in openapi["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let schema = what(operation);
            if schema["properties"].is_object() || schema["anyOf"].is_array() {
                out.insert(format!("{method} {path}"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_bodies_are_the_serde_types() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("model.bin");
    std::fs::write(&file, b"weights").unwrap();
    let other = data.path().join("other.bin");
    std::fs::write(&other, b"more weights").unwrap();
    let server = start(config(state.path(), data.path())).await;
    let path = server.generate(&file).await;
    let hash = ra_verify::hash_file(&file).unwrap();
    let (_, doc) = server.get(&format!("/doc/?path={}", q(&path))).await;
    let document = doc["document"].as_str().unwrap().to_string();
    let pcrs = json!({"HashAlgorithm": "SHA384", "PCR0": "00".repeat(48)});
    let openapi = get_json(&server.client, &server.url("/openapi.json")).await;

    // Requests: a real value of each body, every field set.
    let requests = [
        (
            "/generate",
            serde_json::to_value(GenerateBody { path: path.clone() }),
        ),
        (
            "/verify_doc/",
            serde_json::to_value(DocBody {
                document: document.clone(),
                pcrs: Some(pcrs.clone()),
                nonce: Some("00".into()),
                path: Some(path.clone()),
                sha3_512: Some(hash),
                binding: Binding::Tls,
                allow_unsigned: true,
            }),
        ),
        (
            "/verify_pcrs/",
            serde_json::to_value(PcrsBody {
                pcrs: pcrs.clone(),
                document: Some(document.clone()),
            }),
        ),
        (
            "/verify_hash/",
            serde_json::to_value(HashBody {
                path: path.clone(),
                sha3_512: hash,
            }),
        ),
        (
            "/verify_proof/",
            serde_json::to_value(ProofBody {
                path: Some(path.clone()),
                sha3_512: Some(hash),
                vrf_proof: Some("00".into()),
                vrf_public_key: Some("00".into()),
                vrf_suite: Some(ra_verify::Suite::Secp256k1Sha256Tai),
            }),
        ),
        (
            "/verify_cert_valid/",
            serde_json::to_value(CertBody {
                document: document.clone(),
            }),
        ),
        (
            "/verify_cert_bundle/",
            serde_json::to_value(CertBody {
                document: document.clone(),
            }),
        ),
    ];
    for (route, value) in &requests {
        let value = value.as_ref().unwrap();
        let schema = request_schema(&openapi, route);
        check(&schema, value, route);
        // Every documented field is one of the struct's.
        let documented: BTreeSet<&String> =
            schema["properties"].as_object().unwrap().keys().collect();
        let fields: BTreeSet<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(documented, fields, "{route}");
    }
    let checked: BTreeSet<String> = requests.iter().map(|(r, _)| format!("post {r}")).collect();
    assert_eq!(
        typed(&openapi, |op| {
            op["requestBody"]["content"]["application/json"]["schema"].clone()
        }),
        checked,
        "every documented request body is checked"
    );

    // Replies: what the server answers, against the documented schema.
    let replies = [
        ("get", "/health".to_string(), None, StatusCode::OK),
        (
            "post",
            "/generate".to_string(),
            Some(json!({"path": other})),
            StatusCode::ACCEPTED,
        ),
        (
            "get",
            format!("/hash/?path={}", q(&path)),
            None,
            StatusCode::OK,
        ),
        (
            "get",
            format!("/proof/?path={}", q(&path)),
            None,
            StatusCode::OK,
        ),
        ("get", "/hashes/?limit=1".into(), None, StatusCode::OK),
        ("get", "/proofs/".into(), None, StatusCode::OK),
        ("get", "/readiness/".into(), None, StatusCode::OK),
        ("get", "/docs/?view=json_hex".into(), None, StatusCode::OK),
        ("get", "/docs/?view=pcrs".into(), None, StatusCode::OK),
        ("get", "/docs/".into(), None, StatusCode::OK),
        (
            "get",
            format!("/doc/?path={}&view=json_str&nonce=02", q(&path)),
            None,
            StatusCode::OK,
        ),
        (
            "get",
            format!("/ready/?path={}", q(&path)),
            None,
            StatusCode::OK,
        ),
        (
            "get",
            format!("/readiness/?path={}", q(&path)),
            None,
            StatusCode::OK,
        ),
        ("get", "/tls_doc/?nonce=01".into(), None, StatusCode::OK),
        ("get", "/pubkeys/".into(), None, StatusCode::OK),
        ("get", "/pcrs/".into(), None, StatusCode::OK),
        ("get", "/rng_seq?count=4".into(), None, StatusCode::OK),
        (
            "post",
            "/verify_doc/".into(),
            Some(json!({"document": document})),
            StatusCode::OK,
        ),
        (
            "post",
            "/verify_pcrs/".into(),
            Some(json!({"pcrs": pcrs, "document": document})),
            StatusCode::OK,
        ),
        (
            "post",
            "/verify_hash/".into(),
            Some(json!({"path": path, "sha3_512": hash})),
            StatusCode::OK,
        ),
        (
            "post",
            "/verify_proof/".into(),
            Some(json!({"path": path})),
            StatusCode::OK,
        ),
        (
            "post",
            "/verify_cert_valid/".into(),
            Some(json!({"document": document})),
            StatusCode::OK,
        ),
        (
            "post",
            "/verify_cert_bundle/".into(),
            Some(json!({"document": document})),
            StatusCode::OK,
        ),
        // An error answers {error, nsm}.
        (
            "post",
            "/verify_doc/".into(),
            Some(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    let mut checked = BTreeSet::new();
    for (method, url, body, want) in &replies {
        let (status, reply) = match body {
            Some(body) => server.post(url, body).await,
            None => server.get(url).await,
        };
        assert_eq!(status, *want, "{method} {url}: {reply}");
        let route = url.split('?').next().unwrap();
        let schema = reply_schema(&openapi, method, route, status);
        check(&schema, &reply, &format!("{method} {url}"));
        if status.is_success() {
            checked.insert(format!("{method} {route}"));
        }
    }
    // /ready/ answers its state with 503 (pending) and 422 (failed) too.
    for status in [
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::UNPROCESSABLE_ENTITY,
    ] {
        assert_eq!(
            reply_schema(&openapi, "get", "/ready/", status),
            reply_schema(&openapi, "get", "/ready/", StatusCode::OK)
        );
    }
    // The mismatches of /verify_pcrs/ were there to check.
    let (_, verdict) = server
        .post(
            "/verify_pcrs/",
            &json!({"pcrs": pcrs, "document": document}),
        )
        .await;
    assert!(
        !verdict["mismatches"].as_array().unwrap().is_empty(),
        "{verdict}"
    );
    let success = |op: &Value| {
        let responses = op["responses"].as_object().unwrap();
        let (_, first) = responses.iter().find(|(s, _)| s.starts_with('2')).unwrap();
        first["content"]["application/json"]["schema"].clone()
    };
    assert_eq!(
        typed(&openapi, success),
        checked,
        "every documented reply is checked"
    );

    // The check sees a field the document does not name, and a wrong type.
    let (_, mut health) = server.get("/health").await;
    let schema = reply_schema(&openapi, "get", "/health", StatusCode::OK);
    health["uptime"] = json!(1);
    let mut out = Vec::new();
    problems(&schema, &health, "health", &mut out);
    assert_eq!(out, ["health: field uptime is not documented"]);
    health.as_object_mut().unwrap().remove("uptime");
    health["records"] = json!("1");
    let mut out = Vec::new();
    problems(&schema, &health, "health", &mut out);
    assert_eq!(out, ["health.records: \"1\" is not the documented integer"]);
}
