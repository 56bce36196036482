//! The inotify watches: one per watched directory, and which path each
//! watch descriptor stands for.
//!
//! inotify watches inodes, not names: when a watched directory is renamed
//! inside the tree, its watch (and those below it) keep working and only
//! the paths must change ([`Watcher::rename`]). Adding a watch for an
//! inode that already has one returns the same descriptor; the map then
//! follows the new path.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use inotify::{WatchDescriptor, Watches};

use crate::defs::WATCH_MASK;

/// Watch descriptors and the directories they stand for.
#[derive(Debug)]
pub struct Watcher {
    watches: Watches,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
    by_path: BTreeMap<PathBuf, WatchDescriptor>,
}

impl Watcher {
    /// An empty set over an inotify instance's `watches`.
    pub fn new(watches: Watches) -> Self {
        Self {
            watches,
            by_wd: HashMap::new(),
            by_path: BTreeMap::new(),
        }
    }

    /// Watches directory `dir` (not what is below it).
    pub fn add(&mut self, dir: &Path) -> io::Result<()> {
        let wd = self.watches.add(dir, WATCH_MASK)?;
        if let Some(old) = self.by_wd.insert(wd.clone(), dir.to_path_buf())
            && old != dir
            && self.by_path.get(&old) == Some(&wd)
        {
            self.by_path.remove(&old);
        }
        self.by_path.insert(dir.to_path_buf(), wd);
        Ok(())
    }

    /// The directory a descriptor stands for.
    pub fn path_of(&self, wd: &WatchDescriptor) -> Option<&Path> {
        self.by_wd.get(wd).map(PathBuf::as_path)
    }

    /// Forgets a descriptor the kernel dropped (`IN_IGNORED`).
    pub fn forget(&mut self, wd: &WatchDescriptor) {
        if let Some(path) = self.by_wd.remove(wd)
            && self.by_path.get(&path) == Some(wd)
        {
            self.by_path.remove(&path);
        }
    }

    /// The watched directories at or below `dir`.
    pub fn dirs_under(&self, dir: &Path) -> Vec<PathBuf> {
        self.by_path
            .range(dir.to_path_buf()..)
            .take_while(|(path, _)| path.starts_with(dir))
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// Stops watching `dir` and everything below it.
    pub fn remove_under(&mut self, dir: &Path) {
        for path in self.dirs_under(dir) {
            self.remove_one(&path);
        }
    }

    /// Stops watching exactly `dir`.
    pub fn remove_one(&mut self, dir: &Path) {
        if let Some(wd) = self.by_path.remove(dir) {
            self.by_wd.remove(&wd);
            // Fails when the kernel already dropped it (directory deleted).
            let _ = self.watches.remove(wd);
        }
    }

    /// Records that directory `from` (and everything below) is now `to`.
    pub fn rename(&mut self, from: &Path, to: &Path) {
        for old in self.dirs_under(from) {
            let Some(wd) = self.by_path.remove(&old) else {
                continue;
            };
            let new = match old.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
                Ok(rest) => to.join(rest),
                Err(_) => continue,
            };
            self.by_wd.insert(wd.clone(), new.clone());
            self.by_path.insert(new, wd);
        }
    }

    /// How many directories are watched.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}
