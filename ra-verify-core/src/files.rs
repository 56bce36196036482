//! Reading small input files (roots, PCR files, saved documents) with a
//! size limit, so a wrong path (a disk image, `/dev/zero`) is refused
//! instead of read into memory: [`cli_support::read_limited`], which also
//! refuses anything but a regular file (a FIFO, a directory, a device).

use std::io;
use std::path::Path;

/// Why a small file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The file is larger than the limit.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
}

/// The whole of the regular file `path`, if it is at most `max` bytes.
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    cli_support::read_limited(path, max).map_err(|err| match err {
        cli_support::ReadLimitedError::TooLarge { max, .. } => ReadError::TooLarge(max),
        err => ReadError::Io(err.into_io_error()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_inclusive_and_endless_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_limited(&path, 5).unwrap(), b"12345");
        assert!(matches!(
            read_limited(&path, 4),
            Err(ReadError::TooLarge(4))
        ));
        assert!(matches!(
            read_limited(Path::new("/dev/zero"), 1024),
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::InvalidInput
        ));
        assert!(matches!(
            read_limited(&dir.path().join("missing"), 5),
            Err(ReadError::Io(_))
        ));
    }
}
