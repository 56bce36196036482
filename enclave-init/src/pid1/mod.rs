//! The duties of PID 1, run before supervision starts, each as a step that
//! logs what it did (`pid1: <step>: done|skipped|FAILED: <detail>`), so a
//! boot can be followed on the console and each step can be tried alone
//! with `init --run-step STEP` in a VM or a namespace.
//!
//! Order (that of AWS's bootstrap init, plus loopback and hostname):
//! 1. [`compat`]: read `/env` and `/cmd` of AWS-style images (initial root).
//! 2. [`mounts`]: `/proc`, `/sys`, `/dev`, `/dev/pts`, `/dev/shm`, `/tmp`,
//!    `/run`, cgroups, `/dev/fd` and the std links; stdio on the console.
//! 3. [`nsm`]: load the NSM driver module unless `/dev/nsm` exists.
//! 4. [`heartbeat`]: `0xB7` to the parent on vsock port 9000, discovering
//!    the parent CID (3 on Nitro, 2 in a local VM).
//! 5. pivot: `chroot` into `pivot_root_dir` when configured and present,
//!    then the mounts again inside it.
//! 6. storage: the size-limited tmpfs of `init.yaml`'s `storage` (an inbox
//!    the host fills cannot take the bus's or the services' space).
//! 7. hostname, then [`netlink`]: loopback up with 127.0.0.1/8.
//!
//! After these, in PID 1 and as an ordinary process alike, the `devices`
//! rules of `init.yaml` set owner, group and mode of device nodes (see
//! [`crate::privileges`]), before any service starts.
//!
//! No step failure stops the boot: PID 1 must come up and supervise.

pub mod compat;
pub mod heartbeat;
pub mod mounts;
pub mod netlink;
pub mod nsm;
pub mod power;

use std::path::Path;

pub use crate::outcome::StepOutcome;

use crate::config::{Config, ParentCid};
use crate::defs::{NITRO_PARENT_CID, NSM_DEVICE, VM_HOST_CID};
use crate::supervisor::Context;

/// Logs a step's outcome and returns it.
pub fn report(step: &str, outcome: StepOutcome) -> StepOutcome {
    if outcome.failed() {
        tracing::error!("pid1: {step}: {outcome}");
    } else {
        tracing::info!("pid1: {step}: {outcome}");
    }
    outcome
}

/// One PID-1 step, for `init --run-step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    /// Read `/env` and `/cmd`.
    Compat,
    /// Mount the essential filesystems.
    Mounts,
    /// Load the NSM driver.
    Nsm,
    /// Send the boot heartbeat.
    Heartbeat,
    /// Switch into `pivot_root_dir`.
    Pivot,
    /// Set the host name.
    Hostname,
    /// Bring loopback up with 127.0.0.1/8.
    Loopback,
    /// Mount the configured size-limited tmpfs (`storage`).
    Storage,
    /// Set owner, group and mode of the configured device nodes.
    Devices,
}

/// Runs one step alone and returns its outcome.
pub async fn run_step(step: Step, config: &Config) -> StepOutcome {
    match step {
        Step::Compat => match compat::read_from(Path::new("/")) {
            Ok(Some(def)) => StepOutcome::Done(format!("service 'cmd': {}", def.exec_start)),
            Ok(None) => StepOutcome::Skipped("no /cmd".into()),
            Err(err) => StepOutcome::Failed(err),
        },
        Step::Mounts => mounts::mount_all(),
        Step::Nsm => nsm::load(config.nsm_driver.as_deref()),
        Step::Heartbeat => heartbeat::send(&config.heartbeat).await.1,
        Step::Pivot => pivot(config.pivot_root_dir.as_deref()),
        Step::Hostname => hostname(&config.hostname),
        Step::Loopback => netlink::loopback_up(),
        Step::Storage => mounts::mount_storage(&config.storage),
        Step::Devices => crate::privileges::apply_device_rules(&config.devices, &config.accounts),
    }
}

/// Runs every PID-1 duty in order and returns what supervision needs.
pub async fn prepare(config: &Config) -> Context {
    tracing::info!("pid1: configuration from {}", config.source);
    if let Some(banner) = &config.banner {
        tracing::info!("pid1: {banner}");
    }
    let compat_cmd = match compat::read_from(Path::new("/")) {
        Ok(def) => {
            let outcome = match &def {
                Some(def) => {
                    StepOutcome::Done(format!("/cmd runs as service 'cmd': {}", def.exec_start))
                }
                None => StepOutcome::Skipped("no /cmd in the image".into()),
            };
            report("compat", outcome);
            def
        }
        Err(err) => {
            report("compat", StepOutcome::Failed(err));
            None
        }
    };
    report("mounts", mounts::mount_all());
    report("nsm", nsm::load(config.nsm_driver.as_deref()));
    let parent_cid = if config.heartbeat.enabled {
        let (cid, outcome) = heartbeat::send(&config.heartbeat).await;
        report("heartbeat", outcome);
        cid.or_else(|| guess_parent_cid(config.heartbeat.cid))
    } else {
        report(
            "heartbeat",
            StepOutcome::Skipped("vsock.enabled is false".into()),
        );
        guess_parent_cid(config.heartbeat.cid)
    };
    let pivoted = report("pivot", pivot(config.pivot_root_dir.as_deref()));
    if matches!(pivoted, StepOutcome::Done(_)) {
        report("mounts (new root)", mounts::mount_all());
    }
    if !config.storage.is_empty() {
        report("storage", mounts::mount_storage(&config.storage));
    }
    report("hostname", hostname(&config.hostname));
    report("loopback", netlink::loopback_up());
    if let Some(cid) = parent_cid {
        tracing::info!("pid1: parent CID {cid} handed to services as ENCLAVE_PARENT_CID");
    }
    Context {
        pid1: true,
        parent_cid,
        compat_cmd,
    }
}

/// The parent CID without a heartbeat: the configured one, else 3 where
/// `/dev/nsm` exists (Nitro), else 2 (a local VM).
pub fn guess_parent_cid(setting: ParentCid) -> Option<u32> {
    Some(match setting {
        ParentCid::Fixed(cid) => cid,
        ParentCid::Auto if Path::new(NSM_DEVICE).exists() => NITRO_PARENT_CID,
        ParentCid::Auto => VM_HOST_CID,
    })
}

/// `chdir` + `chroot` into `dir`, as AWS's init does with `/rootfs`.
pub fn pivot(dir: Option<&Path>) -> StepOutcome {
    let Some(dir) = dir else {
        return StepOutcome::Skipped("pivot_root is false".into());
    };
    if !dir.is_dir() {
        return StepOutcome::Skipped(format!(
            "{} does not exist: staying on the initial root",
            dir.display()
        ));
    }
    let result = std::env::set_current_dir(dir)
        .map_err(|e| e.to_string())
        .and_then(|()| nix::unistd::chroot(".").map_err(|e| e.to_string()))
        .and_then(|()| std::env::set_current_dir("/").map_err(|e| e.to_string()));
    match result {
        Ok(()) => StepOutcome::Done(format!("root is now {}", dir.display())),
        Err(err) => StepOutcome::Failed(format!("chroot into {}: {err}", dir.display())),
    }
}

/// Sets the host name.
pub fn hostname(name: &str) -> StepOutcome {
    match nix::unistd::sethostname(name) {
        Ok(()) => StepOutcome::Done(format!("host name {name}")),
        Err(err) => StepOutcome::Failed(format!("sethostname {name}: {err}")),
    }
}
