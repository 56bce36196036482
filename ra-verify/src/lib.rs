//! What the enclave's attestation server and anyone checking its answers
//! must agree on, in one place:
//!
//! - [`hash`]: streaming SHA3-512 of a file, and the path-aware hash of a
//!   directory tree.
//! - [`proof`]: ECVRF proofs over those hashes (suites, keys, prove, verify).
//! - [`binding`]: the `user_data` an attestation document carries to bind a
//!   path, its hash, the VRF proof and the suite.

pub mod binding;
pub mod defs;
pub mod hash;
pub mod proof;

pub use binding::{TlsBinding, UserData};
pub use hash::{Sha3Digest, hash_dir, hash_file, hash_path};
pub use proof::{Suite, VrfKey};
