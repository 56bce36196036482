//! The supervisor's transitions, driven step by step: real processes
//! (`sleep`, `sh`) and paused time, so timers fire as soon as nothing else
//! can happen and delays are measured exactly. The test stands in for the
//! actor loop: it hands the supervisor requests, the exits of its own
//! processes ([`Reaping::Own`]) and its timers, one at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::handle::Command;
use super::process::{signal_group, watch};
use super::{Context, Reaping, Supervisor};
use crate::api::{Request, Response, ServiceInfo};
use crate::config::Config;

/// Long enough that nothing in a test waits for it by accident.
const NEVER: Duration = Duration::from_secs(3600);

struct Harness {
    sup: Supervisor,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new(stop_timeout: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let service_dir = dir.path().join("service");
        std::fs::create_dir_all(&service_dir).unwrap();
        let config = Config {
            service_dir,
            log_dir: dir.path().join("log"),
            stop_timeout,
            ..Config::default()
        };
        let (mut sup, _handle) = Supervisor::new(Arc::new(config), Context::default());
        sup.reaping = Reaping::Own;
        Self { sup, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn service_file(&self, name: &str) -> PathBuf {
        self.path("service").join(format!("{name}.service"))
    }

    fn service(&self, name: &str, text: &str) {
        std::fs::write(self.service_file(name), text).unwrap();
    }

    fn reload(&mut self) -> String {
        self.sup.reload()
    }

    /// Starts a service `name` running `sleep` (with `extra` settings).
    fn running(&mut self, name: &str, extra: &str) -> i32 {
        self.service(name, &format!("ExecStart = \"sleep 1000\"\n{extra}"));
        self.reload();
        self.pid(name)
    }

    /// A service `name` that failed at once and waits to restart.
    async fn pending_restart(&mut self, name: &str) {
        self.service(
            name,
            "ExecStart = \"sh -c 'exit 1'\"\nRestart = \"on-failure\"\nRestartSec = 1\n",
        );
        self.reload();
        self.exited(self.pid(name)).await;
        assert_eq!(self.state(name), "restarting");
    }

    /// Sends a request; the answer comes now or once its work is done.
    fn ask(&mut self, request: Request) -> oneshot::Receiver<Response> {
        let (tx, rx) = oneshot::channel();
        self.sup.request(request, tx);
        rx
    }

    fn status(&self, name: &str) -> ServiceInfo {
        self.sup.services[name].info(&self.sup.config)
    }

    fn state(&self, name: &str) -> &'static str {
        self.sup.services[name].run.name()
    }

    fn pid(&self, name: &str) -> i32 {
        self.sup.services[name].run.pid().unwrap()
    }

    /// Waits (in real time: a blocking wait keeps paused time still) until
    /// `pid` has ended, then lets the supervisor reap it.
    async fn exited(&mut self, pid: i32) {
        tokio::task::spawn_blocking(move || wait_ended(pid))
            .await
            .unwrap();
        self.sup.reap();
    }

    /// Waits for the next timer the supervisor set and handles it; returns
    /// what fired.
    async fn timer(&mut self) -> String {
        let cmd = tokio::time::timeout(NEVER, self.sup.rx.recv())
            .await
            .expect("no timer fired")
            .unwrap();
        let what = format!("{cmd:?}");
        assert!(!matches!(cmd, Command::Request(..)), "{what}");
        self.sup.handle(cmd);
        what
    }

    /// Hands the supervisor health results until `name` stops running.
    async fn until_unhealthy(&mut self, name: &str) {
        while self.state(name) == "running" {
            let event = tokio::time::timeout(NEVER, self.sup.health_rx.recv())
                .await
                .expect("no health event")
                .unwrap();
            self.sup.on_health(event);
        }
    }
}

/// A health check that fails (nothing listens on port 1), twice in a row
/// makes the service unhealthy.
const FAILING_CHECK: &str =
    "HealthCheckTcp = \"127.0.0.1:1\"\nHealthCheckIntervalSec = 1\nHealthCheckRetries = 2\n";

impl Drop for Harness {
    fn drop(&mut self) {
        for svc in self.sup.services.values() {
            if let Some(pid) = svc.run.pid() {
                signal_group(pid, Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
            }
        }
    }
}

/// Blocks until the child `pid` has ended, leaving it to be reaped.
fn wait_ended(pid: i32) {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
    while let Err(nix::errno::Errno::EINTR) = waitid(Id::Pid(Pid::from_raw(pid)), flags) {}
}

/// Blocks (in real time) until `path` exists: a service's sign that it is ready.
async fn ready(path: &Path) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{path:?} never appeared"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .await
    .unwrap();
}

/// The text of an answer, `Err` for an error.
async fn answer(rx: oneshot::Receiver<Response>) -> Result<String, String> {
    match rx.await.unwrap() {
        Response::Success { message } => Ok(message),
        Response::Error { message } => Err(message),
        other => panic!("unexpected answer {other:?}"),
    }
}

fn stop(name: &str) -> Request {
    Request::ServiceStop { name: name.into() }
}

fn restart(name: &str) -> Request {
    Request::ServiceRestart { name: name.into() }
}

/// A shell that ignores SIGTERM once it wrote `ready`.
fn stubborn(ready: &Path) -> String {
    format!(
        "ExecStart = \"sh -c 'trap \\\"\\\" TERM; touch {}; while true; do sleep 0.01; done'\"\n",
        ready.display()
    )
}

#[tokio::test(start_paused = true)]
async fn a_failed_service_restarts_after_exactly_its_restart_delay() {
    let mut h = Harness::new(NEVER);
    h.service(
        "flaky",
        "ExecStart = \"sh -c 'exit 3'\"\nRestart = \"on-failure\"\nRestartSec = 5\n",
    );
    h.reload();
    let first = h.pid("flaky");
    h.exited(first).await;
    let failed_at = Instant::now();
    let status = h.status("flaky");
    assert_eq!(status.state, "restarting");
    assert_eq!(status.restart_in_ms, Some(5000));
    assert_eq!(status.last_exit.unwrap().code, 3);
    assert_eq!(h.timer().await, "RestartDue(flaky)");
    let waited = failed_at.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_millis(5010),
        "{waited:?}"
    );
    assert_eq!(h.state("flaky"), "running");
    assert_ne!(h.pid("flaky"), first);
    assert_eq!(h.status("flaky").restart_count, 1);
    // It fails again: the same delay again.
    h.exited(h.pid("flaky")).await;
    let failed_at = Instant::now();
    h.timer().await;
    assert!(failed_at.elapsed() >= Duration::from_secs(5));
    assert_eq!(h.status("flaky").restart_count, 2);
}

#[tokio::test(start_paused = true)]
async fn a_stop_cancels_a_pending_restart() {
    let mut h = Harness::new(NEVER);
    h.pending_restart("flaky").await;
    assert_eq!(
        answer(h.ask(stop("flaky"))).await.unwrap(),
        "Service 'flaky' stopped (pending restart cancelled)"
    );
    assert_eq!(h.state("flaky"), "inactive");
    // The cancelled restart's timer still fires, and changes nothing.
    assert_eq!(h.timer().await, "RestartDue(flaky)");
    assert_eq!(h.state("flaky"), "inactive");
    assert_eq!(h.status("flaky").restart_count, 0);
}

#[tokio::test(start_paused = true)]
async fn disable_now_cancels_a_pending_restart() {
    let mut h = Harness::new(NEVER);
    h.pending_restart("flaky").await;
    let disable = h.ask(Request::ServiceDisable {
        name: "flaky".into(),
        now: true,
    });
    assert_eq!(answer(disable).await.unwrap(), "Service 'flaky' disabled");
    assert!(!h.service_file("flaky").exists());
    h.timer().await;
    assert_eq!(h.state("flaky"), "inactive");
    assert!(!h.status("flaky").enabled);
}

#[tokio::test(start_paused = true)]
async fn a_service_that_exits_while_stopping_stays_stopped_whatever_its_policy() {
    let mut h = Harness::new(NEVER);
    let pid = h.running("web", "Restart = \"always\"\n");
    let stopped = h.ask(stop("web"));
    assert_eq!(h.state("web"), "stopping");
    // A second stop waits for the same exit.
    let again = h.ask(stop("web"));
    h.exited(pid).await;
    assert_eq!(answer(stopped).await.unwrap(), "Service 'web' stopped");
    assert_eq!(answer(again).await.unwrap(), "Service 'web' stopped");
    let status = h.status("web");
    assert_eq!(status.state, "inactive");
    assert_eq!(status.restart_in_ms, None);
    assert_eq!(status.last_exit.unwrap().signal, Some(15));
    assert_eq!(
        answer(h.ask(stop("web"))).await.unwrap(),
        "Service 'web' is not running"
    );
}

#[tokio::test(start_paused = true)]
async fn a_service_ignoring_sigterm_is_killed_after_the_grace_period() {
    let mut h = Harness::new(Duration::from_secs(7));
    let up = h.path("up");
    h.service("stubborn", &stubborn(&up));
    h.reload();
    ready(&up).await;
    let pid = h.pid("stubborn");
    let stopped = h.ask(stop("stubborn"));
    let asked = Instant::now();
    assert_eq!(h.timer().await, "KillDue(stubborn)");
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_secs(7) && waited < Duration::from_millis(7010),
        "{waited:?}"
    );
    h.exited(pid).await;
    assert_eq!(answer(stopped).await.unwrap(), "Service 'stubborn' stopped");
    let status = h.status("stubborn");
    assert_eq!(status.state, "inactive");
    assert_eq!(status.last_exit.unwrap().signal, Some(9));
}

#[tokio::test(start_paused = true)]
async fn a_restart_asked_while_stopping_starts_it_once_it_exited() {
    let mut h = Harness::new(NEVER);
    let first = h.running("web", "Restart = \"no\"\n");
    let stopped = h.ask(stop("web"));
    let restarted = h.ask(restart("web"));
    assert_eq!(h.state("web"), "stopping");
    assert_eq!(
        answer(h.ask(restart("web"))).await.unwrap_err(),
        "service 'web' is already restarting"
    );
    assert_eq!(
        answer(h.ask(Request::ServiceStart { name: "web".into() }))
            .await
            .unwrap_err(),
        "service 'web' is stopping"
    );
    h.exited(first).await;
    assert_eq!(answer(stopped).await.unwrap(), "Service 'web' stopped");
    assert_eq!(answer(restarted).await.unwrap(), "Service 'web' restarted");
    let status = h.status("web");
    assert_eq!(status.state, "running");
    assert_ne!(status.pid, Some(first));
    assert_eq!(status.restart_count, 1);
    assert_eq!(status.last_exit.unwrap().signal, Some(15));
}

#[tokio::test(start_paused = true)]
async fn a_service_removed_while_running_is_stopped_then_forgotten() {
    let mut h = Harness::new(NEVER);
    h.running("kept", "");
    let pid = h.running("old", "");
    std::fs::remove_file(h.service_file("old")).unwrap();
    assert_eq!(
        h.reload(),
        "Reloaded: 0 added, 1 removed, 0 changed, 0 broken file(s)"
    );
    assert_eq!(h.state("old"), "stopping");
    h.exited(pid).await;
    assert_eq!(
        answer(h.ask(Request::ServiceStatus { name: "old".into() }))
            .await
            .unwrap_err(),
        "service 'old' not found"
    );
    assert_eq!(h.state("kept"), "running");
}

#[tokio::test(start_paused = true)]
async fn a_service_whose_file_is_back_before_it_stopped_is_kept() {
    let mut h = Harness::new(NEVER);
    let pid = h.running("web", "");
    let text = std::fs::read_to_string(h.service_file("web")).unwrap();
    std::fs::remove_file(h.service_file("web")).unwrap();
    h.reload();
    assert_eq!(h.state("web"), "stopping");
    h.service("web", &text);
    h.reload();
    h.exited(pid).await;
    assert_eq!(h.state("web"), "inactive");
}

/// Before the service state was one enum, a restart that waited for the
/// stop outranked the removal: the removed service came back.
#[tokio::test(start_paused = true)]
async fn a_removal_overrides_a_restart_waiting_for_the_stop() {
    let mut h = Harness::new(NEVER);
    let pid = h.running("web", "");
    let restarted = h.ask(restart("web"));
    std::fs::remove_file(h.service_file("web")).unwrap();
    h.reload();
    h.exited(pid).await;
    assert_eq!(
        answer(restarted).await.unwrap_err(),
        "service 'web' is being removed: its file is gone"
    );
    assert!(!h.sup.services.contains_key("web"));
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_everything_in_reverse_start_order() {
    let mut h = Harness::new(Duration::from_secs(2));
    let (log, a_up, b_up) = (h.path("stopped"), h.path("a-up"), h.path("b-up"));
    let polite = |name: &str, up: &Path, extra: &str| {
        format!(
            "ExecStart = \"sh -c 'trap \\\"echo {name} >> {}; exit 0\\\" TERM; touch {}; while true; do sleep 0.01; done'\"\n{extra}",
            log.display(),
            up.display()
        )
    };
    h.service("a", &polite("a", &a_up, "Restart = \"always\"\n"));
    h.service("b", &polite("b", &b_up, "After = [\"a\"]\n"));
    h.reload();
    h.pending_restart("flaky").await;
    ready(&a_up).await;
    ready(&b_up).await;
    let pids = [h.pid("a"), h.pid("b")];
    // Paused time stays still while the services really stop.
    let stopped = tokio::task::spawn_blocking(move || pids.map(wait_ended));
    let mut sigchld = watch(tokio::signal::unix::SignalKind::child());
    h.sup.stop_all(&mut sigchld).await;
    stopped.await.unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "b\na\n");
    for name in ["a", "b", "flaky"] {
        assert_eq!(h.state(name), "inactive", "{name}");
    }
    assert_eq!(h.status("a").last_exit.unwrap().code, 0);
    assert_eq!(
        answer(h.ask(Request::Ping)).await.unwrap_err(),
        "init is shutting down"
    );
    // The cancelled restart's timer fires into a supervisor that ignores it.
    h.timer().await;
    assert_eq!(h.state("flaky"), "inactive");
}

/// Before the service state was one enum, a restart that waited for the
/// stop went ahead during shutdown, and shutdown waited for the restarted
/// service in vain.
#[tokio::test(start_paused = true)]
async fn shutdown_answers_a_restart_waiting_for_the_stop() {
    let mut h = Harness::new(Duration::from_secs(2));
    let pid = h.running("web", "");
    let restarted = h.ask(restart("web"));
    let stopped = tokio::task::spawn_blocking(move || wait_ended(pid));
    let mut sigchld = watch(tokio::signal::unix::SignalKind::child());
    h.sup.stop_all(&mut sigchld).await;
    stopped.await.unwrap();
    assert_eq!(
        answer(restarted).await.unwrap_err(),
        "init is shutting down"
    );
    assert_eq!(h.state("web"), "inactive");
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_service_is_stopped_and_restarted_as_after_a_failure() {
    let mut h = Harness::new(NEVER);
    let extra = format!("Restart = \"on-failure\"\nRestartSec = 3\n{FAILING_CHECK}");
    let pid = h.running("web", &extra);
    h.until_unhealthy("web").await;
    assert_eq!(h.state("web"), "stopping");
    h.exited(pid).await;
    let status = h.status("web");
    assert_eq!(status.state, "restarting");
    assert_eq!(status.last_exit.unwrap().signal, Some(15));
    assert_eq!(status.health.unwrap().unhealthy_restarts, 1);
    assert_eq!(h.timer().await, "RestartDue(web)");
    assert_eq!(h.state("web"), "running");
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_health_stop_keeps_the_service_stopped() {
    let mut h = Harness::new(NEVER);
    let pid = h.running("web", &format!("Restart = \"always\"\n{FAILING_CHECK}"));
    h.until_unhealthy("web").await;
    let stopped = h.ask(stop("web"));
    h.exited(pid).await;
    assert_eq!(answer(stopped).await.unwrap(), "Service 'web' stopped");
    let status = h.status("web");
    assert_eq!(status.state, "inactive");
    assert_eq!(status.health.unwrap().unhealthy_restarts, 0);
}

#[tokio::test(start_paused = true)]
async fn a_sigkill_while_the_kernel_counts_an_oom_kill_is_an_oom_kill() {
    let mut h = Harness::new(NEVER);
    let pid = h.running("hog", "Restart = \"on-failure\"\nRestartSec = 1\n");
    signal_group(pid, Signal::SIGKILL);
    let waited =
        tokio::task::spawn_blocking(move || nix::sys::wait::waitpid(Pid::from_raw(pid), None));
    let status = waited.await.unwrap().unwrap();
    assert_eq!(
        status,
        nix::sys::wait::WaitStatus::Signaled(Pid::from_raw(pid), Signal::SIGKILL, false)
    );
    // The reap saw one new OOM kill in the kernel's count.
    let mut oom_kills = 1;
    h.sup
        .on_exit(pid, crate::reaper::ExitStatus::Signaled(9), &mut oom_kills);
    assert_eq!(oom_kills, 0);
    let status = h.status("hog");
    let exit = status.last_exit.unwrap();
    assert!(exit.oom_killed);
    assert_eq!(
        exit.description,
        "killed by SIGKILL (status 137) by the kernel's OOM killer (out of memory)"
    );
    assert_eq!(status.state, "restarting");
    assert_eq!(h.sup.services_oom_killed, 1);
}
