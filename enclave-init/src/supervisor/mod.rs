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
//!
//! - [`handle`]: the handle other tasks send requests through.
//! - `state`: one service's state (`RunState` says
//!   what it is doing and, while it stops, what comes after).
//! - `lifecycle`: the transitions: start, stop, restart, exits, timers, reload.
//! - `requests`: the control requests.
//! - `health`: the health monitors' events.
//! - `process`: spawning and signalling processes, environments.
//! - [`error`]: why a request failed (its text goes to the client).
//!
//! The requests answered are those of [`crate::api`]; this module does not
//! depend on [`crate::control`].

pub mod error;
pub mod handle;
mod health;
mod lifecycle;
mod process;
mod requests;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::signal::unix::SignalKind;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::BrokenFile;
use crate::config::Config;
use crate::defs::*;
use crate::deps::StartPlan;
use crate::health::HealthEvent;
use crate::reaper::{self, OomTracker};
use crate::service::ServiceDef;

pub use error::RequestError;
use handle::Command;
pub use handle::SupervisorHandle;
use process::{next, signal_group, watch};
use state::{ProbeProcess, RunState, Service};

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

/// Where the supervisor as a whole is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Supervising services and answering requests.
    Supervising,
    /// A request asked to end with this outcome: the loop ends next.
    Ending(Outcome),
    /// Stopping every service: requests are refused, nothing restarts.
    ShuttingDown,
}

/// Which children a reap collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reaping {
    /// Every ended child, orphans included (init's duty).
    All,
    /// Only the processes the supervisor started (unit tests share their
    /// process with other tests' children).
    #[cfg_attr(not(test), allow(dead_code))]
    Own,
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
    phase: Phase,
    reaping: Reaping,
}

impl Supervisor {
    /// A supervisor for `config`, and the handle to reach it.
    pub fn new(config: Arc<Config>, ctx: Context) -> (Self, SupervisorHandle) {
        let (tx, rx) = mpsc::channel(SUPERVISOR_QUEUE);
        let handle = SupervisorHandle::new(tx.clone());
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
            phase: Phase::Supervising,
            reaping: Reaping::All,
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
            if let Phase::Ending(outcome) = self.phase {
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

    fn shutting_down(&self) -> bool {
        self.phase == Phase::ShuttingDown
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Request(request, reply) => self.request(request, reply),
            Command::RestartDue { name, generation } => self.restart_due(&name, generation),
            Command::KillDue { name, generation } => self.kill_due(&name, generation),
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
        let reaped = match self.reaping {
            Reaping::All => reaper::reap_all(),
            Reaping::Own => {
                let pids = self.services.values().filter_map(|s| s.run.pid());
                reaper::reap_pids(pids.chain(self.probes.keys().copied()))
            }
        };
        if reaped.is_empty() {
            return;
        }
        let mut oom_kills = self.oom.new_kills();
        for (pid, status) in reaped {
            self.on_exit(pid, status, &mut oom_kills);
        }
    }

    /// Stops every running service in reverse start order, each with its
    /// grace period, answering requests that arrive meanwhile with an error.
    async fn stop_all(&mut self, sigchld: &mut Option<tokio::signal::unix::Signal>) {
        self.phase = Phase::ShuttingDown;
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
