//! Reproducible newc cpio archives: a directory tree written in sorted
//! order with owner 0:0, one fixed mtime, normalised permissions and
//! sequential inode numbers, so the bytes depend only on names, contents,
//! link targets and the execute bits; and a reader that lists an archive.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::defs::{
    CPIO_HEADER_LEN, CPIO_MAX_ENTRIES, CPIO_MAX_FILE, CPIO_MAX_NAME, CPIO_NEWC_MAGIC, CPIO_TRAILER,
    DIR_MODE, EXEC_FILE_MODE, FILE_MODE, SYMLINK_MODE,
};

/// What can go wrong writing or reading an archive.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// A file of the tree could not be read.
    #[error("{}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// The archive could not be written.
    #[error("writing {}: {cause}", path.display())]
    Write {
        /// The archive.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// A file type an initramfs does not need (socket, FIFO, device).
    #[error("{}: unsupported file type (only directories, files and symbolic links)", .0.display())]
    Unsupported(PathBuf),
    /// A file too big for a newc entry.
    #[error("{}: {size} bytes, more than a newc entry holds ({CPIO_MAX_FILE})", path.display())]
    TooBig {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// A name longer than [`CPIO_MAX_NAME`].
    #[error("{}: name longer than {CPIO_MAX_NAME} bytes", .0.display())]
    NameTooLong(PathBuf),
    /// A file changed size while it was archived.
    #[error("{}: changed while it was archived", .0.display())]
    Changed(PathBuf),
    /// An archive that is not newc cpio or is cut short.
    #[error("not a valid newc archive at byte {offset}: {reason}")]
    Malformed {
        /// Where.
        offset: u64,
        /// What.
        reason: String,
    },
    /// Reading an archive failed.
    #[error("reading the archive: {0}")]
    Io(#[from] io::Error),
}

/// Settings of an archive.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpioOptions {
    /// Modification time of every entry (seconds since the epoch), usually
    /// `SOURCE_DATE_EPOCH`.
    pub mtime: u32,
}

/// What a written archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpioSummary {
    /// Directories, files and symbolic links written (not the trailer).
    pub entries: usize,
    /// Bytes of the archive.
    pub bytes: u64,
}

/// One entry of a tree to archive.
#[derive(Debug)]
enum Kind {
    Dir,
    File(u64),
    Symlink(Vec<u8>),
}

#[derive(Debug)]
struct Entry {
    /// Name inside the archive (relative, no leading `./`).
    name: Vec<u8>,
    /// Where it is on disk.
    path: PathBuf,
    kind: Kind,
    mode: u32,
}

/// Every entry below `root`, sorted by name bytes (a directory sorts before
/// what it contains, since a prefix sorts first).
fn collect(root: &Path) -> Result<Vec<Entry>, CpioError> {
    let mut entries = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = if rel.as_os_str().is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let read = fs::read_dir(&dir).map_err(|cause| CpioError::Read {
            path: dir.clone(),
            cause,
        })?;
        for item in read {
            let item = item.map_err(|cause| CpioError::Read {
                path: dir.clone(),
                cause,
            })?;
            let rel_child = rel.join(item.file_name());
            let path = root.join(&rel_child);
            let meta = fs::symlink_metadata(&path).map_err(|cause| CpioError::Read {
                path: path.clone(),
                cause,
            })?;
            let name = rel_child.as_os_str().as_bytes().to_vec();
            if name.len() + 1 > CPIO_MAX_NAME {
                return Err(CpioError::NameTooLong(path));
            }
            let file_type = meta.file_type();
            let (kind, mode) = if file_type.is_dir() {
                pending.push(rel_child);
                (Kind::Dir, DIR_MODE)
            } else if file_type.is_file() {
                if meta.len() > CPIO_MAX_FILE {
                    return Err(CpioError::TooBig {
                        path,
                        size: meta.len(),
                    });
                }
                let exec = meta.permissions().mode() & 0o111 != 0;
                let mode = if exec { EXEC_FILE_MODE } else { FILE_MODE };
                (Kind::File(meta.len()), mode)
            } else if file_type.is_symlink() {
                let target = fs::read_link(&path).map_err(|cause| CpioError::Read {
                    path: path.clone(),
                    cause,
                })?;
                (
                    Kind::Symlink(target.as_os_str().as_bytes().to_vec()),
                    SYMLINK_MODE,
                )
            } else {
                return Err(CpioError::Unsupported(path));
            };
            entries.push(Entry {
                name,
                path,
                kind,
                mode,
            });
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Writes newc headers and data, counting bytes for the padding.
struct NewcWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> NewcWriter<W> {
    fn header(&mut self, fields: &Header, name: &[u8]) -> io::Result<()> {
        let mut head = Vec::with_capacity(CPIO_HEADER_LEN + name.len() + 4);
        head.extend_from_slice(CPIO_NEWC_MAGIC);
        let name_len = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
        for value in [
            fields.ino,
            fields.mode,
            0, // uid
            0, // gid
            fields.nlink,
            fields.mtime,
            fields.size,
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            name_len,
            0, // check
        ] {
            head.extend_from_slice(format!("{value:08X}").as_bytes());
        }
        head.extend_from_slice(name);
        head.push(0);
        self.out.write_all(&head)?;
        self.written += head.len() as u64;
        self.pad()
    }

    fn pad(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.written += pad as u64;
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        self.pad()
    }
}

/// Numeric fields of a header that vary per entry.
struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    size: u32,
}

/// Writes the tree below `root` as a newc archive to `out`.
pub fn write_tree<W: Write>(
    root: &Path,
    out: W,
    options: CpioOptions,
) -> Result<CpioSummary, CpioError> {
    let entries = collect(root)?;
    let out_name = PathBuf::from("<archive>");
    let write_err = |cause| CpioError::Write {
        path: out_name.clone(),
        cause,
    };
    let mut writer = NewcWriter { out, written: 0 };
    for (index, entry) in entries.iter().enumerate() {
        let (nlink, size) = match &entry.kind {
            Kind::Dir => (2, 0),
            Kind::Symlink(target) => (1, target.len() as u64),
            Kind::File(size) => (1, *size),
        };
        let header = Header {
            ino: u32::try_from(index + 1).unwrap_or(u32::MAX),
            mode: entry.mode,
            nlink,
            mtime: options.mtime,
            // collect() refused anything above CPIO_MAX_FILE.
            size: u32::try_from(size).unwrap_or(u32::MAX),
        };
        writer.header(&header, &entry.name).map_err(write_err)?;
        match &entry.kind {
            Kind::Dir => {}
            Kind::Symlink(target) => writer.data(target).map_err(write_err)?,
            Kind::File(size) => copy_file(&entry.path, *size, &mut writer)?,
        }
    }
    let trailer = Header {
        ino: 0,
        mode: 0,
        nlink: 1,
        mtime: 0,
        size: 0,
    };
    writer
        .header(&trailer, CPIO_TRAILER.as_bytes())
        .map_err(write_err)?;
    writer.out.flush().map_err(write_err)?;
    Ok(CpioSummary {
        entries: entries.len(),
        bytes: writer.written,
    })
}

/// Copies exactly `size` bytes of `path`; a file that grew or shrank since
/// it was listed is an error rather than a corrupt archive.
fn copy_file<W: Write>(
    path: &Path,
    size: u64,
    writer: &mut NewcWriter<W>,
) -> Result<(), CpioError> {
    let read_err = |cause| CpioError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let write_err = |cause| CpioError::Write {
        path: PathBuf::from("<archive>"),
        cause,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let copied = io::copy(&mut (&mut file).take(size), &mut writer.out).map_err(|e| {
        // io::copy mixes both sides' errors; name the file, it is the likely one.
        read_err(e)
    })?;
    let mut probe = [0u8; 1];
    if copied != size || file.read(&mut probe).map_err(read_err)? != 0 {
        return Err(CpioError::Changed(path.to_path_buf()));
    }
    writer.written += size;
    writer.pad().map_err(write_err)
}

/// Writes the tree below `root` to the file `output`, through a temporary
/// file renamed into place, so a failure never leaves a partial archive.
pub fn write_tree_to_file(
    root: &Path,
    output: &Path,
    options: CpioOptions,
) -> Result<CpioSummary, CpioError> {
    let tmp = {
        let mut name = output.as_os_str().to_os_string();
        name.push(".tmp");
        PathBuf::from(name)
    };
    let write_err = |cause| CpioError::Write {
        path: output.to_path_buf(),
        cause,
    };
    let file = File::create(&tmp).map_err(write_err)?;
    let result = write_tree(root, BufWriter::new(file), options).map_err(|err| match err {
        CpioError::Write { cause, .. } => write_err(cause),
        other => other,
    });
    match result {
        Ok(summary) => {
            fs::rename(&tmp, output).map_err(write_err)?;
            Ok(summary)
        }
        Err(err) => {
            let _ = fs::remove_file(&tmp);
            Err(err)
        }
    }
}

/// One entry as read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    /// Name inside the archive.
    pub name: String,
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: u32,
    /// Data length.
    pub size: u32,
}

/// Lists the entries of a newc archive (up to the trailer).
pub fn list<R: Read>(input: R) -> Result<Vec<ListedEntry>, CpioError> {
    let mut reader = CountingReader {
        inner: input,
        offset: 0,
    };
    let mut entries = Vec::new();
    loop {
        if entries.len() >= CPIO_MAX_ENTRIES {
            return Err(reader.malformed(format!("more than {CPIO_MAX_ENTRIES} entries")));
        }
        let mut head = [0u8; CPIO_HEADER_LEN];
        reader.read_exact_or(&mut head, "header cut short")?;
        if &head[..6] != CPIO_NEWC_MAGIC {
            return Err(reader.malformed("bad magic (not newc 070701)".into()));
        }
        let mut fields = [0u32; 13];
        for (i, field) in fields.iter_mut().enumerate() {
            let text = &head[6 + i * 8..6 + (i + 1) * 8];
            *field = std::str::from_utf8(text)
                .ok()
                .and_then(|t| u32::from_str_radix(t, 16).ok())
                .ok_or_else(|| reader.malformed(format!("field {i} is not hexadecimal")))?;
        }
        let name_len = fields[11] as usize;
        if name_len == 0 || name_len > CPIO_MAX_NAME {
            return Err(reader.malformed(format!(
                "name length {name_len} outside 1..={CPIO_MAX_NAME}"
            )));
        }
        let mut name = vec![0u8; name_len];
        reader.read_exact_or(&mut name, "name cut short")?;
        if name.pop() != Some(0) {
            return Err(reader.malformed("name not NUL-terminated".into()));
        }
        reader.skip_padding()?;
        let name = String::from_utf8_lossy(&name).into_owned();
        if name == CPIO_TRAILER {
            return Ok(entries);
        }
        let size = fields[6];
        reader.skip(u64::from(size))?;
        reader.skip_padding()?;
        entries.push(ListedEntry {
            name,
            mode: fields[1],
            uid: fields[2],
            gid: fields[3],
            mtime: fields[5],
            size,
        });
    }
}

struct CountingReader<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> CountingReader<R> {
    fn malformed(&self, reason: String) -> CpioError {
        CpioError::Malformed {
            offset: self.offset,
            reason,
        }
    }

    fn read_exact_or(&mut self, buf: &mut [u8], what: &str) -> Result<(), CpioError> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(self.malformed(what.into())),
            Err(e) => Err(CpioError::Io(e)),
        }
    }

    fn skip(&mut self, len: u64) -> Result<(), CpioError> {
        let skipped = io::copy(&mut (&mut self.inner).take(len), &mut io::sink())?;
        self.offset += skipped;
        if skipped != len {
            return Err(self.malformed("data cut short".into()));
        }
        Ok(())
    }

    fn skip_padding(&mut self) -> Result<(), CpioError> {
        let pad = (4 - self.offset % 4) % 4;
        self.skip(pad)
    }
}
