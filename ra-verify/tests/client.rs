#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The HTTPS client against a real HTTPS server serving real signed
//! documents: the TLS binding, nonces, and clear errors.

mod common;

use std::time::Duration;

use common::server::{Mode, start};
use common::{PCR0_BYTE, pcrs_file};
use ra_verify::client::{ClientError, Request, verify_url};
use ra_verify::hash::Sha3Digest;
use ra_verify::pcrs::ExpectedPcrs;
use ra_verify::verify::{LocalHash, Outcome, Signer};
use ra_verify::{Policy, Report};

const PATH: &str = "/data/file.txt";
const CONTENT: &[u8] = b"served content\n";

fn request(url: String, fresh_nonce: bool) -> Request {
    Request {
        fresh_nonce,
        timeout: Duration::from_secs(10),
        ..Request::new(url, PATH)
    }
}

fn print(report: &Report) {
    for check in &report.checks {
        eprintln!("{check}");
    }
    eprintln!("{}", report.verdict());
}

fn outcome(report: &Report, name: &str) -> Outcome {
    report.check(name).unwrap().outcome
}

#[tokio::test]
async fn an_honest_server_passes_every_check_including_the_tls_binding() {
    let server = start(Mode::Honest, &[(PATH, CONTENT)]).await;
    let policy = Policy {
        root: Some(server.pki.root()),
        pcrs: Some(ExpectedPcrs::from_json(pcrs_file(PCR0_BYTE).as_bytes()).unwrap()),
        file_hash: Some(LocalHash {
            label: "local".into(),
            digest: Sha3Digest::of(CONTENT).unwrap(),
        }),
        ..Policy::default()
    };
    let report = verify_url(&request(server.url(), true), &policy)
        .await
        .unwrap();
    print(&report);
    assert!(report.passed());
    assert_eq!(report.checks[0].name, "tls_binding");
    for name in std::iter::once("tls_binding").chain(common::FILE_CHECKS) {
        assert_eq!(outcome(&report, name), Outcome::Pass, "{name}");
    }
    assert_eq!(report.signer, Signer::Development);

    // Without --nonce the stored document is fetched: nonce is skipped,
    // but the TLS binding still uses a fresh one.
    let report = verify_url(&request(server.url(), false), &policy)
        .await
        .unwrap();
    assert!(report.passed());
    assert_eq!(outcome(&report, "nonce"), Outcome::Skip);
    assert_eq!(outcome(&report, "tls_binding"), Outcome::Pass);

    // The default root (AWS) refuses the development server, both documents.
    let report = verify_url(&request(server.url(), true), &Policy::default())
        .await
        .unwrap();
    print(&report);
    assert!(!report.passed());
    assert_eq!(outcome(&report, "certificate_chain"), Outcome::Fail);
    assert_eq!(outcome(&report, "tls_binding"), Outcome::Fail);
    assert!(
        report
            .check("tls_binding")
            .unwrap()
            .detail
            .contains("certificate_chain")
    );
}

#[tokio::test]
async fn a_key_other_than_the_attested_one_fails_the_tls_binding() {
    let server = start(Mode::OtherKey, &[(PATH, CONTENT)]).await;
    let policy = Policy {
        root: Some(server.pki.root()),
        ..Policy::default()
    };
    let report = verify_url(&request(server.url(), true), &policy)
        .await
        .unwrap();
    print(&report);
    assert!(!report.passed());
    let check = report.check("tls_binding").unwrap();
    assert_eq!(check.outcome, Outcome::Fail);
    assert!(check.detail.contains("not the attested one"), "{check}");
    // The document itself is fine: only the binding fails.
    assert_eq!(outcome(&report, "cose_signature"), Outcome::Pass);
}

#[tokio::test]
async fn a_server_replaying_documents_fails_on_nonces() {
    let server = start(Mode::IgnoresNonce, &[(PATH, CONTENT)]).await;
    let policy = Policy {
        root: Some(server.pki.root()),
        ..Policy::default()
    };
    let report = verify_url(&request(server.url(), true), &policy)
        .await
        .unwrap();
    print(&report);
    assert_eq!(outcome(&report, "nonce"), Outcome::Fail);
    let tls = report.check("tls_binding").unwrap();
    assert_eq!(tls.outcome, Outcome::Fail);
    assert!(tls.detail.contains("nonce"), "{tls}");
}

#[tokio::test]
async fn server_errors_bad_answers_and_no_server_are_clear_errors() {
    let server = start(Mode::Honest, &[(PATH, CONTENT)]).await;
    let policy = Policy {
        root: Some(server.pki.root()),
        ..Policy::default()
    };
    let mut missing = request(server.url(), false);
    missing.path = Some("/data/none".into());
    let error = verify_url(&missing, &policy).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Server { status: 404, .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains("404") && text.contains("no document for /data/none yet"),
        "{text}"
    );
    assert!(!text.contains('\n'));

    let not_json = start(Mode::NotJson, &[]).await;
    let error = verify_url(&request(not_json.url(), false), &policy)
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::BadResponse { .. }), "{error}");
    assert!(
        error.to_string().contains("not the JSON expected"),
        "{error}"
    );

    // A port nobody listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let error = verify_url(
        &request(format!("https://127.0.0.1:{port}"), false),
        &policy,
    )
    .await
    .unwrap_err();
    assert!(error.is_unreachable(), "{error}");
    assert!(error.to_string().contains("cannot reach"), "{error}");

    let error = verify_url(&request(format!("http://{}", server.addr), false), &policy)
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::BadUrl { .. }), "{error}");
}

#[tokio::test]
async fn unsigned_documents_are_refused_and_bind_nothing_when_allowed() {
    let server = start(Mode::Unsigned, &[(PATH, CONTENT)]).await;
    let report = verify_url(&request(server.url(), true), &Policy::default())
        .await
        .unwrap();
    print(&report);
    assert!(!report.passed());
    assert_eq!(outcome(&report, "cose_signature"), Outcome::Fail);
    assert_eq!(outcome(&report, "tls_binding"), Outcome::Fail);
    let allowed = Policy {
        allow_unsigned: true,
        ..Policy::default()
    };
    let report = verify_url(&request(server.url(), true), &allowed)
        .await
        .unwrap();
    print(&report);
    assert!(report.passed());
    assert_eq!(report.signer, Signer::Unsigned);
    let tls = report.check("tls_binding").unwrap();
    assert_eq!(tls.outcome, Outcome::Skip);
    assert!(tls.detail.contains("proves nothing"), "{tls}");
    assert_eq!(outcome(&report, "nonce"), Outcome::Pass);
    assert_eq!(outcome(&report, "vrf_proof"), Outcome::Pass);
}

/// The `endpoint` checks of `report`, in order.
fn endpoint_checks(report: &Report) -> Vec<&ra_verify::Check> {
    report
        .checks
        .iter()
        .filter(|check| check.name == "endpoint")
        .collect()
}

#[tokio::test]
async fn endpoints_pass_with_the_attested_key_and_fail_with_any_other() {
    let server = start(Mode::Honest, &[(PATH, CONTENT)]).await;
    // Another TLS server with its own key: a host impersonating the app.
    let impostor = start(Mode::Honest, &[]).await;
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("https://127.0.0.1:{}", free.local_addr().unwrap().port());
    drop(free);
    let policy = Policy {
        root: Some(server.pki.root()),
        pcrs: Some(ExpectedPcrs::from_json(pcrs_file(PCR0_BYTE).as_bytes()).unwrap()),
        ..Policy::default()
    };

    // Only the TLS binding and the endpoints: no path.
    let request = Request {
        timeout: Duration::from_secs(10),
        ..Request::endpoints(server.url(), vec![server.same_key_url()])
    };
    let report = verify_url(&request, &policy).await.unwrap();
    print(&report);
    assert!(report.passed(), "{}", report.verdict());
    assert_eq!(report.checks[0].name, "tls_binding");
    assert_eq!(outcome(&report, "pcrs"), Outcome::Pass);
    assert_eq!(outcome(&report, "user_data"), Outcome::Pass);
    let endpoints = endpoint_checks(&report);
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].outcome, Outcome::Pass, "{}", endpoints[0]);
    assert!(endpoints[0].detail.starts_with(&server.same_key_url()));

    // With a path, and three endpoints: each gets its own verdict.
    let request = Request {
        endpoints: vec![server.same_key_url(), impostor.url(), closed.clone()],
        timeout: Duration::from_secs(10),
        ..Request::new(server.url(), PATH)
    };
    let report = verify_url(&request, &policy).await.unwrap();
    print(&report);
    assert!(!report.passed());
    assert_eq!(outcome(&report, "tls_binding"), Outcome::Pass);
    assert_eq!(outcome(&report, "vrf_proof"), Outcome::Pass);
    let endpoints = endpoint_checks(&report);
    assert_eq!(endpoints.len(), 3);
    assert_eq!(endpoints[0].outcome, Outcome::Pass, "{}", endpoints[0]);
    assert_eq!(endpoints[1].outcome, Outcome::Fail, "{}", endpoints[1]);
    assert!(
        endpoints[1].detail.contains("not the attested one"),
        "{}",
        endpoints[1]
    );
    assert!(endpoints[1].detail.starts_with(&impostor.url()));
    assert_eq!(endpoints[2].outcome, Outcome::Fail, "{}", endpoints[2]);
    assert!(
        endpoints[2].detail.contains("cannot connect"),
        "{}",
        endpoints[2]
    );
    assert!(report.verdict().starts_with("VERDICT FAIL"));

    // An endpoint with the right key proves nothing when the document fails
    // (here: against the AWS root).
    let report = verify_url(
        &Request::endpoints(server.url(), vec![server.same_key_url()]),
        &Policy::default(),
    )
    .await
    .unwrap();
    let endpoints = endpoint_checks(&report);
    assert_eq!(endpoints[0].outcome, Outcome::Fail, "{}", endpoints[0]);
    assert!(endpoints[0].detail.contains("/tls_doc/ document fails"));

    // Not an https:// endpoint: refused before anything is fetched.
    let error = verify_url(
        &Request::endpoints(server.url(), vec!["http://127.0.0.1:1".into()]),
        &policy,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ClientError::BadUrl { .. }), "{error}");
}

#[tokio::test]
async fn endpoints_of_unsigned_documents_are_skipped_not_passed() {
    let server = start(Mode::Unsigned, &[]).await;
    let allowed = Policy {
        allow_unsigned: true,
        ..Policy::default()
    };
    let report = verify_url(
        &Request::endpoints(server.url(), vec![server.same_key_url()]),
        &allowed,
    )
    .await
    .unwrap();
    print(&report);
    let endpoints = endpoint_checks(&report);
    assert_eq!(endpoints[0].outcome, Outcome::Skip, "{}", endpoints[0]);
    assert!(endpoints[0].detail.contains("proves nothing"));
}
