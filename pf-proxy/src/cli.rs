//! What every binary shares: Sentient-style address flags, limit flags,
//! logging set-up, signal handling and exit codes.
//!
//! Exit codes: 0 after a clean shutdown, 64 for bad usage or configuration,
//! 1 when the proxy could not start or its listener failed.

use std::fmt::Write as _;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use transport::Address;

use crate::defs::{
    COPY_BUFFER_SIZE, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_GRACE,
};
use crate::proxy::{self, ProxyConfig};
use crate::server::Limits;

pub use cli_support::{EXIT_USAGE, parse_args};

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

    /// The whole program: parse the flags, log to stderr, run until SIGTERM.
    pub fn main(self) -> ExitCode {
        use clap::{CommandFactory, FromArgMatches};
        let [name, about, ip_help, vsock_help] = self.texts();
        let command = PairArgs::command()
            .name(name)
            .bin_name(name)
            .about(about)
            .mut_arg("ip_addr", |arg| arg.help(ip_help))
            .mut_arg("vsock_addr", |arg| arg.help(vsock_help));
        let args = match command
            .try_get_matches()
            .and_then(|matches| PairArgs::from_arg_matches(&matches))
        {
            Ok(args) => args,
            Err(err) => return cli_support::usage_exit(err),
        };
        init_tracing();
        let limits = args.limits.clone();
        run_proxy(&limits, |limits| Ok(self.config(args, limits)))
    }
}

/// The whole program of a proxy binary: parses its flags `T` (bad usage
/// exits with [`EXIT_USAGE`]), logs to stderr, and hands the flags to `main`.
pub fn main_with<T: Parser>(main: impl FnOnce(T) -> ExitCode) -> ExitCode {
    match parse_args::<T>() {
        Ok(args) => {
            init_tracing();
            main(args)
        }
        Err(code) => code,
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    cli_support::init_tracing("info");
}

/// An error and its causes on one line: `a: b: c`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// Prints a usage or configuration error and returns [`EXIT_USAGE`].
pub fn usage_error(err: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {}", chain(err));
    ExitCode::from(EXIT_USAGE)
}

/// Runs `main` on a Tokio runtime of `threads` workers (0: one per CPU)
/// with a token cancelled by SIGTERM or SIGINT.
pub fn run<F, Fut, E>(threads: usize, main: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error,
{
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async { main(cli_support::cancel_on_signals()).await });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// Validates the limit flags, builds the proxy's configuration with them
/// (an error there is a configuration error, exit 64), and runs the proxy
/// until SIGTERM or SIGINT.
pub fn run_proxy<B>(limits: &LimitArgs, build: B) -> ExitCode
where
    B: FnOnce(Limits) -> Result<ProxyConfig, Box<dyn std::error::Error>>,
{
    run_configured(limits, build, proxy::run)
}

/// Validates the limit flags, builds a configuration with them (an error
/// there is a configuration error, exit 64), and runs `main` with it until
/// SIGTERM or SIGINT.
pub fn run_configured<C, B, M, Fut, E>(limits: &LimitArgs, build: B, main: M) -> ExitCode
where
    B: FnOnce(Limits) -> Result<C, Box<dyn std::error::Error>>,
    M: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error,
{
    let config = match limits.limits().map_err(Into::into).and_then(build) {
        Ok(config) => config,
        Err(err) => return usage_error(err.as_ref()),
    };
    run(limits.threads, |shutdown| main(config, shutdown))
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
