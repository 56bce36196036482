//! `pipeline run`: a command in the enclave, with this process's standard
//! streams and signals.

use std::io::IsTerminal;
use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::CommandError;
use crate::Error;
use crate::client::Client;
use crate::client::exec::{self, RunOptions, RunOutcome};
use crate::settings::RunSettings;

/// The flags of `pipeline run` that need no checking.
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// `--cwd`: the working directory in the enclave.
    pub cwd: Option<PathBuf>,
    /// `--no-wait`: return at once with the remote process id.
    pub no_wait: bool,
    /// `--no-stdin`: do not forward standard input.
    pub no_stdin: bool,
}

/// Runs `settings.argv` through `client`: its output to stdout and stderr,
/// stdin forwarded unless a terminal (or `no_stdin`, `no_wait`), SIGINT,
/// SIGTERM, SIGHUP and SIGQUIT forwarded. Returns the exit status: the
/// command's (see [`crate::protocol::ExitStatus::shell_code`]), or 0 after
/// printing the process id with `no_wait`.
pub async fn run(
    client: &Client,
    settings: RunSettings,
    flags: &RunFlags,
) -> Result<u8, CommandError> {
    let options = RunOptions {
        argv: settings.argv,
        env: settings.env,
        cwd: flags.cwd.clone(),
        timeout: settings.timeout,
        detach: flags.no_wait,
    };
    let forward_stdin = !flags.no_stdin && !flags.no_wait && !std::io::stdin().is_terminal();
    let stdin = forward_stdin.then(tokio::io::stdin);
    let signals = forward_signals().map_err(CommandError::Signals)?;
    let session = client.connect().await?;
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let outcome = exec::run(session, &options, stdin, &mut stdout, &mut stderr, signals).await;
    match outcome {
        Ok(RunOutcome::Exited(status)) => Ok(status.shell_code().clamp(0, 255) as u8),
        Ok(RunOutcome::Detached { pid }) => {
            println!("{pid}");
            Ok(0)
        }
        Ok(RunOutcome::OutputClosed) => Ok(0),
        Err(Error::Remote(frame)) => Err(CommandError::Start(frame)),
        Err(err) => Err(err.into()),
    }
}

/// Forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to the remote command.
fn forward_signals() -> std::io::Result<mpsc::Receiver<i32>> {
    let (tx, rx) = mpsc::channel(16);
    for (kind, number) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
        (SignalKind::quit(), libc::SIGQUIT),
    ] {
        let mut stream = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(number).await.is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}
