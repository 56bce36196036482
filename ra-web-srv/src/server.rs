//! Start-up and the listeners.
//!
//! [`start`] sets everything up in order (state directory, NSM, VRF key,
//! TLS identity, roots, the pinned root for the verification endpoints),
//! binds the HTTPS and HTTP listeners (any `transport` address), and
//! serves until [`Running::stop`]. Each connection runs in its own task:
//! the TLS handshake (under a time limit) and then HTTP/1.1 or HTTP/2 via
//! hyper. The listeners share [`transport::serve()`]: connections are
//! limited per listener (more wait in the backlog); at shutdown, open
//! connections get [`SHUTDOWN_GRACE`] to finish and are then cut, and
//! background jobs get the grace period too.

use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ra_verify_core::pcrs::Profile;
use ra_verify_core::roots::{Root, RootError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transport::{Address, Listener};

use crate::app::{App, BusState, Inner};
use crate::attest::Attester;
use crate::config::Config;
use crate::defs::{MAX_BODY, MAX_CONNECTIONS, SHUTDOWN_GRACE};
use crate::dev_pki::DevPkiError;
use crate::files::{self, FileError};
use crate::ingress::{self, IngressInfo};
use crate::listen::{listener_config, serve_listener, tls_handshake};
use crate::nsm::{Nsm, NsmError, NsmKind};
use crate::paths::Roots;
use crate::routes;
use crate::store::Store;
use crate::tls::{TlsError, TlsIdentity};
use crate::vrf_key::{self, VrfKeyError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The state directory is not usable.
    #[error(transparent)]
    StateDir(#[from] FileError),
    /// The NSM could not be opened.
    #[error(transparent)]
    Nsm(#[from] NsmError),
    /// The development PKI is damaged.
    #[error(transparent)]
    DevPki(#[from] DevPkiError),
    /// The VRF key could not be loaded or made.
    #[error(transparent)]
    VrfKey(#[from] VrfKeyError),
    /// The TLS identity could not be loaded or made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A `--root-dir` is not a directory.
    #[error("{0}")]
    Roots(std::io::Error),
    /// The pinned root for the verification endpoints does not load.
    #[error("--trust-root: {0}")]
    TrustRoot(#[from] RootError),
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] transport::Error),
    /// A TLS ingress listener could not be bound.
    #[error("TLS ingress {name:?}: {source}")]
    IngressBind {
        /// The ingress's name.
        name: String,
        /// Why.
        source: transport::Error,
    },
}

/// A started server.
pub struct Running {
    app: App,
    https: Address,
    http: Option<Address>,
    ingresses: Vec<IngressInfo>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Running {
    /// The HTTPS listener's address (with the port the kernel chose).
    pub fn https_addr(&self) -> &Address {
        &self.https
    }

    /// The HTTP redirect listener's address.
    pub fn http_addr(&self) -> Option<&Address> {
        self.http.as_ref()
    }

    /// The TLS ingresses, with their bound listen addresses.
    pub fn ingresses(&self) -> &[IngressInfo] {
        &self.ingresses
    }

    /// The shared state (tests look inside).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server is asked to stop, then stops it.
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.stop().await;
    }

    /// Stops accepting, lets connections and jobs finish (for at most the
    /// grace period each), and returns.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE * 2, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("tasks still running after the grace period; leaving them");
        }
        self.app.jobs.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.app.jobs.wait())
            .await
            .is_err()
        {
            tracing::warn!("background jobs still running after the grace period");
        }
    }
}

/// Sets up everything `config` asks for and starts serving.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    files::ensure_dir(&config.state_dir)?;
    let nsm = Nsm::open(config.nsm, &config.state_dir, &config.dev_pcrs)?;
    if nsm.kind() == NsmKind::Development {
        tracing::warn!(
            "DEVELOPMENT NSM: this is a SIMULATION, not a Nitro enclave. Documents are signed by the \
             development root {} that this server made itself; they prove nothing about where they \
             were made, and every response says \"nsm\":\"development\"",
            nsm.dev_root_pem()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    if config.image_profile == Some(Profile::Debug) {
        tracing::warn!(
            "DEBUG IMAGE: the host can run commands as root in this enclave and read this \
             server's keys; its attestations prove nothing against the host"
        );
    }
    let vrf = vrf_key::load_or_create(&config.state_dir, config.vrf_suite)?;
    let tls = TlsIdentity::load(&config.tls)?;
    let roots = Roots::new(&config.root_dirs).map_err(ServerError::Roots)?;
    if roots.dirs().is_empty() {
        tracing::warn!(
            "no --root-dir: POST /generate refuses every path (documents still come from fs_hashes)"
        );
    }
    let mut ingresses = Vec::with_capacity(config.tls_ingress.len());
    for spec in &config.tls_ingress {
        let name = spec.name.clone();
        let bound = ingress::Bound::bind(spec.clone())
            .await
            .map_err(|source| ServerError::IngressBind { name, source })?;
        ingresses.push(bound);
    }
    let ingress_infos: Vec<IngressInfo> = ingresses.iter().map(ingress::Bound::info).collect();
    let trust_root = match (&config.trust_root, nsm.dev_root_pem()) {
        (Some(path), _) => Root::load(path)?,
        (None, Some(dev_root)) => Root::load(dev_root)?,
        (None, None) => Root::aws_nitro(),
    };
    let attester = Attester::new(nsm, vrf, config.hash_concurrency);
    let app = App::new(Inner {
        attester,
        store: Arc::new(if config.nats_url.is_some() {
            Store::mirrored()
        } else {
            Store::new()
        }),
        roots,
        tls_spki_sha3_512: tls.spki_sha3_512,
        tls_cert_pem: crate::views::pem(&tls.cert_der),
        trust_root,
        image_profile: config.image_profile,
        ingresses: ingress_infos.clone(),
        jobs: TaskTracker::new(),
        bus: RwLock::new(if config.nats_url.is_some() {
            BusState::Starting
        } else {
            BusState::Disabled
        }),
    });

    let https = Listener::bind(&config.https_listen).await?;
    let https_addr = https.local_addr().clone();
    let http = match &config.http_listen {
        Some(addr) => Some(Listener::bind(addr).await?),
        None => None,
    };
    let http_addr = http.as_ref().map(|l| l.local_addr().clone());

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let router =
        routes::router(routes::all_routes(), app.clone()).layer(DefaultBodyLimit::max(MAX_BODY));
    let acceptor = TlsAcceptor::from(Arc::clone(&tls.server_config));
    tasks.spawn(serve(https, router, Some(acceptor), shutdown.clone()));
    if let Some(http) = http {
        let https_port = match &https_addr {
            Address::Tcp { port, .. } => *port,
            _ => 443,
        };
        tasks.spawn(serve(
            http,
            redirect_router(https_port),
            None,
            shutdown.clone(),
        ));
    }
    if !ingresses.is_empty() {
        let relay_acceptor = TlsAcceptor::from(tls.relay_config());
        for bound in ingresses {
            tasks.spawn(ingress::serve(
                bound,
                relay_acceptor.clone(),
                shutdown.clone(),
            ));
        }
    }
    if let Some(url) = &config.nats_url {
        tasks.spawn(crate::sync::run(app.clone(), url.clone(), shutdown.clone()));
    }
    tracing::info!(https = %https_addr, http = ?http_addr.as_ref().map(|a| a.to_string()), nsm = app.nsm_kind().name(), "serving");
    Ok(Running {
        app,
        https: https_addr,
        http: http_addr,
        ingresses: ingress_infos,
        shutdown,
        tasks,
    })
}

/// Starts the server and serves until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServerError> {
    let running = start(config).await?;
    let token = running.shutdown_token();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        token.cancel();
    });
    running.wait().await;
    Ok(())
}

/// Accepts connections on `listener` until `shutdown`, serving `router`
/// over TLS when `tls` is given. At shutdown each connection finishes its
/// request in flight and closes (HTTP/1.1 keep-alive ends, HTTP/2 sends
/// GOAWAY), within [`SHUTDOWN_GRACE`].
async fn serve(
    listener: Listener,
    router: Router,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let config = listener_config(MAX_CONNECTIONS);
    let closing = shutdown.clone();
    serve_listener(listener, &config, shutdown, move |stream, peer| {
        let router = router.clone();
        let tls = tls.clone();
        let closing = closing.clone();
        async move {
            match tls {
                Some(acceptor) => {
                    if let Some(stream) = tls_handshake(&acceptor, stream, &peer).await {
                        serve_connection(stream, router, &closing).await;
                    }
                }
                None => serve_connection(stream, router, &closing).await,
            }
        }
    })
    .await;
}

async fn serve_connection<I>(io: I, router: Router, shutdown: &CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(router));
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Sends every plain-HTTP request to the same place over HTTPS (308).
fn redirect_router(https_port: u16) -> Router {
    Router::new().fallback(move |headers: HeaderMap, uri: Uri| async move {
        redirect(&headers, &uri, https_port)
    })
}

fn redirect(headers: &HeaderMap, uri: &Uri, https_port: u16) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
        .map_or_else(|| "127.0.0.1".to_string(), |a| a.host().to_string());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}
