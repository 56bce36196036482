//! Which files some process has open for writing, from `/proc`.
//!
//! inotify tells when a file is closed after writing, but a walk (start-up,
//! a directory created or moved in, a rescan after overflow) finds files
//! without knowing whether a writer is still busy with them. Before hashing
//! what a walk found, the monitor asks this module: a file open for writing
//! (`O_WRONLY` or `O_RDWR` in `/proc/PID/fdinfo/FD`) is skipped, and hashed
//! when its writer closes it (its directory is watched by then).
//!
//! Processes and descriptors that vanish while being read are skipped; a
//! `/proc` that cannot be read at all gives an empty set (files are then
//! hashed as found, and again when closed).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A file's identity: device and inode.
pub type FileId = (u64, u64);

/// The files open for writing by any process (that this one may inspect).
pub fn open_for_writing() -> HashSet<FileId> {
    let mut found = HashSet::new();
    let Ok(processes) = fs::read_dir("/proc") else {
        return found;
    };
    for process in processes.flatten() {
        let name = process.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(fds) = fs::read_dir(process.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            if !fs::read_to_string(fd.path()).is_ok_and(|info| writable(&info)) {
                continue;
            }
            let target = process.path().join("fd").join(fd.file_name());
            // stat (not lstat) of /proc/PID/fd/N is the open file itself.
            if let Ok(metadata) = fs::metadata(&target)
                && metadata.is_file()
            {
                found.insert((metadata.dev(), metadata.ino()));
            }
        }
    }
    found
}

/// Whether an fdinfo text shows a descriptor open for writing.
fn writable(info: &str) -> bool {
    info.lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        .is_some_and(|flags| {
            let mode = flags & 0o3; // O_ACCMODE
            mode == 0o1 || mode == 0o2 // O_WRONLY, O_RDWR
        })
}

/// The identity of the file at `path` (not following a link).
pub fn id_of(path: &Path) -> Option<FileId> {
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_in_octal() {
        assert!(writable("pos:\t0\nflags:\t0100001\nmnt_id:\t1\n"));
        assert!(writable("pos:\t0\nflags:\t02\n"));
        assert!(!writable("pos:\t0\nflags:\t0100000\n"));
        assert!(!writable("garbage"));
    }

    #[test]
    fn a_file_held_open_for_writing_is_found_and_a_closed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        let closed = dir.path().join("closed");
        let reading = dir.path().join("reading");
        std::fs::write(&closed, b"done").unwrap();
        std::fs::write(&reading, b"read only").unwrap();
        let _writer = std::fs::File::create(&open).unwrap();
        let _reader = std::fs::File::open(&reading).unwrap();
        let writers = open_for_writing();
        assert!(writers.contains(&id_of(&open).unwrap()));
        assert!(!writers.contains(&id_of(&closed).unwrap()));
        assert!(!writers.contains(&id_of(&reading).unwrap()));
    }
}
