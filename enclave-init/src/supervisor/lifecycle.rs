//! The transitions of a service: start (with its requirements), stop,
//! restart, the exit of its process, the restart and kill timers, and the
//! reload of the service directory.

use std::collections::BTreeSet;

use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::Supervisor;
use super::error::{RequestError, StartError, Unmet};
use super::handle::Command;
use super::process::{kill_leftovers, signal_group, spawn_command, who};
use super::state::{AfterStop, RunState, Service};
use crate::api::{BrokenFile, ExitInfo, Response};
use crate::defs::*;
use crate::deps::{format_cycle, plan};
use crate::health::{Monitor, Tracker};
use crate::logs;
use crate::reaper::ExitStatus;
use crate::service;

/// How the note of a service caught in a dependency cycle begins.
const CYCLE_NOTE: &str = "dependency cycle: ";

impl AfterStop {
    /// What a stopping service does once a second reason to stop came:
    /// a removal overrides a restart (whose request gets an error), a
    /// restart or removal outlasts a plain stop, and a plain stop cancels
    /// a health restart.
    fn and(self, next: AfterStop, name: &str) -> AfterStop {
        match (self, next) {
            (AfterStop::Restart(reply), AfterStop::Remove)
            | (AfterStop::Remove, AfterStop::Restart(reply)) => {
                let _ = reply.send(RequestError::Removing(name.to_owned()).into());
                AfterStop::Remove
            }
            (AfterStop::Restart(first), AfterStop::Restart(second)) => {
                let _ = second.send(RequestError::AlreadyRestarting(name.to_owned()).into());
                AfterStop::Restart(first)
            }
            (current @ (AfterStop::Restart(_) | AfterStop::Remove), _) => current,
            (AfterStop::Stay | AfterStop::HealthRestart, next) => next,
        }
    }
}

impl Supervisor {
    /// Re-reads the service directory: adds new services, removes deleted
    /// ones (stopping them), updates changed definitions (used at their next
    /// start), and starts what is new or newly enabled, in dependency order.
    pub(super) fn reload(&mut self) -> String {
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
            if self.services.get(name).is_some_and(Service::active) {
                self.stop_then(name, AfterStop::Remove, None);
            } else {
                self.services.remove(name);
            }
        }
        let mut to_start = BTreeSet::new();
        let (mut added, mut changed) = (0, 0);
        for (name, def) in loaded.services {
            match self.services.get_mut(&name) {
                // Back before a removal finished: keep it.
                Some(svc) if svc.def == def => svc.keep(),
                Some(svc) => {
                    changed += 1;
                    // Newly enabled, or a failed service whose file was fixed.
                    if def.enabled && (!svc.def.enabled || matches!(svc.run, RunState::Failed)) {
                        to_start.insert(name.clone());
                    }
                    svc.def = def;
                    svc.keep();
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
            if let Err(err) = self.start(name, false, &mut BTreeSet::new()) {
                tracing::error!("{err}");
            }
        }
        format!(
            "Reloaded: {added} added, {} removed, {changed} changed, {} broken file(s)",
            removed.len(),
            self.broken.len()
        )
    }

    /// Computes the start order again and notes the services in a cycle.
    pub(super) fn replan(&mut self) {
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
    pub(super) fn start(
        &mut self,
        name: &str,
        pull_in: bool,
        visiting: &mut BTreeSet<String>,
    ) -> Result<String, RequestError> {
        let Some(svc) = self.services.get(name) else {
            return Err(self.not_found(name));
        };
        match svc.run {
            RunState::Running { .. } => return Ok(format!("Service '{name}' is already running")),
            RunState::Stopping { .. } => return Err(RequestError::Stopping(name.to_owned())),
            _ => {}
        }
        if !visiting.insert(name.to_owned()) {
            return Err(RequestError::Cycle(name.to_owned()));
        }
        let (requires, wants) = (svc.def.deps.requires.clone(), svc.def.deps.wants.clone());
        for wanted in &wants {
            self.pull_in_wanted(name, wanted, visiting);
        }
        for required in requires {
            if let Err(reason) = self.ensure_required(&required, pull_in, visiting) {
                let note = format!("not started: requires '{required}', which {reason}");
                if let Some(svc) = self.services.get_mut(name) {
                    svc.run = RunState::Blocked;
                    svc.log_event(&note);
                    svc.note = Some(note);
                }
                return Err(RequestError::Blocked {
                    name: name.to_owned(),
                    required,
                    reason,
                });
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
    ) -> Result<(), Unmet> {
        let Some(req) = self.services.get(required) else {
            return Err(Unmet::Missing);
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
                .map_err(|e| Unmet::NotStarted(Box::new(e)));
        }
        Err(match (&req.run, &req.note) {
            (RunState::Failed | RunState::Blocked, Some(note)) => Unmet::Failed(note.clone()),
            (RunState::Exited | RunState::Failed, _) => match &req.last_exit {
                Some(exit) => Unmet::Failed(exit.description.clone()),
                None => Unmet::FailedSilently,
            },
            _ if !req.def.enabled => Unmet::Disabled,
            _ => Unmet::NotRunning,
        })
    }

    /// Starts the process of `name` (its requirements are settled) with a
    /// health monitor and log capture; a failure marks it failed and, if
    /// retrying may help, schedules a restart by its policy.
    pub(super) fn spawn(&mut self, name: &str) -> Result<(), RequestError> {
        let Some(svc) = self.services.get(name) else {
            return Err(self.not_found(name));
        };
        let def = svc.def.clone();
        let result = self.prepare(&def).and_then(|prepared| {
            let creds = prepared.creds.as_ref();
            let env = self.environment(&def, creds, &prepared.state_dirs);
            match spawn_command(&def.argv, &def.working_directory, &env, creds) {
                Ok(spawned) => Ok((spawned, prepared.creds)),
                Err(source) => Err(StartError::Spawn {
                    name: name.to_owned(),
                    program: def.argv.first().cloned().unwrap_or_default(),
                    dir: def.working_directory.display().to_string(),
                    who: who(creds),
                    source,
                }),
            }
        });
        let Some(svc) = self.services.get_mut(name) else {
            return Err(RequestError::NotFound(name.to_owned()));
        };
        match result {
            Ok(((pid, pipe), creds)) => {
                let who = who(creds.as_ref());
                tracing::info!(
                    "starting service '{name}' (pid {pid}){who}: {}",
                    def.exec_start
                );
                svc.log_event(&format!("started pid {pid}{who}: {}", def.exec_start));
                svc.run = RunState::Running { pid };
                svc.run_as = creds;
                let now = std::time::Instant::now();
                svc.started_at = Some(now);
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
            Err(err) => {
                let message = err.to_string();
                tracing::error!("{message}");
                svc.log_event(&message);
                svc.note = Some(message);
                svc.run = RunState::Failed;
                if err.retry() && def.restart.restarts(false) {
                    self.schedule_restart(name);
                }
                Err(err.into())
            }
        }
    }

    /// Waits the service's restart delay, then restarts it (unless a
    /// stop, a start or shutdown came first).
    pub(super) fn schedule_restart(&mut self, name: &str) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let delay = svc.def.restart_sec.max(MIN_RESTART_DELAY);
        svc.generation += 1;
        svc.run = RunState::RestartPending {
            at: tokio::time::Instant::now() + delay,
        };
        let (tx, generation, name) = (self.tx.clone(), svc.generation, name.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Command::RestartDue { name, generation }).await;
        });
    }

    /// A restart delay ended.
    pub(super) fn restart_due(&mut self, name: &str, generation: u64) {
        let due = self.services.get(name).is_some_and(|s| {
            s.generation == generation && matches!(s.run, RunState::RestartPending { .. })
        });
        if !due || self.shutting_down() {
            return;
        }
        if let Some(svc) = self.services.get_mut(name) {
            svc.restart_count += 1;
        }
        tracing::info!("restarting service '{name}'");
        // Requirements are checked again: a service whose required service
        // is gone is blocked, not restarted. Failures are logged and
        // recorded by start (and retried by policy).
        let _ = self.start(name, false, &mut BTreeSet::new());
    }

    /// Stops `name` (a stop request when `reply` is given).
    pub(super) fn stop(&mut self, name: &str, reply: Option<oneshot::Sender<Response>>) {
        self.stop_then(name, AfterStop::Stay, reply);
    }

    /// Stops `name` and does `then` once its process exited: SIGTERM, and
    /// SIGKILL after the grace period. A pending restart is cancelled.
    pub(super) fn stop_then(
        &mut self,
        name: &str,
        then: AfterStop,
        reply: Option<oneshot::Sender<Response>>,
    ) {
        let stop_timeout = self.config.stop_timeout;
        self.kill_probes_of(name);
        let Some(svc) = self.services.get_mut(name) else {
            if let Some(reply) = reply {
                let _ = reply.send(self.not_found(name).into());
            }
            return;
        };
        match &mut svc.run {
            RunState::Running { pid } => {
                let pid = *pid;
                tracing::info!("stopping service '{name}' (pid {pid}): SIGTERM");
                svc.stop_monitor();
                signal_group(pid, Signal::SIGTERM);
                svc.run = RunState::Stopping {
                    pid,
                    then,
                    waiters: reply.into_iter().collect(),
                };
                svc.generation += 1;
                let (tx, generation, name) = (self.tx.clone(), svc.generation, name.to_owned());
                tokio::spawn(async move {
                    tokio::time::sleep(stop_timeout).await;
                    let _ = tx.send(Command::KillDue { name, generation }).await;
                });
            }
            RunState::Stopping {
                then: current,
                waiters,
                ..
            } => {
                waiters.extend(reply);
                let before = std::mem::replace(current, AfterStop::Stay);
                *current = before.and(then, name);
            }
            RunState::RestartPending { .. } => {
                svc.generation += 1;
                svc.run = RunState::Inactive;
                succeed(
                    reply,
                    format!("Service '{name}' stopped (pending restart cancelled)"),
                );
            }
            _ => succeed(reply, format!("Service '{name}' is not running")),
        }
    }

    /// A stop's grace period ended: SIGKILL, if that stop still goes on.
    pub(super) fn kill_due(&mut self, name: &str, generation: u64) {
        if let Some(svc) = self.services.get(name)
            && svc.generation == generation
            && let RunState::Stopping { pid, .. } = svc.run
        {
            tracing::warn!(
                "service '{name}' (pid {pid}) did not stop within {:?}: SIGKILL",
                self.config.stop_timeout
            );
            svc.log_event("did not stop in time: SIGKILL");
            signal_group(pid, Signal::SIGKILL);
        }
    }

    /// Stops `name` if it runs, then starts it; answers once it started.
    pub(super) fn restart(&mut self, name: &str, reply: oneshot::Sender<Response>) {
        let Some(svc) = self.services.get_mut(name) else {
            let _ = reply.send(self.not_found(name).into());
            return;
        };
        if svc.active() {
            return self.stop_then(name, AfterStop::Restart(reply), None);
        }
        svc.generation += 1;
        svc.restart_count += 1;
        let _ = reply.send(self.start_again(name));
    }

    /// Starts `name` as a restart does, and the answer to the request.
    fn start_again(&mut self, name: &str) -> Response {
        match self.start(name, true, &mut BTreeSet::new()) {
            Ok(_) => Response::success(format!("Service '{name}' restarted")),
            Err(err) => err.into(),
        }
    }

    /// The process `pid` ended: a command probe's (its monitor gets the
    /// status) or a service's (applies what its state says comes next:
    /// answer stop requests, restart, remove, or its restart policy).
    pub(super) fn on_exit(&mut self, pid: i32, status: ExitStatus, oom_kills: &mut u64) {
        if let Some(probe) = self.probes.remove(&pid) {
            tracing::debug!("health probe of '{}' (pid {pid}) {status}", probe.service);
            // Whatever the probe left in its process group goes with it.
            kill_leftovers(pid);
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
        let shutting_down = self.shutting_down();
        self.kill_probes_of(&name);
        let Some(svc) = self.services.get_mut(&name) else {
            return;
        };
        let (stopping, then, waiters) = match std::mem::replace(&mut svc.run, RunState::Inactive) {
            RunState::Stopping { then, waiters, .. } => (true, then, waiters),
            _ => (false, AfterStop::Stay, Vec::new()),
        };
        svc.stop_monitor();
        let oom_killed =
            status.signal() == Some(Signal::SIGKILL as i32) && !stopping && *oom_kills > 0;
        if oom_killed {
            *oom_kills -= 1;
            self.services_oom_killed += 1;
        }
        let mut description = status.to_string();
        if oom_killed {
            description.push_str(" by the kernel's OOM killer (out of memory)");
        }
        if oom_killed || (!status.success() && !stopping) {
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
        if stopping {
            // Leftovers of the service's process group go with it.
            kill_leftovers(pid);
        }
        for waiter in waiters {
            let _ = waiter.send(Response::success(format!("Service '{name}' stopped")));
        }
        match then {
            AfterStop::Restart(reply) if shutting_down => {
                let _ = reply.send(RequestError::ShuttingDown.into());
            }
            AfterStop::Restart(reply) => {
                svc.restart_count += 1;
                let _ = reply.send(self.start_again(&name));
            }
            AfterStop::Remove => {
                self.services.remove(&name);
            }
            AfterStop::HealthRestart if !shutting_down && svc.def.restart.restarts(false) => {
                if let Some(tracker) = svc.health.as_mut() {
                    tracker.count_restart();
                }
                self.schedule_restart(&name);
            }
            // Stopped on purpose: it stays inactive.
            _ if stopping || shutting_down => {}
            _ if svc.def.restart.restarts(status.success()) => self.schedule_restart(&name),
            _ if status.success() => svc.run = RunState::Exited,
            _ => svc.run = RunState::Failed,
        }
    }
}

/// Answers a request, if there is one, with success.
fn succeed(reply: Option<oneshot::Sender<Response>>, message: String) {
    if let Some(reply) = reply {
        let _ = reply.send(Response::success(message));
    }
}
