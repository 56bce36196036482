//! The `user_data` of an attestation document: what the document binds.
//!
//! [`UserData`], in a file's document, binds one path, its SHA3-512, the VRF
//! proof over that hash and the suite of the proof.
//!
//! It is compact JSON with the fields in this order:
//!
//! ```json
//! {"v":1,"path":"/data/x","sha3_512":"<128 hex>","vrf_suite":"P256_SHA256_TAI","vrf_proof":"<162 hex>"}
//! ```
//!
//! and at most [`MAX_USER_DATA`] bytes, which the Nitro Secure Module
//! accepts; that leaves room for paths of about 650 bytes. The document's
//! `public_key` is the VRF public key the proof verifies against.
//!
//! [`TlsBinding`], in the document the server hands out at `/tls_doc/`,
//! binds the server's TLS key: the SHA3-512 of the DER
//! SubjectPublicKeyInfo of its certificate.
//!
//! ```json
//! {"v":1,"tls_spki_sha3_512":"<128 hex>"}
//! ```

use serde::{Deserialize, Serialize};

use crate::defs::{BINDING_VERSION, MAX_USER_DATA};
use crate::hash::Sha3Digest;
use crate::proof::{self, Suite, VrfError, VrfKey};

/// What can go wrong building or reading a binding.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// Encoded, the binding would not fit in a document.
    #[error(
        "user_data would be {len} bytes, more than the {MAX_USER_DATA} a document carries (path too long)"
    )]
    TooLarge {
        /// Encoded length.
        len: usize,
    },
    /// The bytes are not a binding of a known version.
    #[error("user_data is not a file binding: {0}")]
    Malformed(String),
    /// The proof could not be made or does not verify.
    #[error(transparent)]
    Vrf(#[from] VrfError),
}

/// A document's binding of a path to its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserData {
    /// Layout version ([`BINDING_VERSION`]).
    pub v: u32,
    /// The attested path as the enclave saw it.
    pub path: String,
    /// SHA3-512 of the file, or the manifest hash of the directory.
    pub sha3_512: Sha3Digest,
    /// Suite of `vrf_proof`.
    pub vrf_suite: Suite,
    /// ECVRF proof over the 64 bytes of `sha3_512`, hexadecimal.
    pub vrf_proof: String,
}

impl UserData {
    /// Proves `sha3_512` with `key` and binds it to `path`.
    pub fn prove(path: &str, sha3_512: Sha3Digest, key: &VrfKey) -> Result<Self, BindingError> {
        let proof = key.prove(sha3_512.as_bytes())?;
        let binding = Self {
            v: BINDING_VERSION,
            path: path.to_string(),
            sha3_512,
            vrf_suite: key.suite(),
            vrf_proof: hex::encode(proof),
        };
        binding.to_bytes()?;
        Ok(binding)
    }

    /// The bytes that go into the document.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BindingError> {
        let bytes =
            serde_json::to_vec(self).map_err(|error| BindingError::Malformed(error.to_string()))?;
        if bytes.len() > MAX_USER_DATA {
            return Err(BindingError::TooLarge { len: bytes.len() });
        }
        Ok(bytes)
    }

    /// Reads a binding back from a document's `user_data`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BindingError> {
        let binding: Self = decode(bytes)?;
        check_version(binding.v)?;
        Ok(binding)
    }

    /// The proof's bytes.
    pub fn proof_bytes(&self) -> Result<Vec<u8>, BindingError> {
        hex::decode(&self.vrf_proof)
            .map_err(|error| BindingError::Malformed(format!("vrf_proof: {error}")))
    }

    /// Checks the proof against `public_key`; returns the VRF output.
    pub fn verify_proof(&self, public_key: &[u8]) -> Result<Vec<u8>, BindingError> {
        Ok(proof::verify(
            self.vrf_suite,
            public_key,
            &self.proof_bytes()?,
            self.sha3_512.as_bytes(),
        )?)
    }
}

/// A document's binding of the server's TLS key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsBinding {
    /// Layout version ([`BINDING_VERSION`]).
    pub v: u32,
    /// SHA3-512 of the DER SubjectPublicKeyInfo of the TLS certificate.
    pub tls_spki_sha3_512: Sha3Digest,
}

impl TlsBinding {
    /// The binding of the key whose DER SubjectPublicKeyInfo is `spki_der`.
    pub fn new(spki_der: &[u8]) -> Result<Self, BindingError> {
        let digest = Sha3Digest::of(spki_der)
            .map_err(|error| BindingError::Malformed(format!("SHA3-512: {error}")))?;
        Ok(Self {
            v: BINDING_VERSION,
            tls_spki_sha3_512: digest,
        })
    }

    /// The bytes that go into the document.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BindingError> {
        serde_json::to_vec(self).map_err(|error| BindingError::Malformed(error.to_string()))
    }

    /// Reads a binding back from a document's `user_data`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BindingError> {
        let binding: Self = decode(bytes)?;
        check_version(binding.v)?;
        Ok(binding)
    }

    /// Whether `spki_der` is the key this binding names.
    pub fn matches(&self, spki_der: &[u8]) -> bool {
        Sha3Digest::of(spki_der).is_ok_and(|digest| digest == self.tls_spki_sha3_512)
    }
}

/// Parses `user_data` JSON of at most [`MAX_USER_DATA`] bytes.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, BindingError> {
    if bytes.len() > MAX_USER_DATA {
        return Err(BindingError::TooLarge { len: bytes.len() });
    }
    serde_json::from_slice(bytes).map_err(|error| BindingError::Malformed(error.to_string()))
}

fn check_version(version: u32) -> Result<(), BindingError> {
    if version != BINDING_VERSION {
        return Err(BindingError::Malformed(format!(
            "version {version} (this build reads {BINDING_VERSION})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_round_trips_and_its_proof_verifies() {
        let key = VrfKey::generate(Suite::P256Sha256Tai).unwrap();
        let digest = Sha3Digest::of(b"file content").unwrap();
        let binding = UserData::prove("/data/file", digest, &key).unwrap();
        let bytes = binding.to_bytes().unwrap();
        assert!(bytes.starts_with(br#"{"v":1,"path":"/data/file","sha3_512":""#));
        let back = UserData::from_bytes(&bytes).unwrap();
        assert_eq!(back, binding);
        back.verify_proof(key.public_key()).unwrap();

        let mut other_hash = back.clone();
        other_hash.sha3_512 = Sha3Digest::of(b"other").unwrap();
        assert!(other_hash.verify_proof(key.public_key()).is_err());
        let other_key = VrfKey::generate(Suite::P256Sha256Tai).unwrap();
        assert!(back.verify_proof(other_key.public_key()).is_err());
    }

    #[test]
    fn long_paths_and_foreign_bytes_are_refused() {
        let key = VrfKey::generate(Suite::Secp256k1Sha256Tai).unwrap();
        let digest = Sha3Digest::of(b"x").unwrap();
        let long = format!("/{}", "a".repeat(700));
        assert!(matches!(
            UserData::prove(&long, digest, &key),
            Err(BindingError::TooLarge { .. })
        ));
        UserData::prove(&format!("/{}", "a".repeat(600)), digest, &key).unwrap();
        for bad in [
            &b""[..],
            b"hello",
            br#"{"v":2,"path":"/","sha3_512":"00","vrf_suite":"P256_SHA256_TAI","vrf_proof":""}"#,
            br#"{"v":1,"path":"/","sha3_512":"00","vrf_suite":"P256_SHA256_TAI","vrf_proof":""}"#,
        ] {
            assert!(
                UserData::from_bytes(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(UserData::from_bytes(&[b' '; MAX_USER_DATA + 1]).is_err());
    }

    #[test]
    fn a_tls_binding_round_trips_and_names_its_key_only() {
        let spki = b"\x30\x59 not really DER, any bytes hash";
        let binding = TlsBinding::new(spki).unwrap();
        let bytes = binding.to_bytes().unwrap();
        assert!(bytes.starts_with(br#"{"v":1,"tls_spki_sha3_512":""#));
        assert_eq!(bytes.len(), r#"{"v":1,"tls_spki_sha3_512":""}"#.len() + 128);
        let back = TlsBinding::from_bytes(&bytes).unwrap();
        assert_eq!(back, binding);
        assert!(back.matches(spki));
        assert!(!back.matches(b"another key"));
        // A file binding is not a TLS binding, and the other way round.
        let key = VrfKey::generate(Suite::P256Sha256Tai).unwrap();
        let file = UserData::prove("/f", Sha3Digest::of(b"x").unwrap(), &key).unwrap();
        assert!(TlsBinding::from_bytes(&file.to_bytes().unwrap()).is_err());
        assert!(UserData::from_bytes(&bytes).is_err());
        let v2 = String::from_utf8(bytes)
            .unwrap()
            .replace(r#""v":1"#, r#""v":2"#);
        assert!(TlsBinding::from_bytes(v2.as_bytes()).is_err());
    }
}
