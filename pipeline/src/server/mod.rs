//! `pipeline listen`: the accept loop.
//!
//! Each connection runs in its own task ([`session`]), so a slow or dead
//! client holds only its own connection. At most `max_clients` run at once;
//! one more is told the server is busy. On shutdown the loop stops
//! accepting, open sessions get [`SHUTDOWN_GRACE`] to finish, then they are
//! cancelled (their commands killed, their temporary files removed).

pub mod exec;
pub mod session;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transport::Listener;

use crate::defs::{DEFAULT_MAX_CLIENTS, IDLE_TIMEOUT, SHUTDOWN_GRACE};
use crate::error::Error;
use crate::policy::Policy;

/// Busy answers sent at most at once; beyond, extra clients are dropped.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// Server settings, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// What clients may do.
    pub policy: Policy,
    /// Clients served at once.
    pub max_clients: usize,
    /// Longest silence of a client in the middle of an operation.
    pub idle_timeout: Duration,
    /// Time open sessions get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// The attested channel every client must use (`--authorized-keys`);
    /// `None` serves plaintext (development, or `--insecure-plaintext`).
    pub channel: Option<Arc<attested_channel::ServerConfig>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            max_clients: DEFAULT_MAX_CLIENTS,
            idle_timeout: IDLE_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
            channel: None,
        }
    }
}

/// Serves `listener` until `shutdown` completes.
pub async fn run(
    listener: Listener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let config = Arc::new(config);
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let slots = Arc::new(Semaphore::new(config.max_clients.max(1)));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    tracing::info!(
        addr = %listener.local_addr(),
        exec = config.policy.exec_allowed(),
        roots = ?config.policy.roots(),
        max_clients = config.max_clients,
        channel = match &config.channel {
            Some(channel) => format!("attested ({} NSM, {} authorised keys)", channel.attester.kind(), channel.authorized.keys().len()),
            None => "INSECURE PLAINTEXT (no authentication, no encryption)".into(),
        },
        "pipeline listening"
    );
    if config.channel.is_none() {
        tracing::warn!(
            "this pipeline server is INSECURE: plaintext, unauthenticated; anyone who can reach it may do anything the policy allows"
        );
    }
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted.map_err(|source| transport::Error::Bind {
                addr: listener.local_addr().clone(),
                source,
            })?,
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let config = config.clone();
                let cancel = cancel.child_token();
                tracker.spawn(async move {
                    session::serve(stream, peer, &config, cancel).await;
                    drop(slot);
                });
            }
            Err(_) if config.channel.is_some() => {
                tracing::warn!(%peer, "client limit reached, dropping connection");
            }
            Err(_) => match refusals.clone().try_acquire_owned() {
                Ok(permit) => {
                    tracing::warn!(%peer, "client limit reached, refusing");
                    tracker.spawn(async move {
                        session::refuse_busy(stream).await;
                        drop(permit);
                    });
                }
                Err(_) => tracing::warn!(%peer, "client limit reached, dropping connection"),
            },
        }
    }
    tracing::info!(open = tracker.len(), "shutting down");
    tracker.close();
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.len(),
            "grace period over, cancelling open sessions"
        );
        cancel.cancel();
        tracker.wait().await;
    }
    Ok(())
}
