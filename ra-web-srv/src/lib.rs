//! `ra-web-srv`: the enclave's remote-attestation server.
//!
//! For a file or directory it makes the SHA3-512, an ECVRF proof over it
//! and an NSM attestation document binding both (`user_data`) to the VRF
//! public key (`public_key`); it serves them over an HTTPS JSON API, and
//! makes them unasked for every entry fs-monitor puts into the NATS KV
//! bucket `fs_hashes`, storing them in `fs_att_docs`.
//!
//! Layout:
//! - [`config`]: command line and YAML file into one [`config::Config`].
//! - [`server`]: start-up, the HTTPS and HTTP-redirect listeners.
//! - [`ingress`]: TLS ingress for the enclave's applications: TLS with the
//!   attested key terminated here, the plaintext relayed to the app on
//!   loopback.
//! - [`routes`]: the router, assembled from the handler modules' routes;
//!   [`openapi`]: the `/openapi.json` document made from them.
//! - [`api`], [`verify_api`]: the handlers and their routes; [`views`]: how documents are shown;
//!   [`reply`]: JSON responses that always say which NSM answered.
//! - [`app`]: the shared state and the `/generate` jobs.
//! - [`attest`]: hashing, proving and attesting; [`record`]: what is kept per path;
//!   [`store`]: the in-memory cache; [`sync`]: the NATS side.
//! - [`nsm`]: the real or development NSM; [`dev_pki`]: the development PKI
//!   (both from the `enclave-nsm` crate);
//!   [`tls`]: the TLS identity; [`vrf_key`]: the VRF key; [`paths`]: which paths
//!   requests may name; [`files`]: state files.
//! - [`defs`]: defaults and limits.

pub mod api;
pub mod app;
pub mod attest;
pub mod config;
pub mod defs;
pub mod dirty;
pub mod ingress;
pub mod listen;
pub mod openapi;
pub mod paths;
pub mod record;
pub mod reply;
pub mod routes;
pub mod server;
pub mod store;
pub mod sync;
pub mod tls;
pub mod verify_api;
pub mod views;
pub mod vrf_key;

// The NSM, its development PKI and state files: the `enclave-nsm` crate,
// shared with the attested pipeline channel.
pub use enclave_nsm::{dev_pki, files, nsm};

pub use config::{Args, Config};
pub use server::{Running, run, start};
