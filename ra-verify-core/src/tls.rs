//! TLS to the enclave's self-signed servers: a rustls client
//! configuration that accepts any certificate but checks the handshake
//! signature ([`BindLater`]), and the SubjectPublicKeyInfo of a
//! certificate ([`spki_of`]), which the `tls_binding` check compares with
//! the key an attestation document binds ([`crate::binding::TlsBinding`]).
//! The HTTPS client (`ra-verify`'s `client`) and enclave-init's HTTPS
//! health probes use it.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// The DER SubjectPublicKeyInfo of a DER certificate.
pub fn spki_of(certificate: &[u8]) -> Result<Vec<u8>, String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(certificate).map_err(|error| error.to_string())?;
    Ok(parsed.tbs_certificate.subject_pki.raw.to_vec())
}

/// A rustls client configuration that accepts any server certificate but
/// checks the handshake signature ([`BindLater`]): for the enclave's
/// self-signed servers, whose key is tied to an attestation document
/// afterwards, or probed on the enclave's own loopback.
pub fn bind_later_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(BindLater::new(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
    )
}

/// Accepts any server certificate (no authority vouches for the enclave's
/// self-signed one) but still checks the handshake signature, so the peer
/// holds the certificate's key; the `tls_binding` check then ties that key
/// to an attestation document. Also what a probe of a server on the
/// enclave's own loopback uses (enclave-init's HTTPS health checks).
#[derive(Debug)]
pub struct BindLater {
    algorithms: WebPkiSupportedAlgorithms,
}

impl BindLater {
    /// A verifier that checks handshake signatures with `algorithms`.
    pub fn new(algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self { algorithms }
    }
}

impl ServerCertVerifier for BindLater {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
