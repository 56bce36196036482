//! `inference-server`: parses the command line, loads the models given at
//! start and serves the API until SIGTERM or SIGINT.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use inference_server::cli::{Args, Config};
use inference_server::signing::ResponseSigner;
use inference_server::{Registry, bench};

/// The variables candle reads for its thread count (once, at first use).
const THREAD_VARS: [&str; 2] = ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"];

fn main() -> ExitCode {
    let args: Args = match cli_support::parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let config = args.config();
    // candle takes its thread count from the environment only; changing our
    // own environment is unsafe, so run ourselves again with it set.
    let threads = config.threads.to_string();
    let reexec_error = THREAD_VARS
        .iter()
        .any(|var| std::env::var(var).ok().as_deref() != Some(threads.as_str()))
        .then(|| reexec_with_threads(&threads));
    cli_support::init_tracing("info");
    if let Some(error) = reexec_error {
        tracing::warn!(%error, "cannot set the thread count; candle uses its default");
    }
    let outcome = if let Some(bench_config) = &config.bench {
        run_bench(&config, bench_config)
    } else {
        serve(config)
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("inference-server: {error:#}");
            ExitCode::FAILURE
        }
    }
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

fn run_bench(config: &Config, bench_config: &bench::BenchConfig) -> anyhow::Result<()> {
    let model = config.models.first().context("--bench needs a --model")?;
    let report = bench::run(model, bench_config)
        .with_context(|| format!("benchmarking {}", model.display()))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
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
        let shutdown = cli_support::cancel_on_signals();
        inference_server::run_with_signer(listener, registry, signer, async move {
            shutdown.cancelled().await
        })
        .await
        .context("serving")
    })
}
