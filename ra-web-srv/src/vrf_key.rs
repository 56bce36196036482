//! The server's VRF key: made at first start, kept in the state directory
//! (mode 0600) and reused after a restart, so proofs stay verifiable
//! against one public key.
//!
//! File format (`vrf-key.json`): `{"suite":"P256_SHA256_TAI","secret":"<64 hex>"}`.

use std::path::Path;

use ra_verify_core::proof::{Suite, VrfError, VrfKey};
use serde::{Deserialize, Serialize};

use crate::defs::VRF_KEY_FILE;
use crate::files::{self, FileError};

/// Why the VRF key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum VrfKeyError {
    /// Reading or writing the key file failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The key file is not a key.
    #[error("{path}: not a VRF key file: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The stored key belongs to another suite than the configured one.
    #[error(
        "{path} holds a {stored} key but --vrf-suite is {wanted}: use --vrf-suite {stored}, or move the key file away to make a new key (documents made with the old key then no longer match it)"
    )]
    SuiteMismatch {
        /// The file.
        path: String,
        /// Suite of the stored key.
        stored: Suite,
        /// Configured suite.
        wanted: Suite,
    },
    /// The VRF library failed.
    #[error(transparent)]
    Vrf(#[from] VrfError),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    suite: Suite,
    secret: String,
}

/// Loads the key of `suite` from `state_dir`, or makes and stores one.
pub fn load_or_create(state_dir: &Path, suite: Suite) -> Result<VrfKey, VrfKeyError> {
    let path = state_dir.join(VRF_KEY_FILE);
    let shown = path.display().to_string();
    if let Some(bytes) = files::read_optional(&path)? {
        let malformed = |reason: String| VrfKeyError::Malformed {
            path: shown.clone(),
            reason,
        };
        let stored: KeyFile =
            serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
        if stored.suite != suite {
            return Err(VrfKeyError::SuiteMismatch {
                path: shown,
                stored: stored.suite,
                wanted: suite,
            });
        }
        let secret = hex::decode(&stored.secret).map_err(|e| malformed(e.to_string()))?;
        return VrfKey::from_secret(suite, &secret).map_err(|e| malformed(e.to_string()));
    }
    let key = VrfKey::generate(suite)?;
    let file = KeyFile {
        suite,
        secret: hex::encode(key.secret()),
    };
    let text = serde_json::to_vec(&file).map_err(|e| VrfKeyError::Malformed {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    files::write_atomic(&path, &text, 0o600)?;
    tracing::info!(path = %shown, %suite, "made a new VRF key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_made_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), Suite::P256Sha256Tai).unwrap();
        let mode = std::fs::metadata(dir.path().join(VRF_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create(dir.path(), Suite::P256Sha256Tai).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        let error = load_or_create(dir.path(), Suite::Secp256k1Sha256Tai).unwrap_err();
        assert!(
            matches!(error, VrfKeyError::SuiteMismatch { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("--vrf-suite"), "{error}");
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(VRF_KEY_FILE),
            b"{\"suite\":\"P256_SHA256_TAI\"",
        )
        .unwrap();
        let error = load_or_create(dir.path(), Suite::P256Sha256Tai).unwrap_err();
        assert!(matches!(error, VrfKeyError::Malformed { .. }), "{error}");
    }
}
