//! `vsock-to-ip-transparent`: host side of transparent egress. Reads the
//! original destination sent by the enclave and connects to it if the
//! egress policy allows.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use cli_support::{Failure, Main, Runtime, run_main};
use pf_proxy::cli::{self, Configured, LimitArgs};
use pf_proxy::{Mode, Policy, ProxyConfig};
use tokio_util::sync::CancellationToken;
use transport::Address;

/// Connect the enclave's outgoing connections to their destinations, as the policy allows.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where to listen: CID:PORT (usually any:8888) or any transport address.
    #[arg(short = 'v', long, value_name = "CID:PORT", value_parser = cli::vsock_addr)]
    vsock_addr: Address,
    /// Egress policy (YAML). Everything not allowed there is denied; write
    /// `allow: all` in it to let everything out.
    #[arg(short = 'p', long, value_name = "FILE")]
    policy: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
}

impl Main for Args {
    const NAME: &'static str = "vsock-to-ip-transparent";
    type Config = Configured<ProxyConfig>;

    fn config(self) -> anyhow::Result<Self::Config> {
        Configured::new(&self.limits, |limits| {
            let policy = Policy::load(&self.policy)?;
            tracing::info!(policy = %self.policy.display(), "{}", policy.summary());
            Ok(ProxyConfig {
                listen: self.vsock_addr,
                mode: Mode::TransparentIn {
                    policy: Arc::new(policy),
                },
                limits,
            })
        })
    }

    fn runtime(config: &Self::Config) -> Runtime {
        config.runtime()
    }

    async fn run(config: Self::Config, shutdown: CancellationToken) -> Result<u8, Failure> {
        pf_proxy::proxy::run(config.config, shutdown).await?;
        Ok(0)
    }
}

fn main() -> ExitCode {
    run_main::<Args>()
}
