//! Walking a tree: watch every directory first, then list it.
//!
//! A directory is watched before its entries are read, so a file created
//! while the walk runs is either listed or reported by inotify, never
//! missed. Symbolic links are not followed; ignored paths are skipped (an
//! ignored directory is neither watched nor entered). Files are returned
//! with their [`Stamp`] so a rescan can skip what it already hashed.

use std::path::{Path, PathBuf};

use crate::filter::Filter;
use crate::hasher::Stamp;
use crate::watch::Watcher;

/// What a walk found.
#[derive(Debug, Default)]
pub struct Found {
    /// Directories, each now watched.
    pub dirs: Vec<PathBuf>,
    /// Regular files with their stamps.
    pub files: Vec<(PathBuf, Stamp)>,
}

/// Walks `top` (a directory, watched too), adding watches on the way.
/// Entries that vanish during the walk are skipped; a directory that
/// cannot be watched or read is logged and skipped.
pub fn walk(top: &Path, filter: &Filter, watcher: &mut Watcher) -> Found {
    let mut found = Found::default();
    let mut stack = vec![top.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Err(error) = watcher.add(&dir) {
            if error.raw_os_error() != Some(libc::ENOENT) {
                tracing::warn!(dir = %dir.display(), %error, "cannot watch directory");
            }
            continue;
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "cannot list directory");
                continue;
            }
        };
        found.dirs.push(dir);
        for entry in entries.flatten() {
            let path = entry.path();
            // DirEntry::metadata does not follow symbolic links.
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let is_dir = metadata.is_dir();
            if filter.is_ignored(&path, is_dir) {
                continue;
            }
            if is_dir {
                stack.push(path);
            } else if metadata.is_file() {
                found.files.push((path, Stamp::of(&metadata)));
            }
        }
    }
    found
}
