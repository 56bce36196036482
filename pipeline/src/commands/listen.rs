//! `pipeline listen`: bind, set up the attested channel if asked, serve.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use attested_channel::setup::SetupError;
use enclave_nsm::NsmMode;
use tokio_util::sync::CancellationToken;
use transport::{BindOptions, Listener};

use super::CommandError;
use crate::defs::HANDSHAKE_TIMEOUT;
use crate::server;
use crate::settings::ListenSettings;

/// Where `--nsm development` keeps its PKI unless `--state-dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pipeline";

/// The attested channel `listen` requires: `--authorized-keys`, `--nsm`,
/// `--state-dir`.
#[derive(Debug, Clone)]
pub struct ChannelFlags {
    /// The authorised client keys, with their permissions.
    pub authorized_keys: PathBuf,
    /// Which NSM attests the server's key.
    pub nsm: NsmMode,
    /// Where the development NSM keeps its PKI ([`DEFAULT_STATE_DIR`] if none).
    pub state_dir: Option<PathBuf>,
}

/// Serves clients on `settings.addr` (over the attested `channel` if
/// given) until `shutdown` is cancelled.
pub async fn listen(
    settings: ListenSettings,
    channel: Option<&ChannelFlags>,
    shutdown: CancellationToken,
) -> Result<(), CommandError> {
    let channel = match channel {
        Some(flags) => Some(Arc::new(server_channel(flags).await?)),
        None => None,
    };
    let options = BindOptions {
        unix_mode: Some(settings.socket_mode),
    };
    let listener = Listener::bind_with(&settings.addr, &options)
        .await
        .map_err(CommandError::Bind)?;
    server::run(
        listener,
        settings.server_config(channel),
        shutdown.cancelled_owned(),
    )
    .await?;
    Ok(())
}

/// The attested channel's server side: a fresh key (memory only), the NSM
/// that attests it, and the authorised client keys.
async fn server_channel(
    flags: &ChannelFlags,
) -> Result<attested_channel::ServerConfig, CommandError> {
    let state_dir = flags
        .state_dir
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_STATE_DIR));
    attested_channel::setup::server_config(
        &flags.authorized_keys,
        flags.nsm,
        state_dir,
        HANDSHAKE_TIMEOUT,
    )
    .await
    .map_err(setup_error)
}

/// A bad authorised keys file apart from the other set-up failures.
fn setup_error(err: SetupError) -> CommandError {
    match err {
        SetupError::AuthorizedKeys(_) => CommandError::AuthorizedKeys(err),
        other => CommandError::Setup(other),
    }
}
