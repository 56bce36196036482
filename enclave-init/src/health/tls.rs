//! TLS for HTTPS probes: a server on loopback in the enclave usually has a
//! self-signed certificate (ra-web-srv makes its own), and no authority
//! could vouch for it, so the certificate is not verified. The handshake
//! signature still is (`ra-verify-core`'s verifier, the one `ra-verify`'s client uses
//! before it ties the key to an attestation document). Targets are
//! loopback only (see [`target`](crate::health::target)), so nothing
//! outside the enclave can stand in for the server.

use std::sync::Arc;

/// A TLS connector that accepts any server certificate.
pub fn connector() -> Result<tokio_rustls::TlsConnector, rustls::Error> {
    let config = ra_verify_core::tls::bind_later_config()?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
