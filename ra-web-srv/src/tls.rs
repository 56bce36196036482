//! The server's TLS identity.
//!
//! Either the configured certificate chain and key (PEM), or a key and
//! self-signed certificate made inside the enclave at first start and kept
//! in the state directory (key mode 0600), reused after a restart. The
//! SHA3-512 of the certificate's DER SubjectPublicKeyInfo is what
//! `/tls_doc/` binds into an attestation document, so a client can check
//! that the TLS key it talks to belongs to the attested enclave.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ra_verify_core::Sha3Digest;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::defs::{TLS_CERT_FILE, TLS_KEY_FILE};
use crate::files::{self, FileError};

/// Why the TLS identity could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a key or certificate file failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Making the self-signed certificate failed.
    #[error("making the TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the key or certificate.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The certificate could not be parsed for its public key.
    #[error("the TLS certificate cannot be parsed: {0}")]
    Certificate(String),
}

/// Where the TLS key and certificate come from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// Made at first start and kept in the state directory.
    Generated {
        /// The state directory.
        state_dir: PathBuf,
        /// DNS names and IP addresses the certificate names.
        names: Vec<String>,
    },
    /// Configured files (PEM): certificate chain (leaf first) and key.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
}

/// The TLS identity in use.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    /// rustls configuration (ring provider, HTTP/2 and HTTP/1.1).
    pub server_config: Arc<ServerConfig>,
    /// The leaf certificate, DER.
    pub cert_der: Vec<u8>,
    /// SHA3-512 of the leaf's DER SubjectPublicKeyInfo.
    pub spki_sha3_512: Sha3Digest,
    /// The certificate file (PEM) clients can pin.
    pub cert_path: PathBuf,
}

impl TlsIdentity {
    /// Loads the identity, making it first when it is generated and missing.
    pub fn load(source: &TlsSource) -> Result<Self, TlsError> {
        let (cert_path, key_path) = match source {
            TlsSource::Generated { state_dir, names } => {
                let cert = state_dir.join(TLS_CERT_FILE);
                let key = state_dir.join(TLS_KEY_FILE);
                if !(cert.exists() && key.exists()) {
                    generate(&cert, &key, names)?;
                }
                (cert, key)
            }
            TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        };
        let pem_error = |path: &Path, reason: String| TlsError::Pem {
            path: path.to_owned(),
            reason,
        };
        let cert_pem = files::read(&cert_path)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(&cert_path, e.to_string()))?;
        let leaf = chain
            .first()
            .ok_or_else(|| pem_error(&cert_path, "no certificate in the file".into()))?
            .to_vec();
        let key_pem = files::read(&key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| pem_error(&key_path, e.to_string()))?;
        let spki_sha3_512 = spki_sha3_512(&leaf)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            server_config: Arc::new(config),
            cert_der: leaf,
            spki_sha3_512,
            cert_path,
        })
    }
}

impl TlsIdentity {
    /// The same configuration (certificate, key, session caches) without
    /// ALPN, for the TLS ingress: it relays bytes to an upstream that
    /// speaks HTTP/1.1 (or anything else), so it must not agree to HTTP/2
    /// on the upstream's behalf; clients then use HTTP/1.1.
    pub fn relay_config(&self) -> Arc<ServerConfig> {
        let mut config = (*self.server_config).clone();
        config.alpn_protocols = Vec::new();
        Arc::new(config)
    }
}

/// SHA3-512 of the DER SubjectPublicKeyInfo of the certificate `der`.
pub fn spki_sha3_512(der: &[u8]) -> Result<Sha3Digest, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    Sha3Digest::of(cert.tbs_certificate.subject_pki.raw)
        .map_err(|e| TlsError::Certificate(e.to_string()))
}

/// Makes a P-256 key and a self-signed certificate for `names`.
fn generate(cert_path: &Path, key_path: &Path, names: &[String]) -> Result<(), TlsError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ra-web-srv");
    let cert = params.self_signed(&key)?;
    files::write_atomic(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    files::write_atomic(cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert_path.display(), ?names, "made a new TLS key and self-signed certificate");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_generated_identity_is_kept_and_its_spki_hash_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let source = TlsSource::Generated {
            state_dir: dir.path().to_owned(),
            names: vec!["localhost".into(), "127.0.0.1".into()],
        };
        let first = TlsIdentity::load(&source).unwrap();
        let mode = std::fs::metadata(dir.path().join(TLS_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = TlsIdentity::load(&source).unwrap();
        assert_eq!(first.cert_der, again.cert_der);
        assert_eq!(first.spki_sha3_512, again.spki_sha3_512);

        // The same identity given as files is the same key.
        let files = TlsSource::Files {
            cert: dir.path().join(TLS_CERT_FILE),
            key: dir.path().join(TLS_KEY_FILE),
        };
        assert_eq!(
            TlsIdentity::load(&files).unwrap().spki_sha3_512,
            first.spki_sha3_512
        );
    }

    #[test]
    fn files_without_a_certificate_or_key_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"").unwrap();
        let error = TlsIdentity::load(&TlsSource::Files {
            cert: empty.clone(),
            key: empty,
        })
        .unwrap_err();
        assert!(error.to_string().contains("no certificate"), "{error}");
    }
}
