//! `vsock-to-ip-transparent`: host side of transparent egress. Reads the
//! original destination sent by the enclave and connects to it if the
//! egress policy allows.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pf_proxy::cli::{self, LimitArgs};
use pf_proxy::{Mode, Policy, ProxyConfig};
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

fn main() -> ExitCode {
    cli::main_with(|args: Args| {
        cli::run_proxy(&args.limits, |limits| {
            let policy = Policy::load(&args.policy)?;
            tracing::info!(policy = %args.policy.display(), "{}", policy.summary());
            Ok(ProxyConfig {
                listen: args.vsock_addr,
                mode: Mode::TransparentIn {
                    policy: Arc::new(policy),
                },
                limits,
            })
        })
    })
}
