//! The JSON of the API's handlers: queries, request bodies and replies,
//! whose serde types `/openapi.json` documents.

use std::collections::BTreeMap;

use ra_verify_core::Sha3Digest;
use ra_verify_core::proof::Suite;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::app::BusState;
use crate::ingress::IngressInfo;
use crate::record::Record;
use crate::store::{Status, Summary};
use crate::views::{ShownDoc, View};

/// `?path=`
#[derive(Debug, Deserialize)]
pub struct PathQuery {
    /// An absolute path.
    pub path: Option<String>,
}

/// `?path=&view=&nonce=`
#[derive(Debug, Deserialize)]
pub struct DocQuery {
    /// An absolute path.
    pub path: Option<String>,
    /// How to show the document.
    pub view: Option<View>,
    /// Hex nonce: a fresh document carrying it.
    pub nonce: Option<String>,
}

/// `?prefix=&limit=&after=` of the list endpoints, with `view=` for
/// `/docs/` and `path=` for `/readiness/`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only paths starting with this.
    pub prefix: Option<String>,
    /// How to show documents (`/docs/`).
    pub view: Option<View>,
    /// One path's state instead of a page (`/readiness/`).
    pub path: Option<String>,
    /// Items in this page (default
    /// [`DEFAULT_LIST_LIMIT`](crate::defs::DEFAULT_LIST_LIMIT), at most
    /// [`MAX_LIST_LIMIT`](crate::defs::MAX_LIST_LIMIT)).
    pub limit: Option<usize>,
    /// Only paths sorted after this one: the `next` of the previous page.
    pub after: Option<String>,
}

/// `?nonce=`
#[derive(Debug, Deserialize)]
pub struct NonceQuery {
    /// Hex nonce.
    pub nonce: Option<String>,
}

/// `?count=`
#[derive(Debug, Deserialize)]
pub struct RngQuery {
    /// How many random bytes.
    pub count: Option<usize>,
}

/// Body of `POST /generate`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateBody {
    /// File or directory to hash and attest: an absolute path under a `--root-dir`.
    pub path: String,
}

/// Reply of `POST /generate` (202).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Generated {
    /// The path, canonical.
    pub path: String,
    /// Always `pending`.
    pub status: &'static str,
    /// Whether a job was started (false: one is running already).
    pub started: bool,
    /// Where to poll: `/ready/?path=`.
    pub poll: String,
    /// Where the document will be: `/doc/?path=`.
    pub doc: String,
}

/// Reply of `GET /health`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// The server's version.
    pub version: &'static str,
    /// How many records are ready.
    pub records: usize,
    /// The NATS side.
    pub bus: BusState,
    /// The image's profile (`production`, `debug`, ...), when known.
    pub image_profile: Option<&'static str>,
    /// The image is a debug one (its documents prove nothing).
    pub debug_image: bool,
    /// The TLS ingresses.
    pub tls_ingress: Vec<IngressInfo>,
}

/// A path and its SHA3-512 (`/hash/`, an item of `/hashes/`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct PathHash {
    /// The path.
    pub path: String,
    /// Its SHA3-512, 128 hex digits.
    #[schemars(with = "String")]
    pub sha3_512: Sha3Digest,
}

/// A path's VRF proof (`/proof/`, an item of `/proofs/`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Proof {
    /// The path.
    pub path: String,
    /// Its SHA3-512, 128 hex digits: what is proven.
    #[schemars(with = "String")]
    pub sha3_512: Sha3Digest,
    /// The ECVRF suite: `P256_SHA256_TAI` or `SECP256K1_SHA256_TAI`.
    #[schemars(with = "String")]
    pub vrf_suite: Suite,
    /// The proof, hex.
    pub vrf_proof: String,
    /// The VRF public key, hex.
    pub vrf_public_key: String,
}

/// A page of `/hashes/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HashPage {
    /// Items in this page.
    pub count: usize,
    /// The hashes, in path order.
    pub hashes: Vec<PathHash>,
    /// The `after` of the next page (null: the last page).
    pub next: Option<String>,
}

/// A page of `/proofs/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProofPage {
    /// Items in this page.
    pub count: usize,
    /// The proofs, in path order.
    pub proofs: Vec<Proof>,
    /// The `after` of the next page (null: the last page).
    pub next: Option<String>,
}

/// A page of `/docs/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DocPage {
    /// Items in this page.
    pub count: usize,
    /// The documents, in path order.
    pub docs: Vec<ShownDoc>,
    /// The `after` of the next page (null: the last page).
    pub next: Option<String>,
}

/// The readiness of everything (`/ready/` without a path, `/readiness/`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Overall {
    /// No job is pending and the NATS catch-up is done.
    pub ready: bool,
    /// Paths by state.
    pub summary: Summary,
    /// The NATS side.
    pub bus: BusState,
    /// Records not yet written to NATS.
    pub unwritten: usize,
}

/// One path's state (`/ready/?path=`, `/readiness/?path=`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct PathState {
    /// The path.
    pub path: String,
    /// `pending`, `ready` or `failed`.
    pub status: Status,
    /// Why the last job failed (null: it did not).
    pub error: Option<String>,
    /// A document is there (a new job may be running).
    pub has_document: bool,
}

/// One path of a `/readiness/` page.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PathEntry {
    /// The path.
    pub path: String,
    /// `pending`, `ready` or `failed`.
    pub status: Status,
    /// Why the last job failed (null: it did not).
    pub error: Option<String>,
}

/// Reply of `/ready/`: one path's state (200 ready, 503 pending, 422
/// failed), or the overall readiness (200 ready, 503 not yet).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Ready {
    /// With `path=`.
    Path(PathState),
    /// Without.
    Overall(Overall),
}

/// Reply of `/readiness/`: one path's state, or a page of them with the
/// overall readiness.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Readiness {
    /// With `path=`.
    Path(PathState),
    /// Without.
    Page {
        /// The overall readiness.
        #[serde(flatten)]
        overall: Overall,
        /// Items in this page.
        count: usize,
        /// The paths' states, in path order.
        paths: Vec<PathEntry>,
        /// The `after` of the next page (null: the last page).
        next: Option<String>,
    },
}

impl From<&Record> for PathHash {
    fn from(record: &Record) -> Self {
        Self {
            path: record.path.clone(),
            sha3_512: record.sha3_512,
        }
    }
}

impl From<&Record> for Proof {
    fn from(record: &Record) -> Self {
        Self {
            path: record.path.clone(),
            sha3_512: record.sha3_512,
            vrf_suite: record.vrf_suite,
            vrf_proof: record.vrf_proof.clone(),
            vrf_public_key: record.vrf_public_key.clone(),
        }
    }
}

/// Reply of `GET /tls_doc/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TlsDoc {
    /// The document, hex.
    pub document: String,
    /// The SHA3-512 of the TLS certificate's SPKI it binds.
    #[schemars(with = "String")]
    pub spki_sha3_512: Sha3Digest,
}

/// Reply of `GET /pubkeys/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Pubkeys {
    /// The ECVRF suite.
    #[schemars(with = "String")]
    pub vrf_suite: Suite,
    /// The VRF public key, hex.
    pub vrf_public_key: String,
    /// SHA3-512 of the TLS certificate's DER SPKI.
    #[schemars(with = "String")]
    pub tls_spki_sha3_512: Sha3Digest,
    /// The TLS certificate, PEM.
    pub tls_certificate: String,
}

/// Reply of `GET /pcrs/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Pcrs {
    /// PCR index to value, hex.
    pub pcrs: BTreeMap<String, String>,
}

/// Reply of `GET /rng_seq`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Random {
    /// How many bytes.
    pub count: usize,
    /// The bytes, hex.
    pub random: String,
}
