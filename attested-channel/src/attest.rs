//! Producing the server's attestation document, and what a client requires
//! of it.
//!
//! The server asks its NSM ([`enclave_nsm::Nsm`]: `/dev/nsm`, or the
//! development signer outside an enclave) for a document whose
//! `public_key` is its Noise static key, whose `nonce` is the client's and
//! whose `user_data` is [`ATTESTATION_LABEL`]. The client checks it with
//! `ra-verify`'s [`ra_verify_core::verify_key_binding`], the code the offline
//! verifier uses, under a [`ra_verify_core::Policy`]: pinned root (the AWS Nitro
//! root unless a development root is given) or unsigned documents allowed,
//! and expected PCRs.

use std::future::Future;
use std::pin::Pin;

use ra_verify_core::{Check, Report};

use crate::defs::ATTESTATION_LABEL;

/// A future of an attestation document.
pub type DocumentFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;

/// Something that makes attestation documents.
pub trait Attester: Send + Sync {
    /// A COSE_Sign1 document carrying `nonce`, `public_key` and `user_data`.
    fn attest(&self, nonce: Vec<u8>, public_key: Vec<u8>, user_data: Vec<u8>)
    -> DocumentFuture<'_>;

    /// What makes the documents (`nitro`, `development`), for logs.
    fn kind(&self) -> &'static str;
}

impl Attester for enclave_nsm::Nsm {
    fn attest(
        &self,
        nonce: Vec<u8>,
        public_key: Vec<u8>,
        user_data: Vec<u8>,
    ) -> DocumentFuture<'_> {
        Box::pin(async move {
            enclave_nsm::Nsm::attest(self, Some(user_data), Some(nonce), Some(public_key))
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn kind(&self) -> &'static str {
        self.kind().name()
    }
}

/// Checks a document from the server: every check of
/// [`ra_verify_core::verify_key_binding`] with `nonce` required, plus
/// `channel_label` (the document says it was made for this channel).
pub fn verify_server_document(
    document: &[u8],
    policy: &ra_verify_core::Policy,
    nonce: &[u8],
    server_key: &[u8],
) -> Report {
    let policy = ra_verify_core::Policy {
        nonce: Some(nonce.to_vec()),
        ..policy.clone()
    };
    let mut report = ra_verify_core::verify_key_binding(document, &policy, server_key);
    if let Some(parsed) = &report.document {
        let check = match parsed.user_data() {
            Some(data) if data == ATTESTATION_LABEL => {
                Check::pass("channel_label", "made for the attested channel")
            }
            Some(_) => Check::fail(
                "channel_label",
                "user_data is not the attested channel's label: the document was made for something else",
            ),
            None => Check::fail("channel_label", "the document carries no user_data"),
        };
        report.push(check);
    }
    report
}
