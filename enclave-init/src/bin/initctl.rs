//! `initctl`: sends one request to init and prints the answer.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use attested_channel::{ChannelArgs, ClientConfig};
use clap::{Parser, Subcommand};
use cli_support::{Failure, Main, Runtime, run_main};
use enclave_init::control::client;
use enclave_init::control::cmd::{Request, Response};
use enclave_init::ctl_config::{CtlOverrides, Protocol, resolve};
use enclave_init::defs::{
    CONTROL_HANDSHAKE_TIMEOUT, DEFAULT_LOG_LINES, INIT_SOCKET_ENV, INITCTL_CONFIG_ENV,
};
use enclave_init::render;
use tokio_util::sync::CancellationToken;
use transport::Address;

/// Control the enclave's init: list, start, stop, enable services, read their logs.
#[derive(Debug, Parser)]
#[command(name = "initctl", version)]
struct Cli {
    /// initctl configuration file (default /etc/initctl.yaml).
    #[arg(short, long, env = INITCTL_CONFIG_ENV, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Protocol: unix or vsock.
    #[arg(short, long, value_enum)]
    protocol: Option<Protocol>,
    /// Unix socket path.
    #[arg(short, long, env = INIT_SOCKET_ENV, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// vsock CID of the enclave.
    #[arg(long, value_name = "CID")]
    vsock_cid: Option<u32>,
    /// vsock port of init's control listener.
    #[arg(long, value_name = "PORT")]
    vsock_port: Option<u32>,
    /// Any address: unix:PATH, vsock:CID:PORT, hvsock:PATH:PORT, tcp:HOST:PORT (overrides the rest).
    #[arg(short, long, value_name = "ADDRESS", conflicts_with_all = ["protocol", "socket", "vsock_cid", "vsock_port"])]
    address: Option<Address>,
    /// Print init's JSON response instead of text.
    #[arg(long)]
    json: bool,
    /// The attested channel (vsock/TCP listeners of an image with
    /// `control.attested`): init's attestation is checked first, and a key
    /// allowed to manage may then change services; without --key, plaintext
    /// and read-only there.
    #[command(flatten)]
    channel: ChannelArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List all services.
    List,
    /// Show a service in detail.
    Status {
        /// Service name.
        service: String,
    },
    /// Start a service.
    Start {
        /// Service name.
        service: String,
    },
    /// Stop a service.
    Stop {
        /// Service name.
        service: String,
    },
    /// Restart a service.
    Restart {
        /// Service name.
        service: String,
    },
    /// Enable a service.
    Enable {
        /// Start it now as well.
        #[arg(long)]
        now: bool,
        /// Service name.
        service: String,
    },
    /// Disable a service.
    Disable {
        /// Stop it now as well.
        #[arg(long)]
        now: bool,
        /// Service name.
        service: String,
    },
    /// Show the last lines of a service's log.
    Logs {
        /// Service name.
        service: String,
        /// Number of lines.
        #[arg(short = 'n', long, default_value_t = DEFAULT_LOG_LINES)]
        lines: usize,
    },
    /// Clear a service's logs.
    LogsClear {
        /// Service name.
        service: String,
    },
    /// Show system status.
    SystemStatus,
    /// Reload the service files.
    Reload,
    /// Reboot the enclave.
    Reboot,
    /// Shut the enclave down.
    Shutdown,
    /// Check that init answers; with --count, measure the round trip on one connection.
    Ping {
        /// Requests to send.
        #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        count: u32,
    },
}

impl Cmd {
    fn request(self) -> Request {
        match self {
            Cmd::List => Request::ListServices,
            Cmd::Status { service } => Request::ServiceStatus { name: service },
            Cmd::Start { service } => Request::ServiceStart { name: service },
            Cmd::Stop { service } => Request::ServiceStop { name: service },
            Cmd::Restart { service } => Request::ServiceRestart { name: service },
            Cmd::Enable { now, service } => Request::ServiceEnable { name: service, now },
            Cmd::Disable { now, service } => Request::ServiceDisable { name: service, now },
            Cmd::Logs { service, lines } => Request::ServiceLogs {
                name: service,
                lines,
            },
            Cmd::LogsClear { service } => Request::ServiceLogsClear { name: service },
            Cmd::SystemStatus => Request::SystemStatus,
            Cmd::Reload => Request::SystemReload,
            Cmd::Reboot => Request::SystemReboot,
            Cmd::Shutdown => Request::SystemShutdown,
            Cmd::Ping { .. } => Request::Ping,
        }
    }
}

const EXIT_FAILED: u8 = 1;
const EXIT_UNAVAILABLE: u8 = 69;
/// Init's attestation failed a check (wrong PCRs, signer, nonce or key
/// binding): nothing but the handshake was sent.
const EXIT_ATTESTATION: u8 = 76;
/// Init refused the request on this connection, or the client's key
/// (sysexits' EX_NOPERM).
const EXIT_REFUSED: u8 = 77;

/// What initctl was asked, with init's address resolved.
struct Job {
    target: Target,
    command: Cmd,
    json: bool,
}

impl Main for Cli {
    const NAME: &'static str = "initctl";
    type Config = Job;

    fn log_level(&self) -> &'static str {
        "warn"
    }

    fn config(self) -> anyhow::Result<Job> {
        let overrides = CtlOverrides {
            config: self.config.clone(),
            protocol: self.protocol,
            socket: self.socket.clone(),
            vsock_cid: self.vsock_cid,
            vsock_port: self.vsock_port,
            address: self.address.clone(),
        };
        let addr = resolve(&overrides)?;
        let channel = self
            .channel
            .client_config(CONTROL_HANDSHAKE_TIMEOUT)
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        Ok(Job {
            target: Target { addr, channel },
            command: self.command,
            json: self.json,
        })
    }

    /// One request; SIGINT and SIGTERM end it at once.
    fn runtime(_job: &Job) -> Runtime {
        Runtime::OneShot
    }

    async fn run(job: Job, _shutdown: CancellationToken) -> Result<u8, Failure> {
        let Job {
            target,
            command,
            json,
        } = job;
        if let Cmd::Ping { count } = command
            && count > 1
        {
            println!("{}", ping_many(&target, count).await?);
            return Ok(0);
        }
        let response = exchange(&target, &command.request()).await?;
        match print(&response, json) {
            Ok(code) => Ok(code),
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
            Err(err) => Err(Failure::with_code(
                EXIT_FAILED,
                anyhow::anyhow!("cannot write output: {err}"),
            )),
        }
    }

    /// A request that got no answer: 76 when init's attestation failed,
    /// 77 when init refused the key, 69 otherwise.
    fn exit_code(err: &anyhow::Error) -> u8 {
        let handshake = err
            .downcast_ref::<client::ClientError>()
            .and_then(client::ClientError::handshake);
        match handshake {
            Some(e) if e.is_attestation_failure() => EXIT_ATTESTATION,
            Some(e) if e.is_refusal() => EXIT_REFUSED,
            _ => EXIT_UNAVAILABLE,
        }
    }
}

fn main() -> ExitCode {
    run_main::<Cli>()
}

/// Where init is, and how to talk to it.
struct Target {
    addr: Address,
    channel: Option<ClientConfig>,
}

impl Target {
    /// A connection: plaintext, or the attested channel (init's
    /// attestation checked before anything is sent).
    async fn connect(&self) -> Result<client::Client, client::ClientError> {
        match &self.channel {
            None => client::Client::connect(&self.addr).await,
            Some(channel) => {
                let (client, attested) =
                    client::Client::connect_attested(&self.addr, channel).await?;
                tracing::info!(
                    addr = %self.addr,
                    init_key = %attested.server_key.short(),
                    "init attested: {}",
                    attested.report.verdict()
                );
                Ok(client)
            }
        }
    }
}

async fn exchange(target: &Target, request: &Request) -> anyhow::Result<Response> {
    let mut client = target.connect().await?;
    Ok(client.call(request).await?)
}

/// Sends `count` pings on one connection; a summary like ping(8).
async fn ping_many(target: &Target, count: u32) -> anyhow::Result<String> {
    let addr = &target.addr;
    {
        let mut client = target.connect().await?;
        let mut rtts = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let begun = std::time::Instant::now();
            match client.call(&Request::Ping).await? {
                Response::Pong => rtts.push(begun.elapsed()),
                other => anyhow::bail!("unexpected answer to Ping: {other:?}"),
            }
        }
        rtts.sort();
        let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
        let total: std::time::Duration = rtts.iter().sum();
        Ok(format!(
            "✓ {count} pings to {addr}: min {:.1} us, median {:.1} us, p99 {:.1} us, max {:.1} us, mean {:.1} us",
            us(rtts[0]),
            us(rtts[rtts.len() / 2]),
            us(rtts[(rtts.len() * 99 / 100).min(rtts.len() - 1)]),
            us(rtts[rtts.len() - 1]),
            us(total / count)
        ))
    }
}

/// Prints the answer; returns the exit status it means.
fn print(response: &Response, json: bool) -> std::io::Result<u8> {
    let mut out = std::io::stdout().lock();
    let code = match response {
        Response::Error { .. } => EXIT_FAILED,
        Response::Refused { .. } => EXIT_REFUSED,
        _ => 0,
    };
    if json {
        let text = serde_json::to_string_pretty(response).map_err(std::io::Error::other)?;
        writeln!(out, "{text}")?;
    } else {
        match response {
            Response::Success { message } => writeln!(out, "✓ {message}")?,
            Response::Error { message } => eprintln!("✗ {message}"),
            Response::Refused { message } => eprintln!("✗ refused: {message}"),
            Response::Pong => writeln!(out, "✓ Pong: init is alive")?,
            Response::ServiceList { services } => {
                write!(out, "{}", render::service_list(services))?
            }
            Response::ServiceStatus { status } => {
                write!(out, "{}", render::service_status(status))?
            }
            Response::ServiceLogs {
                lines,
                truncated,
                name,
            } => {
                for line in lines {
                    writeln!(out, "{line}")?;
                }
                if *truncated {
                    eprintln!(
                        "initctl: older lines of '{name}' left out to keep the reply bounded"
                    );
                }
            }
            Response::SystemStatus { status } => write!(out, "{}", render::system_status(status))?,
        }
    }
    out.flush()?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
