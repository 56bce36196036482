//! SHA3-512 of files and directory trees.
//!
//! A **file** hash is the plain SHA3-512 of its bytes, the same value as
//! `openssl dgst -sha3-512 FILE` or `rhash --sha3-512 FILE`. It is computed in
//! [`HASH_CHUNK`] pieces, so memory stays constant whatever the file size.
//! OpenSSL's Keccak is used because it is the fastest one available here
//! (runtime-selected assembly); it is the same code the reference tools run.
//!
//! A **directory** hash is the SHA3-512 of a manifest of the tree:
//!
//! ```text
//! manifest = TAG || record*        TAG = "enclaves-framework dir-sha3-512 v1\0"
//! record   = 'D' || u64be(len(p)) || p                      directory
//!          | 'F' || u64be(len(p)) || p || SHA3-512(content)  regular file
//!          | 'L' || u64be(len(p)) || p || u64be(len(t)) || t symbolic link
//! ```
//!
//! `p` is the entry's path relative to the hashed directory, components
//! joined by `/`, as raw bytes; `t` is the link's target as stored (links are
//! never followed). Records are sorted by `p` as bytes; the directory itself
//! has no record, so an empty directory hashes to `SHA3-512(TAG)`. Modes,
//! owners and times are not part of the hash: two copies of a tree with the
//! same names, contents and links have the same hash. FIFOs, sockets and
//! devices cannot be hashed and fail the whole directory.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use openssl::hash::{Hasher, MessageDigest};

use crate::defs::{DIR_MANIFEST_TAG, HASH_CHUNK, SHA3_512_LEN};

/// What can go wrong while hashing.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Reading the file system failed.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The path is neither a regular file nor a directory (or, inside a
    /// directory, a symbolic link).
    #[error("{0}: not a regular file, directory or symbolic link")]
    Unsupported(PathBuf),
    /// OpenSSL refused to hash.
    #[error("SHA3-512: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// A SHA3-512 digest; shown and parsed as 128 lowercase hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha3Digest(pub [u8; SHA3_512_LEN]);

/// A string that is not 128 hexadecimal digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a SHA3-512 digest is {} hexadecimal digits", SHA3_512_LEN * 2)]
pub struct BadDigest;

impl Sha3Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Result<Self, HashError> {
        let mut hasher = Sha3Hasher::new()?;
        hasher.update(bytes)?;
        hasher.finish()
    }

    /// The raw 64 bytes.
    pub fn as_bytes(&self) -> &[u8; SHA3_512_LEN] {
        &self.0
    }

    /// Lowercase hexadecimal.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha3Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha3Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha3Digest({})", self.to_hex())
    }
}

impl FromStr for Sha3Digest {
    type Err = BadDigest;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; SHA3_512_LEN];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| BadDigest)?;
        Ok(Self(bytes))
    }
}

impl TryFrom<&[u8]> for Sha3Digest {
    type Error = BadDigest;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Ok(Self(bytes.try_into().map_err(|_| BadDigest)?))
    }
}

impl serde::Serialize for Sha3Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Sha3Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental SHA3-512.
pub struct Sha3Hasher(Hasher);

impl Sha3Hasher {
    /// A fresh hasher.
    pub fn new() -> Result<Self, HashError> {
        Ok(Self(Hasher::new(MessageDigest::sha3_512())?))
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), HashError> {
        Ok(self.0.update(bytes)?)
    }

    /// The digest of everything added.
    pub fn finish(mut self) -> Result<Sha3Digest, HashError> {
        let bytes = self.0.finish()?;
        Sha3Digest::try_from(&bytes[..])
            .map_err(|_| HashError::Crypto(openssl::error::ErrorStack::get()))
    }
}

/// SHA3-512 of everything `reader` yields, read in [`HASH_CHUNK`] pieces.
pub fn hash_reader(mut reader: impl Read) -> io::Result<Sha3Digest> {
    let mut hasher = Sha3Hasher::new().map_err(io::Error::other)?;
    let mut buffer = vec![0u8; HASH_CHUNK];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..read]).map_err(io::Error::other)?;
    }
    hasher.finish().map_err(io::Error::other)
}

/// SHA3-512 of a regular file (a symbolic link is followed).
pub fn hash_file(path: &Path) -> Result<Sha3Digest, HashError> {
    let io_error = |source| HashError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    if !file.metadata().map_err(io_error)?.is_file() {
        return Err(HashError::Unsupported(path.to_path_buf()));
    }
    hash_reader(file).map_err(io_error)
}

/// The manifest hash of a directory tree (see the module documentation).
pub fn hash_dir(root: &Path) -> Result<Sha3Digest, HashError> {
    let mut entries = Vec::new();
    collect(root, &mut Vec::new(), &mut entries)?;
    entries.sort_by(|a, b| a.relative.cmp(&b.relative));
    let mut manifest = Sha3Hasher::new()?;
    manifest.update(DIR_MANIFEST_TAG)?;
    for entry in &entries {
        let full = root.join(Path::new(std::ffi::OsStr::from_bytes(&entry.relative)));
        let (tag, tail) = match &entry.kind {
            EntryKind::Dir => (b'D', Vec::new()),
            EntryKind::File => (b'F', hash_file(&full)?.0.to_vec()),
            EntryKind::Link(target) => {
                let mut tail = length_prefix(target.len());
                tail.extend_from_slice(target);
                (b'L', tail)
            }
        };
        manifest.update(&[tag])?;
        manifest.update(&length_prefix(entry.relative.len()))?;
        manifest.update(&entry.relative)?;
        manifest.update(&tail)?;
    }
    manifest.finish()
}

/// Hashes a regular file or a directory tree, whichever `path` is (a
/// symbolic link given as `path` itself is followed).
pub fn hash_path(path: &Path) -> Result<Sha3Digest, HashError> {
    let metadata = fs::metadata(path).map_err(|source| HashError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if metadata.is_dir() {
        hash_dir(path)
    } else if metadata.is_file() {
        hash_file(path)
    } else {
        Err(HashError::Unsupported(path.to_path_buf()))
    }
}

/// One entry of a tree, by path relative to the hashed directory.
struct Entry {
    relative: Vec<u8>,
    kind: EntryKind,
}

enum EntryKind {
    Dir,
    File,
    Link(Vec<u8>),
}

fn length_prefix(len: usize) -> Vec<u8> {
    (len as u64).to_be_bytes().to_vec()
}

/// Lists `dir` (at `prefix` relative to the root) into `entries`, depth first
/// with an explicit stack so a deep tree cannot overflow the thread's stack.
fn collect(root: &Path, prefix: &mut Vec<u8>, entries: &mut Vec<Entry>) -> Result<(), HashError> {
    let mut pending: Vec<Vec<u8>> = vec![std::mem::take(prefix)];
    while let Some(relative_dir) = pending.pop() {
        let dir = root.join(Path::new(std::ffi::OsStr::from_bytes(&relative_dir)));
        let io_error = |source| HashError::Io {
            path: dir.clone(),
            source,
        };
        for item in fs::read_dir(&dir).map_err(io_error)? {
            let item = item.map_err(io_error)?;
            let mut relative = relative_dir.clone();
            if !relative.is_empty() {
                relative.push(b'/');
            }
            relative.extend_from_slice(item.file_name().as_bytes());
            let path = item.path();
            let file_type = item.file_type().map_err(|source| HashError::Io {
                path: path.clone(),
                source,
            })?;
            let kind = if file_type.is_dir() {
                pending.push(relative.clone());
                EntryKind::Dir
            } else if file_type.is_file() {
                EntryKind::File
            } else if file_type.is_symlink() {
                let target = fs::read_link(&path).map_err(|source| HashError::Io {
                    path: path.clone(),
                    source,
                })?;
                EntryKind::Link(target.as_os_str().as_bytes().to_vec())
            } else {
                return Err(HashError::Unsupported(path));
            };
            entries.push(Entry { relative, kind });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const ABC_SHA3_512: &str = "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0";

    #[test]
    fn file_hash_is_plain_sha3_512() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        fs::write(&path, b"abc").unwrap();
        assert_eq!(hash_file(&path).unwrap().to_hex(), ABC_SHA3_512);
        assert_eq!(hash_path(&path).unwrap().to_hex(), ABC_SHA3_512);
        assert_eq!(Sha3Digest::of(b"abc").unwrap().to_hex(), ABC_SHA3_512);
    }

    #[test]
    fn chunk_boundaries_do_not_change_the_hash() {
        let data: Vec<u8> = (0..HASH_CHUNK * 2 + 17)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let whole = Sha3Digest::of(&data).unwrap();
        assert_eq!(hash_reader(&data[..]).unwrap(), whole);
    }

    #[test]
    fn digest_hex_round_trips_and_rejects_bad_text() {
        let digest: Sha3Digest = ABC_SHA3_512.parse().unwrap();
        assert_eq!(digest.to_string(), ABC_SHA3_512);
        assert_eq!("abc".parse::<Sha3Digest>(), Err(BadDigest));
        assert_eq!(ABC_SHA3_512[2..].parse::<Sha3Digest>(), Err(BadDigest));
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(serde_json::from_str::<Sha3Digest>(&json).unwrap(), digest);
    }

    fn sample_tree(root: &Path) {
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::write(root.join("a/b/c.txt"), b"content").unwrap();
        fs::write(root.join("a.txt"), b"other").unwrap();
        symlink("a/b/c.txt", root.join("link")).unwrap();
    }

    #[test]
    fn dir_hash_depends_on_names_contents_and_links_only() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        sample_tree(one.path());
        sample_tree(two.path());
        let reference = hash_dir(one.path()).unwrap();
        assert_eq!(hash_dir(two.path()).unwrap(), reference);
        assert_eq!(hash_path(two.path()).unwrap(), reference);

        // Modes are not part of it.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(two.path().join("a.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(hash_dir(two.path()).unwrap(), reference);

        // Content, names, link targets and empty directories are.
        fs::write(two.path().join("a/b/c.txt"), b"Content").unwrap();
        assert_ne!(hash_dir(two.path()).unwrap(), reference);
        fs::write(two.path().join("a/b/c.txt"), b"content").unwrap();
        fs::rename(two.path().join("a.txt"), two.path().join("b.txt")).unwrap();
        assert_ne!(hash_dir(two.path()).unwrap(), reference);
        fs::rename(two.path().join("b.txt"), two.path().join("a.txt")).unwrap();
        fs::remove_file(two.path().join("link")).unwrap();
        symlink("a.txt", two.path().join("link")).unwrap();
        assert_ne!(hash_dir(two.path()).unwrap(), reference);
        fs::remove_file(two.path().join("link")).unwrap();
        symlink("a/b/c.txt", two.path().join("link")).unwrap();
        assert_eq!(hash_dir(two.path()).unwrap(), reference);
        fs::remove_dir(two.path().join("empty")).unwrap();
        assert_ne!(hash_dir(two.path()).unwrap(), reference);
    }

    #[test]
    fn a_file_moved_across_a_directory_boundary_changes_the_hash() {
        let one = tempfile::tempdir().unwrap();
        fs::create_dir(one.path().join("ab")).unwrap();
        fs::write(one.path().join("ab/c"), b"x").unwrap();
        let two = tempfile::tempdir().unwrap();
        fs::create_dir(two.path().join("a")).unwrap();
        fs::write(two.path().join("a/bc"), b"x").unwrap();
        assert_ne!(hash_dir(one.path()).unwrap(), hash_dir(two.path()).unwrap());
    }

    #[test]
    fn empty_dir_is_the_hash_of_the_tag() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            hash_dir(dir.path()).unwrap(),
            Sha3Digest::of(DIR_MANIFEST_TAG).unwrap()
        );
    }

    #[test]
    fn special_files_and_missing_paths_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix_mkfifo(&fifo);
        assert!(matches!(hash_path(&fifo), Err(HashError::Unsupported(_))));
        assert!(matches!(
            hash_dir(dir.path()),
            Err(HashError::Unsupported(_))
        ));
        assert!(matches!(
            hash_path(&dir.path().join("missing")),
            Err(HashError::Io { .. })
        ));
    }

    fn nix_mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
