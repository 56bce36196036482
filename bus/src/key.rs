//! File paths as NATS KV keys.
//!
//! A KV key may hold only `[-/_=.A-Za-z0-9]`, and `.` separates tokens that
//! must not be empty. A path is encoded byte by byte: bytes in
//! `[-/_A-Za-z0-9]` are kept, every other byte (`.` and `=` included) becomes
//! `=XX`, its value in two uppercase hexadecimal digits:
//!
//! ```
//! use std::path::Path;
//! assert_eq!(bus::key::encode(Path::new("/data/a.txt")), "/data/a=2Etxt");
//! assert_eq!(bus::key::decode("/data/a=2Etxt").unwrap(), Path::new("/data/a.txt"));
//! ```
//!
//! The encoding works for any byte string (Unix paths need not be UTF-8) and
//! is reversible. [`decode`] accepts only what [`encode`] produces, so each
//! path has exactly one key: `=` must be followed by two uppercase hex
//! digits naming a byte that is not kept as itself.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The escape character.
const ESCAPE: u8 = b'=';
/// Hex digits of an escape.
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// A key that [`encode`] cannot have produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A character a key may not hold unescaped.
    #[error("key {key:?}: byte {byte:#04x} at {at} is not allowed unescaped")]
    Unexpected {
        /// The key.
        key: String,
        /// The offending byte.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// `=` not followed by two uppercase hex digits of a byte that needs
    /// escaping.
    #[error("key {key:?}: bad escape at {at}")]
    BadEscape {
        /// The key.
        key: String,
        /// Offset of the `=`.
        at: usize,
    },
}

/// Whether `byte` stands for itself in a key.
fn is_kept(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'/' | b'_')
}

/// The KV key of `path`.
pub fn encode(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    let mut key = String::with_capacity(bytes.len());
    for &byte in bytes {
        if is_kept(byte) {
            key.push(char::from(byte));
        } else {
            key.push(char::from(ESCAPE));
            key.push(char::from(HEX_UPPER[usize::from(byte >> 4)]));
            key.push(char::from(HEX_UPPER[usize::from(byte & 0x0f)]));
        }
    }
    key
}

/// The path whose key is `key`.
pub fn decode(key: &str) -> Result<PathBuf, KeyError> {
    let bytes = key.as_bytes();
    let mut path = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if is_kept(byte) {
            path.push(byte);
            at += 1;
        } else if byte == ESCAPE {
            let bad = || KeyError::BadEscape {
                key: key.to_owned(),
                at,
            };
            let high = bytes
                .get(at + 1)
                .and_then(|&d| hex_digit(d))
                .ok_or_else(bad)?;
            let low = bytes
                .get(at + 2)
                .and_then(|&d| hex_digit(d))
                .ok_or_else(bad)?;
            let value = (high << 4) | low;
            if is_kept(value) {
                return Err(bad());
            }
            path.push(value);
            at += 3;
        } else {
            return Err(KeyError::Unexpected {
                key: key.to_owned(),
                byte,
                at,
            });
        }
    }
    Ok(PathBuf::from(OsStr::from_bytes(&path)))
}

/// The value of an uppercase hex digit.
fn hex_digit(digit: u8) -> Option<u8> {
    HEX_UPPER
        .iter()
        .position(|&d| d == digit)
        .and_then(|i| u8::try_from(i).ok())
}

/// The key prefix of everything under directory `dir`: the key of `dir`
/// followed by `/` (so `/data` does not match `/database`).
pub fn dir_prefix(dir: &Path) -> String {
    let mut prefix = encode(dir);
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(encode(Path::new("/data/a.txt")), "/data/a=2Etxt");
        assert_eq!(encode(Path::new("/x=y z")), "/x=3Dy=20z");
        assert_eq!(encode(Path::new("/a*>b")), "/a=2A=3Eb");
        assert_eq!(encode(Path::new("/é")), "/=C3=A9");
        assert_eq!(decode("/x=3Dy=20z").unwrap(), Path::new("/x=y z"));
        assert_eq!(dir_prefix(Path::new("/data")), "/data/");
        assert_eq!(dir_prefix(Path::new("/")), "/");
    }

    #[test]
    fn rejects_what_encode_never_makes() {
        for (key, at) in [
            ("/a=2etxt", 2),
            ("/a=2", 2),
            ("/a=", 2),
            ("=41", 0),
            ("/a=G0", 2),
        ] {
            assert_eq!(
                decode(key),
                Err(KeyError::BadEscape {
                    key: key.into(),
                    at
                }),
                "{key}"
            );
        }
        assert!(matches!(
            decode("/a.txt"),
            Err(KeyError::Unexpected {
                byte: b'.',
                at: 2,
                ..
            })
        ));
        assert!(matches!(
            decode("/a b"),
            Err(KeyError::Unexpected { byte: b' ', .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trips_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let path = PathBuf::from(OsStr::from_bytes(&bytes));
            let key = encode(&path);
            prop_assert!(key.bytes().all(|b| is_kept(b) || b == ESCAPE || b.is_ascii_hexdigit()));
            prop_assert!(!key.contains('.'));
            prop_assert_eq!(decode(&key).unwrap(), path);
        }

        #[test]
        fn one_key_per_path(key in "(=[0-9A-Fa-f]{2}|[-/_.=A-Za-z0-9]){0,20}") {
            if let Ok(path) = decode(&key) {
                prop_assert_eq!(encode(&path), key);
            }
        }

        #[test]
        fn prefix_matches_exactly_the_paths_below(
            dir in "/[a-z.]{1,6}",
            name in "[a-z.]{1,6}",
            other in "[a-z.]{1,6}",
        ) {
            let prefix = dir_prefix(Path::new(&dir));
            let inside = encode(&Path::new(&dir).join(&name));
            prop_assert!(inside.starts_with(&prefix));
            let sibling = format!("{dir}{other}");
            prop_assert!(!encode(Path::new(&sibling)).starts_with(&prefix));
        }
    }
}
