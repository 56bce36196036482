//! The egress policy of `vsock-to-ip-transparent`: which destinations the
//! enclave may reach. Deny by default.
//!
//! A YAML file, validated once at start-up into typed rules:
//!
//! ```yaml
//! allow:
//!   - cidr: 203.0.113.0/24        # an IPv4 or IPv6 network
//!     ports: [443, 8000-8099]     # single ports and ranges; omitted = any port
//!   - host: s3.eu-west-1.amazonaws.com   # resolved, its TTL respected
//!     ports: [443]
//! resolver: 127.0.0.53:53         # optional; default: first nameserver of /etc/resolv.conf
//! min_ttl: 5                      # optional: seconds a resolved name is kept at least
//! ```
//!
//! `allow: all` lets everything out, and has to be written on purpose; an
//! empty file or an empty list denies everything.
//!
//! Loopback, unspecified, link-local (among them the cloud metadata service
//! 169.254.169.254), IPv6 unique local `fc00::/7` (among them the IPv6
//! metadata service `fd00:ec2::254`), multicast and broadcast destinations
//! are never allowed by `allow: all` nor by a `host` rule (a name cannot make
//! the proxy reach the host's own services or its private network); only a
//! `cidr` rule that contains the address allows them.
//!
//! A host rule's addresses are looked up at the first connection, kept for
//! the answer's TTL (clamped to `min_ttl` and one hour), and looked up again
//! once it has run out. A destination that is not among them triggers one
//! early look-up if the last one is older than `min_ttl`, since the enclave
//! may hold a fresher answer than ours.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use cli_support::{ReadLimitedError, read_limited_to_string};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::defs::{POLICY_MAX_FILE, POLICY_MAX_TTL, POLICY_MIN_TTL, POLICY_NEGATIVE_TTL};
use crate::dns_wire;
use crate::resolver::{self, ResolverError};

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Reading the file failed.
    #[error("cannot read policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`POLICY_MAX_FILE`].
    #[error("policy {0} is larger than {POLICY_MAX_FILE} bytes")]
    TooLarge(String),
    /// The path is a directory, FIFO, socket or device (`/dev/zero`), not a
    /// regular file.
    #[error("policy {path} is not a regular file but {kind}")]
    NotRegularFile {
        /// The path.
        path: String,
        /// What it is instead ("a FIFO", "a character device", ...).
        kind: &'static str,
    },
    /// Not valid YAML of the expected shape.
    #[error("invalid policy: {0}")]
    Syntax(#[from] serde_yaml_ng::Error),
    /// A value that does not mean anything.
    #[error("invalid policy: {0}")]
    Invalid(String),
    /// Host rules need a resolver and none could be found.
    #[error("policy has host rules but no resolver: {0}")]
    Resolver(#[from] ResolverError),
}

/// Whether a destination may be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Connect.
    Allow,
    /// Close the connection.
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    allow: Option<RawAllow>,
    #[serde(default)]
    resolver: Option<String>,
    #[serde(default)]
    min_ttl: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawAllow {
    Keyword(String),
    Rules(Vec<RawRule>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    cidr: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    ports: Option<Vec<RawPorts>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPorts {
    One(u16),
    Range(String),
}

/// An IP network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` (or a bare address, meaning one host).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let bad = |why: &str| PolicyError::Invalid(format!("cidr {text:?}: {why}"));
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad(&format!("prefix length must be 0 to {max}")))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` lies in the network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Ports a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ports {
    Any,
    Ranges(Vec<(u16, u16)>),
}

impl Ports {
    fn contains(&self, port: u16) -> bool {
        match self {
            Ports::Any => true,
            Ports::Ranges(ranges) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port)),
        }
    }
}

#[derive(Debug)]
enum Target {
    Cidr(Cidr),
    Host {
        name: String,
        cache: Mutex<Resolved>,
    },
}

/// The current addresses of a host rule.
#[derive(Debug, Default)]
struct Resolved {
    addrs: Vec<IpAddr>,
    fetched: Option<Instant>,
    expires: Option<Instant>,
}

#[derive(Debug)]
struct Rule {
    target: Target,
    ports: Ports,
}

/// A validated egress policy.
#[derive(Debug)]
pub struct Policy {
    allow_all: bool,
    rules: Vec<Rule>,
    resolver: Option<SocketAddr>,
    min_ttl: Duration,
}

impl Policy {
    /// Denies everything.
    pub fn deny_all() -> Self {
        Self {
            allow_all: false,
            rules: Vec::new(),
            resolver: None,
            min_ttl: POLICY_MIN_TTL,
        }
    }

    /// Allows everything but the special addresses (see the module docs).
    pub fn allow_all() -> Self {
        Self {
            allow_all: true,
            ..Self::deny_all()
        }
    }

    /// Reads and validates a policy file: a regular file of at most
    /// [`POLICY_MAX_FILE`] bytes.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let shown = path.display().to_string();
        let text = read_limited_to_string(path, POLICY_MAX_FILE).map_err(|err| match err {
            ReadLimitedError::Io { source, .. } => PolicyError::Read {
                path: shown,
                source,
            },
            ReadLimitedError::NotRegularFile { kind, .. } => {
                PolicyError::NotRegularFile { path: shown, kind }
            }
            ReadLimitedError::TooLarge { .. } => PolicyError::TooLarge(shown),
        })?;
        Self::from_yaml(&text)
    }

    /// Validates a policy given as YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        let raw: Option<RawPolicy> = serde_yaml_ng::from_str(text)?;
        let raw = raw.unwrap_or(RawPolicy {
            allow: None,
            resolver: None,
            min_ttl: None,
        });
        let min_ttl = raw
            .min_ttl
            .map_or(POLICY_MIN_TTL, Duration::from_secs)
            .min(POLICY_MAX_TTL);
        let (allow_all, rules) = match raw.allow {
            None => (false, Vec::new()),
            Some(RawAllow::Keyword(word)) if word == "all" => (true, Vec::new()),
            Some(RawAllow::Keyword(word)) => {
                return Err(PolicyError::Invalid(format!(
                    "allow: {word:?} is neither \"all\" nor a list of rules"
                )));
            }
            Some(RawAllow::Rules(rules)) => (
                false,
                rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, rule)| validate_rule(rule).map_err(|err| in_rule(i, err)))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let has_hosts = rules
            .iter()
            .any(|rule| matches!(rule.target, Target::Host { .. }));
        let resolver = match raw.resolver {
            Some(text) => Some(parse_resolver(&text)?),
            None if has_hosts => Some(resolver::system_resolver()?),
            None => None,
        };
        Ok(Self {
            allow_all,
            rules,
            resolver,
            min_ttl,
        })
    }

    /// A one-line description for the start-up log.
    pub fn summary(&self) -> String {
        if self.allow_all {
            "allow: all (special addresses excepted)".to_owned()
        } else if self.rules.is_empty() {
            "deny everything (no allow rule)".to_owned()
        } else {
            format!("{} allow rule(s), everything else denied", self.rules.len())
        }
    }

    /// Decides whether `dst` may be reached.
    pub async fn check(&self, dst: SocketAddr) -> Decision {
        let ip = dst.ip().to_canonical();
        let special = is_special(ip);
        if self.allow_all && !special {
            return Decision::Allow;
        }
        for rule in &self.rules {
            if !rule.ports.contains(dst.port()) {
                continue;
            }
            let matched = match &rule.target {
                Target::Cidr(cidr) => cidr.contains(ip),
                Target::Host { .. } if special => false,
                Target::Host { name, cache } => self.host_has(name, cache, ip).await,
            };
            if matched {
                return Decision::Allow;
            }
        }
        Decision::Deny
    }

    async fn host_has(&self, name: &str, cache: &Mutex<Resolved>, ip: IpAddr) -> bool {
        let Some(server) = self.resolver else {
            return false;
        };
        // One look-up at a time per name; the others wait for its answer.
        let mut resolved = cache.lock().await;
        let now = Instant::now();
        let expired = resolved.expires.is_none_or(|at| at <= now);
        let stale_enough = resolved
            .fetched
            .is_none_or(|at| now.duration_since(at) >= self.min_ttl);
        let known = resolved.addrs.contains(&ip);
        if expired || (!known && stale_enough) {
            self.refresh(server, name, &mut resolved).await;
        }
        resolved.addrs.contains(&ip)
    }

    async fn refresh(&self, server: SocketAddr, name: &str, resolved: &mut Resolved) {
        let now = Instant::now();
        resolved.fetched = Some(now);
        match resolver::lookup(server, name).await {
            Ok(found) => {
                let ttl = found
                    .ttl
                    .unwrap_or(POLICY_NEGATIVE_TTL)
                    .clamp(self.min_ttl, POLICY_MAX_TTL.max(self.min_ttl));
                tracing::debug!(host = name, addrs = ?found.addrs, ?ttl, "resolved policy host");
                resolved.addrs = found.addrs;
                resolved.expires = Some(now + ttl);
            }
            Err(err) => {
                // Keep nothing we cannot vouch for: a failed look-up denies.
                tracing::warn!(host = name, %err, "cannot resolve policy host; denying it for now");
                resolved.addrs.clear();
                resolved.expires = Some(now + POLICY_NEGATIVE_TTL.max(self.min_ttl));
            }
        }
    }
}

fn in_rule(index: usize, err: PolicyError) -> PolicyError {
    match err {
        PolicyError::Invalid(why) => {
            PolicyError::Invalid(format!("allow rule {}: {why}", index + 1))
        }
        other => other,
    }
}

fn validate_rule(raw: RawRule) -> Result<Rule, PolicyError> {
    let target = match (raw.cidr, raw.host) {
        (Some(cidr), None) => Target::Cidr(Cidr::parse(&cidr)?),
        (None, Some(host)) => {
            dns_wire::check_name(&host)
                .map_err(|_| PolicyError::Invalid(format!("host {host:?} is not a host name")))?;
            if host.parse::<IpAddr>().is_ok() {
                return Err(PolicyError::Invalid(format!(
                    "host {host:?} is an address: write it as a cidr"
                )));
            }
            Target::Host {
                name: host.to_ascii_lowercase(),
                cache: Mutex::new(Resolved::default()),
            }
        }
        (Some(_), Some(_)) => {
            return Err(PolicyError::Invalid(
                "give either cidr or host, not both".to_owned(),
            ));
        }
        (None, None) => return Err(PolicyError::Invalid("needs a cidr or a host".to_owned())),
    };
    let ports = match raw.ports {
        None => Ports::Any,
        Some(list) if list.is_empty() => {
            return Err(PolicyError::Invalid(
                "ports: [] allows nothing; omit ports to allow any port".to_owned(),
            ));
        }
        Some(list) => Ports::Ranges(list.iter().map(parse_ports).collect::<Result<_, _>>()?),
    };
    Ok(Rule { target, ports })
}

fn parse_ports(raw: &RawPorts) -> Result<(u16, u16), PolicyError> {
    let (lo, hi) = match raw {
        RawPorts::One(port) => (*port, *port),
        RawPorts::Range(text) => {
            let bad = || PolicyError::Invalid(format!("ports: {text:?} is not PORT or LOW-HIGH"));
            let (lo, hi) = text.split_once('-').unwrap_or((text, text));
            (
                lo.trim().parse().map_err(|_| bad())?,
                hi.trim().parse().map_err(|_| bad())?,
            )
        }
    };
    if lo == 0 || lo > hi {
        return Err(PolicyError::Invalid(format!(
            "ports: {lo}-{hi} is empty or includes port 0"
        )));
    }
    Ok((lo, hi))
}

fn parse_resolver(text: &str) -> Result<SocketAddr, PolicyError> {
    text.parse::<SocketAddr>()
        .or_else(|_| {
            text.parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, crate::defs::DNS_PORT))
        })
        .map_err(|_| PolicyError::Invalid(format!("resolver {text:?} is not IP or IP:PORT")))
}

/// Addresses only an explicit `cidr` rule can allow: the host's own
/// services, link-local metadata endpoints (169.254.169.254 and, in
/// `fc00::/7`, `fd00:ec2::254`) and addresses that are not one destination.
fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
                || v6.is_unique_local()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dst(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn load_reads_regular_files_up_to_the_limit_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        let at_limit = format!("allow: all\n{}", "#".repeat(POLICY_MAX_FILE as usize - 11));
        std::fs::write(&path, &at_limit).unwrap();
        assert!(Policy::load(&path).is_ok());
        std::fs::write(&path, at_limit + "#").unwrap();
        let err = Policy::load(&path).unwrap_err();
        assert!(matches!(err, PolicyError::TooLarge(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "policy {} is larger than {POLICY_MAX_FILE} bytes",
                path.display()
            )
        );
        let err = Policy::load(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "policy /dev/zero is not a regular file but a character device"
        );
        let err = Policy::load(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, PolicyError::Read { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn deny_by_default() {
        for text in ["", "allow: []", "allow:", "resolver: 127.0.0.1:53"] {
            let policy = Policy::from_yaml(text).unwrap();
            assert_eq!(
                policy.check(dst("192.0.2.1:443")).await,
                Decision::Deny,
                "{text:?}"
            );
        }
    }

    #[tokio::test]
    async fn allow_all_spares_special_addresses() {
        let policy = Policy::from_yaml("allow: all").unwrap();
        assert_eq!(policy.check(dst("192.0.2.1:443")).await, Decision::Allow);
        assert_eq!(
            policy.check(dst("[2001:db8::1]:443")).await,
            Decision::Allow
        );
        for special in [
            "127.0.0.1:22",
            "0.0.0.0:80",
            "169.254.169.254:80",
            "[::1]:22",
            "[::ffff:127.0.0.1]:22",
            "[fe80::1]:80",
            "224.0.0.1:80",
            "[fd00:ec2::254]:80",
            "[fc00::1]:443",
            "[fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:443",
        ] {
            assert_eq!(
                policy.check(dst(special)).await,
                Decision::Deny,
                "{special}"
            );
        }
    }

    #[tokio::test]
    async fn unique_local_ipv6_needs_an_explicit_cidr() {
        // Just outside fc00::/7 on either side: ordinary addresses.
        let all = Policy::from_yaml("allow: all").unwrap();
        for ordinary in ["[fbff:ffff::1]:443", "[fe00::1]:443"] {
            assert_eq!(
                all.check(dst(ordinary)).await,
                Decision::Allow,
                "{ordinary}"
            );
        }
        // A cidr rule that contains the address allows it, on its ports only.
        let metadata =
            Policy::from_yaml("allow:\n  - cidr: fd00:ec2::254\n    ports: [80]\n").unwrap();
        assert_eq!(
            metadata.check(dst("[fd00:ec2::254]:80")).await,
            Decision::Allow
        );
        assert_eq!(
            metadata.check(dst("[fd00:ec2::254]:443")).await,
            Decision::Deny
        );
        assert_eq!(
            metadata.check(dst("[fd00:ec2::253]:80")).await,
            Decision::Deny
        );
        let ula = Policy::from_yaml("allow:\n  - cidr: fc00::/7\n").unwrap();
        assert_eq!(ula.check(dst("[fd12:3456::1]:22")).await, Decision::Allow);
        assert_eq!(ula.check(dst("[2001:db8::1]:22")).await, Decision::Deny);
    }

    #[tokio::test]
    async fn cidr_and_port_rules() {
        let policy = Policy::from_yaml(
            "allow:\n  - cidr: 192.0.2.0/24\n    ports: [443, \"8000-8099\"]\n  - cidr: 2001:db8::/32\n  - cidr: 127.0.0.1\n    ports: [5432]\n",
        )
        .unwrap();
        for (to, want) in [
            ("192.0.2.9:443", Decision::Allow),
            ("192.0.2.9:8050", Decision::Allow),
            ("192.0.2.9:8100", Decision::Deny),
            ("192.0.3.9:443", Decision::Deny),
            ("[2001:db8:1::5]:1", Decision::Allow),
            ("[2001:db9::5]:1", Decision::Deny),
            ("127.0.0.1:5432", Decision::Allow),
            ("127.0.0.1:22", Decision::Deny),
            ("[::ffff:192.0.2.1]:443", Decision::Allow),
        ] {
            assert_eq!(policy.check(dst(to)).await, want, "{to}");
        }
    }

    #[tokio::test]
    async fn the_shipped_example_policy_is_valid() {
        let policy = Policy::from_yaml(include_str!("../config/egress.example.yaml")).unwrap();
        assert_eq!(policy.check(dst("203.0.113.7:8050")).await, Decision::Allow);
        assert_eq!(
            policy.check(dst("[2001:db8::10]:22")).await,
            Decision::Allow
        );
        assert_eq!(policy.check(dst("203.0.113.7:22")).await, Decision::Deny);
    }

    #[test]
    fn cidr_edges() {
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        assert!(
            Cidr::parse("::/0")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
    }

    #[test]
    fn invalid_policies_say_what_is_wrong() {
        for (text, needle) in [
            ("allow: everything", "neither \"all\""),
            ("allow:\n  - ports: [1]", "rule 1: needs a cidr or a host"),
            ("allow:\n  - cidr: 10.0.0.0/8\n    host: a.b", "not both"),
            ("allow:\n  - cidr: 10.0.0.0/8\n    ports: []", "omit ports"),
            ("allow:\n  - cidr: 10.0.0.0/8\n    ports: [\"9-1\"]", "9-1"),
            ("allow:\n  - cidr: 10.0.0.0/8\n    ports: [0]", "port 0"),
            (
                "allow:\n  - cidr: 10.0.0.0/8\n    ports: [70000]",
                "invalid",
            ),
            ("allow:\n  - host: 192.0.2.1", "write it as a cidr"),
            ("allow:\n  - host: \"bad name\"", "not a host name"),
            ("alow: all", "unknown field"),
            ("resolver: nowhere", "resolver"),
        ] {
            let err = Policy::from_yaml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
