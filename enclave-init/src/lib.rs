//! `init`, PID 1 of an enclave, and `initctl`, its control tool.
//!
//! Init mounts what a Linux userland needs, brings loopback up with
//! 127.0.0.1/8, loads the NSM driver, tells the parent it booted (vsock
//! heartbeat), then supervises services described by TOML service files:
//! start order from their dependencies, restart policies, per-service log
//! files with rotation, and a JSON control protocol over a Unix socket (and
//! vsock, TCP or hybrid vsock when configured). Run as an ordinary process
//! it skips the PID-1 duties and only supervises.
//!
//! Layout:
//! - [`cli`]: argument parsing shared by the binaries.
//! - [`defs`]: defaults, limits and wire constants.
//! - [`access_level`]: the access level of a control listener (read-only or full).
//! - [`environment`]: `KEY=VALUE` environment entries and their checks.
//! - [`command`]: command lines split into words, without a shell.
//! - [`outcome`]: what a boot step did (done, skipped or failed).
//! - [`config`]: `init.yaml`, its loading priority and validation.
//! - [`ctl_config`]: `initctl.yaml` and initctl's overrides.
//! - [`service`]: service files, names, enable/disable on disk.
//! - [`accounts`]: users and groups, by name (`/etc/passwd`, `/etc/group`) or number.
//! - [`privileges`]: dropping a service to its user, state directories, device nodes.
//! - [`deps`]: start order and cycle detection.
//! - [`logs`]: log capture, rotation and tail.
//! - [`reaper`]: subreaper, `waitpid` loop, exit statuses, OOM-kill counter.
//! - [`console`]: init's own output, bounded and never blocking.
//! - [`health`]: health checks (command, HTTP, TCP probes) of running services.
//! - [`api`]: the requests the supervisor answers and its responses.
//! - [`supervisor`]: the task that owns services and processes.
//! - [`control`]: the framed JSON protocol, server and client.
//! - [`render`]: initctl's text output.
//! - [`pid1`]: mounts, NSM, heartbeat, pivot, hostname, loopback, reboot.
//! - [`run`]: the wiring of all of the above.
//!
//! Modules depend on each other one way only (`tools/lint/module_cycles.py`
//! checks it): the leaf definitions (`defs`, `access_level`, `environment`,
//! `command`, `outcome`) at the bottom, then the sections of the
//! configuration (`accounts`, `privileges`, `logs`, `health`, `service`),
//! then `config` and `api`, and `supervisor`, `control`, `pid1` and `run` at
//! the top.

pub mod access_level;
pub mod accounts;
pub mod api;
pub mod cli;
pub mod command;
pub mod config;
pub mod console;
pub mod control;
pub mod ctl_config;
pub mod defs;
pub mod deps;
pub mod environment;
pub mod health;
pub mod logs;
pub mod outcome;
pub mod pid1;
pub mod privileges;
pub mod reaper;
pub mod render;
pub mod run;
pub mod service;
pub mod supervisor;
