//! The subcommands' bodies: each takes its resolved
//! [`settings`](crate::settings) and returns a [`CommandError`] that says
//! which step failed, for the binary to map to its exit status.
//!
//! - [`listen`]: `pipeline listen`.
//! - [`keygen`]: `pipeline keygen`.
//! - [`run`]: `pipeline run`.
//! - [`copy`]: `pipeline cp` and Sentient's `send-*`/`recv-*`.

pub mod copy;
pub mod keygen;
pub mod listen;
pub mod run;

use std::io;
use std::path::PathBuf;

use attested_channel::keys::KeyError;
use attested_channel::setup::SetupError;

use crate::Error;
use crate::client::Client;
use crate::protocol::ErrorFrame;
use crate::settings::{ConnectSettings, plaintext_is_local};

/// A subcommand that failed, by the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Connecting to the server, or an operation with no step of its own.
    #[error(transparent)]
    Pipeline(#[from] Error),
    /// The server would not start the command of `run`.
    #[error("{}", .0.message)]
    Start(ErrorFrame),
    /// A copy failed after connecting.
    #[error("cannot copy {from} to {to}")]
    Copy {
        /// The source, as the user would write it.
        from: String,
        /// The destination, as the user would write it.
        to: String,
        /// Why.
        #[source]
        source: Error,
    },
    /// The local source of an upload cannot be read.
    #[error("cannot read {}", .path.display())]
    ReadLocal {
        /// The local source.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `run` cannot watch the signals it forwards.
    #[error("cannot watch signals")]
    Signals(#[source] io::Error),
    /// `listen` cannot bind its address.
    #[error(transparent)]
    Bind(transport::Error),
    /// `listen`'s authorised keys file is unreadable or malformed.
    #[error(transparent)]
    AuthorizedKeys(SetupError),
    /// `listen` cannot set up the attested channel otherwise (the NSM, its
    /// state directory).
    #[error(transparent)]
    Setup(SetupError),
    /// `keygen` cannot make or write the key pair.
    #[error(transparent)]
    Keygen(#[from] KeyError),
}

/// The client for `settings`, over the attested `channel` if any; without
/// one, logs that the connection is plaintext (a warning unless the
/// address is local).
pub fn client(
    settings: ConnectSettings,
    channel: Option<attested_channel::ClientConfig>,
) -> Client {
    if channel.is_none() {
        let why = "no --key: INSECURE plaintext (not authenticated, not encrypted, the server is not attested)";
        if plaintext_is_local(&settings.addr) {
            tracing::info!(addr = %settings.addr, "{why}");
        } else {
            tracing::warn!(addr = %settings.addr, "{why}");
        }
    }
    let client = Client::new(settings.addr).with_connect_options(settings.options);
    match channel {
        Some(channel) => client.with_channel(channel),
        None => client,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;

    /// The message as the binary prints it: the error and its causes.
    fn chain(err: CommandError) -> String {
        cli_support::ErrorChain(&err).to_string()
    }

    #[test]
    fn messages_name_the_step_then_the_cause() {
        let copy = CommandError::Copy {
            from: "a".into(),
            to: "enclave:/b".into(),
            source: Error::local(ErrorCode::NotFound, "/b: gone"),
        };
        assert_eq!(chain(copy), "cannot copy a to enclave:/b: /b: gone");
        let read = CommandError::ReadLocal {
            path: "a".into(),
            source: io::Error::other("gone"),
        };
        assert_eq!(chain(read), "cannot read a: gone");
        let start = CommandError::Start(ErrorFrame {
            code: ErrorCode::NotFound,
            message: "command not found: x".into(),
        });
        assert_eq!(chain(start), "command not found: x");
        assert_eq!(
            chain(CommandError::Signals(io::Error::other("no"))),
            "cannot watch signals: no"
        );
    }
}
