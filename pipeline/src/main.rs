//! `pipeline`: run commands in an enclave and copy files to and from it.
//!
//! Declares the arguments; [`pipeline::settings`] merges them with the
//! optional config file and checks them, [`cli_support::run_main`] runs
//! the command. Exit status: the remote command's own
//! (128+N for signal N, 124 for a time-out) for `run`; 126/127 when the
//! command could not be started or found; 64 for bad usage or config; 69
//! when the server cannot be reached; 76 when the server's attestation
//! fails a check (wrong PCRs, signer, nonce or key binding: nothing but the
//! handshake was sent); 77 when the server refuses the client's key; 1 for
//! any other failure.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use attested_channel::{SetupError, StaticKey};
use clap::{Args, Parser, Subcommand};
use cli_support::{EXIT_USAGE, Failure, Main, Runtime};
use enclave_nsm::NsmMode;
use pipeline::Error;
use pipeline::client::exec::{RunOptions, RunOutcome};
use pipeline::client::{Client, copy};
use pipeline::progress::Progress;
use pipeline::protocol::{ErrorCode, Expect, Summary};
use pipeline::server;
use pipeline::settings::{
    ConnectFlags, ListenFlags, ListenSettings, REMOTE_PREFIX, RunFlags, RunSettings, Sources,
    Transfer, plaintext_is_local,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use transport::{Address, BindOptions, Listener};

/// Exit status when the server cannot be reached (EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;
/// Exit status when the server's attestation fails a check.
const EXIT_ATTESTATION: u8 = 76;
/// Exit status when the server refuses the client's key (EX_NOPERM).
const EXIT_REFUSED: u8 = 77;
/// Where `--nsm development` keeps its PKI unless `--state-dir` says otherwise.
const DEFAULT_STATE_DIR: &str = "/var/lib/pipeline";

#[derive(Debug, Parser)]
#[command(
    name = "pipeline",
    version,
    about = "Run commands in an enclave and copy files to and from it"
)]
struct Cli {
    /// YAML configuration file (flags override it).
    #[arg(short, long, global = true, env = "PIPELINE_CONFIG")]
    config: Option<PathBuf>,
    /// More log output (-v info, -vv debug); RUST_LOG takes precedence.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve clients (runs in the enclave). With --authorized-keys: the
    /// attested, encrypted channel; without: INSECURE plaintext (unix: and
    /// loopback tcp: only, unless --insecure-plaintext).
    Listen(ListenArgs),
    /// Make a client key pair: FILE (private, mode 0600) and FILE.pub.
    Keygen(KeygenArgs),
    /// Run a command in the enclave.
    Run(RunArgs),
    /// Copy files or directories; `enclave:/path` marks the enclave side.
    Cp(CpArgs),
    /// Send a file to the enclave (creates missing parent directories).
    SendFile(SendFileArgs),
    /// Fetch a file from the enclave (creates missing parent directories).
    RecvFile(RecvFileArgs),
    /// Send a directory's content to a directory in the enclave.
    SendDir(SendDirArgs),
    /// Fetch an enclave directory's content into a local directory.
    RecvDir(RecvDirArgs),
}

#[derive(Debug, Args)]
struct ListenArgs {
    /// Address to listen on (vsock:any:PORT, unix:PATH, tcp:HOST:PORT, hvsock:PATH:PORT).
    #[arg(long, conflicts_with = "port")]
    addr: Option<Address>,
    /// Sentient style: listen on vsock:any:PORT.
    #[arg(long)]
    port: Option<u32>,
    /// Refuse to run commands (production images).
    #[arg(long)]
    no_exec: bool,
    /// Confine file reads and writes to this directory (repeatable).
    #[arg(long = "root", value_name = "DIR")]
    roots: Vec<PathBuf>,
    /// Make what clients write readable by every user here (a+r; a+x on
    /// directories and executables) and drop setuid, setgid and sticky
    /// bits: an enclave's inbox, read by the services that hash, attest and
    /// use the data whatever its mode on the host.
    #[arg(long)]
    readable_by_all: bool,
    /// Clients served at once.
    #[arg(long)]
    max_clients: Option<usize>,
    /// Drop a client silent for this many seconds in the middle of an operation.
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// File mode of a unix:/hvsock: listening socket (octal).
    #[arg(long, value_name = "MODE")]
    socket_mode: Option<String>,
    /// Require the attested, encrypted channel; accept only the client keys
    /// in FILE, each with its permissions (authorized_keys format).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure_plaintext")]
    authorized_keys: Option<PathBuf>,
    /// Which NSM attests the server's key: /dev/nsm, or the development
    /// signer (NOT an enclave: for tests and development only).
    #[arg(long, value_enum, default_value = "auto", requires = "authorized_keys")]
    nsm: NsmMode,
    /// Where the development NSM keeps its PKI (writes DIR/dev-root.pem for
    /// clients' --root, and DIR/dev.eif.pcrs for their --expect-pcrs).
    #[arg(long, value_name = "DIR", requires = "authorized_keys")]
    state_dir: Option<PathBuf>,
    /// INSECURE: serve plaintext, unauthenticated clients on an address that
    /// is not unix: or loopback tcp: (debug images only). Anyone who can
    /// reach the address may do anything the policy allows.
    #[arg(long)]
    insecure_plaintext: bool,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// The private key file to write (FILE.pub gets the public key).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Comment at the end of the public key line.
    #[arg(long, default_value = "")]
    comment: String,
}

#[derive(Debug, Args)]
struct ConnArgs {
    /// Server address (vsock:CID:PORT, hvsock:PATH:PORT, unix:PATH, tcp:HOST:PORT).
    #[arg(long, env = "PIPELINE_ADDR", conflicts_with = "cid")]
    addr: Option<Address>,
    /// Sentient style: the enclave's vsock CID (with --port).
    #[arg(long, requires = "port")]
    cid: Option<u32>,
    /// Sentient style: the server's vsock port.
    #[arg(long)]
    port: Option<u32>,
    /// Connection attempts before giving up.
    #[arg(long, value_name = "N")]
    connect_attempts: Option<u32>,
    #[command(flatten)]
    channel: attested_channel::ChannelArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Return at once with the remote process id.
    #[arg(long)]
    no_wait: bool,
    /// Environment variable for the command (K=V, or K to pass the local value).
    #[arg(short, long = "env", value_name = "K=V")]
    env: Vec<OsString>,
    /// Working directory in the enclave.
    #[arg(short = 'w', long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Kill the command after this many seconds (exit status 124).
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Do not forward standard input.
    #[arg(long)]
    no_stdin: bool,
    /// Sentient style: a command line run with `sh -c`.
    #[arg(long, conflicts_with = "argv")]
    command: Option<String>,
    /// The command and its arguments (after --).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    argv: Vec<OsString>,
}

#[derive(Debug, Args)]
struct CopyFlags {
    /// No progress bar or summary.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct CpArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    flags: CopyFlags,
    /// Follow a symlink given as SRC (copy what it points to).
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Source: a local path or enclave:/path (end a directory with /. to copy its content).
    src: OsString,
    /// Destination: a local path or enclave:/path.
    dst: OsString,
}

#[derive(Debug, Args)]
struct SendFileArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    flags: CopyFlags,
    /// Local file.
    #[arg(long)]
    localpath: PathBuf,
    /// Destination path in the enclave.
    #[arg(long)]
    remotepath: PathBuf,
}

#[derive(Debug, Args)]
struct RecvFileArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    flags: CopyFlags,
    /// File in the enclave.
    #[arg(long)]
    remotepath: PathBuf,
    /// Local destination path.
    #[arg(long)]
    localpath: PathBuf,
}

#[derive(Debug, Args)]
struct SendDirArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    flags: CopyFlags,
    /// Local directory.
    #[arg(long)]
    localdir: PathBuf,
    /// Destination directory in the enclave.
    #[arg(long)]
    remotedir: PathBuf,
}

#[derive(Debug, Args)]
struct RecvDirArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    flags: CopyFlags,
    /// Directory in the enclave.
    #[arg(long)]
    remotedir: PathBuf,
    /// Local destination directory.
    #[arg(long)]
    localdir: PathBuf,
}

impl ListenArgs {
    fn flags(&self) -> ListenFlags {
        ListenFlags {
            addr: self.addr.clone(),
            port: self.port,
            no_exec: self.no_exec,
            roots: self.roots.clone(),
            readable_by_all: self.readable_by_all,
            max_clients: self.max_clients,
            idle_timeout: self.idle_timeout,
            socket_mode: self.socket_mode.clone(),
            attested: self.authorized_keys.is_some(),
            insecure_plaintext: self.insecure_plaintext,
        }
    }
}

impl ConnArgs {
    /// The client for these flags (and the file's settings).
    fn client(&self, sources: &Sources) -> anyhow::Result<Client> {
        let settings = sources.connect(ConnectFlags {
            addr: self.addr.clone(),
            cid: self.cid,
            port: self.port,
            connect_attempts: self.connect_attempts,
        })?;
        if self.channel.key.is_none() {
            let why = "no --key: INSECURE plaintext (not authenticated, not encrypted, the server is not attested)";
            if plaintext_is_local(&settings.addr) {
                tracing::info!(addr = %settings.addr, "{why}");
            } else {
                tracing::warn!(addr = %settings.addr, "{why}");
            }
        }
        let client = Client::new(settings.addr).with_connect_options(settings.options);
        let channel = self
            .channel
            .client_config(pipeline::defs::HANDSHAKE_TIMEOUT)?;
        Ok(match channel {
            Some(channel) => client.with_channel(channel),
            None => client,
        })
    }
}

/// A subcommand with its settings resolved and checked.
enum Job {
    Listen {
        settings: ListenSettings,
        args: ListenArgs,
    },
    Keygen(KeygenArgs),
    Run {
        client: Client,
        settings: RunSettings,
        args: RunArgs,
    },
    Copy {
        client: Client,
        transfer: Transfer,
        quiet: bool,
    },
}

impl Main for Cli {
    const NAME: &'static str = "pipeline";
    type Config = Job;

    fn log_level(&self) -> &'static str {
        match (&self.command, self.verbose) {
            (_, 2..) => "debug",
            (Command::Listen(_), _) | (_, 1) => "info",
            _ => "warn",
        }
    }

    fn config(self) -> anyhow::Result<Job> {
        let sources = Sources::load(self.config.as_deref())?;
        Ok(match self.command {
            Command::Listen(args) => Job::Listen {
                settings: sources.listen(args.flags())?,
                args,
            },
            Command::Keygen(args) => Job::Keygen(args),
            Command::Run(mut args) => Job::Run {
                client: args.conn.client(&sources)?,
                settings: pipeline::settings::run(RunFlags {
                    command: args.command.take(),
                    argv: std::mem::take(&mut args.argv),
                    env: std::mem::take(&mut args.env),
                    timeout: args.timeout,
                })?,
                args,
            },
            Command::Cp(args) => {
                let client = args.conn.client(&sources)?;
                copy_job(
                    client,
                    Transfer::cp(&args.src, &args.dst, args.follow_link)?,
                    &args.flags,
                )
            }
            Command::SendFile(args) => copy_job(
                args.conn.client(&sources)?,
                Transfer::sentient_up(args.localpath, args.remotepath, false),
                &args.flags,
            ),
            Command::RecvFile(args) => copy_job(
                args.conn.client(&sources)?,
                Transfer::sentient_down(args.remotepath, args.localpath, Expect::File),
                &args.flags,
            ),
            Command::SendDir(args) => {
                let client = args.conn.client(&sources)?;
                if !args.localdir.is_dir() {
                    return Err(anyhow!("{} is not a directory", args.localdir.display()));
                }
                copy_job(
                    client,
                    Transfer::sentient_up(args.localdir, args.remotedir, true),
                    &args.flags,
                )
            }
            Command::RecvDir(args) => copy_job(
                args.conn.client(&sources)?,
                Transfer::sentient_down(args.remotedir, args.localdir, Expect::Directory),
                &args.flags,
            ),
        })
    }

    /// The server serves many clients on all cores and stops gracefully
    /// on SIGTERM/SIGINT; a client does one thing, starts faster without
    /// worker threads, and dies of the signals (`run` forwards them to the
    /// remote command).
    fn runtime(job: &Job) -> Runtime {
        match job {
            Job::Listen { .. } => Runtime::Service { workers: 0 },
            _ => Runtime::OneShot,
        }
    }

    async fn run(job: Job, shutdown: CancellationToken) -> Result<u8, Failure> {
        match job {
            Job::Listen { settings, args } => listen(settings, &args, shutdown).await,
            Job::Keygen(args) => keygen(&args),
            Job::Run {
                client,
                settings,
                args,
            } => run(&client, settings, &args).await,
            Job::Copy {
                client,
                transfer,
                quiet,
            } => run_transfer(&client, transfer, quiet).await,
        }
    }

    fn exit_code(error: &anyhow::Error) -> u8 {
        match error.downcast_ref::<Error>() {
            Some(Error::Channel(e)) if e.is_attestation_failure() => EXIT_ATTESTATION,
            Some(Error::Channel(e)) if e.is_refusal() => EXIT_REFUSED,
            Some(Error::Transport(_) | Error::Handshake(_) | Error::Channel(_)) => EXIT_UNAVAILABLE,
            Some(Error::Remote(frame)) if frame.code == ErrorCode::Busy => EXIT_UNAVAILABLE,
            _ => 1,
        }
    }
}

fn main() -> ExitCode {
    cli_support::run_main::<Cli>()
}

fn copy_job(client: Client, transfer: Transfer, flags: &CopyFlags) -> Job {
    Job::Copy {
        client,
        transfer,
        quiet: flags.quiet,
    }
}

async fn listen(
    settings: ListenSettings,
    args: &ListenArgs,
    shutdown: CancellationToken,
) -> Result<u8, Failure> {
    let channel = match &args.authorized_keys {
        Some(path) => Some(Arc::new(
            server_channel(path, args.nsm, args.state_dir.as_deref()).await?,
        )),
        None => None,
    };
    let options = BindOptions {
        unix_mode: Some(settings.socket_mode),
    };
    let listener = Listener::bind_with(&settings.addr, &options)
        .await
        .map_err(|err| Failure::with_code(1, err))?;
    server::run(
        listener,
        settings.server_config(channel),
        shutdown.cancelled_owned(),
    )
    .await?;
    Ok(0)
}

/// The attested channel's server side: a fresh key (memory only), the NSM
/// that attests it, and the authorised client keys.
async fn server_channel(
    authorized_keys: &Path,
    mode: NsmMode,
    state_dir: Option<&Path>,
) -> Result<attested_channel::ServerConfig, Failure> {
    let state_dir = state_dir.unwrap_or(Path::new(DEFAULT_STATE_DIR));
    attested_channel::setup::server_config(
        authorized_keys,
        mode,
        state_dir,
        pipeline::defs::HANDSHAKE_TIMEOUT,
    )
    .await
    .map_err(|err| match err {
        SetupError::AuthorizedKeys(_) => Failure::usage(err),
        other => Failure::from(other),
    })
}

/// `pipeline keygen --out FILE`.
fn keygen(args: &KeygenArgs) -> Result<u8, Failure> {
    let key = StaticKey::generate_files(&args.out, &args.comment)?;
    println!("{}", key.public().to_line(&args.comment));
    eprintln!(
        "wrote {} (private, mode 0600) and {}; add the .pub line, with its permissions, to the server's authorized keys",
        args.out.display(),
        attested_channel::keys::pub_path(&args.out).display()
    );
    Ok(0)
}

async fn run(client: &Client, settings: RunSettings, args: &RunArgs) -> Result<u8, Failure> {
    let options = RunOptions {
        argv: settings.argv,
        env: settings.env,
        cwd: args.cwd.clone(),
        timeout: settings.timeout,
        detach: args.no_wait,
    };
    let forward_stdin = !args.no_stdin && !args.no_wait && !std::io::stdin().is_terminal();
    let stdin = forward_stdin.then(tokio::io::stdin);
    let signals = forward_signals()?;
    let session = client.connect().await?;
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let outcome =
        pipeline::client::exec::run(session, &options, stdin, &mut stdout, &mut stderr, signals)
            .await;
    match outcome {
        Ok(RunOutcome::Exited(status)) => Ok(status.shell_code().clamp(0, 255) as u8),
        Ok(RunOutcome::Detached { pid }) => {
            println!("{pid}");
            Ok(0)
        }
        Ok(RunOutcome::OutputClosed) => Ok(0),
        Err(Error::Remote(frame)) => {
            let status = match frame.code {
                ErrorCode::NotFound => 127,
                ErrorCode::PermissionDenied | ErrorCode::SpawnFailed | ErrorCode::ExecDisabled => {
                    126
                }
                ErrorCode::BadRequest => EXIT_USAGE,
                _ => 1,
            };
            Err(Failure::with_code(status, Error::Remote(frame)))
        }
        Err(err) => Err(err.into()),
    }
}

/// Forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to the remote command.
fn forward_signals() -> anyhow::Result<tokio::sync::mpsc::Receiver<i32>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for (kind, number) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
        (SignalKind::quit(), libc::SIGQUIT),
    ] {
        let mut stream = signal(kind).context("cannot watch signals")?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(number).await.is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}

async fn run_transfer(client: &Client, t: Transfer, quiet: bool) -> Result<u8, Failure> {
    if t.to_enclave {
        std::fs::symlink_metadata(&t.local)
            .with_context(|| format!("cannot read {}", t.local.display()))
            .map_err(Failure::usage)?;
    }
    let progress = Progress::for_terminal(!quiet);
    let session = client.connect().await?;
    let result = if t.to_enclave {
        copy::upload(
            session,
            &t.local,
            &t.remote,
            t.placement,
            t.follow,
            &progress,
        )
        .await
    } else {
        copy::download(
            session,
            &t.remote,
            &t.local,
            t.placement,
            t.expect,
            t.follow,
            &progress,
        )
        .await
    };
    progress.finish();
    let local = t.local.display().to_string();
    let remote = format!("{REMOTE_PREFIX}{}", t.remote.display());
    let (from, to) = if t.to_enclave {
        (local, remote)
    } else {
        (remote, local)
    };
    let summary = result
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot copy {from} to {to}"))?;
    report(&summary, t.to_enclave, quiet);
    Ok(0)
}

/// One line on a terminal after a copy; nothing otherwise.
fn report(summary: &Summary, to_enclave: bool, quiet: bool) {
    if quiet || !std::io::stderr().is_terminal() {
        return;
    }
    let prefix = if to_enclave { REMOTE_PREFIX } else { "" };
    eprintln!(
        "copied {} file(s), {} director(ies), {} symlink(s), {} bytes to {}{}",
        summary.files,
        summary.directories,
        summary.symlinks,
        summary.bytes,
        prefix,
        String::from_utf8_lossy(&summary.path)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_double_dash() {
        let cli = Cli::try_parse_from([
            "pipeline", "run", "--addr", "unix:/s", "-e", "A=1", "--", "ls", "-la",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.argv, vec![OsString::from("ls"), OsString::from("-la")]);
        assert_eq!(args.env, vec![OsString::from("A=1")]);
    }

    #[test]
    fn sentient_flags_parse() {
        let cli = Cli::try_parse_from([
            "pipeline",
            "run",
            "--cid",
            "16",
            "--port",
            "53000",
            "--command",
            "uname -a",
            "--no-wait",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!()
        };
        let client = args.conn.client(&Sources::default()).unwrap();
        assert_eq!(client.addr(), &Address::vsock(16, 53000));
        assert!(args.no_wait);
        assert!(Cli::try_parse_from(["pipeline", "run", "--cid", "16", "--", "true"]).is_err());
    }
}
