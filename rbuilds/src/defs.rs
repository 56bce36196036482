//! Constants and limits of the formats rbuilds reads and writes.

/// Magic of a newc ("new ASCII") cpio header.
pub const CPIO_NEWC_MAGIC: &[u8; 6] = b"070701";
/// Length of a newc header: the magic and 13 fields of 8 hex digits.
pub const CPIO_HEADER_LEN: usize = 110;
/// Name of the entry that ends a cpio archive.
pub const CPIO_TRAILER: &str = "TRAILER!!!";
/// Longest entry name (with its NUL) accepted, as Linux's `PATH_MAX`.
pub const CPIO_MAX_NAME: usize = 4096;
/// Largest file a newc entry can hold (its size field is 32 bits).
pub const CPIO_MAX_FILE: u64 = u32::MAX as u64;
/// Most entries read from one archive (a bound for hostile input).
pub const CPIO_MAX_ENTRIES: usize = 1_000_000;
/// Permissions of directories in an archive.
pub const DIR_MODE: u32 = 0o040_755;
/// Permissions of files with an execute bit.
pub const EXEC_FILE_MODE: u32 = 0o100_755;
/// Permissions of other files.
pub const FILE_MODE: u32 = 0o100_644;
/// Permissions of symbolic links.
pub const SYMLINK_MODE: u32 = 0o120_777;

/// Magic at the start of an EIF file: `.eif`.
pub const EIF_MAGIC: &[u8; 4] = b".eif";
/// Section slots in an EIF header.
pub const EIF_MAX_SECTIONS: usize = 32;
/// Length of the EIF header: magic, version, flags, memory, cpus, reserved,
/// section count, 32 offsets, 32 sizes, unused, CRC-32.
pub const EIF_HEADER_LEN: usize = 4 + 2 + 2 + 8 + 8 + 2 + 2 + 8 * 32 + 8 * 32 + 4 + 4;
/// Length of an EIF section header: type, flags, size.
pub const EIF_SECTION_HEADER_LEN: usize = 2 + 2 + 8;
/// Largest EIF section accepted when extracting (4 GiB).
pub const EIF_MAX_SECTION: u64 = 4 << 30;

/// The byte the boot heartbeat carries both ways.
pub const HEARTBEAT_BYTE: u8 = 0xB7;
