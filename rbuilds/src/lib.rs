//! rbuilds: the parts of the reproducible enclave build and the local runner
//! that are more than shell glue. `rbuilds/rbuilds.sh` drives them through
//! the `rbuilds-tool` binary.
//!
//! - [`cpio`]: newc archives written in sorted order with fixed owner, mtime
//!   and permissions (the ramdisks), and a lister.
//! - [`eif`]: the EIF header and sections; extraction of kernel, command
//!   line and ramdisks for a VMM that cannot boot an EIF.
//! - [`pcrs`]: the PCRs printed by eif_build, as the `.eif.pcrs` file.
//! - [`console`]: an enclave console judged by log level (the image test).
//! - [`heartbeat`]: the host's answer to the enclave's boot heartbeat.
//! - [`app_service`]: the init service of a Docker image's application
//!   (`--dockerfile`).
//! - [`app`]: an application's manifest (`--app DIR`, `DIR/app.toml`).

pub mod app;
pub mod app_service;
pub mod console;
pub mod cpio;
pub mod defs;
pub mod eif;
pub mod heartbeat;
pub mod pcrs;
