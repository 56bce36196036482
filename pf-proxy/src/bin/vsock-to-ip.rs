//! `vsock-to-ip`: accept on a vsock address, connect each stream to a fixed
//! TCP address (enclave side of ingress, host side of a fixed egress).

use std::process::ExitCode;

use clap::Parser;
use pf_proxy::cli::{self, LimitArgs};
use pf_proxy::{Mode, ProxyConfig};
use transport::Address;

/// Accept on a vsock address and connect each stream to a fixed TCP address.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where to listen: CID:PORT (CID `any` for every CID) or any transport address.
    #[arg(short = 'v', long, value_name = "CID:PORT", value_parser = cli::vsock_addr)]
    vsock_addr: Address,
    /// Where to connect: IP:PORT or any transport address.
    #[arg(short = 'i', long, value_name = "IP:PORT", value_parser = cli::ip_addr)]
    ip_addr: Address,
    #[command(flatten)]
    limits: LimitArgs,
}

fn main() -> ExitCode {
    let args: Args = cli::parse();
    cli::init_tracing();
    cli::run_proxy(&args.limits, |limits| {
        Ok(ProxyConfig {
            listen: args.vsock_addr,
            mode: Mode::Forward {
                target: args.ip_addr,
            },
            limits,
        })
    })
}
