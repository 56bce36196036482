//! One request/response exchange with init, over any transport address,
//! in plaintext or over the attested channel (the client checks init's
//! attestation before it sends a request, and its key may then allow it to
//! manage services).

use attested_channel::{Attested, ClientConfig, HandshakeError};
use tokio::io::{AsyncRead, AsyncWrite};
use transport::{Address, ConnectOptions};

use crate::api::{Request, Response};
use crate::control::connection::{Connection, ConnectionError};
use crate::defs::{CLIENT_TIMEOUT, MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection.
    #[error(transparent)]
    Connect(#[from] transport::Error),
    /// Sending or receiving failed.
    #[error("talking to init at {addr}: {source}")]
    Exchange {
        /// The address.
        addr: Address,
        /// Why.
        source: ConnectionError,
    },
    /// Init closed the connection without answering.
    #[error("init at {addr} closed the connection without answering")]
    Closed {
        /// The address.
        addr: Address,
    },
    /// The attested channel could not be set up: init's attestation failed
    /// a check, init refused the key, or the handshake broke.
    #[error("attested channel to init at {addr}: {source}")]
    Handshake {
        /// The address.
        addr: Address,
        /// Why.
        source: HandshakeError,
    },
    /// No answer in time.
    #[error("init at {addr} did not answer within {CLIENT_TIMEOUT:?}")]
    Timeout {
        /// The address.
        addr: Address,
    },
    /// The answer is not a valid response.
    #[error("init at {addr} sent an invalid response: {message}")]
    BadResponse {
        /// The address.
        addr: Address,
        /// The decoder's message.
        message: String,
    },
}

impl ClientError {
    /// The handshake's error, when the attested channel failed.
    pub fn handshake(&self) -> Option<&HandshakeError> {
        match self {
            Self::Handshake { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The byte stream under a [`Client`]: plain, or the attested channel.
trait ControlIo: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> ControlIo for T {}

/// A connection to init that can carry many requests.
#[derive(Debug)]
pub struct Client {
    addr: Address,
    conn: Connection<Box<dyn ControlIo>>,
}

impl Client {
    /// Connects to init at `addr` (plaintext).
    pub async fn connect(addr: &Address) -> Result<Self, ClientError> {
        let stream = open(addr).await?;
        Ok(Self {
            addr: addr.clone(),
            conn: Connection::new(Box::new(stream)),
        })
    }

    /// Connects to init at `addr` over the attested channel: init's
    /// attestation is checked under `channel`'s policy before anything is
    /// sent, and init then knows the client by its key.
    pub async fn connect_attested(
        addr: &Address,
        channel: &ClientConfig,
    ) -> Result<(Self, Attested), ClientError> {
        let stream = open(addr).await?;
        let (secure, attested) =
            attested_channel::connect(stream, channel)
                .await
                .map_err(|source| ClientError::Handshake {
                    addr: addr.clone(),
                    source,
                })?;
        let client = Self {
            addr: addr.clone(),
            conn: Connection::new(Box::new(secure)),
        };
        Ok((client, attested))
    }

    /// Sends `request` and waits for the response.
    pub async fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        let addr = &self.addr;
        let exchange = |source| ClientError::Exchange {
            addr: addr.clone(),
            source,
        };
        let payload = serde_json::to_vec(request).map_err(|e| ClientError::BadResponse {
            addr: addr.clone(),
            message: e.to_string(),
        })?;
        self.conn
            .write_frame(&payload, MAX_REQUEST_FRAME)
            .await
            .map_err(exchange)?;
        let reply = tokio::time::timeout(CLIENT_TIMEOUT, self.conn.read_frame(MAX_RESPONSE_FRAME))
            .await
            .map_err(|_| ClientError::Timeout { addr: addr.clone() })?
            .map_err(exchange)?
            .ok_or_else(|| ClientError::Closed { addr: addr.clone() })?;
        serde_json::from_slice(&reply).map_err(|e| ClientError::BadResponse {
            addr: addr.clone(),
            message: e.to_string(),
        })
    }
}

async fn open(addr: &Address) -> Result<transport::Stream, ClientError> {
    let options = ConnectOptions {
        attempts: 2,
        ..ConnectOptions::default()
    };
    Ok(transport::connect_with(addr, &options).await?)
}

/// Sends `request` to init at `addr` on a new connection and returns its response.
pub async fn request(addr: &Address, request: &Request) -> Result<Response, ClientError> {
    Client::connect(addr).await?.call(request).await
}
