//! `dns-to-vsock`: the enclave's resolver. Answers DNS on UDP (and TCP)
//! `127.0.0.1:53` by asking the host's `vsock-to-dns` over vsock.

use std::process::ExitCode;

use clap::Parser;
use pf_proxy::cli::{self, LimitArgs};
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
    ip_addr: std::net::SocketAddr,
    /// The host's vsock-to-dns: CID:PORT or any transport address.
    #[arg(short = 'v', long, value_name = "CID:PORT", default_value = "3:8053", value_parser = cli::vsock_addr)]
    vsock_addr: Address,
    /// Answer on UDP only (no DNS over TCP).
    #[arg(long)]
    no_tcp: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

fn main() -> ExitCode {
    cli::main_with(|args: Args| {
        let tcp = (!args.no_tcp).then(|| Address::Tcp {
            host: args.ip_addr.ip().to_string(),
            port: args.ip_addr.port(),
        });
        cli::run_configured(&args.limits, Ok, |limits, shutdown| {
            pf_proxy::dns::run_enclave_side(args.ip_addr, tcp, args.vsock_addr, limits, shutdown)
        })
    })
}
