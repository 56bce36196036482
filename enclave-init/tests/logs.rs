#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Service output captured into rotating log files, `logs -n`, `logs-clear`.

mod common;

use std::time::Duration;

use common::Init;

#[test]
fn output_is_captured_rotated_tailed_and_cleared() {
    let init = Init::prepare("max_log_size: 4096\nmax_log_files: 2\n");
    // 300 numbered lines of ~100 bytes on stdout and stderr, then stay up.
    init.service(
        "chatty.service",
        "ExecStart = \"sh -c 'i=0; while [ $i -lt 300 ]; do i=$((i+1)); printf \\\"line %03d %090d\\\\n\\\" $i 0; [ $((i % 50)) -eq 0 ] && echo \\\"err $i\\\" >&2; done; exec sleep 1000'\"\n",
    );
    let init = init.start();
    let log = init.log_dir().join("chatty.log");
    init.wait_for("the last line in the log", Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("line 300")
    });
    let mut files: Vec<String> = std::fs::read_dir(init.log_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["chatty.log", "chatty.log.1", "chatty.log.2"]);
    for f in &files {
        let len = std::fs::metadata(init.log_dir().join(f)).unwrap().len();
        assert!(len <= 4096, "{f} has {len} bytes");
    }
    // logs -n 5: the last five lines, time-stamped, oldest first.
    let out = init.ctl_ok(&["logs", "chatty", "-n", "5"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[3].contains("line 300 "), "{out}");
    assert!(lines[4].ends_with(" err 300"), "{out}");
    assert!(lines[0].contains("line 297 "), "{out}");
    assert!(
        lines[0].starts_with("20") && lines[0].contains('T') && lines[0].contains("Z "),
        "{out}"
    );
    // Across rotated files, in order, stderr included.
    let many = init.ctl_ok(&["logs", "chatty", "-n", "100"]);
    let numbers: Vec<u32> = many
        .lines()
        .filter_map(|l| l.split("line ").nth(1))
        .map(|l| l[..3].parse().unwrap())
        .collect();
    assert!(numbers.len() > 60, "{}", numbers.len());
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    assert!(many.contains(" err 300"), "stderr is captured too");
    // Default is 50 lines.
    assert_eq!(init.ctl_ok(&["logs", "chatty"]).lines().count(), 50);
    // Service output never reaches init's own console.
    assert!(!init.stderr().contains("line 300"));
    // logs-clear empties the log and removes the rotated files.
    assert_eq!(
        init.ctl_ok(&["logs-clear", "chatty"]),
        "✓ Logs of 'chatty' cleared\n"
    );
    assert_eq!(init.ctl_ok(&["logs", "chatty"]), "");
    assert!(!init.log_dir().join("chatty.log.1").exists());
    // The service keeps logging into the emptied file.
    init.ctl_ok(&["restart", "chatty"]);
    init.wait_for(
        "new output after the clear",
        Duration::from_secs(10),
        || {
            init.ctl_ok(&["logs", "chatty", "-n", "1"])
                .contains("err 300")
        },
    );
    let out = init.ctl(&["logs", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn init_notes_starts_and_exits_in_the_service_log() {
    let init = Init::prepare("");
    init.service(
        "once.service",
        "ExecStart = \"sh -c 'echo hello; exit 4'\"\n",
    );
    let init = init.start();
    init.wait_state("once", "failed");
    let out = init.ctl_ok(&["logs", "once"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("[init] started pid "), "{out}");
    assert!(lines[1].ends_with(" hello"), "{out}");
    assert!(
        lines[2].contains("[init] pid ") && lines[2].ends_with("exited with status 4"),
        "{out}"
    );
}

#[test]
fn large_replies_arrive_whole() {
    let init = Init::prepare("max_log_size: 104857600\n");
    // 12000 lines of ~120 bytes: a reply of about 1.5 MB in one frame.
    init.service(
        "bulk.service",
        "ExecStart = \"sh -c 'seq -f %08g 1 12000 | sed s/$/-abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghij/'\"\n",
    );
    let init = init.start();
    init.wait_state("bulk", "exited");
    let out = init.ctl_ok(&["logs", "bulk", "-n", "100000"]);
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("-abcdef") && !l.contains("[init]"))
        .collect();
    assert_eq!(lines.len(), 12000);
    assert!(lines[0].contains(" 00000001-"), "{}", lines[0]);
    assert!(lines[11999].contains(" 00012000-"), "{}", lines[11999]);
    assert!(out.len() > 1_400_000, "{}", out.len());
}

#[test]
fn an_unwritable_log_loses_lines_visibly_and_nothing_else() {
    let init = Init::prepare("");
    // The log directory is a plain file: every write fails.
    std::fs::write(init.log_dir(), "not a directory").unwrap();
    init.service(
        "svc.service",
        "ExecStart = \"sh -c 'echo a; echo b; exec sleep 1000'\"\n",
    );
    let init = init.start();
    init.wait_for("lost lines to be counted", Duration::from_secs(10), || {
        init.status("svc").log_lines_lost >= 3
    });
    assert_eq!(init.status("svc").state, "running");
    let text = init.ctl_ok(&["status", "svc"]);
    assert!(text.contains("Log Lines Lost: "), "{text}");
    assert!(init.stderr().contains("cannot write service log"));
}
