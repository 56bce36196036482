//! `vsock-to-dns`: host side of DNS over vsock. Answers the enclave's
//! framed queries by asking the host's resolver.

use std::process::ExitCode;

use clap::Parser;
use pf_proxy::cli::{self, LimitArgs};
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

fn main() -> ExitCode {
    cli::main_with(|args: Args| {
        let resolver = args.resolver;
        cli::run_configured(
            &args.limits,
            |limits| {
                let upstream = resolver.map_or_else(pf_proxy::resolver::system_resolver, Ok)?;
                Ok((limits, upstream))
            },
            |(limits, upstream), shutdown| {
                pf_proxy::dns::run_host_side(args.vsock_addr, upstream, limits, shutdown)
            },
        )
    })
}
