//! `fs-monitor`: publish `path -> SHA3-512` of every file under the given
//! directories to a NATS KV bucket, live.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use cli_support::{EXIT_USAGE, init_tracing, parse_args};
use fs_monitor::{Config, MonitorError, Stats};

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

fn main() -> ExitCode {
    let args: Args = match parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    init_tracing("info");
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
    let shutdown = cli_support::cancel_on_signals();
    fs_monitor::run(config, Arc::new(Stats::default()), shutdown)
        .await
        .map_err(|error: MonitorError| anyhow::Error::new(error))
}
