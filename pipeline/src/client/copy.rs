//! Copying trees to and from the server.

use std::path::Path;

use super::Session;
use crate::error::Error;
use crate::paths;
use crate::policy::Policy;
use crate::progress::Progress;
use crate::protocol::{ErrorCode, Expect, GetRequest, Message, Placement, PutRequest, Summary};
use crate::tree;

fn absolute(path: &Path) -> Result<std::path::PathBuf, Error> {
    std::path::absolute(path)
        .map_err(|err| Error::io(format_args!("cannot resolve {}", path.display()), err))
}

/// Sends the local tree at `local` to `remote` on the server.
pub async fn upload(
    session: Session,
    local: &Path,
    remote: &Path,
    placement: Placement,
    follow_root_symlink: bool,
    progress: &Progress,
) -> Result<Summary, Error> {
    let mut session = session;
    session
        .request(&Message::Put(PutRequest {
            dest: paths::to_wire(remote),
            placement,
        }))
        .await?;
    let Session {
        mut reader,
        mut writer,
        ..
    } = session;
    let sending = tree::send_tree(
        &mut writer,
        absolute(local)?,
        follow_root_symlink,
        Expect::Any,
        progress,
    );
    // The server may refuse before the tree is through: watch for that.
    let answer = tokio::select! {
        biased;
        sent = sending => {
            if let Err(err) = sent {
                if !err.connection_lost() {
                    // Tell the server to drop what it received so far.
                    let _ = writer.write_message(&Message::Error(err.to_frame())).await;
                    return Err(err);
                }
                // The connection broke: the server's reason, if it sent one, is more useful.
                return Err(match reader.next_message("the server's answer").await {
                    Err(remote @ Error::Remote(_)) => remote,
                    _ => err,
                });
            }
            reader.next_message("the server's answer").await?
        }
        // The server may answer before the sending side has wound down: a
        // refusal at any time, or the confirmation right after the last frame.
        early = reader.next_message("the server's answer") => early?,
    };
    match answer {
        Message::Done(summary) => Ok(summary),
        other => Err(Error::local(
            ErrorCode::Protocol,
            format!(
                "expected the server to confirm the upload, got {}",
                other.name()
            ),
        )),
    }
}

/// Fetches the tree at `remote` on the server into `local`.
pub async fn download(
    session: Session,
    remote: &Path,
    local: &Path,
    placement: Placement,
    expect: Expect,
    follow_root_symlink: bool,
    progress: &Progress,
) -> Result<Summary, Error> {
    let mut session = session;
    session
        .request(&Message::Get(GetRequest {
            source: paths::to_wire(remote),
            follow_root_symlink,
            expect,
        }))
        .await?;
    let Session { mut reader, .. } = session;
    tree::receive_tree(
        &mut reader,
        absolute(local)?,
        placement,
        Policy::default(),
        progress,
    )
    .await
}
