//! initctl's human-readable output, one function per response kind, as the
//! specification shows it.

use std::fmt::Write;

use crate::accounts::NamedId;
use crate::control::cmd::{ServiceInfo, ServiceSummary, SystemInfo};
use crate::reaper::signal_name;

/// `initctl list`.
pub fn service_list(services: &[ServiceSummary]) -> String {
    let mut out = format!(
        "{:<25} {:<10} {:<10} {:<15} {}\n{}\n",
        "NAME",
        "ENABLED",
        "ACTIVE",
        "RESTART",
        "RESTARTS",
        "-".repeat(75)
    );
    for s in services {
        let _ = writeln!(
            out,
            "{:<25} {:<10} {:<10} {:<15} {}",
            s.name,
            if s.enabled { "enabled" } else { "disabled" },
            if s.active { "active" } else { "inactive" },
            s.restart_policy.as_str(),
            s.restart_count
        );
    }
    out
}

fn status_line(s: &ServiceInfo) -> String {
    match s.state.as_str() {
        "running" => match s.running_secs {
            Some(secs) => format!("active (running) for {}", uptime(secs)),
            None => "active (running)".into(),
        },
        "stopping" => "deactivating (stopping)".into(),
        "restarting" => match s.restart_in_ms {
            Some(ms) => format!("activating (restart in {:.1}s)", ms as f64 / 1000.0),
            None => "activating (restart pending)".into(),
        },
        "exited" => "inactive (exited)".into(),
        "failed" => "failed".into(),
        "blocked" => "inactive (blocked by a dependency)".into(),
        _ => "inactive (dead)".into(),
    }
}

fn seconds(secs: f64) -> String {
    if secs.fract() == 0.0 {
        format!("{secs:.0}s")
    } else {
        format!("{secs}s")
    }
}

/// `initctl status NAME`.
pub fn service_status(s: &ServiceInfo) -> String {
    let mut out = format!("Service: {}\n", s.name);
    let _ = writeln!(out, "  Enabled: {}", if s.enabled { "yes" } else { "no" });
    let _ = writeln!(out, "  Status: {}", status_line(s));
    if let Some(pid) = s.pid {
        let _ = writeln!(out, "  PID: {pid}");
    }
    if let Some(rss) = s.rss_bytes {
        let _ = writeln!(out, "  Memory: {} resident", bytes(rss));
    }
    let _ = writeln!(out, "  Command: {}", s.exec_start);
    if let Some(dir) = &s.working_directory {
        let _ = writeln!(out, "  Working Directory: {dir}");
    }
    out.push_str(&run_as(s));
    for dir in &s.state_directories {
        let _ = writeln!(out, "  State Directory: {dir}");
    }
    let _ = writeln!(out, "  Restart Policy: {}", s.restart_policy.as_str());
    let _ = writeln!(out, "  Restart Delay: {}", seconds(s.restart_sec));
    let _ = writeln!(out, "  Restart Count: {}", s.restart_count);
    if let Some(exit) = &s.last_exit {
        let _ = writeln!(out, "  Last Exit Code: {}", exit.code);
        if let Some(sig) = exit.signal {
            let _ = writeln!(out, "  Last Exit Signal: {}", signal_name(sig));
        }
        if exit.oom_killed {
            let _ = writeln!(
                out,
                "  OOM: killed by the kernel's OOM killer (out of memory)"
            );
        }
    }
    let deps = &s.dependencies;
    for (label, list) in [
        ("After", &deps.after),
        ("Requires", &deps.requires),
        ("Before", &deps.before),
        ("Required By", &deps.required_by),
        ("Wants", &deps.wants),
    ] {
        if !list.is_empty() {
            let _ = writeln!(out, "  {label}: {}", list.join(", "));
        }
    }
    if let Some(note) = &s.note {
        let _ = writeln!(out, "  Note: {note}");
    }
    let _ = writeln!(out, "  Log File: {}", s.log_file);
    if s.log_lines_lost > 0 {
        let _ = writeln!(
            out,
            "  Log Lines Lost: {} (the log could not be written)",
            s.log_lines_lost
        );
    }
    out
}

/// `  User: ...` and, when set, `  Group: ...` and `  Supplementary Groups: ...`.
fn run_as(s: &ServiceInfo) -> String {
    let mut out = String::new();
    match &s.run_as {
        Some(c) => {
            let named = |id: &NamedId, label: &str| match &id.name {
                Some(name) => format!("{name} ({label} {})", id.id),
                None => format!("{label} {}", id.id),
            };
            let _ = writeln!(out, "  User: {}", named(&c.user, "uid"));
            let _ = writeln!(out, "  Group: {}", named(&c.group, "gid"));
            let groups: Vec<String> = c.supplementary.iter().map(|g| named(g, "gid")).collect();
            let _ = writeln!(
                out,
                "  Supplementary Groups: {}",
                if groups.is_empty() {
                    "none".to_owned()
                } else {
                    groups.join(", ")
                }
            );
        }
        None => {
            let pending = " (resolved when it starts)";
            match &s.user {
                Some(user) => {
                    let _ = writeln!(out, "  User: {user}{pending}");
                }
                None => out.push_str("  User: not set (runs as init's own user)\n"),
            }
            if let Some(group) = &s.group {
                let _ = writeln!(out, "  Group: {group}{pending}");
            }
            if !s.supplementary_groups.is_empty() {
                let _ = writeln!(
                    out,
                    "  Supplementary Groups: {}{pending}",
                    s.supplementary_groups.join(", ")
                );
            }
        }
    }
    out
}

/// `2d 5h 32m 15s`.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d {h}h {m}m {s}s")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// `123.4 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `initctl system-status`.
pub fn system_status(s: &SystemInfo) -> String {
    let mut out = String::from("System Status\n");
    let _ = writeln!(out, "  Uptime: {}", uptime(s.uptime_secs));
    let _ = writeln!(
        out,
        "  Services: {} total, {} enabled, {} active",
        s.services_total, s.services_enabled, s.services_active
    );
    let _ = writeln!(out, "  Service Directory: {}", s.service_dir);
    let _ = writeln!(out, "  Log Directory: {}", s.log_dir);
    match &s.memory {
        Some(m) => {
            let _ = writeln!(
                out,
                "  Memory: {} used, {} free, {} available, {} total",
                bytes(m.used_bytes),
                bytes(m.free_bytes),
                bytes(m.available_bytes),
                bytes(m.total_bytes)
            );
        }
        None => out.push_str("  Memory: unknown (/proc/meminfo unreadable)\n"),
    }
    let kernel = s
        .kernel_oom_kills
        .map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    let _ = writeln!(
        out,
        "  OOM Kills: {} service process(es) (kernel total: {kernel})",
        s.services_oom_killed
    );
    let _ = writeln!(out, "  Orphans Reaped: {}", s.orphans_reaped);
    let _ = writeln!(out, "  Console Lines Dropped: {}", s.console_lines_dropped);
    let _ = writeln!(out, "  PID 1: {}", if s.pid1 { "yes" } else { "no" });
    if let Some(cid) = s.parent_cid {
        let _ = writeln!(out, "  Parent CID: {cid}");
    }
    let _ = writeln!(out, "  Configuration: {}", s.config_source);
    if !s.start_order.is_empty() {
        let _ = writeln!(out, "  Start Order: {}", s.start_order.join(", "));
    }
    for cycle in &s.dependency_cycles {
        let _ = writeln!(out, "  Dependency Cycle: {cycle}");
    }
    for b in &s.broken_files {
        let _ = writeln!(out, "  Broken Service File: {}", b.error);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(
            uptime(2 * 86_400 + 5 * 3600 + 32 * 60 + 15),
            "2d 5h 32m 15s"
        );
        assert_eq!(uptime(75), "1m 15s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(seconds(5.0), "5s");
        assert_eq!(seconds(0.5), "0.5s");
    }
}
