//! The optional YAML configuration file, shared by `pipeline listen` and
//! the client commands. Flags override it.
//!
//! ```yaml
//! addr: vsock:16:53000     # or cid: 16 and port: 53000 (Sentient style)
//! allow_exec: true         # listen: run commands for clients
//! roots: [/apps, /data]    # listen: confine file reads and writes (empty: anywhere)
//! max_clients: 256         # listen: clients served at once
//! idle_timeout_secs: 300   # listen: drop a client silent this long mid-operation
//! socket_mode: "0600"      # listen on unix:/hvsock: with this file mode
//! connect_attempts: 5      # clients: connection attempts before giving up
//! ```
//!
//! Unknown keys are errors, so a typo cannot silently fall back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use transport::Address;

/// What the configuration file may say; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on or connect to.
    pub addr: Option<Address>,
    /// vsock CID (with `port`, means `vsock:CID:PORT`).
    pub cid: Option<u32>,
    /// vsock port.
    pub port: Option<u32>,
    /// Whether the server runs commands.
    pub allow_exec: Option<bool>,
    /// Directories file operations are confined to.
    pub roots: Option<Vec<PathBuf>>,
    /// Clients served at once.
    pub max_clients: Option<usize>,
    /// Idle limit in the middle of an operation, in seconds.
    pub idle_timeout_secs: Option<u64>,
    /// Mode of a Unix listening socket, octal.
    pub socket_mode: Option<String>,
    /// Connection attempts of clients.
    pub connect_attempts: Option<u32>,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid YAML of the expected shape.
    #[error("invalid config file {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_yaml_ng::Error,
    },
    /// A value is out of range.
    #[error("invalid config file {}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl FileConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|err| match err {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: PathBuf::new(),
            message,
        };
        let config: FileConfig = if text.trim().is_empty() {
            FileConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Parse {
                path: PathBuf::new(),
                source,
            })?
        };
        if config.addr.is_some() && (config.cid.is_some() || config.port.is_some()) {
            return Err(invalid("give either addr or cid/port, not both".into()));
        }
        if config.cid.is_some() && config.port.is_none() {
            return Err(invalid("cid needs a port".into()));
        }
        if config.max_clients == Some(0) {
            return Err(invalid("max_clients must be at least 1".into()));
        }
        if config.idle_timeout_secs == Some(0) {
            return Err(invalid("idle_timeout_secs must be at least 1".into()));
        }
        if config.connect_attempts == Some(0) {
            return Err(invalid("connect_attempts must be at least 1".into()));
        }
        if let Some(mode) = &config.socket_mode {
            parse_mode(mode).map_err(invalid)?;
        }
        Ok(config)
    }

    /// The address the file gives, if any (`addr`, or `cid`+`port`).
    pub fn address(&self) -> Option<Address> {
        match (&self.addr, self.cid, self.port) {
            (Some(addr), _, _) => Some(addr.clone()),
            (None, Some(cid), Some(port)) => Some(Address::vsock(cid, port)),
            _ => None,
        }
    }
}

/// Parses an octal file mode such as `0600` or `600`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "socket mode {text:?} is not an octal mode from 000 to 777"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config() {
        let config = FileConfig::parse(
            "addr: unix:/run/p.sock\nallow_exec: false\nroots: [/apps]\nmax_clients: 4\nsocket_mode: \"0600\"\n",
        )
        .unwrap();
        assert_eq!(config.address(), Some("unix:/run/p.sock".parse().unwrap()));
        assert_eq!(config.allow_exec, Some(false));
        assert_eq!(config.roots, Some(vec![PathBuf::from("/apps")]));
    }

    #[test]
    fn sentient_style_cid_port() {
        let config = FileConfig::parse("cid: 16\nport: 53000\n").unwrap();
        assert_eq!(config.address(), Some(Address::vsock(16, 53000)));
    }

    #[test]
    fn rejects_bad_configs_with_reasons() {
        for (text, needle) in [
            ("adr: unix:/x\n", "unknown field"),
            ("addr: udp:1\n", "invalid address"),
            ("addr: unix:/x\nport: 1\n", "not both"),
            ("cid: 3\n", "needs a port"),
            ("max_clients: 0\n", "at least 1"),
            ("socket_mode: \"999\"\n", "octal"),
            ("max_clients: -1\n", "invalid"),
            ("[1, 2]\n", "invalid"),
        ] {
            let err = FileConfig::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        assert_eq!(FileConfig::parse("").unwrap(), FileConfig::default());
    }

    #[test]
    fn load_names_the_file() {
        let err = FileConfig::load(Path::new("/nonexistent/pipeline.yaml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pipeline.yaml"));
    }
}
