//! What every binary shares: Sentient-style address flags, limit flags,
//! and the four pair proxies' whole program; each binary runs on
//! [`cli_support::run_main`] (logging, signal handling, exit codes).
//!
//! Exit codes: 0 after a clean shutdown, 64 for bad usage or configuration,
//! 1 when the proxy could not start or its listener failed.

use std::marker::PhantomData;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cli_support::{Failure, Main, Runtime};
use tokio_util::sync::CancellationToken;
use transport::Address;

use crate::defs::{
    COPY_BUFFER_SIZE, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_GRACE,
};
use crate::proxy::{self, ProxyConfig};
use crate::server::Limits;

pub use cli_support::EXIT_USAGE;

const SCHEMES: [&str; 4] = ["vsock:", "hvsock:", "unix:", "tcp:"];

fn has_scheme(text: &str) -> bool {
    SCHEMES.iter().any(|scheme| text.starts_with(scheme))
}

/// Parses a `--vsock-addr`: Sentient's `CID:PORT`, or any transport address.
pub fn vsock_addr(text: &str) -> Result<Address, String> {
    if has_scheme(text) {
        text.parse().map_err(|err| format!("{err}"))
    } else {
        Address::from_vsock_pair(text).map_err(|err| format!("{err}"))
    }
}

/// Parses an `--ip-addr`: Sentient's `IP:PORT` (`[::1]:80`), or any transport address.
pub fn ip_addr(text: &str) -> Result<Address, String> {
    if has_scheme(text) {
        text.parse().map_err(|err| format!("{err}"))
    } else {
        Address::from_ip_pair(text).map_err(|err| format!("{err}"))
    }
}

/// Limit, time-out and runtime flags shared by every proxy.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Connections served at once; more are closed at once.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds connecting to the target may take.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_CONNECT_TIMEOUT.as_secs_f64())]
    pub connect_timeout: f64,
    /// Seconds without a byte either way before a connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs_f64())]
    pub idle_timeout: f64,
    /// Seconds the original-destination header may take to arrive.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_HEADER_TIMEOUT.as_secs_f64())]
    pub header_timeout: f64,
    /// Seconds open connections get to finish after SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_SHUTDOWN_GRACE.as_secs_f64())]
    pub shutdown_grace: f64,
    /// Copy every byte through user space, never with splice(2) (which
    /// bulk transfers between TCP and Unix sockets use otherwise).
    #[arg(long)]
    pub no_splice: bool,
    /// Worker threads (0: one per CPU). One thread gives the lowest latency
    /// per exchange; more spread many busy connections over the CPUs.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Largest copy buffer per direction and connection, in bytes (buffers
    /// start at 16 KiB and grow while a transfer fills them).
    #[arg(long, value_name = "BYTES", default_value_t = COPY_BUFFER_SIZE)]
    pub buffer_size: usize,
}

/// A flag value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--{flag}: {why}")]
pub struct FlagError {
    /// The flag, without dashes.
    pub flag: &'static str,
    /// What is wrong.
    pub why: String,
}

fn seconds(flag: &'static str, value: f64) -> Result<Duration, FlagError> {
    Duration::try_from_secs_f64(value).map_err(|_| FlagError {
        flag,
        why: format!("{value} is not a number of seconds"),
    })
}

impl LimitArgs {
    /// Validates the flags into [`Limits`].
    pub fn limits(&self) -> Result<Limits, FlagError> {
        if self.max_connections == 0 {
            return Err(FlagError {
                flag: "max-connections",
                why: "must be at least 1".to_owned(),
            });
        }
        if !(512..=16 * 1024 * 1024).contains(&self.buffer_size) {
            return Err(FlagError {
                flag: "buffer-size",
                why: "must be from 512 bytes to 16 MiB".to_owned(),
            });
        }
        Ok(Limits {
            max_connections: self.max_connections,
            connect_timeout: seconds("connect-timeout", self.connect_timeout)?,
            idle_timeout: seconds("idle-timeout", self.idle_timeout)?,
            header_timeout: seconds("header-timeout", self.header_timeout)?,
            shutdown_grace: seconds("shutdown-grace", self.shutdown_grace)?,
            buffer_size: self.buffer_size,
            splice: !self.no_splice,
        })
    }
}

/// The proxies that take one `--ip-addr` and one `--vsock-addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairProxy {
    /// `vsock-to-ip`: listen on vsock, connect to a fixed TCP address.
    VsockToIp,
    /// `ip-to-vsock`: listen on TCP, connect to a fixed vsock address.
    IpToVsock,
    /// `ip-to-vsock-transparent`: enclave side of transparent egress.
    IpToVsockTransparent,
    /// `transparent-port-to-vsock`: host side of transparent ingress.
    TransparentPortToVsock,
}

/// The flags of a [`PairProxy`]; their help is set per proxy.
#[derive(Debug, Parser)]
#[command(version)]
pub struct PairArgs {
    /// TCP side.
    #[arg(short = 'i', long, value_name = "IP:PORT", value_parser = ip_addr)]
    pub ip_addr: Address,
    /// vsock side.
    #[arg(short = 'v', long, value_name = "CID:PORT", value_parser = vsock_addr)]
    pub vsock_addr: Address,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: LimitArgs,
}

impl PairProxy {
    /// Binary name, one-line description, `--ip-addr` help, `--vsock-addr` help.
    fn texts(self) -> [&'static str; 4] {
        match self {
            PairProxy::VsockToIp => [
                "vsock-to-ip",
                "Accept on a vsock address and connect each stream to a fixed TCP address \
                 (enclave side of ingress, host side of a fixed egress).",
                "Where to connect: IP:PORT or any transport address.",
                "Where to listen: CID:PORT (CID `any` for every CID) or any transport address.",
            ],
            PairProxy::IpToVsock => [
                "ip-to-vsock",
                "Accept on TCP and connect each stream to a fixed vsock address \
                 (host side of ingress, enclave side of a fixed egress).",
                "Where to listen: IP:PORT or any transport address.",
                "Where to connect: CID:PORT or any transport address.",
            ],
            PairProxy::IpToVsockTransparent => [
                "ip-to-vsock-transparent",
                "Enclave side of transparent egress: forward each TCP connection redirected \
                 here by iptables over vsock, its original destination sent first.",
                "Where the iptables REDIRECT rule sends connections (usually 127.0.0.1:8888).",
                "The host's vsock-to-ip-transparent (usually 3:8888): CID:PORT or any transport address.",
            ],
            PairProxy::TransparentPortToVsock => [
                "transparent-port-to-vsock",
                "Host side of transparent ingress: forward each TCP connection redirected \
                 here by iptables to the same port in the enclave.",
                "Where the iptables REDIRECT rule sends connections (usually 0.0.0.0:8000).",
                "The enclave: CID:PORT or any transport address; its port is replaced by each \
                 connection's original destination port (`unix:PATH` becomes `unix:PATH_PORT`).",
            ],
        }
    }

    /// The proxy's configuration from its flags.
    pub fn config(self, args: PairArgs, limits: Limits) -> ProxyConfig {
        use crate::proxy::Mode;
        let (listen, mode) = match self {
            PairProxy::VsockToIp => (
                args.vsock_addr,
                Mode::Forward {
                    target: args.ip_addr,
                },
            ),
            PairProxy::IpToVsock => (
                args.ip_addr,
                Mode::Forward {
                    target: args.vsock_addr,
                },
            ),
            PairProxy::IpToVsockTransparent => (
                args.ip_addr,
                Mode::TransparentOut {
                    target: args.vsock_addr,
                },
            ),
            PairProxy::TransparentPortToVsock => (
                args.ip_addr,
                Mode::PortToVsock {
                    target: args.vsock_addr,
                },
            ),
        };
        ProxyConfig {
            listen,
            mode,
            limits,
        }
    }

    /// The command line of this proxy: its name and help texts.
    fn command(self) -> clap::Command {
        use clap::CommandFactory;
        let [name, about, ip_help, vsock_help] = self.texts();
        PairArgs::command()
            .name(name)
            .bin_name(name)
            .about(about)
            .mut_arg("ip_addr", |arg| arg.help(ip_help))
            .mut_arg("vsock_addr", |arg| arg.help(vsock_help))
    }

    /// The whole program: parse the flags, log to stderr, run until SIGTERM.
    pub fn main(self) -> ExitCode {
        match self {
            PairProxy::VsockToIp => cli_support::run_main::<Pair<VsockToIp>>(),
            PairProxy::IpToVsock => cli_support::run_main::<Pair<IpToVsock>>(),
            PairProxy::IpToVsockTransparent => {
                cli_support::run_main::<Pair<IpToVsockTransparent>>()
            }
            PairProxy::TransparentPortToVsock => {
                cli_support::run_main::<Pair<TransparentPortToVsock>>()
            }
        }
    }
}

/// A [`PairProxy`] as a type, to make a binary of.
pub trait PairKind: Send + 'static {
    /// Which proxy.
    const PROXY: PairProxy;
    /// Its binary's name.
    const NAME: &'static str;
}

macro_rules! pair_kinds {
    ($($kind:ident: $name:literal),* $(,)?) => {$(
        #[doc = concat!("`", $name, "`.")]
        #[derive(Debug)]
        pub struct $kind;

        impl PairKind for $kind {
            const PROXY: PairProxy = PairProxy::$kind;
            const NAME: &'static str = $name;
        }
    )*};
}

pair_kinds!(
    VsockToIp: "vsock-to-ip",
    IpToVsock: "ip-to-vsock",
    IpToVsockTransparent: "ip-to-vsock-transparent",
    TransparentPortToVsock: "transparent-port-to-vsock",
);

/// The flags of the pair proxy `K`.
#[derive(Debug, Parser)]
pub struct Pair<K: PairKind> {
    #[command(flatten)]
    args: PairArgs,
    #[arg(skip)]
    kind: PhantomData<K>,
}

impl<K: PairKind> Main for Pair<K> {
    const NAME: &'static str = K::NAME;
    type Config = Configured<ProxyConfig>;

    fn clap_command() -> clap::Command {
        K::PROXY.command()
    }

    fn config(self) -> anyhow::Result<Self::Config> {
        let limits = self.args.limits.clone();
        Configured::new(&limits, |limits| Ok(K::PROXY.config(self.args, limits)))
    }

    fn runtime(config: &Self::Config) -> Runtime {
        config.runtime()
    }

    async fn run(config: Self::Config, shutdown: CancellationToken) -> Result<u8, Failure> {
        proxy::run(config.config, shutdown).await?;
        Ok(0)
    }
}

/// A proxy's configuration and the worker threads it runs on.
#[derive(Debug)]
pub struct Configured<C> {
    /// What the proxy runs with.
    pub config: C,
    /// `--threads` (0: one per CPU).
    pub threads: usize,
}

impl<C> Configured<C> {
    /// Validates the limit flags and builds the configuration with them.
    pub fn new(
        limits: &LimitArgs,
        build: impl FnOnce(Limits) -> anyhow::Result<C>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            config: build(limits.limits()?)?,
            threads: limits.threads,
        })
    }

    /// The runtime: `--threads` workers, or one per CPU.
    pub fn runtime(&self) -> Runtime {
        Runtime::Service {
            workers: self.threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid_and_maps_each_proxy() {
        use clap::CommandFactory;
        PairArgs::command().debug_assert();
        let args = |proxy: PairProxy| {
            let parsed =
                PairArgs::try_parse_from(["x", "-i", "127.0.0.1:80", "-v", "3:80"]).unwrap();
            proxy.config(parsed, Limits::default())
        };
        assert_eq!(
            args(PairProxy::VsockToIp).listen,
            Address::vsock(3, 80),
            "vsock-to-ip listens on vsock"
        );
        for proxy in [
            PairProxy::IpToVsock,
            PairProxy::IpToVsockTransparent,
            PairProxy::TransparentPortToVsock,
        ] {
            assert_eq!(
                args(proxy).listen.to_string(),
                "tcp:127.0.0.1:80",
                "{proxy:?}"
            );
        }
    }

    #[test]
    fn sentient_pairs_and_transport_addresses() {
        assert_eq!(vsock_addr("3:8888").unwrap(), Address::vsock(3, 8888));
        assert_eq!(
            vsock_addr("unix:/tmp/x").unwrap(),
            Address::Unix("/tmp/x".into())
        );
        assert_eq!(
            ip_addr("127.0.0.1:80").unwrap().to_string(),
            "tcp:127.0.0.1:80"
        );
        assert_eq!(ip_addr("[::1]:80").unwrap().to_string(), "tcp:[::1]:80");
        assert_eq!(
            ip_addr("hvsock:/run/vm.sock:5").unwrap().to_string(),
            "hvsock:/run/vm.sock:5"
        );
        assert!(vsock_addr("3").unwrap_err().contains("CID:PORT"));
        assert!(ip_addr("1.2.3.4").is_err());
    }
}
