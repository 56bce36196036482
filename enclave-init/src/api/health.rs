//! Health records of the control protocol (`initctl status` and `list`).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ServiceInfo, ServiceSummary};

    #[test]
    fn records_from_an_init_without_health_checks_still_parse() {
        let summary: ServiceSummary = serde_json::from_str(
            r#"{"name":"web","enabled":true,"active":true,"state":"running",
                "restart_policy":"always","restart_count":0,"pid":7}"#,
        )
        .unwrap();
        assert_eq!(summary.health, Health::None);
        let info: ServiceInfo = serde_json::from_str(
            r#"{"name":"web","enabled":true,"active":false,"state":"inactive","pid":null,
                "running_secs":null,"restart_policy":"no","restart_count":0,"restart_sec":5.0,
                "restart_in_ms":null,"exit_status":null,"last_exit":null,"exec_start":"x",
                "working_directory":null,"dependencies":{"before":[],"after":[],"requires":[],
                "required_by":[]},"note":null,"log_file":"/log/web.log","rss_bytes":null,
                "log_lines_lost":0}"#,
        )
        .unwrap();
        assert_eq!(info.health, None);
    }

    #[test]
    fn the_wire_spelling() {
        assert_eq!(
            serde_json::to_string(&Health::Unhealthy).unwrap(),
            r#""unhealthy""#
        );
        let partial: HealthInfo =
            serde_json::from_str(r#"{"check":"GET http://127.0.0.1/","health":"starting"}"#)
                .unwrap();
        assert_eq!(partial.health, Health::Starting);
        assert_eq!(partial.last_probe, None);
    }
}
