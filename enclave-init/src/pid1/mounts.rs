//! The filesystems every enclave process expects, mounted once (a target
//! already mounted is left alone, so the step can run again after the
//! pivot), plus `/dev/fd` and the std links, and stdio on the console.

use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::Path;

use nix::mount::{MsFlags, mount};

use crate::config::StorageMount;
use crate::pid1::StepOutcome;

struct MountSpec {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: Option<&'static str>,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

const MOUNTS: &[MountSpec] = &[
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: Some("mode=0755"),
    },
    MountSpec {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: Some("mode=0620,ptmxmode=0666"),
    },
    MountSpec {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=1777"),
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=1777"),
    },
    MountSpec {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=0755"),
    },
];

const LINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
];

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Mount points currently mounted, from `/proc/self/mountinfo`.
fn mounted() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| {
            text.lines()
                .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn mount_one(spec: &MountSpec, done: &mut Vec<String>, failed: &mut Vec<String>) {
    if mounted().iter().any(|m| m == spec.target) {
        return;
    }
    if let Err(err) = std::fs::create_dir_all(spec.target) {
        failed.push(format!("mkdir {}: {err}", spec.target));
        return;
    }
    match mount(
        Some(spec.source),
        spec.target,
        Some(spec.fstype),
        spec.flags,
        spec.data,
    ) {
        Ok(()) => done.push(spec.target.to_owned()),
        Err(err) => failed.push(format!("{} on {}: {err}", spec.fstype, spec.target)),
    }
}

/// cgroup2 on `/sys/fs/cgroup`, or the v1 controllers of `/proc/cgroups` under a tmpfs.
fn mount_cgroups(done: &mut Vec<String>, failed: &mut Vec<String>) {
    let already = mounted();
    if already.iter().any(|m| m.starts_with(CGROUP_ROOT)) {
        return;
    }
    let flags = NOSUID_NODEV_NOEXEC;
    if let Err(err) = std::fs::create_dir_all(CGROUP_ROOT) {
        failed.push(format!("mkdir {CGROUP_ROOT}: {err}"));
        return;
    }
    if mount(
        Some("cgroup2"),
        CGROUP_ROOT,
        Some("cgroup2"),
        flags,
        None::<&str>,
    )
    .is_ok()
    {
        done.push(format!("{CGROUP_ROOT} (cgroup2)"));
        return;
    }
    if let Err(err) = mount(
        Some("cgroup_root"),
        CGROUP_ROOT,
        Some("tmpfs"),
        flags,
        Some("mode=0755"),
    ) {
        failed.push(format!("tmpfs on {CGROUP_ROOT}: {err}"));
        return;
    }
    let controllers = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    for line in controllers.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(enabled)) = (fields.first(), fields.get(3)) else {
            continue;
        };
        if *enabled != "1" {
            continue;
        }
        let target = format!("{CGROUP_ROOT}/{name}");
        let result = std::fs::create_dir_all(&target)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                mount(
                    Some(*name),
                    target.as_str(),
                    Some("cgroup"),
                    flags,
                    Some(*name),
                )
                .map_err(|e| e.to_string())
            });
        match result {
            Ok(()) => done.push(target),
            Err(err) => failed.push(format!("cgroup {name}: {err}")),
        }
    }
}

/// Opens the console (or `/dev/null`) on whichever of fds 0, 1, 2 is
/// closed, so no file opened later lands on them.
fn ensure_stdio() {
    for path in ["/dev/console", "/dev/null"] {
        loop {
            let Ok(file) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
            else {
                break;
            };
            if file.as_raw_fd() > 2 {
                // 0, 1 and 2 are all open: this extra descriptor is closed on drop.
                return;
            }
            // It filled a hole in 0..=2: keep it open for good.
            let _ = file.into_raw_fd();
        }
    }
}

fn link_all(done: &mut Vec<String>, failed: &mut Vec<String>) {
    for (target, link) in LINKS {
        if Path::new(link).symlink_metadata().is_ok() {
            continue;
        }
        match std::os::unix::fs::symlink(target, link) {
            Ok(()) => done.push(format!("{link} -> {target}")),
            Err(err) => failed.push(format!("link {link}: {err}")),
        }
    }
}

/// Mounts a size-limited tmpfs on each of `storage` (`nosuid`, `nodev`;
/// mode 0755, owners and modes come from the device rules that follow); a
/// path already mounted is left alone, so the step can run again.
pub fn mount_storage(storage: &[StorageMount]) -> StepOutcome {
    if storage.is_empty() {
        return StepOutcome::Skipped("no storage mounts configured".into());
    }
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    let already = mounted();
    for entry in storage {
        let target = entry.path.display().to_string();
        if already.contains(&target) {
            continue;
        }
        if let Err(err) = std::fs::create_dir_all(&entry.path) {
            failed.push(format!("mkdir {target}: {err}"));
            continue;
        }
        let data = format!("size={},mode=0755", entry.size);
        match mount(
            Some("tmpfs"),
            &entry.path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
            Some(data.as_str()),
        ) {
            Ok(()) => done.push(format!("{target} ({})", entry.size)),
            Err(err) => failed.push(format!("tmpfs size={} on {target}: {err}", entry.size)),
        }
    }
    outcome(
        &done,
        &failed,
        "every storage mount already mounted",
        "tmpfs on ",
    )
}

/// The outcome of a mounting step: failed if anything failed (naming what
/// was mounted anyway), skipped with `nothing` if nothing was to do.
fn outcome(done: &[String], failed: &[String], nothing: &str, done_prefix: &str) -> StepOutcome {
    if !failed.is_empty() {
        StepOutcome::Failed(format!(
            "{} (mounted: {})",
            failed.join("; "),
            done.join(", ")
        ))
    } else if done.is_empty() {
        StepOutcome::Skipped(nothing.into())
    } else {
        StepOutcome::Done(format!("{done_prefix}{}", done.join(", ")))
    }
}

/// Mounts what is missing, links `/dev/fd` and the std links, and puts
/// stdio on the console.
pub fn mount_all() -> StepOutcome {
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    for spec in MOUNTS {
        mount_one(spec, &mut done, &mut failed);
    }
    mount_cgroups(&mut done, &mut failed);
    link_all(&mut done, &mut failed);
    ensure_stdio();
    outcome(&done, &failed, "everything already mounted", "mounted ")
}
