//! `pipeline listen`: the accept loop.
//!
//! The loop is [`transport::serve()`]. Each connection runs in its own task
//! ([`session`]), so a slow or dead client holds only its own connection.
//! At most `max_clients` run at once; one more is told the server is busy
//! (a plaintext client) or dropped (on the attested channel), with at most
//! one warning per interval. On shutdown the loop stops accepting, open
//! sessions get [`SHUTDOWN_GRACE`] to finish, then they are cancelled
//! (their commands killed, their temporary files removed; a session still
//! running 5 s later is dropped).

pub mod exec;
pub mod session;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use transport::{Handler, Listener, Peer, ServeConfig, Stream, WhenFull};

use crate::defs::{DEFAULT_MAX_CLIENTS, IDLE_TIMEOUT, SHUTDOWN_GRACE};
use crate::error::Error;
use crate::policy::Policy;

/// Busy answers sent at most at once; beyond, extra clients are dropped.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// Time a session cancelled at the end of the grace period gets to tell its
/// client and clean up before it is dropped (which kills its command too).
const ABORT_WAIT: Duration = Duration::from_secs(5);

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
    let serve_config = ServeConfig {
        max_connections: config.max_clients,
        // A busy answer needs a plaintext greeting; an attested client
        // would first need a handshake, so it is dropped instead.
        when_full: match config.channel {
            Some(_) => WhenFull::Close,
            None => WhenFull::Refuse {
                max_in_flight: MAX_REFUSALS_IN_FLIGHT,
            },
        },
        grace: config.shutdown_grace,
        abort_wait: ABORT_WAIT,
        ..ServeConfig::default()
    };
    let stop = CancellationToken::new();
    let serving = transport::serve(listener, &serve_config, stop.clone(), Sessions { config });
    tokio::pin!(serving, shutdown);
    let served = tokio::select! {
        served = &mut serving => served,
        () = &mut shutdown => {
            tracing::info!("shutting down");
            stop.cancel();
            serving.await
        }
    };
    match served {
        Ok(_) => Ok(()),
        Err(err) => Err(transport::Error::Bind {
            addr: err.listener,
            source: err.source,
        }
        .into()),
    }
}

/// Runs a [`session`] on each client, or tells it the server is busy.
struct Sessions {
    config: Arc<ServerConfig>,
}

impl Handler for Sessions {
    fn serve(
        &mut self,
        stream: Stream,
        peer: Peer,
        abort: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let config = Arc::clone(&self.config);
        async move { session::serve(stream, peer, &config, abort).await }
    }

    fn refuse(&mut self, stream: Stream, _peer: Peer) -> impl Future<Output = ()> + Send + 'static {
        session::refuse_busy(stream)
    }
}
