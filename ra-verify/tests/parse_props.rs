#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Property tests of the parsers on hostile input: any bytes, and any
//! mutation of a real signed document, give a typed error or a report
//! with a failed check, never a panic and never a pass.

mod common;

use common::{DevPki, file_document};
use proptest::prelude::*;
use ra_verify::document::Document;
use ra_verify::{ExpectedPcrs, Policy, TlsBinding, UserData, verify, verify_saved};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = Document::parse(&bytes);
        let _ = Document::parse_hex_or_raw(&bytes);
        let _ = UserData::from_bytes(&bytes);
        let _ = TlsBinding::from_bytes(&bytes);
        let _ = ExpectedPcrs::from_json(&bytes);
        prop_assert!(!verify_saved(&bytes, &Policy::default()).passed());
    }

    #[test]
    fn cbor_shaped_prefixes_fail_cleanly(
        head in prop::sample::select(vec![0x84u8, 0xd2, 0x9f, 0xa9, 0x59, 0x5b]),
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = vec![head];
        bytes.extend(tail);
        prop_assert!(!verify(&bytes, &Policy::default()).passed());
    }
}

#[test]
fn mutations_of_a_real_document_never_pass() {
    let pki = DevPki::generate();
    let document = file_document(&pki, "/data/x", b"x", None).document;
    let policy = Policy {
        root: Some(pki.root()),
        ..Policy::default()
    };
    assert!(verify(&document, &policy).passed());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
    runner
        .run(
            &(0..document.len(), 1u8..=255, 0..document.len()),
            |(at, xor, cut)| {
                let mut bytes = document.clone();
                bytes[at] ^= xor;
                prop_assert!(!verify(&bytes, &policy).passed());
                prop_assert!(!verify(&document[..cut], &policy).passed());
                Ok(())
            },
        )
        .unwrap();
}
