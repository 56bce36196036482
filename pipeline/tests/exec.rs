//! `pipeline run` against a real server process: exit codes, signals,
//! streaming, stdin, large output, no-wait, policy.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

use common::{Kind, Server, stderr, stdout};

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("client exited normally")
}

/// The client exited with `status` and its error message says `needle`.
fn fails_with(out: &std::process::Output, status: i32, needle: &str) {
    assert_eq!(code(out), status, "{}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "{needle:?} not in {}",
        stderr(out)
    );
}

#[test]
fn exit_codes_over_unix_and_tcp() {
    for kind in [Kind::Unix, Kind::Tcp] {
        let server = Server::start_on(kind, &[]);
        let out = server.client(["run", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
        assert_eq!(code(&out), 3, "{kind:?}");
        assert_eq!(stdout(&out), "out\n");
        assert_eq!(stderr(&out), "err\n");
        assert_eq!(code(&server.client(["run", "--", "true"])), 0);
        assert_eq!(code(&server.client(["run", "--", "false"])), 1);
    }
}

#[test]
fn bad_usage_is_64_and_help_is_0() {
    let run = |args: &[&str]| {
        std::process::Command::new(common::BIN)
            .args(args)
            .env_remove("PIPELINE_ADDR")
            .output()
            .unwrap()
    };
    fails_with(&run(&["--bogus"]), 64, "unexpected argument '--bogus'");
    fails_with(&run(&["frobnicate"]), 64, "unrecognized subcommand");
    let help = run(&["--help"]);
    assert_eq!(code(&help), 0);
    assert!(
        stdout(&help).contains("Usage: pipeline"),
        "{}",
        stdout(&help)
    );
}

#[test]
fn death_by_signal_is_128_plus_n() {
    let server = Server::start(&[]);
    assert_eq!(
        code(&server.client(["run", "--", "sh", "-c", "kill -9 $$"])),
        137
    );
    assert_eq!(
        code(&server.client(["run", "--", "sh", "-c", "kill -TERM $$"])),
        143
    );
}

#[test]
fn missing_and_non_executable_commands() {
    let server = Server::start(&[]);
    let out = server.client(["run", "--", "no-such-command-xyz"]);
    fails_with(&out, 127, "command not found: no-such-command-xyz");
    let script = server.dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let out = server.client(["run", "--", script.to_str().unwrap()]);
    fails_with(&out, 126, "permission denied");
}

#[test]
fn timeout_kills_the_process_group() {
    let server = Server::start(&[]);
    let marker = server.dir.path().join("survivor");
    let script = format!("(sleep 1; touch {}) & sleep 30", marker.display());
    let out = server.client(["run", "--timeout", "0.3", "--", "sh", "-c", &script]);
    assert_eq!(code(&out), 124);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !marker.exists(),
        "a background process of the timed-out command survived"
    );
}

#[test]
fn output_is_streamed_while_the_command_runs() {
    let server = Server::start(&[]);
    let mut child = server.spawn_script("echo first; sleep 3; echo second");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first");
    // The remote command is still sleeping: the line came before the end.
    assert!(
        child.try_wait().unwrap().is_none(),
        "output was held back until the command ended"
    );
    assert_eq!(lines.next().unwrap().unwrap(), "second");
    assert!(child.wait().unwrap().success());
}

#[test]
fn stdout_and_stderr_keep_their_order() {
    let server = Server::start(&[]);
    let capture = server.dir.path().join("both.txt");
    let file = std::fs::File::create(&capture).unwrap();
    let status = server
        .cmd()
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "for i in 1 2 3; do echo out$i; sleep 0.1; echo err$i >&2; sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(&capture).unwrap(),
        "out1\nerr1\nout2\nerr2\nout3\nerr3\n"
    );
}

#[test]
fn raw_bytes_are_not_reencoded() {
    let server = Server::start(&[]);
    let out = server.client(["run", "--", "printf", r"\377\000\n\r\033[0m"]);
    assert_eq!(out.stdout, b"\xff\x00\n\r\x1b[0m");
}

#[test]
fn large_output_arrives_complete() {
    let server = Server::start(&[]);
    let out = server.client(["run", "--", "seq", "1", "3000000"]);
    assert!(out.status.success());
    let local = std::process::Command::new("seq")
        .args(["1", "3000000"])
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), local.stdout.len());
    assert!(
        out.stdout == local.stdout,
        "output differs from a local run"
    );
}

#[test]
fn stdin_is_forwarded() {
    let server = Server::start(&[]);
    let out = server.client_with_stdin(["run", "--", "tr", "a-z", "A-Z"], b"hello enclave\n");
    assert_eq!(stdout(&out), "HELLO ENCLAVE\n");
    let big: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
    let out = server.client_with_stdin(["run", "--", "wc", "-c"], &big);
    assert_eq!(stdout(&out).trim(), "20000000");
}

#[test]
fn a_command_that_ignores_stdin_does_not_deadlock() {
    let server = Server::start(&[]);
    let big = vec![b'x'; 16 * 1024 * 1024];
    let out = server.client_with_stdin(["run", "--", "seq", "1", "1000000"], &big);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        out.stdout.iter().filter(|&&b| b == b'\n').count(),
        1_000_000
    );
}

#[test]
fn env_cwd_and_sentient_command() {
    let server = Server::start(&[]);
    let dir = server.dir.path().canonicalize().unwrap();
    let out = server.client([
        "run",
        "-e",
        "GREETING=hi there",
        "--cwd",
        dir.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo \"$GREETING\"; pwd",
    ]);
    assert_eq!(stdout(&out), format!("hi there\n{}\n", dir.display()));
    let out = server.client(["run", "--command", "echo a | tr a b"]);
    assert_eq!(stdout(&out), "b\n");
    let out = server.client(["run", "--cwd", "/no/such/dir", "--", "true"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("/no/such/dir"), "{}", stderr(&out));
}

#[test]
fn client_signals_reach_the_remote_command() {
    let server = Server::start(&[]);
    let mut child = server.spawn_script("echo ready; exec sleep 30");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
}

#[test]
fn no_wait_returns_the_pid_and_leaves_no_zombie() {
    let server = Server::start(&[]);
    let out = server.client_ok(["run", "--no-wait", "--", "sleep", "0.5"]);
    let pid: u32 = stdout(&out).trim().parse().unwrap();
    let status_path = format!("/proc/{pid}/status");
    assert!(
        std::path::Path::new(&status_path).exists(),
        "the command is not running"
    );
    // Once it ends, the server reaps it: the process entry disappears
    // instead of lingering as a zombie.
    let gone = testkit::eventually(Duration::from_secs(10), || {
        !std::path::Path::new(&status_path).exists()
    });
    let state = std::fs::read_to_string(&status_path).unwrap_or_default();
    assert!(gone, "process {pid} not reaped: {state}");
}

#[test]
fn client_that_vanishes_takes_its_command_down() {
    let server = Server::start(&[]);
    let marker = server.dir.path().join("still-running");
    let script = format!("echo started; sleep 2; touch {}", marker.display());
    let mut child = server.spawn_script(&script);
    let mut buf = [0u8; 8];
    child.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!marker.exists(), "the command outlived its client");
    server.assert_serving();
}

#[test]
fn exec_can_be_disabled() {
    let server = Server::start(&["--no-exec"]);
    let out = server.client(["run", "--", "true"]);
    fails_with(&out, 126, "disabled");
}

#[test]
fn connection_failure_is_exit_69_and_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("unix:{}", dir.path().join("none.sock").display());
    let out = std::process::Command::new(common::BIN)
        .args([
            "run",
            "--connect-attempts",
            "1",
            "--addr",
            &addr,
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 69);
    assert!(stderr(&out).contains(&addr), "{}", stderr(&out));
}

#[test]
fn usage_errors_are_exit_64() {
    let out = std::process::Command::new(common::BIN)
        .args(["run", "--", "true"])
        .env_remove("PIPELINE_ADDR")
        .output()
        .unwrap();
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(&config, "adress: unix:/x\n").unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["--config", config.to_str().unwrap(), "run", "--", "true"])
        .output()
        .unwrap();
    fails_with(&out, 64, "unknown field");
    // A zero idle time-out would drop every client at once: refused from
    // the flag as from the file.
    let addr = format!("unix:{}", dir.path().join("p.sock").display());
    let out = std::process::Command::new(common::BIN)
        .args(["listen", "--addr", &addr, "--idle-timeout", "0"])
        .output()
        .unwrap();
    fails_with(&out, 64, "--idle-timeout must be at least 1");
    std::fs::write(&config, "idle_timeout_secs: 0\n").unwrap();
    let out = std::process::Command::new(common::BIN)
        .args([
            "--config",
            config.to_str().unwrap(),
            "listen",
            "--addr",
            &addr,
        ])
        .output()
        .unwrap();
    fails_with(&out, 64, "idle_timeout_secs must be at least 1");
}

#[test]
fn config_file_supplies_the_address() {
    let server = Server::start(&[]);
    let config = server.dir.path().join("pipeline.yaml");
    std::fs::write(&config, format!("addr: {}\n", server.addr)).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args([
            "--config",
            config.to_str().unwrap(),
            "run",
            "--",
            "echo",
            "via config",
        ])
        .env_remove("PIPELINE_ADDR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "via config\n", "{}", stderr(&out));
}

#[test]
fn thirty_two_concurrent_clients() {
    let server = Server::start(&[]);
    let children: Vec<_> = (0..32)
        .map(|i| server.spawn_script(&format!("sleep 0.2; echo client{i}")))
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(stdout(&out), format!("client{i}\n"));
    }
}

#[test]
fn a_peer_that_is_not_a_pipeline_server_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("other.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let peer = std::thread::spawn(move || {
        // Reads a little, then hangs up, as an unrelated service would.
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4];
        let _ = stream.read(&mut buf);
    });
    let addr = format!("unix:{}", socket.display());
    let out = std::process::Command::new(common::BIN)
        .args(["run", "--addr", &addr, "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    peer.join().unwrap();
    fails_with(&out, 69, "is it a pipeline server?");
}

#[test]
fn a_silent_client_waiting_for_a_long_command_is_not_idle() {
    // Regression: the idle limit for transfers must not kill a command
    // whose client simply waits for it.
    let server = Server::start(&["--idle-timeout", "1"]);
    let out = server.client(["run", "--", "sh", "-c", "sleep 2.5; echo done"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), server.log());
    assert_eq!(stdout(&out), "done\n");
}
