#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! rbuilds.sh itself: shellcheck-clean, and its three usage modes dispatch
//! as documented (single `--cmd`, commands on stdin with `lsh`, errors with
//! a non-zero status and the reason). Build steps are not run here (they
//! take minutes): `tools/devtool image-test` runs them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn rbuilds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn script(args: &[&str], stdin: &str, build_dir: &Path) -> Output {
    let mut child = Command::new("bash")
        .arg(rbuilds_dir().join("rbuilds.sh"))
        .args(args)
        .env("RBUILDS_BUILD_DIR", build_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn scripts_pass_shellcheck() {
    let dir = rbuilds_dir();
    // kernel.recipe is checked through the `source` in rbuilds.sh.
    let mut scripts = vec![dir.join("rbuilds.sh")];
    for entry in std::fs::read_dir(dir.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sh") {
            scripts.push(path);
        }
    }
    let out = Command::new("shellcheck")
        .arg("-x")
        .args(&scripts)
        .current_dir(dir.parent().unwrap())
        .output()
        .expect("shellcheck is installed (tools/devtool deps)");
    assert!(
        out.status.success(),
        "shellcheck:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Every `RBUILDS_*` setting the scripts read is in the man page.
#[test]
fn man_names_every_setting_the_scripts_read() {
    let dir = rbuilds_dir();
    let mut sources = vec![dir.join("rbuilds.sh")];
    for entry in std::fs::read_dir(dir.join("lib")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sh") {
            sources.push(path);
        }
    }
    let mut settings = std::collections::BTreeSet::new();
    for path in &sources {
        let text = std::fs::read_to_string(path).unwrap();
        for (at, _) in text.match_indices("${RBUILDS_") {
            let name: String = text[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            settings.insert(name);
        }
    }
    assert!(settings.len() > 10, "found only {settings:?}");
    let build = tempfile::tempdir().unwrap();
    let man = text(&script(&["--man"], "", build.path()).stdout);
    let missing: Vec<_> = settings
        .iter()
        .filter(|s| !man.contains(s.as_str()))
        .collect();
    assert!(missing.is_empty(), "not in --man: {missing:?}");
}

#[test]
fn man_and_info_describe_the_commands_and_inputs() {
    let build = tempfile::tempdir().unwrap();
    let man = script(&["--man"], "", build.path());
    assert!(man.status.success());
    let man = text(&man.stdout);
    for cmd in [
        "make_kernel",
        "make_init",
        "make_apps",
        "make_eif",
        "make_all",
        "run_eif_image",
        "drop_enclave",
        "lsh",
    ] {
        assert!(man.contains(cmd), "--man lacks {cmd}");
    }
    let info = script(&["--info"], "", build.path());
    assert!(info.status.success(), "{}", text(&info.stderr));
    let info = text(&info.stdout);
    assert!(info.contains("SOURCE_DATE_EPOCH:"), "{info}");
    assert!(info.contains(".linux/enclave.config"), "{info}");
}

#[test]
fn unknown_commands_and_options_fail_with_the_reason() {
    let build = tempfile::tempdir().unwrap();
    let out = script(&["--cmd", "make_everything"], "", build.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown command: make_everything"));
    let out = script(&["--frobnicate"], "", build.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown option: --frobnicate"));
    let out = script(&["--cmd"], "", build.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--cmd needs a command"));
}

#[test]
fn stdin_mode_runs_commands_and_lsh_lines_in_order() {
    let build = tempfile::tempdir().unwrap();
    let marker = build.path().join("marker");
    let input = format!(
        "# a comment\n\nhelp\nlsh\necho first > {m}\nlsh\necho second >> {m}\nlist_enclaves\n",
        m = marker.display()
    );
    let out = script(&[], &input, build.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("make_kernel"));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "first\nsecond\n");
    assert!(text(&out.stderr).contains("no enclaves running"));

    // A failing command stops the session; later lines do not run.
    let input = format!(
        "no_such_command\nlsh\necho never > {m}\n",
        m = marker.display()
    );
    let out = script(&[], &input, build.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown command: no_such_command"));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "first\nsecond\n");
}

#[test]
fn a_failure_nobody_checked_is_reported_with_command_line_and_status() {
    // A build directory that is a file: the unchecked `mkdir -p` fails.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let out = script(&["--cmd", "list_enclaves"], "", &file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("[rbuilds] ERROR: rbuilds.sh:")
            && stderr.contains("`mkdir -p \"$BUILD_DIR\"` failed (exit status 1)"),
        "{stderr}"
    );
}

#[test]
fn profiles_are_checked_before_any_work() {
    let build = tempfile::tempdir().unwrap();
    let out = script(&["--profile", "root", "--info"], "", build.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown profile root (production or debug)"));
    let keys = build.path().join("authorized_keys");
    std::fs::write(&keys, "").unwrap();
    let keys = keys.display().to_string();
    let out = script(
        &["--profile", "debug", "--authorized-keys", &keys, "--info"],
        "",
        build.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--authorized-keys is for the production profile"));
    let out = script(
        &["--authorized-keys", "/nonexistent/keys", "--info"],
        "",
        build.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is not readable"));
    let info = script(&["--info"], "", build.path());
    assert!(text(&info.stdout).contains("profile:            production"));
    let info = script(&["--authorized-keys", &keys, "--info"], "", build.path());
    assert!(text(&info.stdout).contains(&format!("(authorized keys: {keys})")));
}
