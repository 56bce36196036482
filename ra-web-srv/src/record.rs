//! What the server keeps per path: the hash, the VRF proof and the
//! attestation document, as stored in KV `fs_att_docs` (JSON).

use ra_verify_core::Sha3Digest;
use ra_verify_core::binding::UserData;
use ra_verify_core::proof::Suite;
use serde::{Deserialize, Serialize};

use crate::nsm::NsmKind;

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A `POST /generate` request.
    Generate,
    /// An entry of KV `fs_hashes` (fs-monitor).
    FsHashes,
}

/// One path's proof and document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The attested path.
    pub path: String,
    /// Its SHA3-512 (directory: manifest hash).
    pub sha3_512: Sha3Digest,
    /// Suite of the proof.
    pub vrf_suite: Suite,
    /// ECVRF proof over the 64 digest bytes, hex.
    pub vrf_proof: String,
    /// The VRF public key (compressed SEC1), hex.
    pub vrf_public_key: String,
    /// The COSE_Sign1 attestation document, hex.
    pub document: String,
    /// Which NSM made the document.
    pub nsm: NsmKind,
    /// When the document was made (RFC 3339, UTC).
    pub created_at: String,
    /// Where the request came from.
    pub source: Source,
}

impl Record {
    /// The `user_data` binding the document carries.
    pub fn binding(&self) -> UserData {
        UserData {
            v: ra_verify_core::defs::BINDING_VERSION,
            path: self.path.clone(),
            sha3_512: self.sha3_512,
            vrf_suite: self.vrf_suite,
            vrf_proof: self.vrf_proof.clone(),
        }
    }

    /// The document's bytes.
    pub fn document_bytes(&self) -> Result<Vec<u8>, hex::FromHexError> {
        hex::decode(&self.document)
    }
}

/// The current time, RFC 3339 with seconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
