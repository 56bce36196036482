//! Verifying an attestation document against a [`Policy`], one named
//! [`Check`] at a time, into a [`Report`].
//!
//! | check | what passes |
//! | --- | --- |
//! | `document` | the bytes parse as a COSE_Sign1 attestation document |
//! | `cose_signature` | ES384 signature valid with the key of the document's certificate |
//! | `certificate_chain` | that certificate chains, through the document's `cabundle`, to the policy's **pinned** root (never to a root the document carries); CRLs are not checked, as AWS requires |
//! | `pcrs` | every PCR of the expected file equals the document's |
//! | `user_data` | `user_data` parses as the expected binding ([`UserData`] or [`TlsBinding`]), for the expected path; skipped with [`Binding::Any`] |
//! | `file_hash` | the binding's SHA3-512 equals the local file's |
//! | `vrf_proof` | the binding's VRF proof verifies against the document's `public_key` |
//! | `nonce` | the document's nonce equals the one asked for |
//! | `public_key` | with [`verify_key_binding`]: the document's `public_key` is the key the peer proved it holds (an attested channel's static key) |
//!
//! A check that has nothing to compare with (no PCR file, no local file, no
//! nonce) is skipped and says why; [`Report::passed`] is true when no check
//! failed.
//!
//! **Which time the chain is checked at.** By default ([`ChainTime::Document`])
//! at the document's own `timestamp`, which the signature covers: Nitro's
//! signing certificates live a few hours, while documents are stored (KV
//! `fs_att_docs`) and checked long after, so checking at "now" would refuse
//! every stored document. Freshness is the nonce's job: a document made for
//! a fresh random nonce was made now. [`ChainTime::Now`] is there for callers
//! who want the certificates valid at the moment of the check as well.
//!
//! **Development and unsigned documents.** A document signed by a
//! development PKI (ra-web-srv outside Nitro) chains only to that
//! development root, so it fails against the default pinned AWS root and
//! passes only when the policy's root is that development root; the report
//! says "development" either way. A document with an empty signature
//! (QEMU's emulated NSM) fails unless [`Policy::allow_unsigned`] is set, and
//! even then its `cose_signature` and `certificate_chain` are skipped with
//! the reason, never passed.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, UnixTime};

use crate::binding::{TlsBinding, UserData};
pub use crate::check::{Check, Outcome};
use crate::document::Document;
use crate::hash::{HashError, Sha3Digest, hash_path};
use crate::pcrs::ExpectedPcrs;
use crate::roots::Root;

/// When the certificate chain must be valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChainTime {
    /// At the document's timestamp (the default; see the module docs).
    #[default]
    Document,
    /// At the time of the check.
    Now,
    /// At this many milliseconds since the Unix epoch.
    AtMillis(u64),
}

/// What `user_data` must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binding {
    /// A file's [`UserData`] (path, SHA3-512, VRF proof); the `file_hash`
    /// and `vrf_proof` checks apply.
    #[default]
    File,
    /// The TLS key's [`TlsBinding`] (what `/tls_doc/` returns).
    Tls,
    /// Not checked: a document made by other software, whose `user_data`
    /// (if any) is its own business. Signature, chain, PCRs and nonce are
    /// checked all the same.
    Any,
}

/// The SHA3-512 of a local file or directory, to compare with the binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalHash {
    /// What was hashed (shown in the report).
    pub label: String,
    /// Its hash.
    pub digest: Sha3Digest,
}

impl LocalHash {
    /// Hashes a local file, or a directory by the manifest definition of
    /// [`crate::hash`].
    pub fn of_path(path: &Path) -> Result<Self, HashError> {
        Ok(Self {
            label: path.display().to_string(),
            digest: hash_path(path)?,
        })
    }
}

/// What a document must satisfy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The pinned root; `None` means the bundled AWS Nitro Enclaves root G1.
    pub root: Option<Root>,
    /// Accept unsigned documents (QEMU's emulated NSM), skipping the
    /// signature and chain checks.
    pub allow_unsigned: bool,
    /// Expected PCRs.
    pub pcrs: Option<ExpectedPcrs>,
    /// What `user_data` must be.
    pub binding: Binding,
    /// The path the file binding must name.
    pub path: Option<String>,
    /// The local file's hash the file binding must carry.
    pub file_hash: Option<LocalHash>,
    /// The nonce the document must carry.
    pub nonce: Option<Vec<u8>>,
    /// When the chain must be valid.
    pub chain_time: ChainTime,
}

impl Policy {
    /// The pinned root ([`Root::aws_nitro`] unless another was given).
    pub fn root(&self) -> Root {
        self.root.clone().unwrap_or_else(Root::aws_nitro)
    }
}

/// Who signed the document, as far as the checks could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// Chained to the AWS Nitro Enclaves root.
    Nitro,
    /// Signed by a development PKI (chained to a non-AWS root, or claiming
    /// to be development and not chaining to AWS).
    Development,
    /// Not signed at all (QEMU's emulated NSM).
    Unsigned,
    /// Signed, claims to be Nitro, but its chain did not verify.
    Unknown,
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signer::Nitro => "nitro",
            Signer::Development => "development",
            Signer::Unsigned => "unsigned",
            Signer::Unknown => "unknown",
        })
    }
}

/// Every check of one document.
#[derive(Debug, Clone)]
pub struct Report {
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Who signed it.
    pub signer: Signer,
    /// The document, when it parsed.
    pub document: Option<Document>,
}

impl Report {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        !self
            .checks
            .iter()
            .any(|check| check.outcome == Outcome::Fail)
    }

    /// The check named `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.name == name)
    }

    /// Adds a check (callers add their own, such as `tls_binding`).
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Puts `check` in place of the check of the same name (added at the
    /// end when there is none).
    pub fn replace(&mut self, check: Check) {
        match self.checks.iter_mut().find(|c| c.name == check.name) {
            Some(slot) => *slot = check,
            None => self.checks.push(check),
        }
    }

    /// One line: `VERDICT PASS: ...` or `VERDICT FAIL: ...`.
    pub fn verdict(&self) -> String {
        let count = |outcome| self.checks.iter().filter(|c| c.outcome == outcome).count();
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|check| check.outcome == Outcome::Fail)
            .map(|check| check.name)
            .collect();
        let signer = match self.signer {
            Signer::Nitro => "an AWS Nitro document",
            Signer::Development => "a DEVELOPMENT document (not made by AWS Nitro hardware)",
            Signer::Unsigned => "an UNSIGNED document (QEMU's emulated NSM)",
            Signer::Unknown => "a document of unknown origin",
        };
        if failed.is_empty() {
            format!(
                "VERDICT PASS: {signer}; {} checks passed, {} skipped",
                count(Outcome::Pass),
                count(Outcome::Skip)
            )
        } else {
            format!("VERDICT FAIL: {signer}; failed: {}", failed.join(", "))
        }
    }
}

/// Verifies the COSE_Sign1 bytes of a document.
pub fn verify(bytes: &[u8], policy: &Policy) -> Report {
    match Document::parse(bytes) {
        Ok(document) => verify_document(document, policy),
        Err(error) => unreadable(&error),
    }
}

/// The report on bytes that are not a document.
fn unreadable(error: &crate::document::DocError) -> Report {
    Report {
        checks: vec![Check::fail("document", error.to_string())],
        signer: Signer::Unknown,
        document: None,
    }
}

/// Verifies a saved document: hexadecimal text (what `/doc/?view=hex`
/// returns) or raw COSE_Sign1 bytes.
pub fn verify_saved(bytes: &[u8], policy: &Policy) -> Report {
    match crate::document::decode_hex_or_raw(bytes) {
        Ok(raw) => verify(&raw, policy),
        Err(error) => unreadable(&error),
    }
}

/// Verifies a document that binds a channel key: every check of
/// [`verify`] under `policy` (with `user_data` not interpreted, as
/// [`Binding::Any`]), plus `public_key`: the document's `public_key` must
/// equal `public_key`, the static key the peer proved it holds in a key
/// exchange. An attested channel's client calls this with the nonce it sent
/// in `policy.nonce`, so a pass means: this enclave (PCRs), made this
/// document now (nonce), for this key (binding).
pub fn verify_key_binding(bytes: &[u8], policy: &Policy, public_key: &[u8]) -> Report {
    let policy = Policy {
        binding: Binding::Any,
        path: None,
        file_hash: None,
        ..policy.clone()
    };
    let mut report = verify(bytes, &policy);
    if let Some(document) = &report.document {
        let check = check_public_key(document, public_key);
        report.push(check);
    }
    report
}

fn check_public_key(document: &Document, expected: &[u8]) -> Check {
    match document.public_key() {
        None => Check::fail(
            "public_key",
            "the document carries no public_key: it binds no key",
        ),
        Some(key) if key == expected => Check::pass(
            "public_key",
            format!("binds the peer's key {}", short(&hex::encode(expected))),
        ),
        Some(key) => Check::fail(
            "public_key",
            format!(
                "binds key {}, but the peer holds {}: the document was made for another key",
                short(&hex::encode(key)),
                short(&hex::encode(expected))
            ),
        ),
    }
}

/// Verifies a parsed document.
pub fn verify_document(document: Document, policy: &Policy) -> Report {
    let mut checks = vec![Check::pass(
        "document",
        format!(
            "module_id {}, made {}",
            document.module_id(),
            format_utc(document.timestamp_ms())
        ),
    )];
    let root = policy.root();
    let signer = check_signature_and_chain(&document, policy, &root, &mut checks);
    checks.push(check_pcrs(&document, policy));
    checks.extend(check_binding(&document, policy));
    checks.push(check_nonce(&document, policy));
    Report {
        checks,
        signer,
        document: Some(document),
    }
}

fn root_name(root: &Root) -> String {
    if root.is_aws_nitro() {
        "the AWS Nitro Enclaves root G1".into()
    } else {
        format!(
            "the given root (SHA-256 {})",
            &root.sha256_fingerprint()[..16]
        )
    }
}

fn check_signature_and_chain(
    document: &Document,
    policy: &Policy,
    root: &Root,
    checks: &mut Vec<Check>,
) -> Signer {
    if !document.is_signed() {
        let why = "unsigned document (empty signature: QEMU's emulated NSM makes them; it proves nothing about where it was made)";
        if policy.allow_unsigned {
            checks.push(Check::skip(
                "cose_signature",
                format!("{why}; accepted because unsigned documents are allowed"),
            ));
        } else {
            checks.push(Check::fail(
                "cose_signature",
                format!("{why}; refused (allow with --allow-unsigned)"),
            ));
        }
        checks.push(Check::skip("certificate_chain", "unsigned document"));
        return Signer::Unsigned;
    }
    checks.push(match document.verify_signature() {
        Ok(()) => Check::pass(
            "cose_signature",
            "ES384 signature valid with the document's certificate",
        ),
        Err(error) => Check::fail("cose_signature", error.to_string()),
    });
    let time = match policy.chain_time {
        ChainTime::Document => document.timestamp_ms(),
        ChainTime::Now => now_ms(),
        ChainTime::AtMillis(ms) => ms,
    };
    let when = match policy.chain_time {
        ChainTime::Document => format!("at the document's time {}", format_utc(time)),
        _ => format!("at {}", format_utc(time)),
    };
    let claim = if document.claims_development() {
        " (it is a development document: pass its development root with --root to accept it)"
    } else {
        ""
    };
    match check_chain(document, root, time) {
        Ok(()) => {
            let signer = if root.is_aws_nitro() {
                Signer::Nitro
            } else {
                Signer::Development
            };
            let kind = if signer == Signer::Development {
                " (development root: not AWS Nitro hardware)"
            } else {
                ""
            };
            checks.push(Check::pass(
                "certificate_chain",
                format!("chains to {}{kind}, valid {when}", root_name(root)),
            ));
            signer
        }
        Err(error) => {
            checks.push(Check::fail(
                "certificate_chain",
                format!(
                    "does not chain to {} {when}: {error}{claim}",
                    root_name(root)
                ),
            ));
            if document.claims_development() {
                Signer::Development
            } else {
                Signer::Unknown
            }
        }
    }
}

/// Checks the document's certificate up to `root` alone, through the
/// `cabundle`, valid at `time_ms`, without CRLs (AWS: "CRL must be disabled
/// when doing the validation").
fn check_chain(document: &Document, root: &Root, time_ms: u64) -> Result<(), String> {
    let root_der = CertificateDer::from(root.der());
    let anchor = webpki::anchor_from_trusted_cert(&root_der)
        .map_err(|error| format!("pinned root: {error:?}"))?;
    let leaf = CertificateDer::from(document.certificate());
    let end_entity = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|error| format!("the document's certificate: {error:?}"))?;
    let intermediates: Vec<CertificateDer<'_>> = document
        .cabundle()
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let time = UnixTime::since_unix_epoch(Duration::from_millis(time_ms));
    end_entity
        .verify_for_usage(
            &[webpki::ring::ECDSA_P384_SHA384],
            &[anchor],
            &intermediates,
            time,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|error| format!("{error:?}"))
}

fn check_pcrs(document: &Document, policy: &Policy) -> Check {
    let Some(expected) = &policy.pcrs else {
        return Check::skip("pcrs", "no expected PCR file given");
    };
    match expected.compare(&document.pcrs()) {
        Ok(()) => Check::pass("pcrs", format!("{} as expected", expected.names())),
        Err(mismatches) => Check::fail(
            "pcrs",
            mismatches
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

fn check_binding(document: &Document, policy: &Policy) -> Vec<Check> {
    if policy.binding == Binding::Any {
        let carried = document.user_data().map_or_else(
            || "none".to_string(),
            |data| format!("{} bytes", data.len()),
        );
        return vec![Check::skip(
            "user_data",
            format!("not checked: any user_data accepted (carried: {carried})"),
        )];
    }
    let Some(user_data) = document.user_data() else {
        let mut checks = vec![Check::fail(
            "user_data",
            "the document carries no user_data",
        )];
        if policy.binding == Binding::File {
            checks.push(Check::skip("file_hash", "no binding"));
            checks.push(Check::skip("vrf_proof", "no binding"));
        }
        return checks;
    };
    if policy.binding == Binding::Tls {
        return vec![match TlsBinding::from_bytes(user_data) {
            Ok(binding) => Check::pass(
                "user_data",
                format!(
                    "TLS binding, SPKI SHA3-512 {}",
                    short(&binding.tls_spki_sha3_512.to_hex())
                ),
            ),
            Err(error) => Check::fail("user_data", error.to_string()),
        }];
    }
    let binding = match UserData::from_bytes(user_data) {
        Ok(binding) => binding,
        Err(error) => {
            return vec![
                Check::fail("user_data", error.to_string()),
                Check::skip("file_hash", "no binding"),
                Check::skip("vrf_proof", "no binding"),
            ];
        }
    };
    let described = format!(
        "path {}, SHA3-512 {}, {}",
        binding.path,
        short(&binding.sha3_512.to_hex()),
        binding.vrf_suite
    );
    let user_data = match &policy.path {
        Some(path) if *path != binding.path => Check::fail(
            "user_data",
            format!("binds path {}, not the requested {path}", binding.path),
        ),
        _ => Check::pass("user_data", described),
    };
    let file_hash = compare_file_hash(&binding, policy.file_hash.as_ref());
    let vrf_proof = match document.public_key() {
        None => Check::fail("vrf_proof", "the document carries no public_key"),
        Some(public_key) => match binding.verify_proof(public_key) {
            Ok(_) => Check::pass(
                "vrf_proof",
                format!(
                    "{} proof verifies against the document's public_key",
                    binding.vrf_suite
                ),
            ),
            Err(error) => Check::fail("vrf_proof", error.to_string()),
        },
    };
    vec![user_data, file_hash, vrf_proof]
}

/// `file_hash`: the binding's SHA3-512 against a local file's.
fn compare_file_hash(binding: &UserData, local: Option<&LocalHash>) -> Check {
    match local {
        None => Check::skip("file_hash", "no local file given"),
        Some(local) if local.digest == binding.sha3_512 => Check::pass(
            "file_hash",
            format!(
                "{} has the attested SHA3-512 {}",
                local.label,
                short(&local.digest.to_hex())
            ),
        ),
        Some(local) => Check::fail(
            "file_hash",
            format!(
                "{} has SHA3-512 {}, the document attests {}",
                local.label,
                short(&local.digest.to_hex()),
                short(&binding.sha3_512.to_hex())
            ),
        ),
    }
}

/// The `file_hash` check of a file document against `local`, for a local
/// copy known only after the document was verified (a signed response's
/// key); [`Report::replace`] puts it in place of the skipped one.
pub fn file_hash_check(document: &Document, local: &LocalHash) -> Check {
    match document.user_data().map(UserData::from_bytes) {
        Some(Ok(binding)) => compare_file_hash(&binding, Some(local)),
        _ => Check::skip("file_hash", "no binding"),
    }
}

fn check_nonce(document: &Document, policy: &Policy) -> Check {
    let Some(expected) = &policy.nonce else {
        return Check::skip(
            "nonce",
            "no nonce asked for: the document may be old (freshness not checked)",
        );
    };
    match document.nonce() {
        Some(nonce) if nonce == expected.as_slice() => Check::pass(
            "nonce",
            format!("{} as asked for", short(&hex::encode(nonce))),
        ),
        Some(nonce) => Check::fail(
            "nonce",
            format!(
                "the document carries nonce {}, not the {} asked for",
                short(&hex::encode(nonce)),
                short(&hex::encode(expected))
            ),
        ),
        None => Check::fail("nonce", "the document carries no nonce"),
    }
}

/// The first 16 hexadecimal digits, for reports.
fn short(hex: &str) -> String {
    if hex.len() > 16 {
        format!("{}...", &hex[..16])
    } else {
        hex.to_string()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for milliseconds since the Unix epoch (a
/// document's time stamp: clamped to what RFC 3339 can write).
pub fn format_utc(ms: u64) -> String {
    cli_support::utc_seconds_from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_789_000_000_123), "2026-09-10T00:26:40Z");
        assert_eq!(format_utc(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn garbage_fails_the_document_check_alone() {
        let report = verify(b"\x84garbage", &Policy::default());
        assert!(!report.passed());
        assert_eq!(report.checks.len(), 1);
        assert!(report.checks[0].to_string().starts_with("FAIL document: "));
        assert!(report.verdict().starts_with("VERDICT FAIL"));
    }
}
