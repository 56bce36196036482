#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! `rbuilds-tool console-check` and `console-lines` on consoles as the image
//! test reads them: an AMD host's harmless "failed" at info level passes, a
//! real error fails, a line cut by a kernel message is read whole.

use std::path::Path;
use std::process::Command;

/// The start of a real nitro-enclave console from an AMD EPYC host under
/// TCG (issue 10), with the image's `console_msg_format=syslog` prefixes.
const AMD_BOOT: &str = "\
<5>[    0.000000] Linux version 6.12.57 (rbuilds@enclave) #1 SMP PREEMPT_DYNAMIC
<6>[    0.000000] Command line: reboot=k panic=30 pci=off console=ttyS0 console_msg_format=syslog tsc_early_khz=2596120 tsc=reliable lpj=10384480
<6>[    0.000000] tsc: Fast TSC calibration failed
<6>[    0.000000] tsc: Detected 2596.120 MHz processor
<6>[    0.512000] Run /init as init process
2026-12-04T11:00:01.000000Z  INFO init: enclave-init starting as PID 1
2026-12-04T11:00:02.000000Z  INFO init::supervisor: service 'net' (pid 42) exited with status 0
";

fn check(dir: &Path, console: &str) -> std::process::Output {
    let path = dir.join("console.log");
    std::fs::write(&path, console).unwrap();
    Command::new(env!("CARGO_BIN_EXE_rbuilds-tool"))
        .arg("console-check")
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn a_harmless_failed_at_info_level_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), AMD_BOOT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_real_kernel_error_or_init_warning_still_fails_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let console = format!(
        "{AMD_BOOT}<3>[    1.000000] nsm: probe of virtio3 failed with error -12\n\
         2026-12-04T11:00:03.000000Z  WARN init::supervisor: service 'ra-web-srv' exited with status 101\n"
    );
    let out = check(dir.path(), &console);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("8: [kernel, err] <3>[    1.000000] nsm: probe of virtio3 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("9: [init, warn]"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 problem line(s)"));

    // A warning the caller provoked on purpose is expected, and must be there.
    let path = dir.path().join("console.log");
    let run = |expected: &str| {
        Command::new(env!("CARGO_BIN_EXE_rbuilds-tool"))
            .args([
                "console-check",
                "--expected",
                "nsm: probe of virtio3 failed",
                "--expected",
            ])
            .arg(expected)
            .arg(&path)
            .output()
            .unwrap()
    };
    let out = run("service 'ra-web-srv' exited with status 101");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run("a refusal that was never logged");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("expected, not found: a refusal that was never logged")
    );
}

#[test]
fn a_panic_without_a_level_fails() {
    let dir = tempfile::tempdir().unwrap();
    let console = format!("{AMD_BOOT}thread 'main' panicked at init/src/main.rs:10:5:\n");
    let out = check(dir.path(), &console);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[no log level] thread 'main' panicked"));
}

#[test]
fn console_lines_joins_a_line_a_kernel_message_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console.log");
    let cut = AMD_BOOT.replacen(
        "service 'net' (pid 42) exited",
        "service 'net' (pid<6>[    1.299683] clocksource: Switched to clocksource tsc\n 42) exited",
        1,
    );
    std::fs::write(&path, &cut).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rbuilds-tool"))
        .arg("console-lines")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("service 'net' (pid 42) exited with status 0\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\n<6>[    1.299683] clocksource: Switched to clocksource tsc\n"));
    assert!(check(dir.path(), &cut).status.success());
}
