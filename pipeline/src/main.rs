//! `pipeline`: run commands in an enclave and copy files to and from it.
//!
//! Declares the arguments; [`pipeline::settings`] merges them with the
//! optional config file and checks them, [`pipeline::commands`] runs the
//! command (under [`cli_support::run_main`]) and its error picks the exit
//! status here. Exit status: the remote command's own
//! (128+N for signal N, 124 for a time-out) for `run`; 126/127 when the
//! command could not be started or found; 64 for bad usage or config; 69
//! when the server cannot be reached; 76 when the server's attestation
//! fails a check (wrong PCRs, signer, nonce or key binding: nothing but the
//! handshake was sent); 77 when the server refuses the client's key; 1 for
//! any other failure.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Parser, Subcommand};
use cli_support::{EXIT_USAGE, Failure, Main, Runtime};
use enclave_nsm::NsmMode;
use pipeline::Error;
use pipeline::client::Client;
use pipeline::commands::{self, CommandError, listen::ChannelFlags};
use pipeline::protocol::{ErrorCode, Expect};
use pipeline::settings::{
    ConnectFlags, ListenFlags, ListenSettings, RunFlags, RunSettings, Sources, Transfer,
};
use tokio_util::sync::CancellationToken;
use transport::Address;

/// Exit status when the server cannot be reached (EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;
/// Exit status when the server's attestation fails a check.
const EXIT_ATTESTATION: u8 = 76;
/// Exit status when the server refuses the client's key (EX_NOPERM).
const EXIT_REFUSED: u8 = 77;
/// Exit status when the remote command cannot be executed.
const EXIT_CANNOT_EXECUTE: u8 = 126;
/// Exit status when the remote command is not found.
const EXIT_NOT_FOUND: u8 = 127;

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

    fn channel(&self) -> Option<ChannelFlags> {
        Some(ChannelFlags {
            authorized_keys: self.authorized_keys.clone()?,
            nsm: self.nsm,
            state_dir: self.state_dir.clone(),
        })
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
        let channel = self
            .channel
            .client_config(pipeline::defs::HANDSHAKE_TIMEOUT)?;
        Ok(commands::client(settings, channel))
    }
}

/// A subcommand with its settings resolved and checked.
enum Job {
    Listen {
        settings: ListenSettings,
        channel: Option<ChannelFlags>,
    },
    Keygen(KeygenArgs),
    Run {
        client: Client,
        settings: RunSettings,
        flags: commands::run::RunFlags,
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
                channel: args.channel(),
            },
            Command::Keygen(args) => Job::Keygen(args),
            Command::Run(args) => Job::Run {
                client: args.conn.client(&sources)?,
                settings: pipeline::settings::run(RunFlags {
                    command: args.command,
                    argv: args.argv,
                    env: args.env,
                    timeout: args.timeout,
                })?,
                flags: commands::run::RunFlags {
                    cwd: args.cwd,
                    no_wait: args.no_wait,
                    no_stdin: args.no_stdin,
                },
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
        let result = match job {
            Job::Listen { settings, channel } => {
                commands::listen::listen(settings, channel.as_ref(), shutdown)
                    .await
                    .map(|()| 0)
            }
            Job::Keygen(args) => commands::keygen::keygen(&args.out, &args.comment).map(|()| 0),
            Job::Run {
                client,
                settings,
                flags,
            } => commands::run::run(&client, settings, &flags).await,
            Job::Copy {
                client,
                transfer,
                quiet,
            } => commands::copy::copy(&client, transfer, quiet)
                .await
                .map(|()| 0),
        };
        result.map_err(|err| Failure::with_code(exit_code(&err), err))
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

/// The exit status of a failed command.
fn exit_code(err: &CommandError) -> u8 {
    match err {
        CommandError::Pipeline(err) | CommandError::Copy { source: err, .. } => {
            pipeline_exit_code(err)
        }
        CommandError::Start(frame) => match frame.code {
            ErrorCode::NotFound => EXIT_NOT_FOUND,
            ErrorCode::PermissionDenied | ErrorCode::SpawnFailed | ErrorCode::ExecDisabled => {
                EXIT_CANNOT_EXECUTE
            }
            ErrorCode::BadRequest => EXIT_USAGE,
            _ => 1,
        },
        CommandError::ReadLocal { .. } | CommandError::AuthorizedKeys(_) => EXIT_USAGE,
        CommandError::Signals(_)
        | CommandError::Bind(_)
        | CommandError::Setup(_)
        | CommandError::Keygen(_) => 1,
    }
}

/// The exit status of a failed connection or operation.
fn pipeline_exit_code(err: &Error) -> u8 {
    match err {
        Error::Channel(e) if e.is_attestation_failure() => EXIT_ATTESTATION,
        Error::Channel(e) if e.is_refusal() => EXIT_REFUSED,
        Error::Transport(_) | Error::Handshake(_) | Error::Channel(_) => EXIT_UNAVAILABLE,
        Error::Remote(frame) if frame.code == ErrorCode::Busy => EXIT_UNAVAILABLE,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attested_channel::HandshakeError;
    use attested_channel::setup::SetupError;
    use clap::CommandFactory;
    use pipeline::protocol::ErrorFrame;
    use std::io;

    fn frame(code: ErrorCode) -> ErrorFrame {
        ErrorFrame {
            code,
            message: "m".into(),
        }
    }

    fn io_error() -> io::Error {
        io::Error::other("x")
    }

    #[test]
    fn a_command_the_server_cannot_start_exits_as_a_shell_would() {
        let start = |code| exit_code(&CommandError::Start(frame(code)));
        assert_eq!(start(ErrorCode::NotFound), 127);
        assert_eq!(start(ErrorCode::PermissionDenied), 126);
        assert_eq!(start(ErrorCode::SpawnFailed), 126);
        assert_eq!(start(ErrorCode::ExecDisabled), 126);
        assert_eq!(start(ErrorCode::BadRequest), 64);
        assert_eq!(start(ErrorCode::Busy), 1);
        assert_eq!(start(ErrorCode::Io), 1);
    }

    #[test]
    fn an_unreachable_or_refusing_server_has_its_own_status() {
        let unreachable = Error::Transport(transport::Error::Bind {
            addr: Address::vsock(3, 1),
            source: io_error(),
        });
        let refused = Error::Channel(HandshakeError::Refused("no".into()));
        let unauthorized = Error::Channel(HandshakeError::Unauthorized(
            attested_channel::PublicKey::from_bytes([7; 32]),
        ));
        let cases = [
            (unreachable, 69),
            (Error::Handshake("not pipeline".into()), 69),
            (Error::Channel(HandshakeError::Closed), 69),
            (refused, 77),
            (unauthorized, 77),
            (Error::Remote(frame(ErrorCode::Busy)), 69),
            (Error::Remote(frame(ErrorCode::NotFound)), 1),
            (Error::Closed, 1),
        ];
        for (err, status) in cases {
            let text = err.to_string();
            assert_eq!(exit_code(&CommandError::Pipeline(err)), status, "{text}");
        }
    }

    #[test]
    fn a_failed_copy_exits_as_its_cause() {
        let copy = |source| CommandError::Copy {
            from: "a".into(),
            to: "enclave:/b".into(),
            source,
        };
        assert_eq!(exit_code(&copy(Error::Remote(frame(ErrorCode::Busy)))), 69);
        assert_eq!(
            exit_code(&copy(Error::Remote(frame(ErrorCode::NotFound)))),
            1
        );
        assert_eq!(exit_code(&copy(Error::Closed)), 1);
    }

    #[test]
    fn local_mistakes_are_bad_usage_and_the_rest_is_status_1() {
        let read_local = CommandError::ReadLocal {
            path: "a".into(),
            source: io_error(),
        };
        assert_eq!(exit_code(&read_local), 64);
        let bad_keys = attested_channel::AuthorizedKeysError::Read {
            path: "k".into(),
            why: "gone".into(),
        };
        let bad_keys = SetupError::AuthorizedKeys(bad_keys);
        assert_eq!(exit_code(&CommandError::AuthorizedKeys(bad_keys)), 64);
        let key_error = || attested_channel::KeyError::Io {
            action: "cannot write",
            path: "k".into(),
            source: io_error(),
        };
        assert_eq!(exit_code(&CommandError::Setup(key_error().into())), 1);
        assert_eq!(exit_code(&CommandError::Keygen(key_error())), 1);
        assert_eq!(exit_code(&CommandError::Signals(io_error())), 1);
        let bind = transport::Error::Bind {
            addr: Address::vsock(3, 1),
            source: io_error(),
        };
        assert_eq!(exit_code(&CommandError::Bind(bind)), 1);
    }

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
