//! `init`: PID 1 of the enclave. Parses arguments, sets up logging to the
//! bounded console, loads the configuration and runs the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use cli_support::ErrorChain;
use enclave_init::cli::parse_args;
use enclave_init::config::Config;
use enclave_init::console::ConsoleWriter;
use enclave_init::defs::INIT_CONFIG_ENV;
use enclave_init::pid1::{self, Step};
use enclave_init::run::{RunOptions, run};
use enclave_init::supervisor::Outcome;
use tokio_util::sync::CancellationToken;

/// PID 1 for enclaves: mounts, loopback, NSM driver, boot heartbeat, and
/// supervision of the services in the service directory.
#[derive(Debug, Default, Parser)]
#[command(name = "init", version)]
struct Cli {
    /// Configuration file (default: $INIT_CONFIG, then /etc/init.yaml, then built-in defaults).
    #[arg(short, long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Perform the PID-1 duties even when not PID 1 (in a VM or namespace test).
    #[arg(long, conflicts_with = "supervise_only")]
    pid1: bool,
    /// Skip the PID-1 duties even when PID 1: only supervise.
    #[arg(long)]
    supervise_only: bool,
    /// Run one PID-1 step, print what it did, and exit (0 done or skipped, 1 failed).
    #[arg(long, value_enum, value_name = "STEP")]
    run_step: Option<Step>,
}

fn main() -> ExitCode {
    let is_pid1 = std::process::id() == 1;
    let cli = match parse_args::<Cli>() {
        Ok(cli) => cli,
        // The kernel hands unknown boot parameters to init as arguments:
        // as PID 1, exiting would panic the kernel, so go on without them.
        Err(_) if is_pid1 => {
            eprintln!("init: ignoring the command line above; using the defaults");
            Cli::default()
        }
        Err(code) => return code,
    };
    let console = setup_logging();
    let code = match init(cli, is_pid1) {
        Ok(outcome) if is_pid1 => {
            let err = pid1::power::finish(outcome);
            tracing::error!("reboot syscall failed: {err}; reaping forever");
            reap_forever()
        }
        Ok(_) => ExitCode::SUCCESS,
        Err((code, err)) if is_pid1 => {
            tracing::error!(
                "init failed: {}; reaping forever (exiting would panic the kernel)",
                ErrorChain(err.as_ref())
            );
            let _ = code;
            reap_forever()
        }
        Err((code, err)) => {
            tracing::error!("{}", ErrorChain(err.as_ref()));
            ExitCode::from(code)
        }
    };
    if let Some(console) = console {
        console.flush(std::time::Duration::from_secs(1));
    }
    code
}

fn setup_logging() -> Option<ConsoleWriter> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match ConsoleWriter::start(std::io::stderr()) {
        Ok(console) => {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(console.clone())
                .init();
            Some(console)
        }
        Err(err) => {
            eprintln!("init: no console thread ({err}); logging directly");
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .init();
            None
        }
    }
}

fn init(cli: Cli, is_pid1: bool) -> Result<Outcome, (u8, anyhow::Error)> {
    let env_config = std::env::var_os(INIT_CONFIG_ENV).map(PathBuf::from);
    let config = match Config::load(cli.config.as_deref(), env_config.as_deref()) {
        Ok(config) => config,
        Err(err) if is_pid1 => {
            tracing::error!("{err}; continuing with the built-in defaults");
            Config::default()
        }
        Err(err) => return Err((64, anyhow::Error::new(err).context("bad configuration"))),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(|e| (70, e))?;
    if let Some(step) = cli.run_step {
        let outcome = runtime.block_on(pid1::run_step(step, &config));
        println!("{step:?}: {outcome}");
        return if outcome.failed() {
            Err((1, anyhow::anyhow!("step {step:?} failed")))
        } else {
            Ok(Outcome::Exit)
        };
    }
    let options = RunOptions {
        pid1_duties: (is_pid1 && !cli.supervise_only) || cli.pid1,
    };
    tracing::info!(
        "init {} starting (pid {}), configuration: {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        config.source
    );
    runtime
        .block_on(run(config, options, CancellationToken::new()))
        .context("init cannot supervise")
        .map_err(|e| (70, e))
}

/// PID 1 must never exit: reap whatever dies, forever.
fn reap_forever() -> ExitCode {
    loop {
        let _ = nix::sys::wait::wait();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
