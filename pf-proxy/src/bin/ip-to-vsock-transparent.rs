//! `ip-to-vsock-transparent`: enclave side of transparent egress. iptables
//! redirects every outgoing TCP connection here; the original destination
//! is sent to the host ahead of the stream.

use std::process::ExitCode;

fn main() -> ExitCode {
    pf_proxy::cli::PairProxy::IpToVsockTransparent.main()
}
