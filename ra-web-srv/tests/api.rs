#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Every endpoint over real HTTPS, success and error cases.

mod common;

use std::collections::BTreeSet;

use common::{config, dev_root, q, start};
use ra_verify::Sha3Digest;
use ra_verify::verify::{Binding, Policy};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn hex_doc(body: &Value) -> Vec<u8> {
    hex::decode(body["document"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_then_every_lookup_and_view_and_the_proof_verifies() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("model.bin");
    std::fs::write(&file, vec![7u8; 3 << 20]).unwrap();
    let server = start(config(state.path(), data.path())).await;

    let path = server.generate(&file).await;
    assert_eq!(path, file.canonicalize().unwrap().to_str().unwrap());
    let expected = ra_verify::hash_file(&file).unwrap();

    let (status, body) = server.get(&format!("/hash/?path={}", q(&path))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sha3_512"], expected.to_hex());

    let (_, keys) = server.get("/pubkeys/").await;
    assert_eq!(keys["vrf_suite"], "P256_SHA256_TAI");
    let (status, proof) = server.get(&format!("/proof/?path={}", q(&path))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(proof["vrf_public_key"], keys["vrf_public_key"]);
    // The proof made by /generate verifies (Sentient's did not).
    ra_verify::proof::verify(
        ra_verify::Suite::P256Sha256Tai,
        &hex::decode(keys["vrf_public_key"].as_str().unwrap()).unwrap(),
        &hex::decode(proof["vrf_proof"].as_str().unwrap()).unwrap(),
        expected.as_bytes(),
    )
    .unwrap();

    // The document verifies with the development root, the file and the PCRs.
    let (status, doc) = server
        .get(&format!("/doc/?path={}&view=hex", q(&path)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["path"], path.as_str());
    let (_, pcrs) = server.get("/pcrs/").await;
    let pcrs_file = json!({
        "HashAlgorithm": "SHA384",
        "PCR0": pcrs["pcrs"]["0"], "PCR1": pcrs["pcrs"]["1"], "PCR2": pcrs["pcrs"]["2"],
    });
    let policy = Policy {
        root: Some(dev_root(state.path())),
        pcrs: Some(
            ra_verify::pcrs::ExpectedPcrs::from_json(pcrs_file.to_string().as_bytes()).unwrap(),
        ),
        path: Some(path.clone()),
        file_hash: Some(ra_verify::verify::LocalHash::of_path(&file).unwrap()),
        ..Policy::default()
    };
    let report = ra_verify::verify::verify(&hex_doc(&doc), &policy);
    assert!(report.passed(), "{}", report.verdict());
    // Against the AWS root (the default), the development document fails.
    let aws = Policy {
        root: None,
        ..policy.clone()
    };
    assert!(!ra_verify::verify::verify(&hex_doc(&doc), &aws).passed());

    // Views.
    let (_, decoded) = server
        .get(&format!("/doc/?path={}&view=json_hex", q(&path)))
        .await;
    let user_data = hex::decode(decoded["document"]["user_data"].as_str().unwrap()).unwrap();
    let binding = ra_verify::UserData::from_bytes(&user_data).unwrap();
    assert_eq!(binding.path, path);
    assert_eq!(decoded["document"]["public_key"], keys["vrf_public_key"]);
    assert_eq!(
        decoded["document"]["module_id"],
        "unsecure-development-attestation-document"
    );
    let (_, readable) = server
        .get(&format!("/doc/?path={}&view=json_str", q(&path)))
        .await;
    assert!(
        readable["document"]["user_data"]
            .as_str()
            .unwrap()
            .starts_with("{\"v\":1")
    );
    assert!(
        readable["document"]["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let (_, only_pcrs) = server
        .get(&format!("/doc/?path={}&view=pcrs", q(&path)))
        .await;
    assert_eq!(only_pcrs["pcrs"], pcrs["pcrs"]);
    let raw = server
        .client
        .get(server.url(&format!("/doc/?path={}&view=att_doc", q(&path))))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-type"], "application/cbor");
    assert_eq!(raw.headers()["x-nsm"], "development");
    assert_eq!(raw.bytes().await.unwrap().to_vec(), hex_doc(&doc));
    let (status, body) = server
        .get(&format!("/doc/?path={}&view=pdf", q(&path)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("json_hex"),
        "{body}"
    );

    // A nonce gives a fresh document with the same binding, not stored.
    let nonce = "00112233445566778899";
    let (status, fresh) = server
        .get(&format!("/doc/?path={}&nonce={nonce}", q(&path)))
        .await;
    assert_eq!(status, StatusCode::OK);
    let with_nonce = Policy {
        nonce: Some(hex::decode(nonce).unwrap()),
        ..policy.clone()
    };
    let report = ra_verify::verify::verify(&hex_doc(&fresh), &with_nonce);
    assert!(report.passed(), "{}", report.verdict());
    assert!(!ra_verify::verify::verify(&hex_doc(&doc), &with_nonce).passed());
    let (_, stored) = server.get(&format!("/doc/?path={}", q(&path))).await;
    assert_eq!(stored["document"], doc["document"]);
    for bad in ["zz", "", &"00".repeat(65)] {
        let (status, _) = server
            .get(&format!("/doc/?path={}&nonce={bad}", q(&path)))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "nonce {bad:?}");
    }

    // Lists.
    let (_, hashes) = server.get("/hashes/").await;
    assert_eq!(hashes["count"], 1);
    assert_eq!(hashes["hashes"][0]["sha3_512"], expected.to_hex());
    let (_, proofs) = server.get("/proofs/?prefix=/nowhere").await;
    assert_eq!(proofs["count"], 0);
    let (_, docs) = server.get("/docs/?view=json_hex").await;
    assert_eq!(docs["docs"][0]["path"], path.as_str());
    let (status, _) = server.get("/docs/?view=att_doc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, ready) = server.get("/ready/").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["summary"]["ready"], 1);
    let (_, readiness) = server.get("/readiness/").await;
    assert_eq!(readiness["paths"][0]["status"], "ready");
    let (_, one) = server.get(&format!("/readiness/?path={}", q(&path))).await;
    assert_eq!(one["status"], "ready");

    // The verification endpoints.
    let (_, verdict) = server
        .post("/verify_doc/", &json!({"document": doc["document"], "pcrs": pcrs_file, "path": path, "sha3_512": expected}))
        .await;
    assert_eq!(verdict["passed"], true, "{verdict}");
    let mut tampered = hex_doc(&doc);
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    let (status, verdict) = server
        .post("/verify_doc/", &json!({"document": hex::encode(&tampered)}))
        .await;
    assert!(
        status == StatusCode::OK && verdict["passed"] == false
            || status == StatusCode::UNPROCESSABLE_ENTITY,
        "{status} {verdict}"
    );
    let other = Sha3Digest::of(b"other content").unwrap();
    let (_, verdict) = server
        .post(
            "/verify_doc/",
            &json!({"document": doc["document"], "sha3_512": other}),
        )
        .await;
    assert_eq!(verdict["passed"], false, "wrong file: {verdict}");
    let mut wrong_pcrs = pcrs_file.clone();
    wrong_pcrs["PCR0"] = json!("00".repeat(48));
    let (_, verdict) = server
        .post(
            "/verify_doc/",
            &json!({"document": doc["document"], "pcrs": wrong_pcrs}),
        )
        .await;
    assert_eq!(verdict["passed"], false, "wrong PCRs: {verdict}");
    // Any user_data: the binding is not checked (nor can a path or hash be
    // asked for then).
    let (_, verdict) = server
        .post(
            "/verify_doc/",
            &json!({"document": doc["document"], "binding": "any"}),
        )
        .await;
    assert_eq!(verdict["passed"], true, "any user_data: {verdict}");
    assert!(
        verdict["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "user_data" && c["outcome"] == "skip"),
        "{verdict}"
    );
    for bad in [
        json!({"document": doc["document"], "binding": "none"}),
        json!({"document": doc["document"], "binding": "any", "path": path}),
        json!({"document": doc["document"], "binding": "any", "sha3_512": other}),
    ] {
        let (status, body) = server.post("/verify_doc/", &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    // A binding other than file, tls, any is refused when the body is read,
    // naming the field and the spellings it takes.
    let (_, body) = server
        .post(
            "/verify_doc/",
            &json!({"document": doc["document"], "binding": "File"}),
        )
        .await;
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("binding: unknown variant `File`, expected one of `file`, `tls`, `any`"),
        "{error}"
    );
    // Each accepted spelling reaches the verifier (tls fails on a file document).
    for (binding, passed) in [("file", true), ("tls", false), ("any", true)] {
        let (status, verdict) = server
            .post(
                "/verify_doc/",
                &json!({"document": doc["document"], "binding": binding}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{binding}: {verdict}");
        assert_eq!(verdict["passed"], passed, "{binding}: {verdict}");
    }
    let (status, _) = server
        .post("/verify_doc/", &json!({"document": "not a document"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, verdict) = server
        .post("/verify_pcrs/", &json!({"pcrs": pcrs_file}))
        .await;
    assert_eq!(verdict["passed"], true, "{verdict}");
    assert_eq!(verdict["source"], "server");
    let (_, verdict) = server
        .post(
            "/verify_pcrs/",
            &json!({"pcrs": wrong_pcrs, "document": doc["document"]}),
        )
        .await;
    assert_eq!(verdict["passed"], false);
    assert_eq!(verdict["mismatches"][0]["index"], 0);

    let (_, verdict) = server
        .post(
            "/verify_hash/",
            &json!({"path": path, "sha3_512": expected}),
        )
        .await;
    assert_eq!(verdict["passed"], true, "{verdict}");
    assert_eq!(verdict["stored_matches"], true);
    let (_, verdict) = server
        .post("/verify_hash/", &json!({"path": path, "sha3_512": other}))
        .await;
    assert_eq!(verdict["passed"], false);
    let (status, _) = server
        .post("/verify_hash/", &json!({"path": path, "sha3_512": "abc"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, verdict) = server.post("/verify_proof/", &json!({"path": path})).await;
    assert_eq!(verdict["passed"], true, "{verdict}");
    let (_, verdict) = server
        .post(
            "/verify_proof/",
            &json!({"sha3_512": other, "vrf_proof": proof["vrf_proof"]}),
        )
        .await;
    assert_eq!(verdict["passed"], false);
    let (status, _) = server.post("/verify_proof/", &json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, verdict) = server
        .post("/verify_cert_valid/", &json!({"document": doc["document"]}))
        .await;
    assert_eq!(verdict["passed"], true, "{verdict}");
    assert_eq!(verdict["certificates"].as_array().unwrap().len(), 3);
    let (_, verdict) = server
        .post(
            "/verify_cert_bundle/",
            &json!({"document": doc["document"]}),
        )
        .await;
    assert_eq!(verdict["passed"], true, "{verdict}");

    // Another server (another development root) refuses this document's chain.
    let state2 = tempfile::tempdir().unwrap();
    let other_server = start(config(state2.path(), data.path())).await;
    let (_, verdict) = other_server
        .post(
            "/verify_cert_bundle/",
            &json!({"document": doc["document"]}),
        )
        .await;
    assert_eq!(verdict["passed"], false, "wrong root: {verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_come_in_pages_in_path_order() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("sub")).unwrap();
    let names = ["a", "b", "c", "d", "e", "sub/f", "sub/g"];
    for name in names {
        std::fs::write(data.path().join(name), name).unwrap();
    }
    let server = start(config(state.path(), data.path())).await;
    let mut paths = Vec::new();
    for name in names {
        paths.push(server.generate(&data.path().join(name)).await);
    }
    paths.sort();

    // Following `next` visits every path once, in order, for each list.
    for (list, key, extra) in [
        ("hashes", "hashes", ""),
        ("proofs", "proofs", ""),
        ("docs", "docs", "&view=json_hex"),
        ("readiness", "paths", ""),
    ] {
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let (status, page) = server.get(&format!("/{list}/?limit=3{extra}{after}")).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let items = page[key].as_array().unwrap();
            assert_eq!(page["count"], items.len());
            assert!(items.len() <= 3, "{page}");
            seen.extend(items.iter().map(|i| i["path"].as_str().unwrap().to_owned()));
            match page["next"].as_str() {
                Some(next) => {
                    assert_eq!(Some(next), seen.last().map(String::as_str));
                    after = format!("&after={}", q(next));
                }
                None => break,
            }
        }
        assert_eq!(seen, paths, "{list}");
    }

    // With a prefix, and a page that ends exactly at the end.
    let sub = data.path().canonicalize().unwrap().join("sub");
    let prefix = q(sub.to_str().unwrap());
    let (_, page) = server
        .get(&format!("/hashes/?prefix={prefix}&limit=2"))
        .await;
    assert_eq!(page["count"], 2);
    assert_eq!(page["next"], Value::Null);
    let (_, page) = server
        .get(&format!("/hashes/?prefix={prefix}&limit=1"))
        .await;
    assert_eq!(page["hashes"][0]["path"], paths[5].as_str());
    assert_eq!(page["next"], paths[5].as_str());
    let (_, all) = server.get("/hashes/").await;
    assert_eq!(all["count"], names.len());
    assert_eq!(all["next"], Value::Null);

    let (_, page) = server
        .get(&format!("/readiness/?prefix={prefix}&limit=1"))
        .await;
    assert_eq!(page["paths"][0]["path"], paths[5].as_str());
    assert_eq!(page["paths"][0]["status"], "ready");
    assert_eq!(
        page["summary"]["ready"],
        names.len(),
        "the summary counts every path"
    );

    for list in ["hashes", "readiness"] {
        for bad in ["limit=0", "limit=10001", "limit=-1", "limit=x"] {
            let (status, body) = server.get(&format!("/{list}/?{bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{list} {bad}: {body}");
            assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_endpoints_tls_document_and_openapi() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = start(config(state.path(), data.path())).await;

    let (status, health) = server.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["bus"]["state"], "disabled");
    assert_eq!(health["image_profile"], serde_json::Value::Null);
    assert_eq!(health["debug_image"], false);
    let (_, desc) = server.get("/nsm_desc").await;
    assert_eq!(desc["simulated"], true);
    let (_, pcrs) = server.get("/pcrs/").await;
    assert_eq!(pcrs["pcrs"].as_object().unwrap().len(), 6);
    let (status, rng) = server.get("/rng_seq?count=100").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rng["random"].as_str().unwrap().len(), 200);
    for bad in [
        "/rng_seq?count=0",
        "/rng_seq?count=5000",
        "/rng_seq?count=x",
    ] {
        assert_eq!(server.get(bad).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }

    // The TLS document binds the key of the certificate this client pinned.
    let (status, tls) = server.get("/tls_doc/?nonce=abcd").await;
    assert_eq!(status, StatusCode::OK);
    let cert = std::fs::read(state.path().join("tls-cert.pem")).unwrap();
    let der = openssl::x509::X509::from_pem(&cert)
        .unwrap()
        .to_der()
        .unwrap();
    let spki = ra_web_srv::tls::spki_sha3_512(&der).unwrap();
    assert_eq!(tls["spki_sha3_512"], spki.to_hex());
    let policy = Policy {
        root: Some(dev_root(state.path())),
        binding: Binding::Tls,
        nonce: Some(vec![0xab, 0xcd]),
        ..Policy::default()
    };
    let report = ra_verify::verify::verify(&hex_doc(&tls), &policy);
    assert!(report.passed(), "{}", report.verdict());
    let user_data = ra_verify::document::Document::parse(&hex_doc(&tls)).unwrap();
    let binding =
        ra_verify::binding::TlsBinding::from_bytes(user_data.user_data().unwrap()).unwrap();
    assert_eq!(binding.tls_spki_sha3_512, spki);
    let (_, keys) = server.get("/pubkeys/").await;
    assert_eq!(keys["tls_spki_sha3_512"], spki.to_hex());
    assert_eq!(
        server.get("/tls_doc/?nonce=xyz").await.0,
        StatusCode::BAD_REQUEST
    );

    // The verification endpoints refuse what they cannot read.
    for (route, body, want) in [
        (
            "/verify_doc/",
            json!({"document": "00ff"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/verify_doc/",
            json!({"document": hex::encode(hex_doc(&tls)), "binding": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        ("/verify_doc/", json!({}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "/verify_pcrs/",
            json!({"pcrs": {"PCR0": "zz"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/verify_cert_valid/",
            json!({"document": "zz"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/verify_cert_bundle/",
            json!({"document": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/verify_proof/",
            json!({"path": "/no/such"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/verify_proof/",
            json!({"sha3_512": spki, "vrf_proof": "zz"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/verify_hash/",
            json!({"path": "/etc/passwd", "sha3_512": spki}),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (status, answer) = server.post(route, &body).await;
        assert_eq!(status, want, "{route} {body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }

    // /openapi.json lists every route, and every listed route answers.
    let response = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let openapi: Value = response.json().await.unwrap();
    assert_eq!(openapi["openapi"], "3.0.3");
    let listed: BTreeSet<String> = openapi["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let table: BTreeSet<String> = ra_web_srv::routes::all_routes()
        .iter()
        .map(|(doc, _)| doc.path.to_string())
        .chain(["/openapi.json".to_string()])
        .collect();
    assert_eq!(listed, table);
    for required in [
        "/generate",
        "/ready/",
        "/readiness/",
        "/hash/",
        "/hashes/",
        "/proof/",
        "/proofs/",
        "/doc/",
        "/docs/",
        "/pubkeys/",
        "/pcrs/",
        "/nsm_desc",
        "/rng_seq",
        "/verify_pcrs/",
        "/verify_hash/",
        "/verify_proof/",
        "/verify_doc/",
        "/verify_cert_valid/",
        "/verify_cert_bundle/",
        "/health",
        "/tls_doc/",
    ] {
        assert!(
            listed.contains(required),
            "{required} missing from /openapi.json"
        );
    }
    for (path, item) in openapi["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let request = match method.as_str() {
                "get" => server.client.get(server.url(path)),
                _ => server.client.post(server.url(path)).json(&json!({})),
            };
            let status = request.send().await.unwrap().status();
            assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
    // Also without the trailing slash.
    assert_eq!(server.get("/pcrs").await.0, StatusCode::OK);

    // Unknown routes and methods get JSON errors.
    let (status, body) = server.get("/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("/nope"));
    let response = server
        .client
        .delete(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["nsm"], "development");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_roots_and_bad_requests_are_refused() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    std::fs::write(root.join("sub/a"), b"a").unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), root.join("escape")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape-dir")).unwrap();
    let server = start(config(state.path(), &root)).await;

    let generate = |path: String| {
        let server = &server;
        async move { server.post("/generate", &json!({"path": path})).await }
    };
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    for (path, want) in [
        (s(&root.join("escape")), StatusCode::FORBIDDEN),
        (s(&root.join("escape-dir/secret")), StatusCode::FORBIDDEN),
        (
            s(&root.join("sub/../../outside/secret")),
            StatusCode::FORBIDDEN,
        ),
        (s(&outside.join("secret")), StatusCode::FORBIDDEN),
        ("/etc/passwd".into(), StatusCode::FORBIDDEN),
        ("sub/a".into(), StatusCode::BAD_REQUEST),
        (s(&root.join("missing")), StatusCode::NOT_FOUND),
    ] {
        let (status, body) = generate(path.clone()).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["error"].is_string());
    }
    // Lookups: no path, unknown path, `..`.
    assert_eq!(server.get("/hash/").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        server.get("/proof/?path=/no/such").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.get("/doc/?path=relative").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        server.get("/doc/?path=/a/../b").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.get("/ready/?path=/no/such").await.0,
        StatusCode::NOT_FOUND
    );

    // A directory hashes by its manifest.
    let dir_path = server.generate(&root.join("sub")).await;
    let (_, body) = server.get(&format!("/hash/?path={}", q(&dir_path))).await;
    assert_eq!(
        body["sha3_512"],
        ra_verify::hash_dir(&root.join("sub")).unwrap().to_hex()
    );

    // Bodies: malformed, not JSON, wrong fields, too large.
    let post_raw = |body: Vec<u8>, content_type: &'static str| {
        let server = &server;
        async move {
            let response = server
                .client
                .post(server.url("/generate"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["nsm"], "development");
            (status, body)
        }
    };
    assert_eq!(
        post_raw(b"{\"path\":".to_vec(), "application/json").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post_raw(b"{}".to_vec(), "text/plain").await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        post_raw(b"{\"path\":1}".to_vec(), "application/json")
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        post_raw(
            b"{\"path\":\"/x\",\"extra\":1}".to_vec(),
            "application/json"
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let mut huge = b"{\"path\":\"".to_vec();
    huge.extend(vec![b'a'; ra_web_srv::defs::MAX_BODY + 1]);
    huge.extend(b"\"}");
    assert_eq!(
        post_raw(huge, "application/json").await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // The server is still fine.
    assert_eq!(server.get("/health").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_redirects_to_https() {
    let state = tempfile::tempdir().unwrap();
    let server = start(config(state.path(), state.path())).await;
    let running = server.running.as_ref().unwrap();
    let http_port = match running.http_addr().unwrap() {
        transport::Address::Tcp { port, .. } => *port,
        other => panic!("{other}"),
    };
    // The same client (redirects not followed) speaks plain HTTP too.
    let response = server
        .client
        .get(format!("http://127.0.0.1:{http_port}/hash/?path=/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    let location = response.headers()["location"].to_str().unwrap();
    assert_eq!(location, server.url("/hash/?path=/x"));
    // Following it with the pinned client works.
    let response = server.client.get(location).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_survive_a_restart_and_a_suite_change_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let mut first = start(config(state.path(), state.path())).await;
    let (_, keys) = first.get("/pubkeys/").await;
    let (_, pcrs) = first.get("/pcrs/").await;
    first.stop().await;
    let second = start(config(state.path(), state.path())).await;
    let (_, again) = second.get("/pubkeys/").await;
    assert_eq!(again["vrf_public_key"], keys["vrf_public_key"]);
    assert_eq!(again["tls_spki_sha3_512"], keys["tls_spki_sha3_512"]);
    assert_eq!(second.get("/pcrs/").await.1["pcrs"], pcrs["pcrs"]);

    let mut other_suite = config(state.path(), state.path());
    other_suite.vrf_suite = ra_verify::Suite::Secp256k1Sha256Tai;
    let error = ra_web_srv::start(other_suite)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("--vrf-suite"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_pcrs_from_a_file_are_what_documents_carry() {
    let state = tempfile::tempdir().unwrap();
    let pcrs_file = state.path().join("image.eif.pcrs");
    let pcr0 = "11".repeat(48);
    std::fs::write(
        &pcrs_file,
        format!(
            r#"{{"HashAlgorithm":"SHA384","PCR0":"{pcr0}","PCR1":"{}","PCR2":"{}"}}"#,
            "22".repeat(48),
            "33".repeat(48)
        ),
    )
    .unwrap();
    let args = ra_web_srv::Args {
        state_dir: Some(state.path().to_owned()),
        listen: Some("127.0.0.1:0".into()),
        http_listen: Some("off".into()),
        nsm: Some(ra_web_srv::nsm::NsmMode::Development),
        dev_pcrs: Some(pcrs_file.clone()),
        root_dirs: vec![state.path().to_owned()],
        ..ra_web_srv::Args::default()
    };
    let server = start(args.resolve().unwrap()).await;
    let (_, pcrs) = server.get("/pcrs/").await;
    assert_eq!(pcrs["pcrs"]["0"], pcr0.as_str());
    let (_, tls) = server.get("/tls_doc/").await;
    let expected = ra_verify::pcrs::ExpectedPcrs::load(&pcrs_file).unwrap();
    let policy = Policy {
        root: Some(dev_root(state.path())),
        binding: Binding::Tls,
        pcrs: Some(expected),
        ..Policy::default()
    };
    assert!(ra_verify::verify::verify(&hex_doc(&tls), &policy).passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_clients_do_not_disturb_the_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let state = tempfile::tempdir().unwrap();
    let server = start(config(state.path(), state.path())).await;
    let addr = server.base.trim_start_matches("https://").to_string();
    // One client says nothing, one sends garbage instead of a TLS hello,
    // one speaks plain HTTP to the HTTPS port.
    let _silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut garbage = tokio::net::TcpStream::connect(&addr).await.unwrap();
    garbage.write_all(&[0xff; 4096]).await.unwrap();
    let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    for stream in [&mut garbage, &mut plain] {
        let mut buffer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut buffer),
        )
        .await;
        assert!(read.is_ok(), "the server should close a bad TLS client");
    }
    assert_eq!(server.get("/health").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secp256k1_suite_proves_too() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("f");
    std::fs::write(&file, b"secp").unwrap();
    let mut cfg = config(state.path(), data.path());
    cfg.vrf_suite = ra_verify::Suite::Secp256k1Sha256Tai;
    let server = start(cfg).await;
    let path = server.generate(&file).await;
    let (_, proof) = server.get(&format!("/proof/?path={}", q(&path))).await;
    assert_eq!(proof["vrf_suite"], "SECP256K1_SHA256_TAI");
    let (_, verdict) = server.post("/verify_proof/", &json!({"path": path})).await;
    assert_eq!(verdict["passed"], true, "{verdict}");
    let (_, doc) = server.get(&format!("/doc/?path={}", q(&path))).await;
    let policy = Policy {
        root: Some(dev_root(state.path())),
        file_hash: Some(ra_verify::verify::LocalHash::of_path(&file).unwrap()),
        ..Policy::default()
    };
    let report = ra_verify::verify::verify(&hex_doc(&doc), &policy);
    assert!(report.passed(), "{}", report.verdict());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_marks_a_debug_image_loudly() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut debug = config(state.path(), data.path());
    debug.image_profile = Some(ra_verify::pcrs::Profile::Debug);
    let server = start(debug).await;
    let (_, health) = server.get("/health").await;
    assert_eq!(health["image_profile"], "debug");
    assert_eq!(health["debug_image"], true);
}
