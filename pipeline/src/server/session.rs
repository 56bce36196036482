//! One client connection: handshake, one request, its answer.
//!
//! Failures are reported to the client as an error frame whenever the
//! connection still works, then the server keeps reading (and discarding)
//! for a moment so the client reads the error instead of a reset.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_util::sync::CancellationToken;
use transport::{Peer, Stream};

use crate::connection::{FrameReader, FrameWriter};
use crate::defs::{HANDSHAKE_TIMEOUT, MAGIC, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use crate::error::Error;
use crate::paths;
use crate::policy::Policy;
use crate::progress::Progress;
use crate::protocol::{ErrorCode, ErrorFrame, Message};
use crate::server::{ServerConfig, exec};
use crate::tree;

/// Server name sent in the handshake.
pub const SERVER_NAME: &str = concat!("pipeline/", env!("CARGO_PKG_VERSION"));

/// Serves one connection to the end; never fails, only logs. With an
/// attested channel configured, the client must complete its handshake
/// first, and its key's permissions narrow the server's policy.
pub async fn serve(stream: Stream, peer: Peer, config: &ServerConfig, cancel: CancellationToken) {
    let Some(channel) = &config.channel else {
        let (rd, wr) = stream.into_split();
        return serve_on(rd, wr, &peer, config, &config.policy, cancel).await;
    };
    let mut stream = stream;
    let mut magic = [0u8; 4];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut magic)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            return tracing::info!(%peer, %error, "client went away before its handshake");
        }
        Err(_) => return tracing::info!(%peer, "client sent nothing; dropped"),
    }
    if magic == MAGIC {
        tracing::warn!(%peer, "a plaintext pipeline client connected to an attested server; refused");
        return refuse_plaintext(stream).await;
    }
    if magic != attested_channel::defs::MAGIC {
        return tracing::warn!(%peer, first_bytes = ?magic, "not an attested-channel client; dropped");
    }
    match attested_channel::accept_after_magic(stream, channel).await {
        Ok((secure, entry)) => {
            let policy = config.policy.restrict(&entry.permissions);
            tracing::info!(
                %peer,
                key = %entry.key.short(),
                comment = %entry.comment,
                permissions = %entry.permissions,
                "client authenticated"
            );
            let (rd, wr) = secure.split_with(Stream::into_split);
            serve_on(rd, wr, &peer, config, &policy, cancel).await;
        }
        Err(error) => {
            tracing::warn!(%peer, %error, "attested handshake failed; connection dropped")
        }
    }
}

/// Tells a plaintext client that this server needs the attested channel.
async fn refuse_plaintext(stream: Stream) {
    let (rd, wr) = stream.into_split();
    let mut reader = FrameReader::new(rd, Some(HANDSHAKE_TIMEOUT));
    let mut writer = FrameWriter::new(wr, Some(HANDSHAKE_TIMEOUT));
    let refusal = Message::Error(ErrorFrame {
        code: ErrorCode::PermissionDenied,
        message: "this server accepts only the attested, encrypted channel: connect with --key FILE and --expect-pcrs FILE.eif.pcrs".into(),
    });
    let refuse = async {
        reader.next_message("a greeting").await?;
        writer.write_message(&refusal).await
    };
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, refuse).await;
    reader.linger().await;
}

async fn serve_on<R, W>(
    rd: R,
    wr: W,
    peer: &Peer,
    config: &ServerConfig,
    policy: &Policy,
    cancel: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = FrameReader::new(rd, Some(config.idle_timeout));
    let mut writer = FrameWriter::new(wr, Some(config.idle_timeout));
    let result = tokio::select! {
        result = handle(&mut reader, &mut writer, policy, cancel.clone()) => result,
        () = cancel.cancelled() => Err(Error::local(ErrorCode::ShuttingDown, "the server is shutting down")),
    };
    match result {
        Ok(()) => tracing::debug!(%peer, "session done"),
        Err(Error::Connection(io)) if attested_channel::integrity_error(&io).is_some() => {
            tracing::warn!(%peer, error = %io, "the session ended: a record failed its integrity check");
            return;
        }
        Err(err) if err.connection_lost() => {
            tracing::info!(%peer, error = %err, "client went away");
            return;
        }
        Err(err) => {
            tracing::info!(%peer, error = %err, "request failed");
            if writer
                .write_message(&Message::Error(err.to_frame()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    // The side that spoke last waits for the peer to hang up (reading and
    // discarding what it still sends), rather than closing first: a VMM's
    // vsock device may drop what is still queued towards the host when the
    // guest closes (seen with vhost-device-vsock), and a client that is
    // still sending reads the error instead of a reset.
    reader.linger().await;
}

/// Tells a client over the limit to come back later.
pub async fn refuse_busy(stream: Stream) {
    let (rd, wr) = stream.into_split();
    let mut reader = FrameReader::new(rd, Some(HANDSHAKE_TIMEOUT));
    let mut writer = FrameWriter::new(wr, Some(HANDSHAKE_TIMEOUT));
    let busy = Message::Error(ErrorFrame {
        code: ErrorCode::Busy,
        message: "the server is serving its maximum number of clients; try again later".into(),
    });
    let refuse = async {
        reader.read_magic().await?;
        reader.next_message("a greeting").await?;
        writer.write_message(&busy).await
    };
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, refuse).await;
}

async fn handle<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    policy: &Policy,
    cancel: CancellationToken,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(reader, writer, policy))
        .await
        .map_err(|_| Error::Idle(HANDSHAKE_TIMEOUT))??;
    match reader.next_message("a request").await? {
        Message::Exec(request) => exec::serve(request, reader, writer, policy, cancel).await,
        Message::Put(request) => {
            let dest = paths::absolute_clean(&request.dest)?;
            let summary = tree::receive_tree(
                reader,
                dest,
                request.placement,
                policy.clone(),
                &Progress::hidden(),
            )
            .await?;
            tracing::info!(path = %String::from_utf8_lossy(&summary.path), files = summary.files, bytes = summary.bytes, "received");
            writer.write_message(&Message::Done(summary)).await
        }
        Message::Get(request) => {
            let source = paths::absolute_clean(&request.source)?;
            let source = policy.resolve_source(&source, request.follow_root_symlink)?;
            tracing::info!(path = %source.display(), "sending");
            tree::send_tree(
                writer,
                source,
                request.follow_root_symlink,
                request.expect,
                &Progress::hidden(),
            )
            .await
        }
        other => Err(Error::local(
            ErrorCode::Protocol,
            format!(
                "expected a request (Exec, Put or Get), got {}",
                other.name()
            ),
        )),
    }
}

async fn handshake<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    policy: &Policy,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    reader.read_magic().await?;
    let Message::Hello {
        min_version,
        max_version,
        client,
    } = reader.next_message("a greeting").await?
    else {
        return Err(Error::local(ErrorCode::Protocol, "expected a greeting"));
    };
    let version = max_version.min(PROTOCOL_VERSION);
    if version < min_version.max(MIN_PROTOCOL_VERSION) {
        return Err(Error::local(
            ErrorCode::UnsupportedVersion,
            format!(
                "client speaks protocol versions {min_version} to {max_version}, this server \
                 {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
            ),
        ));
    }
    tracing::debug!(%client, version, "handshake");
    writer
        .write_message(&Message::Welcome {
            version,
            server: SERVER_NAME.into(),
            exec_allowed: policy.exec_allowed(),
        })
        .await
}
