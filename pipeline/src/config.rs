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
//! [`crate::settings`] checks the values and merges them with the flags.

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
}

impl FileConfig {
    /// Reads and parses a configuration file; [`crate::settings`] checks
    /// its values.
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
            other => other,
        })
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: FileConfig = if text.trim().is_empty() {
            FileConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Parse {
                path: PathBuf::new(),
                source,
            })?
        };
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
    fn rejects_bad_yaml_with_reasons() {
        for (text, needle) in [
            ("adr: unix:/x\n", "unknown field"),
            ("addr: udp:1\n", "invalid address"),
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
