//! The attested Noise XX handshake.
//!
//! ```text
//! client                                              server
//!   "ACH1"                                      ->
//!   msg 1: -> e          payload: client nonce (32 random bytes)
//!                                               <-  msg 2: <- e, ee, s, es
//!                            payload: NSM document {public_key: server static,
//!                                                   nonce: client nonce, user_data: label}
//!   (client verifies the document; on any failure it closes, having sent nothing more)
//!   msg 3: -> s, se      payload: empty           ->
//!                                               (server looks the client key up)
//!                                               <-  record 0: verdict
//!                            [0] accepted | [1] refused, then the reason (UTF-8)
//! ```
//!
//! Every handshake message is a u16 big-endian length and the Noise
//! message. Both sides hash [`PROLOGUE`] into the handshake. The whole
//! exchange runs under a time limit on each side.

use std::sync::Arc;
use std::time::Duration;

use ra_verify_core::Report;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::attest::{Attester, verify_server_document};
use crate::authorized::{AuthorizedKey, AuthorizedKeys};
use crate::defs::{
    ATTESTATION_LABEL, CLIENT_NONCE_LEN, HANDSHAKE_TIMEOUT, LENGTH_PREFIX_LEN, MAGIC,
    MAX_HANDSHAKE_MESSAGE, MAX_RECORD_LEN, PROLOGUE, TAG_LEN, VERDICT_ACCEPTED, VERDICT_REFUSED,
    noise_params,
};
use crate::keys::{PublicKey, StaticKey};
use crate::record::{Keys, SecureStream};

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Reading or writing failed.
    #[error("the connection failed during the attested handshake: {0}")]
    Io(std::io::Error),
    /// The peer closed the connection.
    #[error("the peer closed the connection during the attested handshake")]
    Closed,
    /// The handshake took too long.
    #[error("the attested handshake did not finish within {0:?}")]
    Timeout(Duration),
    /// The client did not start with the channel's magic bytes.
    #[error("the peer is not an attested-channel client (it began with {0:02x?})")]
    NotAChannelClient([u8; 4]),
    /// A message is malformed.
    #[error("malformed handshake message: {0}")]
    Malformed(String),
    /// Noise refused a message (another protocol, or a tampered message).
    #[error("the Noise handshake failed: {0} (another protocol, or a message changed on the way)")]
    Noise(String),
    /// The server's attestation did not pass (client side).
    #[error("the server's attestation failed: {}", attestation_summary(.0))]
    Attestation(Box<Report>),
    /// The server could not make its attestation document.
    #[error("cannot make the attestation document: {0}")]
    Attest(String),
    /// The client's key is not authorised (server side).
    #[error("client key {} is not in the authorized keys", .0.short())]
    Unauthorized(PublicKey),
    /// The server refused this client's key (client side).
    #[error("the server refused this client key: {0}")]
    Refused(String),
}

impl HandshakeError {
    /// True when the server's attestation failed a check.
    pub fn is_attestation_failure(&self) -> bool {
        matches!(self, Self::Attestation(_))
    }

    /// True when the server refused the client's key.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused(_) | Self::Unauthorized(_))
    }
}

fn attestation_summary(report: &Report) -> String {
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.outcome == ra_verify_core::Outcome::Fail)
        .map(ToString::to_string)
        .collect();
    format!("{}; {}", report.verdict(), failed.join("; "))
}

impl From<std::io::Error> for HandshakeError {
    fn from(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            Self::Closed
        } else {
            Self::Io(error)
        }
    }
}

impl From<snow::Error> for HandshakeError {
    fn from(error: snow::Error) -> Self {
        Self::Noise(error.to_string())
    }
}

/// The server's side of the channel.
#[derive(Clone)]
pub struct ServerConfig {
    /// The server's static key: made at start, in memory only.
    pub key: StaticKey,
    /// What makes the attestation documents.
    pub attester: Arc<dyn Attester>,
    /// The client keys accepted, with their permissions.
    pub authorized: Arc<AuthorizedKeys>,
    /// Time limit of a handshake.
    pub timeout: Duration,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("key", &self.key.public())
            .field("attester", &self.attester.kind())
            .field("authorized", &self.authorized.keys().len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ServerConfig {
    /// A server with a fresh static key and the default time limit.
    pub fn new(
        attester: Arc<dyn Attester>,
        authorized: AuthorizedKeys,
    ) -> Result<Self, crate::keys::KeyError> {
        Ok(Self {
            key: StaticKey::generate()?,
            attester,
            authorized: Arc::new(authorized),
            timeout: HANDSHAKE_TIMEOUT,
        })
    }
}

/// The client's side of the channel.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client's key (must be in the server's authorized keys).
    pub key: StaticKey,
    /// What the server's document must satisfy (root or `allow_unsigned`,
    /// expected PCRs); its nonce is set by the handshake.
    pub policy: ra_verify_core::Policy,
    /// Time limit of a handshake.
    pub timeout: Duration,
}

/// What the client learned about the server.
#[derive(Debug, Clone)]
pub struct Attested {
    /// Every check of the server's document (all passed).
    pub report: Report,
    /// The server's static key, as bound in the document.
    pub server_key: PublicKey,
}

/// Runs the server's side of the handshake on `stream`: the client is
/// authenticated and authorised, and its entry returned, or the error says
/// why not (the stream is then dropped).
pub async fn accept<S>(
    stream: S,
    config: &ServerConfig,
) -> Result<(SecureStream<S>, AuthorizedKey), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(config.timeout, accept_inner(stream, config))
        .await
        .map_err(|_| HandshakeError::Timeout(config.timeout))?
}

async fn accept_inner<S>(
    mut stream: S,
    config: &ServerConfig,
) -> Result<(SecureStream<S>, AuthorizedKey), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut magic = [0u8; 4];
    stream.read_exact(&mut magic).await?;
    if magic != MAGIC {
        return Err(HandshakeError::NotAChannelClient(magic));
    }
    after_magic(stream, config).await
}

/// [`accept`] for a caller that has read the client's first four bytes
/// itself (to tell channel clients from others) and found [`MAGIC`].
pub async fn accept_after_magic<S>(
    stream: S,
    config: &ServerConfig,
) -> Result<(SecureStream<S>, AuthorizedKey), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(config.timeout, after_magic(stream, config))
        .await
        .map_err(|_| HandshakeError::Timeout(config.timeout))?
}

async fn after_magic<S>(
    mut stream: S,
    config: &ServerConfig,
) -> Result<(SecureStream<S>, AuthorizedKey), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut noise = snow::Builder::new(noise_params()?)
        .local_private_key(config.key.private_bytes())?
        .prologue(PROLOGUE)?
        .build_responder()?;
    let mut message = vec![0u8; MAX_HANDSHAKE_MESSAGE];
    let mut payload = vec![0u8; MAX_HANDSHAKE_MESSAGE];

    let len = read_handshake_message(&mut stream, &mut message).await?;
    let n = noise.read_message(&message[..len], &mut payload)?;
    if n != CLIENT_NONCE_LEN {
        return Err(HandshakeError::Malformed(format!(
            "message 1 carries {n} bytes, not a {CLIENT_NONCE_LEN}-byte nonce"
        )));
    }
    let nonce = payload[..n].to_vec();
    let document = config
        .attester
        .attest(
            nonce,
            config.key.public().as_bytes().to_vec(),
            ATTESTATION_LABEL.to_vec(),
        )
        .await
        .map_err(HandshakeError::Attest)?;
    let len = noise.write_message(&document, &mut message)?;
    write_handshake_message(&mut stream, &message[..len]).await?;

    let len = read_handshake_message(&mut stream, &mut message).await?;
    let n = noise.read_message(&message[..len], &mut payload)?;
    if n != 0 {
        return Err(HandshakeError::Malformed(format!(
            "message 3 carries {n} bytes of payload, none expected"
        )));
    }
    let client = noise
        .get_remote_static()
        .ok_or_else(|| HandshakeError::Noise("no client static key after message 3".into()))
        .and_then(|key| {
            PublicKey::from_slice(key).map_err(|e| HandshakeError::Malformed(e.to_string()))
        })?;
    let keys: Keys = Arc::new(noise.into_stateless_transport_mode()?);
    let entry = config.authorized.find(&client).cloned();
    let verdict = match &entry {
        Some(_) => vec![VERDICT_ACCEPTED],
        None => {
            let mut verdict = vec![VERDICT_REFUSED];
            verdict.extend_from_slice(
                format!(
                    "key {} is not in the server's authorized keys",
                    client.short()
                )
                .as_bytes(),
            );
            verdict
        }
    };
    let mut record = vec![0u8; LENGTH_PREFIX_LEN + MAX_RECORD_LEN];
    let len = keys.write_message(0, &verdict, &mut record[LENGTH_PREFIX_LEN..])?;
    let prefix =
        u16::try_from(len).map_err(|_| HandshakeError::Malformed("verdict too long".into()))?;
    record[..LENGTH_PREFIX_LEN].copy_from_slice(&prefix.to_be_bytes());
    stream.write_all(&record[..LENGTH_PREFIX_LEN + len]).await?;
    stream.flush().await?;
    match entry {
        Some(entry) => Ok((SecureStream::new(stream, keys, 0, 1), entry)),
        None => Err(HandshakeError::Unauthorized(client)),
    }
}

/// Runs the client's side of the handshake on `stream`: the server's
/// document is checked before anything but messages 1 and 2 passed.
pub async fn connect<S>(
    stream: S,
    config: &ClientConfig,
) -> Result<(SecureStream<S>, Attested), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(config.timeout, connect_inner(stream, config))
        .await
        .map_err(|_| HandshakeError::Timeout(config.timeout))?
}

async fn connect_inner<S>(
    mut stream: S,
    config: &ClientConfig,
) -> Result<(SecureStream<S>, Attested), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut nonce = [0u8; CLIENT_NONCE_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| HandshakeError::Noise("no random bytes for the nonce".into()))?;
    let mut noise = snow::Builder::new(noise_params()?)
        .local_private_key(config.key.private_bytes())?
        .prologue(PROLOGUE)?
        .build_initiator()?;
    let mut message = vec![0u8; MAX_HANDSHAKE_MESSAGE];
    let mut payload = vec![0u8; MAX_HANDSHAKE_MESSAGE];

    let len = noise.write_message(&nonce, &mut message)?;
    let mut first = Vec::with_capacity(MAGIC.len() + LENGTH_PREFIX_LEN + len);
    first.extend_from_slice(&MAGIC);
    append_handshake_message(&mut first, &message[..len])?;
    stream.write_all(&first).await?;
    stream.flush().await?;

    let len = read_handshake_message(&mut stream, &mut message).await?;
    let n = noise.read_message(&message[..len], &mut payload)?;
    let server_key = noise
        .get_remote_static()
        .ok_or_else(|| HandshakeError::Noise("no server static key after message 2".into()))
        .and_then(|key| {
            PublicKey::from_slice(key).map_err(|e| HandshakeError::Malformed(e.to_string()))
        })?;
    let report =
        verify_server_document(&payload[..n], &config.policy, &nonce, server_key.as_bytes());
    if !report.passed() {
        return Err(HandshakeError::Attestation(Box::new(report)));
    }

    let len = noise.write_message(&[], &mut message)?;
    write_handshake_message(&mut stream, &message[..len]).await?;
    let keys: Keys = Arc::new(noise.into_stateless_transport_mode()?);

    let len = read_handshake_message(&mut stream, &mut message).await?;
    if len < TAG_LEN {
        return Err(HandshakeError::Malformed(
            "the verdict record is too short".into(),
        ));
    }
    let n = keys
        .read_message(0, &message[..len], &mut payload)
        .map_err(|e| HandshakeError::Noise(format!("the verdict record: {e}")))?;
    match payload[..n].split_first() {
        Some((&VERDICT_ACCEPTED, _)) => Ok((
            SecureStream::new(stream, keys, 1, 0),
            Attested { report, server_key },
        )),
        Some((&VERDICT_REFUSED, reason)) => Err(HandshakeError::Refused(
            String::from_utf8_lossy(reason).into_owned(),
        )),
        _ => Err(HandshakeError::Malformed("an unknown verdict".into())),
    }
}

/// Reads one length-prefixed handshake message into `buf`; returns its length.
pub async fn read_handshake_message<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut [u8],
) -> Result<usize, HandshakeError> {
    let mut prefix = [0u8; LENGTH_PREFIX_LEN];
    stream.read_exact(&mut prefix).await?;
    let len = usize::from(u16::from_be_bytes(prefix));
    check_message_len(len, buf.len())?;
    stream.read_exact(&mut buf[..len]).await?;
    Ok(len)
}

/// Checks an announced message length against [`MAX_HANDSHAKE_MESSAGE`]
/// and the buffer, before anything is read into it.
pub fn check_message_len(len: usize, room: usize) -> Result<(), HandshakeError> {
    if len == 0 {
        return Err(HandshakeError::Malformed("an empty message".into()));
    }
    if len > MAX_HANDSHAKE_MESSAGE || len > room {
        return Err(HandshakeError::Malformed(format!(
            "a {len}-byte message, more than the {} accepted",
            MAX_HANDSHAKE_MESSAGE.min(room)
        )));
    }
    Ok(())
}

fn append_handshake_message(out: &mut Vec<u8>, message: &[u8]) -> Result<(), HandshakeError> {
    let len = u16::try_from(message.len())
        .map_err(|_| HandshakeError::Malformed("a message longer than 65535 bytes".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(())
}

async fn write_handshake_message<W: AsyncWrite + Unpin>(
    stream: &mut W,
    message: &[u8],
) -> Result<(), HandshakeError> {
    let mut out = Vec::with_capacity(LENGTH_PREFIX_LEN + message.len());
    append_handshake_message(&mut out, message)?;
    stream.write_all(&out).await?;
    stream.flush().await?;
    Ok(())
}
