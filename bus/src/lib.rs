//! The enclave's NATS bus, as every component uses it.
//!
//! fs-monitor writes `path -> SHA3-512` into the KV bucket [`FS_HASHES`];
//! ra-web-srv watches it and stores proofs and attestation documents in
//! [`FS_ATT_DOCS`]. This crate is what both sides agree on:
//!
//! - [`defs`]: bucket names, the default URL, retry limits.
//! - [`connect()`]: a JetStream context, with bounded retries at start.
//! - [`bucket`]: [`open_bucket`], get-or-create of a KV bucket, and
//!   reading a whole bucket ([`bucket::keys`], [`bucket::entries`]).
//! - [`key`]: the reversible encoding of an absolute path as a KV key.
//! - [`value`]: the value format of [`FS_HASHES`] and how to read its
//!   entries (a delete marker is never a hash).
//! - [`outbox`]: a coalescing outbox of key states for a bucket, and the
//!   writes that flush it.

pub mod bucket;
pub mod connect;
pub mod defs;
pub mod key;
pub mod outbox;
pub mod value;

pub use async_nats;
pub use bucket::open_bucket;
pub use connect::{BusError, connect, connect_with};
pub use defs::{DEFAULT_URL, FS_ATT_DOCS, FS_HASHES};

/// The README's example, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
