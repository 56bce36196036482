//! One place that knows how to listen on and connect to an address.
//!
//! Every component of the framework takes its listening and connecting
//! endpoints as one address string, parsed here:
//!
//! | form | meaning |
//! | --- | --- |
//! | `vsock:CID:PORT` | AF_VSOCK; CID `any` to listen on every CID |
//! | `hvsock:PATH:PORT` | hybrid vsock of vhost-device-vsock, Firecracker and Cloud Hypervisor: connect to the Unix socket `PATH` and send `CONNECT PORT\n`; listening on `PORT` listens on the Unix socket `PATH_PORT` |
//! | `unix:PATH` | Unix stream socket |
//! | `tcp:HOST:PORT` | TCP, IPv6 hosts in brackets (`tcp:[::1]:80`) |
//!
//! Layout:
//! - [`defs`]: limits, timeouts and wire constants.
//! - [`address`]: [`Address`], its parser and Sentient-style shorthands.
//! - [`stream`]: [`Stream`], one type for every kind of connection, and its owned halves.
//! - [`listener`]: [`Listener`], binding and accepting with back-off on resource errors.
//! - [`accept`]: which accept errors are passing, which are permanent; pacing and throttled warnings.
//! - [`serve`](mod@serve): [`serve()`], the shared accept loop: connection limit, full policy,
//!   per-connection tasks and spans, shutdown with a grace period.
//! - [`connect`](mod@connect): connecting with bounded retries ([`ConnectOptions`]).
//! - [`hvsock`]: the hybrid-vsock `CONNECT` handshake, both sides.
//! - [`error`]: [`Error`], which always names the address at fault.

pub mod accept;
pub mod address;
mod backoff;
pub mod connect;
pub mod defs;
pub mod error;
pub mod hvsock;
pub mod listener;
pub mod serve;
pub mod stream;

pub use accept::{AcceptPacing, Throttle};
pub use address::{Address, ParseAddressError};
pub use connect::{ConnectOptions, connect, connect_with};
pub use error::Error;
pub use listener::{BindOptions, Listener, Peer};
pub use serve::{Handler, ServeConfig, ServeError, Stopped, WhenFull, serve};
pub use stream::{ReadHalf, Stream, WriteHalf};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
