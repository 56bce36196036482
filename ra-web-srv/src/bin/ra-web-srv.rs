//! `ra-web-srv`: parses the command line, sets up logging and runs the
//! server until SIGINT or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use cli_support::{Failure, Main, run_main};
use tokio_util::sync::CancellationToken;

/// The library's arguments, as this binary's.
#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: ra_web_srv::Args,
}

impl Main for Cli {
    const NAME: &'static str = "ra-web-srv";
    type Config = ra_web_srv::Config;

    fn clap_command() -> clap::Command {
        <ra_web_srv::Args as clap::CommandFactory>::command()
    }

    fn config(self) -> anyhow::Result<ra_web_srv::Config> {
        Ok(self.args.resolve()?)
    }

    async fn run(config: ra_web_srv::Config, shutdown: CancellationToken) -> Result<u8, Failure> {
        ra_web_srv::run(config, shutdown)
            .await
            .context("starting the server")?;
        Ok(0)
    }
}

fn main() -> ExitCode {
    run_main::<Cli>()
}
