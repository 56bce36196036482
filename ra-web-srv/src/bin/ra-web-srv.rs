//! `ra-web-srv`: parses the command line, sets up logging and runs the
//! server until SIGINT or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use cli_support::{EXIT_USAGE, init_tracing, parse_args};

fn main() -> ExitCode {
    init_tracing("info");
    let args: ra_web_srv::Args = match parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let config = match args.resolve() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ra-web-srv: {error:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ra-web-srv: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn serve(config: ra_web_srv::Config) -> anyhow::Result<()> {
    ra_web_srv::run(config, cli_support::cancel_on_signals())
        .await
        .context("starting the server")
}
