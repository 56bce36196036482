//! `ra-verify`: the offline and online verifier of what the enclave's
//! attestation server says, as a library and the `ra-verify` command.
//!
//! Everything that producers in the enclave and verifiers share (hashes,
//! VRF proofs, the `user_data` binding, documents, roots, PCRs, signed
//! responses, every check of a document) is in [`ra_verify_core`], which
//! enclave crates link without an HTTP client; it is re-exported here, so
//! `ra_verify::hash`, `ra_verify::verify` and the rest name the same
//! items. This crate adds:
//!
//! - [`client`]: fetching and verifying documents from ra-web-srv over
//!   HTTPS, with the TLS key bound to an attestation document, TLS
//!   endpoints, and signed app answers.
//! - the `ra-verify` command line (`src/bin/ra-verify.rs`).

pub use ra_verify_core::*;

pub mod client;

/// The README's Rust examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
