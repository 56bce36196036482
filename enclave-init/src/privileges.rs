//! Least privilege: dropping a service's process to its user and groups
//! before exec, preparing its state directories, and setting the owner,
//! group and mode of device nodes (such as `/dev/nsm`) at boot.
//!
//! The drop happens in the forked child, after the process group is made
//! and before exec: supplementary groups are set to exactly the service's
//! (none unless `SupplementaryGroups` names some), then the group id, then
//! the user id (real, effective and saved alike, so it cannot be undone).
//! std's `CommandExt::uid`/`gid` clear the supplementary groups too, but
//! cannot set any on stable Rust, and a `pre_exec` hook runs after them,
//! so the whole drop is done in one hook.

use std::fmt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
use serde::Deserialize;

use crate::accounts::{AccountFiles, Accounts, Credentials, IdSpec};
use crate::outcome::StepOutcome;

/// Why a state directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// Creating the directory or its parents failed.
    #[error("cannot create state directory {}: {source}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The path exists and is not a directory (or is a symbolic link).
    #[error("state directory {} exists and is not a directory (symbolic links are refused)", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Setting its owner or mode failed.
    #[error("cannot set owner {uid}:{gid} and mode {mode} on {}: {source}", path.display())]
    Own {
        /// The directory.
        path: PathBuf,
        /// The owner.
        uid: u32,
        /// The group.
        gid: u32,
        /// The mode.
        mode: Mode,
        /// Why.
        source: std::io::Error,
    },
}

/// Permission bits (`0o000` to `0o777`), written as an octal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Mode {
    /// Parses `"0700"`, `"700"` or `"0o700"`; set-id and sticky bits are refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        let bad =
            || format!("{text:?} is not a mode: 3 or 4 octal digits from \"0000\" to \"0777\"");
        if !(3..=4).contains(&digits.len()) || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(bad());
        }
        let bits = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
        if bits > 0o777 {
            return Err(bad());
        }
        Ok(Mode(bits))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// A mode as it appears in YAML or TOML: a string, or a number refused with
/// a hint (a bare `0660` means decimal 660 to both parsers).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawMode {
    /// `"0660"`.
    Text(String),
    /// `660` or `0o660`.
    Number(i64),
}

impl RawMode {
    /// The validated mode.
    pub fn parse(&self) -> Result<Mode, String> {
        match self {
            RawMode::Text(text) => Mode::parse(text),
            RawMode::Number(n) => Err(format!(
                "{n} is a number: write the mode as an octal string in quotes, like \"0660\""
            )),
        }
    }
}

/// Makes `cmd`'s child drop to `creds` before exec: supplementary groups,
/// then group, then user.
#[allow(unsafe_code)]
pub fn drop_to(cmd: &mut Command, creds: &Credentials) {
    let groups: Vec<Gid> = creds
        .supplementary
        .iter()
        .map(|g| Gid::from_raw(g.id))
        .collect();
    let gid = Gid::from_raw(creds.group.id);
    let uid = Uid::from_raw(creds.user.id);
    let hook = move || -> std::io::Result<()> {
        setgroups(&groups)?;
        setgid(gid)?;
        setuid(uid)?;
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec, where only
    // async-signal-safe work is allowed: it makes three system calls
    // (setgroups, setgid, setuid) on data allocated before the fork, and
    // neither allocates nor takes a lock; an error is an `Os` io::Error,
    // which allocates nothing either.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Creates `path` if missing (parents owned by init, mode 0755), then sets
/// its owner to `uid:gid` and its mode, through a descriptor opened without
/// following a symbolic link, so a link planted in its place is refused
/// rather than followed.
pub fn prepare_state_directory(
    path: &Path,
    uid: u32,
    gid: u32,
    mode: Mode,
) -> Result<(), PrivilegeError> {
    let create = |source| PrivilegeError::Create {
        path: path.into(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(create)?;
    }
    match std::fs::DirBuilder::new().mode(mode.0).create(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(create(err)),
    }
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::ENOTDIR) | Some(libc::ELOOP) => {
                PrivilegeError::NotADirectory { path: path.into() }
            }
            _ => create(err),
        })?;
    let own = |source| PrivilegeError::Own {
        path: path.into(),
        uid,
        gid,
        mode,
        source,
    };
    std::os::unix::fs::fchown(&dir, Some(uid), Some(gid)).map_err(own)?;
    dir.set_permissions(std::fs::Permissions::from_mode(mode.0))
        .map_err(own)?;
    Ok(())
}

/// Owner, group and mode of one device node, from `init.yaml`'s `devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// The node, such as `/dev/nsm`.
    pub path: PathBuf,
    /// New owner, if any.
    pub owner: Option<IdSpec>,
    /// New group, if any.
    pub group: Option<IdSpec>,
    /// New permission bits, if any.
    pub mode: Option<Mode>,
    /// A node that may be absent (`/dev/nsm` outside Nitro): its absence is
    /// information, not a warning.
    pub optional: bool,
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(owner) = &self.owner {
            write!(f, " owner {owner}")?;
        }
        if let Some(group) = &self.group {
            write!(f, " group {group}")?;
        }
        if let Some(mode) = &self.mode {
            write!(f, " mode {mode}")?;
        }
        Ok(())
    }
}

/// Applies every device rule, before services start. A missing node is a
/// warning (outside Nitro there is no `/dev/nsm`); an unknown name or a
/// failed `chown`/`chmod` is an error for that rule, and the others still
/// apply.
pub fn apply_device_rules(rules: &[DeviceRule], files: &AccountFiles) -> StepOutcome {
    if rules.is_empty() {
        return StepOutcome::Skipped("no device rules".into());
    }
    let mut accounts = Accounts::new(files);
    let (mut applied, mut missing, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for rule in rules {
        match apply_one(rule, &mut accounts) {
            Ok(()) => {
                tracing::info!("device {rule}: applied");
                applied.push(rule.path.display().to_string());
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if rule.optional {
                    tracing::info!(
                        "device {}: not present (optional); rule skipped",
                        rule.path.display()
                    );
                } else {
                    tracing::warn!("device {}: not present; rule skipped", rule.path.display());
                }
                missing.push(rule.path.display().to_string());
            }
            Err(err) => {
                tracing::error!("device {rule}: {err}");
                failed.push(format!("{}: {err}", rule.path.display()));
            }
        }
    }
    let summary = format!(
        "applied to [{}]; missing [{}]",
        applied.join(", "),
        missing.join(", ")
    );
    if failed.is_empty() {
        StepOutcome::Done(summary)
    } else {
        StepOutcome::Failed(format!("{summary}; failed [{}]", failed.join("; ")))
    }
}

fn apply_one(rule: &DeviceRule, accounts: &mut Accounts<'_>) -> std::io::Result<()> {
    // Look the node up first: a missing device is not worth resolving names for.
    std::fs::metadata(&rule.path)?;
    let owner = match &rule.owner {
        Some(spec) => Some(accounts.user_id(spec).map_err(std::io::Error::other)?.id),
        None => None,
    };
    let group = match &rule.group {
        Some(spec) => Some(accounts.group(spec).map_err(std::io::Error::other)?.id),
        None => None,
    };
    if owner.is_some() || group.is_some() {
        std::os::unix::fs::chown(&rule.path, owner, group)?;
    }
    if let Some(mode) = rule.mode {
        std::fs::set_permissions(&rule.path, std::fs::Permissions::from_mode(mode.0))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn modes() {
        assert_eq!(Mode::parse("0700"), Ok(Mode(0o700)));
        assert_eq!(Mode::parse("750"), Ok(Mode(0o750)));
        assert_eq!(Mode::parse("0o660"), Ok(Mode(0o660)));
        for bad in ["", "7", "4755", "0800", "rwx", "07777", "-700", "+700"] {
            assert!(Mode::parse(bad).is_err(), "{bad}");
        }
        assert!(RawMode::Number(660).parse().unwrap_err().contains("quotes"));
        assert_eq!(Mode(0o700).to_string(), "0700");
    }

    #[test]
    fn state_directory_is_created_owned_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let me = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        let state = dir.path().join("lib/app");
        prepare_state_directory(&state, me.0, me.1, Mode(0o700)).unwrap();
        let meta = std::fs::metadata(&state).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o7777, 0o700);
        assert_eq!((meta.uid(), meta.gid()), me);
        // Again, with another mode: the existing directory is fixed up.
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        prepare_state_directory(&state, me.0, me.1, Mode(0o750)).unwrap();
        let meta = std::fs::metadata(&state).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o750);
        // A file or a symbolic link in its place is refused, not followed.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            prepare_state_directory(&file, me.0, me.1, Mode(0o700)),
            Err(PrivilegeError::NotADirectory { .. })
        ));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&state, &link).unwrap();
        assert!(matches!(
            prepare_state_directory(&link, me.0, me.1, Mode(0o700)),
            Err(PrivilegeError::NotADirectory { .. })
        ));
    }

    #[test]
    fn device_rules_apply_skip_missing_and_report_unknown_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        let gid = nix::unistd::getegid().as_raw();
        std::fs::write(dir.path().join("group"), format!("mine:x:{gid}:\n")).unwrap();
        let files = AccountFiles {
            passwd: dir.path().join("passwd"),
            group: dir.path().join("group"),
        };
        let node = dir.path().join("nsm");
        std::fs::write(&node, "").unwrap();
        let rule = |path: &Path, group: &str| DeviceRule {
            path: path.into(),
            owner: None,
            group: Some(IdSpec::parse(group).unwrap()),
            mode: Some(Mode(0o660)),
            optional: false,
        };
        let outcome = apply_device_rules(
            &[
                rule(&node, "mine"),
                rule(&dir.path().join("absent"), "mine"),
            ],
            &files,
        );
        assert!(!outcome.failed(), "{outcome}");
        assert!(outcome.to_string().contains("missing ["), "{outcome}");
        let meta = std::fs::metadata(&node).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid);
        let outcome = apply_device_rules(&[rule(&node, "ghost")], &files);
        assert!(outcome.failed());
        assert!(outcome.to_string().contains("\"ghost\""), "{outcome}");
        assert!(!apply_device_rules(&[], &files).failed());
    }
}
