//! The health monitors' events: probe results (a service that became
//! unhealthy is restarted by its policy), command probes to start or kill.

use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::Supervisor;
use super::error::RequestError;
use super::process::{signal_group, spawn_command};
use super::state::{AfterStop, ProbeProcess, RunState};
use crate::api::Health;
use crate::health::{ExecSpawned, HealthEvent, ProbeOutcome, Verdict};

impl Supervisor {
    /// An event of a health monitor.
    pub(super) fn on_health(&mut self, event: HealthEvent) {
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
                let result = self
                    .spawn_probe(&service, run, &argv)
                    .map_err(|err| err.to_string());
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
        (ended, at, took): (Instant, SystemTime, Duration),
    ) {
        if self.shutting_down() {
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
        self.stop_then(name, AfterStop::HealthRestart, None);
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
    ) -> Result<ExecSpawned, RequestError> {
        let Some(svc) = self.services.get(name) else {
            return Err(self.not_found(name));
        };
        if svc.health_run != run || !matches!(svc.run, RunState::Running { .. }) {
            return Err(RequestError::NoLongerRunning(name.to_owned()));
        }
        let def = svc.def.clone();
        let creds = svc.run_as.clone();
        let state_dirs = self.state_dirs(&def);
        let env = self.environment(&def, creds.as_ref(), &state_dirs);
        let (pid, output) = spawn_command(argv, &def.working_directory, &env, creds.as_ref())
            .map_err(|source| RequestError::Probe {
                program: argv.first().cloned().unwrap_or_default(),
                source,
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
    pub(super) fn kill_probes_of(&self, name: &str) {
        for (pid, probe) in &self.probes {
            if probe.service == name {
                signal_group(*pid, Signal::SIGKILL);
            }
        }
    }
}
