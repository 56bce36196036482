//! The one `main` of the workspace's binaries: parse the arguments, start
//! logging, build the configuration, start the Tokio runtime, watch
//! SIGTERM/SIGINT, run, and turn the outcome into the exit status.

use std::future::Future;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::{EXIT_USAGE, ErrorChain, cancel_on_signals, init_tracing, usage_exit};

/// A binary, declared by its argument type. [`run_main`] runs it.
pub trait Main: clap::Parser {
    /// The binary's name: the prefix of its error messages.
    const NAME: &'static str;
    /// What the arguments resolve to.
    type Config;

    /// The command line's definition; a binary whose help texts vary
    /// (one argument type serving several binaries) changes it here.
    fn clap_command() -> clap::Command {
        <Self as clap::CommandFactory>::command()
    }

    /// The log filter when `RUST_LOG` is not set.
    fn log_level(&self) -> &'static str {
        "info"
    }

    /// Resolves and checks the arguments (and any file they name); an
    /// error is bad usage (exit status 64).
    fn config(self) -> anyhow::Result<Self::Config>;

    /// The runtime to run on, and what SIGTERM and SIGINT do.
    fn runtime(_config: &Self::Config) -> Runtime {
        Runtime::Service { workers: 0 }
    }

    /// Runs until done or until `shutdown` (SIGTERM or SIGINT) is
    /// cancelled; `Ok` holds the exit status (0 for success).
    fn run(
        config: Self::Config,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<u8, Failure>>;

    /// The exit status of an error [`Main::run`] returned without one.
    fn exit_code(_error: &anyhow::Error) -> u8 {
        1
    }
}

/// How a binary runs: the Tokio runtime, and what SIGTERM and SIGINT do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// A service: worker threads (`workers`, or one per CPU if 0), and
    /// SIGTERM or SIGINT cancel the shutdown token (a graceful stop).
    Service {
        /// How many worker threads (0: one per CPU).
        workers: usize,
    },
    /// A command that does one thing: one thread (it starts faster), and
    /// SIGTERM and SIGINT keep their default action, ending the process
    /// (or whatever the binary sets up); the token is never cancelled.
    OneShot,
}

/// An error of [`Main::run`], with the exit status it maps to, if chosen.
#[derive(Debug)]
pub struct Failure {
    code: Option<u8>,
    error: anyhow::Error,
}

impl Failure {
    /// An error leaving with exit status `code`.
    pub fn with_code(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: Some(code),
            error: error.into(),
        }
    }

    /// Bad usage or configuration found while running (exit status 64).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self::with_code(EXIT_USAGE, error)
    }

    /// The error.
    pub fn error(&self) -> &anyhow::Error {
        &self.error
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    /// An error whose exit status [`Main::exit_code`] chooses.
    fn from(error: E) -> Self {
        Self {
            code: None,
            error: error.into(),
        }
    }
}

/// Runs the binary `M`: parses the arguments (exit status 64 on bad usage,
/// 0 after `--help`), starts logging, builds the configuration (64 with
/// "NAME: error chain" if it is bad), starts the runtime (1 if it cannot),
/// runs (a [`Runtime::Service`] with a token cancelled by SIGTERM or
/// SIGINT), and returns the exit status: `run`'s, or on error its code
/// (default [`Main::exit_code`], 1) with "NAME: error chain" on stderr.
pub fn run_main<M: Main>() -> ExitCode {
    let args = match parse::<M>() {
        Ok(args) => args,
        Err(error) => return usage_exit(error),
    };
    init_tracing(args.log_level());
    let config = match args.config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {}", M::NAME, ErrorChain(error.as_ref()));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let kind = M::runtime(&config);
    let mut builder = match kind {
        Runtime::Service { workers } => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if workers > 0 {
                builder.worker_threads(workers);
            }
            builder
        }
        Runtime::OneShot => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}: cannot start the async runtime: {error}", M::NAME);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = match kind {
            Runtime::Service { .. } => cancel_on_signals(),
            Runtime::OneShot => CancellationToken::new(),
        };
        M::run(config, shutdown).await
    });
    // Do not wait for blocking tasks (a read of stdin) that may never end.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("{}: {}", M::NAME, ErrorChain(failure.error.as_ref()));
            ExitCode::from(failure.code.unwrap_or_else(|| M::exit_code(&failure.error)))
        }
    }
}

/// The arguments, parsed with [`Main::clap_command`].
fn parse<M: Main>() -> Result<M, clap::Error> {
    let mut matches = M::clap_command().try_get_matches()?;
    M::from_arg_matches_mut(&mut matches).map_err(|error| error.format(&mut M::clap_command()))
}
