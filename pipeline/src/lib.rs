//! Pipeline: the secure local channel between a host and its enclave.
//!
//! `docker exec` and `docker cp` for enclaves: run commands with live
//! output, standard input and exit status; copy files, symlinks and
//! directory trees both ways, atomically and digest-checked.
//!
//! Layout:
//! - [`defs`]: wire constants, limits and defaults.
//! - [`buffers`]: reusable chunk buffers.
//! - [`protocol`]: frames and messages, no I/O.
//! - [`connection`]: reading and writing frames on a stream.
//! - [`digest`]: the end-to-end check of file content.
//! - [`error`]: [`Error`] and the code the peer is told.
//! - [`paths`]: wire paths and the checks against traversal.
//! - [`policy`]: what a server allows (exec, confinement roots).
//! - [`tree`]: tree streams: walking, writing, placing.
//! - [`server`]: `pipeline listen`: accept loop and request handlers.
//! - [`client`]: the host side: connect, run, upload, download.
//! - [`commands`]: the subcommands' bodies, run with their settings.
//! - [`config`]: the YAML configuration file.
//! - [`settings`]: flags over the file over defaults, validated once.
//! - [`progress`]: the terminal progress bar.

pub mod buffers;
pub mod client;
pub mod commands;
pub mod config;
pub mod connection;
pub mod defs;
pub mod digest;
pub mod error;
pub mod paths;
pub mod policy;
pub mod progress;
pub mod protocol;
pub mod server;
pub mod settings;
pub mod tree;

pub use error::Error;
pub use policy::{Policy, WrittenModes};
