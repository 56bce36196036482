//! What the enclave's producers (ra-web-srv, fs-monitor, the inference
//! server), its attested channel and every verifier must agree on, in one
//! place, without an HTTP client or a command line (those are in
//! `ra-verify`, which re-exports this crate):
//!
//! - [`hash`]: streaming SHA3-512 of a file, and the path-aware hash of a
//!   directory tree.
//! - [`proof`]: ECVRF proofs over those hashes (suites, keys, prove, verify).
//! - [`binding`]: the `user_data` an attestation document carries to bind a
//!   path, its hash, the VRF proof and the suite (or the server's TLS key).
//! - [`document`]: parsing an NSM attestation document (COSE_Sign1).
//! - [`files`]: reading small input files with a size limit.
//! - [`roots`]: the bundled AWS Nitro Enclaves root and roots from files.
//! - [`pcrs`]: expected PCRs from the image build's `.eif.pcrs` file.
//! - [`response`]: signed responses of the enclave's apps: the message
//!   the signer and the verifier share, and the checks of an exchange.
//! - [`tls`]: a rustls client configuration for the enclave's self-signed
//!   servers (handshake signature checked, key bound afterwards) and the
//!   SubjectPublicKeyInfo of a certificate.
//! - [`verify`](mod@verify): every check of a document against a policy, one report
//!   (and [`verify_key_binding`] for a document that binds a channel's key).

pub mod binding;
pub mod check;
pub mod defs;
pub mod document;
pub mod files;
pub mod hash;
pub mod pcrs;
pub mod proof;
pub mod response;
pub mod roots;
pub mod tls;
pub mod verify;

pub use binding::{TlsBinding, UserData};
pub use document::{DocError, Document};
pub use hash::{Sha3Digest, hash_dir, hash_file, hash_path};
pub use pcrs::ExpectedPcrs;
pub use proof::{Suite, VrfKey};
pub use roots::Root;
pub use verify::{Check, Outcome, Policy, Report, verify, verify_key_binding, verify_saved};

/// The README's Rust examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
