//! The command line, checked into a [`Config`] before any work starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::defs::{DEFAULT_LISTEN, DEFAULT_QUEUE_CAPACITY};

/// `inference-server`: an OpenAI-compatible language-model server.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// GGUF model to load at start, served under its file stem (repeatable).
    #[arg(long = "model", value_name = "PATH")]
    pub models: Vec<PathBuf>,
    /// CPU threads for the model's matrix products (default 1: faster than
    /// 2 on shared cores; sets CANDLE_NUM_THREADS).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Requests each model queues besides the one it runs; more get 503.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_QUEUE_CAPACITY as u16,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub queue: u16,
    /// Run one generation with the runtime alone (no HTTP) on the first
    /// --model, print its figures as JSON on stdout and exit.
    #[arg(long, requires = "models")]
    pub bench: bool,
    /// The --bench prompt (a user message of the chat template).
    #[arg(
        long,
        requires = "bench",
        default_value = "Write a short story about a robot who learns to paint."
    )]
    pub bench_prompt: String,
    /// Tokens the --bench generation produces at most.
    #[arg(long, requires = "bench", default_value_t = 128)]
    pub bench_tokens: usize,
    /// Sign every completion with a fresh Ed25519 key, whose public key is
    /// written to DIR/response-key.pub (DIR: absolute, this user's, not
    /// writable by group or others).
    #[arg(long, value_name = "DIR", conflicts_with = "bench")]
    pub signing_key_dir: Option<PathBuf>,
}

/// What the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Models to load at start.
    pub models: Vec<PathBuf>,
    /// Threads per matrix product.
    pub threads: usize,
    /// Queue capacity per model.
    pub queue: usize,
    /// The runtime-only benchmark, instead of serving.
    pub bench: Option<crate::bench::BenchConfig>,
    /// Where to write the response-signing key (none: answers unsigned).
    pub signing_key_dir: Option<PathBuf>,
}

impl Args {
    /// The configuration these arguments describe.
    pub fn config(self) -> Config {
        let bench = self.bench.then(|| crate::bench::BenchConfig {
            prompt: self.bench_prompt.clone(),
            max_tokens: self.bench_tokens.max(1),
        });
        Config {
            listen: self.listen,
            models: self.models,
            threads: self.threads.map_or(1, usize::from),
            queue: usize::from(self.queue),
            bench,
            signing_key_dir: self.signing_key_dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_listen_on_loopback_port_10070() {
        let config = Args::try_parse_from(["inference-server"]).unwrap().config();
        assert_eq!(config.listen.to_string(), "127.0.0.1:10070");
        assert!(config.models.is_empty());
        assert_eq!(config.threads, 1);
        assert_eq!(config.queue, DEFAULT_QUEUE_CAPACITY);
        assert!(config.bench.is_none());
        assert!(config.signing_key_dir.is_none());
    }

    #[test]
    fn models_repeat_and_bad_values_are_refused() {
        let args = Args::try_parse_from([
            "inference-server",
            "--listen",
            "127.0.0.1:10099",
            "--model",
            "/a.gguf",
            "--model",
            "/b.gguf",
            "--threads",
            "2",
        ])
        .unwrap();
        let config = args.config();
        assert_eq!(config.models.len(), 2);
        assert_eq!(config.threads, 2);
        assert!(Args::try_parse_from(["inference-server", "--threads", "0"]).is_err());
        assert!(Args::try_parse_from(["inference-server", "--queue", "0"]).is_err());
        assert!(Args::try_parse_from(["inference-server", "--listen", "localhost"]).is_err());
        assert!(Args::try_parse_from(["inference-server", "--bench"]).is_err());
    }
}
