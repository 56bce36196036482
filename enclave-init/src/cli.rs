//! What both binaries share at their edge: argument parsing with the exit
//! codes of the project (64 for bad usage, 0 for `--help`/`--version`).

use std::process::ExitCode;

/// Exit status for bad usage or configuration.
pub const EXIT_USAGE: u8 = 64;

/// Parses the command line; on failure prints clap's message and returns
/// the exit code to leave with.
pub fn parse_args<T: clap::Parser>() -> Result<T, ExitCode> {
    T::try_parse().map_err(|err| {
        let _ = err.print();
        if err.use_stderr() {
            ExitCode::from(EXIT_USAGE)
        } else {
            ExitCode::SUCCESS
        }
    })
}
