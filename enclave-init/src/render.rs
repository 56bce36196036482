//! initctl's human-readable output, one function per response kind, as the
//! specification shows it.

use std::fmt::Write;

use crate::accounts::NamedId;
use crate::api::{Health, HealthInfo, ServiceInfo, ServiceSummary, SystemInfo};
use crate::reaper::signal_name;

/// `initctl list`; a HEALTH column when any service has a health check.
pub fn service_list(services: &[ServiceSummary]) -> String {
    let health = services.iter().any(|s| s.health != Health::None);
    let mut out = format!(
        "{:<25} {:<10} {:<10} {:<15} {}",
        "NAME", "ENABLED", "ACTIVE", "RESTART", "RESTARTS",
    );
    if health {
        out.push_str("   HEALTH");
    }
    let _ = writeln!(out, "\n{}", "-".repeat(if health { 87 } else { 75 }));
    for s in services {
        let _ = write!(
            out,
            "{:<25} {:<10} {:<10} {:<15} {}",
            s.name,
            if s.enabled { "enabled" } else { "disabled" },
            if s.active { "active" } else { "inactive" },
            s.restart_policy.as_str(),
            s.restart_count
        );
        if health {
            let _ = write!(
                out,
                "{:width$}{}",
                "",
                s.health.as_str(),
                width = 11usize.saturating_sub(s.restart_count.to_string().len())
            );
        }
        out.push('\n');
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
    out.push_str(&health(s.health.as_ref()));
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

/// `  Health: ...` and, with a check, its failures, restarts and last probe.
fn health(h: Option<&HealthInfo>) -> String {
    let Some(h) = h else {
        return "  Health: none (no health check)\n".into();
    };
    let mut out = String::new();
    let state = match h.health {
        Health::Starting if h.in_start_period => "starting (in its start period)".to_owned(),
        Health::Starting => "starting (no probe succeeded yet)".to_owned(),
        other => other.as_str().to_owned(),
    };
    let _ = writeln!(out, "  Health: {state}");
    let _ = writeln!(out, "  Health Check: {}", h.check);
    let _ = writeln!(
        out,
        "  Health Failures: {} consecutive (unhealthy at {}); unhealthy {} time(s), {} restart(s) for it",
        h.consecutive_failures, h.retries, h.times_unhealthy, h.unhealthy_restarts
    );
    match &h.last_probe {
        Some(p) => {
            let _ = writeln!(
                out,
                "  Last Probe: {} at {} ({} ago, took {} ms): {}",
                if p.healthy { "ok" } else { "FAILED" },
                p.at,
                uptime(p.age_ms / 1000),
                p.took_ms,
                p.result
            );
        }
        None => out.push_str("  Last Probe: none yet\n"),
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

    fn summary(name: &str, restarts: u32, health: Health) -> ServiceSummary {
        ServiceSummary {
            name: name.into(),
            enabled: true,
            active: true,
            state: "running".into(),
            restart_policy: crate::service::RestartPolicy::Always,
            restart_count: restarts,
            pid: Some(1),
            health,
        }
    }

    #[test]
    fn the_health_column_appears_with_a_check() {
        let plain = service_list(&[summary("a", 0, Health::None)]);
        assert!(!plain.contains("HEALTH"), "{plain}");
        let checked = service_list(&[
            summary("a", 0, Health::None),
            summary("b", 12, Health::Unhealthy),
        ]);
        let lines: Vec<&str> = checked.lines().collect();
        assert!(lines[0].ends_with("RESTARTS   HEALTH"), "{checked}");
        let column = lines[0].find("HEALTH").unwrap();
        assert_eq!(lines[2].find("none"), Some(column), "{checked}");
        assert_eq!(lines[3].find("unhealthy"), Some(column), "{checked}");
    }

    #[test]
    fn health_lines() {
        assert_eq!(health(None), "  Health: none (no health check)\n");
        let info = HealthInfo {
            check: "GET http://127.0.0.1/ every 1s".into(),
            health: Health::Unhealthy,
            in_start_period: false,
            consecutive_failures: 3,
            retries: 3,
            times_unhealthy: 1,
            unhealthy_restarts: 1,
            last_probe: Some(crate::api::ProbeReport {
                healthy: false,
                result: "timed out after 1s".into(),
                at: "2026-01-01T00:00:00.000Z".into(),
                age_ms: 2500,
                took_ms: 1000,
            }),
        };
        let text = health(Some(&info));
        assert!(text.starts_with("  Health: unhealthy\n"), "{text}");
        assert!(
            text.contains("  Last Probe: FAILED at 2026-01-01T00:00:00.000Z (2s ago, took 1000 ms): timed out after 1s\n"),
            "{text}"
        );
        assert!(text.contains("1 restart(s) for it"), "{text}");
    }
}
