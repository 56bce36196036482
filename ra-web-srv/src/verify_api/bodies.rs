//! The JSON of the verification endpoints: request bodies and replies,
//! whose serde types `/openapi.json` documents.

use ra_verify_core::Sha3Digest;
use ra_verify_core::proof::Suite;
use ra_verify_core::verify::{Binding, Outcome};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Body of `/verify_doc/`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DocBody {
    /// The document, hex.
    pub document: String,
    /// Expected PCRs: a `.pcrs` file's JSON object.
    #[schemars(with = "Option<Map<String, Value>>")]
    pub pcrs: Option<Value>,
    /// Expected nonce, hex.
    pub nonce: Option<String>,
    /// The path the binding must name.
    pub path: Option<String>,
    /// The SHA3-512 the binding must carry, 128 hex digits.
    #[schemars(with = "Option<String>")]
    pub sha3_512: Option<Sha3Digest>,
    /// What `user_data` must be: `file` (default), `tls`, or `any` (not
    /// checked); another value is refused with a 400.
    #[serde(default, with = "BindingName")]
    #[schemars(with = "BindingName")]
    pub binding: Binding,
    /// Accept unsigned documents (QEMU's NSM), skipping signature and chain
    /// (default false).
    #[serde(default)]
    pub allow_unsigned: bool,
}

/// The JSON spellings of [`Binding`] (`file`, `tls`, `any`): serde's view
/// of the verifier's type, which has no serde of its own.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(remote = "Binding", rename_all = "snake_case")]
enum BindingName {
    /// A file's binding (path, SHA3-512, VRF proof): the default.
    File,
    /// The TLS key's binding (what `/tls_doc/` returns).
    Tls,
    /// Not checked: a document of other software.
    Any,
}

/// Body of `/verify_pcrs/`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PcrsBody {
    /// Expected PCRs: a `.pcrs` file's JSON object.
    #[schemars(with = "Map<String, Value>")]
    pub pcrs: Value,
    /// A document, hex; without it the server's own PCRs are compared.
    pub document: Option<String>,
}

/// Body of `/verify_hash/`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HashBody {
    /// An absolute path under a `--root-dir`.
    pub path: String,
    /// The SHA3-512 it should have, 128 hex digits.
    #[schemars(with = "String")]
    pub sha3_512: Sha3Digest,
}

/// Body of `/verify_proof/`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofBody {
    /// The stored record of this path supplies the fields not given.
    pub path: Option<String>,
    /// The proven hash, 128 hex digits.
    #[schemars(with = "Option<String>")]
    pub sha3_512: Option<Sha3Digest>,
    /// The proof, hex.
    pub vrf_proof: Option<String>,
    /// The public key, hex (default: the server's).
    pub vrf_public_key: Option<String>,
    /// The suite, `P256_SHA256_TAI` or `SECP256K1_SHA256_TAI` (default:
    /// the server's).
    #[schemars(with = "Option<String>")]
    pub vrf_suite: Option<Suite>,
}

/// Body of `/verify_cert_valid/` and `/verify_cert_bundle/`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertBody {
    /// The document, hex.
    pub document: String,
}

/// A check's result, as the replies spell it.
#[derive(Serialize, JsonSchema)]
#[serde(remote = "Outcome", rename_all = "snake_case")]
enum OutcomeName {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Not applicable or not asked for.
    Skip,
}

/// One check of a verification.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CheckReply {
    /// Its name (`cose_signature`, `certificate_chain`, ...).
    pub name: &'static str,
    /// `pass`, `fail` or `skip`.
    #[serde(with = "OutcomeName")]
    #[schemars(with = "OutcomeName")]
    pub outcome: Outcome,
    /// What was found, or why it was skipped.
    pub detail: String,
}

/// Reply of `/verify_doc/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DocVerdict {
    /// Every check passed (or was skipped).
    pub passed: bool,
    /// Who signed the document.
    pub signer: String,
    /// The verdict in one sentence.
    pub verdict: String,
    /// Every check.
    pub checks: Vec<CheckReply>,
}

/// Where the PCRs `/verify_pcrs/` compared came from.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PcrSource {
    /// The given document.
    Document,
    /// The server's NSM.
    Server,
}

/// One PCR that differs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PcrMismatchReply {
    /// Its index.
    pub index: usize,
    /// The expected value, hex.
    pub expected: String,
    /// The actual value, hex (null: not there).
    pub actual: Option<String>,
}

/// Reply of `/verify_pcrs/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PcrsVerdict {
    /// No PCR differs.
    pub passed: bool,
    /// The PCRs compared (`PCR0, PCR1, ...`).
    pub compared: String,
    /// Whose PCRs.
    pub source: PcrSource,
    /// The PCRs that differ.
    pub mismatches: Vec<PcrMismatchReply>,
}

/// Reply of `/verify_hash/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HashVerdict {
    /// The file's hash now is the given one.
    pub passed: bool,
    /// The path, canonical.
    pub path: String,
    /// The file's SHA3-512 now.
    #[schemars(with = "String")]
    pub current: Sha3Digest,
    /// The given SHA3-512.
    #[schemars(with = "String")]
    pub given: Sha3Digest,
    /// The stored SHA3-512 (null: no record).
    #[schemars(with = "Option<String>")]
    pub stored: Option<Sha3Digest>,
    /// The stored hash is the current one (null: no record).
    pub stored_matches: Option<bool>,
}

/// Reply of `/verify_proof/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProofVerdict {
    /// The proof verifies.
    pub passed: bool,
    /// The proven hash.
    #[schemars(with = "String")]
    pub sha3_512: Sha3Digest,
    /// The suite used.
    #[schemars(with = "String")]
    pub vrf_suite: Suite,
    /// The public key used, hex.
    pub vrf_public_key: String,
    /// The VRF output, hex (null: the proof failed).
    pub vrf_output: Option<String>,
    /// Why the proof failed (null: it verifies).
    pub error: Option<String>,
}

/// One certificate of `/verify_cert_valid/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CertValidity {
    /// `cabundle[i]` or `certificate`.
    pub name: String,
    /// Its subject (absent: unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Valid from (absent: unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// Valid until (absent: unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Why it could not be read (absent: it could).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Inside its validity period now.
    pub valid_now: bool,
}

/// Reply of `/verify_cert_valid/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CertValidVerdict {
    /// Every certificate is valid now.
    pub passed: bool,
    /// Each certificate, the bundle's first.
    pub certificates: Vec<CertValidity>,
}

/// Reply of `/verify_cert_bundle/`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BundleVerdict {
    /// Signature and chain pass.
    pub passed: bool,
    /// Who signed the document.
    pub signer: String,
    /// SHA-256 fingerprint of the pinned root.
    pub root_sha256: String,
    /// The `cose_signature` and `certificate_chain` checks.
    pub checks: Vec<CheckReply>,
}
