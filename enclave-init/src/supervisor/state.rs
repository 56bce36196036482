//! One service's state: its definition, log, what it is doing
//! ([`RunState`]) and the records shown by `status`.

use std::time::Instant;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::accounts::Credentials;
use crate::api::{ExitInfo, Health, Response, ServiceInfo, ServiceSummary};
use crate::config::Config;
use crate::health::Tracker;
use crate::logs::{self, ServiceLog, SharedLog};
use crate::reaper::{self, ExitStatus};
use crate::service::ServiceDef;

/// What a service is doing.
#[derive(Debug)]
pub(super) enum RunState {
    /// Never started, or stopped.
    Inactive,
    /// Its process runs.
    Running {
        /// The process (and group) id.
        pid: i32,
    },
    /// Its process got SIGTERM (SIGKILL after the grace period).
    Stopping {
        /// The process (and group) id.
        pid: i32,
        /// What happens once it exited.
        then: AfterStop,
        /// Stop requests answered once it exited.
        waiters: Vec<oneshot::Sender<Response>>,
    },
    /// Waiting for its restart delay (a timer of the current generation).
    RestartPending {
        /// When the restart is due.
        at: tokio::time::Instant,
    },
    /// Its process exited with status 0 and is not restarted.
    Exited,
    /// Its process failed (or could not start) and is not restarted.
    Failed,
    /// A service it requires is not up.
    Blocked,
}

/// What happens to a stopping service once its process exited.
#[derive(Debug)]
pub(super) enum AfterStop {
    /// It stays inactive (a stop, a disable, shutdown).
    Stay,
    /// It starts again, and the restart request gets the answer.
    Restart(oneshot::Sender<Response>),
    /// It was unhealthy: the exit goes through the restart policy as a failure.
    HealthRestart,
    /// Its file was removed: the service is forgotten.
    Remove,
}

impl RunState {
    /// The state's name in status records.
    pub(super) fn name(&self) -> &'static str {
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

    /// The process, while there is one.
    pub(super) fn pid(&self) -> Option<i32> {
        match self {
            RunState::Running { pid } | RunState::Stopping { pid, .. } => Some(*pid),
            _ => None,
        }
    }
}

/// A supervised service.
pub(super) struct Service {
    pub(super) def: ServiceDef,
    pub(super) log: SharedLog,
    pub(super) run: RunState,
    pub(super) restart_count: u32,
    pub(super) last_exit: Option<ExitInfo>,
    /// Bumped on every stop and restart schedule: older timers are ignored.
    pub(super) generation: u64,
    pub(super) note: Option<String>,
    pub(super) exit_note: Option<oneshot::Sender<String>>,
    pub(super) started_at: Option<Instant>,
    pub(super) run_as: Option<Credentials>,
    /// Health of the current (or last) run, when the service has a check.
    pub(super) health: Option<Tracker>,
    /// Cancels the health monitor of the running process.
    pub(super) monitor: Option<CancellationToken>,
    /// Counts runs, so that results of a previous run's monitor are ignored.
    pub(super) health_run: u64,
}

impl Service {
    pub(super) fn new(def: ServiceDef, config: &Config) -> Self {
        let log = ServiceLog::new(&config.log_dir, &def.name, config.logs).shared();
        Self {
            def,
            log,
            run: RunState::Inactive,
            restart_count: 0,
            last_exit: None,
            generation: 0,
            note: None,
            exit_note: None,
            started_at: None,
            run_as: None,
            health: None,
            monitor: None,
            health_run: 0,
        }
    }

    /// Ends the health monitor of the current run, if any.
    pub(super) fn stop_monitor(&mut self) {
        if let Some(cancel) = self.monitor.take() {
            cancel.cancel();
        }
    }

    pub(super) fn active(&self) -> bool {
        self.run.pid().is_some()
    }

    /// Keeps a service whose removal is under way (its file is back).
    pub(super) fn keep(&mut self) {
        if let RunState::Stopping { then, .. } = &mut self.run
            && matches!(then, AfterStop::Remove)
        {
            *then = AfterStop::Stay;
        }
    }

    /// Writes a line from init itself into the service's log.
    pub(super) fn log_event(&self, text: &str) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.write_line(format!("[init] {text}").as_bytes());
    }

    pub(super) fn summary(&self) -> ServiceSummary {
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

    pub(super) fn info(&self, config: &Config) -> ServiceInfo {
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
                RunState::RestartPending { at } => Some(
                    at.saturating_duration_since(tokio::time::Instant::now())
                        .as_millis() as u64,
                ),
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
pub(super) struct ProbeProcess {
    pub(super) service: String,
    pub(super) exit: oneshot::Sender<ExitStatus>,
}
