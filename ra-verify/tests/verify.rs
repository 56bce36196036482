#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Verification of real signed documents (development PKI, `DevNitro`),
//! the success and each way a document must fail.

mod common;

use common::{DevPki, PCR0_BYTE, file_document, pcrs_file, unsigned_document};
use ra_verify::document::Document;
use ra_verify::hash::Sha3Digest;
use ra_verify::pcrs::ExpectedPcrs;
use ra_verify::proof::{Suite, VrfKey};
use ra_verify::verify::{Binding, ChainTime, LocalHash, Outcome, Signer};
use ra_verify::{Policy, Report, Root, TlsBinding, UserData, verify};

const PATH: &str = "/data/report.txt";
const CONTENT: &[u8] = b"the attested content\n";

fn local(content: &[u8]) -> LocalHash {
    LocalHash {
        label: "local copy".into(),
        digest: Sha3Digest::of(content).unwrap(),
    }
}

fn full_policy(pki: &DevPki, nonce: &[u8]) -> Policy {
    Policy {
        root: Some(pki.root()),
        pcrs: Some(ExpectedPcrs::from_json(pcrs_file(PCR0_BYTE).as_bytes()).unwrap()),
        path: Some(PATH.into()),
        file_hash: Some(local(CONTENT)),
        nonce: Some(nonce.to_vec()),
        ..Policy::default()
    }
}

fn outcome(report: &Report, name: &str) -> Outcome {
    report
        .check(name)
        .unwrap_or_else(|| panic!("no {name} check"))
        .outcome
}

fn print(report: &Report) {
    for check in &report.checks {
        eprintln!("{check}");
    }
    eprintln!("{}", report.verdict());
}

/// Asserts that exactly the checks in `failing` failed.
fn assert_fails_only(report: &Report, failing: &[&str]) {
    print(report);
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| c.name)
        .collect();
    assert_eq!(failed, failing);
    assert!(!report.passed());
    assert!(report.verdict().starts_with("VERDICT FAIL"));
}

#[test]
fn a_real_development_document_passes_every_check_with_its_root() {
    let pki = DevPki::generate();
    let nonce = b"fresh nonce 123".to_vec();
    let doc = file_document(&pki, PATH, CONTENT, Some(nonce.clone()));
    let report = verify(&doc.document, &full_policy(&pki, &nonce));
    print(&report);
    assert!(report.passed());
    for name in common::FILE_CHECKS {
        assert_eq!(outcome(&report, name), Outcome::Pass, "{name}");
    }
    assert_eq!(report.signer, Signer::Development);
    assert!(report.verdict().contains("DEVELOPMENT"));
    assert!(
        report
            .check("certificate_chain")
            .unwrap()
            .detail
            .contains("development root")
    );
    // The same document as hex text parses the same.
    let hex_text = format!("{}\n", hex::encode(&doc.document));
    let parsed = Document::parse_hex_or_raw(hex_text.as_bytes()).unwrap();
    assert_eq!(
        parsed.user_data(),
        Some(&doc.binding.to_bytes().unwrap()[..])
    );
    assert_eq!(parsed.public_key(), Some(doc.key.public_key()));
    assert!(parsed.is_signed() && parsed.claims_development());
    // Without anything to compare, the optional checks are skipped, not passed.
    let minimal = Policy {
        root: Some(pki.root()),
        ..Policy::default()
    };
    let report = verify(&doc.document, &minimal);
    assert!(report.passed());
    for name in ["pcrs", "file_hash", "nonce"] {
        assert_eq!(outcome(&report, name), Outcome::Skip, "{name}");
    }
    // The chain is also valid now (the certificates are an hour long).
    let now = Policy {
        chain_time: ChainTime::Now,
        ..minimal
    };
    assert!(verify(&doc.document, &now).passed());
}

#[test]
fn the_default_aws_root_refuses_a_development_document_and_says_development() {
    let pki = DevPki::generate();
    let doc = file_document(&pki, PATH, CONTENT, None);
    let report = verify(&doc.document, &Policy::default());
    assert_fails_only(&report, &["certificate_chain"]);
    let chain = report.check("certificate_chain").unwrap();
    assert!(
        chain.detail.contains("AWS Nitro Enclaves root G1"),
        "{chain}"
    );
    assert!(chain.detail.contains("development"), "{chain}");
    assert_eq!(report.signer, Signer::Development);
    assert!(report.verdict().contains("DEVELOPMENT"));
}

#[test]
fn another_development_root_is_the_wrong_root() {
    let pki = DevPki::generate();
    let other = DevPki::generate();
    let doc = file_document(&pki, PATH, CONTENT, None);
    let policy = Policy {
        root: Some(other.root()),
        ..Policy::default()
    };
    assert_fails_only(&verify(&doc.document, &policy), &["certificate_chain"]);
}

#[test]
fn a_document_carrying_its_own_root_still_fails_against_the_pinned_one() {
    let pki = DevPki::generate();
    let attacker = DevPki::generate();
    // The attacker signs with its own chain and ships its root in the
    // cabundle, as if it were trusted.
    let key = VrfKey::generate(Suite::P256Sha256Tai).unwrap();
    let binding = UserData::prove(PATH, Sha3Digest::of(CONTENT).unwrap(), &key).unwrap();
    let forged = common::sign(
        &attacker.driver(),
        Some(binding.to_bytes().unwrap()),
        None,
        Some(key.public_key().to_vec()),
    );
    let parsed = Document::parse(&forged).unwrap();
    assert_eq!(parsed.cabundle()[0], &attacker.root_der()[..]);
    for root in [Some(pki.root()), None] {
        let policy = Policy {
            root,
            ..Policy::default()
        };
        assert_fails_only(&verify(&forged, &policy), &["certificate_chain"]);
    }
    // Even with the pinned root added to the bundle the path cannot reach it.
    let mixed = common::sign(
        &attacker.driver_with_bundle(vec![pki.root_der(), attacker.root_der()]),
        None,
        None,
        None,
    );
    let policy = Policy {
        root: Some(pki.root()),
        ..Policy::default()
    };
    assert_eq!(
        outcome(&verify(&mixed, &policy), "certificate_chain"),
        Outcome::Fail
    );
}

#[test]
fn a_tampered_payload_fails_the_signature() {
    let pki = DevPki::generate();
    let nonce = b"n".to_vec();
    let doc = file_document(&pki, PATH, CONTENT, Some(nonce.clone()));
    let mut tampered = doc.document.clone();
    // Change the attested path inside the signed payload: /data/ -> /date/.
    let at = tampered
        .windows(PATH.len())
        .position(|w| w == PATH.as_bytes())
        .unwrap();
    tampered[at + 4] = b'e';
    let report = verify(&tampered, &full_policy(&pki, &nonce));
    assert_fails_only(&report, &["cose_signature", "user_data"]);
    assert!(
        report
            .check("cose_signature")
            .unwrap()
            .detail
            .contains("does not verify")
    );
}

#[test]
fn a_tampered_signature_fails() {
    let pki = DevPki::generate();
    let nonce = b"n".to_vec();
    let mut document = file_document(&pki, PATH, CONTENT, Some(nonce.clone())).document;
    let last = document.len() - 1;
    document[last] ^= 0x01;
    assert_fails_only(
        &verify(&document, &full_policy(&pki, &nonce)),
        &["cose_signature"],
    );
}

#[test]
fn a_pcr_mismatch_names_the_pcr() {
    let pki = DevPki::generate();
    let nonce = b"n".to_vec();
    let doc = file_document(&pki, PATH, CONTENT, Some(nonce.clone()));
    let policy = Policy {
        pcrs: Some(ExpectedPcrs::from_json(pcrs_file(PCR0_BYTE + 1).as_bytes()).unwrap()),
        ..full_policy(&pki, &nonce)
    };
    let report = verify(&doc.document, &policy);
    assert_fails_only(&report, &["pcrs"]);
    let detail = &report.check("pcrs").unwrap().detail;
    assert!(detail.starts_with("PCR0 is 0707"), "{detail}");
    assert!(!detail.contains("PCR1"), "{detail}");
}

#[test]
fn a_different_local_file_fails_file_hash() {
    let pki = DevPki::generate();
    let nonce = b"n".to_vec();
    let doc = file_document(&pki, PATH, CONTENT, Some(nonce.clone()));
    let policy = Policy {
        file_hash: Some(local(b"another content\n")),
        ..full_policy(&pki, &nonce)
    };
    assert_fails_only(&verify(&doc.document, &policy), &["file_hash"]);
    // A local file hashed from disk, and a directory, go through hash_path.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy");
    std::fs::write(&file, CONTENT).unwrap();
    let policy = Policy {
        file_hash: Some(LocalHash::of_path(&file).unwrap()),
        ..full_policy(&pki, &nonce)
    };
    assert!(verify(&doc.document, &policy).passed());
    let policy = Policy {
        file_hash: Some(LocalHash::of_path(dir.path()).unwrap()),
        ..full_policy(&pki, &nonce)
    };
    assert_fails_only(&verify(&doc.document, &policy), &["file_hash"]);
}

#[test]
fn another_path_fails_user_data() {
    let pki = DevPki::generate();
    let nonce = b"n".to_vec();
    let doc = file_document(&pki, "/data/other.txt", CONTENT, Some(nonce.clone()));
    let report = verify(&doc.document, &full_policy(&pki, &nonce));
    assert_fails_only(&report, &["user_data"]);
    assert!(
        report
            .check("user_data")
            .unwrap()
            .detail
            .contains("/data/other.txt")
    );
}

#[test]
fn a_wrong_or_missing_nonce_fails() {
    let pki = DevPki::generate();
    let doc = file_document(&pki, PATH, CONTENT, Some(b"old nonce".to_vec()));
    assert_fails_only(
        &verify(&doc.document, &full_policy(&pki, b"new nonce")),
        &["nonce"],
    );
    let doc = file_document(&pki, PATH, CONTENT, None);
    let report = verify(&doc.document, &full_policy(&pki, b"new nonce"));
    assert_fails_only(&report, &["nonce"]);
    assert!(report.check("nonce").unwrap().detail.contains("no nonce"));
}

#[test]
fn a_proof_for_another_key_or_hash_fails_vrf_proof() {
    let pki = DevPki::generate();
    let nonce = b"n".to_vec();
    let digest = Sha3Digest::of(CONTENT).unwrap();
    let signer_key = VrfKey::generate(Suite::P256Sha256Tai).unwrap();
    let published_key = VrfKey::generate(Suite::P256Sha256Tai).unwrap();
    let binding = UserData::prove(PATH, digest, &signer_key).unwrap();
    // public_key is not the key that made the proof.
    let document = pki.document(
        Some(binding.to_bytes().unwrap()),
        Some(nonce.clone()),
        Some(published_key.public_key().to_vec()),
    );
    assert_fails_only(
        &verify(&document, &full_policy(&pki, &nonce)),
        &["vrf_proof"],
    );
    // The proof is for another hash than the one bound.
    let mut bad = binding.clone();
    bad.vrf_proof = hex::encode(signer_key.prove(b"something else").unwrap());
    let document = pki.document(
        Some(bad.to_bytes().unwrap()),
        Some(nonce.clone()),
        Some(signer_key.public_key().to_vec()),
    );
    assert_fails_only(
        &verify(&document, &full_policy(&pki, &nonce)),
        &["vrf_proof"],
    );
    // No public key at all.
    let document = pki.document(Some(binding.to_bytes().unwrap()), Some(nonce.clone()), None);
    assert_fails_only(
        &verify(&document, &full_policy(&pki, &nonce)),
        &["vrf_proof"],
    );
}

#[test]
fn unsigned_documents_fail_unless_allowed_and_say_so() {
    let key = VrfKey::generate(Suite::P256Sha256Tai).unwrap();
    let binding = UserData::prove(PATH, Sha3Digest::of(CONTENT).unwrap(), &key).unwrap();
    let document = unsigned_document(binding.to_bytes().unwrap(), key.public_key().to_vec());
    let parsed = Document::parse(&document).unwrap();
    assert!(!parsed.is_signed());
    let mut policy = Policy {
        pcrs: Some(ExpectedPcrs::from_json(pcrs_file(PCR0_BYTE).as_bytes()).unwrap()),
        file_hash: Some(local(CONTENT)),
        ..Policy::default()
    };
    let report = verify(&document, &policy);
    assert_fails_only(&report, &["cose_signature"]);
    assert!(
        report
            .check("cose_signature")
            .unwrap()
            .detail
            .contains("unsigned")
    );
    assert_eq!(report.signer, Signer::Unsigned);
    assert!(report.verdict().contains("UNSIGNED"));

    policy.allow_unsigned = true;
    let report = verify(&document, &policy);
    print(&report);
    assert!(report.passed());
    assert_eq!(outcome(&report, "cose_signature"), Outcome::Skip);
    assert_eq!(outcome(&report, "certificate_chain"), Outcome::Skip);
    assert!(
        report
            .check("cose_signature")
            .unwrap()
            .detail
            .contains("unsigned")
    );
    assert!(report.verdict().contains("UNSIGNED"));
}

#[test]
fn truncated_and_garbage_bytes_fail_the_document_check() {
    let pki = DevPki::generate();
    let doc = file_document(&pki, PATH, CONTENT, None);
    let policy = Policy {
        root: Some(pki.root()),
        ..Policy::default()
    };
    for cut in [1, 10, doc.document.len() / 2, doc.document.len() - 1] {
        let report = verify(&doc.document[..cut], &policy);
        assert_fails_only(&report, &["document"]);
    }
    for garbage in [&b""[..], b"garbage", &[0xff; 4000], &[0x84; 17000]] {
        assert_fails_only(&verify(garbage, &policy), &["document"]);
    }
    // Every single-byte corruption is an error or a failed check, never a
    // panic and never a pass.
    for at in (0..doc.document.len()).step_by(7) {
        let mut bytes = doc.document.clone();
        bytes[at] ^= 0x5a;
        assert!(!verify(&bytes, &policy).passed(), "byte {at}");
    }
}

#[test]
fn a_tls_binding_document_verifies_as_tls() {
    let pki = DevPki::generate();
    let binding = TlsBinding::new(b"spki bytes").unwrap();
    let document = pki.document(Some(binding.to_bytes().unwrap()), Some(b"n".to_vec()), None);
    let policy = Policy {
        root: Some(pki.root()),
        binding: Binding::Tls,
        nonce: Some(b"n".to_vec()),
        ..Policy::default()
    };
    let report = verify(&document, &policy);
    print(&report);
    assert!(report.passed());
    assert!(report.check("vrf_proof").is_none());
    // A file document is not a TLS document.
    let file = file_document(&pki, PATH, CONTENT, Some(b"n".to_vec()));
    assert_fails_only(&verify(&file.document, &policy), &["user_data"]);
}

#[test]
fn roots_load_from_the_pem_and_der_files_a_server_writes() {
    let pki = DevPki::generate();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dev-root.pem"), pki.root_pem()).unwrap();
    std::fs::write(dir.path().join("dev-root.der"), pki.root_der()).unwrap();
    let pem = Root::load(&dir.path().join("dev-root.pem")).unwrap();
    let der = Root::load(&dir.path().join("dev-root.der")).unwrap();
    assert_eq!(pem, der);
    assert_eq!(pem, pki.root());
    assert!(!pem.is_aws_nitro());
}

/// A document made by real AWS Nitro hardware on 2024-09-17 (instance
/// i-0bbf1bfe232b8c2ce), published as a test vector: it proves the checks
/// accept what AWS signs, against the bundled root.
fn real_nitro_document() -> Vec<u8> {
    let text = include_str!("data/nitro-2024-09-17.b64");
    openssl::base64::decode_block(text.trim()).unwrap()
}

#[test]
fn a_real_aws_nitro_document_verifies_against_the_bundled_root() {
    let document = real_nitro_document();
    let report = verify(&document, &Policy::default());
    print(&report);
    assert_eq!(outcome(&report, "cose_signature"), Outcome::Pass);
    assert_eq!(outcome(&report, "certificate_chain"), Outcome::Pass);
    assert_eq!(report.signer, Signer::Nitro);
    assert!(report.verdict().contains("AWS Nitro"));
    // Its user_data is someone else's format, not our binding; a policy
    // that accepts any user_data passes it, checking all the rest.
    assert_fails_only(&report, &["user_data"]);
    let any = Policy {
        binding: Binding::Any,
        ..Policy::default()
    };
    let report = verify(&document, &any);
    assert!(report.passed(), "{}", report.verdict());
    assert_eq!(outcome(&report, "user_data"), Outcome::Skip);
    assert_eq!(outcome(&report, "certificate_chain"), Outcome::Pass);
    assert!(
        report
            .checks
            .iter()
            .all(|c| c.name != "file_hash" && c.name != "vrf_proof")
    );
    let parsed = Document::parse(&document).unwrap();
    assert_eq!(parsed.cabundle().len(), 4);
    assert!(Root::aws_nitro().der() == parsed.cabundle()[0]);
    // Its leaf certificate lived three hours in 2024: valid now it is not.
    let now = Policy {
        chain_time: ChainTime::Now,
        ..Policy::default()
    };
    assert_eq!(
        outcome(&verify(&document, &now), "certificate_chain"),
        Outcome::Fail
    );
    // A development root is not the root of an AWS document.
    let dev = Policy {
        root: Some(DevPki::generate().root()),
        ..Policy::default()
    };
    assert_eq!(
        outcome(&verify(&document, &dev), "certificate_chain"),
        Outcome::Fail
    );
    // It comes from a debug-mode enclave: PCR0, 1 and 2 are zero, so an
    // image's PCR file does not match, and an all-zero one does.
    let image = Policy {
        pcrs: Some(ExpectedPcrs::from_json(pcrs_file(PCR0_BYTE).as_bytes()).unwrap()),
        ..Policy::default()
    };
    assert_eq!(outcome(&verify(&document, &image), "pcrs"), Outcome::Fail);
    let zeros = Policy {
        pcrs: Some(ExpectedPcrs::from_json(pcrs_file(0).as_bytes()).unwrap()),
        ..Policy::default()
    };
    assert_eq!(outcome(&verify(&document, &zeros), "pcrs"), Outcome::Pass);
    // A flipped bit in the signed payload breaks the AWS signature.
    let mut tampered = document.clone();
    let at = tampered
        .windows(10)
        .position(|w| w == b"i-0bbf1bfe")
        .unwrap();
    tampered[at + 2] = b'1';
    assert_eq!(
        outcome(&verify(&tampered, &Policy::default()), "cose_signature"),
        Outcome::Fail
    );
}

#[test]
fn a_tagged_cose_sign1_reads_as_the_untagged_one() {
    let pki = DevPki::generate();
    let doc = file_document(&pki, PATH, CONTENT, None);
    // CBOR tag 18 (COSE_Sign1) in front: 0xd2.
    let mut tagged = vec![0xd2];
    tagged.extend_from_slice(&doc.document);
    let policy = Policy {
        root: Some(pki.root()),
        ..Policy::default()
    };
    let report = verify(&tagged, &policy);
    print(&report);
    assert!(report.passed());
    assert_eq!(outcome(&report, "cose_signature"), Outcome::Pass);
}

/// A document from QEMU 10.0's emulated NSM (`-M nitro-enclave`, this
/// framework's image, ra-web-srv's /tls_doc/ with nonce 00112233), and the
/// `.eif.pcrs` of that image: unsigned, with algorithm -1 in its protected
/// header, and the image's real PCRs.
fn qemu_document() -> Vec<u8> {
    ra_verify::document::decode_hex_or_raw(include_bytes!("data/qemu-nitro-enclave-tls-doc.hex"))
        .unwrap()
}

#[test]
fn a_document_of_qemus_emulated_nsm_reads_as_unsigned_and_its_pcrs_check() {
    let document = qemu_document();
    let parsed = Document::parse(&document).unwrap();
    assert!(!parsed.is_signed());
    assert_eq!(parsed.nonce(), Some(&[0x00, 0x11, 0x22, 0x33][..]));
    let pcrs = ExpectedPcrs::from_json(include_bytes!("data/qemu-nitro-enclave.eif.pcrs")).unwrap();
    let mut policy = Policy {
        pcrs: Some(pcrs),
        binding: Binding::Tls,
        nonce: Some(vec![0x00, 0x11, 0x22, 0x33]),
        ..Policy::default()
    };
    assert_fails_only(&verify(&document, &policy), &["cose_signature"]);
    policy.allow_unsigned = true;
    let report = verify(&document, &policy);
    print(&report);
    assert!(report.passed());
    assert_eq!(outcome(&report, "pcrs"), Outcome::Pass);
    assert_eq!(outcome(&report, "cose_signature"), Outcome::Skip);

    // Another image's PCRs fail.
    let other = pcrs_file(PCR0_BYTE);
    policy.pcrs = Some(ExpectedPcrs::from_json(other.as_bytes()).unwrap());
    assert_fails_only(&verify(&document, &policy), &["pcrs"]);
}

#[test]
fn a_foreign_protected_header_is_refused_on_a_signed_document() {
    let mut document = qemu_document();
    // Give it a non-zero signature: the lenient reading must not apply.
    let last = document.len() - 1;
    document[last] = 1;
    assert!(Document::parse(&document).is_err());
}
