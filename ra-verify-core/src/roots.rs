//! Root certificates that document chains are checked against.
//!
//! The public AWS Nitro Enclaves root certificate (G1) is bundled: its PEM is
//! `roots/aws-nitro-enclaves-root-g1.pem` in this crate, as AWS publishes it
//! in `AWS_NitroEnclaves_Root-G1.zip`, and a test checks its SHA-256
//! fingerprint against [`AWS_NITRO_ROOT_G1_SHA256`], the value AWS
//! documents. Any other root (a development root written by ra-web-srv as
//! `dev-root.pem`) is loaded from a PEM or DER file and must be named
//! explicitly: nothing ever trusts the root a document carries.

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::defs::{AWS_NITRO_ROOT_G1_SHA256, MAX_ROOT_FILE};
use crate::files::{ReadError, read_limited};

/// The AWS Nitro Enclaves root certificate (G1), PEM.
pub const AWS_NITRO_ROOT_G1_PEM: &str = include_str!("../roots/aws-nitro-enclaves-root-g1.pem");

/// The same certificate, DER.
const AWS_NITRO_ROOT_G1_DER: &[u8] = include_bytes!("../roots/aws-nitro-enclaves-root-g1.der");

/// What can go wrong loading a root.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// The file could not be read (or is larger than any certificate).
    #[error("root certificate {path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: ReadError,
    },
    /// No certificate in the PEM text, or more than one.
    #[error("root certificate: {0}")]
    Pem(String),
    /// The bytes are not an X.509 certificate usable as a trust anchor.
    #[error("root certificate: not a usable X.509 certificate: {0}")]
    NotACertificate(String),
}

/// A root certificate (DER) that chains are checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct Root {
    der: Vec<u8>,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Root(sha256 {})", self.sha256_fingerprint())
    }
}

impl Root {
    /// The bundled AWS Nitro Enclaves root (G1).
    pub fn aws_nitro() -> Self {
        Self {
            der: AWS_NITRO_ROOT_G1_DER.to_vec(),
        }
    }

    /// A root from DER bytes.
    pub fn from_der(der: &[u8]) -> Result<Self, RootError> {
        webpki::anchor_from_trusted_cert(&CertificateDer::from(der))
            .map_err(|error| RootError::NotACertificate(format!("{error:?}")))?;
        Ok(Self { der: der.to_vec() })
    }

    /// A root from PEM text holding exactly one certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Self, RootError> {
        let mut certificates = Vec::new();
        for item in CertificateDer::pem_slice_iter(pem) {
            certificates.push(item.map_err(|error| RootError::Pem(error.to_string()))?);
        }
        match certificates.as_slice() {
            [one] => Self::from_der(one),
            [] => Err(RootError::Pem(
                "no CERTIFICATE block in the PEM text".into(),
            )),
            more => Err(RootError::Pem(format!(
                "{} certificates in the file; give exactly one root",
                more.len()
            ))),
        }
    }

    /// A root from PEM text or DER bytes, whichever `bytes` are.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, RootError> {
        if bytes.windows(11).any(|window| window == b"-----BEGIN ") {
            Self::from_pem(bytes)
        } else {
            Self::from_der(bytes)
        }
    }

    /// Loads a root from a PEM or DER file.
    pub fn load(path: &Path) -> Result<Self, RootError> {
        let bytes = read_limited(path, MAX_ROOT_FILE).map_err(|source| RootError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem_or_der(&bytes)
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 of the DER, uppercase hexadecimal (the form AWS publishes).
    pub fn sha256_fingerprint(&self) -> String {
        hex::encode_upper(ring::digest::digest(&ring::digest::SHA256, &self.der))
    }

    /// Whether this is the AWS Nitro Enclaves root (G1).
    pub fn is_aws_nitro(&self) -> bool {
        self.sha256_fingerprint() == AWS_NITRO_ROOT_G1_SHA256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_root_is_aws_nitro_enclaves_root_g1() {
        let root = Root::aws_nitro();
        assert_eq!(root.sha256_fingerprint(), AWS_NITRO_ROOT_G1_SHA256);
        assert!(root.is_aws_nitro());
        // The PEM and the DER are the same certificate.
        let from_pem = Root::from_pem(AWS_NITRO_ROOT_G1_PEM.as_bytes()).unwrap();
        assert_eq!(from_pem, root);
        Root::from_der(root.der()).unwrap();
    }

    #[test]
    fn roots_load_from_pem_and_der_files() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("root.pem");
        let der = dir.path().join("root.der");
        std::fs::write(&pem, AWS_NITRO_ROOT_G1_PEM).unwrap();
        std::fs::write(&der, AWS_NITRO_ROOT_G1_DER).unwrap();
        assert!(Root::load(&pem).unwrap().is_aws_nitro());
        assert!(Root::load(&der).unwrap().is_aws_nitro());
    }

    #[test]
    fn bad_root_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad");
        assert!(matches!(Root::load(&path), Err(RootError::Io { .. })));
        std::fs::write(&path, b"not a certificate").unwrap();
        assert!(matches!(
            Root::load(&path),
            Err(RootError::NotACertificate(_))
        ));
        std::fs::write(
            &path,
            b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(matches!(Root::load(&path), Err(RootError::Pem(_))));
        let two = format!("{AWS_NITRO_ROOT_G1_PEM}{AWS_NITRO_ROOT_G1_PEM}");
        std::fs::write(&path, two).unwrap();
        assert!(matches!(Root::load(&path), Err(RootError::Pem(_))));
        std::fs::write(&path, vec![b'x'; MAX_ROOT_FILE as usize + 1]).unwrap();
        assert!(matches!(
            Root::load(&path),
            Err(RootError::Io {
                source: ReadError::TooLarge(_),
                ..
            })
        ));
        let mut truncated = AWS_NITRO_ROOT_G1_DER.to_vec();
        truncated.truncate(100);
        assert!(Root::from_der(&truncated).is_err());
    }
}
