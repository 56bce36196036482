//! The task that probes one run of one service, every interval, until the
//! supervisor cancels it (the service stopped or exited). Results go to
//! the supervisor as [`HealthEvent`]s; the task never touches service
//! state, so a slow or hung probe cannot hold the supervisor up.
//!
//! Command probes are processes, and the supervisor is the only one to
//! spawn, signal and reap processes: the task asks it to spawn the command
//! ([`HealthEvent::SpawnExec`]), reads the output, waits for the exit status
//! the supervisor forwards when it reaps the process, and on timeout asks
//! it to kill the process group ([`HealthEvent::KillExec`]).

use std::time::{Duration, Instant, SystemTime};

use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::defs::KILL_WAIT;
use crate::health::probe::{self, MAX_RESULT_DETAIL, ProbeOutcome, detail};
use crate::health::spec::{HealthCheck, Probe, secs};
use crate::reaper::ExitStatus;

/// After a command probe exited, its output pipe is read this much longer.
const OUTPUT_DRAIN_WAIT: Duration = Duration::from_millis(50);

/// A command probe the supervisor started.
#[derive(Debug)]
pub struct ExecSpawned {
    /// Its process id (and process group).
    pub pid: i32,
    /// Its stdout and stderr.
    pub output: tokio::net::unix::pipe::Receiver,
    /// Its exit status, sent when the supervisor reaps it.
    pub exit: oneshot::Receiver<ExitStatus>,
}

/// What a monitor tells the supervisor.
#[derive(Debug)]
pub enum HealthEvent {
    /// A probe ended.
    Result {
        /// The service.
        service: String,
        /// Which run of it the monitor watches.
        run: u64,
        /// What the probe found.
        outcome: ProbeOutcome,
        /// When it ended.
        ended: Instant,
        /// When it ended, on the wall clock.
        at: SystemTime,
        /// How long it took.
        took: Duration,
    },
    /// Start the service's command probe (as its user, in its directory and environment).
    SpawnExec {
        /// The service.
        service: String,
        /// Which run of it the monitor watches.
        run: u64,
        /// The command, split.
        argv: Vec<String>,
        /// The started process, or why it could not start.
        reply: oneshot::Sender<Result<ExecSpawned, String>>,
    },
    /// Kill a command probe that outlived its timeout (its whole process group).
    KillExec {
        /// The probe's process id.
        pid: i32,
    },
}

/// The probing of one run of one service.
#[derive(Debug)]
pub struct Monitor {
    service: String,
    run: u64,
    check: HealthCheck,
    events: mpsc::Sender<HealthEvent>,
}

impl Monitor {
    /// A monitor for run `run` of `service`, reporting to `events`.
    pub fn new(
        service: String,
        run: u64,
        check: HealthCheck,
        events: mpsc::Sender<HealthEvent>,
    ) -> Self {
        Self {
            service,
            run,
            check,
            events,
        }
    }

    /// Starts probing on a task of its own; cancelling the token ends it.
    pub fn spawn(self) -> CancellationToken {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = self.run() => {}
                () = token.cancelled() => {}
            }
        });
        cancel
    }

    async fn run(self) {
        let interval = self.check.interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let begun = Instant::now();
            let outcome = self.probe().await;
            let ended = Instant::now();
            let event = HealthEvent::Result {
                service: self.service.clone(),
                run: self.run,
                outcome,
                ended,
                at: SystemTime::now(),
                took: ended.saturating_duration_since(begun),
            };
            if self.events.send(event).await.is_err() {
                return;
            }
        }
    }

    async fn probe(&self) -> ProbeOutcome {
        let timeout = self.check.timeout;
        match &self.check.probe {
            Probe::Http(target) => probe::http(target, timeout).await,
            Probe::Tcp(target) => probe::tcp(target, timeout).await,
            Probe::Exec { argv, .. } => self.exec(argv.clone(), timeout).await,
        }
    }

    async fn exec(&self, argv: Vec<String>, timeout: Duration) -> ProbeOutcome {
        let (reply, spawned) = oneshot::channel();
        let ask = HealthEvent::SpawnExec {
            service: self.service.clone(),
            run: self.run,
            argv,
            reply,
        };
        if self.events.send(ask).await.is_err() {
            return ProbeOutcome::failed("init is shutting down");
        }
        let ExecSpawned {
            pid,
            mut output,
            mut exit,
        } = match spawned.await {
            Ok(Ok(spawned)) => spawned,
            Ok(Err(message)) => return ProbeOutcome::failed(message),
            Err(_) => return ProbeOutcome::failed("init is shutting down"),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        let mut open = true;
        let status = loop {
            tokio::select! {
                status = &mut exit => break status.ok(),
                read = output.read(&mut buf), if open => match read {
                    Ok(0) | Err(_) => open = false,
                    Ok(n) => keep(&mut kept, &buf[..n]),
                },
                () = tokio::time::sleep_until(deadline) => {
                    let _ = self.events.send(HealthEvent::KillExec { pid }).await;
                    let gone = tokio::time::timeout(KILL_WAIT, &mut exit).await.is_ok();
                    let what = if gone { "killed" } else { "SIGKILL sent" };
                    return ProbeOutcome::failed(with_output(
                        format!("timed out after {}: {what} (pid {pid})", secs(timeout)),
                        &kept,
                    ));
                }
            }
        };
        if open {
            let drain = async {
                loop {
                    match output.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => keep(&mut kept, &buf[..n]),
                    }
                }
            };
            let _ = tokio::time::timeout(OUTPUT_DRAIN_WAIT, drain).await;
        }
        match status {
            Some(status) if status.success() => {
                ProbeOutcome::ok(with_output("exited with status 0".into(), &kept))
            }
            Some(status) => ProbeOutcome::failed(with_output(status.to_string(), &kept)),
            None => ProbeOutcome::failed("init is shutting down"),
        }
    }
}

/// Keeps the first bytes of a probe's output (the rest is read and dropped,
/// so the probe never blocks on a full pipe).
fn keep(kept: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_RESULT_DETAIL.saturating_sub(kept.len());
    kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

fn with_output(message: String, output: &[u8]) -> String {
    let text = detail(output);
    if text.is_empty() {
        message
    } else {
        format!("{message}: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::spec::RawHealthCheck;

    #[tokio::test]
    async fn results_arrive_each_interval_until_cancelled() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let check = RawHealthCheck {
            tcp: Some(listener.local_addr().unwrap().to_string()),
            interval_sec: Some(0.1),
            ..Default::default()
        }
        .validate()
        .unwrap()
        .unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = Monitor::new("svc".into(), 7, check, tx).spawn();
        for _ in 0..2 {
            match rx.recv().await.unwrap() {
                HealthEvent::Result {
                    service,
                    run,
                    outcome,
                    ..
                } => {
                    assert_eq!((service.as_str(), run), ("svc", 7));
                    assert!(outcome.healthy, "{outcome:?}");
                }
                other => panic!("{other:?}"),
            }
        }
        cancel.cancel();
        // The task drops its sender once it ended: the channel closes.
        while rx.recv().await.is_some() {}
    }

    #[test]
    fn output_is_bounded() {
        let mut kept = Vec::new();
        keep(&mut kept, &[b'a'; 150]);
        keep(&mut kept, &[b'b'; 150]);
        assert_eq!(kept.len(), MAX_RESULT_DETAIL);
        assert_eq!(with_output("x".into(), b" \n"), "x");
        assert_eq!(with_output("x".into(), b"oops\n"), "x: oops");
    }
}
