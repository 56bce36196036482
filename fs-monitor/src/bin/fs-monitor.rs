//! `fs-monitor`: publish `path -> SHA3-512` of every file under the given
//! directories to a NATS KV bucket, live.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use cli_support::{Failure, Main, run_main};
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

impl Main for Args {
    const NAME: &'static str = "fs-monitor";
    type Config = Config;

    fn config(self) -> anyhow::Result<Config> {
        Ok(Config::new(
            &self.directory,
            self.ignore_file.as_deref(),
            &self.nats_url,
            &self.kv_bucket_name,
        )?)
    }

    /// Runs until SIGINT or SIGTERM.
    async fn run(config: Config, shutdown: CancellationToken) -> Result<u8, Failure> {
        fs_monitor::run(config, Arc::new(Stats::default()), shutdown)
            .await
            .map_err(|error: MonitorError| anyhow::Error::new(error))?;
        Ok(0)
    }
}

fn main() -> ExitCode {
    run_main::<Args>()
}
