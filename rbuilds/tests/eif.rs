#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! EIF reading and extraction on files laid out as the EIF format defines
//! (big-endian header with 32 section slots, 12-byte section headers), and
//! refusal of truncated or inconsistent ones. The same code is checked
//! against a real eif_build image by `tools/devtool image-test`.

use std::fs;
use std::path::Path;

use rbuilds::defs::{EIF_HEADER_LEN, EIF_MAX_SECTIONS};
use rbuilds::eif::{self, EifError, SectionKind};

/// An EIF with the given (type code, data) sections.
fn make_eif(sections: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut offsets = Vec::new();
    for (code, data) in sections {
        offsets.push((EIF_HEADER_LEN + body.len()) as u64);
        body.extend_from_slice(&code.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
        body.extend_from_slice(&(data.len() as u64).to_be_bytes());
        body.extend_from_slice(data);
    }
    let mut head = Vec::new();
    head.extend_from_slice(b".eif");
    head.extend_from_slice(&4u16.to_be_bytes()); // version
    head.extend_from_slice(&0u16.to_be_bytes()); // flags
    head.extend_from_slice(&(512u64 << 20).to_be_bytes());
    head.extend_from_slice(&2u64.to_be_bytes());
    head.extend_from_slice(&0u16.to_be_bytes()); // reserved
    head.extend_from_slice(&(sections.len() as u16).to_be_bytes());
    for i in 0..EIF_MAX_SECTIONS {
        head.extend_from_slice(&offsets.get(i).copied().unwrap_or(0).to_be_bytes());
    }
    for i in 0..EIF_MAX_SECTIONS {
        let size = sections.get(i).map_or(0, |(_, d)| d.len() as u64);
        head.extend_from_slice(&size.to_be_bytes());
    }
    head.extend_from_slice(&0u32.to_be_bytes()); // unused
    head.extend_from_slice(&0xDEAD_BEEFu32.to_be_bytes()); // crc32
    assert_eq!(head.len(), EIF_HEADER_LEN);
    head.extend_from_slice(&body);
    head
}

const KERNEL: &[u8] = b"bzImage bytes";
const CMDLINE: &[u8] = b"console=ttyS0 reboot=k\0";
const BOOTSTRAP: &[u8] = b"070701 bootstrap ramdisk";
const CUSTOMER: &[u8] = b"070701 customer ramdisk";

fn sample() -> Vec<u8> {
    make_eif(&[
        (1, KERNEL),
        (2, CMDLINE),
        (5, b"{\"ImageName\":\"x\"}"),
        (3, BOOTSTRAP),
        (3, CUSTOMER),
    ])
}

fn write(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join("image.eif");
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn reads_the_header_and_sections() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &sample());
    let info = eif::read_info(&path).unwrap();
    assert_eq!(info.version, 4);
    assert_eq!(info.default_cpus, 2);
    assert_eq!(info.crc32, 0xDEAD_BEEF);
    let kinds: Vec<_> = info.sections.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SectionKind::Kernel,
            SectionKind::Cmdline,
            SectionKind::Metadata,
            SectionKind::Ramdisk,
            SectionKind::Ramdisk
        ]
    );
    assert_eq!(info.sections[0].size, KERNEL.len() as u64);
    assert_eq!(info.sections[0].data_offset, (EIF_HEADER_LEN + 12) as u64);
}

#[test]
fn extracts_kernel_cmdline_and_ramdisks_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &sample());
    let out = dir.path().join("parts");
    let parts = eif::extract(&path, &out).unwrap();
    assert_eq!(fs::read(&parts.kernel).unwrap(), KERNEL);
    assert_eq!(parts.cmdline, "console=ttyS0 reboot=k");
    assert_eq!(
        fs::read_to_string(out.join("cmdline")).unwrap(),
        parts.cmdline
    );
    assert_eq!(parts.ramdisks.len(), 2);
    assert_eq!(fs::read(&parts.ramdisks[0]).unwrap(), BOOTSTRAP);
    assert_eq!(fs::read(&parts.ramdisks[1]).unwrap(), CUSTOMER);
    let joined = out.join("initramfs");
    eif::concat_ramdisks(&parts.ramdisks, &joined).unwrap();
    assert_eq!(fs::read(&joined).unwrap(), [BOOTSTRAP, CUSTOMER].concat());
}

fn malformed_reason(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), bytes);
    match eif::read_info(&path) {
        Err(EifError::Malformed { reason, .. }) => reason,
        other => panic!("expected a malformed-EIF error, got {other:?}"),
    }
}

#[test]
fn rejects_bad_magic_short_files_and_sections_past_the_end() {
    let good = sample();
    let mut bad_magic = good.clone();
    bad_magic[0] = b'x';
    assert!(malformed_reason(&bad_magic).contains("magic"));
    assert!(malformed_reason(&good[..100]).contains("shorter than"));
    let cut = &good[..good.len() - 5];
    assert!(malformed_reason(cut).contains("runs past the end"));

    // A section count beyond the 32 slots.
    let mut many = good.clone();
    many[26..28].copy_from_slice(&40u16.to_be_bytes());
    assert!(malformed_reason(&many).contains("at most 32"));

    // A section header that disagrees with the table.
    let mut disagree = good.clone();
    let at = EIF_HEADER_LEN + 4;
    disagree[at..at + 8].copy_from_slice(&1u64.to_be_bytes());
    assert!(malformed_reason(&disagree).contains("header says 1 bytes"));

    // An unknown section type.
    let mut unknown = good;
    unknown[EIF_HEADER_LEN..EIF_HEADER_LEN + 2].copy_from_slice(&9u16.to_be_bytes());
    assert!(malformed_reason(&unknown).contains("unknown type 9"));
}

#[test]
fn extraction_needs_a_kernel_and_a_ramdisk() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &make_eif(&[(2, CMDLINE), (3, BOOTSTRAP)]));
    let err = eif::extract(&path, &dir.path().join("parts")).unwrap_err();
    assert!(err.to_string().contains("0 kernel sections"), "{err}");
}
