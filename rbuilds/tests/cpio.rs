#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The ramdisk writer: byte-identical archives for identical trees whatever
//! the creation order, mtimes and group/other permission bits; readable by
//! GNU cpio; clear errors on what it cannot archive or read.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use rbuilds::cpio::{self, CpioError, CpioOptions};

const OPTIONS: CpioOptions = CpioOptions {
    mtime: 1_700_000_000,
};

/// The files of the test tree: (path, contents, executable).
const FILES: &[(&str, &[u8], bool)] = &[
    ("init", b"\x7fELF pretend init", true),
    ("etc/init.yaml", b"service_dir: /service\n", false),
    ("rootfs/bin/busybox", b"busybox bytes", true),
    (
        "rootfs/service/pipeline.service",
        b"ExecStart = \"/usr/bin/pipeline\"\n",
        false,
    ),
    (
        "rootfs/a-b",
        b"sorts between rootfs/a and rootfs/a/x",
        false,
    ),
    ("rootfs/a/x", b"", false),
    ("rootfs/empty-file", b"", false),
    ("rootfs/odd", b"12345", false), // length not a multiple of 4
];
const LINKS: &[(&str, &str)] = &[("rootfs/bin/sh", "busybox"), ("rootfs/bin/ls", "busybox")];
const EMPTY_DIRS: &[&str] = &["rootfs/tmp", "rootfs/proc", "dev"];

/// Builds the tree in `root`, creating entries in `order` (forward or
/// reverse), with mtimes and group/other permission bits that vary.
fn build_tree(root: &Path, reverse: bool, skew: u64) {
    let mut files: Vec<_> = FILES.to_vec();
    let mut links: Vec<_> = LINKS.to_vec();
    let mut dirs: Vec<_> = EMPTY_DIRS.to_vec();
    if reverse {
        files.reverse();
        links.reverse();
        dirs.reverse();
    }
    for dir in dirs {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    for (i, (name, data, exec)) in files.iter().enumerate() {
        let path = root.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        let mode = match (exec, reverse) {
            (true, false) => 0o755,
            (true, true) => 0o775,
            (false, false) => 0o644,
            (false, true) => 0o664,
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let mtime =
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + skew * 1000 + i as u64);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    for (name, target) in links {
        symlink(target, root.join(name)).unwrap();
    }
}

fn archive(root: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    cpio::write_tree(root, &mut out, OPTIONS).unwrap();
    out
}

#[test]
fn identical_trees_give_identical_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    build_tree(a.path(), false, 1);
    build_tree(b.path(), true, 7);
    let bytes_a = archive(a.path());
    let bytes_b = archive(b.path());
    assert_eq!(bytes_a.len(), bytes_b.len());
    assert!(bytes_a == bytes_b, "archives differ");
    assert_eq!(bytes_a.len() % 4, 0, "archive not 4-byte aligned");

    // A change of content, of an execute bit or of a name changes the bytes.
    fs::write(b.path().join("rootfs/odd"), b"12346").unwrap();
    assert!(archive(b.path()) != bytes_a);
    fs::write(b.path().join("rootfs/odd"), b"12345").unwrap();
    assert!(archive(b.path()) == bytes_a);
    fs::set_permissions(
        b.path().join("rootfs/odd"),
        fs::Permissions::from_mode(0o744),
    )
    .unwrap();
    assert!(archive(b.path()) != bytes_a);
}

#[test]
fn entries_are_sorted_with_fixed_owner_mtime_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path(), true, 3);
    let entries = cpio::list(archive(dir.path()).as_slice()).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // Every parent directory comes before what it holds.
    for (i, name) in names.iter().enumerate() {
        if let Some((parent, _)) = name.rsplit_once('/') {
            let p = names.iter().position(|n| *n == parent).unwrap();
            assert!(p < i, "{parent} after {name}");
        }
    }
    for e in &entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, OPTIONS.mtime), "{}", e.name);
    }
    let mode = |n: &str| entries.iter().find(|e| e.name == n).unwrap().mode;
    assert_eq!(mode("init"), 0o100755);
    assert_eq!(mode("rootfs/odd"), 0o100644);
    assert_eq!(mode("rootfs/bin"), 0o040755);
    assert_eq!(mode("rootfs/bin/sh"), 0o120777);
    let count = FILES.len() + LINKS.len();
    assert!(entries.len() > count);
}

#[test]
fn gnu_cpio_extracts_the_archive_identically() {
    let src = tempfile::tempdir().unwrap();
    build_tree(src.path(), false, 0);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("ramdisk.cpio");
    let summary = cpio::write_tree_to_file(src.path(), &file, OPTIONS).unwrap();
    assert_eq!(summary.bytes, fs::metadata(&file).unwrap().len());
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    let status = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames", "-F"])
        .arg(&file)
        .current_dir(&out)
        .status()
        .expect("GNU cpio is installed (tools/devtool deps)");
    assert!(status.success());
    for (name, data, exec) in FILES {
        let path = out.join(name);
        assert_eq!(fs::read(&path).unwrap(), *data, "{name}");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111 != 0, *exec, "{name}");
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(
            mtime,
            SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(OPTIONS.mtime))
        );
    }
    for (name, target) in LINKS {
        assert_eq!(fs::read_link(out.join(name)).unwrap(), Path::new(target));
    }
    for dir in EMPTY_DIRS {
        assert!(out.join(dir).is_dir(), "{dir}");
    }
}

#[test]
fn unsupported_files_are_refused_and_no_archive_is_left() {
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path(), false, 0);
    let fifo = dir.path().join("rootfs/fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("ramdisk.cpio");
    let err = cpio::write_tree_to_file(dir.path(), &file, OPTIONS).unwrap_err();
    assert!(
        matches!(err, CpioError::Unsupported(ref p) if p == &fifo),
        "{err}"
    );
    assert!(err.to_string().contains("unsupported file type"));
    assert_eq!(fs::read_dir(work.path()).unwrap().count(), 0);
}

#[test]
fn a_missing_root_is_a_clear_error() {
    let err = cpio::write_tree(Path::new("/nonexistent/rbuilds"), Vec::new(), OPTIONS).unwrap_err();
    assert!(
        err.to_string().starts_with("/nonexistent/rbuilds: "),
        "{err}"
    );
}

#[test]
fn malformed_archives_are_rejected_with_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path(), false, 0);
    let good = archive(dir.path());

    let cut = &good[..good.len() - 200];
    assert!(matches!(cpio::list(cut), Err(CpioError::Malformed { .. })));

    let mut bad_magic = good.clone();
    bad_magic[5] = b'7'; // 070707: the old ASCII format
    let err = cpio::list(bad_magic.as_slice()).unwrap_err();
    assert!(err.to_string().contains("at byte 110: bad magic"), "{err}");

    // A name length far beyond PATH_MAX is refused before anything is allocated.
    let mut huge_name = good.clone();
    huge_name[94..102].copy_from_slice(b"7FFFFFFF");
    let err = cpio::list(huge_name.as_slice()).unwrap_err();
    assert!(err.to_string().contains("name length"), "{err}");

    assert!(matches!(
        cpio::list(&b"not an archive at all, but long enough to hold a header of one hundred and ten bytes.........."[..]),
        Err(CpioError::Malformed { .. })
    ));
}
