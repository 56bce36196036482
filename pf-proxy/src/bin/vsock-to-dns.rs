//! `vsock-to-dns`: host side of DNS over vsock. Answers the enclave's
//! framed queries by asking the host's resolver.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use cli_support::{Failure, Main, Runtime, run_main};
use pf_proxy::Limits;
use pf_proxy::cli::{self, Configured, LimitArgs};
use tokio_util::sync::CancellationToken;
use transport::Address;

/// Answer DNS queries arriving over vsock from the host's resolver.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where to listen: CID:PORT or any transport address.
    #[arg(short = 'v', long, value_name = "CID:PORT", default_value = "any:8053", value_parser = cli::vsock_addr)]
    vsock_addr: Address,
    /// The resolver to ask (IP:PORT); default: the first nameserver of /etc/resolv.conf.
    #[arg(short = 'r', long, value_name = "IP:PORT")]
    resolver: Option<std::net::SocketAddr>,
    #[command(flatten)]
    limits: LimitArgs,
}

impl Main for Args {
    const NAME: &'static str = "vsock-to-dns";
    type Config = Configured<(Address, Limits, SocketAddr)>;

    fn config(self) -> anyhow::Result<Self::Config> {
        let resolver = self.resolver;
        Configured::new(&self.limits, |limits| {
            let upstream = resolver.map_or_else(pf_proxy::resolver::system_resolver, Ok)?;
            Ok((self.vsock_addr, limits, upstream))
        })
    }

    fn runtime(config: &Self::Config) -> Runtime {
        config.runtime()
    }

    async fn run(config: Self::Config, shutdown: CancellationToken) -> Result<u8, Failure> {
        let (listen, limits, upstream) = config.config;
        pf_proxy::dns::run_host_side(listen, upstream, limits, shutdown).await?;
        Ok(0)
    }
}

fn main() -> ExitCode {
    run_main::<Args>()
}
