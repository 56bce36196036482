//! The state every request handler shares, and the background jobs of
//! `POST /generate`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::http::StatusCode;
use ra_verify_core::Sha3Digest;
use ra_verify_core::pcrs::Profile;
use ra_verify_core::roots::Root;
use schemars::JsonSchema;
use serde::Serialize;
use tokio_util::task::TaskTracker;

use crate::attest::Attester;
use crate::ingress::IngressInfo;
use crate::nsm::NsmKind;
use crate::paths::{PathError, Roots};
use crate::record::Source;
use crate::reply::Failure;
use crate::store::Store;

/// Where the NATS side is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BusState {
    /// No `--nats-url`: memory only.
    Disabled,
    /// Connecting, or loading the buckets.
    Starting,
    /// Watching `fs_hashes`; `caught_up` once every entry present at start is done.
    Watching {
        /// Every entry present when the watch began has been handled.
        caught_up: bool,
    },
    /// Lost; retrying.
    Down {
        /// Why.
        error: String,
    },
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct App(Arc<Inner>);

/// The parts of [`App`].
pub struct Inner {
    /// Makes hashes, proofs and documents.
    pub attester: Attester,
    /// Records and job states.
    pub store: Arc<Store>,
    /// Directories /generate may read.
    pub roots: Roots,
    /// SHA3-512 of the TLS certificate's DER SPKI.
    pub tls_spki_sha3_512: Sha3Digest,
    /// The TLS certificate (PEM).
    pub tls_cert_pem: String,
    /// The root the /verify_* endpoints pin.
    pub trust_root: Root,
    /// Background jobs (awaited at shutdown).
    pub jobs: TaskTracker,
    /// The NATS side.
    pub bus: RwLock<BusState>,
    /// The profile of the image this server runs in, if given.
    pub image_profile: Option<Profile>,
    /// The TLS ingresses (shown by `/health`).
    pub ingresses: Vec<IngressInfo>,
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    /// Wraps the parts.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Which NSM answers.
    pub fn nsm_kind(&self) -> NsmKind {
        self.attester.nsm().kind()
    }

    /// A failure with `status`.
    pub fn fail(&self, status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            nsm: self.nsm_kind(),
            status,
            message: message.into(),
        }
    }

    /// The failure for a refused path.
    pub fn path_failure(&self, error: PathError) -> Failure {
        let status = match &error {
            PathError::Invalid { .. } => StatusCode::BAD_REQUEST,
            PathError::Outside { .. } => StatusCode::FORBIDDEN,
            PathError::NotFound { .. } => StatusCode::NOT_FOUND,
        };
        self.fail(status, error.to_string())
    }

    /// The canonical path of `input` and its text, if the roots allow it.
    pub fn confine(&self, input: &str) -> Result<(PathBuf, String), Failure> {
        let path = self
            .roots
            .confine(input)
            .map_err(|e| self.path_failure(e))?;
        let key = path.to_string_lossy().into_owned();
        Ok((path, key))
    }

    /// The NATS side's state.
    pub fn bus_state(&self) -> BusState {
        self.bus.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the NATS side's state.
    pub fn set_bus_state(&self, state: BusState) {
        *self.bus.write().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// Starts hashing and attesting `path` (canonical, confined) in the
    /// background; false when a job for it is already running.
    pub fn start_generate(&self, path: PathBuf) -> bool {
        let Some(key) = path.to_str().map(str::to_string) else {
            return false;
        };
        if !self.store.begin(&key) {
            return false;
        }
        let app = self.clone();
        self.jobs.spawn(async move {
            let outcome = async {
                let digest = app.attester.hash(path).await?;
                app.attester.attest(&key, digest, Source::Generate).await
            }
            .await;
            if let Err(error) = &outcome {
                tracing::warn!(path = %key, %error, "generate failed");
            }
            app.store.finish(&key, outcome.map_err(|e| e.to_string()));
        });
        true
    }
}
