//! Tree streams: a file, a symlink or a directory tree sent as a sequence of
//! frames, and written on arrival.
//!
//! ```text
//! TreeBegin{entries, bytes}
//! Entry{path: "", ...}                    the root (file, directory or symlink)
//! Entry{path: "a/b", kind: File{size}}    then `size` bytes of FileData frames,
//! FileEnd{digest}                         then the digest of those bytes
//! ...                                     parents always before children
//! TreeEnd
//! ```
//!
//! The file-system work runs on blocking threads ([`walk`] reads, [`write`](mod@write)
//! writes); the async side ([`send_tree`], [`receive_tree`]) only moves
//! frames, through bounded channels, so memory stays constant whatever the
//! size of the files.

pub mod place;
pub mod walk;
pub mod write;

use std::path::PathBuf;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::buffers::BufferPool;
use crate::connection::{FrameReader, FrameWriter};
use crate::defs::DATA_CHUNK_LEN;
use crate::error::Error;
use crate::policy::Policy;
use crate::progress::Progress;
use crate::protocol::{Channel, EntryMeta, Expect, Frame, Message, Placement, Summary, TreeBegin};

/// Chunks in flight between the file-system thread and the connection.
const PIPELINE_DEPTH: usize = 8;

/// One step of a tree stream.
#[derive(Debug)]
pub enum TreeItem {
    /// Totals, first.
    Begin(TreeBegin),
    /// An entry.
    Entry(EntryMeta),
    /// Content of the current file.
    Data(Bytes),
    /// End of the current file, with its digest.
    FileEnd([u8; crate::digest::DIGEST_LEN]),
    /// End of the tree.
    End,
}

fn entry_label(meta: &EntryMeta) -> String {
    String::from_utf8_lossy(&meta.path).into_owned()
}

/// Reads the tree at `source` and sends it as frames.
pub async fn send_tree<W>(
    writer: &mut FrameWriter<W>,
    source: PathBuf,
    follow_root: bool,
    expect: Expect,
    progress: &Progress,
) -> Result<(), Error>
where
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel(PIPELINE_DEPTH);
    let pool = BufferPool::new(DATA_CHUNK_LEN, PIPELINE_DEPTH + 2);
    let walker = tokio::task::spawn_blocking(move || {
        walk::walk_tree(&source, follow_root, expect, &pool, &tx)
    });
    let forwarded = async {
        while let Some(item) = rx.recv().await {
            match item {
                TreeItem::Begin(begin) => {
                    progress.set_total(begin.bytes);
                    writer.write_message(&Message::TreeBegin(begin)).await?;
                }
                TreeItem::Entry(meta) => {
                    progress.set_entry(&entry_label(&meta));
                    writer.write_message(&Message::Entry(meta)).await?;
                }
                TreeItem::Data(bytes) => {
                    writer.write_data(Channel::FileData, &bytes).await?;
                    progress.advance(bytes.len() as u64);
                }
                TreeItem::FileEnd(digest) => {
                    writer.write_message(&Message::FileEnd { digest }).await?
                }
                TreeItem::End => writer.write_message(&Message::TreeEnd).await?,
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    // A connection failure closes the channel, which stops the walker.
    drop(rx);
    let walked = walker.await.map_err(|err| {
        Error::local(
            crate::protocol::ErrorCode::Io,
            format!("reader thread failed: {err}"),
        )
    })?;
    forwarded?;
    walked
}

/// Receives a tree stream and writes it at `dest` as `placement` says.
pub async fn receive_tree<R>(
    reader: &mut FrameReader<R>,
    dest: PathBuf,
    placement: Placement,
    policy: Policy,
    progress: &Progress,
) -> Result<Summary, Error>
where
    R: AsyncRead + Unpin,
{
    let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
    let writer =
        tokio::task::spawn_blocking(move || write::write_tree(&dest, &placement, &policy, rx));
    let forwarded = forward_frames(reader, &tx, progress).await;
    drop(tx);
    let written = writer.await.map_err(|err| {
        Error::local(
            crate::protocol::ErrorCode::Io,
            format!("writer thread failed: {err}"),
        )
    })?;
    match forwarded {
        // The writer stopped early: its error says why.
        Err(Error::Closed) if written.is_err() => written,
        Err(err) => Err(err),
        Ok(()) => written,
    }
}

/// Moves frames of a tree stream from the connection to the writer thread,
/// up to and including `TreeEnd`. A send failure means the writer stopped.
async fn forward_frames<R>(
    reader: &mut FrameReader<R>,
    tx: &mpsc::Sender<TreeItem>,
    progress: &Progress,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin,
{
    let writer_gone = |_| Error::Closed;
    loop {
        match reader.next().await? {
            Frame::Data(Channel::FileData, bytes) => {
                progress.advance(bytes.len() as u64);
                tx.send(TreeItem::Data(bytes)).await.map_err(writer_gone)?;
            }
            Frame::Control(Message::TreeBegin(begin)) => {
                progress.set_total(begin.bytes);
                tx.send(TreeItem::Begin(begin)).await.map_err(writer_gone)?;
            }
            Frame::Control(Message::Entry(meta)) => {
                progress.set_entry(&entry_label(&meta));
                tx.send(TreeItem::Entry(meta)).await.map_err(writer_gone)?;
            }
            Frame::Control(Message::FileEnd { digest }) => {
                tx.send(TreeItem::FileEnd(digest))
                    .await
                    .map_err(writer_gone)?;
            }
            Frame::Control(Message::TreeEnd) => {
                tx.send(TreeItem::End).await.map_err(writer_gone)?;
                return Ok(());
            }
            Frame::Control(Message::Error(frame)) => return Err(Error::Remote(frame)),
            Frame::Control(other) => {
                return Err(Error::Unexpected {
                    got: other.name().to_owned(),
                    expected: "the next entry of a tree stream",
                });
            }
            Frame::Data(channel, _) => {
                return Err(Error::Unexpected {
                    got: format!("{channel:?} data"),
                    expected: "file content",
                });
            }
        }
    }
}
