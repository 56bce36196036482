//! `dns-to-vsock`: the enclave's resolver. Answers DNS on UDP (and TCP)
//! `127.0.0.1:53` by asking the host's `vsock-to-dns` over vsock.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use cli_support::{Failure, Main, Runtime, run_main};
use pf_proxy::Limits;
use pf_proxy::cli::{self, Configured, LimitArgs};
use tokio_util::sync::CancellationToken;
use transport::Address;

/// Answer DNS on 127.0.0.1:53 by forwarding the queries over vsock.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// UDP (and TCP) address to answer on.
    #[arg(
        short = 'i',
        long,
        value_name = "IP:PORT",
        default_value = "127.0.0.1:53"
    )]
    ip_addr: SocketAddr,
    /// The host's vsock-to-dns: CID:PORT or any transport address.
    #[arg(short = 'v', long, value_name = "CID:PORT", default_value = "3:8053", value_parser = cli::vsock_addr)]
    vsock_addr: Address,
    /// Answer on UDP only (no DNS over TCP).
    #[arg(long)]
    no_tcp: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Where to answer (UDP, and TCP unless `--no-tcp`) and where to ask.
struct Sides {
    udp: SocketAddr,
    tcp: Option<Address>,
    target: Address,
}

impl Main for Args {
    const NAME: &'static str = "dns-to-vsock";
    type Config = Configured<(Sides, Limits)>;

    fn config(self) -> anyhow::Result<Self::Config> {
        let tcp = (!self.no_tcp).then(|| Address::Tcp {
            host: self.ip_addr.ip().to_string(),
            port: self.ip_addr.port(),
        });
        let sides = Sides {
            udp: self.ip_addr,
            tcp,
            target: self.vsock_addr,
        };
        Configured::new(&self.limits, |limits| Ok((sides, limits)))
    }

    fn runtime(config: &Self::Config) -> Runtime {
        config.runtime()
    }

    async fn run(config: Self::Config, shutdown: CancellationToken) -> Result<u8, Failure> {
        let (sides, limits) = config.config;
        pf_proxy::dns::run_enclave_side(sides.udp, sides.tcp, sides.target, limits, shutdown)
            .await?;
        Ok(0)
    }
}

fn main() -> ExitCode {
    run_main::<Args>()
}
