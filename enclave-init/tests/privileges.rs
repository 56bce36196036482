#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Least privilege with real processes: services run as their `User` and
//! `Group` with exactly their `SupplementaryGroups`, own a private
//! `StateDirectory` that another service's user cannot read, an unknown user
//! fails that service only, and device rules set owner and mode at start.
//!
//! Dropping to another user needs root: these tests say so and return when
//! run unprivileged (the CI runs them as root).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::Init;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
svc-a:x:4101:4101:service a:/nonexistent:/sbin/nologin\n\
svc-b:x:4102:4102:service b:/home/b:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nsvc-a:x:4101:\nsvc-b:x:4102:\nnsm:x:4190:svc-b\n";

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: dropping privileges needs root");
    false
}

/// An init whose accounts and state directories live in its temp dir, which
/// is made traversable (0755) so that the services' users reach their own
/// state directories.
fn prepare(extra_yaml: &str) -> Init {
    let init = Init::prepare(extra_yaml);
    let base = init.dir.path().join("accounts");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("passwd"), PASSWD).unwrap();
    std::fs::write(base.join("group"), GROUP).unwrap();
    let yaml_path = init.dir.path().join("init.yaml");
    let mut yaml = std::fs::read_to_string(&yaml_path).unwrap();
    yaml.push_str(&format!(
        "\npasswd_file: {}\ngroup_file: {}\nstate_directory_root: {}\n",
        base.join("passwd").display(),
        base.join("group").display(),
        base.join("state").display(),
    ));
    std::fs::write(&yaml_path, yaml).unwrap();
    std::fs::set_permissions(init.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    init
}

fn logs(init: &Init, name: &str) -> String {
    init.ctl_ok(&["logs", name, "-n", "100"])
}

/// The `Uid`, `Gid` and `Groups` lines of `/proc/self/status` as the service saw them.
fn ids(log: &str) -> (String, String, String) {
    let field = |key: &str| {
        log.lines()
            .find_map(|l| l.split_once(' ')?.1.strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key} line in:\n{log}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid"), field("Gid"), field("Groups"))
}

const SHOW_IDS: &str =
    "grep ^Uid: /proc/self/status; grep ^Gid: /proc/self/status; grep ^Groups: /proc/self/status";

#[test]
fn services_run_as_their_users_and_keep_their_state_private() {
    if !is_root() {
        return;
    }
    let init = prepare("");
    let state = init.dir.path().join("accounts/state");
    // a: by name, primary group from passwd, a private state directory with
    // a key in it (world-readable file: the directory alone protects it).
    init.service(
        "a.service",
        &format!(
            "ExecStart = \"sh -c '{SHOW_IDS}; echo user=$USER home=$HOME dir=$STATE_DIRECTORY; \
             echo secret-key > $STATE_DIRECTORY/key; chmod 644 $STATE_DIRECTORY/key; exec sleep 1000'\"\n\
             User = \"svc-a\"\nStateDirectory = \"a\"\n"
        ),
    );
    // b: by number, a group by name, one supplementary group; tries to read a's key.
    init.service(
        "b.service.disabled",
        &format!(
            "ExecStart = \"sh -c '{SHOW_IDS}; cat {key} || echo READ-DENIED; ls {dir} || echo LIST-DENIED'\"\n\
             User = 4102\nGroup = \"svc-b\"\nSupplementaryGroups = [\"nsm\"]\n",
            key = state.join("a/key").display(),
            dir = state.join("a").display(),
        ),
    );
    let init = init.start();
    init.wait_state("a", "running");
    init.wait_for("a's key", Duration::from_secs(10), || {
        state.join("a/key").exists()
    });

    // The state directory: created 0700, owned by the service's user and group.
    let meta = std::fs::metadata(state.join("a")).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o7777, 0o700);
    assert_eq!((meta.uid(), meta.gid()), (4101, 4101));

    // a runs as svc-a:svc-a with no supplementary group at all (not init's).
    let log_a = logs(&init, "a");
    assert_eq!(
        ids(&log_a),
        (
            "4101 4101 4101 4101".into(),
            "4101 4101 4101 4101".into(),
            String::new()
        ),
        "{log_a}"
    );
    assert!(
        log_a.contains(&format!(
            "user=svc-a home=/nonexistent dir={}",
            state.join("a").display()
        )),
        "{log_a}"
    );
    let status = init.ctl_ok(&["status", "a"]);
    for line in [
        "  User: svc-a (uid 4101)\n",
        "  Group: svc-a (gid 4101)\n",
        "  Supplementary Groups: none\n",
        &format!("  State Directory: {}\n", state.join("a").display()),
    ] {
        assert!(status.contains(line), "{line:?} not in:\n{status}");
    }

    // b, another user, cannot read a's key nor list a's directory.
    init.ctl_ok(&["enable", "--now", "b"]);
    init.wait_state("b", "exited");
    let log_b = logs(&init, "b");
    assert_eq!(
        ids(&log_b),
        (
            "4102 4102 4102 4102".into(),
            "4102 4102 4102 4102".into(),
            "4190".into()
        ),
        "{log_b}"
    );
    assert!(log_b.contains("Permission denied"), "{log_b}");
    assert!(log_b.contains("READ-DENIED"), "{log_b}");
    assert!(log_b.contains("LIST-DENIED"), "{log_b}");
    assert!(!log_b.contains("secret-key"), "{log_b}");
    let status = init.ctl_ok(&["status", "b"]);
    assert!(
        status.contains("  User: svc-b (uid 4102)\n")
            && status.contains("  Supplementary Groups: nsm (gid 4190)\n"),
        "{status}"
    );
    // Root (init's user, as the test) still can.
    assert_eq!(
        std::fs::read_to_string(state.join("a/key")).unwrap(),
        "secret-key\n"
    );
}

#[test]
fn a_restart_fixes_the_state_directory_owner_and_mode() {
    if !is_root() {
        return;
    }
    let init = prepare("");
    let dir = init.dir.path().join("accounts/state/nested/b");
    init.service(
        "b.service",
        "ExecStart = \"sleep 1000\"\nUser = \"svc-b\"\nStateDirectory = \"nested/b\"\nStateDirectoryMode = \"0750\"\n",
    );
    let init = init.start();
    init.wait_state("b", "running");
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o750, 4102, 4102)
    );
    // Parents belong to init.
    let parent = std::fs::metadata(dir.parent().unwrap()).unwrap();
    assert_eq!((parent.uid(), parent.mode() & 0o777), (0, 0o755));
    // Someone loosened it while the service was stopped: the next start tightens it.
    init.ctl_ok(&["stop", "b"]);
    std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    init.ctl_ok(&["start", "b"]);
    init.wait_state("b", "running");
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o750, 4102, 4102)
    );
}

#[test]
fn an_unknown_user_fails_that_service_only() {
    // Resolution fails before any privilege is needed: runs unprivileged too.
    let init = prepare("");
    init.service(
        "ghost.service",
        "ExecStart = \"sleep 1000\"\nUser = \"ghost\"\nRestart = \"always\"\nRestartSec = 0.1\n",
    );
    init.service(
        "nogroup.service",
        "ExecStart = \"sleep 1000\"\nUser = 4999\n",
    );
    init.service(
        "badgroup.service",
        "ExecStart = \"sleep 1000\"\nUser = \"svc-a\"\nSupplementaryGroups = [\"nope\"]\n",
    );
    init.service("fine.service", "ExecStart = \"sleep 1000\"\n");
    let init = init.start();
    init.wait_state("fine", "running");
    let ghost = init.wait_state("ghost", "failed");
    let note = ghost.note.unwrap();
    assert!(
        note.contains("user \"ghost\" does not exist in") && note.contains("passwd"),
        "{note}"
    );
    let nogroup = init.wait_state("nogroup", "failed");
    assert!(
        nogroup.note.unwrap().contains("set Group as well"),
        "numeric user without an entry"
    );
    let badgroup = init.wait_state("badgroup", "failed");
    assert!(
        badgroup
            .note
            .unwrap()
            .contains("group \"nope\" does not exist"),
        "unknown supplementary group"
    );
    // A mistake in the image is not retried in a loop: "failed", not
    // "restarting", with no restart pending (a retry is scheduled at once).
    let ghost = init.status("ghost");
    assert_eq!((ghost.state.as_str(), ghost.restart_count), ("failed", 0));
    assert_eq!(ghost.restart_in_ms, None);
    let text = init.ctl_ok(&["status", "ghost"]);
    assert!(
        text.contains("  User: ghost (resolved when it starts)\n"),
        "{text}"
    );
    // Init carries on.
    init.ctl_ok(&["ping"]);
    assert_eq!(init.status("fine").state, "running");
}

#[test]
fn device_rules_are_applied_before_services_start() {
    if !is_root() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let node = scratch.path().join("nsm");
    std::fs::write(&node, "").unwrap();
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o600)).unwrap();
    let absent = scratch.path().join("absent");
    let init = prepare(&format!(
        "devices:\n  - {{path: {}, group: nsm, mode: \"0660\"}}\n  - {{path: {}, owner: svc-a, mode: \"0600\"}}\n",
        node.display(),
        absent.display()
    ));
    // The service sees the rule already applied when it starts.
    init.service(
        "probe.service",
        &format!("ExecStart = \"stat -c %g:%a {}\"\n", node.display()),
    );
    let init = init.start();
    init.wait_state("probe", "exited");
    let log = logs(&init, "probe");
    assert!(log.contains("4190:660"), "{log}");
    let meta = std::fs::metadata(&node).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (0, 4190, 0o660)
    );
    let stderr = init.stderr();
    assert!(
        stderr.contains(&format!("device {}: not present", absent.display())),
        "{stderr}"
    );
    assert!(stderr.contains("WARN"), "{stderr}");
}

#[test]
fn the_image_accounts_are_read_from_the_configured_files() {
    // Unit-level check through the public API: the temp files, not the host's.
    use enclave_init::accounts::{AccountFiles, Accounts, IdSpec};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("passwd"), PASSWD).unwrap();
    std::fs::write(dir.path().join("group"), GROUP).unwrap();
    let files = AccountFiles {
        passwd: dir.path().join("passwd"),
        group: dir.path().join("group"),
    };
    let creds = Accounts::new(&files)
        .resolve(Some(&IdSpec::parse("svc-b").unwrap()), None, &[], 0)
        .unwrap()
        .unwrap();
    assert_eq!((creds.user.id, creds.group.id), (4102, 4102));
    assert_eq!(creds.home.as_deref(), Some(Path::new("/home/b")));
}
