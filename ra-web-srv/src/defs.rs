//! Defaults, limits and file names, each in one place.

use std::time::Duration;

/// Where the HTTPS API listens unless configured.
pub const DEFAULT_HTTPS_LISTEN: &str = "tcp:127.0.0.1:8443";
/// Where the plain-HTTP redirect listens unless configured.
pub const DEFAULT_HTTP_LISTEN: &str = "tcp:127.0.0.1:8080";
/// Keys, certificates and the development PKI live here unless configured.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ra-web-srv";

/// Largest request body accepted (bytes); larger ones get 413.
pub const MAX_BODY: usize = 256 * 1024;
/// Largest client nonce (bytes) put into a document.
pub const MAX_NONCE: usize = 64;
/// Most random bytes one `/rng_seq` request returns.
pub const MAX_RNG_COUNT: usize = 4096;
/// Default `/rng_seq` count.
pub const DEFAULT_RNG_COUNT: usize = 32;
/// Items in one page of `/hashes/`, `/proofs/` and `/docs/` unless
/// `limit=` says otherwise.
pub const DEFAULT_LIST_LIMIT: usize = 1000;
/// Largest `limit=` of a list page.
pub const MAX_LIST_LIMIT: usize = 10_000;
/// Longest path (bytes) accepted in a request.
pub const MAX_PATH: usize = 4096;

/// Default number of files hashed at once.
pub const DEFAULT_HASH_CONCURRENCY: usize = 2;
/// Connections served at once per listener; more wait in the backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// Time a client has to finish the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish after shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Clients one TLS ingress serves at once unless its entry says
/// `max-connections=N`; more wait in the backlog.
pub const DEFAULT_INGRESS_MAX_CONNECTIONS: usize = 256;
/// A TLS ingress connection with no byte moving either way for this long is
/// closed, unless its entry says `idle-timeout=SECS`.
pub const DEFAULT_INGRESS_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Time a TLS ingress gives its upstream to accept a connection.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// When the upstream is down: how long to wait for the client's first
/// bytes (to answer an HTTP request with 502), and then for it to close.
pub const UNAVAILABLE_FIRST_BYTES_WAIT: Duration = Duration::from_secs(2);
/// When the upstream is down: most bytes read (and dropped) from the client
/// after the answer, so the answer is not lost to a reset.
pub const UNAVAILABLE_DRAIN_LIMIT: usize = 64 * 1024;
/// Largest `--tls-ingress-file` read.
pub const MAX_INGRESS_FILE: u64 = 64 * 1024;
/// Longest name of a TLS ingress.
pub const MAX_INGRESS_NAME: usize = 64;

/// Parallel lanes working through `fs_hashes` updates (a key always goes to
/// the same lane, so its updates stay in order).
pub const SYNC_LANES: usize = 2;
/// Updates queued per lane before the watcher waits.
pub const SYNC_LANE_QUEUE: usize = 256;
/// First pause before the NATS watcher starts over after a failure.
pub const SYNC_RETRY_MIN: Duration = Duration::from_millis(200);
/// Longest pause between NATS watcher restarts.
pub const SYNC_RETRY_MAX: Duration = Duration::from_secs(5);
/// Attempts at storing one change in `fs_att_docs` before the NATS session
/// starts over (the change is kept and written later).
pub const KV_PUT_ATTEMPTS: u32 = 5;

/// The TLS private key made at first start (PEM, mode 0600).
pub const TLS_KEY_FILE: &str = "tls-key.pem";
/// The self-signed TLS certificate made at first start (PEM).
pub const TLS_CERT_FILE: &str = "tls-cert.pem";
/// Host names and addresses the generated TLS certificate names.
pub const DEFAULT_TLS_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// The VRF key made at first start (JSON: suite and secret, mode 0600).
pub const VRF_KEY_FILE: &str = "vrf-key.json";
// The NSM's file names and constants live with the NSM code.
pub use enclave_nsm::defs::{
    DEV_END_DER, DEV_END_KEY, DEV_INT_DER, DEV_PCR_SEED, DEV_PKI_VALIDITY, DEV_ROOT_DER,
    DEV_ROOT_PEM, NSM_DEVICE, PCR_INDEXES,
};
