//! Service files: `NAME.service` (enabled) and `NAME.service.disabled` in the
//! service directory, TOML with systemd-style keys, parsed into [`ServiceDef`].
//!
//! A malformed file is reported with its path and the parser's line and
//! column; it never stops the other services from loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cli_support::{ReadLimitedError, read_limited_to_string};
use serde::{Deserialize, Serialize};

use crate::accounts::{IdSpec, RawId};
use crate::command::split_command;
use crate::defs::*;
use crate::environment::parse_env_entry;
use crate::health::{HealthCheck, RawHealthCheck};
use crate::privileges::{Mode, RawMode};

/// Why a service file was not loaded, or a file operation on it failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_SERVICE_FILE_SIZE`].
    #[error("{} is larger than {MAX_SERVICE_FILE_SIZE} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The TOML does not parse, a key is unknown or a value has the wrong type.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value parses but is not acceptable.
    #[error("{}: {key}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key at fault.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The name is not a valid service name.
    #[error("invalid service name {name:?}: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// No file for this service exists.
    #[error("no service file {name}{SERVICE_SUFFIX} or {name}{DISABLED_SUFFIX} in {}", dir.display())]
    NotFound {
        /// The service.
        name: String,
        /// The service directory.
        dir: PathBuf,
    },
    /// Renaming or rewriting the file failed.
    #[error("cannot update {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// When a service is restarted after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never.
    #[default]
    No,
    /// Whatever the exit status.
    Always,
    /// After a non-zero exit or a death by signal.
    OnFailure,
    /// After exit status 0.
    OnSuccess,
}

impl RestartPolicy {
    /// Whether a process that ended with `success` is restarted.
    pub fn restarts(self, success: bool) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::OnSuccess => success,
        }
    }

    /// The spelling used in service files.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::OnSuccess => "on-success",
        }
    }
}

/// Ordering and requirement relations of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependencies {
    /// Services started after this one.
    pub before: Vec<String>,
    /// Services started before this one.
    pub after: Vec<String>,
    /// Services that must exist and be running before this one starts.
    pub requires: Vec<String>,
    /// Services that require this one (informational).
    pub required_by: Vec<String>,
    /// Services started before this one if they exist (even when disabled);
    /// their failure does not keep this one from starting.
    #[serde(default)]
    pub wants: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawService {
    exec_start: String,
    #[serde(default)]
    environment: Vec<String>,
    #[serde(default)]
    restart: RestartPolicy,
    restart_sec: Option<f64>,
    working_directory: Option<PathBuf>,
    service_enable: Option<bool>,
    #[serde(default)]
    before: Vec<String>,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    required_by: Vec<String>,
    #[serde(default)]
    wants: Vec<String>,
    user: Option<RawId>,
    group: Option<RawId>,
    #[serde(default)]
    supplementary_groups: Vec<RawId>,
    state_directory: Option<OneOrMany>,
    state_directory_mode: Option<RawMode>,
    health_check_exec: Option<String>,
    health_check_http: Option<String>,
    health_check_tcp: Option<String>,
    health_check_interval_sec: Option<f64>,
    health_check_timeout_sec: Option<f64>,
    health_check_retries: Option<i64>,
    health_check_start_period_sec: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

/// Whom a service runs as, and the directories it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    /// `User`: a name from `/etc/passwd` or a number; `None` runs as init's user.
    pub user: Option<IdSpec>,
    /// `Group`: a name from `/etc/group` or a number; `None` is the user's primary group.
    pub group: Option<IdSpec>,
    /// `SupplementaryGroups`; without it the service has none.
    pub supplementary_groups: Vec<IdSpec>,
    /// `StateDirectory`: paths relative to the state directory root (`/var/lib`).
    pub state_directories: Vec<PathBuf>,
    /// `StateDirectoryMode` (default 0700).
    pub state_directory_mode: Mode,
}

impl Default for Privileges {
    /// Init's own user and groups, no state directory.
    fn default() -> Self {
        Self {
            user: None,
            group: None,
            supplementary_groups: Vec::new(),
            state_directories: Vec::new(),
            state_directory_mode: Mode(DEFAULT_STATE_DIRECTORY_MODE),
        }
    }
}

/// A parsed, validated service definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDef {
    /// The name (file name without suffix).
    pub name: String,
    /// The file it came from (`None` for `/cmd`).
    pub path: Option<PathBuf>,
    /// `ExecStart` as written.
    pub exec_start: String,
    /// `ExecStart` split into program and arguments.
    pub argv: Vec<String>,
    /// `Environment`, as pairs.
    pub environment: Vec<(String, String)>,
    /// Replace init's environment instead of adding to it (`/cmd` semantics).
    pub clear_environment: bool,
    /// `Restart`.
    pub restart: RestartPolicy,
    /// `RestartSec`.
    pub restart_sec: Duration,
    /// `WorkingDirectory`; `/` when not set, never init's own directory.
    pub working_directory: PathBuf,
    /// Whether `WorkingDirectory` was set.
    pub working_directory_set: bool,
    /// Enabled: a `.service` file whose `ServiceEnable` is not false.
    pub enabled: bool,
    /// Dependencies.
    pub deps: Dependencies,
    /// `User`, `Group`, `SupplementaryGroups`, `StateDirectory`, `StateDirectoryMode`.
    pub privileges: Privileges,
    /// `HealthCheckExec`, `HealthCheckHttp` or `HealthCheckTcp` with their timing keys.
    pub health: Option<HealthCheck>,
}

/// Checks a `StateDirectory` entry: a relative path of plain components
/// (no `.`, `..` or leading `/`), as in systemd.
fn check_state_directory(path: &Path) -> Result<(), String> {
    use std::path::Component;
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    if path.as_os_str().is_empty() || !plain {
        return Err(format!(
            "{} must be a relative path without '.' or '..' (it is created under the state directory root, /var/lib)",
            path.display()
        ));
    }
    if path.to_str().is_none_or(|p| p.contains(':')) {
        return Err(format!("{} must be UTF-8 without ':'", path.display()));
    }
    Ok(())
}

/// Checks a service name: it becomes a file name, so it must be a plain one.
pub fn validate_name(name: &str) -> Result<(), ServiceError> {
    let bad = |reason| {
        Err(ServiceError::BadName {
            name: name.chars().take(MAX_SERVICE_NAME_LEN + 8).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_SERVICE_NAME_LEN {
        return bad("too long");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("must not start with '.' or '-'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
    {
        return bad("only letters, digits, '_', '-', '.' and '@' are allowed");
    }
    Ok(())
}

/// `line L, column C: message` from a TOML error's byte span.
fn describe_toml_error(text: &str, message: &str, span: Option<std::ops::Range<usize>>) -> String {
    let message = message.trim();
    let Some(span) = span else {
        return message.to_owned();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let source_line: String = text
        .lines()
        .nth(line - 1)
        .unwrap_or("")
        .chars()
        .take(80)
        .collect();
    format!(
        "line {line}, column {column} (`{}`): {message}",
        source_line.trim()
    )
}

impl ServiceDef {
    /// Parses the text of a service file named `name`; `file_enabled` is
    /// false for a `.service.disabled` file.
    pub fn parse(
        name: &str,
        path: &Path,
        text: &str,
        file_enabled: bool,
    ) -> Result<Self, ServiceError> {
        validate_name(name)?;
        let raw: RawService = toml::from_str(text).map_err(|err| ServiceError::Syntax {
            path: path.into(),
            message: describe_toml_error(text, err.message(), err.span()),
        })?;
        let invalid = |key, reason: String| ServiceError::Invalid {
            path: path.into(),
            key,
            reason,
        };
        let argv = split_command(&raw.exec_start).map_err(|r| invalid("ExecStart", r))?;
        if argv.is_empty() {
            return Err(invalid("ExecStart", "is empty".into()));
        }
        let environment = raw
            .environment
            .iter()
            .map(|e| parse_env_entry(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|r| invalid("Environment", r))?;
        let restart_sec = raw.restart_sec.unwrap_or(DEFAULT_RESTART_SEC);
        if !(restart_sec.is_finite() && (0.0..=MAX_RESTART_SEC).contains(&restart_sec)) {
            return Err(invalid(
                "RestartSec",
                format!("must be from 0 to {MAX_RESTART_SEC} seconds, not {restart_sec}"),
            ));
        }
        if let Some(dir) = &raw.working_directory
            && !dir.is_absolute()
        {
            return Err(invalid(
                "WorkingDirectory",
                format!("{} is not an absolute path", dir.display()),
            ));
        }
        for (key, list) in [
            ("Before", &raw.before),
            ("After", &raw.after),
            ("Requires", &raw.requires),
            ("RequiredBy", &raw.required_by),
            ("Wants", &raw.wants),
        ] {
            for other in list {
                validate_name(other).map_err(|e| invalid(key, e.to_string()))?;
                if other == name {
                    return Err(invalid(key, format!("{name} cannot depend on itself")));
                }
            }
        }
        let id = |key, raw: &RawId| raw.parse().map_err(|r| invalid(key, r));
        let user = raw.user.as_ref().map(|r| id("User", r)).transpose()?;
        let group = raw.group.as_ref().map(|r| id("Group", r)).transpose()?;
        if raw.supplementary_groups.len() > MAX_SUPPLEMENTARY_GROUPS {
            return Err(invalid(
                "SupplementaryGroups",
                format!("at most {MAX_SUPPLEMENTARY_GROUPS} groups"),
            ));
        }
        let supplementary_groups = raw
            .supplementary_groups
            .iter()
            .map(|r| id("SupplementaryGroups", r))
            .collect::<Result<Vec<_>, _>>()?;
        let state_directories = match raw.state_directory {
            None => Vec::new(),
            Some(OneOrMany::One(p)) => vec![p],
            Some(OneOrMany::Many(list)) => list,
        };
        for dir in &state_directories {
            check_state_directory(dir).map_err(|r| invalid("StateDirectory", r))?;
        }
        let state_directory_mode = match &raw.state_directory_mode {
            Some(mode) => mode.parse().map_err(|r| invalid("StateDirectoryMode", r))?,
            None => Mode(DEFAULT_STATE_DIRECTORY_MODE),
        };
        let health = RawHealthCheck {
            exec: raw.health_check_exec,
            http: raw.health_check_http,
            tcp: raw.health_check_tcp,
            interval_sec: raw.health_check_interval_sec,
            timeout_sec: raw.health_check_timeout_sec,
            retries: raw.health_check_retries,
            start_period_sec: raw.health_check_start_period_sec,
        }
        .validate()
        .map_err(|(key, reason)| invalid(key, reason))?;
        Ok(ServiceDef {
            name: name.to_owned(),
            path: Some(path.to_owned()),
            exec_start: raw.exec_start,
            argv,
            environment,
            clear_environment: false,
            restart: raw.restart,
            restart_sec: Duration::from_secs_f64(restart_sec),
            working_directory_set: raw.working_directory.is_some(),
            working_directory: raw.working_directory.unwrap_or_else(|| "/".into()),
            enabled: file_enabled && raw.service_enable.unwrap_or(true),
            deps: Dependencies {
                before: raw.before,
                after: raw.after,
                requires: raw.requires,
                required_by: raw.required_by,
                wants: raw.wants,
            },
            privileges: Privileges {
                user,
                group,
                supplementary_groups,
                state_directories,
                state_directory_mode,
            },
            health,
        })
    }

    /// Reads and parses one service file.
    pub fn load(name: &str, path: &Path, file_enabled: bool) -> Result<Self, ServiceError> {
        let text =
            read_limited_to_string(path, MAX_SERVICE_FILE_SIZE).map_err(|err| match err {
                ReadLimitedError::TooLarge { .. } => ServiceError::TooLarge { path: path.into() },
                err => ServiceError::Read {
                    path: path.into(),
                    source: err.into_io_error(),
                },
            })?;
        Self::parse(name, path, &text, file_enabled)
    }
}

/// What a scan of the service directory found.
#[derive(Debug, Default)]
pub struct LoadedServices {
    /// Valid definitions by name.
    pub services: BTreeMap<String, ServiceDef>,
    /// Files that could not be loaded, with the reason.
    pub broken: Vec<(String, String)>,
}

/// Splits a file name into service name and whether it is enabled.
fn classify(file_name: &str) -> Option<(&str, bool)> {
    if let Some(name) = file_name.strip_suffix(DISABLED_SUFFIX) {
        Some((name, false))
    } else {
        file_name.strip_suffix(SERVICE_SUFFIX).map(|n| (n, true))
    }
}

/// Loads every service file of `dir`. When both `NAME.service` and
/// `NAME.service.disabled` exist, the enabled one wins. A missing directory
/// is an empty set of services.
pub fn load_dir(dir: &Path) -> LoadedServices {
    let mut loaded = LoadedServices::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(dir = %dir.display(), "service directory does not exist: no services");
            return loaded;
        }
        Err(err) => {
            loaded
                .broken
                .push((dir.display().to_string(), format!("cannot list: {err}")));
            return loaded;
        }
    };
    let mut files: Vec<(String, PathBuf, bool)> = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some((name, enabled)) = classify(file_name) else {
            continue;
        };
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(true) {
            continue;
        }
        files.push((name.to_owned(), entry.path(), enabled));
    }
    // Enabled files sort first so they win over a disabled twin.
    files.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
    for (name, path, enabled) in files {
        if loaded.services.contains_key(&name) {
            tracing::warn!(file = %path.display(), "ignored: {name}{SERVICE_SUFFIX} exists too");
            continue;
        }
        if loaded.services.len() >= MAX_SERVICES {
            loaded.broken.push((
                path.display().to_string(),
                format!("ignored: more than {MAX_SERVICES} services"),
            ));
            continue;
        }
        match ServiceDef::load(&name, &path, enabled) {
            Ok(def) => {
                loaded.services.insert(name, def);
            }
            Err(err) => {
                tracing::error!("service file not loaded: {err}");
                loaded
                    .broken
                    .push((path.display().to_string(), err.to_string()));
            }
        }
    }
    loaded
}

/// Marks a service enabled on disk: renames `NAME.service.disabled` to
/// `NAME.service` and turns a `ServiceEnable = false` into `true`. Returns the
/// path of the enabled file.
pub fn enable_file(dir: &Path, name: &str) -> Result<PathBuf, ServiceError> {
    validate_name(name)?;
    let enabled = dir.join(format!("{name}{SERVICE_SUFFIX}"));
    let disabled = dir.join(format!("{name}{DISABLED_SUFFIX}"));
    if !enabled.exists() {
        if !disabled.exists() {
            return Err(ServiceError::NotFound {
                name: name.into(),
                dir: dir.into(),
            });
        }
        std::fs::rename(&disabled, &enabled).map_err(|source| ServiceError::Write {
            path: disabled.clone(),
            source,
        })?;
    }
    let text =
        read_limited_to_string(&enabled, MAX_SERVICE_FILE_SIZE).map_err(|err| match err {
            ReadLimitedError::TooLarge { .. } => ServiceError::TooLarge {
                path: enabled.clone(),
            },
            err => ServiceError::Read {
                path: enabled.clone(),
                source: err.into_io_error(),
            },
        })?;
    let mut doc = text
        .parse::<toml_edit::DocumentMut>()
        .map_err(|err| ServiceError::Syntax {
            path: enabled.clone(),
            message: describe_toml_error(&text, err.message(), err.span()),
        })?;
    if doc.get("ServiceEnable").and_then(|v| v.as_bool()) == Some(false) {
        doc["ServiceEnable"] = toml_edit::value(true);
        let tmp = dir.join(format!(".{name}{SERVICE_SUFFIX}.tmp"));
        std::fs::write(&tmp, doc.to_string())
            .and_then(|()| std::fs::rename(&tmp, &enabled))
            .map_err(|source| ServiceError::Write {
                path: enabled.clone(),
                source,
            })?;
    }
    Ok(enabled)
}

/// Marks a service disabled on disk: renames `NAME.service` to
/// `NAME.service.disabled`. Returns the path of the disabled file.
pub fn disable_file(dir: &Path, name: &str) -> Result<PathBuf, ServiceError> {
    validate_name(name)?;
    let enabled = dir.join(format!("{name}{SERVICE_SUFFIX}"));
    let disabled = dir.join(format!("{name}{DISABLED_SUFFIX}"));
    if enabled.exists() {
        std::fs::rename(&enabled, &disabled).map_err(|source| ServiceError::Write {
            path: enabled.clone(),
            source,
        })?;
    } else if !disabled.exists() {
        return Err(ServiceError::NotFound {
            name: name.into(),
            dir: dir.into(),
        });
    }
    Ok(disabled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<ServiceDef, ServiceError> {
        ServiceDef::parse("web", Path::new("/service/web.service"), text, true)
    }

    #[test]
    fn parses_the_spec_example() {
        let def = parse(
            r#"
ExecStart = "/usr/bin/myapp --config /etc/myapp.conf --port 8080"
Environment = ["LOG_LEVEL=debug", "DATABASE_URL=postgresql://localhost/mydb"]
Restart = "always"
RestartSec = 10
WorkingDirectory = "/var/lib/myapp"
ServiceEnable = true
After = ["database", "cache"]
Before = ["monitor"]
Requires = ["database"]
RequiredBy = ["monitor"]
"#,
        )
        .unwrap();
        assert_eq!(
            def.argv,
            [
                "/usr/bin/myapp",
                "--config",
                "/etc/myapp.conf",
                "--port",
                "8080"
            ]
        );
        assert_eq!(def.restart, RestartPolicy::Always);
        assert_eq!(def.restart_sec, Duration::from_secs(10));
        assert_eq!(def.environment[1].1, "postgresql://localhost/mydb");
        assert_eq!(def.deps.after, ["database", "cache"]);
        assert!(def.enabled);
    }

    #[test]
    fn defaults() {
        let def = parse("ExecStart = \"/bin/true\"").unwrap();
        assert_eq!(def.restart, RestartPolicy::No);
        assert_eq!(def.restart_sec, Duration::from_secs(5));
        assert_eq!(def.working_directory, PathBuf::from("/"));
        assert!(!def.working_directory_set);
        assert!(def.enabled);
        let off = parse("ExecStart = \"/bin/true\"\nServiceEnable = false").unwrap();
        assert!(!off.enabled);
        let fractional = parse("ExecStart = \"/bin/true\"\nRestartSec = 0.5").unwrap();
        assert_eq!(fractional.restart_sec, Duration::from_millis(500));
    }

    #[test]
    fn users_groups_and_state_directories() {
        let def = parse(
            r#"
ExecStart = "/usr/bin/ra-web-srv"
User = "ra-web-srv"
Group = 990
SupplementaryGroups = ["nsm", "12"]
StateDirectory = "ra-web-srv"
StateDirectoryMode = "0750"
"#,
        )
        .unwrap();
        let p = &def.privileges;
        assert_eq!(p.user, Some(IdSpec::Name("ra-web-srv".into())));
        assert_eq!(p.group, Some(IdSpec::Id(990)));
        assert_eq!(
            p.supplementary_groups,
            [IdSpec::Name("nsm".into()), IdSpec::Id(12)]
        );
        assert_eq!(p.state_directories, [PathBuf::from("ra-web-srv")]);
        assert_eq!(p.state_directory_mode, Mode(0o750));
        let many = parse("ExecStart = \"/x\"\nStateDirectory = [\"a\", \"b/c\"]\nUser = \"65534\"")
            .unwrap();
        assert_eq!(many.privileges.state_directories.len(), 2);
        assert_eq!(many.privileges.user, Some(IdSpec::Id(65534)));
        assert_eq!(many.privileges.state_directory_mode, Mode(0o700));
        let plain = parse("ExecStart = \"/x\"").unwrap();
        assert_eq!(plain.privileges, Privileges::default());
    }

    #[test]
    fn malformed_files_say_what_and_where() {
        for (text, needle) in [
            ("", "ExecStart"),
            ("ExecStart = \"\"", "is empty"),
            ("ExecStart = \"/bin/x 'open\"", "unterminated"),
            ("ExecStart = 5", "ExecStart"),
            ("ExecStart = \"/x\"\nRestart = \"sometimes\"", "sometimes"),
            ("ExecStart = \"/x\"\nRestartSec = -1", "RestartSec"),
            (
                "ExecStart = \"/x\"\nEnvironment = [\"NOEQUALS\"]",
                "KEY=VALUE",
            ),
            ("ExecStart = \"/x\"\nExecStop = \"/y\"", "ExecStop"),
            ("ExecStart = \"/x\"\nAfter = [\"../etc\"]", "After"),
            ("ExecStart = \"/x\"\nRequires = [\"web\"]", "itself"),
            ("ExecStart = \"/x\"\nWorkingDirectory = \"rel\"", "absolute"),
            ("ExecStart = \"/x\"\n[broken", "line 2"),
            ("ExecStart = \"/x\"\nUser = \"a b\"", "User"),
            ("ExecStart = \"/x\"\nUser = -1", "User"),
            ("ExecStart = \"/x\"\nGroup = 4294967295", "Group"),
            (
                "ExecStart = \"/x\"\nSupplementaryGroups = [\"\"]",
                "SupplementaryGroups",
            ),
            (
                "ExecStart = \"/x\"\nStateDirectory = \"/var/lib/x\"",
                "StateDirectory",
            ),
            (
                "ExecStart = \"/x\"\nStateDirectory = \"../etc\"",
                "StateDirectory",
            ),
            ("ExecStart = \"/x\"\nStateDirectoryMode = 700", "quotes"),
            (
                "ExecStart = \"/x\"\nStateDirectoryMode = \"4700\"",
                "StateDirectoryMode",
            ),
            (
                "ExecStart = \"/x\"\nHealthCheckTcp = \"127.0.0.1:1\"\nHealthCheckIntervalSec = 0",
                "HealthCheckIntervalSec: 0 is out of range",
            ),
            (
                "ExecStart = \"/x\"\nHealthCheckHttp = \"http://127.0.0.1/\"\nHealthCheckIntervalSec = 2\nHealthCheckTimeoutSec = 3",
                "HealthCheckTimeoutSec: 3s is longer than HealthCheckIntervalSec (2s)",
            ),
            (
                "ExecStart = \"/x\"\nHealthCheckRetries = 3",
                "HealthCheckRetries: needs a probe",
            ),
            (
                "ExecStart = \"/x\"\nHealthCheckTcp = \"127.0.0.1:1\"\nHealthCheckExec = \"/bin/true\"",
                "only one of",
            ),
            (
                "ExecStart = \"/x\"\nHealthCheckTcp = \"127.0.0.1:1\"\nHealthCheckRetries = -1",
                "HealthCheckRetries: -1 is out of range",
            ),
            (
                "ExecStart = \"/x\"\nHealthCheckHttp = \"https://192.0.2.1:8443/\"",
                "not a loopback address",
            ),
            (
                "ExecStart = \"/x\"\nHealthCheckTcp = 4222",
                "HealthCheckTcp",
            ),
            (
                "ExecStart = \"/x\"\nHealthCheckTcp = \"127.0.0.1:1\"\nHealthCheckInterval = 5",
                "unknown field `HealthCheckInterval`",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains("web.service"), "{text:?}: {err}");
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn health_checks() {
        let def = parse(
            r#"
ExecStart = "/usr/bin/ra-web-srv"
HealthCheckHttp = "https://127.0.0.1:8443/ready/"
HealthCheckIntervalSec = 5
HealthCheckTimeoutSec = 2.5
HealthCheckRetries = 4
HealthCheckStartPeriodSec = 30
"#,
        )
        .unwrap();
        let check = def.health.unwrap();
        assert!(
            matches!(&check.probe, crate::health::Probe::Http(t) if t.https && t.path == "/ready/")
        );
        assert_eq!(check.interval, Duration::from_secs(5));
        assert_eq!(check.timeout, Duration::from_millis(2500));
        assert_eq!(check.retries, 4);
        assert_eq!(check.start_period, Duration::from_secs(30));
        assert_eq!(parse("ExecStart = \"/x\"").unwrap().health, None);
        let exec = parse("ExecStart = \"/x\"\nHealthCheckExec = \"/usr/bin/check --quick\"")
            .unwrap()
            .health
            .unwrap();
        assert!(
            matches!(&exec.probe, crate::health::Probe::Exec { argv, .. } if argv == &["/usr/bin/check", "--quick"])
        );
    }

    #[test]
    fn names() {
        for ok in ["web", "cache-warmer", "a_b.c@1"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b", &"x".repeat(200)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn directory_scan_and_enable_disable() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.service"), "ExecStart = \"/bin/a\"").unwrap();
        std::fs::write(d.join("b.service.disabled"), "ExecStart = \"/bin/b\"").unwrap();
        std::fs::write(
            d.join("c.service"),
            "# keep me\nExecStart = \"/bin/c\"\nServiceEnable = false\n",
        )
        .unwrap();
        std::fs::write(d.join("broken.service"), "ExecStart = ").unwrap();
        std::fs::write(d.join("notes.txt"), "not a service").unwrap();
        let loaded = load_dir(d);
        assert_eq!(loaded.services.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(loaded.services["a"].enabled);
        assert!(!loaded.services["b"].enabled);
        assert!(!loaded.services["c"].enabled);
        assert_eq!(loaded.broken.len(), 1);
        assert!(loaded.broken[0].0.ends_with("broken.service"));

        enable_file(d, "b").unwrap();
        enable_file(d, "c").unwrap();
        disable_file(d, "a").unwrap();
        let text = std::fs::read_to_string(d.join("c.service")).unwrap();
        assert!(text.contains("# keep me"), "{text}");
        let loaded = load_dir(d);
        assert!(!loaded.services["a"].enabled);
        assert!(loaded.services["b"].enabled);
        assert!(loaded.services["c"].enabled);
        assert!(matches!(
            enable_file(d, "zzz"),
            Err(ServiceError::NotFound { .. })
        ));
        assert!(matches!(
            disable_file(d, "../x"),
            Err(ServiceError::BadName { .. })
        ));
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in ".{0,200}") {
            let _ = parse(&text);
            let _ = split_command(&text);
        }
    }
}
