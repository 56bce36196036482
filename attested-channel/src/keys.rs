//! Static X25519 keys and their files.
//!
//! ```text
//! KEY (mode 0600):  # comment lines
//!                   noise-x25519-private BASE64(32-byte private key)
//! KEY.pub:          noise-x25519 BASE64(32-byte public key) COMMENT
//! ```
//!
//! A `.pub` line is also a valid `authorized_keys` line (without options),
//! so `cat KEY.pub >> authorized_keys` authorises a key with no permissions.
//! Private key files readable by group or others are refused, as OpenSSH
//! refuses them.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use curve25519_dalek::montgomery::MontgomeryPoint;

use crate::defs::{KEY_LEN, KEY_TYPE, MAX_KEY_FILE, PRIVATE_KEY_TYPE};

/// What can go wrong with a key or its file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// The file is larger than any key file.
    #[error("{}: larger than {MAX_KEY_FILE} bytes: not a key file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A private key file others may read.
    #[error("{}: mode {mode:04o} lets others read this private key: chmod 600 it", path.display())]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The text is not a key of the expected form.
    #[error("{}{why}", where_.as_deref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Malformed {
        /// The file, when known.
        where_: Option<PathBuf>,
        /// What is wrong.
        why: String,
    },
    /// `keygen` would overwrite an existing file.
    #[error("{} exists: remove it first (keys are never overwritten)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
}

impl KeyError {
    fn malformed(why: impl Into<String>) -> Self {
        Self::Malformed {
            where_: None,
            why: why.into(),
        }
    }

    fn in_file(self, path: &Path) -> Self {
        match self {
            Self::Malformed { why, .. } => Self::Malformed {
                where_: Some(path.to_owned()),
                why,
            },
            other => other,
        }
    }
}

/// An X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key from a slice, which must be 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        <[u8; KEY_LEN]>::try_from(bytes).map(Self).map_err(|_| {
            KeyError::malformed(format!("a key is {KEY_LEN} bytes, not {}", bytes.len()))
        })
    }

    /// Its 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Standard base64 of the key (as in key files).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Decodes standard base64 (with padding) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(text)
            .map_err(|e| KeyError::malformed(format!("the key is not valid base64: {e}")))?;
        Self::from_slice(&bytes)
    }

    /// The short form shown in logs: key type and the first 12 base64 digits.
    pub fn short(&self) -> String {
        let text = self.to_base64();
        format!("{KEY_TYPE}:{}", &text[..12])
    }

    /// The `.pub` line: `noise-x25519 BASE64 COMMENT`.
    pub fn to_line(&self, comment: &str) -> String {
        if comment.is_empty() {
            format!("{KEY_TYPE} {}", self.to_base64())
        } else {
            format!("{KEY_TYPE} {} {comment}", self.to_base64())
        }
    }

    /// Reads a `.pub` file (its first non-comment line).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_small(path)?;
        let line = key_line(&text)
            .ok_or_else(|| KeyError::malformed("no key in the file").in_file(path))?;
        line.parse().map_err(|e: KeyError| e.in_file(path))
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    /// Parses `noise-x25519 BASE64 [COMMENT]`.
    fn from_str(line: &str) -> Result<Self, KeyError> {
        let mut words = line.split_ascii_whitespace();
        match (words.next(), words.next()) {
            (Some(KEY_TYPE), Some(key)) => Self::from_base64(key),
            (Some(other), _) if other != KEY_TYPE => Err(KeyError::malformed(format!(
                "unknown key type {other:?} (expected {KEY_TYPE})"
            ))),
            _ => Err(KeyError::malformed(format!(
                "expected \"{KEY_TYPE} BASE64\""
            ))),
        }
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line(""))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.short())
    }
}

/// A static X25519 key pair.
#[derive(Clone)]
pub struct StaticKey {
    private: [u8; KEY_LEN],
    public: PublicKey,
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Drop for StaticKey {
    fn drop(&mut self) {
        self.private = [0; KEY_LEN];
    }
}

impl StaticKey {
    /// A fresh key pair from the operating system's random generator (the
    /// server's key at each start: in memory only, never written).
    pub fn generate() -> Result<Self, KeyError> {
        let params = crate::defs::noise_params()
            .map_err(|e| KeyError::malformed(format!("cannot make a key: {e}")))?;
        let pair = snow::Builder::new(params)
            .generate_keypair()
            .map_err(|e| KeyError::malformed(format!("cannot make a key: {e}")))?;
        let private = <[u8; KEY_LEN]>::try_from(pair.private.as_slice())
            .map_err(|_| KeyError::malformed("the key generator made a key of the wrong size"))?;
        Ok(Self::from_private(private))
    }

    /// The pair of a private key (its public key computed from it).
    pub fn from_private(private: [u8; KEY_LEN]) -> Self {
        let public = MontgomeryPoint::mul_base_clamped(private).to_bytes();
        Self {
            private,
            public: PublicKey(public),
        }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    pub(crate) fn private_bytes(&self) -> &[u8; KEY_LEN] {
        &self.private
    }

    /// The private key file's text.
    pub fn to_private_text(&self) -> String {
        format!(
            "# attested-channel private key: keep it secret (mode 0600)\n# public: {}\n{PRIVATE_KEY_TYPE} {}\n",
            self.public,
            STANDARD.encode(self.private)
        )
    }

    /// Parses a private key file's text.
    pub fn from_private_text(text: &str) -> Result<Self, KeyError> {
        let line = key_line(text).ok_or_else(|| KeyError::malformed("no key in the file"))?;
        let mut words = line.split_ascii_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(PRIVATE_KEY_TYPE), Some(key), None) => {
                let bytes = STANDARD.decode(key).map_err(|e| {
                    KeyError::malformed(format!("the key is not valid base64: {e}"))
                })?;
                let private = <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
                    KeyError::malformed(format!("a key is {KEY_LEN} bytes, not {}", bytes.len()))
                })?;
                Ok(Self::from_private(private))
            }
            (Some(KEY_TYPE), ..) => Err(KeyError::malformed(
                "this is a public key: give the private key file (without .pub)",
            )),
            _ => Err(KeyError::malformed(format!(
                "expected \"{PRIVATE_KEY_TYPE} BASE64\""
            ))),
        }
    }

    /// Reads a private key file; refuses one that others may read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen {
                path: path.to_owned(),
                mode,
            });
        }
        let text = read_small(path)?;
        Self::from_private_text(&text).map_err(|e| e.in_file(path))
    }

    /// `keygen`: writes a new key to `path` (mode 0600) and its public key
    /// to `path.pub`; never overwrites either.
    pub fn generate_files(path: &Path, comment: &str) -> Result<Self, KeyError> {
        let public_path = pub_path(path);
        for existing in [path, public_path.as_path()] {
            if existing.exists() {
                return Err(KeyError::Exists {
                    path: existing.to_owned(),
                });
            }
        }
        let key = Self::generate()?;
        write_new(path, key.to_private_text().as_bytes(), 0o600)?;
        write_new(
            &public_path,
            format!("{}\n", key.public.to_line(comment)).as_bytes(),
            0o644,
        )?;
        Ok(key)
    }
}

/// `FILE.pub` for `FILE`.
pub fn pub_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// The first line that is neither empty nor a comment.
fn key_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
}

fn read_small(path: &Path) -> Result<String, KeyError> {
    let bytes = ra_verify_core::files::read_limited(path, MAX_KEY_FILE).map_err(|e| match e {
        ra_verify_core::files::ReadError::TooLarge(_) => KeyError::TooLarge {
            path: path.to_owned(),
        },
        ra_verify_core::files::ReadError::Io(source) => KeyError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        },
    })?;
    String::from_utf8(bytes).map_err(|_| KeyError::malformed("not UTF-8 text").in_file(path))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let io_error = |source| KeyError::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_error)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_0600_key_and_a_pub_file_that_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let key = StaticKey::generate_files(&path, "me@host").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = StaticKey::load(&path).unwrap();
        assert_eq!(loaded.public(), key.public());
        assert_eq!(PublicKey::load(&pub_path(&path)).unwrap(), key.public());
        let text = std::fs::read_to_string(pub_path(&path)).unwrap();
        assert!(text.starts_with("noise-x25519 ") && text.trim_end().ends_with(" me@host"));
        assert!(matches!(
            StaticKey::generate_files(&path, ""),
            Err(KeyError::Exists { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = StaticKey::load(&path).unwrap_err().to_string();
        assert!(error.contains("chmod 600"), "{error}");
    }

    #[test]
    fn the_public_key_is_the_one_noise_uses() {
        let pair = snow::Builder::new(crate::defs::noise_params().unwrap())
            .generate_keypair()
            .unwrap();
        let key = StaticKey::from_private(pair.private.as_slice().try_into().unwrap());
        assert_eq!(key.public().as_bytes().as_slice(), pair.public.as_slice());
    }

    #[test]
    fn malformed_keys_say_what_is_wrong() {
        for (text, needle) in [
            ("", "no key"),
            ("noise-x25519 AAAA", "public key"),
            ("noise-x25519-private !!!", "base64"),
            ("noise-x25519-private AAAA", "32 bytes"),
            ("ssh-ed25519 AAAA", "expected"),
        ] {
            let error = StaticKey::from_private_text(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text:?}: {error}");
        }
        assert!(
            "ssh-rsa AAAA"
                .parse::<PublicKey>()
                .unwrap_err()
                .to_string()
                .contains("unknown key type")
        );
    }
}
