//! A binary on [`cli_support::run_main`], run by the crate's tests: each
//! flag makes it end one way.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use cli_support::{Failure, Main, Runtime, run_main};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Parser)]
struct Args {
    /// Refuse the configuration.
    #[arg(long)]
    bad_config: bool,
    /// Fail while running, with this exit status (1 if not given).
    #[arg(long, value_name = "CODE")]
    fail: Option<Option<u8>>,
    /// Print "ready", wait for SIGTERM or SIGINT, then exit 3.
    #[arg(long)]
    wait: bool,
    /// Run as a one-shot command: the signals end the process.
    #[arg(long)]
    one_shot: bool,
}

impl Main for Args {
    const NAME: &'static str = "skeleton";
    type Config = Args;

    fn config(self) -> anyhow::Result<Args> {
        if self.bad_config {
            return Err(anyhow::anyhow!("not a number").context("invalid --bad-config"));
        }
        Ok(self)
    }

    fn runtime(args: &Args) -> Runtime {
        if args.one_shot {
            Runtime::OneShot
        } else {
            Runtime::Service { workers: 1 }
        }
    }

    async fn run(args: Args, shutdown: CancellationToken) -> Result<u8, Failure> {
        match args.fail {
            Some(Some(code)) => return Err(Failure::with_code(code, anyhow::anyhow!("chosen"))),
            Some(None) => {
                let inner: anyhow::Result<()> = Err(anyhow::anyhow!("disk full"));
                inner.context("cannot write")?;
            }
            None => {}
        }
        if args.wait {
            println!("ready");
            std::io::stdout().flush()?;
            shutdown.cancelled().await;
            return Ok(3);
        }
        if shutdown.is_cancelled() {
            return Err(anyhow::anyhow!("cancelled too early").into());
        }
        Ok(0)
    }
}

fn main() -> ExitCode {
    run_main::<Args>()
}
