//! `fs-monitor`: publish `path -> SHA3-512` of every file under the given
//! directories to a NATS KV bucket, live.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use fs_monitor::{Config, MonitorError, Stats};
use tokio_util::sync::CancellationToken;

/// Watches directories with inotify and keeps the NATS KV bucket
/// `fs_hashes` equal to `absolute path -> SHA3-512` of every file in them.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A directory to watch, recursively (repeat for several).
    #[arg(long, short = 'd', required = true, value_name = "DIR")]
    directory: Vec<PathBuf>,
    /// A gitignore-style file; its patterns apply relative to each
    /// directory.
    #[arg(long, value_name = "FILE")]
    ignore_file: Option<PathBuf>,
    /// The NATS server.
    #[arg(long, default_value = bus::DEFAULT_URL, value_name = "URL")]
    nats_url: String,
    /// The KV bucket to write (created if missing).
    #[arg(long, default_value = bus::FS_HASHES, value_name = "NAME")]
    kv_bucket_name: String,
}

/// Exit status for bad usage or configuration.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // --help and --version are "errors" that print to stdout and succeed.
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match Config::new(
        &args.directory,
        args.ignore_file.as_deref(),
        &args.nats_url,
        &args.kv_bucket_name,
    ) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("fs-monitor: {:#}", anyhow::Error::new(error));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("fs-monitor: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fs-monitor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs until SIGINT or SIGTERM.
async fn serve(config: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        trigger.cancel();
    });
    fs_monitor::run(config, Arc::new(Stats::default()), shutdown)
        .await
        .map_err(|error: MonitorError| anyhow::Error::new(error))
}
