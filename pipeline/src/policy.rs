//! What a server lets its clients do: run commands or not, and which parts
//! of the file system they may read and which they may write.
//!
//! Roots are canonicalised when the policy is made. A path is inside a root
//! when its canonical form (symlinks resolved) starts with the root, so a
//! symlink pointing out of a root does not open a way out. The server's own
//! policy (`--no-exec`, `--root`) is narrowed per connection by the client
//! key's permissions ([`Policy::restrict`]): a request must pass both.
//!
//! The policy also says which modes written files get ([`WrittenModes`]):
//! as sent, or, for an enclave's inbox, readable by every user of the
//! enclave and without setuid, setgid and sticky bits, so that the services
//! that hash, attest and use the data can read it whatever its mode on the
//! host.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::protocol::ErrorCode;

/// Where reads or writes may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The whole file system.
    Anywhere,
    /// Under these canonical directories only (none: nowhere).
    Within(Vec<PathBuf>),
}

impl Roots {
    fn allows(&self, canonical: &Path) -> bool {
        match self {
            Roots::Anywhere => true,
            Roots::Within(roots) => roots.iter().any(|root| canonical.starts_with(root)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Roots::Anywhere => "anywhere".into(),
            Roots::Within(roots) if roots.is_empty() => "nowhere".into(),
            Roots::Within(roots) => roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The directories allowed by both `self` and `other`.
    fn intersect(&self, other: &Roots) -> Roots {
        match (self, other) {
            (Roots::Anywhere, other) | (other, Roots::Anywhere) => other.clone(),
            (Roots::Within(a), Roots::Within(b)) => {
                let mut both: Vec<PathBuf> = Vec::new();
                for (inner, outer) in [(a, b), (b, a)] {
                    for root in inner {
                        if outer.iter().any(|o| root.starts_with(o)) && !both.contains(root) {
                            both.push(root.clone());
                        }
                    }
                }
                Roots::Within(both)
            }
        }
    }
}

/// The modes given to what is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WrittenModes {
    /// The sender's modes (permission, setuid, setgid and sticky bits).
    #[default]
    AsSent,
    /// The sender's permission bits plus read for all (and search for all
    /// on directories, execute for all on executables); setuid, setgid and
    /// sticky bits dropped.
    ReadableByAll,
}

impl WrittenModes {
    /// The mode of a written file sent with `mode`.
    pub fn file(self, mode: u32) -> u32 {
        match self {
            WrittenModes::AsSent => mode & 0o7777,
            WrittenModes::ReadableByAll if mode & 0o111 != 0 => (mode & 0o777) | 0o555,
            WrittenModes::ReadableByAll => (mode & 0o777) | 0o444,
        }
    }

    /// The mode of a written directory sent with `mode`.
    pub fn directory(self, mode: u32) -> u32 {
        match self {
            WrittenModes::AsSent => mode & 0o7777,
            WrittenModes::ReadableByAll => (mode & 0o777) | 0o555,
        }
    }
}

/// The rules a server applies to every request.
#[derive(Debug, Clone)]
pub struct Policy {
    allow_exec: bool,
    write: Roots,
    read: Roots,
    modes: WrittenModes,
}

impl Default for Policy {
    /// Commands allowed, whole file system reachable: the development setting.
    fn default() -> Self {
        Self {
            allow_exec: true,
            write: Roots::Anywhere,
            read: Roots::Anywhere,
            modes: WrittenModes::AsSent,
        }
    }
}

fn canonical_roots(roots: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    roots
        .iter()
        .map(|root| {
            root.canonicalize().map_err(|err| {
                io::Error::new(err.kind(), format!("root {}: {err}", root.display()))
            })
        })
        .collect()
}

impl Policy {
    /// A policy; `roots` empty means the whole file system (for reads and writes).
    pub fn new(allow_exec: bool, roots: &[PathBuf]) -> io::Result<Self> {
        let roots = if roots.is_empty() {
            Roots::Anywhere
        } else {
            Roots::Within(canonical_roots(roots)?)
        };
        Ok(Self {
            allow_exec,
            write: roots.clone(),
            read: roots,
            modes: WrittenModes::AsSent,
        })
    }

    /// This policy, writing with `modes`.
    pub fn with_written_modes(mut self, modes: WrittenModes) -> Self {
        self.modes = modes;
        self
    }

    /// The modes written files and directories get.
    pub fn written_modes(&self) -> WrittenModes {
        self.modes
    }

    /// This policy narrowed by a client key's permissions: exec only when
    /// both allow it; reads and writes only under roots both allow. A key
    /// root that does not exist (cannot be canonicalised) allows nothing.
    pub fn restrict(&self, permissions: &attested_channel::Permissions) -> Self {
        let key_roots = |roots: &[PathBuf]| {
            Roots::Within(
                roots
                    .iter()
                    .filter_map(|root| match root.canonicalize() {
                        Ok(canonical) => Some(canonical),
                        Err(error) => {
                            tracing::warn!(root = %root.display(), %error, "a key's root does not resolve; it allows nothing");
                            None
                        }
                    })
                    .collect(),
            )
        };
        Self {
            allow_exec: self.allow_exec && permissions.exec,
            write: self.write.intersect(&key_roots(&permissions.write)),
            read: self.read.intersect(&key_roots(&permissions.read)),
            modes: self.modes,
        }
    }

    /// Whether commands may run.
    pub fn exec_allowed(&self) -> bool {
        self.allow_exec
    }

    /// The canonical roots writes are confined to (empty: no confinement).
    pub fn roots(&self) -> &[PathBuf] {
        match &self.write {
            Roots::Anywhere => &[],
            Roots::Within(roots) => roots,
        }
    }

    /// Where writes may go.
    pub fn write_roots(&self) -> &Roots {
        &self.write
    }

    /// Where reads may come from.
    pub fn read_roots(&self) -> &Roots {
        &self.read
    }

    /// Refuses when remote exec is switched off.
    pub fn check_exec(&self) -> Result<(), Error> {
        if self.allow_exec {
            Ok(())
        } else {
            Err(Error::local(
                ErrorCode::ExecDisabled,
                "remote command execution is disabled on this server (or not allowed for this key)",
            ))
        }
    }

    fn check_in(roots: &Roots, canonical: &Path, what: &str) -> Result<(), Error> {
        if roots.allows(canonical) {
            Ok(())
        } else {
            Err(Error::local(
                ErrorCode::PathRefused,
                format!(
                    "{} is outside the allowed roots (this client may {what}: {})",
                    canonical.display(),
                    roots.describe()
                ),
            ))
        }
    }

    /// Refuses a canonical path outside every write root.
    pub fn check_inside(&self, canonical: &Path) -> Result<(), Error> {
        Self::check_in(&self.write, canonical, "write")
    }

    fn confine_in(roots: &Roots, dir: &Path, what: &str) -> Result<PathBuf, Error> {
        let canonical = dir
            .canonicalize()
            .map_err(|err| Error::io(format_args!("cannot resolve {}", dir.display()), err))?;
        Self::check_in(roots, &canonical, what)?;
        Ok(canonical)
    }

    /// Canonicalises an existing directory and checks that it is inside a write root.
    pub fn confine_dir(&self, dir: &Path) -> Result<PathBuf, Error> {
        Self::confine_in(&self.write, dir, "write")
    }

    /// Resolves a source path for reading. The last component is resolved
    /// only when `follow` is set (otherwise a symlink is read as a link).
    pub fn resolve_source(&self, path: &Path, follow: bool) -> Result<PathBuf, Error> {
        if self.read == Roots::Anywhere {
            return Ok(path.to_owned());
        }
        if follow {
            let canonical = path
                .canonicalize()
                .map_err(|err| Error::io(format_args!("cannot read {}", path.display()), err))?;
            Self::check_in(&self.read, &canonical, "read")?;
            return Ok(canonical);
        }
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => {
                Ok(Self::confine_in(&self.read, parent, "read")?.join(name))
            }
            _ => Self::confine_in(&self.read, path, "read"),
        }
    }

    /// Creates the missing directories of `dir` after checking that the
    /// deepest existing ancestor is inside a write root; returns `dir` canonical.
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
    fn a_key_narrows_the_server_policy() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["data/out", "apps", "etc"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let root = dir.path().canonicalize().unwrap();
        let server = Policy::new(true, &[root.join("data"), root.join("apps")]).unwrap();
        let key = attested_channel::Permissions {
            exec: false,
            manage: false,
            write: vec![root.join("data"), root.join("etc")],
            read: vec![root.join("data/out")],
        };
        let policy = server.restrict(&key);
        assert!(!policy.exec_allowed());
        assert!(policy.check_inside(&root.join("data/x")).is_ok());
        let refused = policy.check_inside(&root.join("etc/x")).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::PathRefused);
        assert!(refused.to_string().contains("may write"), "{refused}");
        assert!(policy.check_inside(&root.join("apps/x")).is_err());
        assert!(
            policy
                .resolve_source(&root.join("data/out/f"), false)
                .is_ok()
        );
        assert!(policy.resolve_source(&root.join("data/f"), false).is_err());
        let nothing = Policy::default().restrict(&attested_channel::Permissions::default());
        assert!(!nothing.exec_allowed());
        assert!(nothing.check_inside(&root).is_err());
        assert!(nothing.resolve_source(&root.join("etc"), false).is_err());
        let anywhere = Policy::default().restrict(&key);
        assert!(anywhere.check_inside(&root.join("etc/x")).is_ok());
    }

    #[test]
    fn missing_root_is_an_error() {
        assert!(Policy::new(true, &[PathBuf::from("/nonexistent/root")]).is_err());
    }

    #[test]
    fn readable_by_all_opens_reads_and_drops_special_bits() {
        let shared = WrittenModes::ReadableByAll;
        assert_eq!(shared.file(0o600), 0o644);
        assert_eq!(shared.file(0o700), 0o755);
        assert_eq!(shared.file(0o4755), 0o755);
        assert_eq!(shared.file(0o2640), 0o644);
        assert_eq!(shared.directory(0o700), 0o755);
        assert_eq!(shared.directory(0o1777), 0o777);
        assert_eq!(WrittenModes::AsSent.file(0o4600), 0o4600);
        assert_eq!(WrittenModes::AsSent.directory(0o700), 0o700);
        let policy = Policy::default().with_written_modes(shared);
        let key = attested_channel::Permissions::default();
        assert_eq!(policy.restrict(&key).written_modes(), shared);
    }
}
