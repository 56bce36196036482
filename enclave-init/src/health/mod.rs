//! Health checks of running services, in the spirit of systemd's watchdog
//! and Docker's and Kubernetes' probes: a service can be alive (its process
//! exists) and still stuck; a probe notices, and the supervisor acts.
//!
//! - [`spec`]: the `HealthCheck*` keys of a service file, validated.
//! - [`target`]: the loopback addresses an HTTP or TCP probe may reach.
//! - [`probe`]: one HTTP(S) GET or TCP connect, bounded by the timeout.
//! - [`tls`]: TLS to loopback without certificate verification.
//! - [`tracker`]: consecutive failures, grace period, the health state.
//! - [`report`]: the health state and the last probe, as the control
//!   protocol carries them.
//! - [`monitor`]: the task that probes one run of one service; command
//!   probes are spawned and reaped by the supervisor, which owns processes.

pub mod monitor;
pub mod probe;
pub mod report;
pub mod spec;
pub mod target;
pub mod tls;
pub mod tracker;

pub use monitor::{ExecSpawned, HealthEvent, Monitor};
pub use probe::ProbeOutcome;
pub use report::{Health, HealthInfo, ProbeReport};
pub use spec::{HealthCheck, Probe, RawHealthCheck};
pub use tracker::{Tracker, Verdict};
