//! Building either side of the channel from files, the same way for every
//! program that speaks it (pipeline, initctl, enclave-init).
//!
//! - [`server_config`]: the authorised keys file, a fresh static key (in
//!   memory only) and the NSM that attests it: `/dev/nsm`, or, outside an
//!   enclave, the development signer, whose root and PCRs are written to the
//!   state directory for clients ([`DEV_ROOT_FILE`], [`DEV_PCRS_FILE`]).
//! - [`client_config`]: the client's key, the PCRs it expects and the root
//!   it pins (or unsigned documents allowed, for QEMU's emulated NSM).
//! - [`ChannelArgs`]: the client's command-line flags for both.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use enclave_nsm::{DevPcrs, Nsm, NsmKind, NsmMode};

use crate::authorized::{AuthorizedKeys, AuthorizedKeysError};
use crate::handshake::{ClientConfig, ServerConfig};
use crate::keys::{KeyError, StaticKey};

/// The development NSM's root certificate, in the state directory (for
/// clients' `--root`).
pub const DEV_ROOT_FILE: &str = enclave_nsm::defs::DEV_ROOT_PEM;
/// The development NSM's PCRs, in the state directory (for clients'
/// `--expect-pcrs`).
pub const DEV_PCRS_FILE: &str = "dev.eif.pcrs";

/// Why a side of the channel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The authorised keys file is unreadable or malformed.
    #[error(transparent)]
    AuthorizedKeys(#[from] AuthorizedKeysError),
    /// A key could not be made or loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The NSM (or the development signer) could not be opened or asked.
    #[error("cannot open the NSM: {0}")]
    Nsm(#[from] enclave_nsm::NsmError),
    /// The development signer's state could not be written.
    #[error("development NSM state: {0}")]
    State(#[from] enclave_nsm::files::FileError),
    /// The expected PCRs file is unusable.
    #[error("--expect-pcrs {}: {source}", path.display())]
    Pcrs {
        /// The file given.
        path: PathBuf,
        /// Why it is unusable.
        source: ra_verify_core::pcrs::PcrsError,
    },
    /// The pinned root is unusable.
    #[error("--root {}: {source}", path.display())]
    Root {
        /// The file given.
        path: PathBuf,
        /// Why it is unusable.
        source: ra_verify_core::roots::RootError,
    },
    /// A key was given without the PCRs to expect.
    #[error(
        "--key needs --expect-pcrs FILE.eif.pcrs: the client checks the enclave before it sends anything"
    )]
    NoExpectedPcrs,
}

/// The server's side: the keys in `authorized_keys`, a fresh static key
/// (memory only), attested by the NSM `mode` selects. The development
/// signer (`mode` development, or auto where `/dev/nsm` is missing) keeps
/// its PKI in `state_dir` and writes [`DEV_ROOT_FILE`] and [`DEV_PCRS_FILE`]
/// there, with a warning that it proves nothing.
pub async fn server_config(
    authorized_keys: &Path,
    mode: NsmMode,
    state_dir: &Path,
    timeout: Duration,
) -> Result<ServerConfig, SetupError> {
    let authorized = AuthorizedKeys::load(authorized_keys)?;
    if authorized.is_empty() {
        tracing::warn!(file = %authorized_keys.display(), "no authorised keys: every channel client will be refused");
    }
    let development = mode == NsmMode::Development
        || (mode == NsmMode::Auto && !Path::new(enclave_nsm::defs::NSM_DEVICE).exists());
    if development {
        enclave_nsm::files::ensure_dir(state_dir)?;
    }
    let nsm = Nsm::open(mode, state_dir, &DevPcrs::Seeded)?;
    if nsm.kind() == NsmKind::Development {
        let pcrs_path = state_dir.join(DEV_PCRS_FILE);
        let text = pcrs_file_text(&nsm.pcrs().await?);
        enclave_nsm::files::write_atomic(&pcrs_path, text.as_bytes(), 0o644)?;
        tracing::warn!(
            root = %nsm.dev_root_pem().map(|p| p.display().to_string()).unwrap_or_default(),
            pcrs = %pcrs_path.display(),
            "DEVELOPMENT NSM: this is NOT an enclave; the channel's key is attested by a development signer that proves nothing (clients must pin its root with --root)"
        );
    }
    let mut config = ServerConfig::new(Arc::new(nsm), authorized)?;
    config.timeout = timeout;
    tracing::info!(server_key = %config.key.public().short(), "made the channel's server key (memory only)");
    Ok(config)
}

/// The PCRs in the format of an image build's `.eif.pcrs` file.
fn pcrs_file_text(pcrs: &std::collections::BTreeMap<u16, Vec<u8>>) -> String {
    let mut text = String::from("{\n  \"HashAlgorithm\": \"Sha384 { ... }\"");
    for (index, value) in pcrs {
        text.push_str(&format!(",\n  \"PCR{index}\": \"{}\"", hex::encode(value)));
    }
    text.push_str("\n}\n");
    text
}

/// The client's side: its key, the PCRs the enclave must have, and the root
/// to pin (the AWS Nitro root when `root` is `None` and unsigned documents
/// are not allowed).
pub fn client_config(
    key: &Path,
    expect_pcrs: &Path,
    root: Option<&Path>,
    allow_unsigned: bool,
    timeout: Duration,
) -> Result<ClientConfig, SetupError> {
    let key = StaticKey::load(key)?;
    let pcrs =
        ra_verify_core::ExpectedPcrs::load(expect_pcrs).map_err(|source| SetupError::Pcrs {
            path: expect_pcrs.to_path_buf(),
            source,
        })?;
    let root = root
        .map(|path| {
            ra_verify_core::Root::load(path).map_err(|source| SetupError::Root {
                path: path.to_path_buf(),
                source,
            })
        })
        .transpose()?;
    Ok(ClientConfig {
        key,
        policy: ra_verify_core::Policy {
            root,
            allow_unsigned,
            pcrs: Some(pcrs),
            ..ra_verify_core::Policy::default()
        },
        timeout,
    })
}

/// The client's flags for the attested channel, shared by every client
/// program (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ChannelArgs {
    /// Use the attested, encrypted channel with this private key (made by
    /// `pipeline keygen`). Without it the client speaks INSECURE plaintext.
    #[arg(long, value_name = "FILE", requires = "expect_pcrs")]
    pub key: Option<PathBuf>,
    /// The PCRs the enclave must have (the image build's FILE.eif.pcrs).
    #[arg(long, value_name = "FILE.eif.pcrs", requires = "key")]
    pub expect_pcrs: Option<PathBuf>,
    /// Pin this root certificate instead of AWS's (the development root).
    #[arg(
        long,
        value_name = "PEM",
        requires = "key",
        conflicts_with = "allow_unsigned"
    )]
    pub root: Option<PathBuf>,
    /// Accept unsigned documents (QEMU's emulated NSM): signature and chain
    /// are then skipped, PCRs, nonce and key binding still checked.
    #[arg(long, requires = "key")]
    pub allow_unsigned: bool,
}

impl ChannelArgs {
    /// The client's side from the flags; `None` without `--key` (plaintext).
    pub fn client_config(&self, timeout: Duration) -> Result<Option<ClientConfig>, SetupError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let pcrs = self
            .expect_pcrs
            .as_deref()
            .ok_or(SetupError::NoExpectedPcrs)?;
        client_config(
            key,
            pcrs,
            self.root.as_deref(),
            self.allow_unsigned,
            timeout,
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_names_the_unusable_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        StaticKey::generate_files(&key, "t").unwrap();
        let missing = dir.path().join("missing.eif.pcrs");
        let err = client_config(&key, &missing, None, false, Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(err, SetupError::Pcrs { .. }) && err.to_string().contains("missing.eif.pcrs"),
            "{err}"
        );
        let args = ChannelArgs {
            key: Some(key),
            ..ChannelArgs::default()
        };
        assert!(matches!(
            args.client_config(Duration::from_secs(1)),
            Err(SetupError::NoExpectedPcrs)
        ));
        assert!(
            ChannelArgs::default()
                .client_config(Duration::from_secs(1))
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn development_server_writes_its_root_and_pcrs() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("authorized_keys");
        std::fs::write(&keys, "").unwrap();
        let state = dir.path().join("state");
        let config = server_config(&keys, NsmMode::Development, &state, Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert!(state.join(DEV_ROOT_FILE).is_file());
        let pcrs = ra_verify_core::ExpectedPcrs::load(&state.join(DEV_PCRS_FILE)).unwrap();
        drop(pcrs);
        let bad = dir.path().join("bad_keys");
        std::fs::write(&bad, "not a key line\n").unwrap();
        assert!(matches!(
            server_config(&bad, NsmMode::Development, &state, Duration::from_secs(3)).await,
            Err(SetupError::AuthorizedKeys(_))
        ));
    }
}
