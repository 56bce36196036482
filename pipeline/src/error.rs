//! [`Error`]: everything that can go wrong in a pipeline operation, with the
//! [`ErrorCode`] the peer is told.

use std::io;
use std::time::Duration;

use crate::protocol::{ErrorCode, ErrorFrame, FrameError};

/// A failed pipeline operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting or listening failed.
    #[error(transparent)]
    Transport(#[from] transport::Error),
    /// The peer closed the connection between two frames.
    #[error("the peer closed the connection")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("the peer closed the connection in the middle of a frame")]
    Truncated,
    /// Reading or writing the connection failed.
    #[error("connection I/O failed: {0}")]
    Connection(#[source] io::Error),
    /// The peer sent bytes that are not a valid frame.
    #[error("invalid frame from the peer: {0}")]
    Frame(#[from] FrameError),
    /// The peer sent nothing for too long.
    #[error("the peer sent nothing for {0:?}")]
    Idle(Duration),
    /// The peer stopped reading for too long.
    #[error("the peer stopped reading for {0:?}")]
    Stalled(Duration),
    /// The peer does not speak this protocol.
    #[error("not a pipeline peer: {0}")]
    Handshake(String),
    /// The peer sent a frame that makes no sense at this point.
    #[error("unexpected {got} while waiting for {expected}")]
    Unexpected {
        /// What arrived.
        got: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The attested handshake failed (or the peer is not what it must be).
    #[error(transparent)]
    Channel(#[from] attested_channel::HandshakeError),
    /// The peer reported a failure.
    #[error("{}", .0.message)]
    Remote(ErrorFrame),
    /// This side failed; the code is what the peer is told.
    #[error("{message}")]
    Local {
        /// Reason sent to the peer.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
}

impl Error {
    /// A failure of this side with a reason for the peer.
    pub fn local(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Local {
            code,
            message: message.into(),
        }
    }

    /// A failed file-system or process operation, described by `what`.
    pub fn io(what: impl std::fmt::Display, err: io::Error) -> Self {
        let code = match err.kind() {
            io::ErrorKind::NotFound => ErrorCode::NotFound,
            io::ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
            io::ErrorKind::IsADirectory
            | io::ErrorKind::NotADirectory
            | io::ErrorKind::DirectoryNotEmpty => ErrorCode::Conflict,
            _ => ErrorCode::Io,
        };
        Error::Local {
            code,
            message: format!("{what}: {err}"),
        }
    }

    /// The reason to report to the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Local { code, .. } => *code,
            Error::Remote(frame) => frame.code,
            Error::Idle(_) | Error::Stalled(_) => ErrorCode::Timeout,
            Error::Handshake(_) => ErrorCode::UnsupportedVersion,
            Error::Channel(_) => ErrorCode::PermissionDenied,
            Error::Frame(_) | Error::Unexpected { .. } | Error::Truncated => ErrorCode::Protocol,
            Error::Transport(_) | Error::Closed | Error::Connection(_) => ErrorCode::Io,
        }
    }

    /// The error frame that tells the peer about this failure.
    pub fn to_frame(&self) -> ErrorFrame {
        ErrorFrame {
            code: self.code(),
            message: self.to_string(),
        }
    }

    /// Whether the connection is unusable after this error (nothing more
    /// can be sent to or read from the peer).
    pub fn connection_lost(&self) -> bool {
        matches!(
            self,
            Error::Closed | Error::Truncated | Error::Connection(_) | Error::Channel(_)
        )
    }
}
