//! `transparent-port-to-vsock`: host side of transparent ingress. iptables
//! redirects the published ports here; each connection goes to the same
//! port in the enclave.

use std::process::ExitCode;

fn main() -> ExitCode {
    pf_proxy::cli::PairProxy::TransparentPortToVsock.main()
}
