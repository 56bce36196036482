//! An application's manifest (`reference_apps/<app>/app.toml`): what
//! `rbuilds.sh --app DIR` builds into the image's customer ramdisk, and what
//! `run_eif_image` publishes and sizes. See `docs/apps.md` for the format.
//!
//! The manifest is read strictly: unknown keys, paths that leave the app's
//! directory or the image's tree, ports out of range or taken by the
//! framework, missing files and services that would run as root are errors
//! naming the problem, so a typo never builds an image silently different
//! from what its author meant. [`Manifest::shell`] turns a checked manifest
//! into shell assignments that `rbuilds/lib/app.sh` evaluates;
//! [`ingress_service`] writes the enclave half of a published port.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// File name of the manifest in an application's directory.
pub const MANIFEST_FILE: &str = "app.toml";
/// Memory a VM gets when the manifest says nothing (MiB; RBUILDS_MEMORY_MIB's default).
pub const DEFAULT_MEMORY_MIB: u32 = 512;
/// Least and most memory a manifest may ask for (MiB).
pub const MEMORY_MIB_RANGE: std::ops::RangeInclusive<u32> = 128..=65_536;
/// Host ports an app may publish on (no privileged ports on the host).
pub const HOST_PORT_RANGE: std::ops::RangeInclusive<u16> = 1024..=65_535;
/// Ports the framework uses in the enclave (TCP on loopback or vsock):
/// DNS, ra-web-srv's HTTP redirect and HTTPS, egress, DNS over vsock, NATS,
/// the heartbeat, init control, the pipeline.
pub const RESERVED_ENCLAVE_PORTS: [u16; 9] = [53, 8080, 8443, 8888, 8053, 4222, 9000, 9001, 53000];
/// Host ports the framework's runner publishes or listens on.
pub const RESERVED_HOST_PORTS: [u16; 1] = [8443];
/// Services of the framework's image an app must not replace.
pub const RESERVED_SERVICES: [&str; 9] = [
    "nats-server",
    "fs-monitor",
    "ra-web-srv",
    "pipeline",
    "net",
    "egress",
    "dns",
    "ingress",
    "app",
];
/// Where an app may not put files: the framework's own trees, what init
/// mounts or makes at start, and service definitions (those go through
/// `[[service]]`).
pub const RESERVED_PREFIXES: [&str; 9] = [
    "/dev", "/proc", "/sys", "/run", "/tmp", "/log", "/service", "/bin", "/sbin",
];
/// Files of the framework under `/etc` an app may not replace.
pub const RESERVED_FILES: [&str; 6] = [
    "/etc/passwd",
    "/etc/group",
    "/etc/init.yaml",
    "/etc/initctl.yaml",
    "/etc/enclave-profile",
    "/etc/nats-server.conf",
];
/// Longest app name.
pub const MAX_NAME_LEN: usize = 40;
/// Most entries of each list in a manifest.
pub const MAX_ENTRIES: usize = 64;

/// What is wrong with a manifest.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The manifest (or a file it names) could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Syntax {
        /// The manifest.
        path: PathBuf,
        /// The parser's message (with the line).
        message: String,
    },
    /// A value that parses but is not allowed.
    #[error("{manifest}: {field}: {reason}")]
    Invalid {
        /// The manifest.
        manifest: PathBuf,
        /// Which entry (`file[2].dest`).
        field: String,
        /// Why.
        reason: String,
    },
    /// A service file the manifest names is not usable.
    #[error("{path}: {reason}")]
    Service {
        /// The service file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The `.eif.pcrs` file could not be updated.
    #[error("{path}: {reason}")]
    Pcrs {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The manifest as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    memory_mib: Option<u32>,
    #[serde(default)]
    build: RawBuild,
    #[serde(default)]
    binary: Vec<RawBinary>,
    #[serde(default)]
    file: Vec<RawFile>,
    #[serde(default)]
    service: Vec<RawService>,
    #[serde(default)]
    port: Vec<RawPort>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    #[serde(default)]
    rustflags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBinary {
    package: String,
    bin: String,
    dest: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    source: String,
    dest: String,
    #[serde(default)]
    executable: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    host: u16,
    enclave: u16,
    #[serde(default = "tls_by_default")]
    tls: bool,
}

/// A published port is served over the attested TLS ingress unless the
/// manifest says `tls = false`: plain HTTP is the host's to read.
fn tls_by_default() -> bool {
    true
}

/// A checked manifest, with absolute source paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The app's name (recorded in the `.eif.pcrs` file).
    pub name: String,
    /// The app's directory (absolute).
    pub dir: PathBuf,
    /// Memory the VM needs, MiB (the default when the manifest says nothing).
    pub memory_mib: u32,
    /// Extra rustc flags for the app's static build.
    pub rustflags: Vec<String>,
    /// Binaries to build.
    pub binaries: Vec<Binary>,
    /// Files to copy into the image.
    pub files: Vec<FileEntry>,
    /// Init services of the app.
    pub services: Vec<ServiceEntry>,
    /// Ports published on the host.
    pub ports: Vec<Port>,
}

/// A binary built static from a cargo package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    /// The cargo package.
    pub package: String,
    /// Its binary target.
    pub bin: String,
    /// Absolute path in the image.
    pub dest: String,
}

/// A file of the app's directory copied into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Absolute path on the build host.
    pub source: PathBuf,
    /// Absolute path in the image.
    pub dest: String,
    /// Mode 0755 instead of 0644.
    pub executable: bool,
}

/// An init service file of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Absolute path on the build host.
    pub source: PathBuf,
    /// The service's name (the file name without `.service`).
    pub name: String,
}

/// A port published from the host's loopback to the enclave's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    /// On the host, 127.0.0.1.
    pub host: u16,
    /// The app's port in the enclave, 127.0.0.1.
    pub enclave: u16,
    /// Served over TLS that ends in the enclave, in ra-web-srv's ingress on
    /// 127.0.0.1:`host` there, with the attested key; plain otherwise.
    pub tls: bool,
}

impl Port {
    /// The enclave's TCP port the host reaches (the TLS ingress, or the app
    /// itself), which is also the vsock port that carries it.
    pub fn published(&self) -> u16 {
        if self.tls { self.host } else { self.enclave }
    }
}

impl Manifest {
    /// Reads and checks `DIR/app.toml`. With `passwd` (the image's
    /// `/etc/passwd`), every service's `User` must be a non-root user of it.
    pub fn load(dir: &Path, passwd: Option<&Path>) -> Result<Self, AppError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AppError::Read { path, source }
        };
        let dir = dir.canonicalize().map_err(read_err(dir))?;
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
        let users = match passwd {
            Some(p) => Some(parse_passwd(
                &std::fs::read_to_string(p).map_err(read_err(p))?,
            )),
            None => None,
        };
        Self::parse(&dir, &path, &text, users.as_deref())
    }

    /// Checks the manifest `text` of the app in `dir` (absolute); `path`
    /// names it in errors; `users` are the image's `(name, uid)`.
    pub fn parse(
        dir: &Path,
        path: &Path,
        text: &str,
        users: Option<&[(String, u32)]>,
    ) -> Result<Self, AppError> {
        let raw: RawManifest = toml::from_str(text).map_err(|err| AppError::Syntax {
            path: path.to_path_buf(),
            message: err.to_string().trim_end().to_string(),
        })?;
        let invalid = |field: String, reason: String| AppError::Invalid {
            manifest: path.to_path_buf(),
            field,
            reason,
        };
        check_name(&raw.name).map_err(|r| invalid("name".into(), r))?;
        let memory_mib = raw.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB);
        if !MEMORY_MIB_RANGE.contains(&memory_mib) {
            return Err(invalid(
                "memory_mib".into(),
                format!(
                    "{memory_mib} is outside {}..={} MiB",
                    MEMORY_MIB_RANGE.start(),
                    MEMORY_MIB_RANGE.end()
                ),
            ));
        }
        for (list, len) in [
            ("binary", raw.binary.len()),
            ("file", raw.file.len()),
            ("service", raw.service.len()),
            ("port", raw.port.len()),
            ("build.rustflags", raw.build.rustflags.len()),
        ] {
            if len > MAX_ENTRIES {
                return Err(invalid(
                    list.into(),
                    format!("{len} entries, at most {MAX_ENTRIES}"),
                ));
            }
        }
        for (i, flag) in raw.build.rustflags.iter().enumerate() {
            if flag.is_empty() || flag.chars().any(|c| c.is_control()) {
                return Err(invalid(
                    format!("build.rustflags[{i}]"),
                    "empty or holds a control character".into(),
                ));
            }
        }
        if raw.service.is_empty() {
            return Err(invalid(
                "service".into(),
                "no [[service]]: nothing of the app would run in the enclave".into(),
            ));
        }

        let mut dests = BTreeSet::new();
        let mut claim = |field: String, dest: &str| -> Result<(), AppError> {
            if dests.insert(dest.to_string()) {
                Ok(())
            } else {
                Err(invalid(
                    field,
                    format!("{dest} is the destination of another entry"),
                ))
            }
        };

        let mut binaries = Vec::new();
        for (i, b) in raw.binary.iter().enumerate() {
            check_word(&b.package).map_err(|r| invalid(format!("binary[{i}].package"), r))?;
            check_word(&b.bin).map_err(|r| invalid(format!("binary[{i}].bin"), r))?;
            let dest = b
                .dest
                .clone()
                .unwrap_or_else(|| format!("/usr/bin/{}", b.bin));
            check_dest(&dest).map_err(|r| invalid(format!("binary[{i}].dest"), r))?;
            claim(format!("binary[{i}].dest"), &dest)?;
            binaries.push(Binary {
                package: b.package.clone(),
                bin: b.bin.clone(),
                dest,
            });
        }

        let mut files = Vec::new();
        for (i, f) in raw.file.iter().enumerate() {
            let field = format!("file[{i}].source");
            let source = check_source(dir, &f.source).map_err(|r| invalid(field.clone(), r))?;
            if !source.is_file() {
                return Err(invalid(
                    field,
                    format!("{} is not a regular file", source.display()),
                ));
            }
            check_dest(&f.dest).map_err(|r| invalid(format!("file[{i}].dest"), r))?;
            claim(format!("file[{i}].dest"), &f.dest)?;
            files.push(FileEntry {
                source,
                dest: f.dest.clone(),
                executable: f.executable,
            });
        }

        let mut services = Vec::new();
        let mut names = BTreeSet::new();
        for (i, s) in raw.service.iter().enumerate() {
            let field = format!("service[{i}].file");
            let source = check_source(dir, &s.file).map_err(|r| invalid(field.clone(), r))?;
            let name = source
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".service"))
                .unwrap_or_default()
                .to_string();
            check_service_name(&name).map_err(|r| invalid(field.clone(), r))?;
            if !names.insert(name.clone()) {
                return Err(invalid(field, format!("service {name} is listed twice")));
            }
            let text = std::fs::read_to_string(&source).map_err(|source_err| AppError::Read {
                path: source.clone(),
                source: source_err,
            })?;
            check_service(&text, users).map_err(|reason| AppError::Service {
                path: source.clone(),
                reason,
            })?;
            services.push(ServiceEntry { source, name });
        }

        let mut ports = Vec::new();
        let mut hosts = BTreeSet::new();
        let mut enclaves = BTreeSet::new();
        for (i, p) in raw.port.iter().enumerate() {
            if !HOST_PORT_RANGE.contains(&p.host) || RESERVED_HOST_PORTS.contains(&p.host) {
                return Err(invalid(
                    format!("port[{i}].host"),
                    format!(
                        "{} is not allowed: {}..={} except {:?}",
                        p.host,
                        HOST_PORT_RANGE.start(),
                        HOST_PORT_RANGE.end(),
                        RESERVED_HOST_PORTS
                    ),
                ));
            }
            if p.enclave == 0 || RESERVED_ENCLAVE_PORTS.contains(&p.enclave) {
                return Err(invalid(
                    format!("port[{i}].enclave"),
                    format!(
                        "{} is not allowed: 1..=65535 except the framework's {:?}",
                        p.enclave, RESERVED_ENCLAVE_PORTS
                    ),
                ));
            }
            if p.tls && (p.host == p.enclave || RESERVED_ENCLAVE_PORTS.contains(&p.host)) {
                return Err(invalid(
                    format!("port[{i}].host"),
                    format!(
                        "{}: with tls the host port is also the enclave's TLS ingress port, so it must differ from the app's port and from the framework's {:?}",
                        p.host, RESERVED_ENCLAVE_PORTS
                    ),
                ));
            }
            if !hosts.insert(p.host) {
                return Err(invalid(
                    format!("port[{i}].host"),
                    format!("{} is published twice", p.host),
                ));
            }
            if !enclaves.insert(p.enclave) {
                return Err(invalid(
                    format!("port[{i}].enclave"),
                    format!("{} is published twice", p.enclave),
                ));
            }
            ports.push(Port {
                host: p.host,
                enclave: p.enclave,
                tls: p.tls,
            });
        }
        for (i, port) in ports.iter().enumerate() {
            let taken = ports
                .iter()
                .enumerate()
                .any(|(j, other)| j != i && port.tls && other.enclave == port.host);
            if taken {
                return Err(invalid(
                    format!("port[{i}].host"),
                    format!(
                        "{} is another port's app port in the enclave, so it cannot be this one's TLS ingress",
                        port.host
                    ),
                ));
            }
        }
        for port in &ports {
            let name = ingress_service_name(&raw.name, port.published());
            if names.contains(&name) {
                return Err(invalid(
                    "service".into(),
                    format!(
                        "{name} is the name of the generated forward of port {}",
                        port.published()
                    ),
                ));
            }
        }

        Ok(Self {
            name: raw.name,
            dir: dir.to_path_buf(),
            memory_mib,
            rustflags: raw.build.rustflags,
            binaries,
            files,
            services,
            ports,
        })
    }

    /// Shell assignments for `rbuilds/lib/app.sh` (every value in single
    /// quotes): scalars, and flat arrays of fixed-size records.
    pub fn shell(&self) -> String {
        let mut out = String::new();
        let scalar = |out: &mut String, key: &str, value: &str| {
            let _ = writeln!(out, "{key}={}", shell_quote(value));
        };
        let array = |out: &mut String, key: &str, values: Vec<String>| {
            let words: Vec<String> = values.iter().map(|v| shell_quote(v)).collect();
            let _ = writeln!(out, "{key}=({})", words.join(" "));
        };
        scalar(&mut out, "APP_NAME", &self.name);
        scalar(&mut out, "APP_DIR", &self.dir.to_string_lossy());
        scalar(&mut out, "APP_MEMORY_MIB", &self.memory_mib.to_string());
        array(&mut out, "APP_RUSTFLAGS", self.rustflags.clone());
        array(
            &mut out,
            "APP_BINARIES",
            self.binaries
                .iter()
                .flat_map(|b| [b.package.clone(), b.bin.clone(), b.dest.clone()])
                .collect(),
        );
        array(
            &mut out,
            "APP_FILES",
            self.files
                .iter()
                .flat_map(|f| {
                    [
                        f.source.to_string_lossy().into_owned(),
                        f.dest.clone(),
                        if f.executable { "0755" } else { "0644" }.to_string(),
                    ]
                })
                .collect(),
        );
        array(
            &mut out,
            "APP_SERVICES",
            self.services
                .iter()
                .flat_map(|s| [s.source.to_string_lossy().into_owned(), s.name.clone()])
                .collect(),
        );
        array(
            &mut out,
            "APP_PORTS",
            self.ports
                .iter()
                .flat_map(|p| {
                    [
                        p.host.to_string(),
                        p.published().to_string(),
                        if p.tls { "https" } else { "http" }.to_string(),
                    ]
                })
                .collect(),
        );
        out
    }

    /// The enclave halves of the published ports: `(service name, text)`.
    pub fn ingress_services(&self) -> Vec<(String, String)> {
        self.ports
            .iter()
            .map(|p| {
                (
                    ingress_service_name(&self.name, p.published()),
                    ingress_service(&self.name, p),
                )
            })
            .collect()
    }

    /// ra-web-srv's `tls-ingress` file for the TLS ports (ra-web-srv/README.md):
    /// `127.0.0.1:HOST=127.0.0.1:APP,name=NAME-HOST`; `None` without one.
    pub fn tls_ingress(&self) -> Option<String> {
        let lines: Vec<String> = self
            .ports
            .iter()
            .filter(|p| p.tls)
            .map(|p| {
                format!(
                    "127.0.0.1:{h}=127.0.0.1:{e},name={app}-{h}\n",
                    h = p.host,
                    e = p.enclave,
                    app = self.name
                )
            })
            .collect();
        (!lines.is_empty()).then(|| {
            format!(
                "# Generated by rbuilds from {}'s {MANIFEST_FILE}: TLS for the app ends here, in\n\
                 # ra-web-srv, with the key its /tls_doc/ document binds.\n{}",
                self.name,
                lines.concat()
            )
        })
    }
}

/// Name of the service that forwards vsock port `port` to the app's TCP port.
pub fn ingress_service_name(app: &str, port: u16) -> String {
    format!("{app}-ingress-{port}")
}

/// The init service that accepts on vsock port `port.published()` and
/// connects each stream to 127.0.0.1 on the same port (the TLS ingress, or
/// the app), as the framework's `ingress` does for ra-web-srv's 8443.
pub fn ingress_service(app: &str, port: &Port) -> String {
    let p = port.published();
    let what = if port.tls {
        format!(
            "ra-web-srv's TLS ingress on 127.0.0.1:{p} (to the app's {})",
            port.enclave
        )
    } else {
        format!("the app's 127.0.0.1:{p} (plain: the host reads it)")
    };
    format!(
        "# Generated by rbuilds from {app}'s {MANIFEST_FILE}: {what} published\n\
         # on vsock port {p}; the host's ip-to-vsock makes it 127.0.0.1:{host} there.\n\
         ExecStart = \"/usr/bin/vsock-to-ip -v any:{p} -i 127.0.0.1:{p} --shutdown-grace 5\"\n\
         Restart = \"always\"\n\
         RestartSec = 1\n\
         User = \"proxy\"\n",
        host = port.host
    )
}

/// Adds `"App": name` to the `.eif.pcrs` JSON `text` (ra-verify ignores
/// members it does not know).
pub fn record_in_pcrs(text: &str, name: &str) -> Result<String, String> {
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| "not a JSON object".to_string())?;
    object.insert("App".into(), serde_json::Value::String(name.into()));
    serde_json::to_string_pretty(&value)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}

/// Reads `/etc/passwd` lines into `(name, uid)`; malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            (!name.is_empty()).then(|| (name.to_string(), uid))
        })
        .collect()
}

/// Single-quotes `value` for a POSIX shell.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: 1 to {MAX_NAME_LEN} of a-z, 0-9 and '-', starting with a letter"
        ))
    }
}

/// A cargo package or binary name.
fn check_word(word: &str) -> Result<(), String> {
    if !word.is_empty()
        && word.len() <= 64
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !word.starts_with('-')
    {
        Ok(())
    } else {
        Err(format!("{word:?}: letters, digits, '-' and '_' only"))
    }
}

fn check_service_name(name: &str) -> Result<(), String> {
    check_word(name).map_err(|r| format!("service file name (NAME.service): {r}"))?;
    if RESERVED_SERVICES.contains(&name) {
        return Err(format!("{name} is a service of the framework"));
    }
    Ok(())
}

/// A relative path inside the app's directory, without `..`; the file
/// must exist. Returns it absolute.
fn check_source(dir: &Path, source: &str) -> Result<PathBuf, String> {
    let rel = Path::new(source);
    if source.is_empty() || source.chars().any(|c| c.is_control()) {
        return Err(format!("{source:?}: empty or holds a control character"));
    }
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "{source:?} must be a path relative to the app's directory, without '..'"
        ));
    }
    let path = dir.join(rel);
    match std::fs::metadata(&path) {
        Ok(_) => Ok(path),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// An absolute, normalised path in the image, outside the framework's
/// reserved places.
fn check_dest(dest: &str) -> Result<(), String> {
    if dest.chars().any(|c| c.is_control()) {
        return Err(format!("{dest:?} holds a control character"));
    }
    if !dest.starts_with('/') || dest.ends_with('/') {
        return Err(format!("{dest:?} must be an absolute path to a file"));
    }
    if dest[1..]
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "{dest:?} must be normalised (no '.', '..' or empty components)"
        ));
    }
    for prefix in RESERVED_PREFIXES {
        if dest == prefix || dest.starts_with(&format!("{prefix}/")) {
            return Err(format!(
                "{dest}: {prefix} belongs to the framework or to init"
            ));
        }
    }
    if RESERVED_FILES.contains(&dest) || dest.starts_with("/etc/pipeline/") {
        return Err(format!("{dest} is a file of the framework"));
    }
    Ok(())
}

/// An app service: TOML with an `ExecStart`, run as a named non-root user
/// (of the image's passwd when `users` is given).
fn check_service(text: &str, users: Option<&[(String, u32)]>) -> Result<(), String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    match table.get("ExecStart") {
        Some(toml::Value::String(s)) if !s.trim().is_empty() => {}
        _ => return Err("no ExecStart".into()),
    }
    let user = match table.get("User") {
        Some(toml::Value::String(user)) => user,
        Some(_) => return Err("User must be a user name".into()),
        None => {
            return Err(
                "no User: an app's service runs as its own non-root user (add it to rbuilds/image/etc/passwd)"
                    .into(),
            );
        }
    };
    if user == "root" || user == "0" {
        return Err("User is root: an app's service runs as its own non-root user".into());
    }
    if let Some(users) = users {
        match users.iter().find(|(name, _)| name == user) {
            None => {
                return Err(format!(
                    "User {user:?} is not in the image's /etc/passwd (rbuilds/image/etc/passwd)"
                ));
            }
            Some((_, 0)) => return Err(format!("User {user:?} has uid 0")),
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SERVICE: &str = "ExecStart = \"/usr/bin/srv\"\nUser = \"app\"\n";

    fn app_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("srv.service"), SERVICE).unwrap();
        std::fs::write(dir.path().join("data.txt"), "data").unwrap();
        dir
    }

    fn users() -> Vec<(String, u32)> {
        parse_passwd("root:x:0:0:root:/root:/bin/sh\napp:x:210:210:app:/nonexistent:/bin/false\n")
    }

    fn parse(dir: &Path, text: &str) -> Result<Manifest, AppError> {
        Manifest::parse(dir, &dir.join(MANIFEST_FILE), text, Some(&users()))
    }

    const GOOD: &str = r#"
name = "demo"
memory_mib = 1024
[build]
rustflags = ["--cfg", 'getrandom_backend="linux_getrandom"']
[[binary]]
package = "demo-server"
bin = "demo-server"
[[file]]
source = "data.txt"
dest = "/etc/demo/data.txt"
[[service]]
file = "srv.service"
[[port]]
host = 10443
enclave = 10070
"#;

    fn error(dir: &Path, text: &str) -> String {
        parse(dir, text).unwrap_err().to_string()
    }

    #[test]
    fn a_good_manifest_is_read_with_defaults() {
        let dir = app_dir();
        let m = parse(dir.path(), GOOD).unwrap();
        assert_eq!(m.name, "demo");
        assert_eq!(m.memory_mib, 1024);
        assert_eq!(m.binaries[0].dest, "/usr/bin/demo-server");
        assert_eq!(m.files[0].source, dir.path().join("data.txt"));
        assert_eq!(m.services[0].name, "srv");
        assert_eq!(
            m.ports,
            vec![Port {
                host: 10443,
                enclave: 10070,
                tls: true,
            }]
        );
        let minimal = parse(
            dir.path(),
            "name = \"x\"\n[[service]]\nfile = \"srv.service\"\n",
        )
        .unwrap();
        assert_eq!(minimal.memory_mib, DEFAULT_MEMORY_MIB);
        assert!(minimal.ports.is_empty() && minimal.binaries.is_empty());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = app_dir();
        assert!(error(dir.path(), &format!("{GOOD}\nmemory = 3\n")).contains("unknown field"));
        let typo = GOOD.replace("enclave = 10070", "enclave_port = 10070");
        assert!(error(dir.path(), &typo).contains("unknown field"));
        let typo = GOOD.replace("[[file]]", "[[files]]");
        assert!(error(dir.path(), &typo).contains("unknown field"));
    }

    #[test]
    fn path_traversal_and_reserved_destinations_are_refused() {
        let dir = app_dir();
        for (from, to) in [
            ("source = \"data.txt\"", "source = \"../data.txt\""),
            ("source = \"data.txt\"", "source = \"/etc/shadow\""),
            ("source = \"data.txt\"", "source = \"sub/../../x\""),
            ("file = \"srv.service\"", "file = \"../srv.service\""),
            (
                "dest = \"/etc/demo/data.txt\"",
                "dest = \"/etc/demo/../passwd\"",
            ),
            (
                "dest = \"/etc/demo/data.txt\"",
                "dest = \"etc/demo/data.txt\"",
            ),
            ("dest = \"/etc/demo/data.txt\"", "dest = \"/etc/passwd\""),
            (
                "dest = \"/etc/demo/data.txt\"",
                "dest = \"/service/x.service\"",
            ),
            ("dest = \"/etc/demo/data.txt\"", "dest = \"/bin/sh\""),
            ("dest = \"/etc/demo/data.txt\"", "dest = \"/etc//x\""),
            (
                "dest = \"/etc/demo/data.txt\"",
                "dest = \"/usr/bin/demo-server\"",
            ),
        ] {
            let text = GOOD.replace(from, to);
            assert_ne!(text, GOOD);
            let err = error(dir.path(), &text);
            assert!(
                err.contains("file[0]") || err.contains("service[0]"),
                "{to}: {err}"
            );
        }
    }

    #[test]
    fn missing_files_are_named() {
        let dir = app_dir();
        let err = error(
            dir.path(),
            &GOOD.replace("data.txt\"\ndest", "nothere.txt\"\ndest"),
        );
        assert!(err.contains("nothere.txt"), "{err}");
        let err = error(dir.path(), &GOOD.replace("srv.service", "gone.service"));
        assert!(err.contains("gone.service"), "{err}");
        std::fs::create_dir(dir.path().join("adir")).unwrap();
        let err = error(
            dir.path(),
            &GOOD.replace("data.txt\"\ndest", "adir\"\ndest"),
        );
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn ports_are_checked() {
        let dir = app_dir();
        for (port, field) in [
            ("host = 80\nenclave = 10070", "port[0].host"),
            ("host = 8443\nenclave = 10070", "port[0].host"),
            ("host = 10443\nenclave = 0", "port[0].enclave"),
            ("host = 10443\nenclave = 8080", "port[0].enclave"),
            ("host = 10443\nenclave = 53000", "port[0].enclave"),
            // TLS: the host port is also the enclave's ingress port.
            (
                "host = 10070\nenclave = 10070",
                "must differ from the app's port",
            ),
            ("host = 9001\nenclave = 10070", "TLS ingress port"),
        ] {
            let err = error(
                dir.path(),
                &GOOD.replace("host = 10443\nenclave = 10070", port),
            );
            assert!(err.contains(field), "{port}: {err}");
        }
        // Plain, the same port on both sides is fine.
        let plain = GOOD.replace(
            "host = 10443\nenclave = 10070",
            "host = 10070\nenclave = 10070\ntls = false",
        );
        let m = parse(dir.path(), &plain).unwrap();
        assert_eq!(m.ports[0].published(), 10070);
        assert!(m.tls_ingress().is_none());
        let err = error(
            dir.path(),
            &GOOD.replace("host = 10443\nenclave = 10070", "host = 70000\nenclave = 1"),
        );
        assert!(err.contains("70000") && err.contains("u16"), "{err}");
        let twice = format!("{GOOD}[[port]]\nhost = 10443\nenclave = 10071\n");
        assert!(error(dir.path(), &twice).contains("published twice"));
        let twice = format!("{GOOD}[[port]]\nhost = 10444\nenclave = 10070\n");
        assert!(error(dir.path(), &twice).contains("published twice"));
        // A TLS ingress port cannot be another entry's app port.
        let clash = format!("{GOOD}[[port]]\nhost = 10071\nenclave = 10443\ntls = false\n");
        assert!(error(dir.path(), &clash).contains("cannot be this one's TLS ingress"));
    }

    #[test]
    fn services_must_run_as_a_known_non_root_user() {
        let dir = app_dir();
        for (text, expect) in [
            ("ExecStart = \"/x\"\n", "no User"),
            ("ExecStart = \"/x\"\nUser = \"root\"\n", "root"),
            (
                "ExecStart = \"/x\"\nUser = \"nobody-here\"\n",
                "not in the image",
            ),
            ("User = \"app\"\n", "no ExecStart"),
            ("ExecStart = [\n", "TOML"),
        ] {
            std::fs::write(dir.path().join("srv.service"), text).unwrap();
            let err = error(dir.path(), GOOD);
            assert!(
                err.contains("srv.service") && err.to_lowercase().contains(&expect.to_lowercase())
                    || err.contains(expect),
                "{text}: {err}"
            );
        }
        let dir = app_dir();
        std::fs::write(dir.path().join("ingress.service"), SERVICE).unwrap();
        let err = error(dir.path(), &GOOD.replace("srv.service", "ingress.service"));
        assert!(err.contains("framework"), "{err}");
        let dup = format!("{GOOD}[[service]]\nfile = \"./srv.service\"\n");
        assert!(error(dir.path(), &dup).contains("twice"));
    }

    #[test]
    fn names_memory_and_flags_are_checked() {
        let dir = app_dir();
        for bad in ["\"\"", "\"Demo\"", "\"de mo\"", "\"-x\"", "\"a/b\""] {
            let err = error(dir.path(), &GOOD.replace("\"demo\"", bad));
            assert!(err.contains("name"), "{bad}: {err}");
        }
        assert!(error(dir.path(), &GOOD.replace("1024", "64")).contains("memory_mib"));
        assert!(
            error(
                dir.path(),
                &GOOD.replace("demo-server\"\nbin", "x y\"\nbin")
            )
            .contains("package")
        );
        let empty = GOOD.replace("[\"--cfg\"", "[\"\"");
        assert!(error(dir.path(), &empty).contains("rustflags"));
        let none = "name = \"x\"\n";
        assert!(error(dir.path(), none).contains("nothing of the app would run"));
    }

    #[test]
    fn shell_output_round_trips_through_bash() {
        let dir = app_dir();
        let mut m = parse(dir.path(), GOOD).unwrap();
        m.name = "it's".into();
        let script = format!(
            "{}printf '%s\\n' \"$APP_NAME\" \"${{APP_RUSTFLAGS[1]}}\" \"${{#APP_BINARIES[@]}}\" \"${{APP_FILES[1]}}\" \"${{APP_PORTS[*]}}\" \"$APP_MEMORY_MIB\"",
            m.shell()
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "it's\ngetrandom_backend=\"linux_getrandom\"\n3\n/etc/demo/data.txt\n10443 10443 https\n1024\n"
        );
    }

    #[test]
    fn ingress_services_are_init_services_run_as_proxy() {
        let dir = app_dir();
        let m = parse(dir.path(), GOOD).unwrap();
        let services = m.ingress_services();
        assert_eq!(services.len(), 1);
        let (name, text) = &services[0];
        assert_eq!(name, "demo-ingress-10443");
        let def = enclave_init::service::ServiceDef::parse(
            name,
            Path::new("/service/demo-ingress-10443.service"),
            text,
            true,
        )
        .unwrap();
        assert_eq!(
            def.argv,
            [
                "/usr/bin/vsock-to-ip",
                "-v",
                "any:10443",
                "-i",
                "127.0.0.1:10443",
                "--shutdown-grace",
                "5"
            ]
        );
        assert_eq!(
            def.privileges.user,
            Some(enclave_init::accounts::IdSpec::Name("proxy".into()))
        );
        // TLS ends in ra-web-srv on that port, which relays to the app's.
        assert_eq!(
            m.tls_ingress().unwrap().lines().last(),
            Some("127.0.0.1:10443=127.0.0.1:10070,name=demo-10443")
        );
        // ... in the file format ra-web-srv reads, and passes its checks
        // against the server's own listeners.
        let specs = ra_web_srv::ingress::spec::parse_lines(&m.tls_ingress().unwrap()).unwrap();
        assert_eq!(specs.len(), 1);
        let https: transport::Address = "tcp:127.0.0.1:8443".parse().unwrap();
        let http: transport::Address = "tcp:0.0.0.0:8080".parse().unwrap();
        ra_web_srv::ingress::spec::check(&specs, &[("HTTPS", &https), ("HTTP", &http)]).unwrap();
        // A service of the app named like the generated forward is refused.
        std::fs::write(dir.path().join("demo-ingress-10443.service"), SERVICE).unwrap();
        let clash = format!("{GOOD}[[service]]\nfile = \"demo-ingress-10443.service\"\n");
        assert!(error(dir.path(), &clash).contains("generated forward"));
    }

    #[test]
    fn pcrs_file_gets_the_app_name() {
        let text = "{\n  \"HashAlgorithm\": \"SHA384\",\n  \"Profile\": \"production\",\n  \"PCR0\": \"aa\"\n}\n";
        let out = record_in_pcrs(text, "demo").unwrap();
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["App"], "demo");
        assert_eq!(value["Profile"], "production");
        assert!(out.contains("\"Profile\": \"production\""));
        assert!(record_in_pcrs("[1]", "demo").is_err());
        assert!(record_in_pcrs("not json", "demo").is_err());
    }
}
