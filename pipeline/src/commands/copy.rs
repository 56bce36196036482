//! `pipeline cp` and Sentient's `send-*`/`recv-*`: one [`Transfer`].

use std::io::IsTerminal;

use super::CommandError;
use crate::client::{Client, copy};
use crate::progress::Progress;
use crate::protocol::Summary;
use crate::settings::{REMOTE_PREFIX, Transfer};

/// Copies as `t` says through `client`, with a progress bar and a summary
/// line on a terminal unless `quiet`.
pub async fn copy(client: &Client, t: Transfer, quiet: bool) -> Result<(), CommandError> {
    if t.to_enclave {
        std::fs::symlink_metadata(&t.local).map_err(|source| CommandError::ReadLocal {
            path: t.local.clone(),
            source,
        })?;
    }
    let (from, to) = endpoints(&t);
    let progress = Progress::for_terminal(!quiet);
    let session = client.connect().await?;
    let result = if t.to_enclave {
        copy::upload(
            session,
            &t.local,
            &t.remote,
            t.placement,
            t.follow,
            &progress,
        )
        .await
    } else {
        copy::download(
            session,
            &t.remote,
            &t.local,
            t.placement,
            t.expect,
            t.follow,
            &progress,
        )
        .await
    };
    progress.finish();
    let summary = result.map_err(|source| CommandError::Copy { from, to, source })?;
    if !quiet && std::io::stderr().is_terminal() {
        eprintln!("{}", summary_line(&summary, t.to_enclave));
    }
    Ok(())
}

/// The source and destination of `t` as the user writes them
/// (`enclave:` before the enclave side).
fn endpoints(t: &Transfer) -> (String, String) {
    let local = t.local.display().to_string();
    let remote = format!("{REMOTE_PREFIX}{}", t.remote.display());
    if t.to_enclave {
        (local, remote)
    } else {
        (remote, local)
    }
}

/// The line that tells what a copy did.
fn summary_line(summary: &Summary, to_enclave: bool) -> String {
    let prefix = if to_enclave { REMOTE_PREFIX } else { "" };
    format!(
        "copied {} file(s), {} director(ies), {} symlink(s), {} bytes to {}{}",
        summary.files,
        summary.directories,
        summary.symlinks,
        summary.bytes,
        prefix,
        String::from_utf8_lossy(&summary.path)
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::protocol::Expect;

    #[test]
    fn endpoints_mark_the_enclave_side() {
        let up = Transfer::sentient_up(PathBuf::from("a/b"), PathBuf::from("/in/b"), false);
        assert_eq!(
            endpoints(&up),
            ("a/b".to_owned(), "enclave:/in/b".to_owned())
        );
        let down =
            Transfer::sentient_down(PathBuf::from("/out/c"), PathBuf::from("c"), Expect::File);
        assert_eq!(
            endpoints(&down),
            ("enclave:/out/c".to_owned(), "c".to_owned())
        );
    }

    #[test]
    fn summary_line_counts_and_names_the_destination() {
        let summary = Summary {
            files: 2,
            directories: 1,
            symlinks: 0,
            bytes: 10,
            path: serde_bytes::ByteBuf::from(b"/in/d".to_vec()),
        };
        assert_eq!(
            summary_line(&summary, true),
            "copied 2 file(s), 1 director(ies), 0 symlink(s), 10 bytes to enclave:/in/d"
        );
        assert_eq!(
            summary_line(&summary, false),
            "copied 2 file(s), 1 director(ies), 0 symlink(s), 10 bytes to /in/d"
        );
    }
}
