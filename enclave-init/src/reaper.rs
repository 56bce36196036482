//! Reaping children: subreaper registration, the `waitpid(WNOHANG)` loop run
//! on every SIGCHLD (signals coalesce, so one SIGCHLD may stand for many
//! deaths), exit statuses as shells report them (128+signal), and the
//! kernel's OOM-kill counter that tells an OOM kill from any other SIGKILL.

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// It called `exit(code)`.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

impl ExitStatus {
    /// The status as a shell reports it: the exit code, or 128 + signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(sig) => 128 + sig,
        }
    }

    /// Whether it exited with status 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The killing signal, if any.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Signaled(sig) => Some(sig),
            ExitStatus::Exited(_) => None,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with status {code}"),
            ExitStatus::Signaled(sig) => {
                write!(f, "killed by {} (status {})", signal_name(*sig), 128 + sig)
            }
        }
    }
}

/// The name of a signal number (`SIGKILL`), or `signal N`.
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// Makes this process the reaper of orphaned descendants (PID 1 is anyway).
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Collects every child that has ended, without blocking.
pub fn reap_all() -> Vec<(i32, ExitStatus)> {
    let mut reaped = Vec::new();
    while let Some(ended) = reap(Pid::from_raw(-1)) {
        reaped.extend(ended);
    }
    reaped
}

/// Collects those of `pids` that have ended, without blocking.
pub fn reap_pids(pids: impl IntoIterator<Item = i32>) -> Vec<(i32, ExitStatus)> {
    pids.into_iter()
        .filter_map(|pid| reap(Pid::from_raw(pid)).flatten())
        .collect()
}

/// One `waitpid(pid, WNOHANG)`: `Some(Some(ended))` for a child that
/// ended, `Some(None)` for a status to skip (stopped, continued), `None`
/// once there is nothing (more) to collect.
fn reap(pid: Pid) -> Option<Option<(i32, ExitStatus)>> {
    loop {
        return match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                Some(Some((pid.as_raw(), ExitStatus::Exited(code))))
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                Some(Some((pid.as_raw(), ExitStatus::Signaled(sig as i32))))
            }
            Ok(WaitStatus::StillAlive) => None,
            Ok(_) => Some(None),
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => None,
            Err(err) => {
                tracing::warn!(%err, "waitpid failed");
                None
            }
        };
    }
}

/// The kernel's count of OOM kills (`oom_kill` in `/proc/vmstat`), if known.
pub fn kernel_oom_kills() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/vmstat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// Resident memory of a process (`VmRSS` in `/proc/PID/status`), if readable.
pub fn process_rss(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// Tracks the kernel's OOM-kill counter to attribute SIGKILL deaths.
#[derive(Debug, Default)]
pub struct OomTracker {
    seen: Option<u64>,
}

impl OomTracker {
    /// Starts from the counter's current value.
    pub fn new() -> Self {
        Self {
            seen: kernel_oom_kills(),
        }
    }

    /// OOM kills the kernel made since the last call.
    pub fn new_kills(&mut self) -> u64 {
        let now = kernel_oom_kills();
        let delta = match (self.seen, now) {
            (Some(before), Some(now)) => now.saturating_sub(before),
            _ => 0,
        };
        if now.is_some() {
            self.seen = now;
        }
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert!(ExitStatus::Exited(0).success());
        assert!(!ExitStatus::Signaled(15).success());
        assert_eq!(
            ExitStatus::Signaled(9).to_string(),
            "killed by SIGKILL (status 137)"
        );
        assert_eq!(signal_name(200), "signal 200");
    }

    #[test]
    fn the_oom_counter_is_read() {
        if std::path::Path::new("/proc/vmstat").exists() {
            assert!(kernel_oom_kills().is_some());
        }
        let mut t = OomTracker::new();
        assert_eq!(t.new_kills(), 0);
        assert!(process_rss(std::process::id() as i32).is_some_and(|b| b > 0));
    }
}
