//! Wiring: PID-1 duties (when asked), the control listeners, the
//! supervisor, and an orderly stop of the listeners once it returns.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transport::{Address, BindOptions, Listener};

use attested_channel::ServerConfig;

use crate::config::{Config, ControlChannel, ControlListener, ParentCid};
use crate::control::server;
use crate::defs::{CONTROL_HANDSHAKE_TIMEOUT, CONTROL_SOCKET_MODE};
use crate::pid1;
use crate::privileges;
use crate::reaper;
use crate::supervisor::{Context, Outcome, Supervisor};

/// How init runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Perform the PID-1 duties (mounts, NSM, heartbeat, pivot, loopback).
    pub pid1_duties: bool,
}

/// Why init could not start supervising.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A control listener could not be bound (fatal only when not PID 1).
    #[error(transparent)]
    Bind(#[from] transport::Error),
}

/// Runs init until it is told to stop; returns what to do next.
pub async fn run(
    config: Config,
    options: RunOptions,
    cancel: CancellationToken,
) -> Result<Outcome, RunError> {
    if let Err(err) = reaper::become_subreaper() {
        tracing::warn!(%err, "cannot become the subreaper of orphaned processes");
    }
    let ctx = if options.pid1_duties {
        pid1::prepare(&config).await
    } else {
        tracing::info!("PID-1 duties skipped (not PID 1, or --supervise-only): supervising only");
        Context {
            pid1: false,
            parent_cid: match config.heartbeat.cid {
                ParentCid::Fixed(cid) => Some(cid),
                ParentCid::Auto => None,
            },
            compat_cmd: None,
        }
    };
    // Device owners and modes (e.g. /dev/nsm for the nsm group only) are
    // set before any service starts; names come from the (new) root.
    if !config.devices.is_empty() {
        pid1::report(
            "devices",
            privileges::apply_device_rules(&config.devices, &config.accounts),
        );
    }
    if let Err(err) = std::fs::create_dir_all(&config.log_dir) {
        tracing::error!(
            "cannot create log directory {}: {err}",
            config.log_dir.display()
        );
    }
    // As PID 1 nothing may stop supervision; elsewhere a bad address is an error.
    let lenient = options.pid1_duties || std::process::id() == 1;
    let mut listeners = Vec::new();
    for control in &config.control {
        match bind(control).await {
            Ok(listener) => listeners.push((listener, control.access)),
            Err(err) if lenient => tracing::error!("control socket disabled: {err}"),
            Err(err) => return Err(err.into()),
        }
    }
    let channel = match &config.control_channel {
        Some(settings) => attested_channel(settings).await,
        None => None,
    };
    let config = Arc::new(config);
    let (supervisor, handle) = Supervisor::new(config, ctx);
    let servers = CancellationToken::new();
    let tracker = TaskTracker::new();
    for (listener, access) in listeners {
        let channel = match listener.local_addr() {
            Address::Unix(_) => None,
            _ => channel.clone(),
        };
        tracker.spawn(server::serve(
            listener,
            access,
            channel,
            handle.clone(),
            servers.clone(),
        ));
    }
    let outcome = supervisor.run(cancel).await;
    servers.cancel();
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(2), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("control connections still open at exit");
    }
    Ok(outcome)
}

/// The attested channel's server side for the control listeners; `None`
/// (logged) when it cannot be set up, so that init keeps supervising and
/// its listeners stay at their configured access.
async fn attested_channel(settings: &ControlChannel) -> Option<Arc<ServerConfig>> {
    match attested_channel::setup::server_config(
        &settings.authorized_keys,
        settings.nsm,
        &settings.state_dir,
        CONTROL_HANDSHAKE_TIMEOUT,
    )
    .await
    {
        Ok(config) => {
            tracing::info!(
                keys = %settings.authorized_keys.display(),
                "attested control channel ready: keys allowed to manage get full access"
            );
            Some(Arc::new(config))
        }
        Err(err) => {
            tracing::error!(
                keys = %settings.authorized_keys.display(),
                "attested control channel disabled: {err}"
            );
            None
        }
    }
}

async fn bind(control: &ControlListener) -> Result<Listener, transport::Error> {
    let addr = &control.address;
    if let Address::Unix(path) = addr
        && let Some(parent) = path.parent()
    {
        // A missing /run would otherwise fail the bind with a less clear error.
        let _ = std::fs::create_dir_all(parent);
    }
    Listener::bind_with(
        addr,
        &BindOptions {
            unix_mode: Some(CONTROL_SOCKET_MODE),
        },
    )
    .await
}
