//! Hashing, proving and attesting: the work behind every document.
//!
//! Hashing reads whole files, so it runs on the blocking pool behind a
//! semaphore (`--hash-concurrency`). A document's `user_data` is the
//! [`UserData`] binding (path, hash, suite, VRF proof) and its
//! `public_key` the VRF public key; the TLS document binds the SHA3-512 of
//! the TLS certificate's SubjectPublicKeyInfo instead.

use std::path::PathBuf;
use std::sync::Arc;

use ra_verify_core::binding::{BindingError, TlsBinding, UserData};
use ra_verify_core::hash::HashError;
use ra_verify_core::proof::{Suite, VrfKey};
use ra_verify_core::{Sha3Digest, hash_path};
use tokio::sync::Semaphore;

use crate::nsm::{Nsm, NsmError};
use crate::record::{Record, Source, now_rfc3339};

/// Why a hash, proof or document could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// Reading or hashing the file failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The binding could not be made (path too long for a document).
    #[error(transparent)]
    Binding(#[from] BindingError),
    /// The NSM failed.
    #[error(transparent)]
    Nsm(#[from] NsmError),
    /// A blocking task died.
    #[error("hashing task: {0}")]
    Task(String),
}

/// Makes hashes, proofs and documents.
#[derive(Debug, Clone)]
pub struct Attester {
    nsm: Nsm,
    vrf: Arc<VrfKey>,
    hash_permits: Arc<Semaphore>,
}

impl Attester {
    /// An attester signing with `nsm` and proving with `vrf`, hashing at
    /// most `hash_concurrency` files at once.
    pub fn new(nsm: Nsm, vrf: VrfKey, hash_concurrency: usize) -> Self {
        Self {
            nsm,
            vrf: Arc::new(vrf),
            hash_permits: Arc::new(Semaphore::new(hash_concurrency.max(1))),
        }
    }

    /// The NSM in use.
    pub fn nsm(&self) -> &Nsm {
        &self.nsm
    }

    /// The VRF suite.
    pub fn suite(&self) -> Suite {
        self.vrf.suite()
    }

    /// The VRF public key (compressed SEC1).
    pub fn vrf_public_key(&self) -> &[u8] {
        self.vrf.public_key()
    }

    /// SHA3-512 of the file or directory at `path` (already confined).
    pub async fn hash(&self, path: PathBuf) -> Result<Sha3Digest, AttestError> {
        let _permit = self
            .hash_permits
            .acquire()
            .await
            .map_err(|e| AttestError::Task(e.to_string()))?;
        tokio::task::spawn_blocking(move || hash_path(&path))
            .await
            .map_err(|e| AttestError::Task(e.to_string()))?
            .map_err(AttestError::from)
    }

    /// Proves `sha3_512` for `path` and has the NSM attest the binding.
    pub async fn attest(
        &self,
        path: &str,
        sha3_512: Sha3Digest,
        source: Source,
    ) -> Result<Record, AttestError> {
        let vrf = Arc::clone(&self.vrf);
        let owned = path.to_string();
        let binding = tokio::task::spawn_blocking(move || UserData::prove(&owned, sha3_512, &vrf))
            .await
            .map_err(|e| AttestError::Task(e.to_string()))??;
        let document = self.document_for(&binding, None).await?;
        Ok(Record {
            path: path.to_string(),
            sha3_512,
            vrf_suite: binding.vrf_suite,
            vrf_proof: binding.vrf_proof,
            vrf_public_key: hex::encode(self.vrf.public_key()),
            document: hex::encode(document),
            nsm: self.nsm.kind(),
            created_at: now_rfc3339(),
            source,
        })
    }

    /// A document for an existing binding (a fresh one, e.g. with a nonce).
    pub async fn document_for(
        &self,
        binding: &UserData,
        nonce: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, AttestError> {
        Ok(self
            .nsm
            .attest(
                Some(binding.to_bytes()?),
                nonce,
                Some(self.vrf.public_key().to_vec()),
            )
            .await?)
    }

    /// A document binding the TLS key whose DER SPKI hashes to `spki_sha3_512`.
    pub async fn tls_document(
        &self,
        spki_sha3_512: Sha3Digest,
        nonce: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, AttestError> {
        let binding = TlsBinding {
            v: ra_verify_core::defs::BINDING_VERSION,
            tls_spki_sha3_512: spki_sha3_512,
        };
        Ok(self
            .nsm
            .attest(Some(binding.to_bytes()?), nonce, None)
            .await?)
    }
}
