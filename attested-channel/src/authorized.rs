//! The server's `authorized_keys` file: which client keys may connect, and
//! what each may do.
//!
//! ```text
//! # comment lines and blank lines are ignored
//! [OPTIONS] noise-x25519 BASE64 [COMMENT]
//! OPTIONS = OPTION[,OPTION...]     (no spaces)
//! OPTION  = exec                   the key may run commands
//!         | manage                 the key may change services (init's control)
//!         | write=ROOT[:ROOT...]   the key may write under these directories
//!         | read=ROOT[:ROOT...]    the key may read under these directories
//! ```
//!
//! As with OpenSSH's `authorized_keys`, the options come before the key
//! type. A key without options may connect and do nothing. Roots are
//! absolute paths without `.` or `..` components. Parsing is strict: an
//! unknown or repeated option, a malformed key or a key listed twice is an
//! error naming its line, never a line skipped.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::defs::{
    KEY_TYPE, MAX_AUTHORIZED_KEYS, MAX_AUTHORIZED_KEYS_FILE, MAX_AUTHORIZED_KEYS_LINE,
};
use crate::keys::{KeyError, PublicKey};

/// What one key may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// `exec`: may run commands.
    pub exec: bool,
    /// `manage`: may change services.
    pub manage: bool,
    /// `write=`: directories it may write under (empty: none).
    pub write: Vec<PathBuf>,
    /// `read=`: directories it may read under (empty: none).
    pub read: Vec<PathBuf>,
}

impl fmt::Display for Permissions {
    /// The options as they are written in the file (`-` for none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut options = Vec::new();
        if self.exec {
            options.push("exec".to_string());
        }
        if self.manage {
            options.push("manage".to_string());
        }
        let roots = |roots: &[PathBuf]| {
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        };
        if !self.write.is_empty() {
            options.push(format!("write={}", roots(&self.write)));
        }
        if !self.read.is_empty() {
            options.push(format!("read={}", roots(&self.read)));
        }
        if options.is_empty() {
            f.write_str("-")
        } else {
            f.write_str(&options.join(","))
        }
    }
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKey {
    /// The client's public key.
    pub key: PublicKey,
    /// What it may do.
    pub permissions: Permissions,
    /// The comment after the key (may be empty).
    pub comment: String,
    /// The line it was read from (1-based; 0 when not from a file).
    pub line: usize,
}

impl AuthorizedKey {
    /// The line as it would be written in the file.
    pub fn to_line(&self) -> String {
        let key = self.key.to_line(&self.comment);
        let options = self.permissions.to_string();
        if options == "-" {
            key
        } else {
            format!("{options} {key}")
        }
    }
}

/// A line that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthorizedKeysError {
    /// The file could not be read.
    #[error("{path}: {why}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// A line is wrong.
    #[error("{path}line {line}: {why}")]
    Line {
        /// The file, with ": " (or empty).
        path: String,
        /// Its 1-based number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// More keys than a file may have.
    #[error("{path}more than {MAX_AUTHORIZED_KEYS} keys")]
    TooManyKeys {
        /// The file, with ": " (or empty).
        path: String,
    },
}

/// The keys a server accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizedKeys {
    keys: Vec<AuthorizedKey>,
}

impl AuthorizedKeys {
    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, AuthorizedKeysError> {
        let bytes =
            ra_verify_core::files::read_limited(path, MAX_AUTHORIZED_KEYS_FILE).map_err(|e| {
                AuthorizedKeysError::Read {
                    path: path.display().to_string(),
                    why: e.to_string(),
                }
            })?;
        let text = String::from_utf8(bytes).map_err(|_| AuthorizedKeysError::Read {
            path: path.display().to_string(),
            why: "not UTF-8 text".into(),
        })?;
        Self::parse(&text).map_err(|e| match e {
            AuthorizedKeysError::Line { line, why, .. } => AuthorizedKeysError::Line {
                path: format!("{}: ", path.display()),
                line,
                why,
            },
            AuthorizedKeysError::TooManyKeys { .. } => AuthorizedKeysError::TooManyKeys {
                path: format!("{}: ", path.display()),
            },
            other => other,
        })
    }

    /// Parses the text of a file.
    pub fn parse(text: &str) -> Result<Self, AuthorizedKeysError> {
        let mut keys: Vec<AuthorizedKey> = Vec::new();
        let mut seen = BTreeSet::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let error = |why: String| AuthorizedKeysError::Line {
                path: String::new(),
                line: number,
                why,
            };
            if line.len() > MAX_AUTHORIZED_KEYS_LINE {
                return Err(error(format!(
                    "longer than {MAX_AUTHORIZED_KEYS_LINE} bytes"
                )));
            }
            let Some(mut key) = parse_line(line).map_err(error)? else {
                continue;
            };
            key.line = number;
            if !seen.insert(key.key) {
                return Err(error(format!(
                    "key {} is listed twice (merge its options into one line)",
                    key.key.short()
                )));
            }
            if keys.len() == MAX_AUTHORIZED_KEYS {
                return Err(AuthorizedKeysError::TooManyKeys {
                    path: String::new(),
                });
            }
            keys.push(key);
        }
        Ok(Self { keys })
    }

    /// The entry of `key`, if it is authorised.
    pub fn find(&self, key: &PublicKey) -> Option<&AuthorizedKey> {
        self.keys.iter().find(|entry| entry.key == *key)
    }

    /// Every entry, in file order.
    pub fn keys(&self) -> &[AuthorizedKey] {
        &self.keys
    }

    /// True when no key is authorised.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl FromIterator<AuthorizedKey> for AuthorizedKeys {
    fn from_iter<T: IntoIterator<Item = AuthorizedKey>>(iter: T) -> Self {
        Self {
            keys: iter.into_iter().collect(),
        }
    }
}

/// Parses one line: `None` for blank and comment lines.
pub fn parse_line(line: &str) -> Result<Option<AuthorizedKey>, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let (first, rest) = split_word(trimmed);
    let (options, key_type, rest) = if first == KEY_TYPE {
        (None, first, rest)
    } else {
        let (key_type, rest) = split_word(rest);
        (Some(first), key_type, rest)
    };
    if key_type != KEY_TYPE {
        return Err(if key_type.is_empty() {
            format!("expected [OPTIONS] {KEY_TYPE} BASE64 [COMMENT], found only {first:?}")
        } else {
            format!("unknown key type {key_type:?} (expected {KEY_TYPE})")
        });
    }
    let permissions = match options {
        Some(options) => parse_options(options)?,
        None => Permissions::default(),
    };
    let (encoded, comment) = split_word(rest);
    if encoded.is_empty() {
        return Err(format!("{KEY_TYPE} without a key"));
    }
    let key = PublicKey::from_base64(encoded).map_err(|e| match e {
        KeyError::Malformed { why, .. } => why,
        other => other.to_string(),
    })?;
    Ok(Some(AuthorizedKey {
        key,
        permissions,
        comment: comment.to_string(),
        line: 0,
    }))
}

/// The first whitespace-separated word and the rest (trimmed).
fn split_word(text: &str) -> (&str, &str) {
    match text.find([' ', '\t']) {
        Some(at) => (&text[..at], text[at..].trim_start()),
        None => (text, ""),
    }
}

/// Parses `OPTION[,OPTION...]`.
pub fn parse_options(text: &str) -> Result<Permissions, String> {
    let mut permissions = Permissions::default();
    let mut seen = BTreeSet::new();
    for option in text.split(',') {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option, None),
        };
        if name.is_empty() {
            return Err(format!("empty option in {text:?}"));
        }
        if !seen.insert(name) {
            return Err(format!("option {name:?} given twice"));
        }
        match (name, value) {
            ("exec", None) => permissions.exec = true,
            ("manage", None) => permissions.manage = true,
            ("write", Some(roots)) => permissions.write = parse_roots(name, roots)?,
            ("read", Some(roots)) => permissions.read = parse_roots(name, roots)?,
            ("exec" | "manage", Some(_)) => return Err(format!("option {name:?} takes no value")),
            ("write" | "read", None) => {
                return Err(format!("option {name:?} needs =ROOT[:ROOT...]"));
            }
            _ => {
                return Err(format!(
                    "unknown option {name:?} (known: exec, manage, write=ROOTS, read=ROOTS)"
                ));
            }
        }
    }
    Ok(permissions)
}

fn parse_roots(option: &str, text: &str) -> Result<Vec<PathBuf>, String> {
    let mut roots = Vec::new();
    for root in text.split(':') {
        let path = Path::new(root);
        if root.is_empty() {
            return Err(format!("{option}=: empty root in {text:?}"));
        }
        if !path.is_absolute() {
            return Err(format!("{option}=: root {root:?} is not an absolute path"));
        }
        if path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
            || root.contains("/./")
            || root.ends_with("/.")
        {
            return Err(format!("{option}=: root {root:?} has . or .. components"));
        }
        if root.contains('\0') {
            return Err(format!("{option}=: root {root:?} contains a NUL byte"));
        }
        roots.push(path.to_path_buf());
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY_A: &str = "noise-x25519 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn a_file_with_options_comments_and_blank_lines() {
        let text = format!(
            "# deploy keys\n\n{KEY_A} alice@laptop\nexec,write=/data:/apps,read=/data/out,manage noise-x25519 {} ci deploy\n",
            PublicKey::from_bytes([9; 32]).to_base64()
        );
        let keys = AuthorizedKeys::parse(&text).unwrap();
        assert_eq!(keys.keys().len(), 2);
        let alice = &keys.keys()[0];
        assert_eq!(alice.permissions, Permissions::default());
        assert_eq!(alice.comment, "alice@laptop");
        assert_eq!(alice.line, 3);
        let ci = keys.find(&PublicKey::from_bytes([9; 32])).unwrap();
        assert!(ci.permissions.exec && ci.permissions.manage);
        assert_eq!(
            ci.permissions.write,
            [PathBuf::from("/data"), PathBuf::from("/apps")]
        );
        assert_eq!(ci.permissions.read, [PathBuf::from("/data/out")]);
        assert_eq!(ci.comment, "ci deploy");
        assert_eq!(
            ci.to_line(),
            format!(
                "exec,manage,write=/data:/apps,read=/data/out noise-x25519 {} ci deploy",
                PublicKey::from_bytes([9; 32]).to_base64()
            )
        );
    }

    #[test]
    fn errors_name_the_line_and_the_fault() {
        for (text, needle) in [
            (
                "\n\nfoo noise-x25519 AAAA",
                "line 3: unknown option \"foo\"",
            ),
            ("exec,exec noise-x25519 AAAA", "given twice"),
            ("write noise-x25519 AAAA", "needs =ROOT"),
            ("exec=1 noise-x25519 AAAA", "takes no value"),
            ("write=data noise-x25519 AAAA", "not an absolute path"),
            ("write=/data/../etc noise-x25519 AAAA", ". or .. components"),
            ("write=/a::/b noise-x25519 AAAA", "empty root"),
            ("exec,,manage noise-x25519 AAAA", "empty option"),
            ("ssh-ed25519 AAAA", "unknown key type \"AAAA\""),
            ("exec ssh-ed25519 AAAA", "unknown key type \"ssh-ed25519\""),
            ("noise-x25519", "without a key"),
            ("exec", "found only"),
            ("noise-x25519 AAAA", "32 bytes"),
            ("noise-x25519 !!!!", "base64"),
        ] {
            let error = AuthorizedKeys::parse(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text:?}: {error}");
            assert!(error.contains("line "), "{text:?}: {error}");
        }
        let twice = format!("{KEY_A}\nexec {KEY_A}\n");
        let error = AuthorizedKeys::parse(&twice).unwrap_err().to_string();
        assert!(
            error.starts_with("line 2: ") && error.contains("twice"),
            "{error}"
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authorized_keys");
        std::fs::write(&path, "bogus noise-x25519 AAAA\n").unwrap();
        let error = AuthorizedKeys::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("authorized_keys: line 1: unknown option"),
            "{error}"
        );
        assert!(AuthorizedKeys::load(&dir.path().join("missing")).is_err());
    }

    fn root() -> impl Strategy<Value = PathBuf> {
        proptest::collection::vec("[a-z0-9_]{1,8}", 1..4)
            .prop_map(|parts| PathBuf::from(format!("/{}", parts.join("/"))))
    }

    fn permissions() -> impl Strategy<Value = Permissions> {
        (
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec(root(), 0..3),
            proptest::collection::vec(root(), 0..3),
        )
            .prop_map(|(exec, manage, write, read)| Permissions {
                exec,
                manage,
                write,
                read,
            })
    }

    proptest! {
        #[test]
        fn lines_round_trip(
            key in any::<[u8; 32]>(),
            permissions in permissions(),
            comment in "([a-zA-Z0-9@.-]{1,10}( [a-zA-Z0-9@.-]{1,10}){0,2})?",
        ) {
            let entry = AuthorizedKey { key: PublicKey::from_bytes(key), permissions, comment, line: 0 };
            let parsed = parse_line(&entry.to_line()).unwrap().unwrap();
            prop_assert_eq!(parsed, entry);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = AuthorizedKeys::parse(&text);
        }

        #[test]
        fn arbitrary_options_never_panic(text in "[a-z=/:,.]{0,60}") {
            let _ = parse_options(&text);
        }
    }
}
