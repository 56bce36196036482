//! What every binary of the workspace does at its edge: parse the command
//! line with the project's exit codes (64 for bad usage, 0 after `--help`
//! or `--version`), send `tracing` logs to stderr, filtered by `RUST_LOG`,
//! turn SIGTERM or SIGINT into a shutdown token, and read small input files
//! with a size limit ([`read_limited`]), write UTC time stamps
//! ([`utc_millis`], [`utc_seconds`]), and print an error with its causes,
//! each once ([`ErrorChain`]). [`run_main`] strings the first three
//! together into the one `main` of a binary ([`Main`]).
//!
//! The feature `cli` (on by default) holds the binary's edge: argument
//! parsing, logging, signals and the `main` skeleton. Libraries that only
//! read files or write time stamps turn default features off and link
//! neither clap nor tracing-subscriber.

#[cfg(feature = "cli")]
use std::process::ExitCode;

mod error_chain;
mod files;
#[cfg(feature = "cli")]
mod main_skeleton;
mod utc;

pub use error_chain::ErrorChain;
pub use files::{ReadLimitedError, read_limited, read_limited_to_string};
#[cfg(feature = "cli")]
pub use main_skeleton::{Failure, Main, Runtime, run_main};
pub use utc::{utc_millis, utc_seconds, utc_seconds_from_millis};

#[cfg(feature = "cli")]
pub use tokio_util::sync::CancellationToken;

/// Exit status for bad usage or configuration (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

#[cfg(feature = "cli")]
/// Parses the command line; on failure prints clap's message and returns
/// the exit code to leave with.
pub fn parse_args<T: clap::Parser>() -> Result<T, ExitCode> {
    T::try_parse().map_err(usage_exit)
}

#[cfg(feature = "cli")]
/// Prints a clap error (or the help or version asked for) and returns the
/// exit code to leave with: [`EXIT_USAGE`] for bad usage, 0 otherwise.
pub fn usage_exit(err: clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(feature = "cli")]
/// Logs to stderr, filtered by `RUST_LOG`, else by `default` (e.g. `info`).
pub fn init_tracing(default: &str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .init();
}

#[cfg(feature = "cli")]
/// A token cancelled by the first SIGTERM or SIGINT (logged as "shutting
/// down"). Call it inside a Tokio runtime: a task waits for the signals.
/// If they cannot be watched, a warning says so and only SIGKILL stops
/// the process.
pub fn cancel_on_signals() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let shutdown = CancellationToken::new();
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot watch SIGTERM/SIGINT; stop with SIGKILL");
        return shutdown;
    };
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        trigger.cancel();
    });
    shutdown
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        let shutdown = cancel_on_signals();
        assert!(!shutdown.is_cancelled());
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), shutdown.cancelled())
            .await
            .expect("cancelled after SIGTERM");
    }
}
