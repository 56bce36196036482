#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The control protocol over unix:, tcp: and hvsock: addresses, its limits,
//! enable/disable, reload, shutdown, and initctl's output and exit codes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::{INITCTL, Init, sleeper};
use enclave_init::control::client;
use enclave_init::control::cmd::{Request, Response};
use enclave_init::defs::{MAX_REQUEST_FRAME, SERVICE_SUFFIX};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use transport::Address;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

async fn read_response(stream: &mut transport::Stream) -> Option<Response> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.ok()?;
    Some(serde_json::from_slice(&body).unwrap())
}

#[test]
fn the_control_socket_is_private() {
    let init = Init::prepare("").start();
    let mode = std::fs::metadata(init.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_clients_lose_their_connection_not_the_server() {
    let init = Init::prepare("").start();
    let addr = Address::Unix(init.socket());
    // Garbage, then an unknown request, then a good one, on one connection.
    let mut s = transport::connect(&addr).await.unwrap();
    s.write_all(&frame(b"this is not json")).await.unwrap();
    let Some(Response::Error { message }) = read_response(&mut s).await else {
        panic!()
    };
    assert!(message.contains("not JSON"), "{message}");
    s.write_all(&frame(br#"{"Frobnicate":{"x":1}}"#))
        .await
        .unwrap();
    let Some(Response::Error { message }) = read_response(&mut s).await else {
        panic!()
    };
    assert!(
        message.contains("unknown request \"Frobnicate\""),
        "{message}"
    );
    s.write_all(&frame(br#"{"ServiceStatus":{"name":"../../etc/passwd"}}"#))
        .await
        .unwrap();
    let Some(Response::Error { message }) = read_response(&mut s).await else {
        panic!()
    };
    assert!(message.contains("invalid service name"), "{message}");
    s.write_all(&frame(br#""Ping""#)).await.unwrap();
    assert_eq!(read_response(&mut s).await, Some(Response::Pong));
    // A frame larger than the limit is refused from its header, and the connection closed.
    let mut big = transport::connect(&addr).await.unwrap();
    big.write_all(&((MAX_REQUEST_FRAME as u32) + 1).to_be_bytes())
        .await
        .unwrap();
    let Some(Response::Error { message }) = read_response(&mut big).await else {
        panic!()
    };
    assert!(message.contains("exceeds the limit"), "{message}");
    let mut rest = Vec::new();
    assert_eq!(big.read_to_end(&mut rest).await.unwrap(), 0);
    // Half a frame, then gone.
    let mut half = transport::connect(&addr).await.unwrap();
    half.write_all(&[0, 0, 0, 50, b'{']).await.unwrap();
    drop(half);
    // Many clients at once (more than the per-listener limit): all answered.
    let mut tasks = Vec::new();
    for _ in 0..150 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            client::request(&addr, &Request::Ping).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Response::Pong);
    }
    assert_eq!(
        client::request(&addr, &Request::Ping).await.unwrap(),
        Response::Pong
    );
}

#[test]
fn control_over_tcp() {
    let init = Init::prepare_listening(&["tcp:127.0.0.1:0".into()]);
    init.service("web.service", &sleeper(""));
    let init = init.start();
    let log = init.stderr();
    let addr = log
        .lines()
        .find_map(|l| {
            l.split("control socket listening on ")
                .nth(1)
                .filter(|a| a.starts_with("tcp:"))
        })
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let out = Command::new(INITCTL)
        .args(["--address", &addr, "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("web                       enabled    active     no              0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn control_over_hybrid_vsock_through_a_fake_vmm() {
    let dir = tempfile::tempdir().unwrap();
    let vm_socket = dir.path().join("vm.vsock");
    let init = Init::prepare_listening(&[format!("hvsock:{}:9001", vm_socket.display())]);
    let init = init.start();
    // init listens on VM.vsock_9001, as a host-side hvsock listener does.
    let guest_side = transport::Address::hvsock_listen_path(&vm_socket, 9001);
    assert!(guest_side.exists());
    // SIMULATION: a VMM, as vhost-device-vsock would be, answering CONNECT on VM.vsock.
    let vmm = tokio::net::UnixListener::bind(&vm_socket).unwrap();
    let addr = format!("hvsock:{}:9001", vm_socket.display());
    let vmm_task = tokio::spawn(async move {
        loop {
            let (mut host, _) = vmm.accept().await.unwrap();
            let vm_socket = vm_socket.clone();
            tokio::spawn(async move {
                let port = transport::hvsock::read_connect_request(&mut host)
                    .await
                    .unwrap();
                let target = transport::Address::hvsock_listen_path(&vm_socket, port);
                let mut guest = tokio::net::UnixStream::connect(&target).await.unwrap();
                transport::hvsock::write_ok(&mut host, 1234).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut host, &mut guest).await;
            });
        }
    });
    let out = tokio::task::spawn_blocking(move || {
        Command::new(INITCTL)
            .args(["--address", &addr, "ping"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "✓ Pong: init is alive\n"
    );
    vmm_task.abort();
    drop(init);
}

#[test]
fn enable_and_disable_with_now() {
    let init = Init::prepare("");
    init.service("extra.service.disabled", &sleeper(""));
    init.service("flagged.service", &sleeper("ServiceEnable = false"));
    let init = init.start();
    let list = init.ctl_ok(&["list"]);
    assert!(
        list.contains("extra                     disabled   inactive"),
        "{list}"
    );
    assert!(
        list.contains("flagged                   disabled   inactive"),
        "{list}"
    );
    assert_eq!(init.status("extra").state, "inactive");

    let out = init.ctl_ok(&["enable", "--now", "extra"]);
    assert_eq!(out, "✓ Service 'extra' enabled; Service 'extra' started\n");
    assert!(
        init.service_dir()
            .join(format!("extra{SERVICE_SUFFIX}"))
            .exists()
    );
    assert!(!init.service_dir().join("extra.service.disabled").exists());
    let s = init.status("extra");
    assert!(s.enabled && s.active);

    assert_eq!(
        init.ctl_ok(&["disable", "--now", "extra"]),
        "✓ Service 'extra' stopped\n"
    );
    assert!(init.service_dir().join("extra.service.disabled").exists());
    let s = init.status("extra");
    assert!(!s.enabled && !s.active);

    // enable without --now: enabled on disk, not started.
    assert_eq!(
        init.ctl_ok(&["enable", "flagged"]),
        "✓ Service 'flagged' enabled\n"
    );
    let text = std::fs::read_to_string(init.service_dir().join("flagged.service")).unwrap();
    assert!(text.contains("ServiceEnable = true"), "{text}");
    assert!(!init.status("flagged").active);
    // disable without --now keeps it running.
    init.ctl_ok(&["start", "flagged"]);
    assert_eq!(
        init.ctl_ok(&["disable", "flagged"]),
        "✓ Service 'flagged' disabled\n"
    );
    assert!(init.status("flagged").active);

    let out = init.ctl(&["enable", "missing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service file missing.service"));
}

#[test]
fn reload_picks_up_new_and_removed_files() {
    let init = Init::prepare("");
    init.service("old.service", &sleeper(""));
    init.service("kept.service", &sleeper(""));
    let init = init.start();
    init.wait_state("old", "running");
    let kept_pid = init.status("kept").pid;
    std::fs::remove_file(init.service_dir().join("old.service")).unwrap();
    init.service("new.service", &sleeper(""));
    init.service("later.service.disabled", &sleeper(""));
    let out = init.ctl_ok(&["reload"]);
    assert_eq!(
        out,
        "✓ Reloaded: 2 added, 1 removed, 0 changed, 0 broken file(s)\n"
    );
    init.wait_state("new", "running");
    assert_eq!(init.status("later").state, "inactive");
    init.wait_for("old to be gone", Duration::from_secs(10), || {
        !init.ctl_ok(&["list"]).contains("old ")
    });
    assert_eq!(
        init.status("kept").pid,
        kept_pid,
        "unchanged services keep running"
    );
    // SIGHUP reloads too.
    init.service("hup.service", &sleeper(""));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init.pid()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    init.wait_for("hup to start", Duration::from_secs(10), || {
        init.ctl(&["status", "hup"]).status.success() && init.status("hup").state == "running"
    });
}

#[test]
fn shutdown_stops_services_in_reverse_dependency_order() {
    let init = Init::prepare("");
    init.service("db.service", &sleeper(""));
    init.service(
        "app.service",
        &sleeper("After = [\"db\"]\nRequires = [\"db\"]"),
    );
    init.service("edge.service", &sleeper("After = [\"app\"]"));
    let mut init = init.start();
    init.wait_state("edge", "running");
    let out = init.ctl_ok(&["shutdown"]);
    assert!(out.contains("init exits (not PID 1"), "{out}");
    let status = common::wait_timeout(init.child.as_mut().unwrap(), Duration::from_secs(20));
    assert!(status.success());
    init.child = None;
    let stops: Vec<String> = init
        .stderr()
        .lines()
        .filter_map(|l| l.split("stopping service '").nth(1))
        .filter_map(|r| r.split('\'').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(stops, ["edge", "app", "db"]);
    assert!(
        !init.socket().exists(),
        "the socket file is removed at exit"
    );
    // SIGTERM does the same.
    let init2 = Init::prepare("");
    init2.service("x.service", &sleeper(""));
    let mut init2 = init2.start();
    init2.wait_state("x", "running");
    assert!(init2.terminate().success());
    assert!(init2.stderr().contains("all services stopped"));
}

#[test]
fn initctl_output_and_exit_codes() {
    let init = Init::prepare("");
    init.service(
        "web.service",
        &sleeper("Restart = \"always\"\nRestartSec = 5\nWorkingDirectory = \"/tmp\""),
    );
    let init = init.start();
    init.wait_state("web", "running");
    let list = init.ctl_ok(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[0],
        "NAME                      ENABLED    ACTIVE     RESTART         RESTARTS"
    );
    assert_eq!(lines[1], "-".repeat(75));
    assert_eq!(
        lines[2],
        "web                       enabled    active     always          0"
    );
    let status = init.ctl_ok(&["status", "web"]);
    assert!(
        status.contains("\n  Memory: ") && status.contains(" resident\n"),
        "{status}"
    );
    assert!(
        status.contains("\n  Status: active (running) for "),
        "{status}"
    );
    let status: String = status
        .lines()
        .filter(|l| !l.starts_with("  Memory: "))
        .map(|l| match l.split_once(" for ") {
            Some((head, _)) if l.starts_with("  Status: ") => format!("{head}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    let pid = init.status("web").pid.unwrap();
    assert!(status.starts_with(&format!(
        "Service: web\n  Enabled: yes\n  Status: active (running)\n  PID: {pid}\n  Command: sleep 1000\n  Working Directory: /tmp\n  User: not set (runs as init's own user)\n  Restart Policy: always\n  Restart Delay: 5s\n  Restart Count: 0\n"
    )), "{status}");
    let system = init.ctl_ok(&["system-status"]);
    assert!(system.starts_with("System Status\n  Uptime: "), "{system}");
    assert!(
        system.contains("  Services: 1 total, 1 enabled, 1 active\n"),
        "{system}"
    );
    assert!(
        system.contains("  Memory: ") && system.contains(" used, "),
        "{system}"
    );
    assert!(
        system.contains("  OOM Kills: 0 service process(es)"),
        "{system}"
    );
    assert_eq!(init.ctl_ok(&["ping"]), "✓ Pong: init is alive\n");
    let many = init.ctl_ok(&["ping", "-c", "20"]);
    assert!(
        many.starts_with("✓ 20 pings to unix:") && many.contains(" median "),
        "{many}"
    );
    // Errors: 1 for a refused request, 69 when init is unreachable, 64 for bad usage.
    assert_eq!(init.ctl(&["status", "nope"]).status.code(), Some(1));
    let gone = Command::new(INITCTL)
        .args(["--socket", "/nonexistent/init.sock", "ping"])
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("/nonexistent/init.sock"));
    assert_eq!(
        Command::new(INITCTL)
            .arg("frobnicate")
            .output()
            .unwrap()
            .status
            .code(),
        Some(64)
    );
    assert_eq!(
        Command::new(INITCTL)
            .arg("--help")
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    // The config file and INIT_SOCKET select the socket too.
    let cfg = init.dir.path().join("initctl.yaml");
    std::fs::write(
        &cfg,
        format!(
            "protocol: unix\nunix_socket_path: {}\n",
            init.socket().display()
        ),
    )
    .unwrap();
    let via_file = Command::new(INITCTL)
        .arg("--config")
        .arg(&cfg)
        .arg("ping")
        .output()
        .unwrap();
    assert!(via_file.status.success());
    let via_env = Command::new(INITCTL)
        .env("INIT_SOCKET", init.socket())
        .env_remove("INITCTL_CONFIG")
        .arg("ping")
        .output()
        .unwrap();
    assert!(via_env.status.success());
}

#[test]
fn disable_now_cancels_a_pending_restart() {
    let init = Init::prepare("");
    let starts = init.work().join("starts");
    init.service(
        "flappy.service",
        &format!(
            "ExecStart = \"sh -c 'echo x >> {}; exit 1'\"\nRestart = \"on-failure\"\nRestartSec = 1\n",
            starts.display()
        ),
    );
    let init = init.start();
    init.wait_state("flappy", "restarting");
    assert_eq!(
        init.ctl_ok(&["disable", "--now", "flappy"]),
        "✓ Service 'flappy' disabled\n"
    );
    // The restart is cancelled: nothing pending. (That the cancelled
    // timer, when it fires, changes nothing is a unit test of the
    // supervisor, with paused time.)
    let flappy = init.status("flappy");
    assert_eq!(flappy.state, "inactive");
    assert_eq!(flappy.restart_in_ms, None);
    assert_eq!(common::lines(&starts).len(), 1);
}

#[test]
fn reload_retries_what_a_fixed_dependency_blocked() {
    let init = Init::prepare("");
    init.service("db.service", "ExecStart = \"/nonexistent/db\"\n");
    init.service("web.service", &sleeper("Requires = [\"db\"]"));
    let init = init.start();
    init.wait_state("web", "blocked");
    init.service("db.service", &sleeper(""));
    assert_eq!(
        init.ctl_ok(&["reload"]),
        "✓ Reloaded: 0 added, 0 removed, 1 changed, 0 broken file(s)\n"
    );
    init.wait_state("db", "running");
    let web = init.wait_state("web", "running");
    assert_eq!(web.note, None);
}

#[test]
fn a_second_init_on_the_same_socket_is_refused() {
    let init = Init::prepare("").start();
    let out = Command::new(common::INIT)
        .arg("--config")
        .arg(init.dir.path().join("init.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another process is listening"), "{err}");
    // The first one is untouched.
    init.ctl_ok(&["ping"]);
}
