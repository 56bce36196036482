//! `run_main`'s exit statuses and messages, from a real process: the
//! `skeleton` example.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The example binary, built by `cargo test` next to the test binaries.
fn skeleton() -> Command {
    let mut path: PathBuf = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    Command::new(path.join("examples/skeleton"))
}

fn run(args: &[&str]) -> Output {
    skeleton().args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn success_is_exit_0() {
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn help_is_exit_0_and_bad_usage_exit_64() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    let out = run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("unexpected argument '--bogus'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_config_is_exit_64_with_the_error_chain() {
    let out = run(&["--bad-config"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        stderr(&out),
        "skeleton: invalid --bad-config: not a number\n"
    );
}

#[test]
fn a_run_error_is_exit_1_with_the_error_chain() {
    let out = run(&["--fail"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "skeleton: cannot write: disk full\n");
}

#[test]
fn a_binary_chooses_its_own_exit_status() {
    let out = run(&["--fail", "77"]);
    assert_eq!(out.status.code(), Some(77));
    assert_eq!(stderr(&out), "skeleton: chosen\n");
}

/// Starts the example with `args`, waits for its "ready", sends `signal`.
fn signalled(args: &[&str], signal: nix::sys::signal::Signal) -> Output {
    let mut child = skeleton()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn sigterm_and_sigint_cancel_a_services_shutdown_token() {
    for signal in [nix::sys::signal::SIGTERM, nix::sys::signal::SIGINT] {
        let out = signalled(&["--wait"], signal);
        assert_eq!(out.status.code(), Some(3), "{signal}: {}", stderr(&out));
        assert!(stderr(&out).contains("shutting down"), "{}", stderr(&out));
    }
}

#[test]
fn sigterm_and_sigint_end_a_one_shot_command() {
    use std::os::unix::process::ExitStatusExt;
    for signal in [nix::sys::signal::SIGTERM, nix::sys::signal::SIGINT] {
        let out = signalled(&["--wait", "--one-shot"], signal);
        assert_eq!(out.status.signal(), Some(signal as i32), "{}", stderr(&out));
    }
}
