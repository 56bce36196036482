//! The one `main` of the workspace's binaries: parse the arguments, start
//! logging, build the configuration, start the Tokio runtime, watch
//! SIGTERM/SIGINT, run, and turn the outcome into the exit status.

use std::future::Future;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::{EXIT_USAGE, cancel_on_signals, init_tracing, parse_args};

/// A binary, declared by its argument type. [`run_main`] runs it.
pub trait Main: clap::Parser {
    /// The binary's name: the prefix of its error messages.
    const NAME: &'static str;
    /// What the arguments resolve to.
    type Config;

    /// The log filter when `RUST_LOG` is not set.
    fn log_level(&self) -> &'static str {
        "info"
    }

    /// Resolves and checks the arguments (and any file they name); an
    /// error is bad usage (exit status 64).
    fn config(self) -> anyhow::Result<Self::Config>;

    /// Whether the runtime has worker threads (else one thread).
    fn multi_thread(_config: &Self::Config) -> bool {
        true
    }

    /// Whether SIGTERM and SIGINT cancel the shutdown token. If not, the
    /// token is never cancelled and the signals keep their default action
    /// (or whatever the binary sets up).
    fn watches_signals(_config: &Self::Config) -> bool {
        true
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
/// runs with a token cancelled by SIGTERM or SIGINT (unless
/// [`Main::watches_signals`] says not), and returns the exit
/// status: `run`'s, or on error its code (default 1) with "NAME: error
/// chain" on stderr.
pub fn run_main<M: Main>() -> ExitCode {
    let args: M = match parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    init_tracing(args.log_level());
    let config = match args.config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: {error:#}", M::NAME);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut builder = if M::multi_thread(&config) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}: cannot start the async runtime: {error}", M::NAME);
            return ExitCode::FAILURE;
        }
    };
    let watch = M::watches_signals(&config);
    let result = runtime.block_on(async {
        let shutdown = if watch {
            cancel_on_signals()
        } else {
            CancellationToken::new()
        };
        M::run(config, shutdown).await
    });
    // Do not wait for blocking tasks (a read of stdin) that may never end.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("{}: {:#}", M::NAME, failure.error);
            ExitCode::from(failure.code.unwrap_or_else(|| M::exit_code(&failure.error)))
        }
    }
}
