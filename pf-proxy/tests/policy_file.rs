//! A policy path that is not a regular file (an endless device, a FIFO
//! nobody writes to, a directory) is refused at start-up, quickly and by
//! name, instead of hanging or filling memory.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longer than a refusal takes by far; a hang fails the test instead of
/// blocking it.
const BOUND: Duration = Duration::from_secs(10);

/// Runs `vsock-to-ip-transparent --policy POLICY` with its address space
/// capped (so a regression that reads `/dev/zero` into memory dies instead
/// of exhausting the machine) and returns its exit code and stderr, or
/// `None` if it was still running after [`BOUND`] (then it is killed).
fn start_with_policy(policy: &Path) -> Option<(i32, String)> {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "ulimit -v 4194304 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_vsock-to-ip-transparent"),
            "-v",
            "unix:/nonexistent-dir/never-bound.sock",
            "--policy",
        ])
        .arg(policy)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < BOUND {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return Some((
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn assert_refused(policy: &Path, kind: &str) {
    let Some((code, stderr)) = start_with_policy(policy) else {
        panic!(
            "vsock-to-ip-transparent --policy {} still running after {BOUND:?}",
            policy.display()
        );
    };
    assert_eq!(code, 64, "{stderr}");
    let shown = policy.display().to_string();
    assert!(stderr.contains(&shown), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(stderr.contains(kind), "{stderr}");
}

#[test]
fn dev_zero_as_the_policy_is_refused_quickly() {
    assert_refused(Path::new("/dev/zero"), "character device");
}

#[test]
fn a_fifo_as_the_policy_is_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("policy.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert_refused(&fifo, "FIFO");
}

#[test]
fn a_directory_as_the_policy_is_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    assert_refused(dir.path(), "directory");
}
