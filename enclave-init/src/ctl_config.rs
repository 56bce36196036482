//! `initctl.yaml`: how initctl reaches init, with the command line on top.
//!
//! Priority of the file: `--config`, then `INITCTL_CONFIG`, then
//! `/etc/initctl.yaml`, then built-in defaults (the Unix socket). Then, for
//! each setting, the command line wins over the file: `--address` over
//! everything, `--protocol`, `--socket` (or `INIT_SOCKET`), `--vsock-cid`,
//! `--vsock-port`.

use std::path::{Path, PathBuf};

use cli_support::{ReadLimitedError, read_limited_to_string};
use serde::Deserialize;
use transport::Address;

use crate::defs::*;

/// Why the initctl configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum CtlConfigError {
    /// The named file cannot be read.
    #[error("cannot read initctl configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is too large.
    #[error("initctl configuration {} is larger than {MAX_CONFIG_FILE_SIZE} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file does not parse.
    #[error("initctl configuration {}: {message}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// Which transport `protocol:` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Unix socket (`unix_socket_path`).
    Unix,
    /// vsock (`vsock_cid`, `vsock_port`).
    Vsock,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCtlConfig {
    protocol: Protocol,
    unix_socket_path: PathBuf,
    vsock_cid: u32,
    vsock_port: u32,
    address: Option<String>,
}

impl Default for RawCtlConfig {
    fn default() -> Self {
        Self {
            protocol: Protocol::Unix,
            unix_socket_path: DEFAULT_UNIX_SOCKET.into(),
            vsock_cid: NITRO_PARENT_CID,
            vsock_port: DEFAULT_CONTROL_VSOCK_PORT,
            address: None,
        }
    }
}

/// Command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct CtlOverrides {
    /// `--config` (or `INITCTL_CONFIG`).
    pub config: Option<PathBuf>,
    /// `--protocol`.
    pub protocol: Option<Protocol>,
    /// `--socket` (or `INIT_SOCKET`).
    pub socket: Option<PathBuf>,
    /// `--vsock-cid`.
    pub vsock_cid: Option<u32>,
    /// `--vsock-port`.
    pub vsock_port: Option<u32>,
    /// `--address`: any transport address (unix:, vsock:, hvsock:, tcp:).
    pub address: Option<Address>,
}

/// Resolves the address initctl talks to.
pub fn resolve(overrides: &CtlOverrides) -> Result<Address, CtlConfigError> {
    resolve_with_default(overrides, Path::new(DEFAULT_INITCTL_CONFIG_PATH))
}

/// [`resolve`] with another default configuration path (for tests).
pub fn resolve_with_default(
    overrides: &CtlOverrides,
    default_path: &Path,
) -> Result<Address, CtlConfigError> {
    if let Some(addr) = &overrides.address {
        return Ok(addr.clone());
    }
    let path = match &overrides.config {
        Some(p) => Some(p.as_path()),
        None if default_path.exists() => Some(default_path),
        None => None,
    };
    let raw = match path {
        Some(path) => parse_file(path)?,
        None => RawCtlConfig::default(),
    };
    if let Some(text) = &raw.address
        && overrides.protocol.is_none()
        && overrides.socket.is_none()
    {
        return text.parse().map_err(|e: transport::ParseAddressError| {
            CtlConfigError::Invalid(format!("address: {e}"))
        });
    }
    // --socket implies unix, --vsock-cid/--vsock-port imply vsock.
    let protocol = overrides.protocol.unwrap_or(if overrides.socket.is_some() {
        Protocol::Unix
    } else if overrides.vsock_cid.is_some() || overrides.vsock_port.is_some() {
        Protocol::Vsock
    } else {
        raw.protocol
    });
    Ok(match protocol {
        Protocol::Unix => Address::Unix(overrides.socket.clone().unwrap_or(raw.unix_socket_path)),
        Protocol::Vsock => Address::vsock(
            overrides.vsock_cid.unwrap_or(raw.vsock_cid),
            overrides.vsock_port.unwrap_or(raw.vsock_port),
        ),
    })
}

fn parse_file(path: &Path) -> Result<RawCtlConfig, CtlConfigError> {
    let text = read_limited_to_string(path, MAX_CONFIG_FILE_SIZE).map_err(|err| match err {
        ReadLimitedError::TooLarge { .. } => CtlConfigError::TooLarge { path: path.into() },
        err => CtlConfigError::Read {
            path: path.into(),
            source: err.into_io_error(),
        },
    })?;
    if text.trim().is_empty() {
        return Ok(RawCtlConfig::default());
    }
    serde_yaml_ng::from_str::<Option<RawCtlConfig>>(&text)
        .map(Option::unwrap_or_default)
        .map_err(|e| CtlConfigError::Yaml {
            path: path.into(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities() {
        let dir = tempfile::tempdir().unwrap();
        let none = dir.path().join("none.yaml");
        let o = CtlOverrides::default();
        assert_eq!(
            resolve_with_default(&o, &none).unwrap(),
            Address::Unix("/run/init.sock".into())
        );
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "protocol: vsock\nvsock_cid: 16\nvsock_port: 9001\n").unwrap();
        let from_file = CtlOverrides {
            config: Some(file.clone()),
            ..Default::default()
        };
        assert_eq!(
            resolve_with_default(&from_file, &none).unwrap(),
            Address::vsock(16, 9001)
        );
        let cid = CtlOverrides {
            vsock_cid: Some(17),
            ..from_file.clone()
        };
        assert_eq!(
            resolve_with_default(&cid, &none).unwrap(),
            Address::vsock(17, 9001)
        );
        let sock = CtlOverrides {
            socket: Some("/tmp/x.sock".into()),
            ..from_file.clone()
        };
        assert_eq!(
            resolve_with_default(&sock, &none).unwrap(),
            Address::Unix("/tmp/x.sock".into())
        );
        let addr = CtlOverrides {
            address: Some("tcp:127.0.0.1:9".parse().unwrap()),
            ..from_file
        };
        assert_eq!(
            resolve_with_default(&addr, &none).unwrap(),
            "tcp:127.0.0.1:9".parse().unwrap()
        );
        let implied = CtlOverrides {
            vsock_cid: Some(21),
            ..Default::default()
        };
        assert_eq!(
            resolve_with_default(&implied, &none).unwrap(),
            Address::vsock(21, 9001)
        );
        std::fs::write(&file, "protocol: carrier-pigeon\n").unwrap();
        let bad = CtlOverrides {
            config: Some(file),
            ..Default::default()
        };
        assert!(
            resolve_with_default(&bad, &none)
                .unwrap_err()
                .to_string()
                .contains("carrier-pigeon")
        );
    }
}
