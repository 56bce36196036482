//! The host side: connecting to a pipeline server and the operations.
//!
//! - [`Client::connect`] opens a [`Session`] (connection + handshake).
//! - [`exec::run`] runs a command.
//! - [`copy::upload`] and [`copy::download`] move trees.

pub mod copy;
pub mod exec;

use transport::{Address, ConnectOptions, ReadHalf, WriteHalf};

use crate::connection::{FrameReader, FrameWriter};
use crate::defs::{HANDSHAKE_TIMEOUT, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use crate::error::Error;
use crate::protocol::{ErrorCode, Message};

/// Client name sent in the handshake.
pub const CLIENT_NAME: &str = concat!("pipeline/", env!("CARGO_PKG_VERSION"));

/// Where and how to reach a server.
#[derive(Debug, Clone)]
pub struct Client {
    addr: Address,
    connect: ConnectOptions,
}

/// A connection that completed the handshake, ready for one operation.
#[derive(Debug)]
pub struct Session {
    /// Frames from the server.
    pub reader: FrameReader<ReadHalf>,
    /// Frames to the server.
    pub writer: FrameWriter<WriteHalf>,
    /// The server's name and version.
    pub server: String,
    /// The protocol version agreed.
    pub version: u16,
    /// Whether the server runs commands.
    pub exec_allowed: bool,
}

impl Client {
    /// A client of the server at `addr`, with default retries.
    pub fn new(addr: Address) -> Self {
        Self {
            addr,
            connect: ConnectOptions::default(),
        }
    }

    /// Sets how connecting is retried.
    pub fn with_connect_options(mut self, connect: ConnectOptions) -> Self {
        self.connect = connect;
        self
    }

    /// The server's address.
    pub fn addr(&self) -> &Address {
        &self.addr
    }

    /// Connects and runs the handshake.
    pub async fn connect(&self) -> Result<Session, Error> {
        let stream = transport::connect_with(&self.addr, &self.connect).await?;
        let (rd, wr) = stream.into_split();
        // No idle limit on reads: a command may legitimately stay silent.
        let mut reader = FrameReader::new(rd, None);
        let mut writer = FrameWriter::new(wr);
        let hello = async {
            writer.write_magic().await?;
            writer
                .write_message(&Message::Hello {
                    min_version: MIN_PROTOCOL_VERSION,
                    max_version: PROTOCOL_VERSION,
                    client: CLIENT_NAME.into(),
                })
                .await?;
            reader.next_message("the server's welcome").await
        };
        let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, hello)
            .await
            .map_err(|_| Error::Idle(HANDSHAKE_TIMEOUT))?
            .map_err(|err| match err {
                Error::Closed | Error::Truncated => Error::Handshake(format!(
                    "{} closed the connection during the handshake (is it a pipeline server?)",
                    self.addr
                )),
                other => other,
            })?;
        match answer {
            Message::Welcome {
                version,
                server,
                exec_allowed,
            } => Ok(Session {
                reader,
                writer,
                server,
                version,
                exec_allowed,
            }),
            other => Err(Error::local(
                ErrorCode::Protocol,
                format!("expected the server's welcome, got {}", other.name()),
            )),
        }
    }
}
