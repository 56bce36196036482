//! The handle through which other tasks (the control server) reach the
//! supervisor, and the commands its queue carries.

use tokio::sync::{mpsc, oneshot};

use super::error::RequestError;
use crate::api::{Parsed, Request, Response};

/// What the supervisor's queue carries: requests and its own timers.
pub(super) enum Command {
    /// A request and where its answer goes.
    Request(Request, oneshot::Sender<Response>),
    /// A restart's delay ended (ignored unless `generation` is current).
    RestartDue { name: String, generation: u64 },
    /// A stop's grace period ended (ignored unless `generation` is current).
    KillDue { name: String, generation: u64 },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Request(r, _) => write!(f, "Request({r:?})"),
            Command::RestartDue { name, .. } => write!(f, "RestartDue({name})"),
            Command::KillDue { name, .. } => write!(f, "KillDue({name})"),
        }
    }
}

/// Sends requests to the supervisor; cheap to clone.
#[derive(Clone, Debug)]
pub struct SupervisorHandle {
    tx: mpsc::Sender<Command>,
}

impl SupervisorHandle {
    pub(super) fn new(tx: mpsc::Sender<Command>) -> Self {
        Self { tx }
    }

    /// Sends a request and waits for the answer.
    pub async fn call(&self, request: Request) -> Response {
        let shutting_down = || Response::error(RequestError::ShuttingDown.to_string());
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Request(request, tx)).await.is_err() {
            return shutting_down();
        }
        rx.await.unwrap_or_else(|_| shutting_down())
    }

    /// Answers a parsed wire request (unknown tags get an error).
    pub async fn answer(&self, parsed: Parsed) -> Response {
        match parsed {
            Parsed::Known(request) => self.call(request).await,
            Parsed::Unknown(unknown) => Response::error(unknown.message()),
        }
    }
}
