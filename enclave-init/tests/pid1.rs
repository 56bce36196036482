#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! PID-1 duties that can run here: loopback in a fresh network namespace,
//! the heartbeat against a fake parent, the whole `--pid1` boot inside
//! private mount, network and UTS namespaces, and init as the real PID 1 of
//! a PID namespace (orphans re-parented to it, reboot and power-off through
//! the syscall, which ends the namespace). The rest (mounts on an empty
//! root, NSM, real vsock, pivot) is exercised in the VM.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{INIT, initctl, wait_timeout};

/// A scratch directory that init's own `/tmp` and `/run` mounts (made in
/// its mount namespace) do not hide: under `/var/tmp`, not under `/tmp`
/// where a checkout, and so `CARGO_TARGET_TMPDIR`, may live.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("enclave-init-test")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// A process stopped on drop, so a failing test leaves nothing behind:
/// SIGTERM (init stops its services), then SIGKILL after a grace period.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `unshare ARGS -- true` works here (root, namespaces allowed).
fn can_unshare(args: &[&str]) -> bool {
    Command::new("unshare")
        .args(args)
        .arg("true")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn loopback_gets_127_0_0_1_in_a_fresh_network_namespace() {
    if !can_unshare(&["-n"]) {
        eprintln!("SKIPPED: cannot create a network namespace here (needs root)");
        return;
    }
    let script = format!(
        "{INIT} --run-step loopback && {INIT} --run-step loopback && ip -o addr show dev lo && ip -o link show dev lo"
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Loopback: done: lo (index 1) up, 127.0.0.1/8 assigned"),
        "{text}"
    );
    assert!(
        text.contains("Loopback: done: lo (index 1) up, 127.0.0.1/8 already assigned"),
        "{text}"
    );
    assert!(text.contains("inet 127.0.0.1/8"), "{text}");
    assert!(text.contains("<LOOPBACK,UP,LOWER_UP>"), "{text}");
}

#[test]
fn storage_mounts_bound_what_can_be_written_there() {
    if !can_unshare(&["-m"]) {
        eprintln!("SKIPPED: cannot create a mount namespace here (needs root)");
        return;
    }
    let dir = scratch_dir();
    let inbox = dir.path().join("inbox");
    let config = dir.path().join("init.yaml");
    std::fs::write(
        &config,
        format!("storage:\n  - {{path: {}, size: 1m}}\n", inbox.display()),
    )
    .unwrap();
    // Twice (the second leaves it alone), then fill it: 2 MiB do not fit.
    let script = format!(
        "{INIT} --run-step storage -c {c} && {INIT} --run-step storage -c {c} && \
         grep ' {i} ' /proc/self/mountinfo && \
         if dd if=/dev/zero of={i}/fill bs=64k count=32 2>{d}/dd.err; then echo FITTED; else cat {d}/dd.err; fi",
        c = config.display(),
        i = inbox.display(),
        d = dir.path().display(),
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Storage: done: tmpfs on"), "{text}");
    assert!(
        text.contains("Storage: skipped: every storage mount already mounted"),
        "{text}"
    );
    assert!(text.contains(" - tmpfs tmpfs "), "{text}");
    assert!(!text.contains("FITTED"), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
    // The mount was private to the namespace: nothing left here.
    assert!(!inbox.join("fill").exists());
}

/// A fake parent on a Unix socket: answers one heartbeat with `reply`;
/// returns the byte it received.
fn fake_parent(path: &std::path::Path, reply: u8) -> std::thread::JoinHandle<u8> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut byte = [0u8];
        conn.read_exact(&mut byte).unwrap();
        conn.write_all(&[reply]).unwrap();
        byte[0]
    })
}

fn heartbeat_config(dir: &std::path::Path, parent: &std::path::Path) -> std::path::PathBuf {
    let cfg = dir.join("init.yaml");
    std::fs::write(
        &cfg,
        format!(
            "vsock:\n  enabled: true\n  address: \"unix:{}\"\n",
            parent.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn heartbeat_sends_0xb7_and_checks_the_echo() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("parent.sock");
    let cfg = heartbeat_config(dir.path(), &parent);
    let heartbeat = || {
        Command::new(INIT)
            .args(["--run-step", "heartbeat", "-c"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let got = fake_parent(&parent, 0xB7);
    let out = heartbeat();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Heartbeat: done: 0xB7 exchanged with unix:")
    );
    assert_eq!(got.join().unwrap(), 0xB7);

    std::fs::remove_file(&parent).unwrap();
    let got = fake_parent(&parent, 0x00);
    let out = heartbeat();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("expected 0xB7 back, got 0x00"));
    assert_eq!(got.join().unwrap(), 0xB7);

    std::fs::remove_file(&parent).unwrap();
    let out = heartbeat();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Heartbeat: FAILED"));
}

#[test]
fn pid1_boot_in_private_namespaces() {
    if !can_unshare(&["-m", "-n", "-u"]) {
        eprintln!("SKIPPED: cannot create mount, network and UTS namespaces here (needs root)");
        return;
    }
    let dir = scratch_dir();
    let d = dir.path();
    let (services, logs, socket, parent) = (
        d.join("service"),
        d.join("log"),
        d.join("init.sock"),
        d.join("parent.sock"),
    );
    std::fs::create_dir_all(&services).unwrap();
    let cfg = d.join("init.yaml");
    std::fs::write(
        &cfg,
        format!(
            "service_dir: {}\nlog_dir: {}\ncontrol:\n  unix_socket_path: {}\nvsock:\n  address: \"unix:{}\"\nnsm_driver_path: null\npivot_root: false\nhostname: enclave-test\n",
            services.display(),
            logs.display(),
            socket.display(),
            parent.display()
        ),
    )
    .unwrap();
    let report = d.join("report");
    std::fs::write(
        services.join("probe.service"),
        format!(
            "ExecStart = \"sh -c 'hostname > {0}; echo $ENCLAVE_PARENT_CID >> {0}; ip -o addr show dev lo >> {0}; exec sleep 1000'\"\n",
            report.display()
        ),
    )
    .unwrap();
    let beat = fake_parent(&parent, 0xB7);
    let stderr = d.join("init.stderr");
    let mut child = Running(
        Command::new("unshare")
            .args(["-m", "-n", "-u", INIT, "--pid1", "-c"])
            .arg(&cfg)
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&report)
        .unwrap_or_default()
        .contains("127.0.0.1")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no report; init's log:\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(beat.join().unwrap(), 0xB7);
    let report = std::fs::read_to_string(&report).unwrap();
    let mut lines = report.lines();
    assert_eq!(lines.next(), Some("enclave-test"));
    assert_eq!(
        lines.next(),
        Some("2"),
        "parent CID: 2 where there is no /dev/nsm"
    );
    assert!(
        lines.next().unwrap().contains("inet 127.0.0.1/8"),
        "{report}"
    );
    let ctl = |args: &[&str]| initctl(&socket, args);
    let status = String::from_utf8(ctl(&["system-status"]).stdout).unwrap();
    assert!(status.contains("  PID 1: yes\n"), "{status}");
    assert!(status.contains("  Parent CID: 2\n"), "{status}");
    let log = std::fs::read_to_string(&stderr).unwrap();
    for step in [
        "pid1: compat: skipped: no /cmd in the image",
        "pid1: nsm: skipped: nsm_driver_path is null",
        "pid1: heartbeat: done: 0xB7 exchanged",
        "pid1: pivot: skipped: pivot_root is false",
        "pid1: hostname: done: host name enclave-test",
        "pid1: loopback: done: lo (index 1) up",
    ] {
        assert!(log.contains(step), "missing {step:?} in:\n{log}");
    }
    assert!(log.contains("pid1: mounts: "), "{log}");
    // Not really PID 1: shutdown stops the services and exits instead of powering off.
    assert!(ctl(&["shutdown"]).status.success());
    assert!(wait_timeout(&mut child.0, Duration::from_secs(20)).success());
}

/// `unshare` options for init as the real PID 1 of fresh namespaces.
const PID_NAMESPACES: &[&str] = &["-p", "-f", "--kill-child", "-m", "-n", "-u", "--mount-proc"];

/// Boots init as the real PID 1 of new PID, mount, network and UTS
/// namespaces, with one service that leaves an orphan behind; returns the
/// running `unshare`, the control socket and init's log file.
fn boot_real_pid1(d: &std::path::Path) -> (Running, std::path::PathBuf, std::path::PathBuf) {
    let services = d.join("service");
    std::fs::create_dir_all(&services).unwrap();
    let socket = d.join("init.sock");
    let cfg = d.join("init.yaml");
    std::fs::write(
        &cfg,
        format!(
            "service_dir: {}\nlog_dir: {}\ncontrol:\n  unix_socket_path: {}\nvsock:\n  enabled: false\nnsm_driver_path: null\npivot_root: false\n",
            services.display(),
            d.join("log").display(),
            socket.display()
        ),
    )
    .unwrap();
    // `(sleep 0.2 &)`: the sleep's parent exits at once, so it is re-parented to PID 1.
    std::fs::write(
        services.join("orphaner.service"),
        "ExecStart = \"sh -c '(sleep 0.2 &); exec sleep 1000'\"\n",
    )
    .unwrap();
    let log = d.join("init.stderr");
    // --kill-child: if unshare dies, the whole namespace goes with it.
    let child = Command::new("unshare")
        .args(PID_NAMESPACES)
        .arg(INIT)
        .arg("-c")
        .arg(&cfg)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (Running(child), socket, log)
}

#[test]
fn as_the_real_pid_1_init_reaps_orphans_and_reboots_with_the_syscall() {
    if !can_unshare(PID_NAMESPACES) {
        eprintln!("SKIPPED: cannot create a PID namespace here (needs root)");
        return;
    }
    // reboot(2) in a child PID namespace ends that namespace: its init is
    // killed with SIGHUP (restart) or SIGINT (power off), which the parent sees.
    for (command, signal) in [("reboot", libc::SIGHUP), ("shutdown", libc::SIGINT)] {
        let dir = scratch_dir();
        let (mut child, socket, log) = boot_real_pid1(dir.path());
        let ctl = |args: &[&str]| initctl(&socket, args);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let status = String::from_utf8(ctl(&["system-status"]).stdout).unwrap();
            if status.contains("  PID 1: yes\n") && status.contains("  Orphans Reaped: 1\n") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{status}\ninit's log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(ctl(&[command]).status.success());
        let status = wait_timeout(&mut child.0, Duration::from_secs(20));
        // unshare passes the death of its child on (re-raised, or as 128 + signal).
        use std::os::unix::process::ExitStatusExt;
        assert!(
            status.signal() == Some(signal) || status.code() == Some(128 + signal),
            "{command}: {status:?}"
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("stopping service 'orphaner'"), "{text}");
        assert!(text.contains("all services stopped"), "{text}");
    }
}
