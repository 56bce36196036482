//! `ip-to-vsock-transparent`: enclave side of transparent egress. iptables
//! redirects every outgoing TCP connection here; the original destination
//! is sent to the host ahead of the stream.

use std::process::ExitCode;

use clap::Parser;
use pf_proxy::cli::{self, LimitArgs};
use pf_proxy::{Mode, ProxyConfig};
use transport::Address;

/// Forward redirected TCP connections over vsock with their original destination.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where the iptables REDIRECT rule sends connections (usually 127.0.0.1:8888).
    #[arg(short = 'i', long, value_name = "IP:PORT", value_parser = cli::ip_addr)]
    ip_addr: Address,
    /// The host's vsock-to-ip-transparent (usually 3:8888): CID:PORT or any transport address.
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
            mode: Mode::TransparentOut {
                target: args.vsock_addr,
            },
            limits,
        })
    })
}
