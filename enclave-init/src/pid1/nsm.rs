//! The Nitro Secure Module driver: loaded with `finit_module` from
//! `nsm_driver_path` unless `/dev/nsm` already exists (driver built into the
//! kernel, or loaded before).

use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::errno::Errno;
use nix::kmod::{ModuleInitFlags, finit_module};

use crate::defs::{NSM_DEVICE, NSM_DEVICE_WAIT};
use crate::pid1::StepOutcome;

/// Loads the NSM driver when configured and present.
pub fn load(driver: Option<&Path>) -> StepOutcome {
    if Path::new(NSM_DEVICE).exists() {
        return StepOutcome::Skipped(format!(
            "{NSM_DEVICE} exists (driver built in or already loaded)"
        ));
    }
    let Some(driver) = driver else {
        return StepOutcome::Skipped("nsm_driver_path is null".into());
    };
    let path = if driver.is_absolute() {
        driver.to_path_buf()
    } else {
        PathBuf::from("/").join(driver)
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return StepOutcome::Skipped(format!(
                "{} not present and no {NSM_DEVICE}: not a Nitro enclave, or the kernel lacks the driver",
                path.display()
            ));
        }
        Err(err) => return StepOutcome::Failed(format!("open {}: {err}", path.display())),
    };
    match finit_module(&file, c"", ModuleInitFlags::empty()) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(err) => return StepOutcome::Failed(format!("finit_module {}: {err}", path.display())),
    }
    let start = Instant::now();
    while start.elapsed() < NSM_DEVICE_WAIT {
        if Path::new(NSM_DEVICE).exists() {
            return StepOutcome::Done(format!("loaded {}; {NSM_DEVICE} present", path.display()));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    StepOutcome::Done(format!(
        "loaded {}, but {NSM_DEVICE} did not appear within {NSM_DEVICE_WAIT:?}",
        path.display()
    ))
}
