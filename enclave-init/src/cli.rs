//! What both binaries share at their edge: argument parsing with the exit
//! codes of the project (64 for bad usage, 0 for `--help`/`--version`),
//! from [`cli_support`], which every binary of the workspace uses.

pub use cli_support::{EXIT_USAGE, parse_args};
