//! Why a request, a start or a health probe failed. The control server
//! sends the [`Display`](std::fmt::Display) text to the client.

use crate::accounts::AccountError;
use crate::api::Response;
use crate::privileges::PrivilegeError;
use crate::service::ServiceError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Init is stopping every service and answers nothing else.
    #[error("init is shutting down")]
    ShuttingDown,
    /// The name is not a valid service name.
    #[error(transparent)]
    InvalidName(ServiceError),
    /// No such service.
    #[error("service '{0}' not found")]
    NotFound(String),
    /// Its file exists but could not be loaded.
    #[error("service '{name}' is not loaded: {error}")]
    NotLoaded {
        /// The service.
        name: String,
        /// Why its file was refused.
        error: String,
    },
    /// It is stopping and cannot start before it stopped.
    #[error("service '{0}' is stopping")]
    Stopping(String),
    /// Its file is gone and it is stopping to be forgotten.
    #[error("service '{0}' is being removed: its file is gone")]
    Removing(String),
    /// A restart is already waiting for it to stop.
    #[error("service '{0}' is already restarting")]
    AlreadyRestarting(String),
    /// Its requirements lead back to it.
    #[error("service '{0}' requires itself through a cycle")]
    Cycle(String),
    /// A required service is not up.
    #[error("service '{name}' not started: requires '{required}', which {reason}")]
    Blocked {
        /// The service.
        name: String,
        /// The service it requires.
        required: String,
        /// What is wrong with the required service.
        reason: Unmet,
    },
    /// Its process could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Its logs could not be cleared.
    #[error("cannot clear logs of '{name}': {source}")]
    ClearLogs {
        /// The service.
        name: String,
        /// The failure.
        source: std::io::Error,
    },
    /// Its logs could not be read.
    #[error("cannot read logs of '{name}': {source}")]
    ReadLogs {
        /// The service.
        name: String,
        /// The failure.
        source: std::io::Error,
    },
    /// Its file could not be enabled (or the enabled file not loaded).
    #[error("cannot enable '{name}': {source}")]
    Enable {
        /// The service.
        name: String,
        /// The failure.
        source: ServiceError,
    },
    /// Its file could not be disabled.
    #[error("cannot disable '{name}': {source}")]
    Disable {
        /// The service.
        name: String,
        /// The failure.
        source: ServiceError,
    },
    /// Enabled, but the start that followed failed.
    #[error("Service '{name}' enabled, but {source}")]
    EnabledNotStarted {
        /// The service.
        name: String,
        /// Why it did not start.
        source: Box<RequestError>,
    },
    /// A health probe was asked for a run that is over.
    #[error("service '{0}' is no longer running")]
    NoLongerRunning(String),
    /// A command probe could not be started.
    #[error("cannot start the health check {program:?}: {source}")]
    Probe {
        /// The probe's program.
        program: String,
        /// The failure.
        source: std::io::Error,
    },
}

impl From<RequestError> for Response {
    fn from(err: RequestError) -> Self {
        Response::error(err.to_string())
    }
}

/// Why a service's process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Whom it runs as cannot be resolved: a mistake a restart won't fix.
    #[error("cannot start service '{name}': {source}")]
    Account {
        /// The service.
        name: String,
        /// The failure.
        source: AccountError,
    },
    /// A state directory could not be prepared.
    #[error("cannot start service '{name}': {source}")]
    StateDirectory {
        /// The service.
        name: String,
        /// The failure.
        source: PrivilegeError,
    },
    /// The process could not be spawned.
    #[error("cannot start service '{name}': {program:?} in {dir}{who}: {source}")]
    Spawn {
        /// The service.
        name: String,
        /// Its program.
        program: String,
        /// Its working directory.
        dir: String,
        /// ` as user U group G`, or nothing.
        who: String,
        /// The failure.
        source: std::io::Error,
    },
}

impl StartError {
    /// Whether the restart policy applies (a later attempt may succeed).
    pub fn retry(&self) -> bool {
        !matches!(self, StartError::Account { .. })
    }
}

/// What keeps a required service from counting as up.
#[derive(Debug, thiserror::Error)]
pub enum Unmet {
    /// It does not exist.
    #[error("does not exist")]
    Missing,
    /// It was pulled in and did not start.
    #[error("failed to start ({0})")]
    NotStarted(Box<RequestError>),
    /// It failed (or exited unsuccessfully), with the reason.
    #[error("failed ({0})")]
    Failed(String),
    /// It failed, reason unknown.
    #[error("failed")]
    FailedSilently,
    /// It is disabled.
    #[error("is disabled")]
    Disabled,
    /// It is not running.
    #[error("is not running")]
    NotRunning,
}
