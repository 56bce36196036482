//! The development PKI: a root, an intermediate and an end certificate with
//! its P-384 signing key, made with `nsm-nitro-enclave-utils-keygen` at
//! first start and kept in the state directory.
//!
//! Only the development NSM uses it. The root is written as
//! `dev-root.pem` and `dev-root.der` for clients to pin explicitly
//! (`ra-verify doc --root STATE/dev-root.pem`); the server never hands it
//! out as something to trust. The signing key is mode 0600.

use std::path::{Path, PathBuf};

use nsm_nitro_enclave_utils_keygen::{Certificate, DerDecodeExt, DerEncodeExt, NsmCertChain};
use p384::pkcs8::{DecodePrivateKey, EncodePrivateKey};

use crate::defs::{
    DEV_END_DER, DEV_END_KEY, DEV_INT_DER, DEV_PKI_VALIDITY, DEV_ROOT_DER, DEV_ROOT_PEM,
};
use crate::files::{self, FileError};

/// Why the development PKI could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum DevPkiError {
    /// Reading or writing a file failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// A stored certificate or key does not parse.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Some of the files exist and some do not.
    #[error(
        "the development PKI in {0} is incomplete (some of dev-root.der, dev-int.der, dev-end.der, dev-end-key.der are missing): remove the rest to make a new one"
    )]
    Incomplete(PathBuf),
}

/// The development certificates (DER) and signing key.
pub struct DevPki {
    /// Root certificate.
    pub root_der: Vec<u8>,
    /// Intermediate certificate (the document's `cabundle`).
    pub int_der: Vec<u8>,
    /// End certificate (the document's `certificate`).
    pub end_der: Vec<u8>,
    /// Signing key of the end certificate.
    pub signing_key: p384::SecretKey,
    /// Where the root's PEM copy is.
    pub root_pem_path: PathBuf,
}

impl DevPki {
    /// Loads the PKI from `state_dir`, or makes and stores one.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, DevPkiError> {
        let paths =
            [DEV_ROOT_DER, DEV_INT_DER, DEV_END_DER, DEV_END_KEY].map(|n| state_dir.join(n));
        let present = paths.iter().filter(|p| p.exists()).count();
        if present == 0 {
            Self::create(state_dir)?;
        } else if present != paths.len() {
            return Err(DevPkiError::Incomplete(state_dir.to_owned()));
        }
        let [root, int, end, key] = paths;
        let cert = |path: &Path| -> Result<Vec<u8>, DevPkiError> {
            let der = files::read(path)?;
            Certificate::from_der(&der).map_err(|e| DevPkiError::Malformed {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            Ok(der)
        };
        let key_der = files::read(&key)?;
        let signing_key =
            p384::SecretKey::from_pkcs8_der(&key_der).map_err(|e| DevPkiError::Malformed {
                path: key.clone(),
                reason: e.to_string(),
            })?;
        let pki = Self {
            root_der: cert(&root)?,
            int_der: cert(&int)?,
            end_der: cert(&end)?,
            signing_key,
            root_pem_path: state_dir.join(DEV_ROOT_PEM),
        };
        if !pki.root_pem_path.exists() {
            files::write_atomic(
                &pki.root_pem_path,
                crate::pem::certificate(&pki.root_der).as_bytes(),
                0o644,
            )?;
        }
        Ok(pki)
    }

    fn create(state_dir: &Path) -> Result<(), DevPkiError> {
        let chain = NsmCertChain::generate(DEV_PKI_VALIDITY);
        let encode_error = |name: &str, reason: String| DevPkiError::Malformed {
            path: state_dir.join(name),
            reason,
        };
        let der = |name: &str, cert: &Certificate| {
            cert.to_der().map_err(|e| encode_error(name, e.to_string()))
        };
        let root = der(DEV_ROOT_DER, &chain.root)?;
        let key = chain
            .end_signer
            .signing_key
            .to_pkcs8_der()
            .map_err(|e| encode_error(DEV_END_KEY, e.to_string()))?;
        files::write_atomic(&state_dir.join(DEV_END_KEY), key.as_bytes(), 0o600)?;
        files::write_atomic(
            &state_dir.join(DEV_END_DER),
            &der(DEV_END_DER, &chain.end_signer.cert)?,
            0o644,
        )?;
        files::write_atomic(
            &state_dir.join(DEV_INT_DER),
            &der(DEV_INT_DER, &chain.int)?,
            0o644,
        )?;
        files::write_atomic(
            &state_dir.join(DEV_ROOT_PEM),
            crate::pem::certificate(&root).as_bytes(),
            0o644,
        )?;
        // The root DER last: its presence marks a complete PKI.
        files::write_atomic(&state_dir.join(DEV_ROOT_DER), &root, 0o644)?;
        tracing::info!(root = %state_dir.join(DEV_ROOT_PEM).display(), "made a new development PKI");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pki_is_made_once_and_its_root_pem_matches_the_der() {
        let dir = tempfile::tempdir().unwrap();
        let first = DevPki::load_or_create(dir.path()).unwrap();
        let again = DevPki::load_or_create(dir.path()).unwrap();
        assert_eq!(first.root_der, again.root_der);
        assert_eq!(first.end_der, again.end_der);
        let pem_text = std::fs::read(dir.path().join(DEV_ROOT_PEM)).unwrap();
        let parsed = openssl::x509::X509::from_pem(&pem_text).unwrap();
        assert_eq!(parsed.to_der().unwrap(), first.root_der);
        std::fs::remove_file(dir.path().join(DEV_INT_DER)).unwrap();
        assert!(matches!(
            DevPki::load_or_create(dir.path()),
            Err(DevPkiError::Incomplete(_))
        ));
    }
}
