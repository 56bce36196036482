//! `ip-to-vsock`: accept on TCP, connect each stream to a fixed vsock
//! address (host side of ingress, enclave side of a fixed egress).

use std::process::ExitCode;

use clap::Parser;
use pf_proxy::cli::{self, LimitArgs};
use pf_proxy::{Mode, ProxyConfig};
use transport::Address;

/// Accept on TCP and connect each stream to a fixed vsock address.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where to listen: IP:PORT or any transport address.
    #[arg(short = 'i', long, value_name = "IP:PORT", value_parser = cli::ip_addr)]
    ip_addr: Address,
    /// Where to connect: CID:PORT or any transport address.
    #[arg(short = 'v', long, value_name = "CID:PORT", value_parser = cli::vsock_addr)]
    vsock_addr: Address,
    #[command(flatten)]
    limits: LimitArgs,
}

fn main() -> ExitCode {
    let args: Args = cli::parse();
    cli::init_tracing();
    cli::run_proxy(&args.limits, |limits| {
        Ok(ProxyConfig {
            listen: args.ip_addr,
            mode: Mode::Forward {
                target: args.vsock_addr,
            },
            limits,
        })
    })
}
