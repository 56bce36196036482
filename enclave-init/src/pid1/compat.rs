//! Images made for AWS's bootstrap init carry `/env` (one `KEY=VALUE` a
//! line) and `/cmd` (the entrypoint and its arguments, one a line). Init
//! runs `/cmd` as the service `cmd` with exactly the `/env` environment (and
//! a default `PATH`), in `/` unless the image says otherwise: the Docker
//! `WORKDIR` is not part of the image (field report 001).

use std::path::Path;

use cli_support::{ReadLimitedError, read_limited_to_string};

use crate::defs::{COMPAT_CMD_FILE, COMPAT_CMD_SERVICE, COMPAT_ENV_FILE, MAX_COMPAT_FILE_SIZE};
use crate::environment::parse_env_entry;
use crate::service::{Dependencies, RestartPolicy, ServiceDef};

fn read_optional(root_file: &Path) -> Result<Option<String>, String> {
    match read_limited_to_string(root_file, MAX_COMPAT_FILE_SIZE) {
        Ok(text) => Ok(Some(text)),
        Err(ReadLimitedError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        // "cannot read PATH: ...", "PATH is larger than N bytes", ...
        Err(err) => Err(err.to_string()),
    }
}

/// Builds the `cmd` service from `ROOT/cmd` and `ROOT/env`; `None` when there is no `/cmd`.
pub fn read_from(root: &Path) -> Result<Option<ServiceDef>, String> {
    let cmd_path = root.join(COMPAT_CMD_FILE.trim_start_matches('/'));
    let env_path = root.join(COMPAT_ENV_FILE.trim_start_matches('/'));
    let Some(cmd) = read_optional(&cmd_path)? else {
        return Ok(None);
    };
    let argv: Vec<String> = cmd
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect();
    if argv.is_empty() {
        return Err(format!("{} is empty", cmd_path.display()));
    }
    let mut environment = Vec::new();
    for line in read_optional(&env_path)?
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
    {
        match parse_env_entry(line) {
            Ok(pair) => environment.push(pair),
            Err(err) => tracing::warn!("{}: line ignored: {err}", env_path.display()),
        }
    }
    let working_directory = environment
        .iter()
        .find(|(k, _)| k == "PWD")
        .map(|(_, v)| v.into())
        .filter(|p: &std::path::PathBuf| p.is_absolute());
    Ok(Some(ServiceDef {
        name: COMPAT_CMD_SERVICE.into(),
        path: None,
        exec_start: argv.join(" "),
        argv,
        environment,
        clear_environment: true,
        restart: RestartPolicy::No,
        restart_sec: std::time::Duration::from_secs(5),
        working_directory_set: working_directory.is_some(),
        working_directory: working_directory.unwrap_or_else(|| "/".into()),
        enabled: true,
        deps: Dependencies::default(),
        privileges: crate::service::Privileges::default(),
        health: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_and_env() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_from(dir.path()).unwrap().is_none());
        std::fs::write(dir.path().join("cmd"), "/app/server\n--port\n8080\n").unwrap();
        std::fs::write(
            dir.path().join("env"),
            "PATH=/app:/bin\nBROKEN\nMODE=prod\n",
        )
        .unwrap();
        let def = read_from(dir.path()).unwrap().unwrap();
        assert_eq!(def.argv, ["/app/server", "--port", "8080"]);
        assert_eq!(def.environment.len(), 2);
        assert!(def.clear_environment);
        assert_eq!(def.working_directory, std::path::PathBuf::from("/"));
        std::fs::write(dir.path().join("cmd"), "\n").unwrap();
        assert!(read_from(dir.path()).is_err());
    }
}
