//! Reading a tree from the file system into [`TreeItem`]s (blocking).
//!
//! Symlinks are sent as links and never followed, except the root when the
//! caller asks. Files are opened with `O_NOFOLLOW` and checked with `fstat`,
//! so a file swapped for a symlink between the walk and the read is refused
//! rather than followed. Sockets, FIFOs and devices are skipped with a
//! warning. Directory entries are sent in byte order of their names.

use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_bytes::ByteBuf;
use tokio::sync::mpsc;

use super::TreeItem;
use crate::buffers::BufferPool;
use crate::digest::ContentDigest;
use crate::error::Error;
use crate::protocol::{EntryKind, EntryMeta, ErrorCode, Expect, TreeBegin};

/// Walks `root` and sends its tree stream to `tx`.
pub fn walk_tree(
    root: &Path,
    follow_root: bool,
    expect: Expect,
    pool: &BufferPool,
    tx: &mpsc::Sender<TreeItem>,
) -> Result<(), Error> {
    let meta = if follow_root {
        fs::metadata(root)
    } else {
        fs::symlink_metadata(root)
    }
    .map_err(|err| Error::io(format_args!("cannot read {}", root.display()), err))?;
    check_expected(root, &meta, expect)?;
    let totals = count(root, &meta)?;
    send(tx, TreeItem::Begin(totals))?;

    // Depth-first, parents before children: (absolute path, relative path, metadata).
    let mut stack: Vec<(PathBuf, Vec<u8>, Metadata)> = vec![(root.to_owned(), Vec::new(), meta)];
    while let Some((path, rel, meta)) = stack.pop() {
        let Some(kind) = entry_kind(&path, &meta)? else {
            tracing::warn!(path = %path.display(), "skipping special file (socket, FIFO or device)");
            continue;
        };
        let entry = EntryMeta {
            path: ByteBuf::from(rel.clone()),
            kind: kind.clone(),
            mode: meta.mode() & 0o7777,
            mtime_sec: meta.mtime(),
            mtime_nsec: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
        };
        send(tx, TreeItem::Entry(entry))?;
        match kind {
            EntryKind::File { size } => {
                send_file(&path, size, rel.is_empty() && follow_root, pool, tx)?
            }
            EntryKind::Directory => {
                for (name, child_meta) in sorted_children(&path)?.into_iter().rev() {
                    let mut child_rel = rel.clone();
                    if !child_rel.is_empty() {
                        child_rel.push(b'/');
                    }
                    child_rel.extend_from_slice(name.as_os_str().as_bytes());
                    stack.push((path.join(&name), child_rel, child_meta));
                }
            }
            EntryKind::Symlink { .. } => {}
        }
    }
    send(tx, TreeItem::End)
}

fn send(tx: &mpsc::Sender<TreeItem>, item: TreeItem) -> Result<(), Error> {
    // The receiving side dropped the channel: the connection is gone.
    tx.blocking_send(item).map_err(|_| Error::Closed)
}

fn check_expected(root: &Path, meta: &Metadata, expect: Expect) -> Result<(), Error> {
    let wrong = |what: &str| {
        Err(Error::local(
            ErrorCode::WrongKind,
            format!("{} is not {what}", root.display()),
        ))
    };
    match expect {
        Expect::File if !meta.is_file() => wrong("a regular file"),
        Expect::Directory if !meta.is_dir() => wrong("a directory"),
        _ => Ok(()),
    }
}

fn entry_kind(path: &Path, meta: &Metadata) -> Result<Option<EntryKind>, Error> {
    let file_type = meta.file_type();
    Ok(if file_type.is_dir() {
        Some(EntryKind::Directory)
    } else if file_type.is_file() {
        Some(EntryKind::File { size: meta.len() })
    } else if file_type.is_symlink() {
        let target = fs::read_link(path)
            .map_err(|err| Error::io(format_args!("cannot read link {}", path.display()), err))?;
        Some(EntryKind::Symlink {
            target: ByteBuf::from(target.as_os_str().as_bytes().to_vec()),
        })
    } else {
        None
    })
}

fn sorted_children(dir: &Path) -> Result<Vec<(PathBuf, Metadata)>, Error> {
    let read_err = |err| Error::io(format_args!("cannot list {}", dir.display()), err);
    let mut children = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let meta = entry.metadata().map_err(|err| {
            Error::io(format_args!("cannot read {}", entry.path().display()), err)
        })?;
        children.push((PathBuf::from(entry.file_name()), meta));
    }
    children.sort_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
    Ok(children)
}

/// Totals of the tree, for progress reporting (a metadata-only walk).
fn count(root: &Path, meta: &Metadata) -> Result<TreeBegin, Error> {
    let mut totals = TreeBegin {
        entries: 0,
        bytes: 0,
    };
    let mut stack = vec![(root.to_owned(), meta.clone())];
    while let Some((path, meta)) = stack.pop() {
        totals.entries += 1;
        if meta.is_file() {
            totals.bytes += meta.len();
        } else if meta.is_dir() {
            stack.extend(
                sorted_children(&path)?
                    .into_iter()
                    .map(|(name, m)| (path.join(name), m)),
            );
        }
    }
    Ok(totals)
}

/// Sends exactly `size` bytes of the file, then its digest.
fn send_file(
    path: &Path,
    size: u64,
    follow: bool,
    pool: &BufferPool,
    tx: &mpsc::Sender<TreeItem>,
) -> Result<(), Error> {
    let read_err = |err| Error::io(format_args!("cannot read {}", path.display()), err);
    let mut options = fs::OpenOptions::new();
    options.read(true);
    if !follow {
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let mut file: File = options.open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(Error::local(
            ErrorCode::WrongKind,
            format!(
                "{} changed into something else than a file while being read",
                path.display()
            ),
        ));
    }
    let mut hasher = ContentDigest::new();
    let mut left = size;
    while left > 0 {
        let want = left.min(pool.chunk_len() as u64) as usize;
        let mut chunk = pool.get();
        let mut filled = 0;
        while filled < want {
            match file.read(&mut chunk[filled..want]) {
                Ok(0) => {
                    return Err(Error::local(
                        ErrorCode::Io,
                        format!("{} shrank while being read", path.display()),
                    ));
                }
                Ok(n) => filled += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(read_err(err)),
            }
        }
        hasher.update(&chunk[..want]);
        left -= want as u64;
        send(tx, TreeItem::Data(chunk.freeze(want)))?;
    }
    send(tx, TreeItem::FileEnd(hasher.finish()))
}
