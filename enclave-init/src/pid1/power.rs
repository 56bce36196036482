//! Reboot and power-off through the `reboot` syscall, after `sync`.

use nix::sys::reboot::{RebootMode, reboot};

use crate::supervisor::Outcome;

/// Syncs and reboots or powers off; returns only if the syscall failed.
pub fn finish(outcome: Outcome) -> nix::Error {
    nix::unistd::sync();
    let mode = match outcome {
        Outcome::Reboot => RebootMode::RB_AUTOBOOT,
        Outcome::PowerOff | Outcome::Exit => RebootMode::RB_POWER_OFF,
    };
    tracing::info!("pid1: {mode:?}");
    match reboot(mode) {
        Ok(never) => match never {},
        Err(err) => err,
    }
}
