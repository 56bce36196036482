//! The ingress entries and their checks.
//!
//! One entry, as `--tls-ingress` takes it and as a line of
//! `--tls-ingress-file` holds it:
//!
//! ```text
//! LISTEN=UPSTREAM[,name=NAME][,max-connections=N][,idle-timeout=SECS]
//! ```
//!
//! - `LISTEN`: where TLS is accepted, any listen address (`HOST:PORT`,
//!   `tcp:HOST:PORT`, `unix:PATH`, `vsock:CID:PORT`); port 0 lets the
//!   kernel choose (shown by `/health`).
//! - `UPSTREAM`: where the plaintext goes, on loopback only
//!   (`127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`, `tcp:` of those, or
//!   `unix:PATH`): anything else would carry the plaintext out of the
//!   enclave through its egress.
//! - `name`: shown in `/health` and the logs, 1 to 64 of `A-Z a-z 0-9 . _ -`;
//!   default: `LISTEN` as given.
//! - `max-connections`: clients served at once (more wait in the backlog),
//!   default [`DEFAULT_INGRESS_MAX_CONNECTIONS`].
//! - `idle-timeout`: seconds without a byte either way before the
//!   connection is closed, default [`DEFAULT_INGRESS_IDLE_TIMEOUT`].
//!
//! In the file, `#` starts a comment (to the end of the line) and blank
//! lines are skipped; an empty file means no ingress.
//!
//! At start, [`check`] refuses: two entries on the same listen socket (or
//! one on the server's own HTTPS/HTTP listener), two entries with the same
//! name, and loops (an upstream that is an ingress's or the server's own
//! listener).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use transport::Address;

use crate::defs::{
    DEFAULT_INGRESS_IDLE_TIMEOUT, DEFAULT_INGRESS_MAX_CONNECTIONS, MAX_INGRESS_FILE,
    MAX_INGRESS_NAME,
};

/// A wrong entry or set of entries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The entry does not parse.
    #[error("{entry:?}: {reason}")]
    Malformed {
        /// The entry as given.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A line of the file is wrong.
    #[error("{path}, line {line}: {error}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        error: Box<SpecError>,
    },
    /// The file cannot be read.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Two entries (or an entry and the server) conflict.
    #[error("{0}")]
    Conflict(String),
}

/// One ingress: TLS on `listen`, plaintext to `upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressSpec {
    /// Shown in `/health` and the logs.
    pub name: String,
    /// Where TLS is accepted.
    pub listen: Address,
    /// Where the plaintext goes (loopback or a Unix socket).
    pub upstream: Address,
    /// Clients served at once.
    pub max_connections: usize,
    /// Closes a connection when no byte moved either way for this long.
    pub idle_timeout: Duration,
}

impl FromStr for IngressSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        let entry = text.trim();
        let bad = |reason: String| SpecError::Malformed {
            entry: entry.to_string(),
            reason,
        };
        let mut parts = entry.split(',').map(str::trim);
        let pair = parts.next().unwrap_or_default();
        let Some((listen, upstream)) = pair.split_once('=') else {
            return Err(bad(
                "expected LISTEN=UPSTREAM[,name=NAME][,max-connections=N][,idle-timeout=SECS]"
                    .into(),
            ));
        };
        let (listen_text, upstream_text) = (listen.trim(), upstream.trim());
        let listen = parse_address(listen_text).map_err(|e| bad(format!("LISTEN: {e}")))?;
        let upstream = parse_address(upstream_text).map_err(|e| bad(format!("UPSTREAM: {e}")))?;
        check_upstream(&upstream).map_err(|e| bad(format!("UPSTREAM {upstream_text}: {e}")))?;
        let mut spec = IngressSpec {
            name: listen_text.to_string(),
            listen,
            upstream,
            max_connections: DEFAULT_INGRESS_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_INGRESS_IDLE_TIMEOUT,
        };
        for option in parts {
            let Some((key, value)) = option.split_once('=') else {
                return Err(bad(format!("option {option:?} is not KEY=VALUE")));
            };
            let value = value.trim();
            match key.trim() {
                "name" => {
                    check_name(value).map_err(|e| bad(format!("name {value:?}: {e}")))?;
                    spec.name = value.to_string();
                }
                "max-connections" => {
                    spec.max_connections = positive(value)
                        .map_err(|e| bad(format!("max-connections {value:?}: {e}")))?;
                }
                "idle-timeout" => {
                    let secs =
                        positive(value).map_err(|e| bad(format!("idle-timeout {value:?}: {e}")))?;
                    spec.idle_timeout = Duration::from_secs(secs as u64);
                }
                other => {
                    return Err(bad(format!(
                        "unknown option {other:?} (name, max-connections, idle-timeout)"
                    )));
                }
            }
        }
        Ok(spec)
    }
}

/// Reads the entries of an ingress file; a missing file means none (logged
/// at info), any other read error is an error.
pub fn read_file(path: &Path) -> Result<Vec<IngressSpec>, SpecError> {
    let shown = path.display().to_string();
    let file_error = |reason: String| SpecError::File {
        path: shown.clone(),
        reason,
    };
    let bytes = match ra_verify_core::files::read_limited(path, MAX_INGRESS_FILE) {
        Ok(bytes) => bytes,
        Err(ra_verify_core::files::ReadError::Io(error))
            if error.kind() == std::io::ErrorKind::NotFound =>
        {
            tracing::info!(file = %shown, "no TLS ingress file: no ingress from it");
            return Ok(Vec::new());
        }
        Err(error) => return Err(file_error(error.to_string())),
    };
    let text = String::from_utf8(bytes).map_err(|_| file_error("not UTF-8 text".into()))?;
    parse_lines(&text).map_err(|(line, error)| SpecError::Line {
        path: shown.clone(),
        line,
        error: Box::new(error),
    })
}

/// Parses one entry per line; `#` starts a comment, blank lines are
/// skipped. The error carries the 1-based line number.
pub fn parse_lines(text: &str) -> Result<Vec<IngressSpec>, (usize, SpecError)> {
    let mut specs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        specs.push(line.parse().map_err(|error| (index + 1, error))?);
    }
    Ok(specs)
}

/// Refuses duplicate listen sockets and names, and loops, among `specs`
/// and against the server's own listeners `own`.
pub fn check(specs: &[IngressSpec], own: &[(&str, &Address)]) -> Result<(), SpecError> {
    for (i, spec) in specs.iter().enumerate() {
        for (what, address) in own {
            if super::same_socket(&spec.listen, address) {
                return Err(SpecError::Conflict(format!(
                    "TLS ingress {:?}: LISTEN {} is the server's {what} listener {address}",
                    spec.name, spec.listen
                )));
            }
            if super::same_socket(&spec.upstream, address) {
                return Err(SpecError::Conflict(format!(
                    "TLS ingress {:?}: UPSTREAM {} is the server's own {what} listener (a loop)",
                    spec.name, spec.upstream
                )));
            }
        }
        for (j, other) in specs.iter().enumerate() {
            if super::same_socket(&spec.upstream, &other.listen) {
                let whose = if i == j {
                    "its own LISTEN".to_string()
                } else {
                    format!("the LISTEN of TLS ingress {:?}", other.name)
                };
                return Err(SpecError::Conflict(format!(
                    "TLS ingress {:?}: UPSTREAM {} is {whose} (a loop)",
                    spec.name, spec.upstream
                )));
            }
            if j <= i {
                continue;
            }
            if super::same_socket(&spec.listen, &other.listen) {
                return Err(SpecError::Conflict(format!(
                    "TLS ingresses {:?} and {:?} listen on the same address ({} and {})",
                    spec.name, other.name, spec.listen, other.listen
                )));
            }
            if spec.name == other.name {
                return Err(SpecError::Conflict(format!(
                    "two TLS ingresses are named {:?}",
                    spec.name
                )));
            }
        }
    }
    Ok(())
}

/// `tcp:HOST:PORT`, `unix:PATH`, `vsock:CID:PORT`, or plain `HOST:PORT`.
fn parse_address(text: &str) -> Result<Address, String> {
    text.parse()
        .or_else(|_| Address::from_ip_pair(text))
        .map_err(|e: transport::ParseAddressError| e.to_string())
}

/// The upstream must stay in the enclave: loopback TCP or a Unix socket.
fn check_upstream(upstream: &Address) -> Result<(), String> {
    match upstream {
        Address::Unix(_) => Ok(()),
        Address::Tcp { port: 0, .. } => Err("port 0 is not a place to connect to".into()),
        Address::Tcp { host, .. } if is_loopback_name(host) => Ok(()),
        _ => Err(
            "must be on loopback in the enclave (127.0.0.1:PORT, localhost:PORT, [::1]:PORT or \
             unix:PATH): anywhere else the plaintext would leave the enclave"
                .into(),
        ),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_INGRESS_NAME {
        return Err(format!("must be 1 to {MAX_INGRESS_NAME} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err("only A-Z a-z 0-9 . _ - are allowed".into());
    }
    Ok(())
}

fn positive(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) if n > 1_000_000 => Err("must be at most 1000000".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `0.0.0.0`, `::` or empty: every address of the host.
pub fn is_wildcard(host: &str) -> bool {
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
        || host.is_empty()
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether two host strings can name the same local address.
pub fn same_host(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || is_wildcard(a)
        || is_wildcard(b)
        || ((a.eq_ignore_ascii_case("localhost") || b.eq_ignore_ascii_case("localhost"))
            && is_loopback_name(a)
            && is_loopback_name(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> IngressSpec {
        text.parse().unwrap()
    }

    #[test]
    fn entries_parse_with_their_options_and_defaults() {
        let plain = spec("0.0.0.0:10443=127.0.0.1:10070");
        assert_eq!(plain.listen.to_string(), "tcp:0.0.0.0:10443");
        assert_eq!(plain.upstream.to_string(), "tcp:127.0.0.1:10070");
        assert_eq!(plain.name, "0.0.0.0:10443");
        assert_eq!(plain.max_connections, DEFAULT_INGRESS_MAX_CONNECTIONS);
        assert_eq!(plain.idle_timeout, DEFAULT_INGRESS_IDLE_TIMEOUT);

        let full = spec(
            " tcp:127.0.0.1:9443 = localhost:8000 , name=inference_server, max-connections=8 ,idle-timeout=30 ",
        );
        assert_eq!(full.name, "inference_server");
        assert_eq!(full.listen.to_string(), "tcp:127.0.0.1:9443");
        assert_eq!(full.upstream.to_string(), "tcp:localhost:8000");
        assert_eq!(full.max_connections, 8);
        assert_eq!(full.idle_timeout, Duration::from_secs(30));

        let unix = spec("unix:/run/app-tls.sock=unix:/run/app.sock");
        assert_eq!(unix.upstream.to_string(), "unix:/run/app.sock");
        // Without a name, the name is LISTEN as given.
        assert_eq!(unix.name, "unix:/run/app-tls.sock");
        assert_eq!(spec("[::]:1=[::1]:2").upstream.to_string(), "tcp:[::1]:2");
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        for (text, says) in [
            ("127.0.0.1:1", "LISTEN=UPSTREAM"),
            ("nowhere=127.0.0.1:1", "LISTEN"),
            ("127.0.0.1:1=nowhere", "UPSTREAM"),
            ("127.0.0.1:1=10.0.0.5:80", "loopback"),
            ("127.0.0.1:1=example.com:80", "loopback"),
            ("127.0.0.1:1=vsock:3:8000", "loopback"),
            ("127.0.0.1:1=127.0.0.1:0", "port 0"),
            ("127.0.0.1:1=127.0.0.1:2,name=", "name"),
            ("127.0.0.1:1=127.0.0.1:2,name=a b", "name"),
            ("127.0.0.1:1=127.0.0.1:2,name", "KEY=VALUE"),
            ("127.0.0.1:1=127.0.0.1:2,colour=red", "unknown option"),
            ("127.0.0.1:1=127.0.0.1:2,max-connections=0", "at least 1"),
            ("127.0.0.1:1=127.0.0.1:2,idle-timeout=soon", "idle-timeout"),
        ] {
            let error = text.parse::<IngressSpec>().unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn files_have_comments_blank_lines_and_line_numbers() {
        let text = "# apps\n\n0.0.0.0:10443=127.0.0.1:10070,name=inference # the LLM\n   \n0.0.0.0:10444=127.0.0.1:10071,name=fp\n";
        let specs = parse_lines(text).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "inference");
        assert_eq!(specs[1].name, "fp");
        assert!(parse_lines("# nothing\n\n").unwrap().is_empty());
        let (line, error) = parse_lines("# x\n0.0.0.0:1=127.0.0.1:2\nbroken\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(error.to_string().contains("broken"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        assert!(read_file(&dir.path().join("absent")).unwrap().is_empty());
        let file = dir.path().join("tls-ingress");
        std::fs::write(&file, "").unwrap();
        assert!(read_file(&file).unwrap().is_empty());
        std::fs::write(&file, "0.0.0.0:1=127.0.0.1:2\n0.0.0.0:3=8.8.8.8:53\n").unwrap();
        let error = read_file(&file).unwrap_err().to_string();
        assert!(
            error.contains("line 2") && error.contains("loopback"),
            "{error}"
        );
        // A directory is not a missing file.
        assert!(read_file(dir.path()).is_err());
    }

    #[test]
    fn duplicates_and_loops_are_refused() {
        let https: Address = "tcp:127.0.0.1:8443".parse().unwrap();
        let http: Address = "tcp:127.0.0.1:8080".parse().unwrap();
        let own = [("HTTPS", &https), ("HTTP", &http)];
        let ok = [
            spec("0.0.0.0:10443=127.0.0.1:10070,name=a"),
            spec("0.0.0.0:10444=127.0.0.1:10071,name=b"),
        ];
        check(&ok, &own).unwrap();
        for (specs, says) in [
            (vec!["127.0.0.1:9000=127.0.0.1:9000"], "its own LISTEN"),
            (vec!["0.0.0.0:9000=localhost:9000"], "its own LISTEN"),
            (
                vec!["0.0.0.0:9000=127.0.0.1:9001", "0.0.0.0:9001=127.0.0.1:80"],
                "the LISTEN of TLS ingress",
            ),
            (
                vec!["0.0.0.0:9000=127.0.0.1:1", "127.0.0.1:9000=127.0.0.1:2"],
                "same address",
            ),
            (
                vec![
                    "0.0.0.0:9000=127.0.0.1:1,name=x",
                    "0.0.0.0:9001=127.0.0.1:2,name=x",
                ],
                "named",
            ),
            (vec!["0.0.0.0:8443=127.0.0.1:1"], "HTTPS listener"),
            (
                vec!["0.0.0.0:9000=127.0.0.1:8080"],
                "HTTP listener (a loop)",
            ),
        ] {
            let parsed: Vec<IngressSpec> = specs.iter().map(|s| spec(s)).collect();
            let error = check(&parsed, &own).unwrap_err().to_string();
            assert!(error.contains(says), "{specs:?}: {error}");
        }
        // Port 0 is never a duplicate: the kernel picks distinct ports.
        check(
            &[
                spec("127.0.0.1:0=127.0.0.1:1,name=a"),
                spec("127.0.0.1:0=127.0.0.1:2,name=b"),
            ],
            &own,
        )
        .unwrap();
        // Different loopback addresses are different sockets.
        check(&[spec("127.0.0.2:9000=127.0.0.1:9000")], &own).unwrap();
    }
}
