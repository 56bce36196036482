//! What every binary of the workspace does at its edge: parse the command
//! line with the project's exit codes (64 for bad usage, 0 after `--help`
//! or `--version`) and send `tracing` logs to stderr, filtered by
//! `RUST_LOG`.

use std::process::ExitCode;

/// Exit status for bad usage or configuration (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

/// Parses the command line; on failure prints clap's message and returns
/// the exit code to leave with.
pub fn parse_args<T: clap::Parser>() -> Result<T, ExitCode> {
    T::try_parse().map_err(usage_exit)
}

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
