//! Users and groups: the `User`, `Group` and `SupplementaryGroups` of a
//! service file, and the owner and group of a device rule, as names or
//! numbers ([`RawId`] as the file gives it, [`IdSpec`] validated), resolved into numeric [`Credentials`] through the
//! image's `/etc/passwd` and `/etc/group` (the root services run in, after
//! init's pivot).
//!
//! The files are read when a name has to be resolved, at each start, so a
//! name missing from them is an error for that one service, never for init.
//! Lines that do not parse (comments, NIS `+`/`-` entries) are skipped.

use std::fmt;
use std::path::{Path, PathBuf};

use cli_support::{ReadLimitedError, read_limited_to_string};
use serde::{Deserialize, Serialize};

use crate::defs::{MAX_ACCOUNT_NAME_LEN, MAX_ACCOUNTS_FILE_SIZE, MAX_SUPPLEMENTARY_GROUPS};

/// Why a user or group could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// `/etc/passwd` or `/etc/group` could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_ACCOUNTS_FILE_SIZE`].
    #[error("{} is larger than {MAX_ACCOUNTS_FILE_SIZE} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// No such user name.
    #[error("user {name:?} does not exist in {}", path.display())]
    UnknownUser {
        /// The name.
        name: String,
        /// The passwd file.
        path: PathBuf,
    },
    /// No such group name.
    #[error("group {name:?} does not exist in {}", path.display())]
    UnknownGroup {
        /// The name.
        name: String,
        /// The group file.
        path: PathBuf,
    },
    /// A numeric user without a passwd entry has no primary group to run with.
    #[error(
        "user {uid} is not in {}, so it has no primary group: set Group as well",
        path.display()
    )]
    NoPrimaryGroup {
        /// The user id.
        uid: u32,
        /// The passwd file.
        path: PathBuf,
    },
}

/// A user or group as written: a name, or a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdSpec {
    /// A name, looked up in `/etc/passwd` or `/etc/group`.
    Name(String),
    /// A numeric id, used as it is.
    Id(u32),
}

impl IdSpec {
    /// Parses a name or a decimal number (`"nobody"`, `"65534"`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse::<u32>()
                .map_err(|_| format!("{text} is not a valid id"))
                .and_then(Self::from_number);
        }
        check_name(text)?;
        Ok(IdSpec::Name(text.to_owned()))
    }

    /// A numeric id; `4294967295` (-1, "no change" to the kernel) is refused.
    pub fn from_number(id: u32) -> Result<Self, String> {
        if id == u32::MAX {
            return Err(format!("{id} is not a valid id"));
        }
        Ok(IdSpec::Id(id))
    }
}

impl fmt::Display for IdSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdSpec::Name(name) => f.write_str(name),
            IdSpec::Id(id) => write!(f, "{id}"),
        }
    }
}

/// A user or group as YAML or TOML gives it: a name or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawId {
    /// `65534`.
    Number(i64),
    /// `"nobody"` or `"65534"`.
    Text(String),
}

impl RawId {
    /// The validated name or id.
    pub fn parse(&self) -> Result<IdSpec, String> {
        match self {
            RawId::Number(n) => u32::try_from(*n)
                .map_err(|_| format!("{n} is not a valid id"))
                .and_then(IdSpec::from_number),
            RawId::Text(text) => IdSpec::parse(text),
        }
    }
}

/// Checks a user or group name: letters, digits, `_`, `.`, `-` (not first),
/// at most [`MAX_ACCOUNT_NAME_LEN`] characters.
fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_ACCOUNT_NAME_LEN
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a user or group name (letters, digits, '_', '.', '-', at most {MAX_ACCOUNT_NAME_LEN})",
            name.chars()
                .take(MAX_ACCOUNT_NAME_LEN + 8)
                .collect::<String>()
        ))
    }
}

/// Where the account databases are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountFiles {
    /// The passwd file (`/etc/passwd`).
    pub passwd: PathBuf,
    /// The group file (`/etc/group`).
    pub group: PathBuf,
}

/// One id with its name, when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedId {
    /// The numeric id.
    pub id: u32,
    /// Its name in `/etc/passwd` or `/etc/group`.
    pub name: Option<String>,
}

impl fmt::Display for NamedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

/// Whom a service process runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The user.
    pub user: NamedId,
    /// The primary group.
    pub group: NamedId,
    /// The supplementary groups (empty: none at all, not init's).
    pub supplementary: Vec<NamedId>,
    /// The user's home directory from `/etc/passwd`, when it has an entry.
    pub home: Option<PathBuf>,
}

#[derive(Debug, Clone)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug, Clone)]
struct GroupEntry {
    name: String,
    gid: u32,
}

fn read(path: &Path) -> Result<String, AccountError> {
    read_limited_to_string(path, MAX_ACCOUNTS_FILE_SIZE).map_err(|err| match err {
        ReadLimitedError::TooLarge { .. } => AccountError::TooLarge { path: path.into() },
        err => AccountError::Read {
            path: path.into(),
            source: err.into_io_error(),
        },
    })
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, uid, gid, _, home, ..] = fields.as_slice() else {
                return None;
            };
            check_name(name).ok()?;
            Some(PasswdEntry {
                name: (*name).to_owned(),
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                home: (*home).to_owned(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, gid, ..] = fields.as_slice() else {
                return None;
            };
            check_name(name).ok()?;
            Some(GroupEntry {
                name: (*name).to_owned(),
                gid: gid.parse().ok()?,
            })
        })
        .collect()
}

/// The account databases, read on first use.
#[derive(Debug)]
pub struct Accounts<'a> {
    files: &'a AccountFiles,
    passwd: Option<Vec<PasswdEntry>>,
    group: Option<Vec<GroupEntry>>,
}

impl<'a> Accounts<'a> {
    /// Accounts from `files`; nothing is read yet.
    pub fn new(files: &'a AccountFiles) -> Self {
        Self {
            files,
            passwd: None,
            group: None,
        }
    }

    fn passwd(&mut self) -> Result<&[PasswdEntry], AccountError> {
        if self.passwd.is_none() {
            self.passwd = Some(parse_passwd(&read(&self.files.passwd)?));
        }
        Ok(self.passwd.as_deref().unwrap_or_default())
    }

    fn groups(&mut self) -> Result<&[GroupEntry], AccountError> {
        if self.group.is_none() {
            self.group = Some(parse_group(&read(&self.files.group)?));
        }
        Ok(self.group.as_deref().unwrap_or_default())
    }

    /// The passwd entry of a user given by name or number; a number without
    /// an entry is `None` (and fine: the kernel needs no name).
    fn user(&mut self, spec: &IdSpec) -> Result<(u32, Option<PasswdEntry>), AccountError> {
        let path = self.files.passwd.clone();
        match spec {
            IdSpec::Name(name) => self
                .passwd()?
                .iter()
                .find(|e| &e.name == name)
                .map(|e| (e.uid, Some(e.clone())))
                .ok_or(AccountError::UnknownUser {
                    name: name.clone(),
                    path,
                }),
            IdSpec::Id(uid) => {
                // A numeric user needs no file; its name is only shown.
                let entry = self
                    .passwd()
                    .ok()
                    .and_then(|all| all.iter().find(|e| e.uid == *uid).cloned());
                Ok((*uid, entry))
            }
        }
    }

    /// A group given by name or number, with its name when known.
    pub fn group(&mut self, spec: &IdSpec) -> Result<NamedId, AccountError> {
        let path = self.files.group.clone();
        match spec {
            IdSpec::Name(name) => self
                .groups()?
                .iter()
                .find(|e| &e.name == name)
                .map(|e| NamedId {
                    id: e.gid,
                    name: Some(e.name.clone()),
                })
                .ok_or(AccountError::UnknownGroup {
                    name: name.clone(),
                    path,
                }),
            IdSpec::Id(gid) => Ok(self.named_group(*gid)),
        }
    }

    fn named_group(&mut self, gid: u32) -> NamedId {
        let name = self
            .groups()
            .ok()
            .and_then(|all| all.iter().find(|e| e.gid == gid).map(|e| e.name.clone()));
        NamedId { id: gid, name }
    }

    /// A user given by name or number, with its name when known.
    pub fn user_id(&mut self, spec: &IdSpec) -> Result<NamedId, AccountError> {
        let (uid, entry) = self.user(spec)?;
        Ok(NamedId {
            id: uid,
            name: entry.map(|e| e.name),
        })
    }

    /// Resolves a service's `User`, `Group` and `SupplementaryGroups`.
    /// `None` when none of them is set: the service runs as init does.
    /// Without `Group`, the user's primary group from `/etc/passwd` is used;
    /// without `User`, the user stays init's (`current_uid`).
    pub fn resolve(
        &mut self,
        user: Option<&IdSpec>,
        group: Option<&IdSpec>,
        supplementary: &[IdSpec],
        current_uid: u32,
    ) -> Result<Option<Credentials>, AccountError> {
        if user.is_none() && group.is_none() && supplementary.is_empty() {
            return Ok(None);
        }
        let (uid, entry) = match user {
            Some(spec) => self.user(spec)?,
            None => self.user(&IdSpec::Id(current_uid))?,
        };
        let group = match (group, &entry) {
            (Some(spec), _) => self.group(spec)?,
            (None, Some(entry)) => self.named_group(entry.gid),
            (None, None) => {
                return Err(AccountError::NoPrimaryGroup {
                    uid,
                    path: self.files.passwd.clone(),
                });
            }
        };
        let mut groups = Vec::new();
        for spec in supplementary.iter().take(MAX_SUPPLEMENTARY_GROUPS) {
            let found = self.group(spec)?;
            if !groups.contains(&found) {
                groups.push(found);
            }
        }
        Ok(Some(Credentials {
            user: NamedId {
                id: uid,
                name: entry.as_ref().map(|e| e.name.clone()),
            },
            group,
            supplementary: groups,
            home: entry
                .filter(|e| !e.home.is_empty())
                .map(|e| PathBuf::from(e.home)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn files(dir: &Path) -> AccountFiles {
        std::fs::write(
            dir.join("passwd"),
            "# accounts\nroot:x:0:0:root:/root:/bin/sh\n+nis\nweb:x:101:102:web server:/var/lib/web:/sbin/nologin\nbroken:x:abc:1::/:\nnobody:x:65534:65534::/nonexistent:/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("group"),
            "root:x:0:\nweb:x:102:\nnsm:x:990:web,pipeline\nnogroup:x:65534:\n",
        )
        .unwrap();
        AccountFiles {
            passwd: dir.join("passwd"),
            group: dir.join("group"),
        }
    }

    fn spec(text: &str) -> IdSpec {
        IdSpec::parse(text).unwrap()
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(spec("web"), IdSpec::Name("web".into()));
        assert_eq!(spec("65534"), IdSpec::Id(65534));
        for bad in ["", "-x", "a:b", "a b", "4294967295", "99999999999", "a\n"] {
            assert!(IdSpec::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resolves_names_primary_groups_and_supplementary_groups() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let mut accounts = Accounts::new(&files);
        assert_eq!(accounts.resolve(None, None, &[], 0).unwrap(), None);
        let web = accounts
            .resolve(Some(&spec("web")), None, &[spec("nsm"), spec("nsm")], 0)
            .unwrap()
            .unwrap();
        assert_eq!(web.user.to_string(), "web (101)");
        assert_eq!(web.group.to_string(), "web (102)");
        assert_eq!(web.supplementary.len(), 1);
        assert_eq!(web.supplementary[0].id, 990);
        assert_eq!(web.home, Some(PathBuf::from("/var/lib/web")));
        // Numbers need no entry, but a user without one needs a Group.
        let numeric = accounts
            .resolve(Some(&spec("4000")), Some(&spec("4001")), &[], 0)
            .unwrap()
            .unwrap();
        assert_eq!((numeric.user.id, numeric.group.id), (4000, 4001));
        assert_eq!(numeric.user.name, None);
        let err = accounts
            .resolve(Some(&spec("4000")), None, &[], 0)
            .unwrap_err();
        assert!(matches!(
            err,
            AccountError::NoPrimaryGroup { uid: 4000, .. }
        ));
        // Group alone: the user stays init's.
        let group_only = accounts
            .resolve(None, Some(&spec("nogroup")), &[], 0)
            .unwrap()
            .unwrap();
        assert_eq!((group_only.user.id, group_only.group.id), (0, 65534));
    }

    #[test]
    fn unknown_names_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let mut accounts = Accounts::new(&files);
        let err = accounts
            .resolve(Some(&spec("ghost")), None, &[], 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("user \"ghost\"") && err.contains("passwd"),
            "{err}"
        );
        let err = accounts
            .resolve(Some(&spec("web")), None, &[spec("nope")], 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("group \"nope\"") && err.contains("group"),
            "{err}"
        );
        let missing = AccountFiles {
            passwd: dir.path().join("none"),
            group: dir.path().join("none"),
        };
        let err = Accounts::new(&missing)
            .resolve(Some(&spec("web")), None, &[], 0)
            .unwrap_err();
        assert!(matches!(err, AccountError::Read { .. }), "{err}");
        // Numbers alone do not need the files.
        let ok = Accounts::new(&missing)
            .resolve(Some(&spec("7")), Some(&spec("8")), &[], 0)
            .unwrap()
            .unwrap();
        assert_eq!(ok.user.id, 7);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in ".{0,300}") {
            let _ = parse_passwd(&text);
            let _ = parse_group(&text);
            let _ = IdSpec::parse(&text);
        }
    }
}
