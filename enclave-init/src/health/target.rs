//! Where an HTTP or TCP probe may connect: loopback only (`127.0.0.0/8`,
//! `::1` or `localhost`), so a probe never leaves the enclave (through the
//! egress proxy, the untrusted host would answer it) and TLS without
//! certificate verification stays between init and a local server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// An HTTP or HTTPS URL on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// The URL as written.
    pub url: String,
    /// `https`.
    pub https: bool,
    /// The address connected to.
    pub addr: SocketAddr,
    /// The `Host` header: the URL's authority.
    pub authority: String,
    /// Path and query sent in the request line.
    pub path: String,
}

/// A TCP address on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpTarget {
    /// The address as written.
    pub text: String,
    /// The address connected to.
    pub addr: SocketAddr,
}

/// A loopback IP from a host as written (`127.0.0.1`, `[::1]`, `localhost`).
fn loopback_ip(host: &str) -> Result<IpAddr, String> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = bare
        .parse()
        .map_err(|_| format!("{host:?} is not an IP address or localhost"))?;
    if !ip.is_loopback() {
        return Err(format!(
            "{host} is not a loopback address: probes stay inside the enclave (127.0.0.0/8, ::1, localhost)"
        ));
    }
    Ok(ip)
}

impl HttpTarget {
    /// Parses `http://HOST[:PORT][/PATH[?QUERY]]` or `https://...`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|err| format!("{url:?} is not a URL: {err}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!("{url:?} must start with http:// or https://"));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "{url:?}: user names and passwords are not supported"
            ));
        }
        let ip = loopback_ip(authority.host())?;
        let port = match authority.as_str().get(authority.host().len()..) {
            None | Some("") => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(rest) => rest
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{url:?}: {rest:?} is not a port number"))?,
        };
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        Ok(Self {
            url: url.to_owned(),
            https,
            addr: SocketAddr::new(ip, port),
            authority: authority.as_str().to_owned(),
            path,
        })
    }
}

impl TcpTarget {
    /// Parses `HOST:PORT` (`127.0.0.1:4222`, `[::1]:4222`, `localhost:4222`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} is not HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?}: {port:?} is not a port number"))?;
        if port == 0 {
            return Err(format!("{text:?}: port 0 cannot be connected to"));
        }
        if host.contains(':') && !host.starts_with('[') && host.parse::<IpAddr>().is_ok() {
            return Err(format!(
                "{text:?}: write an IPv6 address in brackets ([::1]:PORT)"
            ));
        }
        let ip = loopback_ip(host)?;
        Ok(Self {
            text: text.to_owned(),
            addr: SocketAddr::new(ip, port),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_targets() {
        let t = HttpTarget::parse("https://127.0.0.1:8443/ready/").unwrap();
        assert!(t.https);
        assert_eq!(t.addr, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:8443", "/ready/")
        );
        let t = HttpTarget::parse("http://localhost/healthz?js-enabled-only=true").unwrap();
        assert_eq!(t.addr, "127.0.0.1:80".parse().unwrap());
        assert_eq!(t.path, "/healthz?js-enabled-only=true");
        let t = HttpTarget::parse("http://[::1]:8222").unwrap();
        assert_eq!(
            (t.addr, t.path.as_str()),
            ("[::1]:8222".parse().unwrap(), "/")
        );
        for (bad, needle) in [
            ("ftp://127.0.0.1/", "http://"),
            ("127.0.0.1:80", "http://"),
            ("http://10.0.0.1/", "loopback"),
            ("http://example.com/", "not an IP"),
            ("http://u:p@127.0.0.1/", "user names"),
            ("http://127.0.0.1:99999/", "port number"),
            ("http://127.0.0.1:0/", "port number"),
            ("not a url", "URL"),
        ] {
            let err = HttpTarget::parse(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn tcp_targets() {
        assert_eq!(
            TcpTarget::parse("127.0.0.1:4222").unwrap().addr,
            "127.0.0.1:4222".parse().unwrap()
        );
        assert_eq!(
            TcpTarget::parse("localhost:53").unwrap().addr,
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            TcpTarget::parse("[::1]:1").unwrap().addr,
            "[::1]:1".parse().unwrap()
        );
        for (bad, needle) in [
            ("127.0.0.1", "HOST:PORT"),
            ("127.0.0.1:0", "port 0"),
            ("127.0.0.1:http", "port number"),
            ("192.168.1.1:80", "loopback"),
            ("::1:80", "brackets"),
            ("vsock:3:8000", "not an IP"),
        ] {
            let err = TcpTarget::parse(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
