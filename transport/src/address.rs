//! Endpoint addresses: `vsock:CID:PORT`, `hvsock:PATH:PORT`, `unix:PATH`,
//! `tcp:HOST:PORT`.
//!
//! [`Address`] parses with [`str::parse`] and prints back the same string, so
//! an address can be logged, stored in a config file and parsed again.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::defs::VSOCK_CID_ANY;

/// Where to listen or connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Address {
    /// AF_VSOCK socket; `cid` [`VSOCK_CID_ANY`] listens on every CID.
    Vsock {
        /// Context identifier of the VM (2 = host, 3 = Nitro parent).
        cid: u32,
        /// vsock port.
        port: u32,
    },
    /// Hybrid vsock: a Unix socket served by a VMM's vsock device.
    HybridVsock {
        /// The VMM's Unix socket (`uds-path` of vhost-device-vsock).
        path: PathBuf,
        /// vsock port in the guest (connect) or on the host (listen).
        port: u32,
    },
    /// Unix stream socket at a path.
    Unix(PathBuf),
    /// TCP; `host` is an IP address or a name resolved when used.
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// TCP port; 0 lets the kernel choose when listening.
        port: u16,
    },
}

/// An address string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid address {input:?}: {reason} (expected vsock:CID:PORT, hvsock:PATH:PORT, unix:PATH or tcp:HOST:PORT)"
)]
pub struct ParseAddressError {
    /// The string given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ParseAddressError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

impl Address {
    /// `vsock:CID:PORT`, the address the Sentient-style `--cid`/`--port` flags mean.
    pub fn vsock(cid: u32, port: u32) -> Self {
        Address::Vsock { cid, port }
    }

    /// Parses the Sentient-style `--vsock-addr CID:PORT` value.
    pub fn from_vsock_pair(pair: &str) -> Result<Self, ParseAddressError> {
        let (cid, port) = split_last_colon(pair)
            .ok_or_else(|| ParseAddressError::new(pair, "expected CID:PORT"))?;
        Ok(Address::Vsock {
            cid: parse_cid(pair, cid)?,
            port: parse_u32(pair, port, "vsock port")?,
        })
    }

    /// Parses the Sentient-style `--ip-addr IP:PORT` value (`[::1]:80` for IPv6).
    pub fn from_ip_pair(pair: &str) -> Result<Self, ParseAddressError> {
        parse_tcp(pair, pair)
    }

    /// Whether a write-side shutdown reaches the peer as an end of stream
    /// without tearing the connection down.
    ///
    /// False for hybrid vsock: vhost-device-vsock drops the whole connection,
    /// data in flight included, on a host-side `shutdown(SHUT_WR)`.
    pub fn supports_half_close(&self) -> bool {
        !matches!(self, Address::HybridVsock { .. })
    }

    /// The Unix socket path a hybrid-vsock listener on `port` binds: `PATH_PORT`.
    pub fn hvsock_listen_path(path: &std::path::Path, port: u32) -> PathBuf {
        let mut joined = path.as_os_str().to_owned();
        joined.push(format!("_{port}"));
        PathBuf::from(joined)
    }
}

fn split_last_colon(s: &str) -> Option<(&str, &str)> {
    s.rsplit_once(':')
}

fn parse_u32(input: &str, value: &str, what: &str) -> Result<u32, ParseAddressError> {
    value.parse::<u32>().map_err(|_| {
        ParseAddressError::new(
            input,
            format!("{what} {value:?} is not a number from 0 to 4294967295"),
        )
    })
}

fn parse_cid(input: &str, value: &str) -> Result<u32, ParseAddressError> {
    if value.eq_ignore_ascii_case("any") {
        return Ok(VSOCK_CID_ANY);
    }
    parse_u32(input, value, "vsock CID")
}

fn parse_path(input: &str, value: &str) -> Result<PathBuf, ParseAddressError> {
    if value.is_empty() {
        return Err(ParseAddressError::new(input, "the socket path is empty"));
    }
    if value.contains('\0') {
        return Err(ParseAddressError::new(
            input,
            "the socket path contains a NUL byte",
        ));
    }
    Ok(PathBuf::from(value))
}

fn parse_tcp(input: &str, rest: &str) -> Result<Address, ParseAddressError> {
    let (host, port) = split_last_colon(rest)
        .ok_or_else(|| ParseAddressError::new(input, "expected HOST:PORT"))?;
    let port = port.parse::<u16>().map_err(|_| {
        ParseAddressError::new(
            input,
            format!("TCP port {port:?} is not a number from 0 to 65535"),
        )
    })?;
    let host = if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| ParseAddressError::new(input, "unclosed '[' in IPv6 host"))?;
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(ParseAddressError::new(
                input,
                format!("{inner:?} is not an IPv6 address"),
            ));
        }
        inner
    } else {
        if host.contains(':') {
            return Err(ParseAddressError::new(
                input,
                "an IPv6 host must be written in brackets, as [::1]",
            ));
        }
        host
    };
    if host.is_empty() {
        return Err(ParseAddressError::new(input, "the host is empty"));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'))
    {
        return Err(ParseAddressError::new(
            input,
            format!("{host:?} is not a host name or IP address"),
        ));
    }
    Ok(Address::Tcp {
        host: host.to_owned(),
        port,
    })
}

impl FromStr for Address {
    type Err = ParseAddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = input
            .split_once(':')
            .ok_or_else(|| ParseAddressError::new(input, "missing scheme"))?;
        match scheme {
            "vsock" => {
                let (cid, port) = split_last_colon(rest)
                    .ok_or_else(|| ParseAddressError::new(input, "expected vsock:CID:PORT"))?;
                Ok(Address::Vsock {
                    cid: parse_cid(input, cid)?,
                    port: parse_u32(input, port, "vsock port")?,
                })
            }
            "hvsock" => {
                let (path, port) = split_last_colon(rest)
                    .ok_or_else(|| ParseAddressError::new(input, "expected hvsock:PATH:PORT"))?;
                Ok(Address::HybridVsock {
                    path: parse_path(input, path)?,
                    port: parse_u32(input, port, "vsock port")?,
                })
            }
            "unix" => Ok(Address::Unix(parse_path(input, rest)?)),
            "tcp" => parse_tcp(input, rest),
            other => Err(ParseAddressError::new(
                input,
                format!("unknown scheme {other:?}"),
            )),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Vsock { cid, port } if *cid == VSOCK_CID_ANY => write!(f, "vsock:any:{port}"),
            Address::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Address::HybridVsock { path, port } => write!(f, "hvsock:{}:{port}", path.display()),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

impl TryFrom<String> for Address {
    type Error = ParseAddressError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Address> for String {
    fn from(addr: Address) -> String {
        addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Address {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("vsock:16:53000"), Address::vsock(16, 53000));
        assert_eq!(
            parse("vsock:any:53000"),
            Address::vsock(VSOCK_CID_ANY, 53000)
        );
        assert_eq!(
            parse("hvsock:/tmp/vm.vsock:9000"),
            Address::HybridVsock {
                path: "/tmp/vm.vsock".into(),
                port: 9000
            }
        );
        assert_eq!(
            parse("unix:/run/init.sock"),
            Address::Unix("/run/init.sock".into())
        );
        assert_eq!(
            parse("tcp:127.0.0.1:8443"),
            Address::Tcp {
                host: "127.0.0.1".into(),
                port: 8443
            }
        );
        assert_eq!(
            parse("tcp:[::1]:80"),
            Address::Tcp {
                host: "::1".into(),
                port: 80
            }
        );
        assert_eq!(
            parse("tcp:localhost:0"),
            Address::Tcp {
                host: "localhost".into(),
                port: 0
            }
        );
    }

    #[test]
    fn hvsock_path_may_contain_colons() {
        assert_eq!(
            parse("hvsock:/tmp/a:b/vm.sock:5"),
            Address::HybridVsock {
                path: "/tmp/a:b/vm.sock".into(),
                port: 5
            }
        );
    }

    #[test]
    fn rejects_malformed_addresses_with_a_reason() {
        for (input, needle) in [
            ("", "missing scheme"),
            ("16:53000", "unknown scheme"),
            ("vsock:16", "expected vsock:CID:PORT"),
            ("vsock:x:1", "vsock CID"),
            ("vsock:1:99999999999", "vsock port"),
            ("vsock:-1:2", "vsock CID"),
            ("unix:", "empty"),
            ("hvsock::5", "empty"),
            ("hvsock:/x", "expected hvsock:PATH:PORT"),
            ("tcp:1.2.3.4", "expected HOST:PORT"),
            ("tcp:1.2.3.4:65536", "TCP port"),
            ("tcp::80", "host is empty"),
            ("tcp:::1:80", "brackets"),
            ("tcp:[::1:80", "unclosed"),
            ("tcp:[nothost]:80", "IPv6"),
            ("tcp:a b:80", "not a host name"),
            ("udp:1.2.3.4:53", "unknown scheme"),
        ] {
            let err = input.parse::<Address>().unwrap_err();
            assert!(err.to_string().contains(needle), "{input:?}: {err}");
            assert!(
                err.to_string().contains(&format!("{input:?}")),
                "{input:?}: {err}"
            );
        }
    }

    #[test]
    fn shorthands() {
        assert_eq!(
            Address::from_vsock_pair("3:8888").unwrap(),
            Address::vsock(3, 8888)
        );
        assert_eq!(
            Address::from_vsock_pair("any:1").unwrap(),
            Address::vsock(VSOCK_CID_ANY, 1)
        );
        assert!(Address::from_vsock_pair("3").is_err());
        assert_eq!(
            Address::from_ip_pair("127.0.0.1:8443").unwrap(),
            parse("tcp:127.0.0.1:8443")
        );
        assert_eq!(
            Address::from_ip_pair("[::1]:1").unwrap(),
            parse("tcp:[::1]:1")
        );
    }

    #[test]
    fn hvsock_listen_path_appends_port() {
        assert_eq!(
            Address::hvsock_listen_path(std::path::Path::new("/tmp/vm.vsock"), 9000),
            PathBuf::from("/tmp/vm.vsock_9000")
        );
    }

    #[test]
    fn only_hvsock_lacks_half_close() {
        assert!(!parse("hvsock:/x:1").supports_half_close());
        assert!(parse("unix:/x").supports_half_close());
        assert!(parse("tcp:h:1").supports_half_close());
        assert!(parse("vsock:3:1").supports_half_close());
    }

    fn arb_address() -> impl Strategy<Value = Address> {
        prop_oneof![
            (any::<u32>(), any::<u32>()).prop_map(|(cid, port)| Address::vsock(cid, port)),
            ("/[a-z0-9_:./-]{1,40}", any::<u32>()).prop_map(|(p, port)| Address::HybridVsock {
                path: p.into(),
                port
            }),
            "/[a-z0-9_:./ -]{1,40}".prop_map(|p| Address::Unix(p.into())),
            ("[a-z][a-z0-9.-]{0,30}", any::<u16>())
                .prop_map(|(host, port)| Address::Tcp { host, port }),
            (any::<std::net::Ipv6Addr>(), any::<u16>()).prop_map(|(ip, port)| Address::Tcp {
                host: ip.to_string(),
                port
            }),
        ]
    }

    proptest! {
        #[test]
        fn display_round_trips(addr in arb_address()) {
            let text = addr.to_string();
            prop_assert_eq!(text.parse::<Address>().unwrap(), addr);
        }

        #[test]
        fn parser_never_panics(input in ".{0,64}") {
            let _ = input.parse::<Address>();
        }
    }
}
