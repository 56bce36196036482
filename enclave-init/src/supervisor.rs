//! The supervisor: one task that owns every service's state and is the only
//! one to spawn, signal and reap processes, so there are no locks and no
//! race between a spawn and the death of the process spawned.
//!
//! It reacts to: SIGCHLD (reap everything, apply restart policies), control
//! requests (through [`SupervisorHandle`]), restart and kill timers, SIGHUP
//! (reload), SIGTERM/SIGINT (stop everything in reverse start order, then
//! return), SIGUSR1/SIGUSR2 (forwarded to every running service), and the
//! health monitors of running services (probe results, command probes to
//! spawn or kill; see [`crate::health`]).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::process::{Command as ProcessCommand, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::accounts::{Accounts, Credentials};
use crate::config::Config;
use crate::api::{
    BrokenFile, ExitInfo, Health, MemoryInfo, Parsed, Request, Response, ServiceInfo,
    ServiceSummary, SystemInfo,
};
use crate::defs::*;
use crate::deps::{StartPlan, format_cycle, plan};
use crate::health::{ExecSpawned, HealthEvent, Monitor, ProbeOutcome, Tracker, Verdict};
use crate::logs::{self, ServiceLog, SharedLog};
use crate::privileges;
use crate::reaper::{self, ExitStatus, OomTracker};
use crate::service::{self, ServiceDef, validate_name};

/// How the note of a service caught in a dependency cycle begins.
const CYCLE_NOTE: &str = "dependency cycle: ";

/// What init should do once the supervisor returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit the process (not PID 1, or asked to stop).
    Exit,
    /// Reboot the machine.
    Reboot,
    /// Power the machine off.
    PowerOff,
}

/// What the supervisor needs besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Whether init runs with its PID-1 duties (decides reboot versus exit).
    pub pid1: bool,
    /// Parent CID handed to services as [`PARENT_CID_ENV`].
    pub parent_cid: Option<u32>,
    /// The `/cmd` service of AWS-style images, if any.
    pub compat_cmd: Option<ServiceDef>,
}

enum Command {
    Request(Request, oneshot::Sender<Response>),
    RestartDue { name: String, generation: u64 },
    KillDue { name: String, generation: u64 },
}

/// Sends requests to the supervisor; cheap to clone.
#[derive(Clone, Debug)]
pub struct SupervisorHandle {
    tx: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Request(r, _) => write!(f, "Request({r:?})"),
            Command::RestartDue { name, .. } => write!(f, "RestartDue({name})"),
            Command::KillDue { name, .. } => write!(f, "KillDue({name})"),
        }
    }
}

impl SupervisorHandle {
    /// Sends a request and waits for the answer.
    pub async fn call(&self, request: Request) -> Response {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Request(request, tx)).await.is_err() {
            return Response::error("init is shutting down");
        }
        rx.await
            .unwrap_or_else(|_| Response::error("init is shutting down"))
    }

    /// Answers a parsed wire request (unknown tags get an error).
    pub async fn answer(&self, parsed: Parsed) -> Response {
        match parsed {
            Parsed::Known(request) => self.call(request).await,
            Parsed::Unknown(unknown) => Response::error(unknown.message()),
        }
    }
}

#[derive(Debug)]
enum RunState {
    Inactive,
    Running { pid: i32 },
    Stopping { pid: i32 },
    RestartPending { at: Instant },
    Exited,
    Failed,
    Blocked,
}

impl RunState {
    fn name(&self) -> &'static str {
        match self {
            RunState::Inactive => "inactive",
            RunState::Running { .. } => "running",
            RunState::Stopping { .. } => "stopping",
            RunState::RestartPending { .. } => "restarting",
            RunState::Exited => "exited",
            RunState::Failed => "failed",
            RunState::Blocked => "blocked",
        }
    }

    fn pid(&self) -> Option<i32> {
        match self {
            RunState::Running { pid } | RunState::Stopping { pid } => Some(*pid),
            _ => None,
        }
    }
}

struct Service {
    def: ServiceDef,
    log: SharedLog,
    run: RunState,
    restart_count: u32,
    last_exit: Option<ExitInfo>,
    generation: u64,
    note: Option<String>,
    stop_waiters: Vec<oneshot::Sender<Response>>,
    restart_reply: Option<oneshot::Sender<Response>>,
    remove_on_exit: bool,
    exit_note: Option<oneshot::Sender<String>>,
    started_at: Option<Instant>,
    run_as: Option<Credentials>,
    /// Health of the current (or last) run, when the service has a check.
    health: Option<Tracker>,
    /// Cancels the health monitor of the running process.
    monitor: Option<CancellationToken>,
    /// Counts runs, so that results of a previous run's monitor are ignored.
    health_run: u64,
    /// The process is being stopped because it was unhealthy: its exit
    /// goes through the restart policy as a failure.
    health_stop: bool,
}

impl Service {
    fn new(def: ServiceDef, config: &Config) -> Self {
        let log = ServiceLog::new(&config.log_dir, &def.name, config.logs).shared();
        Self {
            def,
            log,
            run: RunState::Inactive,
            restart_count: 0,
            last_exit: None,
            generation: 0,
            note: None,
            stop_waiters: Vec::new(),
            restart_reply: None,
            remove_on_exit: false,
            exit_note: None,
            started_at: None,
            run_as: None,
            health: None,
            monitor: None,
            health_run: 0,
            health_stop: false,
        }
    }

    /// Ends the health monitor of the current run, if any.
    fn stop_monitor(&mut self) {
        if let Some(cancel) = self.monitor.take() {
            cancel.cancel();
        }
    }

    fn active(&self) -> bool {
        self.run.pid().is_some()
    }

    /// Writes a line from init itself into the service's log.
    fn log_event(&self, text: &str) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.write_line(format!("[init] {text}").as_bytes());
    }

    fn summary(&self) -> ServiceSummary {
        ServiceSummary {
            name: self.def.name.clone(),
            enabled: self.def.enabled,
            active: self.active(),
            state: self.run.name().into(),
            restart_policy: self.def.restart,
            restart_count: self.restart_count,
            pid: self.run.pid(),
            health: self
                .health
                .as_ref()
                .map_or(Health::None, |tracker| tracker.health()),
        }
    }

    fn info(&self, config: &Config) -> ServiceInfo {
        let log_dir = &config.log_dir;
        let p = &self.def.privileges;
        ServiceInfo {
            name: self.def.name.clone(),
            enabled: self.def.enabled,
            active: self.active(),
            state: self.run.name().into(),
            pid: self.run.pid(),
            running_secs: self
                .started_at
                .filter(|_| self.active())
                .map(|t| t.elapsed().as_secs()),
            restart_policy: self.def.restart,
            restart_count: self.restart_count,
            restart_sec: self.def.restart_sec.as_secs_f64(),
            restart_in_ms: match self.run {
                RunState::RestartPending { at } => {
                    Some(at.saturating_duration_since(Instant::now()).as_millis() as u64)
                }
                _ => None,
            },
            exit_status: self.last_exit.as_ref().map(|e| e.code),
            last_exit: self.last_exit.clone(),
            exec_start: self.def.exec_start.clone(),
            working_directory: self
                .def
                .working_directory_set
                .then(|| self.def.working_directory.display().to_string()),
            dependencies: self.def.deps.clone(),
            note: self.note.clone(),
            log_file: logs::log_path(log_dir, &self.def.name)
                .display()
                .to_string(),
            rss_bytes: self.run.pid().and_then(reaper::process_rss),
            log_lines_lost: self.log.lock().map_or(0, |l| l.write_errors()),
            user: p.user.as_ref().map(ToString::to_string),
            group: p.group.as_ref().map(ToString::to_string),
            supplementary_groups: p
                .supplementary_groups
                .iter()
                .map(ToString::to_string)
                .collect(),
            run_as: self.run_as.clone(),
            state_directories: p
                .state_directories
                .iter()
                .map(|d| config.state_directory_root.join(d).display().to_string())
                .collect(),
            health: self
                .health
                .as_ref()
                .map(|tracker| tracker.info(Instant::now())),
        }
    }
}

/// A command probe's process, until it is reaped.
struct ProbeProcess {
    service: String,
    exit: oneshot::Sender<ExitStatus>,
}

/// The supervisor task's state.
pub struct Supervisor {
    config: Arc<Config>,
    ctx: Context,
    services: BTreeMap<String, Service>,
    plan: StartPlan,
    broken: Vec<BrokenFile>,
    tx: mpsc::Sender<Command>,
    rx: mpsc::Receiver<Command>,
    health_tx: mpsc::Sender<HealthEvent>,
    health_rx: mpsc::Receiver<HealthEvent>,
    probes: BTreeMap<i32, ProbeProcess>,
    started: Instant,
    oom: OomTracker,
    orphans_reaped: u64,
    services_oom_killed: u64,
    shutting_down: bool,
    outcome: Option<Outcome>,
}

impl Supervisor {
    /// A supervisor for `config`, and the handle to reach it.
    pub fn new(config: Arc<Config>, ctx: Context) -> (Self, SupervisorHandle) {
        let (tx, rx) = mpsc::channel(SUPERVISOR_QUEUE);
        let handle = SupervisorHandle { tx: tx.clone() };
        let (health_tx, health_rx) = mpsc::channel(SUPERVISOR_QUEUE);
        let supervisor = Self {
            config,
            ctx,
            services: BTreeMap::new(),
            plan: StartPlan::default(),
            broken: Vec::new(),
            tx,
            rx,
            health_tx,
            health_rx,
            probes: BTreeMap::new(),
            started: Instant::now(),
            oom: OomTracker::new(),
            orphans_reaped: 0,
            services_oom_killed: 0,
            shutting_down: false,
            outcome: None,
        };
        (supervisor, handle)
    }

    /// Loads and starts the services, then supervises them until a signal,
    /// a reboot/shutdown request or `cancel` ends it; stops every service
    /// (reverse start order, SIGTERM, grace period, SIGKILL) before returning.
    pub async fn run(mut self, cancel: CancellationToken) -> Outcome {
        let mut sigchld = watch(SignalKind::child());
        let mut sighup = watch(SignalKind::hangup());
        let mut sigterm = watch(SignalKind::terminate());
        let mut sigint = watch(SignalKind::interrupt());
        let mut sigusr1 = watch(SignalKind::user_defined1());
        let mut sigusr2 = watch(SignalKind::user_defined2());
        // A safety net in case a SIGCHLD is ever missed.
        let mut sweep = tokio::time::interval(Duration::from_secs(5));
        let summary = self.reload();
        tracing::info!("services loaded: {summary}");
        let outcome = loop {
            tokio::select! {
                _ = next(&mut sigchld) => self.reap(),
                _ = sweep.tick() => self.reap(),
                Some(cmd) = self.rx.recv() => self.handle(cmd),
                Some(event) = self.health_rx.recv() => self.on_health(event),
                _ = next(&mut sighup) => {
                    let summary = self.reload();
                    tracing::info!("SIGHUP: {summary}");
                }
                _ = next(&mut sigterm) => {
                    tracing::info!("SIGTERM: shutting down");
                    break self.signal_outcome();
                }
                _ = next(&mut sigint) => {
                    tracing::info!("SIGINT: shutting down");
                    break self.signal_outcome();
                }
                _ = next(&mut sigusr1) => self.forward(Signal::SIGUSR1),
                _ = next(&mut sigusr2) => self.forward(Signal::SIGUSR2),
                _ = cancel.cancelled() => break Outcome::Exit,
            }
            if let Some(outcome) = self.outcome.take() {
                break outcome;
            }
        };
        self.stop_all(&mut sigchld).await;
        outcome
    }

    fn signal_outcome(&self) -> Outcome {
        if self.ctx.pid1 {
            Outcome::PowerOff
        } else {
            Outcome::Exit
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Request(request, reply) => self.request(request, reply),
            Command::RestartDue { name, generation } => self.restart_due(&name, generation),
            Command::KillDue { name, generation } => self.kill_due(&name, generation),
        }
    }

    fn request(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        if self.shutting_down {
            let _ = reply.send(Response::error("init is shutting down"));
            return;
        }
        if let Some(name) = request.service_name()
            && let Err(err) = validate_name(name)
        {
            let _ = reply.send(Response::error(err.to_string()));
            return;
        }
        if !matches!(
            request,
            Request::Ping
                | Request::ListServices
                | Request::ServiceStatus { .. }
                | Request::ServiceLogs { .. }
                | Request::SystemStatus
        ) {
            tracing::info!("control request: {request:?}");
        }
        let response = match request {
            Request::Ping => Response::Pong,
            Request::ListServices => Response::ServiceList {
                services: self.services.values().map(Service::summary).collect(),
            },
            Request::ServiceStatus { name } => match self.services.get(&name) {
                Some(svc) => Response::ServiceStatus {
                    status: svc.info(&self.config),
                },
                None => Response::error(self.not_found(&name)),
            },
            Request::ServiceStart { name } => {
                let mut visiting = BTreeSet::new();
                match self.start(&name, true, &mut visiting) {
                    Ok(message) => Response::success(message),
                    Err(message) => Response::error(message),
                }
            }
            Request::ServiceStop { name } => return self.stop(&name, Some(reply)),
            Request::ServiceRestart { name } => return self.restart(&name, reply),
            Request::ServiceEnable { name, now } => return self.enable(&name, now, reply),
            Request::ServiceDisable { name, now } => return self.disable(&name, now, reply),
            Request::ServiceLogs { name, lines } => return self.logs(name, lines, reply),
            Request::ServiceLogsClear { name } => match self.services.get(&name) {
                Some(svc) => {
                    let mut log = svc.log.lock().unwrap_or_else(|e| e.into_inner());
                    match log.clear() {
                        Ok(()) => Response::success(format!("Logs of '{name}' cleared")),
                        Err(err) => {
                            Response::error(format!("cannot clear logs of '{name}': {err}"))
                        }
                    }
                }
                None => Response::error(self.not_found(&name)),
            },
            Request::SystemStatus => Response::SystemStatus {
                status: self.system_info(),
            },
            Request::SystemReload => Response::success(self.reload()),
            Request::SystemReboot | Request::SystemShutdown => {
                let reboot = matches!(request, Request::SystemReboot);
                let (outcome, message) = match (self.ctx.pid1, reboot) {
                    (true, true) => (Outcome::Reboot, "System is rebooting"),
                    (true, false) => (Outcome::PowerOff, "System is shutting down"),
                    (false, _) => (
                        Outcome::Exit,
                        "Stopping all services; init exits (not PID 1, so no reboot or power-off)",
                    ),
                };
                tracing::info!("{message} (requested over the control socket)");
                self.outcome = Some(outcome);
                Response::success(message)
            }
        };
        let _ = reply.send(response);
    }

    fn not_found(&self, name: &str) -> String {
        let file = format!("/{name}{SERVICE_SUFFIX}");
        match self.broken.iter().find(|b| b.file.ends_with(&file)) {
            Some(b) => format!("service '{name}' is not loaded: {}", b.error),
            None => format!("service '{name}' not found"),
        }
    }

    /// Re-reads the service directory: adds new services, removes deleted
    /// ones (stopping them), updates changed definitions (used at their next
    /// start), and starts what is new or newly enabled, in dependency order.
    fn reload(&mut self) -> String {
        let mut loaded = service::load_dir(&self.config.service_dir);
        if let Some(cmd) = &self.ctx.compat_cmd {
            if loaded.services.contains_key(&cmd.name) {
                tracing::warn!(
                    "{}{SERVICE_SUFFIX} exists: it replaces the /cmd of the image",
                    cmd.name
                );
            } else {
                loaded.services.insert(cmd.name.clone(), cmd.clone());
            }
        }
        self.broken = loaded
            .broken
            .into_iter()
            .map(|(file, error)| BrokenFile { file, error })
            .collect();
        let removed: Vec<String> = self
            .services
            .keys()
            .filter(|n| !loaded.services.contains_key(*n))
            .cloned()
            .collect();
        for name in &removed {
            tracing::info!("service '{name}' removed: stopping it");
            let active = self.services.get(name).is_some_and(Service::active);
            if active {
                if let Some(svc) = self.services.get_mut(name) {
                    svc.remove_on_exit = true;
                }
                self.stop(name, None);
            } else {
                self.services.remove(name);
            }
        }
        let mut to_start = BTreeSet::new();
        let (mut added, mut changed) = (0, 0);
        for (name, def) in loaded.services {
            match self.services.get_mut(&name) {
                // Back before a removal finished: keep it.
                Some(svc) if svc.def == def => svc.remove_on_exit = false,
                Some(svc) => {
                    changed += 1;
                    // Newly enabled, or a failed service whose file was fixed.
                    if def.enabled && (!svc.def.enabled || matches!(svc.run, RunState::Failed)) {
                        to_start.insert(name.clone());
                    }
                    svc.def = def;
                    svc.remove_on_exit = false;
                }
                None => {
                    added += 1;
                    if def.enabled {
                        to_start.insert(name.clone());
                    }
                    self.services
                        .insert(name.clone(), Service::new(def, &self.config));
                }
            }
        }
        // Services blocked by a requirement get another chance.
        to_start.extend(
            self.services
                .iter()
                .filter(|(_, s)| s.def.enabled && matches!(s.run, RunState::Blocked))
                .map(|(n, _)| n.clone()),
        );
        self.replan();
        let order = self.plan.order.clone();
        for name in order.iter().filter(|n| to_start.contains(*n)) {
            let mut visiting = BTreeSet::new();
            if let Err(err) = self.start(name, false, &mut visiting) {
                tracing::error!("{err}");
            }
        }
        format!(
            "Reloaded: {added} added, {} removed, {changed} changed, {} broken file(s)",
            removed.len(),
            self.broken.len()
        )
    }

    fn replan(&mut self) {
        let deps = self
            .services
            .iter()
            .map(|(n, s)| (n.clone(), s.def.deps.clone()))
            .collect();
        self.plan = plan(&deps);
        for cycle in &self.plan.cycles {
            tracing::error!(
                "Failed to compute startup order: circular dependency {}; those services start in name order",
                format_cycle(cycle)
            );
        }
        for (name, missing) in &self.plan.missing_requires {
            tracing::error!("service '{name}' requires '{missing}', which does not exist");
        }
        for (name, svc) in self.services.iter_mut() {
            match self.plan.cycle_of(name) {
                Some(cycle) => svc.note = Some(format!("{CYCLE_NOTE}{}", format_cycle(cycle))),
                None if svc
                    .note
                    .as_deref()
                    .is_some_and(|n| n.starts_with(CYCLE_NOTE)) =>
                {
                    svc.note = None
                }
                None => {}
            }
        }
    }

    /// Starts `name`. With `pull_in`, required services that are not
    /// running are started first (an operator's `start`); without it (boot,
    /// reload) a required service that is not up blocks this one.
    fn start(
        &mut self,
        name: &str,
        pull_in: bool,
        visiting: &mut BTreeSet<String>,
    ) -> Result<String, String> {
        let Some(svc) = self.services.get(name) else {
            return Err(self.not_found(name));
        };
        match svc.run {
            RunState::Running { .. } => return Ok(format!("Service '{name}' is already running")),
            RunState::Stopping { .. } => return Err(format!("service '{name}' is stopping")),
            _ => {}
        }
        if !visiting.insert(name.to_owned()) {
            return Err(format!("service '{name}' requires itself through a cycle"));
        }
        let (requires, wants) = (svc.def.deps.requires.clone(), svc.def.deps.wants.clone());
        for wanted in &wants {
            self.pull_in_wanted(name, wanted, visiting);
        }
        for required in &requires {
            if let Err(reason) = self.ensure_required(required, pull_in, visiting) {
                let note = format!("not started: requires '{required}', which {reason}");
                if let Some(svc) = self.services.get_mut(name) {
                    svc.run = RunState::Blocked;
                    svc.note = Some(note.clone());
                    svc.log_event(&note);
                }
                return Err(format!("service '{name}' {note}"));
            }
        }
        self.spawn(name)?;
        Ok(format!("Service '{name}' started"))
    }

    /// Starts a wanted service that exists and has not run yet (or was
    /// stopped); a failure is only logged.
    fn pull_in_wanted(&mut self, name: &str, wanted: &str, visiting: &mut BTreeSet<String>) {
        let idle = self
            .services
            .get(wanted)
            .is_some_and(|svc| matches!(svc.run, RunState::Inactive));
        if !idle || visiting.contains(wanted) {
            return;
        }
        if let Err(err) = self.start(wanted, true, visiting) {
            tracing::warn!(
                "service '{name}' wants '{wanted}', which did not start ({err}); starting '{name}' anyway"
            );
        }
    }

    /// Whether a required service is up (or made up, with `pull_in`).
    fn ensure_required(
        &mut self,
        required: &str,
        pull_in: bool,
        visiting: &mut BTreeSet<String>,
    ) -> Result<(), String> {
        let Some(req) = self.services.get(required) else {
            return Err("does not exist".into());
        };
        let satisfied = match req.run {
            RunState::Running { .. } | RunState::RestartPending { .. } => true,
            RunState::Exited => req.last_exit.as_ref().is_some_and(|e| e.code == 0),
            _ => false,
        };
        if satisfied {
            return Ok(());
        }
        if pull_in {
            return self
                .start(required, true, visiting)
                .map(|_| ())
                .map_err(|e| format!("failed to start ({e})"));
        }
        let why = match (&req.run, &req.note) {
            (_, Some(note)) if matches!(req.run, RunState::Failed | RunState::Blocked) => {
                format!("failed ({note})")
            }
            (RunState::Exited | RunState::Failed, _) => match &req.last_exit {
                Some(exit) => format!("failed ({})", exit.description),
                None => "failed".into(),
            },
            _ if !req.def.enabled => "is disabled".into(),
            _ => "is not running".into(),
        };
        Err(why)
    }

    /// The environment of a service: init's (unless cleared), `PATH`, the
    /// configuration's, the parent CID, the user's `USER`/`LOGNAME`/`HOME`
    /// and `STATE_DIRECTORY` (as systemd sets them), then its own.
    fn environment(
        &self,
        def: &ServiceDef,
        creds: Option<&Credentials>,
        state_dirs: &[std::path::PathBuf],
    ) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = if def.clear_environment {
            BTreeMap::new()
        } else {
            // vars() would panic on a non-UTF-8 entry: skip those instead.
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect()
        };
        env.entry("PATH".into())
            .or_insert_with(|| DEFAULT_PATH.into());
        if !def.clear_environment {
            env.extend(self.config.environment.iter().cloned());
        }
        if let Some(cid) = self.ctx.parent_cid {
            env.insert(PARENT_CID_ENV.into(), cid.to_string());
        }
        if let Some(name) = creds.and_then(|c| c.user.name.as_ref()) {
            env.insert("USER".into(), name.clone());
            env.insert("LOGNAME".into(), name.clone());
        }
        if let Some(home) = creds.and_then(|c| c.home.as_ref()) {
            env.insert("HOME".into(), home.display().to_string());
        }
        if !state_dirs.is_empty() {
            let joined: Vec<String> = state_dirs.iter().map(|d| d.display().to_string()).collect();
            env.insert(STATE_DIRECTORY_ENV.into(), joined.join(":"));
        }
        env.extend(def.environment.iter().cloned());
        env.into_iter().collect()
    }

    /// Resolves whom a service runs as and prepares its state directories.
    /// An account that cannot be resolved is a mistake in the image that a
    /// restart will not fix (`retry: false`); a directory that cannot be
    /// made may be (`retry: true`).
    fn prepare(&self, def: &ServiceDef) -> Result<Prepared, StartFailure> {
        let name = &def.name;
        let p = &def.privileges;
        let (euid, egid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        let creds = Accounts::new(&self.config.accounts)
            .resolve(
                p.user.as_ref(),
                p.group.as_ref(),
                &p.supplementary_groups,
                euid,
            )
            .map_err(|err| StartFailure {
                message: format!("cannot start service '{name}': {err}"),
                retry: false,
            })?;
        let (uid, gid) = creds
            .as_ref()
            .map_or((euid, egid), |c| (c.user.id, c.group.id));
        let state_dirs: Vec<std::path::PathBuf> = p
            .state_directories
            .iter()
            .map(|d| self.config.state_directory_root.join(d))
            .collect();
        for dir in &state_dirs {
            privileges::prepare_state_directory(dir, uid, gid, p.state_directory_mode).map_err(
                |err| StartFailure {
                    message: format!("cannot start service '{name}': {err}"),
                    retry: true,
                },
            )?;
        }
        Ok(Prepared { creds, state_dirs })
    }

    fn spawn(&mut self, name: &str) -> Result<(), String> {
        let Some(svc) = self.services.get(name) else {
            return Err(self.not_found(name));
        };
        let def = svc.def.clone();
        let result = self.prepare(&def).and_then(|prepared| {
            let env = self.environment(&def, prepared.creds.as_ref(), &prepared.state_dirs);
            match spawn_process(&def, &env, prepared.creds.as_ref()) {
                Ok(spawned) => Ok((spawned, prepared.creds)),
                Err(err) => {
                    let who = prepared
                        .creds
                        .as_ref()
                        .map(|c| format!(" as user {} group {}", c.user, c.group))
                        .unwrap_or_default();
                    Err(StartFailure {
                        message: format!(
                            "cannot start service '{name}': {:?} in {}{who}: {err}",
                            def.argv[0],
                            def.working_directory.display()
                        ),
                        retry: true,
                    })
                }
            }
        });
        let Some(svc) = self.services.get_mut(name) else {
            return Err(format!("service '{name}' vanished"));
        };
        match result {
            Ok(((pid, pipe), creds)) => {
                let who = creds
                    .as_ref()
                    .map(|c| format!(" as user {} group {}", c.user, c.group))
                    .unwrap_or_default();
                tracing::info!(
                    "starting service '{name}' (pid {pid}){who}: {}",
                    def.exec_start
                );
                svc.log_event(&format!("started pid {pid}{who}: {}", def.exec_start));
                svc.run = RunState::Running { pid };
                svc.run_as = creds;
                let now = Instant::now();
                svc.started_at = Some(now);
                svc.health_stop = false;
                svc.stop_monitor();
                svc.health_run += 1;
                match def.health.clone() {
                    Some(check) => {
                        match &mut svc.health {
                            Some(tracker) => tracker.restart(check.clone(), now),
                            None => svc.health = Some(Tracker::new(check.clone(), now)),
                        }
                        let monitor = Monitor::new(
                            name.to_owned(),
                            svc.health_run,
                            check,
                            self.health_tx.clone(),
                        );
                        svc.monitor = Some(monitor.spawn());
                    }
                    None => svc.health = None,
                }
                if !matches!(&svc.note, Some(n) if n.starts_with(CYCLE_NOTE)) {
                    svc.note = None;
                }
                let (note_tx, note_rx) = oneshot::channel();
                svc.exit_note = Some(note_tx);
                tokio::spawn(logs::capture(pipe, svc.log.clone(), note_rx));
                Ok(())
            }
            Err(StartFailure { message, retry }) => {
                tracing::error!("{message}");
                svc.log_event(&message);
                svc.note = Some(message.clone());
                svc.run = RunState::Failed;
                if retry && def.restart.restarts(false) {
                    self.schedule_restart(name);
                }
                Err(message)
            }
        }
    }

    fn schedule_restart(&mut self, name: &str) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let delay = svc.def.restart_sec.max(MIN_RESTART_DELAY);
        svc.generation += 1;
        svc.run = RunState::RestartPending {
            at: Instant::now() + delay,
        };
        let (tx, generation, name) = (self.tx.clone(), svc.generation, name.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Command::RestartDue { name, generation }).await;
        });
    }

    fn restart_due(&mut self, name: &str, generation: u64) {
        let due = self.services.get(name).is_some_and(|s| {
            s.generation == generation && matches!(s.run, RunState::RestartPending { .. })
        });
        if !due || self.shutting_down {
            return;
        }
        if let Some(svc) = self.services.get_mut(name) {
            svc.restart_count += 1;
        }
        tracing::info!("restarting service '{name}'");
        // Requirements are checked again: a service whose required service
        // is gone is blocked, not restarted. Failures are logged and
        // recorded by start (and retried by policy).
        let mut visiting = BTreeSet::new();
        let _ = self.start(name, false, &mut visiting);
    }

    fn stop(&mut self, name: &str, reply: Option<oneshot::Sender<Response>>) {
        let stop_timeout = self.config.stop_timeout;
        self.kill_probes_of(name);
        let Some(svc) = self.services.get_mut(name) else {
            if let Some(reply) = reply {
                let _ = reply.send(Response::error(self.not_found(name)));
            }
            return;
        };
        match svc.run {
            RunState::Running { pid } => {
                tracing::info!("stopping service '{name}' (pid {pid}): SIGTERM");
                svc.stop_monitor();
                svc.health_stop = false;
                signal_group(pid, Signal::SIGTERM);
                svc.run = RunState::Stopping { pid };
                svc.generation += 1;
                svc.stop_waiters.extend(reply);
                let (tx, generation, name) = (self.tx.clone(), svc.generation, name.to_owned());
                tokio::spawn(async move {
                    tokio::time::sleep(stop_timeout).await;
                    let _ = tx.send(Command::KillDue { name, generation }).await;
                });
            }
            RunState::Stopping { .. } => {
                // Whoever asks now wants it stopped, not restarted for its health.
                svc.health_stop = false;
                svc.stop_waiters.extend(reply);
            }
            RunState::RestartPending { .. } => {
                svc.generation += 1;
                svc.run = RunState::Inactive;
                if let Some(reply) = reply {
                    let _ = reply.send(Response::success(format!(
                        "Service '{name}' stopped (pending restart cancelled)"
                    )));
                }
            }
            _ => {
                if let Some(reply) = reply {
                    let _ = reply.send(Response::success(format!(
                        "Service '{name}' is not running"
                    )));
                }
            }
        }
    }

    fn kill_due(&mut self, name: &str, generation: u64) {
        if let Some(svc) = self.services.get(name)
            && svc.generation == generation
            && let RunState::Stopping { pid } = svc.run
        {
            tracing::warn!(
                "service '{name}' (pid {pid}) did not stop within {:?}: SIGKILL",
                self.config.stop_timeout
            );
            svc.log_event("did not stop in time: SIGKILL");
            signal_group(pid, Signal::SIGKILL);
        }
    }

    fn restart(&mut self, name: &str, reply: oneshot::Sender<Response>) {
        let Some(svc) = self.services.get_mut(name) else {
            let _ = reply.send(Response::error(self.not_found(name)));
            return;
        };
        if svc.active() {
            if svc.restart_reply.is_some() {
                let _ = reply.send(Response::error(format!(
                    "service '{name}' is already restarting"
                )));
                return;
            }
            svc.restart_reply = Some(reply);
            self.stop(name, None);
            return;
        }
        svc.generation += 1;
        svc.restart_count += 1;
        let mut visiting = BTreeSet::new();
        let response = match self.start(name, true, &mut visiting) {
            Ok(_) => Response::success(format!("Service '{name}' restarted")),
            Err(err) => Response::error(err),
        };
        let _ = reply.send(response);
    }

    fn enable(&mut self, name: &str, now: bool, reply: oneshot::Sender<Response>) {
        let result = service::enable_file(&self.config.service_dir, name)
            .and_then(|path| ServiceDef::load(name, &path, true));
        let def = match result {
            Ok(def) => def,
            Err(err) => {
                let _ = reply.send(Response::error(format!("cannot enable '{name}': {err}")));
                return;
            }
        };
        self.broken
            .retain(|b| !b.file.ends_with(&format!("/{name}{SERVICE_SUFFIX}")));
        match self.services.get_mut(name) {
            Some(svc) => {
                svc.def = def;
                svc.remove_on_exit = false;
            }
            None => {
                self.services
                    .insert(name.to_owned(), Service::new(def, &self.config));
            }
        }
        self.replan();
        tracing::info!("service '{name}' enabled");
        let response = if now {
            let mut visiting = BTreeSet::new();
            match self.start(name, true, &mut visiting) {
                Ok(message) => Response::success(format!("Service '{name}' enabled; {message}")),
                Err(err) => Response::error(format!("Service '{name}' enabled, but {err}")),
            }
        } else {
            Response::success(format!("Service '{name}' enabled"))
        };
        let _ = reply.send(response);
    }

    fn disable(&mut self, name: &str, now: bool, reply: oneshot::Sender<Response>) {
        if let Err(err) = service::disable_file(&self.config.service_dir, name) {
            let _ = reply.send(Response::error(format!("cannot disable '{name}': {err}")));
            return;
        }
        if let Some(svc) = self.services.get_mut(name) {
            svc.def.enabled = false;
        }
        tracing::info!("service '{name}' disabled");
        if now {
            if self.services.get(name).is_some_and(Service::active) {
                return self.stop(name, Some(reply));
            }
            // Not running, but maybe waiting to restart: cancel that.
            self.stop(name, None);
        }
        let _ = reply.send(Response::success(format!("Service '{name}' disabled")));
    }

    fn logs(&mut self, name: String, lines: usize, reply: oneshot::Sender<Response>) {
        if !self.services.contains_key(&name) {
            let _ = reply.send(Response::error(self.not_found(&name)));
            return;
        }
        let lines = lines.min(MAX_LOG_LINES);
        let dir = self.config.log_dir.clone();
        let max_files = self.config.logs.max_files;
        tokio::task::spawn_blocking(move || {
            let response = match logs::tail(&dir, &name, max_files, lines, MAX_LOG_REPLY_BYTES) {
                Ok(tail) => Response::ServiceLogs {
                    name,
                    lines: tail.lines,
                    truncated: tail.truncated,
                },
                Err(err) => Response::error(format!("cannot read logs of '{name}': {err}")),
            };
            let _ = reply.send(response);
        });
    }

    fn system_info(&self) -> SystemInfo {
        SystemInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_secs: self.started.elapsed().as_secs(),
            pid1: self.ctx.pid1,
            services_total: self.services.len(),
            services_enabled: self.services.values().filter(|s| s.def.enabled).count(),
            services_active: self.services.values().filter(|s| s.active()).count(),
            service_dir: self.config.service_dir.display().to_string(),
            log_dir: self.config.log_dir.display().to_string(),
            config_source: self.config.source.to_string(),
            memory: MemoryInfo::read(),
            kernel_oom_kills: reaper::kernel_oom_kills(),
            services_oom_killed: self.services_oom_killed,
            orphans_reaped: self.orphans_reaped,
            console_lines_dropped: crate::console::dropped_lines(),
            start_order: self.plan.order.clone(),
            dependency_cycles: self.plan.cycles.iter().map(|c| format_cycle(c)).collect(),
            broken_files: self.broken.clone(),
            parent_cid: self.ctx.parent_cid,
        }
    }

    /// An event of a health monitor.
    fn on_health(&mut self, event: HealthEvent) {
        match event {
            HealthEvent::Result {
                service,
                run,
                outcome,
                ended,
                at,
                took,
            } => self.health_result(&service, run, outcome, (ended, at, took)),
            HealthEvent::SpawnExec {
                service,
                run,
                argv,
                reply,
            } => {
                let result = self.spawn_probe(&service, run, &argv);
                if let Err(Ok(orphan)) = reply.send(result) {
                    // The monitor ended meanwhile: nobody waits for this probe.
                    signal_group(orphan.pid, Signal::SIGKILL);
                }
            }
            HealthEvent::KillExec { pid } => {
                if let Some(probe) = self.probes.get(&pid) {
                    tracing::info!(
                        "health check of '{}' (pid {pid}) timed out: SIGKILL",
                        probe.service
                    );
                    signal_group(pid, Signal::SIGKILL);
                }
            }
        }
    }

    /// Records a probe's result; acts when the service just became unhealthy.
    fn health_result(
        &mut self,
        name: &str,
        run: u64,
        outcome: ProbeOutcome,
        (ended, at, took): (Instant, std::time::SystemTime, Duration),
    ) {
        if self.shutting_down {
            return;
        }
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if svc.health_run != run || !matches!(svc.run, RunState::Running { .. }) {
            return;
        }
        let Some(tracker) = svc.health.as_mut() else {
            return;
        };
        let (healthy, message) = (outcome.healthy, outcome.message.clone());
        let before = tracker.health();
        let verdict = tracker.record(outcome, ended, at, took);
        if healthy && before == Health::Unhealthy {
            tracing::info!("service '{name}' is healthy again: {message}");
            svc.log_event(&format!("healthy again: {message}"));
        } else if !healthy {
            tracing::debug!(
                "health check of '{name}' failed ({} consecutive): {message}",
                tracker.consecutive_failures()
            );
        }
        if verdict == Verdict::Unhealthy {
            self.unhealthy(name);
        }
    }

    /// A service reached its threshold of failed probes: logged, counted,
    /// and restarted if its restart policy restarts after a failure.
    fn unhealthy(&mut self, name: &str) {
        let Some(svc) = self.services.get(name) else {
            return;
        };
        let Some(tracker) = svc.health.as_ref() else {
            return;
        };
        let policy = svc.def.restart;
        let restart = policy.restarts(false);
        let action = if restart {
            format!("restarting it (Restart = {})", policy.as_str())
        } else {
            format!(
                "not restarted (Restart = {}): it keeps running, marked unhealthy",
                policy.as_str()
            )
        };
        let text = format!(
            "unhealthy: {} consecutive failed health checks ({}); last: {}; {action}",
            tracker.consecutive_failures(),
            tracker.check(),
            tracker.last_result().unwrap_or("none"),
        );
        tracing::warn!("service '{name}' is {text}");
        svc.log_event(&text);
        if !restart {
            return;
        }
        let pid = svc.run.pid();
        self.stop(name, None);
        if let Some(svc) = self.services.get_mut(name) {
            svc.health_stop = true;
        }
        // A stopped (SIGSTOP) process handles its SIGTERM once it runs again.
        if let Some(pid) = pid {
            signal_group(pid, Signal::SIGCONT);
        }
    }

    /// Starts a command probe of the running service `name` as the service
    /// runs: its user and groups, directory and environment.
    fn spawn_probe(
        &mut self,
        name: &str,
        run: u64,
        argv: &[String],
    ) -> Result<ExecSpawned, String> {
        let Some(svc) = self.services.get(name) else {
            return Err(self.not_found(name));
        };
        if svc.health_run != run || !matches!(svc.run, RunState::Running { .. }) {
            return Err(format!("service '{name}' is no longer running"));
        }
        let def = svc.def.clone();
        let creds = svc.run_as.clone();
        let state_dirs: Vec<std::path::PathBuf> = def
            .privileges
            .state_directories
            .iter()
            .map(|d| self.config.state_directory_root.join(d))
            .collect();
        let env = self.environment(&def, creds.as_ref(), &state_dirs);
        let (pid, output) = spawn_command(argv, &def.working_directory, &env, creds.as_ref())
            .map_err(|err| {
                format!(
                    "cannot start the health check {:?}: {err}",
                    argv.first().map_or("", String::as_str)
                )
            })?;
        let (exit_tx, exit) = oneshot::channel();
        self.probes.insert(
            pid,
            ProbeProcess {
                service: name.to_owned(),
                exit: exit_tx,
            },
        );
        Ok(ExecSpawned { pid, output, exit })
    }

    /// Kills the command probes of `name` still running (its monitor ended).
    fn kill_probes_of(&self, name: &str) {
        for (pid, probe) in &self.probes {
            if probe.service == name {
                signal_group(*pid, Signal::SIGKILL);
            }
        }
    }

    fn forward(&self, signal: Signal) {
        for svc in self.services.values() {
            if let RunState::Running { pid } = svc.run {
                tracing::info!(
                    "forwarding {} to service '{}'",
                    signal.as_str(),
                    svc.def.name
                );
                signal_group(pid, signal);
            }
        }
    }

    /// Reaps every ended child and applies the services' restart policies.
    fn reap(&mut self) {
        let reaped = reaper::reap_all();
        if reaped.is_empty() {
            return;
        }
        let mut oom_kills = self.oom.new_kills();
        for (pid, status) in reaped {
            self.on_exit(pid, status, &mut oom_kills);
        }
    }

    fn on_exit(&mut self, pid: i32, status: ExitStatus, oom_kills: &mut u64) {
        if let Some(probe) = self.probes.remove(&pid) {
            tracing::debug!("health probe of '{}' (pid {pid}) {status}", probe.service);
            // Whatever the probe left in its process group goes with it.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = probe.exit.send(status);
            return;
        }
        let Some(name) = self
            .services
            .iter()
            .find(|(_, s)| s.run.pid() == Some(pid))
            .map(|(n, _)| n.clone())
        else {
            self.orphans_reaped += 1;
            tracing::debug!("reaped orphan pid {pid}: {status}");
            return;
        };
        let shutting_down = self.shutting_down;
        self.kill_probes_of(&name);
        let Some(svc) = self.services.get_mut(&name) else {
            return;
        };
        let was_stopping = matches!(svc.run, RunState::Stopping { .. });
        let health_stop = std::mem::take(&mut svc.health_stop) && was_stopping;
        svc.stop_monitor();
        let oom_killed =
            status.signal() == Some(Signal::SIGKILL as i32) && !was_stopping && *oom_kills > 0;
        if oom_killed {
            *oom_kills -= 1;
            self.services_oom_killed += 1;
        }
        let mut description = status.to_string();
        if oom_killed {
            description.push_str(" by the kernel's OOM killer (out of memory)");
        }
        if oom_killed || (!status.success() && !was_stopping) {
            tracing::warn!("service '{name}' (pid {pid}) {description}");
        } else {
            tracing::info!("service '{name}' (pid {pid}) {description}");
        }
        let note = format!("pid {pid} {description}");
        // The capture task writes the note after the output still in the
        // pipe; if the capture already finished, it is written here.
        let undelivered = match svc.exit_note.take() {
            Some(tx) => tx.send(format!("[init] {note}")).is_err(),
            None => true,
        };
        if undelivered {
            svc.log_event(&note);
        }
        svc.last_exit = Some(ExitInfo {
            code: status.code(),
            signal: status.signal(),
            oom_killed,
            description,
        });
        if was_stopping {
            // Leftovers of the service's process group go with it.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for waiter in svc.stop_waiters.drain(..) {
            let _ = waiter.send(Response::success(format!("Service '{name}' stopped")));
        }
        if let Some(reply) = svc.restart_reply.take() {
            svc.run = RunState::Inactive;
            svc.restart_count += 1;
            let mut visiting = BTreeSet::new();
            let response = match self.start(&name, true, &mut visiting) {
                Ok(_) => Response::success(format!("Service '{name}' restarted")),
                Err(err) => Response::error(err),
            };
            let _ = reply.send(response);
            return;
        }
        if svc.remove_on_exit {
            self.services.remove(&name);
            return;
        }
        if health_stop && !shutting_down && svc.def.restart.restarts(false) {
            if let Some(tracker) = svc.health.as_mut() {
                tracker.count_restart();
            }
            self.schedule_restart(&name);
        } else if was_stopping || shutting_down {
            svc.run = RunState::Inactive;
        } else if svc.def.restart.restarts(status.success()) {
            self.schedule_restart(&name);
        } else if status.success() {
            svc.run = RunState::Exited;
        } else {
            svc.run = RunState::Failed;
        }
    }

    /// Stops every running service in reverse start order, each with its
    /// grace period, answering requests that arrive meanwhile with an error.
    async fn stop_all(&mut self, sigchld: &mut Option<tokio::signal::unix::Signal>) {
        self.shutting_down = true;
        for probe in self.probes.keys() {
            signal_group(*probe, Signal::SIGKILL);
        }
        for svc in self.services.values_mut() {
            svc.stop_monitor();
            if matches!(svc.run, RunState::RestartPending { .. }) {
                svc.generation += 1;
                svc.run = RunState::Inactive;
            }
        }
        let mut order: Vec<String> = self.plan.order.iter().rev().cloned().collect();
        order.extend(
            self.services
                .keys()
                .filter(|n| !self.plan.order.contains(n))
                .cloned(),
        );
        let give_up_after = self.config.stop_timeout + KILL_WAIT;
        for name in order {
            if !self.services.get(&name).is_some_and(Service::active) {
                continue;
            }
            self.stop(&name, None);
            let deadline = tokio::time::Instant::now() + give_up_after;
            while self.services.get(&name).is_some_and(Service::active) {
                tokio::select! {
                    _ = next(sigchld) => self.reap(),
                    Some(cmd) = self.rx.recv() => self.handle(cmd),
                    Some(event) = self.health_rx.recv() => self.on_health(event),
                    _ = tokio::time::sleep(Duration::from_millis(200)) => self.reap(),
                    _ = tokio::time::sleep_until(deadline) => {
                        tracing::error!("service '{name}' survived SIGKILL; giving up on it");
                        break;
                    }
                }
            }
        }
        tracing::info!("all services stopped");
    }
}

/// What a start needs once the service's privileges are settled.
struct Prepared {
    creds: Option<Credentials>,
    state_dirs: Vec<std::path::PathBuf>,
}

/// Why a service could not be started, and whether its restart policy applies.
struct StartFailure {
    message: String,
    retry: bool,
}

/// Starts a service's process: its own process group, stdin from
/// `/dev/null`, stdout and stderr into one pipe whose read end is returned,
/// and, with `creds`, its user and groups set before exec.
fn spawn_process(
    def: &ServiceDef,
    env: &[(String, String)],
    creds: Option<&Credentials>,
) -> std::io::Result<(i32, tokio::net::unix::pipe::Receiver)> {
    spawn_command(&def.argv, &def.working_directory, env, creds)
}

/// Starts `argv` in `dir` as [`spawn_process`] starts a service (used for
/// services and their command probes).
fn spawn_command(
    argv: &[String],
    dir: &std::path::Path,
    env: &[(String, String)],
    creds: Option<&Credentials>,
) -> std::io::Result<(i32, tokio::net::unix::pipe::Receiver)> {
    let Some((program, args)) = argv.split_first() else {
        return Err(std::io::Error::other("empty command"));
    };
    let (read_end, write_end) = std::io::pipe()?;
    let mut cmd = ProcessCommand::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end.try_clone()?))
        .stderr(Stdio::from(write_end))
        .process_group(0);
    if let Some(creds) = creds {
        privileges::drop_to(&mut cmd, creds);
    }
    let child = cmd.spawn()?;
    // The Command holds the pipe's write end: drop it so the capture sees
    // end-of-file once the service (and whatever inherited it) is gone.
    drop(cmd);
    let pid = i32::try_from(child.id()).map_err(|_| std::io::Error::other("pid out of range"))?;
    // Reaping is done by waitpid(-1), never through `child`.
    drop(child);
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read_end.into())?;
    Ok((pid, pipe))
}

/// Sends `signal` to a service's process group, or to the process alone
/// when the group is gone.
fn signal_group(pid: i32, signal: Signal) {
    if killpg(Pid::from_raw(pid), signal).is_err() {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

fn watch(kind: SignalKind) -> Option<tokio::signal::unix::Signal> {
    match signal(kind) {
        Ok(s) => Some(s),
        Err(err) => {
            tracing::error!(%err, "cannot watch signal {}", kind.as_raw_value());
            None
        }
    }
}

async fn next(sig: &mut Option<tokio::signal::unix::Signal>) {
    match sig {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}
