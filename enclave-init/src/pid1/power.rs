//! Reboot and power-off through the `reboot` syscall, after `sync`.
//!
//! Powering off needs ACPI. Nitro enclaves have none (nor has QEMU's
//! `nitro-enclave` machine): there the kernel answers a power-off with "Power
//! off not available: System halted instead" and the enclave would sit
//! halted until someone terminates it. What ends a Nitro enclave is a
//! reboot (AWS's own init finishes with one; a local VMM runs with
//! `-no-reboot`), so without ACPI a power-off becomes a reboot.

use std::path::Path;

use nix::sys::reboot::{RebootMode, reboot};

use crate::defs::ACPI_SYSFS;
use crate::supervisor::Outcome;

/// Syncs and reboots or powers off; returns only if the syscall failed.
pub fn finish(outcome: Outcome) -> nix::Error {
    nix::unistd::sync();
    let acpi = Path::new(ACPI_SYSFS).exists();
    let mode = reboot_mode(outcome, acpi);
    if matches!(outcome, Outcome::PowerOff | Outcome::Exit) && mode == RebootMode::RB_AUTOBOOT {
        tracing::info!("pid1: no ACPI, so no power-off: rebooting, which ends an enclave");
    }
    tracing::info!("pid1: {mode:?}");
    match reboot(mode) {
        Ok(never) => match never {},
        Err(err) => err,
    }
}

/// The `reboot` mode that ends the machine as `outcome` asks, given whether
/// it has ACPI (the only way it can power off).
pub fn reboot_mode(outcome: Outcome, acpi: bool) -> RebootMode {
    match outcome {
        Outcome::Reboot => RebootMode::RB_AUTOBOOT,
        Outcome::PowerOff | Outcome::Exit if acpi => RebootMode::RB_POWER_OFF,
        Outcome::PowerOff | Outcome::Exit => RebootMode::RB_AUTOBOOT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_off_needs_acpi_and_becomes_a_reboot_without_it() {
        assert_eq!(
            reboot_mode(Outcome::PowerOff, true),
            RebootMode::RB_POWER_OFF
        );
        assert_eq!(reboot_mode(Outcome::Exit, true), RebootMode::RB_POWER_OFF);
        assert_eq!(
            reboot_mode(Outcome::PowerOff, false),
            RebootMode::RB_AUTOBOOT
        );
        assert_eq!(reboot_mode(Outcome::Exit, false), RebootMode::RB_AUTOBOOT);
        assert_eq!(reboot_mode(Outcome::Reboot, true), RebootMode::RB_AUTOBOOT);
        assert_eq!(reboot_mode(Outcome::Reboot, false), RebootMode::RB_AUTOBOOT);
    }
}
