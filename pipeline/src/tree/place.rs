//! Where a received tree lands, and how it is put there.
//!
//! A tree is first written to a temporary name beside its destination (or,
//! when a directory merges into an existing one, inside it), then renamed
//! into place, so an interrupted transfer leaves no partial file behind.
//!
//! - A file or symlink replaces a file or symlink at the destination
//!   (rename, atomic); it never replaces a directory.
//! - A directory goes to a new name with `renameat2(RENAME_NOREPLACE)`, or
//!   merges into an existing directory entry by entry (each rename atomic;
//!   the existing directory keeps its own mode and time).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::defs::TEMP_PREFIX;
use crate::error::Error;
use crate::paths;
use crate::policy::Policy;
use crate::protocol::{ErrorCode, Placement};

/// The resolved destination of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Final path of the tree's root.
    pub path: PathBuf,
    /// The root is a directory going into an existing directory.
    pub merge: bool,
}

impl Target {
    /// The directory that receives the temporary copy.
    pub fn staging_parent(&self) -> &Path {
        if self.merge {
            &self.path
        } else {
            self.path.parent().unwrap_or(Path::new("/"))
        }
    }
}

fn conflict(message: String) -> Error {
    Error::local(ErrorCode::Conflict, message)
}

/// Resolves `dest` as `placement` says, for a root that is a directory or not.
pub fn resolve(
    dest: &Path,
    placement: &Placement,
    root_is_dir: bool,
    policy: &Policy,
) -> Result<Target, Error> {
    let candidate = match placement {
        Placement::Exact { create_parents } => {
            if *create_parents && let Some(parent) = dest.parent() {
                policy.create_dirs(parent)?;
            }
            dest.to_owned()
        }
        Placement::IntoDirectory { name } => {
            let name = paths::safe_name(name)?;
            if dest.is_dir() {
                policy.confine_dir(dest)?.join(name)
            } else {
                dest.to_owned()
            }
        }
    };
    match fs::symlink_metadata(&candidate) {
        Ok(meta) => {
            let is_dir = candidate.is_dir();
            if root_is_dir && is_dir {
                return Ok(Target {
                    path: policy.confine_dir(&candidate)?,
                    merge: true,
                });
            }
            if root_is_dir {
                return Err(conflict(format!(
                    "cannot overwrite non-directory {} with a directory",
                    candidate.display()
                )));
            }
            if meta.is_dir() {
                return Err(conflict(format!(
                    "cannot overwrite directory {} with a non-directory",
                    candidate.display()
                )));
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(Error::io(
                format_args!("cannot inspect {}", candidate.display()),
                err,
            ));
        }
    }
    let (Some(parent), Some(name)) = (candidate.parent(), candidate.file_name()) else {
        return Err(conflict(format!("cannot replace {}", candidate.display())));
    };
    if !parent.is_dir() {
        return Err(Error::local(
            ErrorCode::NotFound,
            format!("directory {} does not exist", parent.display()),
        ));
    }
    Ok(Target {
        path: policy.confine_dir(parent)?.join(name),
        merge: false,
    })
}

/// A fresh temporary name in `dir`.
pub fn temp_path(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "{TEMP_PREFIX}{}-{n}-{nanos:08x}",
        std::process::id()
    ))
}

/// Removes a path on drop unless disarmed: cleanup of half-written work.
#[derive(Debug)]
pub struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    /// Guards `path`.
    pub fn new(path: PathBuf) -> Self {
        Self(Some(path))
    }

    /// The guarded path.
    pub fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    /// Keeps the path.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let result = match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
                Ok(_) => fs::remove_file(&path),
                Err(_) => Ok(()),
            };
            if let Err(err) = result {
                tracing::warn!(path = %path.display(), %err, "cannot remove temporary copy");
            }
        }
    }
}

/// Renames `from` to `to`, failing if `to` exists.
pub fn rename_no_replace(from: &Path, to: &Path) -> Result<(), Error> {
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        from,
        nix::fcntl::AT_FDCWD,
        to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .map_err(|errno| {
        Error::io(
            format_args!("cannot move the copy to {}", to.display()),
            io::Error::from(errno),
        )
    })
}

/// Moves every entry of `staged` into the existing directory `target`,
/// recursing where both sides are directories.
pub fn merge_into(staged: &Path, target: &Path) -> Result<(), Error> {
    let list_err = |err| Error::io(format_args!("cannot list {}", staged.display()), err);
    for entry in fs::read_dir(staged).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let from = entry.path();
        let to = target.join(entry.file_name());
        let from_is_dir = entry.file_type().map_err(list_err)?.is_dir();
        let existing = fs::symlink_metadata(&to).ok();
        match existing {
            Some(meta) if meta.is_dir() && from_is_dir => merge_into(&from, &to)?,
            Some(meta) if meta.is_dir() => {
                return Err(conflict(format!(
                    "cannot overwrite directory {} with a non-directory",
                    to.display()
                )));
            }
            Some(_) if from_is_dir => {
                return Err(conflict(format!(
                    "cannot overwrite non-directory {} with a directory",
                    to.display()
                )));
            }
            _ => fs::rename(&from, &to).map_err(|err| {
                Error::io(
                    format_args!("cannot move the copy to {}", to.display()),
                    err,
                )
            })?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bytes::ByteBuf;

    fn into(name: &str) -> Placement {
        Placement::IntoDirectory {
            name: ByteBuf::from(name.as_bytes().to_vec()),
        }
    }

    #[test]
    fn docker_cp_placement() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let policy = Policy::default();
        // Existing directory: into it.
        let t = resolve(&base, &into("f"), false, &policy).unwrap();
        assert_eq!(
            t,
            Target {
                path: base.join("f"),
                merge: false
            }
        );
        // Missing path with an existing parent: that path.
        let t = resolve(&base.join("new"), &into("f"), true, &policy).unwrap();
        assert_eq!(
            t,
            Target {
                path: base.join("new"),
                merge: false
            }
        );
        // Missing parent: refused.
        let err = resolve(&base.join("a/b"), &into("f"), false, &policy).unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound);
        // Existing directory of the same name: merge.
        fs::create_dir(base.join("d")).unwrap();
        let t = resolve(&base, &into("d"), true, &policy).unwrap();
        assert_eq!(
            t,
            Target {
                path: base.join("d"),
                merge: true
            }
        );
        // A file never replaces a directory, nor a directory a file.
        let err = resolve(
            &base.join("d"),
            &Placement::Exact {
                create_parents: false,
            },
            false,
            &policy,
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        fs::write(base.join("file"), b"x").unwrap();
        let err = resolve(
            &base.join("file"),
            &Placement::Exact {
                create_parents: false,
            },
            true,
            &policy,
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        // A bad name from the peer is refused.
        assert_eq!(
            resolve(&base, &into(".."), false, &policy)
                .unwrap_err()
                .code(),
            ErrorCode::PathRefused
        );
    }

    #[test]
    fn exact_placement_creates_parents_inside_roots_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let policy = Policy::new(true, std::slice::from_ref(&root)).unwrap();
        let root = root.canonicalize().unwrap();
        let exact = Placement::Exact {
            create_parents: true,
        };
        let t = resolve(&root.join("x/y/z"), &exact, false, &policy).unwrap();
        assert_eq!(t.path, root.join("x/y/z"));
        assert!(root.join("x/y").is_dir());
        let err = resolve(&dir.path().join("out/z"), &exact, false, &policy).unwrap_err();
        assert_eq!(err.code(), ErrorCode::PathRefused);
    }

    #[test]
    fn merge_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        let target = dir.path().join("target");
        fs::create_dir_all(staged.join("sub")).unwrap();
        fs::write(staged.join("sub/new"), b"new").unwrap();
        fs::write(staged.join("top"), b"top2").unwrap();
        fs::create_dir_all(target.join("sub")).unwrap();
        fs::write(target.join("sub/old"), b"old").unwrap();
        fs::write(target.join("top"), b"top1").unwrap();
        merge_into(&staged, &target).unwrap();
        assert_eq!(fs::read(target.join("sub/new")).unwrap(), b"new");
        assert_eq!(fs::read(target.join("sub/old")).unwrap(), b"old");
        assert_eq!(fs::read(target.join("top")).unwrap(), b"top2");

        fs::create_dir_all(staged.join("x")).unwrap();
        fs::write(target.join("x"), b"file").unwrap();
        assert_eq!(
            merge_into(&staged, &target).unwrap_err().code(),
            ErrorCode::Conflict
        );
    }

    #[test]
    fn no_replace_rename() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("a")).unwrap();
        fs::create_dir(dir.path().join("b")).unwrap();
        assert!(rename_no_replace(&dir.path().join("a"), &dir.path().join("b")).is_err());
        rename_no_replace(&dir.path().join("a"), &dir.path().join("c")).unwrap();
        assert!(dir.path().join("c").is_dir());
    }

    #[test]
    fn guard_removes_unless_disarmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = temp_path(dir.path());
        fs::create_dir_all(p.join("inner")).unwrap();
        drop(RemoveOnDrop::new(p.clone()));
        assert!(!p.exists());
        fs::write(&p, b"x").unwrap();
        RemoveOnDrop::new(p.clone()).disarm();
        assert!(p.exists());
    }
}
