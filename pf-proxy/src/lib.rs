//! Forward, reverse and transparent TCP <-> vsock proxies with an egress
//! policy, and DNS over vsock.
//!
//! The enclave has no network card: every byte in or out crosses vsock
//! through these proxies. Every listening and connecting address is a
//! [`transport::Address`], so each mode also runs over `unix:` and `tcp:`
//! (tests) and `hvsock:` (local micro-VMs).
//!
//! Layout:
//! - [`defs`]: limits, time-outs, default ports and wire constants.
//! - [`header`]: the original-destination header of transparent egress (no I/O).
//! - [`original_dst`]: `SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST`.
//! - [`duplex`]: bidirectional copy with half-close passed through.
//! - [`splice`]: zero-copy forwarding of bulk transfers between TCP and Unix sockets.
//! - [`policy`]: the egress allowlist.
//! - [`server`]: the accept loop (connection limit, graceful shutdown).
//! - [`proxy`]: the proxy modes, one accepted connection at a time.
//! - [`dns_wire`]: DNS framing and the bits of messages the proxies read (no I/O).
//! - [`resolver`]: asking the host's resolver.
//! - [`dns`]: DNS over vsock, enclave side and host side.
//! - [`cli`]: what the binaries share (flags, logging, signals, exit codes).

pub mod cli;
pub mod defs;
pub mod dns;
pub mod dns_stream;
pub mod dns_wire;
pub mod duplex;
pub mod header;
pub mod original_dst;
pub mod policy;
pub mod proxy;
pub mod resolver;
pub mod server;
pub mod splice;

pub use policy::{Decision, Policy};
pub use proxy::{Mode, ProxyConfig, run, run_on};
pub use server::Limits;
