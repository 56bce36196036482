//! Noticing that the ignore file changed, so its new rules apply at once.
//!
//! The file's directory is watched by an inotify instance of its own (the
//! directory may or may not be inside a watched tree; a second instance
//! never shares descriptors with the trees' one). Editors save either in
//! place (`IN_CLOSE_WRITE`) or by writing another file and renaming it
//! over the old one (`IN_MOVED_TO`); both count. A deleted ignore file
//! changes nothing: the rules in force stay.

use std::ffi::OsString;
use std::io;
use std::path::Path;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use inotify::{Inotify, WatchMask};

/// Events that replace the file's content under its name.
const CHANGE_MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::ONLYDIR);

/// Buffer for this instance's events (few and small).
const BUFFER: usize = 4096;

/// A stream yielding `()` each time `file` gets new content. Fails when
/// its directory cannot be watched.
pub fn changes(file: &Path) -> io::Result<BoxStream<'static, ()>> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name: OsString = file
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_owned();
    let inotify = Inotify::init()?;
    inotify.watches().add(dir, CHANGE_MASK)?;
    let events = inotify.into_event_stream(vec![0u8; BUFFER])?;
    Ok(events
        .filter_map(move |event| {
            let changed = match event {
                Ok(event) => event.name.as_deref() == Some(name.as_os_str()),
                Err(error) => {
                    tracing::warn!(%error, "reading the ignore file's events failed");
                    false
                }
            };
            std::future::ready(changed.then_some(()))
        })
        .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn next(stream: &mut BoxStream<'static, ()>) -> bool {
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn in_place_writes_and_renames_over_count_other_names_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".fsignore");
        std::fs::write(&file, "*.tmp\n").unwrap();
        let mut changes = changes(&file).unwrap();

        std::fs::write(dir.path().join("other"), "x").unwrap();
        std::fs::write(&file, "*.log\n").unwrap();
        assert!(next(&mut changes).await, "an in-place write");
        let fresh = dir.path().join(".fsignore.new");
        std::fs::write(&fresh, "*.bak\n").unwrap();
        std::fs::rename(&fresh, &file).unwrap();
        assert!(next(&mut changes).await, "a rename over it");
        std::fs::remove_file(&file).unwrap();
        std::fs::write(dir.path().join("other"), "y").unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), changes.next())
                .await
                .is_err(),
            "neither a removal nor another file's write counts"
        );
    }

    #[test]
    fn a_directory_that_does_not_exist_is_an_error() {
        assert!(changes(Path::new("/nonexistent/dir/.fsignore")).is_err());
    }
}
