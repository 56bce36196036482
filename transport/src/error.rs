//! [`Error`]: failures to bind, accept or connect, each naming the address.

use std::io;
use std::path::PathBuf;

use crate::address::{Address, ParseAddressError};

/// A transport failure; the message always names the address involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address string did not parse.
    #[error(transparent)]
    Parse(#[from] ParseAddressError),
    /// A host name did not resolve.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The address being resolved.
        addr: Address,
        /// Why.
        source: io::Error,
    },
    /// Binding or listening failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address being bound.
        addr: Address,
        /// Why.
        source: io::Error,
    },
    /// A file that is not a socket sits where a Unix socket should be created.
    #[error("cannot listen on {addr}: {} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket {
        /// The address being bound.
        addr: Address,
        /// The path in the way.
        path: PathBuf,
    },
    /// Another process already listens on the Unix socket.
    #[error("cannot listen on {addr}: another process is listening on {}", path.display())]
    InUse {
        /// The address being bound.
        addr: Address,
        /// The socket path.
        path: PathBuf,
    },
    /// Every connection attempt failed.
    #[error("cannot connect to {addr} (gave up after {attempts} attempt(s)): {source}")]
    Connect {
        /// The address being connected to.
        addr: Address,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's failure.
        source: io::Error,
    },
}

impl Error {
    /// The I/O error underneath, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Resolve { source, .. }
            | Error::Bind { source, .. }
            | Error::Connect { source, .. } => Some(source),
            _ => None,
        }
    }
}
