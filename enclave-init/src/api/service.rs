//! Per-service records of the control protocol.

use serde::{Deserialize, Serialize};

use crate::accounts::Credentials;
use crate::api::health::{Health, HealthInfo};
use crate::service::{Dependencies, RestartPolicy};

/// How the last run of a service ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit status as a shell reports it (128 + signal when killed).
    pub code: i32,
    /// The killing signal, if any.
    pub signal: Option<i32>,
    /// Whether the kernel's OOM killer did it.
    pub oom_killed: bool,
    /// In words: `exited with status 1`, `killed by SIGKILL (status 137)`.
    pub description: String,
}

/// One line of `initctl list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// Service name.
    pub name: String,
    /// Enabled at boot.
    pub enabled: bool,
    /// Running now.
    pub active: bool,
    /// `running`, `stopping`, `restarting`, `exited`, `failed`, `blocked` or `inactive`.
    pub state: String,
    /// Restart policy.
    pub restart_policy: RestartPolicy,
    /// Restarts so far.
    pub restart_count: u32,
    /// Process id when running.
    pub pid: Option<i32>,
    /// Its health (`none` without a health check, and from an init that predates them).
    #[serde(default)]
    pub health: Health,
}

/// `initctl status NAME`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Service name.
    pub name: String,
    /// Enabled at boot.
    pub enabled: bool,
    /// Running now.
    pub active: bool,
    /// See [`ServiceSummary::state`].
    pub state: String,
    /// Process id when running.
    pub pid: Option<i32>,
    /// Seconds since the running process started.
    pub running_secs: Option<u64>,
    /// Restart policy.
    pub restart_policy: RestartPolicy,
    /// Restarts so far.
    pub restart_count: u32,
    /// `RestartSec`, in seconds.
    pub restart_sec: f64,
    /// Milliseconds until the pending restart, if one is pending.
    pub restart_in_ms: Option<u64>,
    /// Last exit status (128 + signal when killed).
    pub exit_status: Option<i32>,
    /// Last exit in detail.
    pub last_exit: Option<ExitInfo>,
    /// `ExecStart`.
    pub exec_start: String,
    /// `WorkingDirectory`.
    pub working_directory: Option<String>,
    /// Dependencies.
    pub dependencies: Dependencies,
    /// Why it is not running when it should be (failed start, blocked by a dependency, cycle).
    pub note: Option<String>,
    /// Its log file.
    pub log_file: String,
    /// Resident memory of its main process, when running.
    pub rss_bytes: Option<u64>,
    /// Output lines lost because its log could not be written (disk full).
    pub log_lines_lost: u64,
    /// `User` as written (a name or a number); `None`: init's own user.
    #[serde(default)]
    pub user: Option<String>,
    /// `Group` as written; `None`: the user's primary group.
    #[serde(default)]
    pub group: Option<String>,
    /// `SupplementaryGroups` as written.
    #[serde(default)]
    pub supplementary_groups: Vec<String>,
    /// Whom the running (or last) process ran as, resolved when it started;
    /// `None` when it runs as init does, or has not started yet.
    #[serde(default)]
    pub run_as: Option<Credentials>,
    /// Its state directories, as absolute paths.
    #[serde(default)]
    pub state_directories: Vec<String>,
    /// Its health check and what it found; `None` without one (or from an
    /// init that predates health checks).
    #[serde(default)]
    pub health: Option<HealthInfo>,
}
