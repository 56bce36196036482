//! A 512 MiB file through the pipeline and back, digest-checked, with the
//! memory of server and client bounded (streaming, not buffering).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Server, digest_file, stderr, write_pattern};
use nix::sys::resource::{UsageWho, getrusage};

/// Memory either process may use while moving 512 MiB: buffers in flight
/// plus the runtime, nowhere near the file's size.
const RSS_LIMIT_KIB: u64 = 96 * 1024;
const SIZE: u64 = 512 * 1024 * 1024;

#[test]
fn half_gigabyte_round_trip_in_constant_memory() {
    let server = Server::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big.bin");
    write_pattern(&src, SIZE, 42);
    let remote = server.dir.path().join("big.bin");
    let back = work.path().join("back.bin");

    let up = server.client([
        "cp".as_ref(),
        src.as_os_str(),
        format!("enclave:{}", remote.display()).as_ref(),
    ]);
    assert!(up.status.success(), "{}", stderr(&up));
    let down = server.client([
        "cp".as_ref(),
        format!("enclave:{}", remote.display()).as_ref(),
        back.as_os_str(),
    ]);
    assert!(down.status.success(), "{}", stderr(&down));

    assert_eq!(std::fs::metadata(&back).unwrap().len(), SIZE);
    let expected = digest_file(&src);
    assert_eq!(digest_file(&remote), expected, "upload corrupted");
    assert_eq!(digest_file(&back), expected, "download corrupted");

    let server_kib = server.peak_rss_kib();
    // Peak RSS of the largest waited-for child: the two client runs.
    let client_kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss() as u64;
    eprintln!("peak RSS: server {server_kib} KiB, client {client_kib} KiB");
    assert!(
        server_kib < RSS_LIMIT_KIB,
        "server used {server_kib} KiB for a {SIZE}-byte file"
    );
    assert!(
        client_kib < RSS_LIMIT_KIB,
        "client used {client_kib} KiB for a {SIZE}-byte file"
    );
}
