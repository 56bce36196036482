//! `pipeline`: run commands in an enclave and copy files to and from it.
//!
//! Parses arguments, merges them with the optional config file, sets up
//! logging and calls the library. Exit status: the remote command's own
//! (128+N for signal N, 124 for a time-out) for `run`; 126/127 when the
//! command could not be started or found; 64 for bad usage or config; 69
//! when the server cannot be reached; 76 when the server's attestation
//! fails a check (wrong PCRs, signer, nonce or key binding: nothing but the
//! handshake was sent); 77 when the server refuses the client's key; 1 for
//! any other failure.

use std::ffi::{OsStr, OsString};
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use attested_channel::{SetupError, StaticKey};
use clap::{Args, Parser, Subcommand};
use enclave_nsm::NsmMode;
use pipeline::client::exec::{RunOptions, RunOutcome};
use pipeline::client::{Client, copy};
use pipeline::config::{FileConfig, parse_mode};
use pipeline::defs::DEFAULT_PORT;
use pipeline::paths;
use pipeline::progress::Progress;
use pipeline::protocol::{ErrorCode, Expect, Placement, Summary};
use pipeline::server::{self, ServerConfig};
use pipeline::{Error, Policy, WrittenModes};
use tokio::signal::unix::{SignalKind, signal};
use transport::{Address, BindOptions, ConnectOptions, Listener};

/// Exit status for bad usage or configuration (EX_USAGE).
use cli_support::EXIT_USAGE;
/// Exit status when the server cannot be reached (EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;
/// Exit status when the server's attestation fails a check.
const EXIT_ATTESTATION: u8 = 76;
/// Exit status when the server refuses the client's key (EX_NOPERM).
const EXIT_REFUSED: u8 = 77;
/// Where `--nsm development` keeps its PKI unless `--state-dir` says otherwise.
const DEFAULT_STATE_DIR: &str = "/var/lib/pipeline";
/// Prefix that marks the enclave side of `pipeline cp`.
const REMOTE_PREFIX: &str = "enclave:";

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

/// A failure with the exit status it maps to.
struct Failure {
    status: u8,
    error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        let status = match error.downcast_ref::<Error>() {
            Some(Error::Channel(e)) if e.is_attestation_failure() => EXIT_ATTESTATION,
            Some(Error::Channel(e)) if e.is_refusal() => EXIT_REFUSED,
            Some(Error::Transport(_) | Error::Handshake(_) | Error::Channel(_)) => EXIT_UNAVAILABLE,
            Some(Error::Remote(frame)) if frame.code == ErrorCode::Busy => EXIT_UNAVAILABLE,
            _ => 1,
        };
        Self { status, error }
    }
}

fn usage(error: anyhow::Error) -> Failure {
    Failure {
        status: EXIT_USAGE,
        error,
    }
}

fn main() -> ExitCode {
    let cli: Cli = match cli_support::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging(&cli);
    // The server serves many clients on all cores; a client does one thing
    // and starts faster without worker threads.
    let mut builder = match cli.command {
        Command::Listen(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pipeline: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Do not wait for a blocking read of stdin that may never return.
    runtime.shutdown_background();
    match result {
        Ok(status) => ExitCode::from(status),
        Err(failure) => {
            eprintln!("pipeline: {:#}", failure.error);
            ExitCode::from(failure.status)
        }
    }
}

fn init_logging(cli: &Cli) {
    let default = match (&cli.command, cli.verbose) {
        (_, 2..) => "debug",
        (Command::Listen(_), _) | (_, 1) => "info",
        _ => "warn",
    };
    cli_support::init_tracing(default);
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    let file = match &cli.config {
        Some(path) => FileConfig::load(path).map_err(|err| usage(err.into()))?,
        None => FileConfig::default(),
    };
    match cli.command {
        Command::Listen(args) => listen(args, &file).await,
        Command::Keygen(args) => keygen(&args),
        Command::Run(args) => run(args, &file).await,
        Command::Cp(args) => cp(args, &file).await,
        Command::SendFile(args) => {
            let client = client(&args.conn, &file)?;
            let transfer = Transfer::up(
                &args.localpath,
                &args.remotepath,
                exact_with_parents(),
                false,
            );
            run_transfer(&client, transfer, &args.flags).await
        }
        Command::RecvFile(args) => {
            let client = client(&args.conn, &file)?;
            let transfer = Transfer::down(
                &args.remotepath,
                &args.localpath,
                exact_with_parents(),
                Expect::File,
                false,
            );
            run_transfer(&client, transfer, &args.flags).await
        }
        Command::SendDir(args) => {
            let client = client(&args.conn, &file)?;
            if !args.localdir.is_dir() {
                return Err(usage(anyhow!(
                    "{} is not a directory",
                    args.localdir.display()
                )));
            }
            let transfer =
                Transfer::up(&args.localdir, &args.remotedir, exact_with_parents(), true);
            run_transfer(&client, transfer, &args.flags).await
        }
        Command::RecvDir(args) => {
            let client = client(&args.conn, &file)?;
            let transfer = Transfer::down(
                &args.remotedir,
                &args.localdir,
                exact_with_parents(),
                Expect::Directory,
                true,
            );
            run_transfer(&client, transfer, &args.flags).await
        }
    }
}

/// Sentient's commands put the source at exactly the given path.
fn exact_with_parents() -> Placement {
    Placement::Exact {
        create_parents: true,
    }
}

async fn listen(args: ListenArgs, file: &FileConfig) -> Result<u8, Failure> {
    let addr = args
        .addr
        .or_else(|| {
            args.port
                .map(|port| Address::vsock(transport::defs::VSOCK_CID_ANY, port))
        })
        .or_else(|| file.address())
        .unwrap_or_else(|| Address::vsock(transport::defs::VSOCK_CID_ANY, DEFAULT_PORT));
    let roots = if args.roots.is_empty() {
        file.roots.clone().unwrap_or_default()
    } else {
        args.roots
    };
    let allow_exec = !args.no_exec && file.allow_exec.unwrap_or(true);
    let modes = if args.readable_by_all {
        WrittenModes::ReadableByAll
    } else {
        WrittenModes::AsSent
    };
    let policy = Policy::new(allow_exec, &roots)
        .map_err(|err| usage(anyhow!("invalid --root: {err}")))?
        .with_written_modes(modes);
    let socket_mode = match args.socket_mode.as_ref().or(file.socket_mode.as_ref()) {
        Some(text) => parse_mode(text).map_err(|err| usage(anyhow!(err)))?,
        None => 0o600,
    };
    let channel = match &args.authorized_keys {
        Some(path) => Some(Arc::new(
            server_channel(path, args.nsm, args.state_dir.as_deref()).await?,
        )),
        None => {
            if !plaintext_is_local(&addr) && !args.insecure_plaintext {
                return Err(usage(anyhow!(
                    "{addr} is not a unix: or loopback tcp: address: give --authorized-keys FILE for the attested channel, or --insecure-plaintext to serve plaintext anyway (debug images only)"
                )));
            }
            None
        }
    };
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        channel,
        policy,
        max_clients: args
            .max_clients
            .or(file.max_clients)
            .unwrap_or(defaults.max_clients),
        idle_timeout: args
            .idle_timeout
            .or(file.idle_timeout_secs)
            .map(Duration::from_secs)
            .unwrap_or(defaults.idle_timeout),
        shutdown_grace: defaults.shutdown_grace,
    };
    if config.max_clients == 0 {
        return Err(usage(anyhow!("--max-clients must be at least 1")));
    }
    if config.idle_timeout.is_zero() {
        return Err(usage(anyhow!(
            "--idle-timeout must be at least 1 second (0 would drop every client at once)"
        )));
    }
    let options = BindOptions {
        unix_mode: Some(socket_mode),
    };
    let listener = Listener::bind_with(&addr, &options)
        .await
        .map_err(|err| Failure {
            status: 1,
            error: err.into(),
        })?;
    let shutdown = cli_support::cancel_on_signals();
    server::run(listener, config, shutdown.cancelled_owned())
        .await
        .map_err(anyhow::Error::from)?;
    Ok(0)
}

/// Whether plaintext may be served on `addr` without `--insecure-plaintext`.
fn plaintext_is_local(addr: &Address) -> bool {
    match addr {
        Address::Unix(_) => true,
        Address::Tcp { host, .. } => {
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
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
        SetupError::AuthorizedKeys(_) => usage(err.into()),
        other => Failure::from(anyhow::Error::from(other)),
    })
}

/// `pipeline keygen --out FILE`.
fn keygen(args: &KeygenArgs) -> Result<u8, Failure> {
    let key = StaticKey::generate_files(&args.out, &args.comment).map_err(anyhow::Error::from)?;
    println!("{}", key.public().to_line(&args.comment));
    eprintln!(
        "wrote {} (private, mode 0600) and {}; add the .pub line, with its permissions, to the server's authorized keys",
        args.out.display(),
        attested_channel::keys::pub_path(&args.out).display()
    );
    Ok(0)
}

fn client(conn: &ConnArgs, file: &FileConfig) -> Result<Client, Failure> {
    let addr = match (&conn.addr, conn.cid, conn.port) {
        (Some(addr), _, _) => addr.clone(),
        (None, Some(cid), Some(port)) => Address::vsock(cid, port),
        (None, None, Some(port)) => match file.cid {
            Some(cid) => Address::vsock(cid, port),
            None => return Err(usage(anyhow!("--port needs --cid (or cid in the config file)"))),
        },
        _ => file.address().ok_or_else(|| {
            usage(anyhow!(
                "no server address: give --addr (or --cid and --port), set PIPELINE_ADDR, or put addr in the config file"
            ))
        })?,
    };
    let mut options = ConnectOptions::default();
    if let Some(attempts) = conn.connect_attempts.or(file.connect_attempts) {
        if attempts == 0 {
            return Err(usage(anyhow!("--connect-attempts must be at least 1")));
        }
        options.attempts = attempts;
    }
    if conn.channel.key.is_none() {
        let why = "no --key: INSECURE plaintext (not authenticated, not encrypted, the server is not attested)";
        if plaintext_is_local(&addr) {
            tracing::info!(%addr, "{why}");
        } else {
            tracing::warn!(%addr, "{why}");
        }
    }
    let client = Client::new(addr).with_connect_options(options);
    let channel = conn
        .channel
        .client_config(pipeline::defs::HANDSHAKE_TIMEOUT)
        .map_err(|err| usage(err.into()))?;
    Ok(match channel {
        Some(channel) => client.with_channel(channel),
        None => client,
    })
}

fn parse_env(item: &OsStr) -> Result<(OsString, OsString), Failure> {
    let bytes = item.as_bytes();
    match bytes.iter().position(|&b| b == b'=') {
        Some(0) => Err(usage(anyhow!("--env {item:?}: the name is empty"))),
        Some(at) => Ok((
            OsStr::from_bytes(&bytes[..at]).to_owned(),
            OsStr::from_bytes(&bytes[at + 1..]).to_owned(),
        )),
        None => match std::env::var_os(item) {
            Some(value) => Ok((item.to_owned(), value)),
            None => Err(usage(anyhow!(
                "--env {item:?}: no such variable here to pass on"
            ))),
        },
    }
}

async fn run(args: RunArgs, file: &FileConfig) -> Result<u8, Failure> {
    let client = client(&args.conn, file)?;
    let argv = match (args.command, args.argv) {
        (Some(line), _) => vec!["sh".into(), "-c".into(), line.into()],
        (None, argv) if !argv.is_empty() => argv,
        _ => {
            return Err(usage(anyhow!(
                "nothing to run: give the command after --, or --command"
            )));
        }
    };
    let timeout = match args.timeout {
        Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        Some(secs) => {
            return Err(usage(anyhow!(
                "--timeout {secs}: must be a positive number of seconds"
            )));
        }
        None => None,
    };
    let options = RunOptions {
        argv,
        env: args
            .env
            .iter()
            .map(|item| parse_env(item))
            .collect::<Result<_, _>>()?,
        cwd: args.cwd,
        timeout,
        detach: args.no_wait,
    };
    let forward_stdin = !args.no_stdin && !args.no_wait && !std::io::stdin().is_terminal();
    let stdin = forward_stdin.then(tokio::io::stdin);
    let signals = forward_signals()?;
    let session = client.connect().await.map_err(anyhow::Error::from)?;
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
            Err(Failure {
                status,
                error: Error::Remote(frame).into(),
            })
        }
        Err(err) => Err(anyhow::Error::from(err).into()),
    }
}

/// Forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to the remote command.
fn forward_signals() -> Result<tokio::sync::mpsc::Receiver<i32>, Failure> {
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

/// Splits a `cp` operand into (is remote, path).
fn operand(text: &OsStr) -> (bool, PathBuf) {
    match text.as_bytes().strip_prefix(REMOTE_PREFIX.as_bytes()) {
        Some(rest) => (true, paths::from_wire(rest)),
        None => (false, PathBuf::from(text)),
    }
}

async fn cp(args: CpArgs, file: &FileConfig) -> Result<u8, Failure> {
    let client = client(&args.conn, file)?;
    let (src_remote, src) = operand(&args.src);
    let (dst_remote, dst) = operand(&args.dst);
    // `SRC/.` copies a directory's content rather than the directory.
    let contents_only = src.as_os_str().as_bytes().ends_with(b"/.");
    let placement = if contents_only {
        Placement::Exact {
            create_parents: false,
        }
    } else {
        let name = paths::last_name(&src)
            .ok_or_else(|| usage(anyhow!("cannot copy {}: it has no name", src.display())))?;
        Placement::IntoDirectory { name }
    };
    let transfer = match (src_remote, dst_remote) {
        (false, true) => Transfer::up(&src, &dst, placement, args.follow_link),
        (true, false) => {
            let expect = if contents_only {
                Expect::Directory
            } else {
                Expect::Any
            };
            Transfer::down(&src, &dst, placement, expect, args.follow_link)
        }
        _ => {
            return Err(usage(anyhow!(
                "exactly one of SRC and DST must be in the enclave ({REMOTE_PREFIX}/path)"
            )));
        }
    };
    run_transfer(&client, transfer, &args.flags).await
}

/// One copy, in either direction.
struct Transfer<'a> {
    to_enclave: bool,
    local: &'a Path,
    remote: &'a Path,
    placement: Placement,
    expect: Expect,
    follow: bool,
}

impl<'a> Transfer<'a> {
    fn up(local: &'a Path, remote: &'a Path, placement: Placement, follow: bool) -> Self {
        let expect = Expect::Any;
        Self {
            to_enclave: true,
            local,
            remote,
            placement,
            expect,
            follow,
        }
    }

    fn down(
        remote: &'a Path,
        local: &'a Path,
        placement: Placement,
        expect: Expect,
        follow: bool,
    ) -> Self {
        Self {
            to_enclave: false,
            local,
            remote,
            placement,
            expect,
            follow,
        }
    }
}

async fn run_transfer(client: &Client, t: Transfer<'_>, flags: &CopyFlags) -> Result<u8, Failure> {
    if t.to_enclave {
        std::fs::symlink_metadata(t.local)
            .with_context(|| format!("cannot read {}", t.local.display()))
            .map_err(usage)?;
    }
    let progress = Progress::for_terminal(!flags.quiet);
    let session = client.connect().await.map_err(anyhow::Error::from)?;
    let result = if t.to_enclave {
        copy::upload(session, t.local, t.remote, t.placement, t.follow, &progress).await
    } else {
        copy::download(
            session,
            t.remote,
            t.local,
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
    report(&summary, t.to_enclave, flags);
    Ok(0)
}

/// One line on a terminal after a copy; nothing otherwise.
fn report(summary: &Summary, to_enclave: bool, flags: &CopyFlags) {
    if flags.quiet || !std::io::stderr().is_terminal() {
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
        let client = client(&args.conn, &FileConfig::default()).ok().unwrap();
        assert_eq!(client.addr(), &Address::vsock(16, 53000));
        assert!(args.no_wait);
        assert!(Cli::try_parse_from(["pipeline", "run", "--cid", "16", "--", "true"]).is_err());
    }

    #[test]
    fn env_items() {
        assert_eq!(
            parse_env(OsStr::new("K=a=b")).ok().unwrap(),
            (OsString::from("K"), OsString::from("a=b"))
        );
        assert!(parse_env(OsStr::new("=x")).is_err());
    }

    #[test]
    fn cp_operands() {
        assert_eq!(
            operand(OsStr::new("enclave:/a/b")),
            (true, PathBuf::from("/a/b"))
        );
        assert_eq!(
            operand(OsStr::new("./local")),
            (false, PathBuf::from("./local"))
        );
    }
}
