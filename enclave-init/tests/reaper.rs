#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Orphans are reaped; an OOM kill is told apart from other deaths.

mod common;

use std::time::Duration;

use common::Init;

/// Children of `pid` that are zombies.
fn zombie_children(pid: i32) -> Vec<i32> {
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 1 && fields[1] == pid.to_string() && fields[0] == "Z" {
            zombies.push(entry.file_name().to_string_lossy().parse().unwrap_or(0));
        }
    }
    zombies
}

#[test]
fn a_child_that_forks_and_exits_leaves_no_zombie() {
    let init = Init::prepare("");
    // The service exits at once; its background children are orphaned,
    // re-parented to init (the subreaper) and must be reaped when they exit.
    init.service(
        "forker.service",
        "ExecStart = \"sh -c '(sleep 0.3; exit 7) & (sleep 0.4) & exit 0'\"\n",
    );
    let init = init.start();
    init.wait_state("forker", "exited");
    init.wait_for("two orphans reaped", Duration::from_secs(10), || {
        init.system().orphans_reaped >= 2
    });
    assert!(zombie_children(init.pid()).is_empty());
    let text = init.ctl_ok(&["system-status"]);
    assert!(text.contains("  Orphans Reaped: 2\n"), "{text}");
}

/// A memory cgroup with a small limit, if this machine lets us make one.
fn small_memory_cgroup(name: &str) -> Option<(std::path::PathBuf, &'static str)> {
    for (root, limit_file) in [
        ("/sys/fs/cgroup/memory", "memory.limit_in_bytes"),
        ("/sys/fs/cgroup", "memory.max"),
    ] {
        let dir = std::path::Path::new(root).join(name);
        if std::fs::create_dir_all(&dir).is_ok()
            && std::fs::write(dir.join(limit_file), "33554432").is_ok()
        {
            return Some((dir, limit_file));
        }
        let _ = std::fs::remove_dir(&dir);
    }
    None
}

#[test]
fn an_oom_kill_is_reported_as_such() {
    let cgroup_name = format!("enclave-init-oom-test-{}", std::process::id());
    let Some((cgroup, _)) = small_memory_cgroup(&cgroup_name) else {
        eprintln!(
            "SKIPPED: cannot create a memory cgroup here (needs root and a memory controller)"
        );
        return;
    };
    let init = Init::prepare("");
    // The service moves itself into a 32 MiB cgroup, then becomes `dd` with
    // a 256 MiB buffer: the kernel's OOM killer sends it SIGKILL.
    init.service(
        "hog.service",
        &format!(
            "ExecStart = \"sh -c 'echo $$ > {}/cgroup.procs && exec dd if=/dev/zero of=/dev/null bs=256M count=1'\"\n",
            cgroup.display()
        ),
    );
    init.service("calm.service", "ExecStart = \"sleep 1000\"\n");
    let init = init.start();
    init.wait_for("the hog to die", Duration::from_secs(30), || {
        init.status("hog").state != "running"
    });
    let hog = init.status("hog");
    let exit = hog.last_exit.clone().unwrap();
    assert_eq!((exit.signal, exit.code), (Some(9), 137), "{exit:?}");
    assert!(exit.oom_killed, "{exit:?}");
    assert!(exit.description.contains("OOM killer"));
    let system = init.system();
    assert!(system.kernel_oom_kills.unwrap() >= 1);
    assert_eq!(system.services_oom_killed, 1);
    let text = init.ctl_ok(&["status", "hog"]);
    assert!(
        text.contains("OOM: killed by the kernel's OOM killer"),
        "{text}"
    );
    let text = init.ctl_ok(&["system-status"]);
    assert!(
        text.contains("  OOM Kills: 1 service process(es)"),
        "{text}"
    );
    // A SIGKILL sent by init on stop is not an OOM kill.
    init.ctl_ok(&["stop", "calm"]);
    assert!(!init.status("calm").last_exit.unwrap().oom_killed);
    drop(init);
    let _ = std::fs::remove_dir(&cgroup);
}
