//! The host side: connecting to a pipeline server and the operations.
//!
//! - [`Client::connect`] opens a [`Session`] (connection + handshake).
//! - [`exec::run`] runs a command.
//! - [`copy::upload`] and [`copy::download`] move trees.

pub mod copy;
pub mod exec;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use transport::{Address, ConnectOptions, Stream};

use crate::connection::{FrameReader, FrameWriter};
use crate::defs::{HANDSHAKE_TIMEOUT, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use crate::error::Error;
use crate::protocol::{ErrorCode, Message};

/// Client name sent in the handshake.
pub const CLIENT_NAME: &str = concat!("pipeline/", env!("CARGO_PKG_VERSION"));

/// The reading side of a session: a plain socket or the attested channel.
pub type SessionReader = Box<dyn AsyncRead + Send + Unpin>;
/// The writing side of a session: a plain socket or the attested channel.
pub type SessionWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// Where and how to reach a server.
#[derive(Debug, Clone)]
pub struct Client {
    addr: Address,
    connect: ConnectOptions,
    channel: Option<Arc<attested_channel::ClientConfig>>,
}

/// A connection ready for one operation.
///
/// The greeting is sent on connect but its answer is read only with the
/// operation's request ([`Session::request`]): the request travels right
/// behind the greeting instead of a round trip later.
pub struct Session {
    /// Frames from the server.
    pub reader: FrameReader<SessionReader>,
    /// Frames to the server.
    pub writer: FrameWriter<SessionWriter>,
    addr: Address,
    /// What the attested handshake established (`None` for plaintext).
    pub attested: Option<attested_channel::Attested>,
}

/// What the server said about itself in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
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
            channel: None,
        }
    }

    /// Uses the attested channel: the server must prove, with an attestation
    /// document that passes `config.policy`, that it is the expected
    /// enclave before anything but the handshake is sent.
    pub fn with_channel(mut self, config: attested_channel::ClientConfig) -> Self {
        self.channel = Some(Arc::new(config));
        self
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

    /// Connects and sends the greeting.
    pub async fn connect(&self) -> Result<Session, Error> {
        let stream = transport::connect_with(&self.addr, &self.connect).await?;
        let (rd, wr, attested): (SessionReader, SessionWriter, _) = match &self.channel {
            None => {
                let (rd, wr) = stream.into_split();
                (Box::new(rd), Box::new(wr), None)
            }
            Some(channel) => {
                let (secure, attested) = attested_channel::connect(stream, channel).await?;
                tracing::info!(
                    server_key = %attested.server_key.short(),
                    verdict = %attested.report.verdict(),
                    "attested channel established"
                );
                let (rd, wr) = secure.split_with(Stream::into_split);
                (Box::new(rd), Box::new(wr), Some(attested))
            }
        };
        // No idle limit on reads: a command may legitimately stay silent.
        let reader = FrameReader::new(rd, None);
        let mut writer = FrameWriter::new(wr, None);
        let greeting = async {
            writer.write_magic().await?;
            writer
                .write_message(&Message::Hello {
                    min_version: MIN_PROTOCOL_VERSION,
                    max_version: PROTOCOL_VERSION,
                    client: CLIENT_NAME.into(),
                })
                .await
        };
        greeting
            .await
            .map_err(|err| handshake_error(&self.addr, err))?;
        Ok(Session {
            reader,
            writer,
            addr: self.addr.clone(),
            attested,
        })
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("addr", &self.addr)
            .field("attested", &self.attested.is_some())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Sends the operation's request, then reads the server's welcome.
    pub async fn request(&mut self, request: &Message) -> Result<ServerInfo, Error> {
        let exchange = async {
            self.writer.write_message(request).await?;
            self.reader.next_message("the server's welcome").await
        };
        let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
            .await
            .map_err(|_| Error::Idle(HANDSHAKE_TIMEOUT))?
            .map_err(|err| handshake_error(&self.addr, err))?;
        match answer {
            Message::Welcome {
                version,
                server,
                exec_allowed,
            } => Ok(ServerInfo {
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

/// A connection that breaks during the handshake is most likely not a
/// pipeline server at all: say so.
fn handshake_error(addr: &Address, err: Error) -> Error {
    match err {
        Error::Closed | Error::Truncated | Error::Connection(_) => Error::Handshake(format!(
            "{addr} closed the connection during the handshake (is it a pipeline server?)"
        )),
        other => other,
    }
}
