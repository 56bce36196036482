//! Paths on the wire: conversion to and from bytes, and the checks that keep
//! a peer inside the tree it is allowed to touch.
//!
//! Entry names in a tree stream must be relative, made of plain components
//! (no `..`, no `.`, no empty component, no NUL) within `PATH_MAX` and
//! `NAME_MAX`. Remote paths in requests must be absolute and free of `..`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde_bytes::ByteBuf;

use crate::defs::{MAX_NAME_LEN, MAX_PATH_LEN};
use crate::error::Error;
use crate::protocol::ErrorCode;

/// A path as wire bytes.
pub fn to_wire(path: &Path) -> ByteBuf {
    ByteBuf::from(path.as_os_str().as_bytes().to_vec())
}

/// Wire bytes as a path (no checks).
pub fn from_wire(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

fn refused(message: String) -> Error {
    Error::local(ErrorCode::PathRefused, format!("refused: {message}"))
}

fn check_name(name: &[u8], whole: &[u8]) -> Result<(), Error> {
    let shown = String::from_utf8_lossy(whole);
    match name {
        b"" => Err(refused(format!("path {shown:?} has an empty component"))),
        b"." | b".." => Err(refused(format!(
            "path {shown:?} contains {:?}",
            String::from_utf8_lossy(name)
        ))),
        _ if name.len() > MAX_NAME_LEN => Err(refused(format!(
            "path {shown:?} has a component longer than {MAX_NAME_LEN} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Validates the relative path of a tree entry; the empty path is the root.
pub fn safe_relative(bytes: &[u8]) -> Result<PathBuf, Error> {
    if bytes.is_empty() {
        return Ok(PathBuf::new());
    }
    if bytes.len() > MAX_PATH_LEN {
        return Err(refused(format!(
            "entry path longer than {MAX_PATH_LEN} bytes"
        )));
    }
    let shown = String::from_utf8_lossy(bytes);
    if bytes.contains(&0) {
        return Err(refused(format!("entry path {shown:?} contains a NUL byte")));
    }
    if bytes[0] == b'/' {
        return Err(refused(format!("entry path {shown:?} is absolute")));
    }
    for name in bytes.split(|&b| b == b'/') {
        check_name(name, bytes)?;
    }
    Ok(from_wire(bytes))
}

/// Validates a single file name (a path with exactly one component).
pub fn safe_name(bytes: &[u8]) -> Result<PathBuf, Error> {
    if bytes.contains(&b'/') {
        return Err(refused(format!(
            "name {:?} contains '/'",
            String::from_utf8_lossy(bytes)
        )));
    }
    if bytes.contains(&0) {
        return Err(refused("name contains a NUL byte".into()));
    }
    check_name(bytes, bytes)?;
    Ok(from_wire(bytes))
}

/// Validates an absolute path from a request and drops `.` components and
/// repeated slashes; `..` is refused, not resolved.
pub fn absolute_clean(bytes: &[u8]) -> Result<PathBuf, Error> {
    let shown = String::from_utf8_lossy(bytes);
    if bytes.len() > MAX_PATH_LEN {
        return Err(refused(format!("path longer than {MAX_PATH_LEN} bytes")));
    }
    if bytes.contains(&0) {
        return Err(refused(format!("path {shown:?} contains a NUL byte")));
    }
    let path = from_wire(bytes);
    if !path.is_absolute() {
        return Err(Error::local(
            ErrorCode::BadRequest,
            format!("remote path {shown:?} must be absolute"),
        ));
    }
    let mut clean = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => {
                if name.len() > MAX_NAME_LEN {
                    return Err(refused(format!(
                        "path {shown:?} has a component longer than {MAX_NAME_LEN} bytes"
                    )));
                }
                clean.push(name);
            }
            Component::ParentDir => return Err(refused(format!("path {shown:?} contains \"..\""))),
            Component::Prefix(_) => {
                return Err(refused(format!("path {shown:?} is not a Unix path")));
            }
        }
    }
    Ok(clean)
}

/// Joins a validated relative path `rel` (slash-separated) to `base`.
pub fn join_relative(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        base.to_owned()
    } else {
        base.join(rel)
    }
}

/// The last component of `path` as wire bytes, for `docker cp`-style placement.
pub fn last_name(path: &Path) -> Option<ByteBuf> {
    path.file_name()
        .map(|name| ByteBuf::from(name.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn relative_paths() {
        assert_eq!(safe_relative(b"").unwrap(), PathBuf::new());
        assert_eq!(safe_relative(b"a/b c/d").unwrap(), PathBuf::from("a/b c/d"));
        assert_eq!(
            safe_relative(b"\xff\xfe").unwrap().as_os_str().as_bytes(),
            b"\xff\xfe"
        );
        for bad in [
            &b"/etc/passwd"[..],
            b"..",
            b"a/../../b",
            b"a/./b",
            b"a//b",
            b"a/",
            b"a\0b",
            &[b'x'; 256],
        ] {
            let err = safe_relative(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::PathRefused, "{bad:?}");
        }
        assert!(safe_relative(&[b'a'; MAX_PATH_LEN + 1]).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(safe_name(b"file.txt").unwrap(), PathBuf::from("file.txt"));
        for bad in [&b"a/b"[..], b"..", b".", b"", b"x\0"] {
            assert!(safe_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(
            absolute_clean(b"/a//b/./c/").unwrap(),
            PathBuf::from("/a/b/c")
        );
        assert_eq!(absolute_clean(b"/").unwrap(), PathBuf::from("/"));
        assert_eq!(
            absolute_clean(b"relative").unwrap_err().code(),
            ErrorCode::BadRequest
        );
        assert_eq!(
            absolute_clean(b"/a/../etc").unwrap_err().code(),
            ErrorCode::PathRefused
        );
        assert_eq!(
            absolute_clean(b"/a\0").unwrap_err().code(),
            ErrorCode::PathRefused
        );
    }

    proptest! {
        #[test]
        fn accepted_relative_paths_stay_below_the_base(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(rel) = safe_relative(&bytes) {
                let joined = join_relative(Path::new("/base"), &rel);
                prop_assert!(joined.starts_with("/base"));
                prop_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
            }
        }

        #[test]
        fn accepted_absolute_paths_have_no_parent_components(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(path) = absolute_clean(&bytes) {
                prop_assert!(path.is_absolute());
                prop_assert!(path.components().all(|c| !matches!(c, Component::ParentDir)));
            }
        }
    }
}
