//! Writing a received tree stream to the file system (blocking).
//!
//! Everything is written under a temporary name first (see [`place`]).
//! Every entry name is validated ([`paths::safe_relative`]), and an entry's
//! parent must be a directory created by this same stream: a symlink sent
//! earlier is never followed, nothing is created outside the temporary tree.
//! Each file's size and digest are checked before it counts as
//! received; any failure removes the temporary tree.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use filetime::FileTime;
use tokio::sync::mpsc;

use super::TreeItem;
use super::place::{self, RemoveOnDrop, Target};
use crate::digest::ContentDigest;
use crate::error::Error;
use crate::paths;
use crate::policy::{Policy, WrittenModes};
use crate::protocol::{EntryKind, EntryMeta, ErrorCode, Placement, Summary};

fn protocol(message: impl Into<String>) -> Error {
    Error::local(ErrorCode::Protocol, message)
}

fn corrupted(message: String) -> Error {
    Error::local(ErrorCode::Corrupted, message)
}

struct Incoming {
    rx: mpsc::Receiver<TreeItem>,
}

impl Incoming {
    /// The next item; a channel closed before `End` means the transfer was
    /// abandoned by the other side.
    fn next(&mut self) -> Result<TreeItem, Error> {
        self.rx.blocking_recv().ok_or(Error::Closed)
    }

    fn expect_end(&mut self) -> Result<(), Error> {
        match self.next()? {
            TreeItem::End => Ok(()),
            other => Err(protocol(format!(
                "expected the end of the stream after a single file or link, got {}",
                describe(&other)
            ))),
        }
    }
}

fn describe(item: &TreeItem) -> &'static str {
    match item {
        TreeItem::Begin(_) => "a second stream start",
        TreeItem::Entry(_) => "an entry",
        TreeItem::Data(_) => "file content",
        TreeItem::FileEnd(_) => "a file end",
        TreeItem::End => "the end of the stream",
    }
}

/// Writes the tree arriving on `rx` at `dest`.
pub fn write_tree(
    dest: &Path,
    placement: &Placement,
    policy: &Policy,
    rx: mpsc::Receiver<TreeItem>,
) -> Result<Summary, Error> {
    let mut incoming = Incoming { rx };
    let mut item = incoming.next()?;
    if let TreeItem::Begin(_) = item {
        item = incoming.next()?;
    }
    let TreeItem::Entry(root) = item else {
        return Err(protocol(format!(
            "a tree stream must start with its root entry, got {}",
            describe(&item)
        )));
    };
    if !root.path.is_empty() {
        return Err(protocol(
            "the first entry of a tree stream must be its root (empty path)",
        ));
    }
    let target = place::resolve(dest, placement, root.kind == EntryKind::Directory, policy)?;
    let modes = policy.written_modes();
    let mut summary = Summary {
        path: paths::to_wire(&target.path),
        ..Summary::default()
    };
    match &root.kind {
        EntryKind::File { size } => {
            place_single(&target, &mut incoming, |staged, incoming| {
                write_file(staged, &root, *size, modes, incoming)
            })?;
            summary.files = 1;
            summary.bytes = *size;
        }
        EntryKind::Symlink { target: link } => {
            place_single(&target, &mut incoming, |staged, _| {
                write_symlink(staged, &root, link)
            })?;
            summary.symlinks = 1;
        }
        EntryKind::Directory => {
            write_directory(&target, &root, modes, &mut incoming, &mut summary)?
        }
    }
    Ok(summary)
}

/// Writes a lone file or symlink under a temporary name, checks that the
/// stream ends there, and renames it into place.
fn place_single(
    target: &Target,
    incoming: &mut Incoming,
    write: impl FnOnce(&Path, &mut Incoming) -> Result<(), Error>,
) -> Result<(), Error> {
    let staged = RemoveOnDrop::new(place::temp_path(target.staging_parent()));
    write(staged.path(), incoming)?;
    incoming.expect_end()?;
    fs::rename(staged.path(), &target.path).map_err(|err| {
        Error::io(
            format_args!("cannot move the copy to {}", target.path.display()),
            err,
        )
    })?;
    staged.disarm();
    Ok(())
}

fn write_directory(
    target: &Target,
    root: &EntryMeta,
    modes: WrittenModes,
    incoming: &mut Incoming,
    summary: &mut Summary,
) -> Result<(), Error> {
    let staged = RemoveOnDrop::new(place::temp_path(target.staging_parent()));
    make_dir(staged.path())?;
    let mut directories: HashSet<PathBuf> = HashSet::from([PathBuf::new()]);
    // Directory attributes are applied last, deepest first, once nothing
    // more is written inside.
    let mut attributes: Vec<(PathBuf, u32, FileTime)> = Vec::new();
    if !target.merge {
        attributes.push((PathBuf::new(), modes.directory(root.mode), mtime_of(root)));
    }
    summary.directories = 1;
    loop {
        let meta = match incoming.next()? {
            TreeItem::Entry(meta) => meta,
            TreeItem::End => break,
            other => {
                return Err(protocol(format!(
                    "expected an entry, got {}",
                    describe(&other)
                )));
            }
        };
        let rel = paths::safe_relative(&meta.path)?;
        if rel.as_os_str().is_empty() {
            return Err(protocol("a tree stream has a single root"));
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        if !directories.contains(parent) {
            return Err(Error::local(
                ErrorCode::PathRefused,
                format!(
                    "entry {} does not follow a directory of this transfer",
                    rel.display()
                ),
            ));
        }
        let path = staged.path().join(&rel);
        match &meta.kind {
            EntryKind::Directory => {
                make_dir(&path)?;
                attributes.push((rel.clone(), modes.directory(meta.mode), mtime_of(&meta)));
                directories.insert(rel);
                summary.directories += 1;
            }
            EntryKind::File { size } => {
                write_file(&path, &meta, *size, modes, incoming)?;
                summary.files += 1;
                summary.bytes += size;
            }
            EntryKind::Symlink { target: link } => {
                write_symlink(&path, &meta, link)?;
                summary.symlinks += 1;
            }
        }
    }
    if target.merge {
        place::merge_into(staged.path(), &target.path)?;
    } else {
        place::rename_no_replace(staged.path(), &target.path)?;
        staged.disarm();
    }
    attributes.sort_by_key(|(rel, ..)| std::cmp::Reverse(rel.components().count()));
    for (rel, mode, mtime) in attributes {
        let path = paths::join_relative(&target.path, &rel);
        // Only real directories: never follow a link planted meanwhile.
        if fs::symlink_metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|err| {
                Error::io(
                    format_args!("cannot set the mode of {}", path.display()),
                    err,
                )
            })?;
            filetime::set_file_mtime(&path, mtime).map_err(|err| {
                Error::io(
                    format_args!("cannot set the time of {}", path.display()),
                    err,
                )
            })?;
        }
    }
    Ok(())
}

fn make_dir(path: &Path) -> Result<(), Error> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|err| {
            Error::io(
                format_args!("cannot create directory {}", path.display()),
                err,
            )
        })
}

fn mtime_of(meta: &EntryMeta) -> FileTime {
    FileTime::from_unix_time(meta.mtime_sec, meta.mtime_nsec.min(999_999_999))
}

/// Creates `path` (which must not exist), writes the announced content and
/// checks it, then applies mode (as `modes` says) and time.
fn write_file(
    path: &Path,
    meta: &EntryMeta,
    size: u64,
    modes: WrittenModes,
    incoming: &mut Incoming,
) -> Result<(), Error> {
    let write_err = |err| Error::io(format_args!("cannot write {}", path.display()), err);
    let mut file: File = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(write_err)?;
    let mut hasher = ContentDigest::new();
    let mut received: u64 = 0;
    let name = String::from_utf8_lossy(&meta.path);
    loop {
        match incoming.next()? {
            TreeItem::Data(bytes) => {
                received += bytes.len() as u64;
                if received > size {
                    return Err(corrupted(format!(
                        "file {name:?}: more content than the {size} bytes announced"
                    )));
                }
                hasher.update(&bytes);
                file.write_all(&bytes).map_err(write_err)?;
            }
            TreeItem::FileEnd(digest) => {
                if received != size {
                    return Err(corrupted(format!(
                        "file {name:?}: {received} of {size} bytes received"
                    )));
                }
                if hasher.finish() != digest {
                    return Err(corrupted(format!(
                        "file {name:?}: content does not match its digest"
                    )));
                }
                break;
            }
            other => {
                return Err(protocol(format!(
                    "expected content of {name:?}, got {}",
                    describe(&other)
                )));
            }
        }
    }
    file.set_permissions(fs::Permissions::from_mode(modes.file(meta.mode)))
        .map_err(write_err)?;
    let mtime = UNIX_EPOCH
        .checked_add(Duration::new(
            meta.mtime_sec.max(0) as u64,
            meta.mtime_nsec.min(999_999_999),
        ))
        .unwrap_or(UNIX_EPOCH);
    file.set_modified(mtime).map_err(write_err)?;
    Ok(())
}

fn write_symlink(path: &Path, meta: &EntryMeta, link: &[u8]) -> Result<(), Error> {
    if link.is_empty() || link.contains(&0) || link.len() > crate::defs::MAX_PATH_LEN {
        return Err(Error::local(
            ErrorCode::PathRefused,
            format!(
                "symlink {:?} has an invalid target",
                String::from_utf8_lossy(&meta.path)
            ),
        ));
    }
    std::os::unix::fs::symlink(paths::from_wire(link), path).map_err(|err| {
        Error::io(
            format_args!("cannot create symlink {}", path.display()),
            err,
        )
    })?;
    filetime::set_symlink_file_times(path, mtime_of(meta), mtime_of(meta)).map_err(|err| {
        Error::io(
            format_args!("cannot set the time of {}", path.display()),
            err,
        )
    })
}
