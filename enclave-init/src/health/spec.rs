//! The health check of a service file: one probe (`HealthCheckExec`,
//! `HealthCheckHttp` or `HealthCheckTcp`) and its timing
//! (`HealthCheckIntervalSec`, `HealthCheckTimeoutSec`, `HealthCheckRetries`,
//! `HealthCheckStartPeriodSec`), checked into a [`HealthCheck`].

use std::time::Duration;

use crate::command::split_command;
use crate::health::target::{HttpTarget, TcpTarget};

/// `HealthCheckIntervalSec` when not set.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Longest `HealthCheckTimeoutSec` when not set (never more than the interval).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// `HealthCheckRetries` when not set.
pub const DEFAULT_RETRIES: u32 = 3;
/// Shortest interval and timeout: a probe cannot turn PID 1 into a busy loop.
pub const MIN_PERIOD_SEC: f64 = 0.1;
/// Longest interval, timeout or start period (one day).
pub const MAX_PERIOD_SEC: f64 = 86_400.0;
/// Most consecutive failures that may be asked for before acting.
pub const MAX_RETRIES: i64 = 1000;

/// What is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `HealthCheckExec`: a command run as the service's user and group, in
    /// its directory and environment; exit status 0 is healthy.
    Exec {
        /// The command line as written.
        command: String,
        /// Split into program and arguments.
        argv: Vec<String>,
    },
    /// `HealthCheckHttp`: a GET on loopback; a 2xx status is healthy.
    Http(HttpTarget),
    /// `HealthCheckTcp`: a TCP connect on loopback; an accepted connection is healthy.
    Tcp(TcpTarget),
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Exec { command, .. } => write!(f, "exec {command}"),
            Probe::Http(t) => write!(f, "GET {}", t.url),
            Probe::Tcp(t) => write!(f, "TCP connect {}", t.text),
        }
    }
}

/// A validated health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The probe.
    pub probe: Probe,
    /// Time between the starts of two probes (the first one comes one interval after the start).
    pub interval: Duration,
    /// Time a probe may take; a command still running then is killed.
    pub timeout: Duration,
    /// Consecutive failures that make the service unhealthy.
    pub retries: u32,
    /// Grace after each start: failures do not count until it ends or a probe succeeds.
    pub start_period: Duration,
}

impl std::fmt::Display for HealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} every {}, timeout {}, unhealthy after {} failure(s)",
            self.probe,
            secs(self.interval),
            secs(self.timeout),
            self.retries
        )?;
        if !self.start_period.is_zero() {
            write!(f, ", start period {}", secs(self.start_period))?;
        }
        Ok(())
    }
}

/// `5s`, `0.5s`.
pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s}s")
    }
}

/// The `HealthCheck*` keys as read from a service file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawHealthCheck {
    /// `HealthCheckExec`.
    pub exec: Option<String>,
    /// `HealthCheckHttp`.
    pub http: Option<String>,
    /// `HealthCheckTcp`.
    pub tcp: Option<String>,
    /// `HealthCheckIntervalSec`.
    pub interval_sec: Option<f64>,
    /// `HealthCheckTimeoutSec`.
    pub timeout_sec: Option<f64>,
    /// `HealthCheckRetries`.
    pub retries: Option<i64>,
    /// `HealthCheckStartPeriodSec`.
    pub start_period_sec: Option<f64>,
}

/// A key at fault and what is wrong with it.
pub type KeyError = (&'static str, String);

fn period(key: &'static str, value: f64, min: f64) -> Result<Duration, KeyError> {
    if !value.is_finite() || value < min || value > MAX_PERIOD_SEC {
        let low = if min > 0.0 {
            format!("at least {min}")
        } else {
            "0 or more".to_owned()
        };
        return Err((
            key,
            format!("{value} is out of range: seconds, {low} and at most {MAX_PERIOD_SEC}"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

impl RawHealthCheck {
    /// Checks the keys: exactly one probe when any key is set, periods in
    /// range, a timeout no longer than the interval. `None` when no key is set.
    pub fn validate(self) -> Result<Option<HealthCheck>, KeyError> {
        let probes = [self.exec.is_some(), self.http.is_some(), self.tcp.is_some()];
        let tuning = [
            ("HealthCheckIntervalSec", self.interval_sec.is_some()),
            ("HealthCheckTimeoutSec", self.timeout_sec.is_some()),
            ("HealthCheckRetries", self.retries.is_some()),
            ("HealthCheckStartPeriodSec", self.start_period_sec.is_some()),
        ];
        match probes.iter().filter(|p| **p).count() {
            0 => {
                return match tuning.iter().find(|(_, set)| *set) {
                    Some((key, _)) => Err((
                        key,
                        "needs a probe: HealthCheckExec, HealthCheckHttp or HealthCheckTcp".into(),
                    )),
                    None => Ok(None),
                };
            }
            1 => {}
            _ => {
                return Err((
                    "HealthCheckExec",
                    "only one of HealthCheckExec, HealthCheckHttp and HealthCheckTcp may be set"
                        .into(),
                ));
            }
        }
        let probe = if let Some(command) = self.exec {
            let argv = split_command(&command).map_err(|r| ("HealthCheckExec", r))?;
            if argv.is_empty() {
                return Err(("HealthCheckExec", "is empty".into()));
            }
            Probe::Exec { command, argv }
        } else if let Some(url) = self.http {
            Probe::Http(HttpTarget::parse(&url).map_err(|r| ("HealthCheckHttp", r))?)
        } else if let Some(addr) = self.tcp {
            Probe::Tcp(TcpTarget::parse(&addr).map_err(|r| ("HealthCheckTcp", r))?)
        } else {
            return Ok(None);
        };
        let interval = match self.interval_sec {
            Some(v) => period("HealthCheckIntervalSec", v, MIN_PERIOD_SEC)?,
            None => DEFAULT_INTERVAL,
        };
        let timeout = match self.timeout_sec {
            Some(v) => period("HealthCheckTimeoutSec", v, MIN_PERIOD_SEC)?,
            None => DEFAULT_TIMEOUT.min(interval),
        };
        if timeout > interval {
            return Err((
                "HealthCheckTimeoutSec",
                format!(
                    "{} is longer than HealthCheckIntervalSec ({}): a probe must end before the next one starts",
                    secs(timeout),
                    secs(interval)
                ),
            ));
        }
        let retries = match self.retries {
            Some(n) if (1..=MAX_RETRIES).contains(&n) => n as u32,
            Some(n) => {
                return Err((
                    "HealthCheckRetries",
                    format!(
                        "{n} is out of range: consecutive failures before acting, 1 to {MAX_RETRIES}"
                    ),
                ));
            }
            None => DEFAULT_RETRIES,
        };
        let start_period = match self.start_period_sec {
            Some(v) => period("HealthCheckStartPeriodSec", v, 0.0)?,
            None => Duration::ZERO,
        };
        Ok(Some(HealthCheck {
            probe,
            interval,
            timeout,
            retries,
            start_period,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> RawHealthCheck {
        RawHealthCheck {
            http: Some(url.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_display() {
        assert_eq!(RawHealthCheck::default().validate().unwrap(), None);
        let check = http("http://127.0.0.1:8222/healthz")
            .validate()
            .unwrap()
            .unwrap();
        assert_eq!(check.interval, DEFAULT_INTERVAL);
        assert_eq!(check.timeout, DEFAULT_TIMEOUT);
        assert_eq!(check.retries, DEFAULT_RETRIES);
        assert_eq!(check.start_period, Duration::ZERO);
        assert_eq!(
            check.to_string(),
            "GET http://127.0.0.1:8222/healthz every 10s, timeout 5s, unhealthy after 3 failure(s)"
        );
        let short = RawHealthCheck {
            interval_sec: Some(2.0),
            start_period_sec: Some(0.5),
            ..http("http://127.0.0.1/")
        }
        .validate()
        .unwrap()
        .unwrap();
        assert_eq!(
            short.timeout,
            Duration::from_secs(2),
            "capped by the interval"
        );
        assert!(short.to_string().ends_with("start period 0.5s"));
        let exec = RawHealthCheck {
            exec: Some("sh -c 'exit 0'".into()),
            ..Default::default()
        }
        .validate()
        .unwrap()
        .unwrap();
        assert_eq!(
            exec.probe,
            Probe::Exec {
                command: "sh -c 'exit 0'".into(),
                argv: vec!["sh".into(), "-c".into(), "exit 0".into()]
            }
        );
    }

    #[test]
    fn bad_checks_say_which_key_and_why() {
        let cases: Vec<(RawHealthCheck, &str, &str)> = vec![
            (
                RawHealthCheck {
                    interval_sec: Some(5.0),
                    ..Default::default()
                },
                "HealthCheckIntervalSec",
                "needs a probe",
            ),
            (
                RawHealthCheck {
                    tcp: Some("127.0.0.1:1".into()),
                    ..http("http://127.0.0.1/")
                },
                "HealthCheckExec",
                "only one",
            ),
            (
                RawHealthCheck {
                    interval_sec: Some(0.0),
                    ..http("http://127.0.0.1/")
                },
                "HealthCheckIntervalSec",
                "at least 0.1",
            ),
            (
                RawHealthCheck {
                    timeout_sec: Some(0.0),
                    ..http("http://127.0.0.1/")
                },
                "HealthCheckTimeoutSec",
                "at least 0.1",
            ),
            (
                RawHealthCheck {
                    interval_sec: Some(1.0),
                    timeout_sec: Some(2.0),
                    ..http("http://127.0.0.1/")
                },
                "HealthCheckTimeoutSec",
                "longer than HealthCheckIntervalSec",
            ),
            (
                RawHealthCheck {
                    retries: Some(0),
                    ..http("http://127.0.0.1/")
                },
                "HealthCheckRetries",
                "1 to 1000",
            ),
            (
                RawHealthCheck {
                    start_period_sec: Some(-1.0),
                    ..http("http://127.0.0.1/")
                },
                "HealthCheckStartPeriodSec",
                "0 or more",
            ),
            (
                RawHealthCheck {
                    interval_sec: Some(f64::NAN),
                    ..http("http://127.0.0.1/")
                },
                "HealthCheckIntervalSec",
                "out of range",
            ),
            (http("http://8.8.8.8/"), "HealthCheckHttp", "loopback"),
            (
                RawHealthCheck {
                    exec: Some("  ".into()),
                    ..Default::default()
                },
                "HealthCheckExec",
                "empty",
            ),
            (
                RawHealthCheck {
                    exec: Some("sh -c 'open".into()),
                    ..Default::default()
                },
                "HealthCheckExec",
                "unterminated",
            ),
            (
                RawHealthCheck {
                    tcp: Some("4222".into()),
                    ..Default::default()
                },
                "HealthCheckTcp",
                "HOST:PORT",
            ),
        ];
        for (raw, key, needle) in cases {
            let (k, reason) = raw.clone().validate().unwrap_err();
            assert_eq!(k, key, "{raw:?}: {reason}");
            assert!(reason.contains(needle), "{raw:?}: {reason}");
        }
    }
}
