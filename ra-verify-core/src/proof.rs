//! ECVRF proofs (draft-irtf-cfrg-vrf, "TAI" hash-to-curve) over SHA3-512
//! digests, through the `vrf` crate.
//!
//! The proven message (`alpha`) is the 64 raw bytes of the digest. The
//! secret key is the curve scalar (32 bytes, big-endian); the public key is
//! the compressed SEC1 point (33 bytes). A proof (81 bytes on both curves)
//! verifies against the public key and the digest, and yields the VRF output
//! (`beta`), which is unique for a key and a digest.

use std::fmt;
use std::str::FromStr;

use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use vrf::VRF;
use vrf::openssl::{CipherSuite, ECVRF};

/// Bytes of a secret scalar on the supported curves.
pub const SECRET_KEY_LEN: usize = 32;

/// What can go wrong making or checking a proof.
#[derive(Debug, thiserror::Error)]
pub enum VrfError {
    /// The key material is not valid for the suite.
    #[error("VRF key: {0}")]
    BadKey(String),
    /// The proof does not verify against this public key and message.
    #[error("the VRF proof does not verify: {0}")]
    Invalid(String),
    /// The VRF library failed.
    #[error("VRF: {0}")]
    Library(String),
}

/// An ECVRF cipher suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Suite {
    /// NIST P-256, SHA-256, try-and-increment (the default).
    #[default]
    P256Sha256Tai,
    /// secp256k1, SHA-256, try-and-increment.
    Secp256k1Sha256Tai,
}

/// A suite name that is not one of [`Suite::ALL`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown VRF suite {0:?} (known: P256_SHA256_TAI, SECP256K1_SHA256_TAI)")]
pub struct UnknownSuite(pub String);

impl Suite {
    /// Every supported suite.
    pub const ALL: [Suite; 2] = [Suite::P256Sha256Tai, Suite::Secp256k1Sha256Tai];

    /// The suite's name as documents and APIs carry it.
    pub fn name(self) -> &'static str {
        match self {
            Suite::P256Sha256Tai => "P256_SHA256_TAI",
            Suite::Secp256k1Sha256Tai => "SECP256K1_SHA256_TAI",
        }
    }

    fn cipher_suite(self) -> CipherSuite {
        match self {
            Suite::P256Sha256Tai => CipherSuite::P256_SHA256_TAI,
            Suite::Secp256k1Sha256Tai => CipherSuite::SECP256K1_SHA256_TAI,
        }
    }

    fn curve(self) -> Nid {
        match self {
            Suite::P256Sha256Tai => Nid::X9_62_PRIME256V1,
            Suite::Secp256k1Sha256Tai => Nid::SECP256K1,
        }
    }

    fn engine(self) -> Result<ECVRF, VrfError> {
        ECVRF::from_suite(self.cipher_suite()).map_err(|error| VrfError::Library(error.to_string()))
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Suite {
    type Err = UnknownSuite;

    /// Accepts the suite names, case-insensitively, and the curve alone
    /// (`p256`, `secp256k1`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_uppercase().replace('-', "_");
        Suite::ALL
            .into_iter()
            .find(|suite| {
                suite.name() == wanted || suite.name().split('_').next() == Some(wanted.as_str())
            })
            .ok_or_else(|| UnknownSuite(text.to_string()))
    }
}

impl serde::Serialize for Suite {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Suite {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A VRF key pair.
pub struct VrfKey {
    suite: Suite,
    secret: Vec<u8>,
    public: Vec<u8>,
}

impl fmt::Debug for VrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VrfKey")
            .field("suite", &self.suite)
            .field("public", &hex::encode(&self.public))
            .finish_non_exhaustive()
    }
}

impl VrfKey {
    /// A fresh key from OpenSSL's random generator.
    pub fn generate(suite: Suite) -> Result<Self, VrfError> {
        let library = |error: openssl::error::ErrorStack| VrfError::Library(error.to_string());
        let group = EcGroup::from_curve_name(suite.curve()).map_err(library)?;
        let key = EcKey::generate(&group).map_err(library)?;
        let secret = key
            .private_key()
            .to_vec_padded(SECRET_KEY_LEN as i32)
            .map_err(library)?;
        Self::from_secret(suite, &secret)
    }

    /// The key whose secret scalar is `secret` (32 bytes, big-endian).
    pub fn from_secret(suite: Suite, secret: &[u8]) -> Result<Self, VrfError> {
        if secret.len() != SECRET_KEY_LEN {
            return Err(VrfError::BadKey(format!(
                "a secret key is {SECRET_KEY_LEN} bytes, not {}",
                secret.len()
            )));
        }
        let public = suite
            .engine()?
            .derive_public_key(secret)
            .map_err(|error| VrfError::BadKey(error.to_string()))?;
        Ok(Self {
            suite,
            secret: secret.to_vec(),
            public,
        })
    }

    /// The suite this key belongs to.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The secret scalar (keep it secret: it is what makes proofs unforgeable).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The compressed SEC1 public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// A proof for `message`.
    pub fn prove(&self, message: &[u8]) -> Result<Vec<u8>, VrfError> {
        self.suite
            .engine()?
            .prove(&self.secret, message)
            .map_err(|error| VrfError::Library(error.to_string()))
    }
}

impl Drop for VrfKey {
    fn drop(&mut self) {
        self.secret.iter_mut().for_each(|byte| *byte = 0);
    }
}

/// Checks `proof` for `message` against `public_key`; returns the VRF output.
pub fn verify(
    suite: Suite,
    public_key: &[u8],
    proof: &[u8],
    message: &[u8],
) -> Result<Vec<u8>, VrfError> {
    if !is_point_on_curve(suite, public_key) {
        return Err(VrfError::BadKey(format!(
            "{} bytes are not a {} public key",
            public_key.len(),
            suite
        )));
    }
    suite
        .engine()?
        .verify(public_key, proof, message)
        .map_err(|error| VrfError::Invalid(error.to_string()))
}

/// Whether `bytes` decode as a point on the suite's curve.
fn is_point_on_curve(suite: Suite, bytes: &[u8]) -> bool {
    let Ok(group) = EcGroup::from_curve_name(suite.curve()) else {
        return false;
    };
    let Ok(mut context) = BigNumContext::new() else {
        return false;
    };
    openssl::ec::EcPoint::from_bytes(&group, bytes, &mut context).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_for_their_message_only_on_both_suites() {
        for suite in Suite::ALL {
            let key = VrfKey::generate(suite).unwrap();
            assert_eq!(key.public_key().len(), 33);
            let proof = key.prove(b"message").unwrap();
            assert_eq!(proof.len(), 81, "{suite}");
            let beta = verify(suite, key.public_key(), &proof, b"message").unwrap();
            assert_eq!(
                beta,
                verify(suite, key.public_key(), &proof, b"message").unwrap()
            );
            assert!(verify(suite, key.public_key(), &proof, b"massage").is_err());
            let other = VrfKey::generate(suite).unwrap();
            assert!(verify(suite, other.public_key(), &proof, b"message").is_err());
            let mut tampered = proof.clone();
            tampered[40] ^= 1;
            assert!(verify(suite, key.public_key(), &tampered, b"message").is_err());
            assert!(verify(suite, key.public_key(), &proof[..80], b"message").is_err());
        }
    }

    #[test]
    fn a_key_restored_from_its_secret_is_the_same_key() {
        let key = VrfKey::generate(Suite::P256Sha256Tai).unwrap();
        let again = VrfKey::from_secret(Suite::P256Sha256Tai, key.secret()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert!(VrfKey::from_secret(Suite::P256Sha256Tai, &[1; 31]).is_err());
    }

    #[test]
    fn garbage_public_keys_are_refused_not_crashed_on() {
        let key = VrfKey::generate(Suite::P256Sha256Tai).unwrap();
        let proof = key.prove(b"m").unwrap();
        assert!(matches!(
            verify(Suite::P256Sha256Tai, &[], &proof, b"m"),
            Err(VrfError::BadKey(_))
        ));
        assert!(matches!(
            verify(Suite::P256Sha256Tai, &[2; 33], &proof, b"m"),
            Err(VrfError::BadKey(_) | VrfError::Invalid(_))
        ));
        assert!(verify(Suite::Secp256k1Sha256Tai, key.public_key(), &proof, b"m").is_err());
    }

    #[test]
    fn suite_names_parse_in_the_usual_spellings() {
        for suite in Suite::ALL {
            assert_eq!(suite.name().parse::<Suite>(), Ok(suite));
            assert_eq!(suite.name().to_lowercase().parse::<Suite>(), Ok(suite));
        }
        assert_eq!("p256".parse::<Suite>(), Ok(Suite::P256Sha256Tai));
        assert_eq!("secp256k1".parse::<Suite>(), Ok(Suite::Secp256k1Sha256Tai));
        assert!("K163_SHA256_TAI".parse::<Suite>().is_err());
        assert!("".parse::<Suite>().is_err());
    }
}
