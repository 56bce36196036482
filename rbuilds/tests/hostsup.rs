#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The local runner's host-side processes stay up (rbuilds/lib/hostsup.sh):
//! a proxy that dies is restarted and counted, one that cannot start is
//! reported, and stopping the supervisor stops the process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn lib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lib/hostsup.sh")
}

/// Runs `script` with hostsup.sh sourced (and a `die` like rbuilds.sh's) in DIR.
fn bash(dir: &Path, script: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -eu\ndie() {{ echo \"die: $*\" >&2; exit 1; }}\nsource {}\n{script}",
            lib().display()
        ))
        .current_dir(dir)
        .output()
        .unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn alive(pid: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    !stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .trim_start()
        .starts_with('Z')
}

fn wait_until(what: &str, check: impl FnMut() -> bool) {
    testkit::wait_until(what, Duration::from_secs(20), check);
}

#[test]
fn a_host_proxy_that_dies_comes_back_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = bash(
        d,
        "start_host_proxy . web sleep 1000\nhost_processes_state .",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = String::from_utf8_lossy(&out.stdout);
    assert!(
        state.contains("web=up(pid ") && state.contains("restarts 0)"),
        "{state}"
    );
    let first = read(&d.join("web.child"));
    assert!(alive(&first));

    // Killed: restarted with a new pid, and counted.
    Command::new("kill").args(["-9", &first]).status().unwrap();
    wait_until("the restart", || {
        let now = read(&d.join("web.child"));
        now != first && alive(&now)
    });
    assert_eq!(read(&d.join("web.restarts")), "1");
    let out = bash(d, "host_processes_state .");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("restarts 1)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(read(&d.join("web.log")).contains("web exited with status 137; restart 1 in 1 s"));

    // Stopping the supervisor stops the process; the state says down.
    let second = read(&d.join("web.child"));
    Command::new("kill")
        .arg(read(&d.join("web.pid")))
        .status()
        .unwrap();
    wait_until("the process to stop", || !alive(&second));
    let out = bash(d, "host_processes_state .");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("web=down"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_host_proxy_that_cannot_start_is_reported_not_retried_forever() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = bash(
        d,
        "start_host_proxy . broken sh -c 'echo cannot bind 127.0.0.1:8443 >&2; exit 1'",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("die: host proxy broken exited") && stderr.contains("cannot bind"),
        "{stderr}"
    );
    let supervisor = read(&d.join("broken.pid"));
    wait_until("the supervisor to be stopped", || !alive(&supervisor));
}
