//! Reading an NSM attestation document: the COSE_Sign1 envelope and the
//! CBOR attestation document it carries.
//!
//! ```text
//! COSE_Sign1 = [ protected: bstr(map{1: -35 (ES384)}), unprotected: {},
//!                payload: bstr(AttestationDoc), signature: bstr(r || s) ]
//! AttestationDoc = { module_id, digest, timestamp (ms), pcrs: {index: bstr},
//!                    certificate: DER, cabundle: [DER, ...],
//!                    public_key?, user_data?, nonce? }
//! ```
//!
//! The envelope may be tagged (CBOR tag 18) or not; both are read. Parsing
//! checks sizes and shapes only: [`Document::verify_signature`] checks the
//! signature with the key of the document's own certificate, and
//! [`crate::verify`](mod@crate::verify) checks that certificate up to a pinned root.
//!
//! A document is **unsigned** when its signature is empty or all zero
//! bytes: QEMU's emulated NSM (`-M nitro-enclave`) produces such documents,
//! which prove nothing about where they were made. QEMU 10.0 also writes
//! algorithm -1 in their protected header, a value COSE does not assign;
//! such a header is accepted only for an unsigned document (read as "no
//! algorithm"), never for a signed one.

use std::collections::BTreeMap;

use aws_nitro_enclaves_nsm_api::api::Digest;
use coset::{CborSerializable, CoseSign1, TaggedCborSerializable, iana};

pub use aws_nitro_enclaves_nsm_api::api::AttestationDoc;

use crate::defs::{
    DEVELOPMENT_MODULE_ID, MAX_CABUNDLE, MAX_DOCUMENT, MAX_NSM_FIELD, MAX_PCR_INDEX, MAX_USER_DATA,
};

/// CBOR tag 18 (COSE_Sign1) as the first byte of a tagged envelope.
const COSE_SIGN1_TAG_BYTE: u8 = 0xd2;
/// CBOR tag of a COSE_Sign1.
const COSE_SIGN1_TAG: u64 = 18;

/// What can go wrong reading or checking a document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocError {
    /// Nothing to read.
    #[error("the document is empty")]
    Empty,
    /// More bytes than any document has.
    #[error("the document is {len} bytes, more than the {MAX_DOCUMENT} accepted")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Text that looked like hexadecimal but is not.
    #[error("the document is not valid hexadecimal: {0}")]
    Hex(String),
    /// Not a COSE_Sign1 structure.
    #[error("not a COSE_Sign1 structure: {0}")]
    Cose(String),
    /// The COSE_Sign1 has no payload.
    #[error("the COSE_Sign1 carries no payload")]
    NoPayload,
    /// The payload is not an attestation document.
    #[error("the payload is not an attestation document: {0}")]
    Payload(String),
    /// A field is outside the limits of the format.
    #[error("attestation document field {field}: {why}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The document is not signed (QEMU's emulated NSM).
    #[error("the document is unsigned (empty signature, as QEMU's emulated NSM makes them)")]
    Unsigned,
    /// The protected header names another algorithm than ES384.
    #[error("the COSE algorithm is {0}, not ES384")]
    Algorithm(String),
    /// The signing certificate cannot be read or has no P-384 key.
    #[error("the document's certificate: {0}")]
    Certificate(String),
    /// The signature does not verify.
    #[error("the COSE_Sign1 signature does not verify with the document's certificate")]
    BadSignature,
}

fn field(field: &'static str, why: impl Into<String>) -> DocError {
    DocError::Field {
        field,
        why: why.into(),
    }
}

/// A parsed attestation document.
#[derive(Debug, Clone)]
pub struct Document {
    cose: CoseSign1,
    doc: AttestationDoc,
}

impl Document {
    /// Parses the COSE_Sign1 bytes of a document.
    pub fn parse(bytes: &[u8]) -> Result<Self, DocError> {
        if bytes.is_empty() {
            return Err(DocError::Empty);
        }
        if bytes.len() > MAX_DOCUMENT {
            return Err(DocError::TooLarge { len: bytes.len() });
        }
        let strict = if bytes[0] == COSE_SIGN1_TAG_BYTE {
            CoseSign1::from_tagged_slice(bytes)
        } else {
            CoseSign1::from_slice(bytes)
        };
        let cose = match strict {
            Ok(cose) => cose,
            Err(error) => unsigned_with_foreign_header(bytes)
                .ok_or_else(|| DocError::Cose(error.to_string()))?,
        };
        let payload = cose.payload.as_deref().ok_or(DocError::NoPayload)?;
        let doc = AttestationDoc::from_binary(payload)
            .map_err(|error| DocError::Payload(format!("{error:?}")))?;
        check_fields(&doc)?;
        Ok(Self { cose, doc })
    }

    /// Parses a document given as hexadecimal text (what `/doc/?view=hex`
    /// returns, surrounding white space allowed) or as raw COSE_Sign1 bytes.
    pub fn parse_hex_or_raw(bytes: &[u8]) -> Result<Self, DocError> {
        Self::parse(&decode_hex_or_raw(bytes)?)
    }

    /// The attestation document's fields, as the NSM API defines them.
    pub fn attestation(&self) -> &AttestationDoc {
        &self.doc
    }

    /// Issuing module's id.
    pub fn module_id(&self) -> &str {
        &self.doc.module_id
    }

    /// When the NSM made the document, milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> u64 {
        self.doc.timestamp
    }

    /// The PCRs, by index.
    pub fn pcrs(&self) -> BTreeMap<usize, &[u8]> {
        self.doc
            .pcrs
            .iter()
            .map(|(index, value)| (*index, value.as_slice()))
            .collect()
    }

    /// The signing certificate, DER (empty in unsigned documents).
    pub fn certificate(&self) -> &[u8] {
        &self.doc.certificate
    }

    /// The intermediate certificates, DER, root first as the NSM orders them.
    pub fn cabundle(&self) -> Vec<&[u8]> {
        self.doc.cabundle.iter().map(|c| c.as_slice()).collect()
    }

    /// The public key the enclave put in (ours: the VRF public key).
    pub fn public_key(&self) -> Option<&[u8]> {
        self.doc.public_key.as_ref().map(|v| v.as_slice())
    }

    /// The user data the enclave put in (ours: a binding).
    pub fn user_data(&self) -> Option<&[u8]> {
        self.doc.user_data.as_ref().map(|v| v.as_slice())
    }

    /// The nonce the requester gave.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.doc.nonce.as_ref().map(|v| v.as_slice())
    }

    /// Whether the document carries a signature at all (QEMU's emulated NSM
    /// leaves it empty or zero).
    pub fn is_signed(&self) -> bool {
        self.cose.signature.iter().any(|byte| *byte != 0)
    }

    /// Whether `nsm-nitro-enclave-utils`' development driver made it (its
    /// `module_id`). Only the chain to a pinned root proves anything; this
    /// only names what the document claims to be.
    pub fn claims_development(&self) -> bool {
        self.doc.module_id == DEVELOPMENT_MODULE_ID
    }

    /// Checks the ES384 signature with the public key of the document's
    /// certificate (the certificate itself is checked by [`crate::verify`](mod@crate::verify)).
    pub fn verify_signature(&self) -> Result<(), DocError> {
        if !self.is_signed() {
            return Err(DocError::Unsigned);
        }
        let es384 = coset::Algorithm::Assigned(iana::Algorithm::ES384);
        match &self.cose.protected.header.alg {
            Some(alg) if *alg == es384 => {}
            Some(other) => return Err(DocError::Algorithm(format!("{other:?}"))),
            None => return Err(DocError::Algorithm("missing".into())),
        }
        let public_key = p384_public_key(&self.doc.certificate)?;
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P384_SHA384_FIXED,
            public_key,
        );
        key.verify(&self.cose.tbs_data(b""), &self.cose.signature)
            .map_err(|_| DocError::BadSignature)
    }
}

/// The COSE_Sign1 `[protected, unprotected, payload, signature]` read
/// without interpreting the protected header, when the signature is empty
/// or zero: what QEMU's emulated NSM makes. `None` for anything else.
fn unsigned_with_foreign_header(bytes: &[u8]) -> Option<CoseSign1> {
    use coset::cbor::value::Value;
    let value: Value = coset::cbor::de::from_reader(bytes).ok()?;
    let value = match value {
        Value::Tag(COSE_SIGN1_TAG, inner) => *inner,
        other => other,
    };
    let Value::Array(items) = value else {
        return None;
    };
    let [
        protected,
        Value::Map(_),
        Value::Bytes(payload),
        Value::Bytes(signature),
    ] = <[Value; 4]>::try_from(items).ok()?
    else {
        return None;
    };
    let Value::Bytes(protected) = protected else {
        return None;
    };
    if signature.iter().any(|byte| *byte != 0) {
        return None;
    }
    Some(CoseSign1 {
        protected: coset::ProtectedHeader {
            original_data: Some(protected),
            header: coset::Header::default(),
        },
        unprotected: coset::Header::default(),
        payload: Some(payload),
        signature,
    })
}

/// Hexadecimal text to bytes; anything else is taken as raw bytes (a
/// COSE_Sign1 starts with 0x84 or 0xd2, never with an ASCII digit).
pub fn decode_hex_or_raw(bytes: &[u8]) -> Result<Vec<u8>, DocError> {
    let text = bytes.trim_ascii();
    if !text.is_empty() && text.iter().all(u8::is_ascii_hexdigit) {
        if text.len() / 2 > MAX_DOCUMENT {
            return Err(DocError::TooLarge {
                len: text.len() / 2,
            });
        }
        return hex::decode(text).map_err(|error| DocError::Hex(error.to_string()));
    }
    Ok(bytes.to_vec())
}

/// The uncompressed P-384 point of a DER certificate's key.
fn p384_public_key(certificate: &[u8]) -> Result<Vec<u8>, DocError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    if certificate.is_empty() {
        return Err(DocError::Certificate("empty".into()));
    }
    let (_, parsed) = X509Certificate::from_der(certificate)
        .map_err(|error| DocError::Certificate(error.to_string()))?;
    let spki = &parsed.tbs_certificate.subject_pki;
    let ec_public_key = x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY;
    if spki.algorithm.algorithm != ec_public_key {
        return Err(DocError::Certificate(format!(
            "key algorithm {} is not an elliptic curve",
            spki.algorithm.algorithm
        )));
    }
    Ok(spki.subject_public_key.data.to_vec())
}

/// The limits of the attestation document format.
fn check_fields(doc: &AttestationDoc) -> Result<(), DocError> {
    if !matches!(doc.digest, Digest::SHA384) {
        return Err(field(
            "digest",
            format!("{:?}, not SHA384 as the NSM uses", doc.digest),
        ));
    }
    if doc.pcrs.is_empty() {
        return Err(field("pcrs", "none"));
    }
    for (index, value) in &doc.pcrs {
        if *index > MAX_PCR_INDEX {
            return Err(field("pcrs", format!("index {index} > {MAX_PCR_INDEX}")));
        }
        if !matches!(value.len(), 32 | 48 | 64) {
            return Err(field(
                "pcrs",
                format!("PCR{index} is {} bytes, not 32, 48 or 64", value.len()),
            ));
        }
    }
    if doc.cabundle.len() > MAX_CABUNDLE {
        return Err(field(
            "cabundle",
            format!(
                "{} certificates, more than {MAX_CABUNDLE}",
                doc.cabundle.len()
            ),
        ));
    }
    let limits: [(&'static str, Option<usize>, usize); 3] = [
        (
            "user_data",
            doc.user_data.as_ref().map(|v| v.len()),
            MAX_USER_DATA,
        ),
        ("nonce", doc.nonce.as_ref().map(|v| v.len()), MAX_NSM_FIELD),
        (
            "public_key",
            doc.public_key.as_ref().map(|v| v.len()),
            MAX_NSM_FIELD,
        ),
    ];
    for (name, len, max) in limits {
        if let Some(len) = len.filter(|len| *len > max) {
            return Err(field(name, format!("{len} bytes, more than {max}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_typed_error_never_a_panic() {
        assert_eq!(Document::parse(b"").unwrap_err(), DocError::Empty);
        assert!(matches!(
            Document::parse(&vec![0x84; MAX_DOCUMENT + 1]),
            Err(DocError::TooLarge { .. })
        ));
        for bad in [
            &b"\x84"[..],
            b"\xd2",
            b"\xd2\x84\x40\xa0\xf6\x40",
            b"\x84\x40\xa0\xf6\x40",
            b"\x84\x40\xa0\x41\x00\x40",
            b"\xff\xff\xff",
            b"hello world",
            b"\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f",
            b"\x84\x40\xa0\x5b\xff\xff\xff\xff\xff\xff\xff\xff\x40",
        ] {
            assert!(Document::parse(bad).is_err(), "{bad:?}");
            assert!(Document::parse_hex_or_raw(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            Document::parse_hex_or_raw(b"abc"),
            Err(DocError::Hex(_))
        ));
        assert!(matches!(
            Document::parse_hex_or_raw(b"8440a0f640\n"),
            Err(DocError::NoPayload)
        ));
    }
}
