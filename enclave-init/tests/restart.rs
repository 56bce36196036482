#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Restart policies with their delays, stop with its grace period, restart.

mod common;

use std::time::Duration;

use common::{Init, lines};

/// A service that records each start time (ns) in `work/NAME.starts` and exits with `code`.
fn recorder(init: &Init, name: &str, code: &str, policy: &str, sec: &str) {
    let file = init.work().join(format!("{name}.starts"));
    init.service(
        &format!("{name}.service"),
        &format!(
            "ExecStart = \"sh -c 'date +%s%N >> {}; {code}'\"\nRestart = \"{policy}\"\nRestartSec = {sec}\n",
            file.display()
        ),
    );
}

fn starts(init: &Init, name: &str) -> Vec<u128> {
    lines(&init.work().join(format!("{name}.starts")))
        .iter()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn each_restart_policy_with_its_delay() {
    let init = Init::prepare("");
    recorder(&init, "always-ok", "exit 0", "always", "0.6");
    recorder(&init, "always-fail", "exit 2", "always", "0.6");
    recorder(&init, "onfail-fail", "exit 1", "on-failure", "0.6");
    recorder(&init, "onfail-signal", "kill -9 $$", "on-failure", "0.6");
    recorder(&init, "onfail-ok", "exit 0", "on-failure", "0.6");
    recorder(&init, "onsuccess-ok", "exit 0", "on-success", "0.6");
    recorder(&init, "onsuccess-fail", "exit 1", "on-success", "0.6");
    recorder(&init, "never", "exit 1", "no", "0.6");
    let init = init.start();
    let restarting = [
        "always-ok",
        "always-fail",
        "onfail-fail",
        "onfail-signal",
        "onsuccess-ok",
    ];
    init.wait_for(
        "three starts of each restarting service",
        Duration::from_secs(15),
        || restarting.iter().all(|n| starts(&init, n).len() >= 3),
    );
    for name in restarting {
        let times = starts(&init, name);
        for pair in times.windows(2) {
            let gap = Duration::from_nanos((pair[1] - pair[0]) as u64);
            assert!(
                gap >= Duration::from_millis(550),
                "{name} restarted after {gap:?} (RestartSec = 0.6)"
            );
        }
        assert!(init.status(name).restart_count >= 2, "{name}");
    }
    assert_eq!(init.wait_state("onfail-ok", "exited").exit_status, Some(0));
    assert_eq!(
        init.wait_state("onsuccess-fail", "failed").exit_status,
        Some(1)
    );
    assert_eq!(init.wait_state("never", "failed").exit_status, Some(1));
    for name in ["onfail-ok", "onsuccess-fail", "never"] {
        assert_eq!(starts(&init, name).len(), 1, "{name} must not restart");
        assert_eq!(init.status(name).restart_count, 0);
    }
    let killed = init.status("onfail-signal").last_exit.unwrap();
    assert_eq!(
        (killed.code, killed.signal, killed.oom_killed),
        (137, Some(9), false)
    );
    let text = init.ctl_ok(&["status", "never"]);
    assert!(
        text.contains("Restart Policy: no") && text.contains("Last Exit Code: 1"),
        "{text}"
    );
    assert!(text.contains("Restart Delay: 0.6s"), "{text}");
}

#[test]
fn stop_waits_for_the_grace_period_then_kills() {
    let init = Init::prepare("");
    init.service(
        "stubborn.service",
        "ExecStart = \"sh -c 'trap \\\"\\\" TERM; while true; do sleep 0.1; done'\"\nRestart = \"always\"\n",
    );
    init.service(
        "polite.service",
        "ExecStart = \"sleep 1000\"\nRestart = \"always\"\n",
    );
    let init = init.start();
    init.wait_state("stubborn", "running");
    init.wait_state("polite", "running");
    let begun = std::time::Instant::now();
    let out = init.ctl_ok(&["stop", "stubborn"]);
    assert_eq!(out, "✓ Service 'stubborn' stopped\n");
    // stop_timeout_sec is 2 in the tests' configuration.
    assert!(begun.elapsed() >= Duration::from_millis(1900));
    let s = init.status("stubborn");
    assert_eq!(s.state, "inactive");
    assert_eq!(s.last_exit.as_ref().unwrap().signal, Some(9));
    // A stopped service is not restarted, whatever its policy: no restart
    // is pending (one would be scheduled as the exit is handled).
    assert_eq!(s.restart_in_ms, None);
    let polite = init.ctl_ok(&["stop", "polite"]);
    assert_eq!(polite, "✓ Service 'polite' stopped\n");
    assert_eq!(init.status("polite").last_exit.unwrap().signal, Some(15));
    assert_eq!(
        init.ctl_ok(&["stop", "polite"]),
        "✓ Service 'polite' is not running\n"
    );
}

#[test]
fn restart_and_start_by_hand() {
    let init = Init::prepare("");
    init.service("svc.service", "ExecStart = \"sleep 1000\"\n");
    let init = init.start();
    let first = init.wait_state("svc", "running").pid.unwrap();
    assert_eq!(
        init.ctl_ok(&["restart", "svc"]),
        "✓ Service 'svc' restarted\n"
    );
    let after = init.status("svc");
    assert_ne!(after.pid.unwrap(), first);
    assert_eq!(after.restart_count, 1);
    init.ctl_ok(&["stop", "svc"]);
    assert_eq!(init.ctl_ok(&["start", "svc"]), "✓ Service 'svc' started\n");
    assert_eq!(
        init.ctl_ok(&["start", "svc"]),
        "✓ Service 'svc' is already running\n"
    );
    let missing = init.ctl(&["start", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "✗ service 'nope' not found\n"
    );
}
