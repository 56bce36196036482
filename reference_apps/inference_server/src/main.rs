//! `inference-server`: parses the command line, loads the models given at
//! start and serves the API until SIGTERM or SIGINT.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use cli_support::{CancellationToken, Failure, Main, run_main};
use inference_server::cli::{Args, Config};
use inference_server::signing::ResponseSigner;
use inference_server::{Registry, bench};

/// The variables candle reads for its thread count (once, at first use).
const THREAD_VARS: [&str; 2] = ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"];

/// The library's arguments, as this binary's.
#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

impl Main for Cli {
    const NAME: &'static str = "inference-server";
    type Config = Config;

    fn clap_command() -> clap::Command {
        <Args as clap::CommandFactory>::command()
    }

    fn config(self) -> anyhow::Result<Config> {
        let config = self.args.config();
        // candle takes its thread count from the environment only; changing
        // our own environment is unsafe, so run ourselves again with it set.
        let threads = config.threads.to_string();
        if THREAD_VARS
            .iter()
            .any(|var| std::env::var(var).ok().as_deref() != Some(threads.as_str()))
        {
            let error = reexec_with_threads(&threads);
            tracing::warn!(%error, "cannot set the thread count; candle uses its default");
        }
        Ok(config)
    }

    async fn run(config: Config, shutdown: CancellationToken) -> Result<u8, Failure> {
        if config.bench.is_some() {
            tokio::task::spawn_blocking(move || run_bench(&config))
                .await
                .context("the benchmark panicked")??;
        } else {
            serve(config, shutdown).await?;
        }
        Ok(0)
    }
}

fn main() -> ExitCode {
    run_main::<Cli>()
}

/// Runs this program again with candle's thread variables set; returns only
/// when that fails (e.g. no `/proc` and no usable `argv[0]`).
fn reexec_with_threads(threads: &str) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let argv0 = args.next();
    let exe = match (std::env::current_exe(), argv0) {
        (Ok(exe), _) => exe.into_os_string(),
        (Err(_), Some(argv0)) => argv0,
        (Err(error), None) => return error,
    };
    let mut command = std::process::Command::new(exe);
    command.args(args);
    for var in THREAD_VARS {
        command.env(var, threads);
    }
    command.exec()
}

fn run_bench(config: &Config) -> anyhow::Result<()> {
    let bench_config = config.bench.as_ref().context("not a benchmark")?;
    let model = config.models.first().context("--bench needs a --model")?;
    let report = bench::run(model, bench_config)
        .with_context(|| format!("benchmarking {}", model.display()))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn serve(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    // The key first: a server that was asked to sign never answers unsigned.
    let signer = match &config.signing_key_dir {
        Some(dir) => {
            let signer = ResponseSigner::create(dir).context("setting up the signing key")?;
            tracing::info!(
                key_file = signer.key_path(),
                public_key = signer.public_key_hex(),
                "signing responses"
            );
            Some(Arc::new(signer))
        }
        None => None,
    };
    let registry = Arc::new(Registry::new(config.queue));
    for path in &config.models {
        registry
            .load(path.clone(), None)
            .await
            .with_context(|| format!("loading {}", path.display()))?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%address, threads = config.threads, "listening");
    inference_server::run_with_signer(listener, registry, signer, async move {
        shutdown.cancelled().await
    })
    .await
    .context("serving")
}
