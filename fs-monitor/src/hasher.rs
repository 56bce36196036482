//! Hashing one file, without following symbolic links.
//!
//! The file is opened with `O_NOFOLLOW` (a symbolic link is never hashed
//! through) and `O_NONBLOCK` (a FIFO that replaced the file cannot block
//! the worker), checked to be a regular file, and streamed through
//! [`ra_verify_core::hash::hash_reader`], the same SHA3-512 as `ra_verify`'s
//! `hash_file` (which would follow links). The file's [`Stamp`] is taken
//! before and after: if it changed, someone wrote while we read, and the
//! result is thrown away ([`Outcome::Changed`]); the writer's close brings
//! a new hash.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use bus::value::Digest;

/// What identifies a version of a file cheaply: when it is unchanged, the
/// content is taken to be unchanged (used by rescans only; a close after
/// writing always rehashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The file's identity: device and inode.
    pub fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// The stamp of `metadata` (from `lstat` or `fstat`).
    pub fn of(metadata: &Metadata) -> Self {
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.size(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

/// How hashing one file went.
#[derive(Debug)]
pub enum Outcome {
    /// The file's digest and the stamp it had while read.
    Hashed(Digest, Stamp),
    /// The path no longer exists.
    Gone,
    /// The path is not a regular file (a symbolic link, FIFO, directory...).
    NotRegular,
    /// The file changed while it was read.
    Changed,
    /// Reading failed otherwise.
    Failed(io::Error),
}

/// Hashes the regular file at `path`.
pub fn hash(path: &Path) -> Outcome {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(error) => return failure(error),
    };
    match hash_open(path, &file) {
        Ok(outcome) => outcome,
        Err(error) => failure(error),
    }
}

/// Hashes an opened file and checks it stayed the same.
fn hash_open(path: &Path, file: &File) -> io::Result<Outcome> {
    let before = file.metadata()?;
    if !before.is_file() {
        return Ok(Outcome::NotRegular);
    }
    let digest = ra_verify_core::hash::hash_reader(file)?;
    let stamp = Stamp::of(&before);
    if Stamp::of(&file.metadata()?) != stamp {
        return Ok(Outcome::Changed);
    }
    // The name may have been given to another file meanwhile.
    match std::fs::symlink_metadata(path) {
        Ok(now) if Stamp::of(&now) == stamp => Ok(Outcome::Hashed(digest, stamp)),
        Ok(_) => Ok(Outcome::Changed),
        Err(error) => Ok(failure(error)),
    }
}

/// The outcome of an I/O error.
fn failure(error: io::Error) -> Outcome {
    match error.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => Outcome::Gone,
        Some(libc::ELOOP) | Some(libc::ENXIO) | Some(libc::EISDIR) => Outcome::NotRegular,
        _ => Outcome::Failed(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").unwrap();
        let Outcome::Hashed(digest, stamp) = hash(&file) else {
            panic!("not hashed")
        };
        assert_eq!(digest, ra_verify_core::hash::hash_file(&file).unwrap());
        assert_eq!(stamp, Stamp::of(&std::fs::metadata(&file).unwrap()));

        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(matches!(hash(&link), Outcome::NotRegular));
        assert!(matches!(hash(dir.path()), Outcome::NotRegular));
        assert!(matches!(hash(&dir.path().join("missing")), Outcome::Gone));
        assert!(matches!(hash(&file.join("below")), Outcome::Gone));
    }
}
