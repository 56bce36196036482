//! The settings the subcommands run with: flags over the configuration
//! file over defaults, resolved and validated here, once.
//!
//! The CLI fills plain structs of options ([`ListenFlags`],
//! [`ConnectFlags`], [`RunFlags`]); [`Sources`] holds the optional
//! [`FileConfig`] and turns them into [`ListenSettings`],
//! [`ConnectSettings`] or [`RunSettings`]. Every rule lives in one
//! function here and is applied to a value wherever it came from; a
//! [`SettingsError`] names the setting as the user wrote it (`--max-clients`
//! or `max_clients` in the file).
//!
//! Every value the file gives is checked when it is loaded, even one a flag
//! overrides, so a bad file is refused whichever command reads it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use transport::{Address, ConnectOptions};

use crate::config::{ConfigError, FileConfig};
use crate::defs::{DEFAULT_MAX_CLIENTS, DEFAULT_PORT, IDLE_TIMEOUT};
use crate::paths;
use crate::policy::{Policy, WrittenModes};
use crate::protocol::{Expect, Placement};
use crate::server::ServerConfig;

/// Prefix that marks the enclave side of `pipeline cp`.
pub const REMOTE_PREFIX: &str = "enclave:";

/// Mode of a unix:/hvsock: listening socket unless one is given.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;

/// One setting: its flag and its key in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The command-line flag, e.g. `--max-clients`.
    pub flag: &'static str,
    /// The key in the file, e.g. `max_clients`.
    pub key: &'static str,
}

impl Setting {
    const fn new(flag: &'static str, key: &'static str) -> Self {
        Self { flag, key }
    }
}

/// `--addr` / `addr`.
pub const ADDR: Setting = Setting::new("--addr", "addr");
/// `--cid` / `cid`.
pub const CID: Setting = Setting::new("--cid", "cid");
/// `--root` / `roots`.
pub const ROOTS: Setting = Setting::new("--root", "roots");
/// `--max-clients` / `max_clients`.
pub const MAX_CLIENTS: Setting = Setting::new("--max-clients", "max_clients");
/// `--idle-timeout` / `idle_timeout_secs`.
pub const IDLE_TIMEOUT_SECS: Setting = Setting::new("--idle-timeout", "idle_timeout_secs");
/// `--socket-mode` / `socket_mode`.
pub const SOCKET_MODE: Setting = Setting::new("--socket-mode", "socket_mode");
/// `--connect-attempts` / `connect_attempts`.
pub const CONNECT_ATTEMPTS: Setting = Setting::new("--connect-attempts", "connect_attempts");
/// `--timeout` (flag only).
pub const TIMEOUT: Setting = Setting::new("--timeout", "timeout");
/// `--env` (flag only).
pub const ENV: Setting = Setting::new("--env", "env");

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The command line (or its environment variable).
    Flag,
    /// The configuration file at this path.
    File(PathBuf),
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// A count of zero.
    #[error("must be at least 1")]
    Zero,
    /// An idle time-out of zero.
    #[error("must be at least 1 second (0 would drop every client at once)")]
    ZeroIdle,
    /// Not an octal file mode.
    #[error("{0:?} is not an octal mode from 000 to 777")]
    NotOctalMode(String),
    /// Not a positive, finite number of seconds.
    #[error("{0}: must be a positive number of seconds")]
    NotPositiveSeconds(f64),
    /// `K=V` with an empty K.
    #[error("{0:?}: the name is empty")]
    EmptyName(OsString),
    /// `K` naming no variable of this process.
    #[error("{0:?}: no such variable here to pass on")]
    NoSuchVariable(OsString),
    /// A root that cannot be resolved.
    #[error("is invalid: {0}")]
    Root(String),
    /// Both `addr` and `cid`/`port` in the file.
    #[error("and cid/port: give either, not both")]
    AddrAndCidPort,
    /// `cid` without `port` in the file.
    #[error("needs a port")]
    CidWithoutPort,
}

/// Settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The configuration file could not be read or parsed.
    #[error(transparent)]
    File(#[from] ConfigError),
    /// A value breaks a rule.
    #[error("{}{problem}", Named(setting, origin))]
    Invalid {
        /// Which setting.
        setting: Setting,
        /// Where its value came from.
        origin: Origin,
        /// What is wrong.
        problem: Problem,
    },
    /// `--port` for a client with no CID from the flags or the file.
    #[error("--port needs --cid (or cid in the config file)")]
    PortWithoutCid,
    /// No server address anywhere.
    #[error(
        "no server address: give --addr (or --cid and --port), set PIPELINE_ADDR, or put addr in the config file"
    )]
    NoAddress,
    /// Plaintext on an address others can reach, not allowed.
    #[error(
        "{0} is not a unix: or loopback tcp: address: give --authorized-keys FILE for the attested channel, or --insecure-plaintext to serve plaintext anyway (debug images only)"
    )]
    PlaintextNotLocal(Address),
    /// Nothing to run.
    #[error("nothing to run: give the command after --, or --command")]
    NothingToRun,
    /// A `cp` source whose name cannot be known (`/`, `..`).
    #[error("cannot copy {}: it has no name", .0.display())]
    NoName(PathBuf),
    /// `cp` with both or neither operand in the enclave.
    #[error("exactly one of SRC and DST must be in the enclave ({REMOTE_PREFIX}/path)")]
    NotOneRemote,
}

/// Writes "`--flag` " or "invalid config file PATH: `key` ".
struct Named<'a>(&'a Setting, &'a Origin);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Origin::Flag => write!(f, "{} ", self.0.flag),
            Origin::File(path) => {
                write!(f, "invalid config file {}: {} ", path.display(), self.0.key)
            }
        }
    }
}

/// What `pipeline listen` was given on the command line.
#[derive(Debug, Clone, Default)]
pub struct ListenFlags {
    /// `--addr`.
    pub addr: Option<Address>,
    /// `--port`: vsock:any:PORT.
    pub port: Option<u32>,
    /// `--no-exec`.
    pub no_exec: bool,
    /// `--root` (repeated).
    pub roots: Vec<PathBuf>,
    /// `--readable-by-all`.
    pub readable_by_all: bool,
    /// `--max-clients`.
    pub max_clients: Option<usize>,
    /// `--idle-timeout`, seconds.
    pub idle_timeout: Option<u64>,
    /// `--socket-mode`, octal.
    pub socket_mode: Option<String>,
    /// Whether `--authorized-keys` was given (the attested channel).
    pub attested: bool,
    /// `--insecure-plaintext`.
    pub insecure_plaintext: bool,
}

/// What `pipeline listen` runs with.
#[derive(Debug, Clone)]
pub struct ListenSettings {
    /// Address to listen on.
    pub addr: Address,
    /// What clients may do.
    pub policy: Policy,
    /// Mode of a unix:/hvsock: listening socket.
    pub socket_mode: u32,
    /// Clients served at once.
    pub max_clients: usize,
    /// Longest silence of a client in the middle of an operation.
    pub idle_timeout: Duration,
}

impl ListenSettings {
    /// The server's configuration, with the attested `channel` if any.
    pub fn server_config(
        self,
        channel: Option<Arc<attested_channel::ServerConfig>>,
    ) -> ServerConfig {
        ServerConfig {
            policy: self.policy,
            max_clients: self.max_clients,
            idle_timeout: self.idle_timeout,
            channel,
            ..ServerConfig::default()
        }
    }
}

/// The connection flags of the client commands.
#[derive(Debug, Clone, Default)]
pub struct ConnectFlags {
    /// `--addr` (or `PIPELINE_ADDR`).
    pub addr: Option<Address>,
    /// `--cid`.
    pub cid: Option<u32>,
    /// `--port`.
    pub port: Option<u32>,
    /// `--connect-attempts`.
    pub connect_attempts: Option<u32>,
}

/// Where and how a client connects.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// The server's address.
    pub addr: Address,
    /// Attempts and back-off.
    pub options: ConnectOptions,
}

/// The flags of `pipeline run` that need checking.
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// `--command`: a line for `sh -c`.
    pub command: Option<String>,
    /// The command after `--`.
    pub argv: Vec<OsString>,
    /// `--env` items: `K=V`, or `K` for the local value.
    pub env: Vec<OsString>,
    /// `--timeout`, seconds.
    pub timeout: Option<f64>,
}

/// What `pipeline run` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// The command and its arguments.
    pub argv: Vec<OsString>,
    /// Its environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// When to kill it.
    pub timeout: Option<Duration>,
}

/// The configuration file (or none), checked, to resolve flags against.
#[derive(Debug, Clone)]
pub struct Sources {
    file: FileConfig,
    origin: Origin,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            file: FileConfig::default(),
            origin: Origin::File(PathBuf::new()),
        }
    }
}

impl Sources {
    /// Reads and checks the configuration file at `path`; none if `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, SettingsError> {
        match path {
            Some(path) => Self::from_file(FileConfig::load(path)?, path),
            None => Ok(Self::default()),
        }
    }

    /// Checks every value of `file`, read from `path`.
    pub fn from_file(file: FileConfig, path: &Path) -> Result<Self, SettingsError> {
        let origin = Origin::File(path.to_owned());
        let invalid = |setting, problem| SettingsError::Invalid {
            setting,
            origin: origin.clone(),
            problem,
        };
        if file.addr.is_some() && (file.cid.is_some() || file.port.is_some()) {
            return Err(invalid(ADDR, Problem::AddrAndCidPort));
        }
        if file.cid.is_some() && file.port.is_none() {
            return Err(invalid(CID, Problem::CidWithoutPort));
        }
        check(MAX_CLIENTS, file.max_clients, &origin, at_least_one)?;
        check(
            IDLE_TIMEOUT_SECS,
            file.idle_timeout_secs,
            &origin,
            idle_timeout,
        )?;
        check(
            CONNECT_ATTEMPTS,
            file.connect_attempts,
            &origin,
            at_least_one,
        )?;
        check(
            SOCKET_MODE,
            file.socket_mode.as_deref(),
            &origin,
            socket_mode,
        )?;
        Ok(Self { file, origin })
    }

    /// `pipeline listen`'s settings.
    pub fn listen(&self, flags: ListenFlags) -> Result<ListenSettings, SettingsError> {
        let file = &self.file;
        let addr = flags
            .addr
            .or_else(|| {
                flags
                    .port
                    .map(|port| Address::vsock(transport::defs::VSOCK_CID_ANY, port))
            })
            .or_else(|| file.address())
            .unwrap_or_else(|| Address::vsock(transport::defs::VSOCK_CID_ANY, DEFAULT_PORT));
        if !flags.attested && !flags.insecure_plaintext && !plaintext_is_local(&addr) {
            return Err(SettingsError::PlaintextNotLocal(addr));
        }
        let (roots, roots_origin) = if flags.roots.is_empty() {
            (file.roots.clone().unwrap_or_default(), self.origin.clone())
        } else {
            (flags.roots, Origin::Flag)
        };
        let allow_exec = !flags.no_exec && file.allow_exec.unwrap_or(true);
        let modes = if flags.readable_by_all {
            WrittenModes::ReadableByAll
        } else {
            WrittenModes::AsSent
        };
        let policy = Policy::new(allow_exec, &roots)
            .map_err(|err| SettingsError::Invalid {
                setting: ROOTS,
                origin: roots_origin,
                problem: Problem::Root(err.to_string()),
            })?
            .with_written_modes(modes);
        Ok(ListenSettings {
            addr,
            policy,
            socket_mode: self
                .pick(
                    SOCKET_MODE,
                    flags.socket_mode.as_deref(),
                    file.socket_mode.as_deref(),
                    socket_mode,
                )?
                .unwrap_or(DEFAULT_SOCKET_MODE),
            max_clients: self
                .pick(
                    MAX_CLIENTS,
                    flags.max_clients,
                    file.max_clients,
                    at_least_one,
                )?
                .unwrap_or(DEFAULT_MAX_CLIENTS),
            idle_timeout: self
                .pick(
                    IDLE_TIMEOUT_SECS,
                    flags.idle_timeout,
                    file.idle_timeout_secs,
                    idle_timeout,
                )?
                .unwrap_or(IDLE_TIMEOUT),
        })
    }

    /// A client command's address and connection options.
    pub fn connect(&self, flags: ConnectFlags) -> Result<ConnectSettings, SettingsError> {
        let file = &self.file;
        let addr = match (flags.addr, flags.cid, flags.port) {
            (Some(addr), _, _) => addr,
            (None, Some(cid), Some(port)) => Address::vsock(cid, port),
            (None, None, Some(port)) => match file.cid {
                Some(cid) => Address::vsock(cid, port),
                None => return Err(SettingsError::PortWithoutCid),
            },
            _ => file.address().ok_or(SettingsError::NoAddress)?,
        };
        let mut options = ConnectOptions::default();
        if let Some(attempts) = self.pick(
            CONNECT_ATTEMPTS,
            flags.connect_attempts,
            file.connect_attempts,
            at_least_one,
        )? {
            options.attempts = attempts;
        }
        Ok(ConnectSettings { addr, options })
    }

    /// The flag's value, else the file's, checked by `rule`; `None` if
    /// neither gives one (the caller's default applies).
    fn pick<T, U>(
        &self,
        setting: Setting,
        flag: Option<T>,
        file: Option<T>,
        rule: fn(T) -> Result<U, Problem>,
    ) -> Result<Option<U>, SettingsError> {
        match flag {
            Some(value) => check(setting, Some(value), &Origin::Flag, rule),
            None => check(setting, file, &self.origin, rule),
        }
    }
}

/// `pipeline run`'s command, environment and time-out.
pub fn run(flags: RunFlags) -> Result<RunSettings, SettingsError> {
    let argv = match (flags.command, flags.argv) {
        (Some(line), _) => vec!["sh".into(), "-c".into(), line.into()],
        (None, argv) if !argv.is_empty() => argv,
        _ => return Err(SettingsError::NothingToRun),
    };
    let env = flags
        .env
        .iter()
        .map(|item| check_flag(ENV, item.as_os_str(), env_item))
        .collect::<Result<_, _>>()?;
    let timeout = flags
        .timeout
        .map(|secs| check_flag(TIMEOUT, secs, positive_seconds))
        .transpose()?;
    Ok(RunSettings { argv, env, timeout })
}

/// One copy, in either direction, as `cp`, `send-*` or `recv-*` asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// Whether the copy goes into the enclave.
    pub to_enclave: bool,
    /// The local side.
    pub local: PathBuf,
    /// The enclave side.
    pub remote: PathBuf,
    /// Where the source lands.
    pub placement: Placement,
    /// What a download expects to find.
    pub expect: Expect,
    /// Whether a symlink given as the source is followed.
    pub follow: bool,
}

impl Transfer {
    /// `pipeline cp SRC DST`: one operand `enclave:/path`; `SRC/.` copies
    /// a directory's content, else SRC goes into DST under its name.
    pub fn cp(src: &OsStr, dst: &OsStr, follow: bool) -> Result<Self, SettingsError> {
        let (src_remote, src) = operand(src);
        let (dst_remote, dst) = operand(dst);
        let contents_only = src.as_os_str().as_bytes().ends_with(b"/.");
        let placement = if contents_only {
            Placement::Exact {
                create_parents: false,
            }
        } else {
            let name = paths::last_name(&src).ok_or_else(|| SettingsError::NoName(src.clone()))?;
            Placement::IntoDirectory { name }
        };
        match (src_remote, dst_remote) {
            (false, true) => Ok(Self::up(src, dst, placement, follow)),
            (true, false) => {
                let expect = if contents_only {
                    Expect::Directory
                } else {
                    Expect::Any
                };
                Ok(Self::down(src, dst, placement, expect, follow))
            }
            _ => Err(SettingsError::NotOneRemote),
        }
    }

    /// Sentient's `send-file`/`send-dir`: the source lands at exactly
    /// `remote`, missing parents created.
    pub fn sentient_up(local: PathBuf, remote: PathBuf, follow: bool) -> Self {
        Self::up(local, remote, EXACT_WITH_PARENTS, follow)
    }

    /// Sentient's `recv-file`/`recv-dir`: the source (an `expect`; a
    /// directory is followed) lands at exactly `local`, missing parents
    /// created.
    pub fn sentient_down(remote: PathBuf, local: PathBuf, expect: Expect) -> Self {
        let follow = expect == Expect::Directory;
        Self::down(remote, local, EXACT_WITH_PARENTS, expect, follow)
    }

    fn up(local: PathBuf, remote: PathBuf, placement: Placement, follow: bool) -> Self {
        Self {
            to_enclave: true,
            local,
            remote,
            placement,
            expect: Expect::Any,
            follow,
        }
    }

    fn down(
        remote: PathBuf,
        local: PathBuf,
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

/// Sentient's commands put the source at exactly the given path.
const EXACT_WITH_PARENTS: Placement = Placement::Exact {
    create_parents: true,
};

/// Splits a `cp` operand into (is remote, path).
fn operand(text: &OsStr) -> (bool, PathBuf) {
    match text.as_bytes().strip_prefix(REMOTE_PREFIX.as_bytes()) {
        Some(rest) => (true, paths::from_wire(rest)),
        None => (false, PathBuf::from(text)),
    }
}

/// Whether plaintext may be served on `addr` without `--insecure-plaintext`.
pub fn plaintext_is_local(addr: &Address) -> bool {
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

fn check<T, U>(
    setting: Setting,
    value: Option<T>,
    origin: &Origin,
    rule: fn(T) -> Result<U, Problem>,
) -> Result<Option<U>, SettingsError> {
    value
        .map(rule)
        .transpose()
        .map_err(|problem| SettingsError::Invalid {
            setting,
            origin: origin.clone(),
            problem,
        })
}

fn check_flag<T, U>(
    setting: Setting,
    value: T,
    rule: fn(T) -> Result<U, Problem>,
) -> Result<U, SettingsError> {
    rule(value).map_err(|problem| SettingsError::Invalid {
        setting,
        origin: Origin::Flag,
        problem,
    })
}

// The rules, one function each.

fn at_least_one<T: PartialEq + Default>(count: T) -> Result<T, Problem> {
    if count == T::default() {
        Err(Problem::Zero)
    } else {
        Ok(count)
    }
}

fn idle_timeout(secs: u64) -> Result<Duration, Problem> {
    match secs {
        0 => Err(Problem::ZeroIdle),
        secs => Ok(Duration::from_secs(secs)),
    }
}

/// An octal file mode such as `0600` or `600`.
fn socket_mode(text: &str) -> Result<u32, Problem> {
    let digits = text.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(Problem::NotOctalMode(text.to_owned())),
    }
}

fn positive_seconds(secs: f64) -> Result<Duration, Problem> {
    if secs.is_finite() && secs > 0.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(Problem::NotPositiveSeconds(secs))
    }
}

/// `K=V`, or `K` for this process's value of `K`.
fn env_item(item: &OsStr) -> Result<(OsString, OsString), Problem> {
    let bytes = item.as_bytes();
    match bytes.iter().position(|&b| b == b'=') {
        Some(0) => Err(Problem::EmptyName(item.to_owned())),
        Some(at) => Ok((
            OsStr::from_bytes(&bytes[..at]).to_owned(),
            OsStr::from_bytes(&bytes[at + 1..]).to_owned(),
        )),
        None => match std::env::var_os(item) {
            Some(value) => Ok((item.to_owned(), value)),
            None => Err(Problem::NoSuchVariable(item.to_owned())),
        },
    }
}

#[cfg(test)]
mod tests;
