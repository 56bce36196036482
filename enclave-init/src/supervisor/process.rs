//! Processes: what a service runs with (whom as, environment, state
//! directories), spawning it, and signalling its process group.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command as ProcessCommand, Stdio};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

use super::Supervisor;
use super::error::StartError;
use crate::accounts::{Accounts, Credentials};
use crate::defs::*;
use crate::privileges;
use crate::service::ServiceDef;

/// What a start needs once the service's privileges are settled.
pub(super) struct Prepared {
    pub(super) creds: Option<Credentials>,
    pub(super) state_dirs: Vec<PathBuf>,
}

impl Supervisor {
    /// The environment of a service: init's (unless cleared), `PATH`, the
    /// configuration's, the parent CID, the user's `USER`/`LOGNAME`/`HOME`
    /// and `STATE_DIRECTORY` (as systemd sets them), then its own.
    pub(super) fn environment(
        &self,
        def: &ServiceDef,
        creds: Option<&Credentials>,
        state_dirs: &[PathBuf],
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

    /// The state directories of `def`, under the configured root.
    pub(super) fn state_dirs(&self, def: &ServiceDef) -> Vec<PathBuf> {
        def.privileges
            .state_directories
            .iter()
            .map(|d| self.config.state_directory_root.join(d))
            .collect()
    }

    /// Resolves whom a service runs as and prepares its state directories.
    /// An account that cannot be resolved is a mistake in the image that a
    /// restart will not fix (see [`StartError::retry`]); a directory that
    /// cannot be made may be.
    pub(super) fn prepare(&self, def: &ServiceDef) -> Result<Prepared, StartError> {
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
            .map_err(|source| StartError::Account {
                name: name.clone(),
                source,
            })?;
        let (uid, gid) = creds
            .as_ref()
            .map_or((euid, egid), |c| (c.user.id, c.group.id));
        let state_dirs = self.state_dirs(def);
        for dir in &state_dirs {
            privileges::prepare_state_directory(dir, uid, gid, p.state_directory_mode).map_err(
                |source| StartError::StateDirectory {
                    name: name.clone(),
                    source,
                },
            )?;
        }
        Ok(Prepared { creds, state_dirs })
    }
}

/// ` as user U group G` for a service run with `creds`, or nothing.
pub(super) fn who(creds: Option<&Credentials>) -> String {
    creds
        .map(|c| format!(" as user {} group {}", c.user, c.group))
        .unwrap_or_default()
}

/// Starts `argv` in `dir`, as services and their command probes are
/// started: its own process group, stdin from `/dev/null`, stdout and
/// stderr into one pipe whose read end is returned, and, with `creds`, its
/// user and groups set before exec.
pub(super) fn spawn_command(
    argv: &[String],
    dir: &Path,
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
    // Reaping is done by waitpid, never through `child`.
    drop(child);
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read_end.into())?;
    Ok((pid, pipe))
}

/// Sends `signal` to a service's process group, or to the process alone
/// when the group is gone.
pub(super) fn signal_group(pid: i32, signal: Signal) {
    if killpg(Pid::from_raw(pid), signal).is_err() {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Kills what is left of an ended process's group.
pub(super) fn kill_leftovers(pid: i32) {
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
}

/// A stream of `kind` signals, or `None` (logged) when it cannot be watched.
pub(super) fn watch(kind: SignalKind) -> Option<tokio::signal::unix::Signal> {
    match signal(kind) {
        Ok(s) => Some(s),
        Err(err) => {
            tracing::error!(%err, "cannot watch signal {}", kind.as_raw_value());
            None
        }
    }
}

/// The next signal of `sig`; never, when it is not watched.
pub(super) async fn next(sig: &mut Option<tokio::signal::unix::Signal>) {
    match sig {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}
