#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Health checks with real processes: HTTP, TCP and command probes, the
//! threshold, the start period, restart policies, and what initctl shows.
//! Every wait polls with a deadline; nothing asserts a duration.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Init, lines};
use enclave_init::control::cmd::{Health, HealthInfo};

/// Generous deadline for anything that takes a few probe intervals.
const WAIT: Duration = Duration::from_secs(30);

/// How the test's HTTP server treats a request.
const ANSWER_OK: u8 = 0;
const HANG: u8 = 1;

/// An HTTP server on loopback, in this process, whose behaviour a test
/// switches: answer 200, or accept and never answer.
struct Server {
    port: u16,
    mode: Arc<AtomicU8>,
    requests: Arc<AtomicUsize>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(ANSWER_OK));
        let requests = Arc::new(AtomicUsize::new(0));
        let (m, r) = (mode.clone(), requests.clone());
        std::thread::spawn(move || {
            let mut hung: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                r.fetch_add(1, Ordering::SeqCst);
                if m.load(Ordering::SeqCst) == HANG {
                    hung.push(stream);
                    continue;
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        Server {
            port,
            mode,
            requests,
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn health(init: &Init, name: &str) -> HealthInfo {
    init.status(name)
        .health
        .unwrap_or_else(|| panic!("{name} has no health record"))
}

/// Waits until `init` has made `probes` more requests to `server`.
fn wait_probes(init: &Init, server: &Server, probes: usize) {
    let target = server.requests() + probes;
    init.wait_for(&format!("{probes} more probes"), WAIT, || {
        server.requests() >= target
    });
}

#[test]
fn a_service_that_listens_to_nothing_is_restarted_after_the_threshold() {
    let init = Init::prepare("");
    let port = dead_port();
    init.service(
        "web.service",
        &format!(
            "ExecStart = \"sleep 1000\"\nRestart = \"always\"\nRestartSec = 0.2\n\
             HealthCheckHttp = \"http://127.0.0.1:{port}/healthz\"\n\
             HealthCheckIntervalSec = 0.2\nHealthCheckTimeoutSec = 0.2\nHealthCheckRetries = 2\n"
        ),
    );
    let init = init.start();
    let first = init.wait_state("web", "running").pid.unwrap();
    init.wait_for("a restart for health", WAIT, || {
        let s = init.status("web");
        s.health.is_some_and(|h| h.unhealthy_restarts >= 1) && s.restart_count >= 1
    });
    let after = init.wait_state("web", "running");
    assert_ne!(after.pid.unwrap(), first, "a new process");
    let h = after.health.unwrap();
    assert_eq!(h.retries, 2);
    assert!(h.times_unhealthy >= 1, "{h:?}");
    // The previous run's failures are kept as the last result.
    let last = h.last_probe.unwrap();
    assert!(!last.healthy);
    assert!(
        last.result.starts_with("cannot connect to 127.0.0.1:"),
        "{last:?}"
    );
    assert!(last.at.ends_with('Z'), "{last:?}");
    let log = init.stderr();
    assert!(
        log.contains("WARN")
            && log.contains(
                "service 'web' is unhealthy: 2 consecutive failed health checks (GET http://127.0.0.1:"
            )
            && log.contains("; last: cannot connect to 127.0.0.1:")
            && log.contains("restarting it (Restart = always)"),
        "{log}"
    );
    let service_log = lines(&init.log_dir().join("web.log")).join("\n");
    assert!(
        service_log.contains("[init] unhealthy: 2 consecutive failed health checks"),
        "{service_log}"
    );
    let text = init.ctl_ok(&["status", "web"]);
    assert!(
        text.contains("\n  Health Check: GET http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains(" restart(s) for it\n"), "{text}");
    assert!(text.contains("\n  Last Probe: FAILED at "), "{text}");
    let list = init.ctl_ok(&["list"]);
    assert!(list.lines().next().unwrap().ends_with("HEALTH"), "{list}");
}

#[test]
fn a_healthy_service_is_never_restarted_and_one_that_stops_answering_is() {
    let server = Server::start();
    let init = Init::prepare("");
    init.service(
        "api.service",
        &format!(
            "ExecStart = \"sleep 1000\"\nRestart = \"on-failure\"\nRestartSec = 0.2\n\
             HealthCheckHttp = \"http://localhost:{}/ready/\"\n\
             HealthCheckIntervalSec = 0.2\nHealthCheckTimeoutSec = 0.2\nHealthCheckRetries = 3\n",
            server.port
        ),
    );
    let init = init.start();
    let pid = init.wait_state("api", "running").pid.unwrap();
    init.wait_for("api healthy", WAIT, || {
        health(&init, "api").health == Health::Healthy
    });
    wait_probes(&init, &server, 10);
    let s = init.status("api");
    assert_eq!((s.pid, s.restart_count), (Some(pid), 0), "never restarted");
    let h = s.health.unwrap();
    assert_eq!(
        (h.health, h.consecutive_failures, h.times_unhealthy),
        (Health::Healthy, 0, 0)
    );
    assert_eq!(h.last_probe.unwrap().result, "HTTP 200 OK");
    assert!(
        init.ctl_ok(&["status", "api"])
            .contains("\n  Health: healthy\n")
    );

    // Alive, accepting connections, never answering: each probe times out.
    server.set(HANG);
    init.wait_for("a restart for health", WAIT, || {
        health(&init, "api").unhealthy_restarts >= 1
    });
    let h = health(&init, "api");
    assert!(
        h.last_probe.as_ref().unwrap().result == "timed out after 0.2s",
        "{h:?}"
    );
    assert!(
        init.stderr()
            .contains("service 'api' is unhealthy: 3 consecutive failed health checks")
    );

    // Answering again: healthy, and no more restarts.
    server.set(ANSWER_OK);
    init.wait_for("api healthy again", WAIT, || {
        let s = init.status("api");
        s.state == "running" && s.health.is_some_and(|h| h.health == Health::Healthy)
    });
    let settled = init.status("api");
    wait_probes(&init, &server, 10);
    let later = init.status("api");
    assert_eq!(later.pid, settled.pid);
    assert_eq!(later.restart_count, settled.restart_count);
    assert_eq!(later.health.unwrap().health, Health::Healthy);
}

#[test]
fn a_hung_command_probe_is_killed_at_its_timeout() {
    let init = Init::prepare("");
    let pids = init.work().join("probe.pids");
    init.service(
        "stuck.service",
        &format!(
            "ExecStart = \"sleep 1000\"\nRestart = \"always\"\n\
             HealthCheckExec = \"sh -c 'echo $$ >> {}; exec sleep 1000'\"\n\
             HealthCheckIntervalSec = 0.5\nHealthCheckTimeoutSec = 0.3\nHealthCheckRetries = 1000\n",
            pids.display()
        ),
    );
    let init = init.start();
    init.wait_for("a timed-out probe", WAIT, || {
        health(&init, "stuck")
            .last_probe
            .is_some_and(|p| p.result.starts_with("timed out after 0.3s: killed (pid "))
    });
    let first: i32 = lines(&pids)[0].parse().unwrap();
    // Killed and reaped: the process is gone, not a zombie.
    init.wait_for("the probe process to be gone", WAIT, || {
        !std::path::Path::new(&format!("/proc/{first}")).exists()
    });
    let h = health(&init, "stuck");
    assert_eq!(h.health, Health::Starting, "below its threshold");
    assert!(h.consecutive_failures >= 1);
    assert_eq!(init.status("stuck").restart_count, 0);
    assert!(init.stderr().contains("timed out: SIGKILL"));
}

#[test]
fn command_probes_run_in_the_service_environment_and_policy_no_only_marks() {
    let init = Init::prepare("");
    init.service(
        "env.service",
        "ExecStart = \"sleep 1000\"\nEnvironment = [\"MARK=yes\"]\nWorkingDirectory = \"/tmp\"\n\
         HealthCheckExec = \"sh -c 'test \\\"$MARK\\\" = yes && test \\\"$(pwd)\\\" = /tmp'\"\n\
         HealthCheckIntervalSec = 0.2\n",
    );
    init.service(
        "sick.service",
        "ExecStart = \"sleep 1000\"\nRestart = \"no\"\n\
         HealthCheckExec = \"sh -c 'echo not ready; exit 3'\"\n\
         HealthCheckIntervalSec = 0.2\nHealthCheckRetries = 2\n",
    );
    let init = init.start();
    let sick_pid = init.wait_state("sick", "running").pid.unwrap();
    init.wait_for("env healthy", WAIT, || {
        health(&init, "env").health == Health::Healthy
    });
    assert_eq!(
        health(&init, "env").last_probe.unwrap().result,
        "exited with status 0"
    );
    init.wait_for("sick unhealthy", WAIT, || {
        health(&init, "sick").health == Health::Unhealthy
    });
    // Restart = "no": marked, left running, not restarted; probes go on.
    let s = init.status("sick");
    assert_eq!(
        (s.state.as_str(), s.pid, s.restart_count),
        ("running", Some(sick_pid), 0)
    );
    let h = s.health.unwrap();
    assert_eq!((h.times_unhealthy, h.unhealthy_restarts), (1, 0));
    assert_eq!(
        h.last_probe.unwrap().result,
        "exited with status 3: not ready"
    );
    assert!(
        init.stderr()
            .contains("not restarted (Restart = no): it keeps running, marked unhealthy")
    );
    let list = init.ctl_ok(&["list"]);
    let row = list.lines().find(|l| l.starts_with("sick ")).unwrap();
    assert!(row.ends_with(" unhealthy"), "{list}");
}

#[test]
fn the_start_period_forgives_failures_and_stopping_ends_the_probes() {
    let init = Init::prepare("");
    let slow = init.work().join("slow.probes");
    let other = init.work().join("other.probes");
    init.service(
        "slow.service",
        &format!(
            "ExecStart = \"sleep 1000\"\nRestart = \"always\"\n\
             HealthCheckExec = \"sh -c 'echo x >> {}; exit 1'\"\n\
             HealthCheckIntervalSec = 0.1\nHealthCheckRetries = 1\nHealthCheckStartPeriodSec = 3600\n",
            slow.display()
        ),
    );
    init.service(
        "other.service",
        &format!(
            "ExecStart = \"sleep 1000\"\n\
             HealthCheckExec = \"sh -c 'echo x >> {}'\"\nHealthCheckIntervalSec = 0.1\n",
            other.display()
        ),
    );
    let init = init.start();
    let pid = init.wait_state("slow", "running").pid.unwrap();
    init.wait_for("five failed probes", WAIT, || lines(&slow).len() >= 5);
    let s = init.status("slow");
    assert_eq!(
        (s.pid, s.restart_count),
        (Some(pid), 0),
        "not restarted in its start period"
    );
    let h = s.health.unwrap();
    assert_eq!((h.health, h.consecutive_failures), (Health::Starting, 0));
    assert!(h.in_start_period);
    assert!(!h.last_probe.unwrap().healthy);
    assert!(
        init.ctl_ok(&["status", "slow"])
            .contains("\n  Health: starting (in its start period)\n")
    );

    // Stopped: its probes end (at most one was in flight), while another
    // service's probes, on the same interval, go on.
    init.ctl_ok(&["stop", "slow"]);
    let stopped_at = lines(&slow).len();
    let other_now = lines(&other).len();
    init.wait_for("ten probes of the other service", WAIT, || {
        lines(&other).len() >= other_now + 10
    });
    assert!(lines(&slow).len() <= stopped_at + 1, "probes after stop");
    // Started again: a new start period.
    init.ctl_ok(&["start", "slow"]);
    let h = health(&init, "slow");
    assert_eq!(h.health, Health::Starting);
    assert!(h.in_start_period);
}

#[test]
fn a_tcp_probe_follows_the_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let init = Init::prepare("");
    init.service(
        "tcp.service",
        &format!(
            "ExecStart = \"sleep 1000\"\nRestart = \"always\"\nRestartSec = 0.2\n\
             HealthCheckTcp = \"127.0.0.1:{port}\"\nHealthCheckIntervalSec = 0.2\nHealthCheckRetries = 2\n"
        ),
    );
    let init = init.start();
    init.wait_for("tcp healthy", WAIT, || {
        health(&init, "tcp").health == Health::Healthy
    });
    assert_eq!(
        health(&init, "tcp").last_probe.unwrap().result,
        format!("connected to 127.0.0.1:{port}")
    );
    drop(listener);
    init.wait_for("a restart for health", WAIT, || {
        health(&init, "tcp").unhealthy_restarts >= 1
    });
}

#[test]
fn bad_health_checks_are_refused_with_the_key_and_the_reason() {
    let init = Init::prepare("");
    init.service(
        "zero.service",
        "ExecStart = \"sleep 1000\"\nHealthCheckTcp = \"127.0.0.1:1\"\nHealthCheckIntervalSec = 0\n",
    );
    init.service(
        "slow.service",
        "ExecStart = \"sleep 1000\"\nHealthCheckTcp = \"127.0.0.1:1\"\nHealthCheckIntervalSec = 1\nHealthCheckTimeoutSec = 5\n",
    );
    init.service(
        "remote.service",
        "ExecStart = \"sleep 1000\"\nHealthCheckHttp = \"http://10.1.2.3/\"\n",
    );
    init.service(
        "typo.service",
        "ExecStart = \"sleep 1000\"\nHealthCheckHTTP = \"http://127.0.0.1/\"\n",
    );
    init.service("fine.service", "ExecStart = \"sleep 1000\"\n");
    let init = init.start();
    init.wait_state("fine", "running");
    assert_eq!(init.status("fine").health, None);
    assert!(
        init.ctl_ok(&["status", "fine"])
            .contains("\n  Health: none (no health check)\n")
    );
    let broken: Vec<String> = init
        .system()
        .broken_files
        .into_iter()
        .map(|b| b.error)
        .collect();
    assert_eq!(broken.len(), 4, "{broken:#?}");
    let find = |file: &str| broken.iter().find(|e| e.contains(file)).unwrap().clone();
    assert!(
        find("zero.service").contains("HealthCheckIntervalSec: 0 is out of range"),
        "{broken:#?}"
    );
    assert!(
        find("slow.service")
            .contains("HealthCheckTimeoutSec: 5s is longer than HealthCheckIntervalSec (1s)"),
        "{broken:#?}"
    );
    assert!(
        find("remote.service").contains("not a loopback address"),
        "{broken:#?}"
    );
    assert!(
        find("typo.service").contains("HealthCheckHTTP"),
        "{broken:#?}"
    );
}

#[test]
fn the_real_nats_server_is_healthy_by_its_jetstream_monitor() {
    // The image's probe of nats-server, against the nats-server the
    // project's scripts install (rbuilds.sh: the distribution's package).
    let nats = std::path::Path::new("/usr/sbin/nats-server");
    if !nats.exists() {
        eprintln!("skipped: {} is not installed", nats.display());
        return;
    }
    let init = Init::prepare("");
    let (client, monitor) = (dead_port(), dead_port());
    let conf = init.work().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\njetstream {{\n  store_dir: {}\n  max_memory_store: 8MB\n  max_file_store: 16MB\n}}\n",
            init.work().join("js").display()
        ),
    )
    .unwrap();
    init.service(
        "nats-server.service",
        &format!(
            "ExecStart = \"{} --config {}\"\nRestart = \"always\"\n\
             HealthCheckHttp = \"http://127.0.0.1:{monitor}/jsz\"\n\
             HealthCheckIntervalSec = 0.3\nHealthCheckTimeoutSec = 0.3\nHealthCheckStartPeriodSec = 30\n",
            nats.display(),
            conf.display()
        ),
    );
    let init = init.start();
    init.wait_for("nats-server healthy", WAIT, || {
        health(&init, "nats-server").health == Health::Healthy
    });
    let s = init.status("nats-server");
    assert_eq!(s.restart_count, 0);
    assert_eq!(s.health.unwrap().last_probe.unwrap().result, "HTTP 200 OK");
}

/// Publishes `count` messages of `size` bytes to a new JetStream stream on
/// the NATS server at `port`, in the plain NATS protocol, without waiting
/// for acknowledgements (a stuck server may stop reading: errors end it).
fn fill_jetstream(port: u16, count: usize, size: usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let stream = br#"{"name":"FILL","subjects":["fill.>"],"storage":"file"}"#;
    let mut out = b"CONNECT {\"verbose\":false}\r\n".to_vec();
    out.extend_from_slice(
        format!(
            "PUB $JS.API.STREAM.CREATE.FILL _INBOX.fill {}\r\n",
            stream.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(stream);
    out.extend_from_slice(b"\r\nPING\r\n");
    s.write_all(&out).unwrap();
    // Wait for the PONG: the stream exists before the messages arrive.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"PONG") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let payload = vec![b'x'; size];
    for i in 0..count {
        let head = format!("PUB fill.{i} {size}\r\n");
        if s.write_all(head.as_bytes()).is_err()
            || s.write_all(&payload).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            return;
        }
    }
}

#[test]
fn nats_server_with_jetstream_stuck_on_a_full_store_is_restarted() {
    // The fault of issue 14: the store's file system fills, nats-server
    // stays alive, /healthz says ok, /jsz hangs. Needs root (a tmpfs in a
    // mount namespace of its own, fresh at each start) and nats-server.
    let nats = std::path::Path::new("/usr/sbin/nats-server");
    if !nats.exists() || !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root and {}", nats.display());
        return;
    }
    let init = Init::prepare("");
    let (client, monitor) = (dead_port(), dead_port());
    let store = init.work().join("js");
    std::fs::create_dir_all(&store).unwrap();
    let conf = init.work().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\njetstream {{\n  store_dir: {}\n  max_file_store: 64MB\n}}\n",
            store.display()
        ),
    )
    .unwrap();
    init.service(
        "nats-server.service",
        &format!(
            "ExecStart = \"unshare -m sh -c 'mount -t tmpfs -o size=4m tmpfs {} && exec {} --config {}'\"\n\
             Restart = \"always\"\nRestartSec = 0.2\n\
             HealthCheckHttp = \"http://127.0.0.1:{monitor}/jsz\"\n\
             HealthCheckIntervalSec = 0.5\nHealthCheckTimeoutSec = 0.5\nHealthCheckRetries = 2\n",
            store.display(),
            nats.display(),
            conf.display()
        ),
    );
    let init = init.start();
    init.wait_for("nats-server healthy", WAIT, || {
        health(&init, "nats-server").health == Health::Healthy
    });
    let pid = init.status("nats-server").pid.unwrap();
    fill_jetstream(client, 12, 900 * 1024);
    init.wait_for("a restart for health", Duration::from_secs(60), || {
        health(&init, "nats-server").unhealthy_restarts >= 1
    });
    let log = init.stderr();
    assert!(
        log.contains("service 'nats-server' is unhealthy: 2 consecutive failed health checks")
            && log.contains("last: timed out after 0.5s"),
        "{log}"
    );
    // A new process on a fresh store: healthy again.
    init.wait_for("nats-server healthy again", WAIT, || {
        let s = init.status("nats-server");
        s.pid.is_some_and(|p| p != pid) && s.health.is_some_and(|h| h.health == Health::Healthy)
    });
}
