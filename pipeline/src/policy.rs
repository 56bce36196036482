//! What a server lets its clients do: run commands or not, and which parts
//! of the file system they may read and write.
//!
//! Roots are canonicalised once at start-up. A path is inside a root when
//! its canonical form (symlinks resolved) starts with the root, so a
//! symlink pointing out of a root does not open a way out.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::protocol::ErrorCode;

/// The rules a server applies to every request.
#[derive(Debug, Clone)]
pub struct Policy {
    allow_exec: bool,
    roots: Vec<PathBuf>,
}

impl Default for Policy {
    /// Commands allowed, whole file system reachable: the development setting.
    fn default() -> Self {
        Self {
            allow_exec: true,
            roots: Vec::new(),
        }
    }
}

impl Policy {
    /// A policy; `roots` empty means the whole file system.
    pub fn new(allow_exec: bool, roots: &[PathBuf]) -> io::Result<Self> {
        let roots = roots
            .iter()
            .map(|root| {
                root.canonicalize().map_err(|err| {
                    io::Error::new(err.kind(), format!("root {}: {err}", root.display()))
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { allow_exec, roots })
    }

    /// Whether commands may run.
    pub fn exec_allowed(&self) -> bool {
        self.allow_exec
    }

    /// The canonical roots (empty: no confinement).
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Refuses when remote exec is switched off.
    pub fn check_exec(&self) -> Result<(), Error> {
        if self.allow_exec {
            Ok(())
        } else {
            Err(Error::local(
                ErrorCode::ExecDisabled,
                "remote command execution is disabled on this server",
            ))
        }
    }

    /// Refuses a canonical path outside every root.
    pub fn check_inside(&self, canonical: &Path) -> Result<(), Error> {
        if self.roots.is_empty() || self.roots.iter().any(|root| canonical.starts_with(root)) {
            Ok(())
        } else {
            Err(Error::local(
                ErrorCode::PathRefused,
                format!("{} is outside the allowed roots", canonical.display()),
            ))
        }
    }

    /// Canonicalises an existing directory and checks that it is inside a root.
    pub fn confine_dir(&self, dir: &Path) -> Result<PathBuf, Error> {
        let canonical = dir
            .canonicalize()
            .map_err(|err| Error::io(format_args!("cannot resolve {}", dir.display()), err))?;
        self.check_inside(&canonical)?;
        Ok(canonical)
    }

    /// Resolves a source path for reading. The last component is resolved
    /// only when `follow` is set (otherwise a symlink is read as a link).
    pub fn resolve_source(&self, path: &Path, follow: bool) -> Result<PathBuf, Error> {
        if self.roots.is_empty() {
            return Ok(path.to_owned());
        }
        if follow {
            let canonical = path
                .canonicalize()
                .map_err(|err| Error::io(format_args!("cannot read {}", path.display()), err))?;
            self.check_inside(&canonical)?;
            return Ok(canonical);
        }
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => Ok(self.confine_dir(parent)?.join(name)),
            _ => self.confine_dir(path),
        }
    }

    /// Creates the missing directories of `dir` after checking that the
    /// deepest existing ancestor is inside a root; returns `dir` canonical.
    pub fn create_dirs(&self, dir: &Path) -> Result<PathBuf, Error> {
        let mut existing = dir;
        while !existing.exists() {
            existing = existing.parent().unwrap_or(Path::new("/"));
        }
        self.confine_dir(existing)?;
        std::fs::create_dir_all(dir).map_err(|err| {
            Error::io(
                format_args!("cannot create directory {}", dir.display()),
                err,
            )
        })?;
        self.confine_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confinement() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();
        let policy = Policy::new(false, std::slice::from_ref(&root)).unwrap();
        assert_eq!(
            policy.check_exec().unwrap_err().code(),
            ErrorCode::ExecDisabled
        );

        assert!(policy.confine_dir(&root.join("sub")).is_ok());
        assert_eq!(
            policy.confine_dir(&root.join("escape")).unwrap_err().code(),
            ErrorCode::PathRefused
        );
        assert_eq!(
            policy.confine_dir(dir.path()).unwrap_err().code(),
            ErrorCode::PathRefused
        );
        // Reading the link itself is fine; following it is not.
        assert!(policy.resolve_source(&root.join("escape"), false).is_ok());
        assert_eq!(
            policy
                .resolve_source(&root.join("escape"), true)
                .unwrap_err()
                .code(),
            ErrorCode::PathRefused
        );
        assert_eq!(
            policy
                .resolve_source(&root.join("escape/passwd"), false)
                .unwrap_err()
                .code(),
            ErrorCode::PathRefused
        );
        assert!(policy.create_dirs(&root.join("new/deeper")).is_ok());
        assert_eq!(
            policy
                .create_dirs(&dir.path().join("outside/x"))
                .unwrap_err()
                .code(),
            ErrorCode::PathRefused
        );
        assert!(!dir.path().join("outside").exists());
        assert_eq!(
            policy
                .create_dirs(&root.join("escape/x"))
                .unwrap_err()
                .code(),
            ErrorCode::PathRefused
        );
    }

    #[test]
    fn missing_root_is_an_error() {
        assert!(Policy::new(true, &[PathBuf::from("/nonexistent/root")]).is_err());
    }
}
