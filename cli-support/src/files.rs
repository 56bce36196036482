//! Reading a small input file (a policy, a configuration, a service file)
//! with a size limit, so that a wrong path is refused by name instead of
//! hanging start-up or filling memory: a FIFO nobody writes to would block
//! forever, `/dev/zero` never ends, and a regular file may grow while it is
//! read or (under `/proc`) claim a size of zero. Only regular files are
//! read, and never more than the limit plus one byte, whatever their
//! metadata says.

use std::fs::{FileType, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why [`read_limited`] or [`read_limited_to_string`] returned no content.
#[derive(Debug, thiserror::Error)]
pub enum ReadLimitedError {
    /// The file could not be opened, inspected or read (or, for
    /// [`read_limited_to_string`], is not UTF-8: kind `InvalidData`).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The path names a directory, FIFO, socket or device, not a regular file.
    #[error("{} is not a regular file but {kind}", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead: "a directory", "a FIFO", "a socket",
        /// "a character device", "a block device" or "a special file".
        kind: &'static str,
    },
    /// The file holds more than `max` bytes.
    #[error("{} is larger than {max} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
}

impl ReadLimitedError {
    /// The reason alone, without the path, as an [`io::Error`], for callers
    /// whose own error carries the path next to an `io::Error`. An
    /// [`Io`](Self::Io) error comes back unchanged (its kind, e.g.
    /// `NotFound`, intact); the others become `InvalidInput` and
    /// `FileTooLarge` errors saying what was wrong.
    pub fn into_io_error(self) -> io::Error {
        match self {
            Self::Io { source, .. } => source,
            Self::NotRegularFile { kind, .. } => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a regular file but {kind}"),
            ),
            Self::TooLarge { max, .. } => io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("larger than {max} bytes"),
            ),
        }
    }
}

/// The whole content of the regular file `path`, if it is at most `max`
/// bytes. Anything else (a directory, a FIFO, a socket, a device) is
/// refused without reading from it; the size is checked on the bytes read,
/// never on the metadata, so a file that grows cannot exceed the limit.
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, ReadLimitedError> {
    let io_err = |source| ReadLimitedError::Io {
        path: path.to_owned(),
        source,
    };
    // Refuse by the path first so a FIFO or a device is not even opened
    // (opening some devices has effects), then again by the open file in
    // case the path changed in between. O_NONBLOCK keeps that open from
    // waiting for a FIFO's writer; it does not change reads of regular files.
    check_regular(path, std::fs::metadata(path).map_err(io_err)?.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_err)?;
    check_regular(path, file.metadata().map_err(io_err)?.file_type())?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > max {
        return Err(ReadLimitedError::TooLarge {
            path: path.to_owned(),
            max,
        });
    }
    Ok(bytes)
}

/// [`read_limited`] for a UTF-8 text file; content that is not UTF-8 is an
/// [`Io`](ReadLimitedError::Io) error of kind `InvalidData`, as from
/// [`std::fs::read_to_string`].
pub fn read_limited_to_string(path: &Path, max: u64) -> Result<String, ReadLimitedError> {
    String::from_utf8(read_limited(path, max)?).map_err(|err| ReadLimitedError::Io {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, err.utf8_error()),
    })
}

fn check_regular(path: &Path, file_type: FileType) -> Result<(), ReadLimitedError> {
    if file_type.is_file() {
        return Ok(());
    }
    let kind = if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "a special file"
    };
    Err(ReadLimitedError::NotRegularFile {
        path: path.to_owned(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn file_of(dir: &Path, len: usize) -> PathBuf {
        let path = dir.join(format!("f{len}"));
        std::fs::write(&path, vec![b'x'; len]).unwrap();
        path
    }

    #[test]
    fn a_file_exactly_at_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_of(dir.path(), 64);
        assert_eq!(read_limited(&path, 64).unwrap(), vec![b'x'; 64]);
        assert_eq!(read_limited_to_string(&path, 64).unwrap(), "x".repeat(64));
        let empty = file_of(dir.path(), 0);
        assert_eq!(read_limited(&empty, 0).unwrap(), b"");
    }

    #[test]
    fn a_file_one_byte_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_of(dir.path(), 65);
        let err = read_limited(&path, 64).unwrap_err();
        assert!(
            matches!(&err, ReadLimitedError::TooLarge { path: p, max: 64 } if *p == path),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{} is larger than 64 bytes", path.display())
        );
    }

    #[test]
    fn dev_zero_is_refused_as_a_device_without_reading() {
        let err = read_limited(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(
            matches!(
                err,
                ReadLimitedError::NotRegularFile {
                    kind: "a character device",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "/dev/zero is not a regular file but a character device"
        );
    }

    #[test]
    fn a_fifo_without_writer_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // A blocking open of a FIFO waits for a writer: run it on a thread
        // so that a regression fails here instead of hanging the test.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(read_limited(&path, 1024)));
        let result = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("read_limited on a FIFO returned within 5 s");
        let err = result.unwrap_err();
        assert!(
            matches!(&err, ReadLimitedError::NotRegularFile { path, kind: "a FIFO" } if *path == fifo),
            "{err:?}"
        );
        assert!(err.to_string().contains(&fifo.display().to_string()));
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_limited(dir.path(), 1024).unwrap_err();
        assert!(
            matches!(
                err,
                ReadLimitedError::NotRegularFile {
                    kind: "a directory",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn io_errors_keep_their_kind_and_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = read_limited(&missing, 5).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read {}: ", missing.display()))
        );
        assert_eq!(err.into_io_error().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn text_must_be_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, [b'a', 0xff]).unwrap();
        let err = read_limited_to_string(&path, 5).unwrap_err();
        assert!(
            matches!(&err, ReadLimitedError::Io { source, .. } if source.kind() == io::ErrorKind::InvalidData)
        );
    }

    #[test]
    fn into_io_error_says_what_was_wrong_without_the_path() {
        let err = read_limited(Path::new("/dev/zero"), 1).unwrap_err();
        let io = err.into_io_error();
        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(io.to_string(), "not a regular file but a character device");
        let too_large = ReadLimitedError::TooLarge {
            path: "/x".into(),
            max: 7,
        };
        assert_eq!(too_large.into_io_error().to_string(), "larger than 7 bytes");
    }
}
