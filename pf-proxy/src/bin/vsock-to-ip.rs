//! `vsock-to-ip`: accept on a vsock address, connect each stream to a fixed
//! TCP address (enclave side of ingress, host side of a fixed egress).

use std::process::ExitCode;

fn main() -> ExitCode {
    pf_proxy::cli::PairProxy::VsockToIp.main()
}
