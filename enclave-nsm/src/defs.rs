//! File names, the device path and the development NSM's constants.

use std::time::Duration;

/// Development root certificate, PEM (what clients pin with `--root`).
pub const DEV_ROOT_PEM: &str = "dev-root.pem";
/// Development root certificate, DER.
pub const DEV_ROOT_DER: &str = "dev-root.der";
/// Development intermediate certificate, DER.
pub const DEV_INT_DER: &str = "dev-int.der";
/// Development end (signing) certificate, DER.
pub const DEV_END_DER: &str = "dev-end.der";
/// Development signing key, PKCS#8 DER (mode 0600).
pub const DEV_END_KEY: &str = "dev-end-key.der";
/// How long the development certificates are valid.
pub const DEV_PKI_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Seed of the development PCRs: PCR n is SHA-384 of this text followed by n.
pub const DEV_PCR_SEED: &str = "enclaves-framework development PCR";
/// The Nitro Secure Module device.
pub const NSM_DEVICE: &str = "/dev/nsm";
/// PCRs read and shown (the ones a Nitro enclave defines).
pub const PCR_INDEXES: [u16; 6] = [0, 1, 2, 3, 4, 8];
