//! What a service's health check found, as the control protocol carries it
//! (`initctl status` and `list`; [`crate::api`] re-exports these records).
//! Every field is new to the protocol and defaults when absent, so clients
//! and servers from before health checks keep working with later ones.

use serde::{Deserialize, Serialize};

/// A service's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// No health check.
    #[default]
    None,
    /// Checked, but no probe has succeeded since the start, and the
    /// failures so far have not reached the threshold (or fell in the start period).
    Starting,
    /// The last probe succeeded.
    Healthy,
    /// The threshold of consecutive failures was reached.
    Unhealthy,
}

impl Health {
    /// `none`, `starting`, `healthy` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::None => "none",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Whether it found the service healthy.
    pub healthy: bool,
    /// In words: `HTTP 200 OK`, `timed out after 2s (killed)`, `exit status 1: ...`.
    pub result: String,
    /// When it ended, UTC (`2026-01-31T12:34:56.789Z`).
    pub at: String,
    /// Milliseconds since it ended.
    pub age_ms: u64,
    /// Milliseconds it took.
    pub took_ms: u64,
}

/// The health check of a service and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthInfo {
    /// The check in words: probe, interval, timeout, threshold, start period.
    pub check: String,
    /// The health now.
    pub health: Health,
    /// Whether the current run is in its start period (failures do not count).
    #[serde(default)]
    pub in_start_period: bool,
    /// Consecutive failed probes of the current run.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// `HealthCheckRetries`: consecutive failures that make it unhealthy.
    #[serde(default)]
    pub retries: u32,
    /// Times it became unhealthy since init started.
    #[serde(default)]
    pub times_unhealthy: u32,
    /// Restarts because it was unhealthy, since init started.
    #[serde(default)]
    pub unhealthy_restarts: u32,
    /// The last probe, if one ran.
    #[serde(default)]
    pub last_probe: Option<ProbeReport>,
}
