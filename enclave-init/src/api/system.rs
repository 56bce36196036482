//! System-wide records of the control protocol.

use serde::{Deserialize, Serialize};

/// A service file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenFile {
    /// The file.
    pub file: String,
    /// Why.
    pub error: String,
}

/// Memory of the machine, from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemAvailable`: what can still be allocated.
    pub available_bytes: u64,
    /// `MemFree`.
    pub free_bytes: u64,
    /// `MemTotal - MemAvailable`.
    pub used_bytes: u64,
}

impl MemoryInfo {
    /// Parses `/proc/meminfo` text.
    pub fn from_meminfo(text: &str) -> Option<Self> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib * 1024)
        };
        let total_bytes = field("MemTotal")?;
        let free_bytes = field("MemFree")?;
        let available_bytes = field("MemAvailable").unwrap_or(free_bytes);
        Some(Self {
            total_bytes,
            available_bytes,
            free_bytes,
            used_bytes: total_bytes.saturating_sub(available_bytes),
        })
    }

    /// Reads `/proc/meminfo`.
    pub fn read() -> Option<Self> {
        Self::from_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
    }
}

/// `initctl system-status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// Version of init.
    pub version: String,
    /// Seconds since init started.
    pub uptime_secs: u64,
    /// Whether init runs as PID 1 with its PID-1 duties.
    pub pid1: bool,
    /// Services loaded.
    pub services_total: usize,
    /// Of which enabled.
    pub services_enabled: usize,
    /// Of which running.
    pub services_active: usize,
    /// Service directory.
    pub service_dir: String,
    /// Log directory.
    pub log_dir: String,
    /// Where the configuration came from.
    pub config_source: String,
    /// Machine memory.
    pub memory: Option<MemoryInfo>,
    /// The kernel's OOM kills since boot (`/proc/vmstat`).
    pub kernel_oom_kills: Option<u64>,
    /// Service processes killed by the OOM killer under this init.
    pub services_oom_killed: u64,
    /// Orphaned processes reaped (not services).
    pub orphans_reaped: u64,
    /// Lines of init's console output dropped because nobody read the console.
    pub console_lines_dropped: u64,
    /// Start order of the last (re)load.
    pub start_order: Vec<String>,
    /// Dependency cycles, as `a -> b -> a`.
    pub dependency_cycles: Vec<String>,
    /// Service files not loaded.
    pub broken_files: Vec<BrokenFile>,
    /// The parent CID handed to services, when known.
    pub parent_cid: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        let m = MemoryInfo::from_meminfo(
            "MemTotal:       16000 kB\nMemFree:         4000 kB\nMemAvailable:    6000 kB\n",
        )
        .unwrap();
        assert_eq!(m.total_bytes, 16000 * 1024);
        assert_eq!(m.used_bytes, 10000 * 1024);
        assert!(MemoryInfo::from_meminfo("garbage").is_none());
    }
}
