//! `init.yaml`: located by priority, read, and validated once into [`Config`].
//!
//! Priority: `--config PATH`, then `INIT_CONFIG`, then `/etc/init.yaml`, then
//! the built-in defaults. A path named on the command line or in the
//! environment must exist; the default path may be missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cli_support::{ReadLimitedError, read_limited_to_string};
use serde::Deserialize;
use transport::Address;
use transport::defs::VSOCK_CID_ANY;

use enclave_nsm::NsmMode;

use crate::access_level::Access;
use crate::accounts::{AccountFiles, RawId};
use crate::defs::*;
use crate::environment::check_env_pair;
use crate::logs::LogLimits;
use crate::privileges::{DeviceRule, RawMode};

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` or `INIT_CONFIG` does not exist or cannot be read.
    #[error("cannot read configuration file {} (named by {origin}): {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Where the path came from.
        origin: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_FILE_SIZE`].
    #[error("configuration file {} is larger than {MAX_CONFIG_FILE_SIZE} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The YAML does not parse or has unknown keys.
    #[error("configuration file {}: {message}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("configuration {origin}: `{key}` {reason}")]
    Invalid {
        /// Where the configuration came from.
        origin: String,
        /// The key at fault.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Where the configuration in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config PATH`.
    Cli(PathBuf),
    /// `INIT_CONFIG`.
    Env(PathBuf),
    /// `/etc/init.yaml`.
    DefaultPath(PathBuf),
    /// No file: built-in defaults.
    BuiltIn,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::Cli(p) => write!(f, "{} (from --config)", p.display()),
            ConfigSource::Env(p) => write!(f, "{} (from {INIT_CONFIG_ENV})", p.display()),
            ConfigSource::DefaultPath(p) => write!(f, "{}", p.display()),
            ConfigSource::BuiltIn => f.write_str("built-in defaults"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    service_dir: PathBuf,
    log_dir: PathBuf,
    control: RawControl,
    max_log_size: u64,
    max_log_files: u32,
    environment: BTreeMap<String, String>,
    vsock: RawHeartbeat,
    nsm_driver_path: Option<PathBuf>,
    pivot_root: bool,
    pivot_root_dir: PathBuf,
    hostname: Option<String>,
    banner: Option<String>,
    stop_timeout_sec: f64,
    devices: Vec<RawDevice>,
    storage: Vec<RawStorage>,
    passwd_file: PathBuf,
    group_file: PathBuf,
    state_directory_root: PathBuf,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            service_dir: DEFAULT_SERVICE_DIR.into(),
            log_dir: DEFAULT_LOG_DIR.into(),
            control: RawControl::default(),
            max_log_size: DEFAULT_MAX_LOG_SIZE,
            max_log_files: DEFAULT_MAX_LOG_FILES,
            environment: BTreeMap::new(),
            vsock: RawHeartbeat::default(),
            nsm_driver_path: Some(DEFAULT_NSM_DRIVER.into()),
            pivot_root: true,
            pivot_root_dir: DEFAULT_PIVOT_ROOT_DIR.into(),
            hostname: None,
            banner: None,
            stop_timeout_sec: DEFAULT_STOP_TIMEOUT.as_secs_f64(),
            devices: Vec::new(),
            storage: Vec::new(),
            passwd_file: DEFAULT_PASSWD_FILE.into(),
            group_file: DEFAULT_GROUP_FILE.into(),
            state_directory_root: DEFAULT_STATE_DIRECTORY_ROOT.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    path: PathBuf,
    #[serde(default)]
    owner: Option<RawId>,
    #[serde(default)]
    group: Option<RawId>,
    #[serde(default)]
    mode: Option<RawMode>,
    #[serde(default)]
    optional: bool,
}

/// One `storage` entry: a size-limited tmpfs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    path: PathBuf,
    size: String,
}

/// One `control.listen` entry: an address (with the default access of its
/// kind), or an address with its access.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawListen {
    Address(String),
    WithAccess(RawListenWithAccess),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListenWithAccess {
    address: String,
    #[serde(default)]
    access: Option<Access>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawControl {
    unix_socket_enabled: bool,
    unix_socket_path: PathBuf,
    vsock_enabled: bool,
    vsock_cid: u32,
    vsock_port: u32,
    unix_socket_access: Access,
    vsock_access: Access,
    listen: Vec<RawListen>,
    attested: Option<RawAttested>,
}

/// `control.attested`: the attested channel on the control listeners.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttested {
    authorized_keys: PathBuf,
    #[serde(default)]
    nsm: NsmMode,
    #[serde(default = "default_channel_state_dir")]
    state_dir: PathBuf,
}

fn default_channel_state_dir() -> PathBuf {
    DEFAULT_CHANNEL_STATE_DIR.into()
}

impl Default for RawControl {
    fn default() -> Self {
        Self {
            unix_socket_enabled: true,
            unix_socket_path: DEFAULT_UNIX_SOCKET.into(),
            vsock_enabled: false,
            vsock_cid: VSOCK_CID_ANY,
            vsock_port: DEFAULT_CONTROL_VSOCK_PORT,
            unix_socket_access: Access::Full,
            vsock_access: Access::ReadOnly,
            listen: Vec::new(),
            attested: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawCid {
    Number(u32),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHeartbeat {
    enabled: bool,
    cid: RawCid,
    port: u32,
    address: Option<String>,
}

impl Default for RawHeartbeat {
    fn default() -> Self {
        Self {
            enabled: true,
            cid: RawCid::Word("auto".into()),
            port: HEARTBEAT_PORT,
            address: None,
        }
    }
}

/// Which parent CID to use for the heartbeat and to hand to services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentCid {
    /// Discover: 3 on Nitro (where `/dev/nsm` exists), 2 in a local VM, trying the other next.
    Auto,
    /// This CID, no discovery.
    Fixed(u32),
}

/// The boot heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// Whether to send it (PID 1 only).
    pub enabled: bool,
    /// The parent's CID.
    pub cid: ParentCid,
    /// The parent's port.
    pub port: u32,
    /// Send the heartbeat to this address instead of vsock (for tests in a VM or namespace).
    pub address: Option<Address>,
}

/// One control listener and what its connections may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlListener {
    /// Where it listens.
    pub address: Address,
    /// The access level each of its connections starts with.
    pub access: Access,
}

impl ControlListener {
    /// A listener with the default access of its kind: full for a Unix
    /// socket (0600, root only), read-only for every other address, which
    /// the host or any service may reach.
    pub fn with_default_access(address: Address) -> Self {
        let access = match address {
            Address::Unix(_) => Access::Full,
            _ => Access::ReadOnly,
        };
        Self { address, access }
    }
}

/// `control.attested`: clients of the control listeners other than the
/// Unix socket may complete the attested channel's handshake (the same as
/// pipeline's); a key allowed to `manage` then gets full access on its
/// connection, any other authorised key the listener's access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlChannel {
    /// The authorised keys file (pipeline's format; `manage` is what counts).
    pub authorized_keys: PathBuf,
    /// Which NSM attests init's channel key.
    pub nsm: NsmMode,
    /// Where the development NSM keeps its PKI (outside an enclave).
    pub state_dir: PathBuf,
}

/// A size-limited tmpfs mounted over `path` before services start, so what
/// is written there (an inbox the host fills, the bus's store) cannot take
/// the space of the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageMount {
    /// Where it is mounted (created if missing).
    pub path: PathBuf,
    /// tmpfs's `size=`: bytes with an optional k, m or g, or a percentage of RAM.
    pub size: String,
}

/// Checks a tmpfs size: `N`, `Nk`, `Nm`, `Ng` (N > 0), or `N%` (1 to 100).
pub fn check_tmpfs_size(size: &str) -> Result<(), String> {
    let bad = || format!("{size:?} is not a size (bytes with k, m or g, or 1% to 100% of RAM)");
    if let Some(percent) = size.strip_suffix('%') {
        return match percent.parse::<u8>() {
            Ok(1..=100) if percent.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
            _ => Err(bad()),
        };
    }
    let digits = size.trim_end_matches(['k', 'm', 'g', 'K', 'M', 'G']);
    if size.len() - digits.len() > 1
        || digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => Ok(()),
        _ => Err(bad()),
    }
}

/// The validated init configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub source: ConfigSource,
    /// Directory of `*.service` files.
    pub service_dir: PathBuf,
    /// Directory of log files.
    pub log_dir: PathBuf,
    /// Control listeners (Unix socket, vsock, extra addresses) with their access.
    pub control: Vec<ControlListener>,
    /// The attested channel on the non-Unix control listeners, if configured.
    pub control_channel: Option<ControlChannel>,
    /// Log rotation.
    pub logs: LogLimits,
    /// Environment given to every service.
    pub environment: Vec<(String, String)>,
    /// Boot heartbeat.
    pub heartbeat: HeartbeatConfig,
    /// NSM driver module to load, if any.
    pub nsm_driver: Option<PathBuf>,
    /// Directory to switch root into, if any.
    pub pivot_root_dir: Option<PathBuf>,
    /// Host name to set.
    pub hostname: String,
    /// A line init writes on the console at start (an image's profile, say).
    pub banner: Option<String>,
    /// Grace period between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// Owner, group and mode of device nodes, applied before services start.
    pub devices: Vec<DeviceRule>,
    /// Size-limited tmpfs mounts, made before device rules and services.
    pub storage: Vec<StorageMount>,
    /// Where users and groups are looked up.
    pub accounts: AccountFiles,
    /// Directory a relative `StateDirectory` is created in (`/var/lib`).
    pub state_directory_root: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        // The defaults are valid by construction; validate() only fails on user values.
        match validate(RawConfig::default(), ConfigSource::BuiltIn) {
            Ok(config) => config,
            Err(err) => unreachable!("built-in defaults are invalid: {err}"),
        }
    }
}

impl Config {
    /// Loads the configuration by priority: `cli`, then `env`, then
    /// [`DEFAULT_CONFIG_PATH`] when it exists, then the built-in defaults.
    pub fn load(cli: Option<&Path>, env: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(cli, env, Path::new(DEFAULT_CONFIG_PATH))
    }

    /// [`Config::load`] with another default path (for tests).
    pub fn load_from(
        cli: Option<&Path>,
        env: Option<&Path>,
        default_path: &Path,
    ) -> Result<Self, ConfigError> {
        let (path, source, origin) = if let Some(p) = cli {
            (p, ConfigSource::Cli(p.into()), "--config")
        } else if let Some(p) = env {
            (p, ConfigSource::Env(p.into()), INIT_CONFIG_ENV)
        } else if default_path.exists() {
            (
                default_path,
                ConfigSource::DefaultPath(default_path.into()),
                "the default path",
            )
        } else {
            return validate(RawConfig::default(), ConfigSource::BuiltIn);
        };
        let text = read_limited_to_string(path, MAX_CONFIG_FILE_SIZE).map_err(|err| match err {
            ReadLimitedError::TooLarge { .. } => ConfigError::TooLarge { path: path.into() },
            err => ConfigError::Read {
                path: path.into(),
                origin,
                source: err.into_io_error(),
            },
        })?;
        Self::parse(&text, source)
    }

    /// Parses and validates YAML text; an empty document means all defaults.
    pub fn parse(text: &str, source: ConfigSource) -> Result<Self, ConfigError> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_yaml_ng::from_str::<Option<RawConfig>>(text)
                .map_err(|err| ConfigError::Yaml {
                    path: source_path(&source),
                    message: err.to_string(),
                })?
                .unwrap_or_default()
        };
        validate(raw, source)
    }

    /// The Unix control socket, if one is configured.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.control.iter().find_map(|l| match &l.address {
            Address::Unix(p) => Some(p.as_path()),
            _ => None,
        })
    }
}

fn source_path(source: &ConfigSource) -> PathBuf {
    match source {
        ConfigSource::Cli(p) | ConfigSource::Env(p) | ConfigSource::DefaultPath(p) => p.clone(),
        ConfigSource::BuiltIn => PathBuf::from("<built-in>"),
    }
}

fn validate(raw: RawConfig, source: ConfigSource) -> Result<Config, ConfigError> {
    let origin = source.to_string();
    let invalid = |key: &'static str, reason: String| ConfigError::Invalid {
        origin: origin.clone(),
        key,
        reason,
    };
    if raw.max_log_size == 0 {
        return Err(invalid("max_log_size", "must be at least 1 byte".into()));
    }
    if raw.max_log_files > 1000 {
        return Err(invalid("max_log_files", "must be at most 1000".into()));
    }
    for (key, value) in &raw.environment {
        check_env_pair(key, value).map_err(|reason| invalid("environment", reason))?;
    }
    if !(raw.stop_timeout_sec.is_finite() && (0.0..=3600.0).contains(&raw.stop_timeout_sec)) {
        return Err(invalid(
            "stop_timeout_sec",
            "must be a number of seconds from 0 to 3600".into(),
        ));
    }
    let mut control: Vec<ControlListener> = Vec::new();
    if raw.control.unix_socket_enabled {
        if raw.control.unix_socket_path.as_os_str().is_empty() {
            return Err(invalid("control.unix_socket_path", "is empty".into()));
        }
        control.push(ControlListener {
            address: Address::Unix(raw.control.unix_socket_path),
            access: raw.control.unix_socket_access,
        });
    }
    if raw.control.vsock_enabled {
        control.push(ControlListener {
            address: Address::vsock(raw.control.vsock_cid, raw.control.vsock_port),
            access: raw.control.vsock_access,
        });
    }
    for entry in &raw.control.listen {
        let (text, access) = match entry {
            RawListen::Address(text) => (text, None),
            RawListen::WithAccess(a) => (&a.address, a.access),
        };
        let address = text
            .parse::<Address>()
            .map_err(|err| invalid("control.listen", err.to_string()))?;
        // Port 0 binds a new ephemeral port each time: not a duplicate.
        let ephemeral = matches!(address, Address::Tcp { port: 0, .. });
        if !ephemeral && control.iter().any(|l| l.address == address) {
            return Err(invalid(
                "control.listen",
                format!("{address} is configured twice"),
            ));
        }
        let mut listener = ControlListener::with_default_access(address);
        if let Some(access) = access {
            listener.access = access;
        }
        control.push(listener);
    }
    let control_channel = match raw.control.attested {
        None => None,
        Some(attested) => {
            for (key, path) in [
                (
                    "control.attested.authorized_keys",
                    &attested.authorized_keys,
                ),
                ("control.attested.state_dir", &attested.state_dir),
            ] {
                if !path.is_absolute() {
                    return Err(invalid(
                        key,
                        format!("{} is not an absolute path", path.display()),
                    ));
                }
            }
            if control
                .iter()
                .all(|l| matches!(l.address, Address::Unix(_)))
            {
                return Err(invalid(
                    "control.attested",
                    "needs a control listener other than the Unix socket (vsock_enabled or listen): the channel is for clients outside the enclave".into(),
                ));
            }
            Some(ControlChannel {
                authorized_keys: attested.authorized_keys,
                nsm: attested.nsm,
                state_dir: attested.state_dir,
            })
        }
    };
    let mut devices = Vec::new();
    for raw_device in raw.devices {
        let path = raw_device.path;
        if !path.is_absolute() {
            return Err(invalid(
                "devices",
                format!("path {} is not absolute", path.display()),
            ));
        }
        let id = |raw: Option<RawId>| raw.map(|r| r.parse()).transpose();
        let bad = |reason: String| invalid("devices", format!("{}: {reason}", path.display()));
        let owner = id(raw_device.owner).map_err(|r| bad(format!("owner {r}")))?;
        let group = id(raw_device.group).map_err(|r| bad(format!("group {r}")))?;
        let mode = raw_device
            .mode
            .map(|m| m.parse())
            .transpose()
            .map_err(|r| bad(format!("mode {r}")))?;
        if owner.is_none() && group.is_none() && mode.is_none() {
            return Err(bad("give owner, group or mode".into()));
        }
        devices.push(DeviceRule {
            path,
            owner,
            group,
            mode,
            optional: raw_device.optional,
        });
    }
    let mut storage: Vec<StorageMount> = Vec::new();
    for entry in raw.storage {
        let path = entry.path;
        let bad = |reason: String| invalid("storage", format!("{}: {reason}", path.display()));
        if !path.is_absolute() || path.components().any(|c| c.as_os_str() == "..") {
            return Err(bad("not an absolute path without '..'".into()));
        }
        if path == Path::new("/") {
            return Err(bad("the root cannot be a storage mount".into()));
        }
        check_tmpfs_size(&entry.size).map_err(bad)?;
        if storage.iter().any(|m| m.path == path) {
            return Err(bad("configured twice".into()));
        }
        storage.push(StorageMount {
            path,
            size: entry.size,
        });
    }
    for (key, path) in [
        ("passwd_file", &raw.passwd_file),
        ("group_file", &raw.group_file),
        ("state_directory_root", &raw.state_directory_root),
    ] {
        if !path.is_absolute() {
            return Err(invalid(
                key,
                format!("{} is not an absolute path", path.display()),
            ));
        }
    }
    let cid = match raw.vsock.cid {
        RawCid::Number(n) => ParentCid::Fixed(n),
        RawCid::Word(w) if w == "auto" => ParentCid::Auto,
        RawCid::Word(w) => {
            return Err(invalid(
                "vsock.cid",
                format!("must be a CID number or \"auto\", not {w:?}"),
            ));
        }
    };
    let address = match raw.vsock.address {
        Some(text) => Some(
            text.parse::<Address>()
                .map_err(|err| invalid("vsock.address", err.to_string()))?,
        ),
        None => None,
    };
    let hostname = raw.hostname.unwrap_or_else(|| DEFAULT_HOSTNAME.into());
    if hostname.is_empty()
        || hostname.len() > 64
        || !hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(invalid(
            "hostname",
            format!("{hostname:?} is not a host name (letters, digits, '-', '.', at most 64)"),
        ));
    }
    if let Some(banner) = &raw.banner
        && (banner.len() > MAX_BANNER_LEN || banner.chars().any(char::is_control))
    {
        return Err(invalid(
            "banner",
            format!("one line of printable text, at most {MAX_BANNER_LEN} bytes"),
        ));
    }
    Ok(Config {
        source,
        service_dir: raw.service_dir,
        log_dir: raw.log_dir,
        control,
        control_channel,
        storage,
        logs: LogLimits {
            max_size: raw.max_log_size,
            max_files: raw.max_log_files,
        },
        environment: raw.environment.into_iter().collect(),
        heartbeat: HeartbeatConfig {
            enabled: raw.vsock.enabled,
            cid,
            port: raw.vsock.port,
            address,
        },
        nsm_driver: raw.nsm_driver_path.filter(|p| !p.as_os_str().is_empty()),
        pivot_root_dir: raw.pivot_root.then_some(raw.pivot_root_dir),
        hostname,
        banner: raw.banner,
        stop_timeout: Duration::from_secs_f64(raw.stop_timeout_sec),
        devices,
        accounts: AccountFiles {
            passwd: raw.passwd_file,
            group: raw.group_file,
        },
        state_directory_root: raw.state_directory_root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::IdSpec;

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::default();
        assert_eq!(c.service_dir, PathBuf::from("/service"));
        assert_eq!(c.log_dir, PathBuf::from("/log"));
        assert_eq!(
            c.control,
            vec![ControlListener {
                address: Address::Unix("/run/init.sock".into()),
                access: Access::Full
            }]
        );
        assert!(c.devices.is_empty());
        assert_eq!(c.accounts.passwd, PathBuf::from("/etc/passwd"));
        assert_eq!(c.accounts.group, PathBuf::from("/etc/group"));
        assert_eq!(c.state_directory_root, PathBuf::from("/var/lib"));
        assert_eq!(c.logs.max_size, 10 * 1024 * 1024);
        assert_eq!(c.logs.max_files, 5);
        assert!(c.heartbeat.enabled);
        assert_eq!(c.heartbeat.port, 9000);
        assert_eq!(c.heartbeat.cid, ParentCid::Auto);
        assert_eq!(c.nsm_driver, Some(PathBuf::from("nsm.ko")));
        assert_eq!(c.pivot_root_dir, Some(PathBuf::from("/rootfs")));
    }

    #[test]
    fn parses_the_spec_example() {
        let text = r#"
service_dir: /service
log_dir: /log
control:
  unix_socket_enabled: true
  unix_socket_path: /run/init.sock
  vsock_enabled: true
  vsock_cid: 4294967295
  vsock_port: 9001
max_log_size: 10485760
max_log_files: 5
environment:
  TZ: UTC
  LANG: en_US.UTF-8
vsock:
  enabled: true
  cid: 3
  port: 9000
nsm_driver_path: null
pivot_root: false
pivot_root_dir: /rootfs
"#;
        let c = Config::parse(text, ConfigSource::BuiltIn).unwrap();
        assert_eq!(
            c.control,
            vec![
                ControlListener {
                    address: Address::Unix("/run/init.sock".into()),
                    access: Access::Full
                },
                ControlListener {
                    address: Address::vsock(VSOCK_CID_ANY, 9001),
                    access: Access::ReadOnly
                }
            ]
        );
        assert_eq!(c.heartbeat.cid, ParentCid::Fixed(3));
        assert_eq!(c.nsm_driver, None);
        assert_eq!(c.pivot_root_dir, None);
        assert_eq!(
            c.environment,
            vec![
                ("LANG".to_string(), "en_US.UTF-8".to_string()),
                ("TZ".to_string(), "UTC".to_string())
            ]
        );
    }

    #[test]
    fn extra_listen_addresses() {
        let c = Config::parse(
            "control:\n  unix_socket_enabled: false\n  listen: [\"tcp:127.0.0.1:0\"]\n",
            ConfigSource::BuiltIn,
        )
        .unwrap();
        assert_eq!(
            c.control,
            vec![ControlListener {
                address: "tcp:127.0.0.1:0".parse().unwrap(),
                access: Access::ReadOnly
            }]
        );
    }

    #[test]
    fn control_access_per_listener() {
        let c = Config::parse(
            r#"
control:
  unix_socket_path: /run/init.sock
  vsock_enabled: true
  listen:
    - "tcp:127.0.0.1:9002"
    - "unix:/run/other.sock"
    - { address: "tcp:127.0.0.1:9003", access: full }
    - address: "hvsock:/tmp/vm.vsock:9001"
"#,
            ConfigSource::BuiltIn,
        )
        .unwrap();
        let access: Vec<Access> = c.control.iter().map(|l| l.access).collect();
        assert_eq!(
            access,
            [
                Access::Full,
                Access::ReadOnly,
                Access::ReadOnly,
                Access::Full,
                Access::Full,
                Access::ReadOnly
            ]
        );
        let c = Config::parse(
            "control:\n  unix_socket_access: read-only\n  vsock_enabled: true\n  vsock_access: full\n",
            ConfigSource::BuiltIn,
        )
        .unwrap();
        let access: Vec<Access> = c.control.iter().map(|l| l.access).collect();
        assert_eq!(access, [Access::ReadOnly, Access::Full]);
    }

    #[test]
    fn attested_control_channel() {
        let c = Config::parse(
            "control:\n  vsock_enabled: true\n  attested: {authorized_keys: /etc/pipeline/authorized_keys}\n",
            ConfigSource::BuiltIn,
        )
        .unwrap();
        assert_eq!(
            c.control_channel,
            Some(ControlChannel {
                authorized_keys: "/etc/pipeline/authorized_keys".into(),
                nsm: NsmMode::Auto,
                state_dir: DEFAULT_CHANNEL_STATE_DIR.into(),
            })
        );
        assert_eq!(Config::default().control_channel, None);
        for (text, needle) in [
            (
                "control:\n  vsock_enabled: true\n  attested: {authorized_keys: keys}\n",
                "not an absolute path",
            ),
            (
                "control:\n  attested: {authorized_keys: /k}\n",
                "other than the Unix socket",
            ),
            (
                "control:\n  vsock_enabled: true\n  attested: {authorized_keys: /k, nsm: fake}\n",
                "nsm",
            ),
            (
                "control:\n  vsock_enabled: true\n  attested: {authorized_key: /k}\n",
                "unknown field",
            ),
        ] {
            let err = Config::parse(text, ConfigSource::BuiltIn)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn storage_mounts() {
        let c = Config::parse(
            "storage:\n  - {path: /data, size: 25%}\n  - {path: /var/lib/nats, size: 96m}\n",
            ConfigSource::BuiltIn,
        )
        .unwrap();
        assert_eq!(
            c.storage,
            vec![
                StorageMount {
                    path: "/data".into(),
                    size: "25%".into()
                },
                StorageMount {
                    path: "/var/lib/nats".into(),
                    size: "96m".into()
                },
            ]
        );
        for good in ["1", "4096", "64k", "96m", "2G", "1%", "100%"] {
            assert!(check_tmpfs_size(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "0",
            "0m",
            "m",
            "12mm",
            "1.5g",
            "101%",
            "0%",
            "-1",
            "5%%",
            "size=1m,mode=777",
        ] {
            assert!(check_tmpfs_size(bad).is_err(), "{bad}");
        }
        for (text, needle) in [
            ("storage:\n  - {path: data, size: 1m}", "absolute"),
            ("storage:\n  - {path: /data/../etc, size: 1m}", "absolute"),
            ("storage:\n  - {path: /, size: 1m}", "root"),
            (
                "storage:\n  - {path: /d, size: \"1m,mode=4777\"}",
                "not a size",
            ),
            (
                "storage:\n  - {path: /d, size: 1m}\n  - {path: /d, size: 2m}",
                "twice",
            ),
            (
                "storage:\n  - {path: /d, size: 1m, mode: 777}",
                "unknown field",
            ),
        ] {
            let err = Config::parse(text, ConfigSource::BuiltIn)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn device_rules() {
        let c = Config::parse(
            "devices:\n  - {path: /dev/nsm, group: nsm, mode: \"0660\", optional: true}\n  - {path: /dev/x, owner: 0, group: \"12\"}\n",
            ConfigSource::BuiltIn,
        )
        .unwrap();
        assert_eq!(c.devices.len(), 2);
        assert_eq!(c.devices[0].group, Some(IdSpec::Name("nsm".into())));
        assert_eq!(c.devices[0].mode, Some(crate::privileges::Mode(0o660)));
        assert_eq!(c.devices[1].owner, Some(IdSpec::Id(0)));
        assert_eq!(c.devices[1].group, Some(IdSpec::Id(12)));
        assert!(c.devices[0].optional && !c.devices[1].optional);
        // YAML hands an unquoted 0660 over as the text it is: read as octal.
        let c = Config::parse(
            "devices:\n  - {path: /dev/nsm, mode: 0660}\n",
            ConfigSource::BuiltIn,
        )
        .unwrap();
        assert_eq!(c.devices[0].mode, Some(crate::privileges::Mode(0o660)));
    }

    #[test]
    fn a_banner_is_one_line_of_text() {
        let c = Config::parse(
            "banner: \"DEBUG PROFILE: root for the host\"",
            ConfigSource::BuiltIn,
        )
        .unwrap();
        assert_eq!(
            c.banner.as_deref(),
            Some("DEBUG PROFILE: root for the host")
        );
        assert_eq!(Config::default().banner, None);
        let long = format!("banner: \"{}\"", "x".repeat(MAX_BANNER_LEN + 1));
        assert!(Config::parse(&long, ConfigSource::BuiltIn).is_err());
    }

    #[test]
    fn rejects_bad_values_with_the_key() {
        for (text, needle) in [
            ("max_log_size: 0", "max_log_size"),
            ("servce_dir: /x", "unknown field"),
            ("control:\n  listen: [\"udp:1\"]", "control.listen"),
            ("vsock:\n  cid: parent", "vsock.cid"),
            ("environment:\n  \"A=B\": x", "environment"),
            ("hostname: \"a b\"", "hostname"),
            ("stop_timeout_sec: -1", "stop_timeout_sec"),
            ("max_log_size: [1]", "max_log_size"),
            ("control:\n  vsock_access: none", "vsock_access"),
            (
                "control:\n  listen: [{address: \"tcp:127.0.0.1:1\", access: root}]",
                "control.listen",
            ),
            (
                "control:\n  listen: [\"unix:/run/init.sock\"]",
                "configured twice",
            ),
            (
                "devices:\n  - {path: dev/nsm, mode: \"0660\"}",
                "not absolute",
            ),
            ("devices:\n  - {path: /dev/nsm, mode: \"4777\"}", "mode"),
            ("devices:\n  - {path: /dev/nsm, group: \"a b\"}", "group"),
            ("devices:\n  - {path: /dev/nsm}", "owner, group or mode"),
            ("devices:\n  - {path: /dev/nsm, grup: nsm}", "unknown field"),
            ("passwd_file: etc/passwd", "passwd_file"),
            ("banner: \"two\\nlines\"", "banner"),
        ] {
            let err = Config::parse(text, ConfigSource::BuiltIn).unwrap_err();
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn loading_priority() {
        let dir = tempfile::tempdir().unwrap();
        let cli = dir.path().join("cli.yaml");
        let env = dir.path().join("env.yaml");
        let default = dir.path().join("default.yaml");
        std::fs::write(&cli, "log_dir: /cli").unwrap();
        std::fs::write(&env, "log_dir: /env").unwrap();
        std::fs::write(&default, "log_dir: /default").unwrap();
        let load = |c: Option<&Path>, e: Option<&Path>| Config::load_from(c, e, &default).unwrap();
        assert_eq!(load(Some(&cli), Some(&env)).log_dir, PathBuf::from("/cli"));
        assert_eq!(load(None, Some(&env)).log_dir, PathBuf::from("/env"));
        assert_eq!(load(None, None).log_dir, PathBuf::from("/default"));
        std::fs::remove_file(&default).unwrap();
        let builtin = load(None, None);
        assert_eq!(builtin.source, ConfigSource::BuiltIn);
        assert_eq!(builtin.log_dir, PathBuf::from("/log"));
        let missing = dir.path().join("missing.yaml");
        let err = Config::load_from(Some(&missing), None, &default).unwrap_err();
        assert!(err.to_string().contains("--config"), "{err}");
    }
}
