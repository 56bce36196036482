//! `enclave-nsm`: the Nitro Secure Module behind one async interface, shared
//! by every service that produces attestation documents (ra-web-srv, the
//! attested pipeline channel).
//!
//! Layout:
//! - [`nsm`]: the real `/dev/nsm` (a Nitro enclave, or QEMU's emulated NSM
//!   with unsigned documents) or the development signer.
//! - [`dev_pki`]: the development PKI (root, intermediate, end certificate
//!   and signing key) kept in a state directory; its root is written as
//!   `dev-root.pem` for clients to pin explicitly.
//! - [`files`]: state files written atomically, secrets with mode 0600.
//! - [`pem`]: certificates as PEM text.
//! - [`defs`]: file names, the device path, the development PCR seed.
//!
//! Outside an enclave everything here is a **development** simulation:
//! [`nsm::NsmKind::Development`] says so, and documents chain only to the
//! development root, never to AWS's.

#![forbid(unsafe_code)]

pub mod defs;
pub mod dev_pki;
pub mod files;
pub mod nsm;
pub mod pem;

pub use nsm::{DevPcrs, Nsm, NsmError, NsmKind, NsmMode};
