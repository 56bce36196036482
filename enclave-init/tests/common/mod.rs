//! Shared helpers: start the built `init` as an ordinary process on a temp
//! service dir, log dir and `unix:` control socket, and drive it with the
//! built `initctl`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use enclave_init::control::cmd::{Response, ServiceInfo, SystemInfo};

pub const INIT: &str = env!("CARGO_BIN_EXE_init");
pub const INITCTL: &str = env!("CARGO_BIN_EXE_initctl");

pub struct Init {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
}

impl Init {
    pub fn service_dir(&self) -> PathBuf {
        self.dir.path().join("service")
    }
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("init.sock")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("init.stderr")
    }

    /// A temp dir with `service/`, `log/`, `work/`, and `init.yaml` made of
    /// the defaults for tests plus `extra_yaml` (top-level keys).
    pub fn prepare(extra_yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let init = Init { dir, child: None };
        std::fs::create_dir_all(init.service_dir()).unwrap();
        std::fs::create_dir_all(init.work()).unwrap();
        let yaml = format!(
            "service_dir: {}\nlog_dir: {}\nstop_timeout_sec: 2\n{}\n",
            init.service_dir().display(),
            init.log_dir().display(),
            extra_yaml
        );
        let yaml = if yaml.contains("control:") {
            yaml
        } else {
            format!(
                "{yaml}control:\n  unix_socket_path: {}\n",
                init.socket().display()
            )
        };
        std::fs::write(init.dir.path().join("init.yaml"), yaml).unwrap();
        init
    }

    /// Like [`Init::prepare`], with control listeners on `listen` besides the Unix socket.
    pub fn prepare_listening(listen: &[String]) -> Self {
        let init = Self::prepare("");
        let quoted: Vec<String> = listen.iter().map(|a| format!("\"{a}\"")).collect();
        let yaml = format!(
            "service_dir: {}\nlog_dir: {}\ncontrol:\n  unix_socket_path: {}\n  listen: [{}]\n",
            init.service_dir().display(),
            init.log_dir().display(),
            init.socket().display(),
            quoted.join(", ")
        );
        std::fs::write(init.dir.path().join("init.yaml"), yaml).unwrap();
        init
    }

    pub fn service(&self, name: &str, text: &str) {
        std::fs::write(self.service_dir().join(name), text).unwrap();
    }

    /// Starts init and waits until it answers on its socket.
    pub fn start(mut self) -> Self {
        self.spawn(Stdio::from(
            std::fs::File::create(self.stderr_path()).unwrap(),
        ));
        self.wait_ready();
        self
    }

    pub fn spawn(&mut self, stderr: Stdio) {
        self.spawn_with_log(stderr, "info");
    }

    /// Starts init with `RUST_LOG=rust_log` and its stderr on `stderr`.
    pub fn spawn_with_log(&mut self, stderr: Stdio, rust_log: &str) {
        self.spawn_with_env(stderr, rust_log, &[]);
    }

    /// Starts init with `RUST_LOG=rust_log`, more environment, and its stderr on `stderr`.
    pub fn spawn_with_env(
        &mut self,
        stderr: Stdio,
        rust_log: &str,
        env: &[(std::ffi::OsString, std::ffi::OsString)],
    ) {
        let child = Command::new(INIT)
            .arg("--config")
            .arg(self.dir.path().join("init.yaml"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", rust_log)
            .current_dir(self.work())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.socket().exists() && self.ctl(&["ping"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("init did not come up; its log:\n{}", self.stderr());
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// Runs initctl against this init's socket.
    pub fn ctl(&self, args: &[&str]) -> Output {
        initctl(&self.socket(), args)
    }

    /// initctl, which must succeed; its stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "initctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// initctl --json, parsed.
    pub fn json(&self, args: &[&str]) -> Response {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "initctl {args:?}: {e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    pub fn status(&self, name: &str) -> ServiceInfo {
        match self.json(&["status", name]) {
            Response::ServiceStatus { status } => status,
            other => panic!("status {name}: {other:?}"),
        }
    }

    pub fn system(&self) -> SystemInfo {
        match self.json(&["system-status"]) {
            Response::SystemStatus { status } => status,
            other => panic!("system-status: {other:?}"),
        }
    }

    /// Polls `check` until it holds, or panics with `what` and init's log.
    pub fn wait_for(&self, what: &str, timeout: Duration, check: impl FnMut() -> bool) {
        if testkit::eventually(timeout, check) {
            return;
        }
        panic!(
            "timed out waiting for {what}; init's log:\n{}",
            self.stderr()
        );
    }

    pub fn wait_state(&self, name: &str, state: &str) -> ServiceInfo {
        let mut last = None;
        self.wait_for(
            &format!("{name} to be {state}"),
            Duration::from_secs(10),
            || {
                let s = self.status(name);
                let ok = s.state == state;
                last = Some(s);
                ok
            },
        );
        last.unwrap()
    }

    /// Names of services in the order init logged "starting service".
    pub fn start_log_order(&self) -> Vec<String> {
        self.stderr()
            .lines()
            .filter_map(|l| l.split("starting service '").nth(1))
            .filter_map(|rest| rest.split('\'').next())
            .map(str::to_owned)
            .collect()
    }

    /// Sends SIGTERM and waits for init to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        wait_timeout(&mut child, Duration::from_secs(20))
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs initctl against the control socket `socket`.
pub fn initctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(INITCTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("INITCTL_CONFIG")
        .env_remove("INIT_SOCKET")
        .output()
        .unwrap()
}

/// A service that sleeps (runs until stopped).
pub fn sleeper(extra: &str) -> String {
    format!("ExecStart = \"sleep 1000\"\n{extra}\n")
}

/// Lines of a file (empty when missing).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}
