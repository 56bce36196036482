//! Names and limits of the bus.

use std::time::Duration;

/// KV bucket of file hashes: key = [`crate::key::encode`] of the absolute
/// path, value = 128 lowercase hex digits of its SHA3-512.
pub const FS_HASHES: &str = "fs_hashes";

/// KV bucket of VRF proofs and attestation documents, written by ra-web-srv.
pub const FS_ATT_DOCS: &str = "fs_att_docs";

/// Where nats-server listens inside the enclave.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// How many times [`crate::connect()`] tries before giving up.
pub const CONNECT_ATTEMPTS: u32 = 10;

/// The wait after the first failed attempt; doubled after each failure.
pub const CONNECT_FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two attempts.
pub const CONNECT_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// KV history kept per key by buckets this crate creates (only the latest
/// value matters).
pub const BUCKET_HISTORY: i64 = 1;

/// KV reads in flight at once when a whole bucket is read.
pub const READ_CONCURRENCY: usize = 64;
