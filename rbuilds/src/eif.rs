//! Reading an Enclave Image Format file: the header, its sections (kernel,
//! command line, ramdisks, signature, metadata), and extracting them so a
//! VMM without EIF support boots exactly the measured parts.
//!
//! Layout (big-endian): a fixed header (`.eif`, version, flags, default
//! memory and CPUs, section count, 32 section offsets and sizes, CRC-32),
//! then per section a 12-byte header (type, flags, size) and its data.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::defs::{
    EIF_HEADER_LEN, EIF_MAGIC, EIF_MAX_SECTION, EIF_MAX_SECTIONS, EIF_SECTION_HEADER_LEN,
};

/// What can go wrong reading an EIF.
#[derive(Debug, thiserror::Error)]
pub enum EifError {
    /// The file could not be read.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// The file is not a well-formed EIF.
    #[error("{}: not a valid EIF: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The type of a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    /// The kernel image (bzImage on x86_64).
    Kernel,
    /// The kernel command line.
    Cmdline,
    /// A ramdisk (cpio archive); the first is the bootstrap one.
    Ramdisk,
    /// The signature (signed images).
    Signature,
    /// Build metadata (JSON).
    Metadata,
}

impl SectionKind {
    fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1 => Self::Kernel,
            2 => Self::Cmdline,
            3 => Self::Ramdisk,
            4 => Self::Signature,
            5 => Self::Metadata,
            _ => return None,
        })
    }
}

/// One section of an EIF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Its type.
    pub kind: SectionKind,
    /// Offset of its data in the file.
    pub data_offset: u64,
    /// Length of its data.
    pub size: u64,
}

/// The header and sections of an EIF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EifInfo {
    /// Format version.
    pub version: u16,
    /// Flags (bit 0: aarch64).
    pub flags: u16,
    /// Default memory (bytes) recorded by the builder.
    pub default_memory: u64,
    /// Default CPU count recorded by the builder.
    pub default_cpus: u64,
    /// CRC-32 recorded in the header.
    pub crc32: u32,
    /// The sections, in file order.
    pub sections: Vec<Section>,
    /// Length of the file.
    pub file_size: u64,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

/// Reads the header and section table of the EIF at `path`.
pub fn read_info(path: &Path) -> Result<EifInfo, EifError> {
    let io_err = |cause| EifError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let bad = |reason: String| EifError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let file_size = file.metadata().map_err(io_err)?.len();
    if file_size < EIF_HEADER_LEN as u64 {
        return Err(bad(format!(
            "{file_size} bytes, shorter than the {EIF_HEADER_LEN}-byte header"
        )));
    }
    let mut head = [0u8; EIF_HEADER_LEN];
    file.read_exact(&mut head).map_err(io_err)?;
    if &head[..4] != EIF_MAGIC {
        return Err(bad("bad magic (expected .eif)".into()));
    }
    let count = usize::from(be16(&head, 26));
    if count > EIF_MAX_SECTIONS {
        return Err(bad(format!("{count} sections, at most {EIF_MAX_SECTIONS}")));
    }
    let offsets_at = 28;
    let sizes_at = offsets_at + 8 * EIF_MAX_SECTIONS;
    let mut sections = Vec::with_capacity(count);
    for i in 0..count {
        let offset = be64(&head, offsets_at + 8 * i);
        let size = be64(&head, sizes_at + 8 * i);
        let data_offset = offset
            .checked_add(EIF_SECTION_HEADER_LEN as u64)
            .filter(|start| start.checked_add(size).is_some_and(|end| end <= file_size))
            .ok_or_else(|| {
                bad(format!(
                    "section {i} ({size} bytes at {offset}) runs past the end ({file_size} bytes)"
                ))
            })?;
        let mut sh = [0u8; EIF_SECTION_HEADER_LEN];
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        file.read_exact(&mut sh).map_err(io_err)?;
        let code = be16(&sh, 0);
        let kind = SectionKind::from_code(code)
            .ok_or_else(|| bad(format!("section {i} has unknown type {code}")))?;
        let recorded = be64(&sh, 4);
        if recorded != size {
            return Err(bad(format!(
                "section {i}: header says {recorded} bytes, table says {size}"
            )));
        }
        sections.push(Section {
            kind,
            data_offset,
            size,
        });
    }
    Ok(EifInfo {
        version: be16(&head, 4),
        flags: be16(&head, 6),
        default_memory: be64(&head, 8),
        default_cpus: be64(&head, 16),
        crc32: be32(&head, EIF_HEADER_LEN - 4),
        sections,
        file_size,
    })
}

/// The files [`extract`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Extracted {
    /// The kernel image.
    pub kernel: PathBuf,
    /// The kernel command line (text, without a trailing NUL).
    pub cmdline: String,
    /// The ramdisks, in order.
    pub ramdisks: Vec<PathBuf>,
}

/// Writes the kernel (`kernel`), the command line (`cmdline`) and the
/// ramdisks (`ramdisk0`, `ramdisk1`, ...) of the EIF at `path` into `dir`.
pub fn extract(path: &Path, dir: &Path) -> Result<Extracted, EifError> {
    let info = read_info(path)?;
    let io_err = |p: &Path, cause| EifError::Io {
        path: p.to_path_buf(),
        cause,
    };
    let bad = |reason: String| EifError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let mut file = File::open(path).map_err(|e| io_err(path, e))?;
    let mut out = Extracted::default();
    let mut kernels = 0;
    for section in &info.sections {
        if section.size > EIF_MAX_SECTION {
            return Err(bad(format!(
                "a {:?} section of {} bytes, more than {EIF_MAX_SECTION}",
                section.kind, section.size
            )));
        }
        file.seek(SeekFrom::Start(section.data_offset))
            .map_err(|e| io_err(path, e))?;
        let mut data = (&mut file).take(section.size);
        match section.kind {
            SectionKind::Kernel => {
                kernels += 1;
                out.kernel = dir.join("kernel");
                copy_to(&mut data, &out.kernel)?;
            }
            SectionKind::Cmdline => {
                let mut text = Vec::new();
                data.read_to_end(&mut text).map_err(|e| io_err(path, e))?;
                while text.last() == Some(&0) {
                    text.pop();
                }
                out.cmdline = String::from_utf8(text)
                    .map_err(|_| bad("the command line is not UTF-8".into()))?;
                let cmdline_path = dir.join("cmdline");
                fs::write(&cmdline_path, &out.cmdline).map_err(|e| io_err(&cmdline_path, e))?;
            }
            SectionKind::Ramdisk => {
                let target = dir.join(format!("ramdisk{}", out.ramdisks.len()));
                copy_to(&mut data, &target)?;
                out.ramdisks.push(target);
            }
            SectionKind::Signature | SectionKind::Metadata => {}
        }
    }
    if kernels != 1 || out.ramdisks.is_empty() {
        return Err(bad(format!(
            "{kernels} kernel sections and {} ramdisks (need one kernel and at least one ramdisk)",
            out.ramdisks.len()
        )));
    }
    Ok(out)
}

fn copy_to<R: Read>(data: &mut R, target: &Path) -> Result<(), EifError> {
    let io_err = |cause| EifError::Io {
        path: target.to_path_buf(),
        cause,
    };
    let mut file = File::create(target).map_err(io_err)?;
    io::copy(data, &mut file).map_err(io_err)?;
    file.flush().map_err(io_err)
}

/// The ramdisks of an EIF concatenated into one initramfs, as the Nitro
/// loader hands them to the kernel.
pub fn concat_ramdisks(ramdisks: &[PathBuf], output: &Path) -> Result<(), EifError> {
    let io_err = |p: &Path, cause| EifError::Io {
        path: p.to_path_buf(),
        cause,
    };
    let mut out = File::create(output).map_err(|e| io_err(output, e))?;
    for ramdisk in ramdisks {
        let mut input = File::open(ramdisk).map_err(|e| io_err(ramdisk, e))?;
        io::copy(&mut input, &mut out).map_err(|e| io_err(output, e))?;
    }
    out.flush().map_err(|e| io_err(output, e))
}
