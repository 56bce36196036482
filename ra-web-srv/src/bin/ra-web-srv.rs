//! `ra-web-srv`: parses the command line, sets up logging and runs the
//! server until SIGINT or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use cli_support::{EXIT_USAGE, init_tracing, parse_args};
use tokio_util::sync::CancellationToken;

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
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        signals.cancel();
    });
    ra_web_srv::run(config, shutdown)
        .await
        .context("starting the server")
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
