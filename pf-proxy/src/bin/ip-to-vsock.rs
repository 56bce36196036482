//! `ip-to-vsock`: accept on TCP, connect each stream to a fixed vsock
//! address (host side of ingress, enclave side of a fixed egress).

use std::process::ExitCode;

fn main() -> ExitCode {
    pf_proxy::cli::PairProxy::IpToVsock.main()
}
