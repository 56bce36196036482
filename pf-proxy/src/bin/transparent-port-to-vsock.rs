//! `transparent-port-to-vsock`: host side of transparent ingress. iptables
//! redirects the published ports here; each connection goes to the same
//! port in the enclave.

use std::process::ExitCode;

use clap::Parser;
use pf_proxy::cli::{self, LimitArgs};
use pf_proxy::{Mode, ProxyConfig};
use transport::Address;

/// Forward redirected TCP connections to the same port in the enclave.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where the iptables REDIRECT rule sends connections.
    #[arg(short = 'i', long, value_name = "IP:PORT", value_parser = cli::ip_addr)]
    ip_addr: Address,
    /// The enclave: CID:PORT or any transport address; its port is replaced
    /// by each connection's original destination port (`unix:PATH` becomes
    /// `unix:PATH_PORT`).
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
            mode: Mode::PortToVsock {
                target: args.vsock_addr,
            },
            limits,
        })
    })
}
