//! Which paths a request may name.
//!
//! A request path must be absolute, valid UTF-8 (it goes into JSON and the
//! document), at most [`MAX_PATH`] bytes, free of NUL bytes and of `..`
//! components. For hashing ([`Roots::confine`]) it must also exist and its
//! canonical form (symbolic links resolved) must lie under one of the
//! canonical roots (`--root-dir`); with no root configured nothing can be
//! hashed on request (documents still come from `fs_hashes`). Lookups of
//! stored results ([`lookup_key`]) read no file content: they use
//! the canonical form when the path exists and the path as given otherwise
//! (a deleted file's record), so a symbolic link finds its target's record.

use std::path::{Component, Path, PathBuf};

use crate::defs::MAX_PATH;

/// Why a path is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// Not something this server accepts as a path at all (400).
    #[error("bad path {path:?}: {reason}")]
    Invalid {
        /// The path given.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Outside the configured roots (403).
    #[error("{path:?} is outside the directories this server may read ({roots})")]
    Outside {
        /// The path given.
        path: String,
        /// The roots, for the message.
        roots: String,
    },
    /// It does not exist (404).
    #[error("{path:?}: {reason}")]
    NotFound {
        /// The path given.
        path: String,
        /// The system's message.
        reason: String,
    },
}

/// The directories requests may read from, canonical.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    roots: Vec<PathBuf>,
}

impl Roots {
    /// Canonicalizes `dirs`. A directory that does not exist (yet) is
    /// left out with a warning, so a service starts in an image that lacks
    /// it; anything else that is not a directory is an error.
    pub fn new(dirs: &[PathBuf]) -> Result<Self, std::io::Error> {
        let mut roots = Vec::new();
        for dir in dirs {
            let canonical = match dir.canonicalize() {
                Ok(canonical) => canonical,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(dir = %dir.display(), "--root-dir does not exist; nothing under it can be hashed on request");
                    continue;
                }
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("--root-dir {}: {e}", dir.display()),
                    ));
                }
            };
            if !canonical.is_dir() {
                return Err(std::io::Error::other(format!(
                    "--root-dir {}: not a directory",
                    dir.display()
                )));
            }
            roots.push(canonical);
        }
        Ok(Self { roots })
    }

    /// The canonical roots.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The canonical path of `input` for hashing, if it is allowed.
    pub fn confine(&self, input: &str) -> Result<PathBuf, PathError> {
        let path = check_syntax(input)?;
        let outside = || PathError::Outside {
            path: input.to_string(),
            roots: self.describe(),
        };
        // A path that is lexically outside every root is refused before
        // the file system is asked anything about it.
        if !self.roots.iter().any(|root| path.starts_with(root)) {
            return Err(outside());
        }
        let canonical = path.canonicalize().map_err(|e| PathError::NotFound {
            path: input.to_string(),
            reason: e.to_string(),
        })?;
        if !self.roots.iter().any(|root| canonical.starts_with(root)) {
            return Err(outside());
        }
        if canonical.to_str().is_none() {
            return Err(PathError::Invalid {
                path: input.to_string(),
                reason: "its canonical form is not UTF-8",
            });
        }
        Ok(canonical)
    }

    fn describe(&self) -> String {
        if self.roots.is_empty() {
            return "none configured: --root-dir".into();
        }
        let list: Vec<_> = self.roots.iter().map(|r| r.display().to_string()).collect();
        list.join(", ")
    }
}

/// The key under which results for `input` are stored.
pub fn lookup_key(input: &str) -> Result<String, PathError> {
    let path = check_syntax(input)?;
    Ok(match path.canonicalize() {
        Ok(canonical) => canonical
            .to_str()
            .map_or_else(|| input.to_string(), str::to_string),
        Err(_) => input.to_string(),
    })
}

fn check_syntax(input: &str) -> Result<PathBuf, PathError> {
    let invalid = |reason| PathError::Invalid {
        path: input.chars().take(200).collect(),
        reason,
    };
    if input.len() > MAX_PATH {
        return Err(invalid("too long"));
    }
    if input.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    let path = Path::new(input);
    if !path.is_absolute() {
        return Err(invalid("not absolute"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(PathError::Outside {
            path: input.to_string(),
            roots: "a path with `..` never is".into(),
        });
    }
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_refused_and_inside_paths_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("sub/file"), b"x").unwrap();
        std::fs::write(outside.join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root.join("link-out")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/file"), root.join("link-in")).unwrap();
        let roots = Roots::new(std::slice::from_ref(&root)).unwrap();
        let canon_root = root.canonicalize().unwrap();
        let s = |p: &Path| p.to_str().unwrap().to_string();

        assert_eq!(
            roots.confine(&s(&root.join("sub/file"))).unwrap(),
            canon_root.join("sub/file")
        );
        assert_eq!(
            roots.confine(&s(&root.join("link-in"))).unwrap(),
            canon_root.join("sub/file")
        );
        assert_eq!(roots.confine(&s(&root)).unwrap(), canon_root);
        for bad in [
            s(&root.join("link-out")),
            s(&root.join("sub/../../outside/secret")),
            s(&outside.join("secret")),
            "/etc/passwd".to_string(),
        ] {
            assert!(
                matches!(roots.confine(&bad), Err(PathError::Outside { .. })),
                "{bad}"
            );
        }
        for bad in ["relative/path", "/a\0b", ""] {
            assert!(
                matches!(roots.confine(bad), Err(PathError::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            roots.confine(&s(&root.join("missing"))),
            Err(PathError::NotFound { .. })
        ));
        assert!(matches!(
            Roots::default().confine(&s(&root.join("sub/file"))),
            Err(PathError::Outside { .. })
        ));
        assert!(Roots::new(&[root.join("sub/file")]).is_err());
        let skipped = Roots::new(&[root.join("not-yet"), root.clone()]).unwrap();
        assert_eq!(skipped.dirs(), std::slice::from_ref(&canon_root));
        assert_eq!(lookup_key("/no/such/file").unwrap(), "/no/such/file");
        assert_eq!(
            lookup_key(&s(&root.join("link-in"))).unwrap(),
            s(&canon_root.join("sub/file"))
        );
    }
}
