//! Misbehaving peers: malformed frames, wrong magic or version, oversized
//! lengths, unknown requests, invalid UTF-8, traversal attempts and peers
//! that vanish mid-transfer. Each gets a clear error, the server keeps
//! serving, and nothing is left half-written.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::fs;
use std::path::Path;

use bytes::BytesMut;
use common::{Server, stderr, temp_leftovers};
use pipeline::defs::{MAGIC, MAX_FRAME_LEN, PROTOCOL_VERSION};
use pipeline::protocol::{
    Channel, EntryKind, EntryMeta, ErrorCode, Frame, Message, Placement, PutRequest, TreeBegin,
};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

fn encode(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::encode_control(message, &mut out).unwrap();
    out
}

fn data(bytes: &[u8]) -> Vec<u8> {
    let mut out = Frame::data_header(Channel::FileData, bytes.len())
        .unwrap()
        .to_vec();
    out.extend_from_slice(bytes);
    out
}

fn hello() -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(encode(&Message::Hello {
        min_version: PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        client: "test".into(),
    }));
    out
}

/// Reads frames until the server closes; returns them.
async fn read_all(stream: &mut UnixStream) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(frame) = Frame::parse(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    frames
}

/// Sends `bytes` (then half-closes) and returns the error frame the server answers with.
async fn error_for(server: &Server, bytes: &[u8]) -> (ErrorCode, String) {
    let mut stream = UnixStream::connect(server.socket_path()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    let frames = read_all(&mut stream).await;
    match frames.last() {
        Some(Frame::Control(Message::Error(frame))) => (frame.code, frame.message.clone()),
        other => panic!("expected an error frame, got {other:?} (all: {frames:?})"),
    }
}

#[tokio::test]
async fn malformed_input_gets_a_clear_error_and_the_server_keeps_serving() {
    let server = Server::start(&[]);

    let (code, message) = error_for(&server, b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert!(message.contains("bad magic"), "{message}");

    let mut wrong_version = MAGIC.to_vec();
    wrong_version.extend(encode(&Message::Hello {
        min_version: 900,
        max_version: 901,
        client: "future".into(),
    }));
    let (code, message) = error_for(&server, &wrong_version).await;
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert!(message.contains("900"), "{message}");

    let mut too_long = hello();
    too_long.extend_from_slice(&u32::MAX.to_be_bytes());
    too_long.push(0);
    let (code, message) = error_for(&server, &too_long).await;
    assert_eq!(code, ErrorCode::Protocol);
    assert!(message.contains(&MAX_FRAME_LEN.to_string()), "{message}");

    let mut unknown_kind = hello();
    unknown_kind.extend_from_slice(&[0, 0, 0, 0, 77]);
    let (code, message) = error_for(&server, &unknown_kind).await;
    assert_eq!(code, ErrorCode::Protocol);
    assert!(message.contains("unknown frame kind 77"), "{message}");

    // A control frame naming a message variant that does not exist.
    let mut unknown_command = hello();
    unknown_command.extend_from_slice(&[0, 0, 0, 1, 0, 99]);
    let (code, message) = error_for(&server, &unknown_command).await;
    assert_eq!(code, ErrorCode::Protocol);
    assert!(message.contains("malformed control message"), "{message}");

    // A valid message that is not a request.
    let mut not_a_request = hello();
    not_a_request.extend(encode(&Message::TreeEnd));
    let (code, message) = error_for(&server, &not_a_request).await;
    assert_eq!(code, ErrorCode::Protocol);
    assert!(message.contains("expected a request"), "{message}");

    // Invalid UTF-8 where the protocol wants text.
    let mut bad_utf8 = MAGIC.to_vec();
    let mut frame = encode(&Message::Hello {
        min_version: 1,
        max_version: 1,
        client: "abc".into(),
    });
    let at = frame.len() - 1;
    frame[at] = 0xff;
    bad_utf8.extend(frame);
    let (code, message) = error_for(&server, &bad_utf8).await;
    assert_eq!(code, ErrorCode::Protocol);
    assert!(message.contains("malformed"), "{message}");

    // Truncated frame, then the client vanishes: nothing to answer, no crash.
    let mut stream = UnixStream::connect(server.socket_path()).await.unwrap();
    let mut truncated = hello();
    truncated.extend_from_slice(&[0, 0, 1, 0, 0, 1, 2, 3]);
    stream.write_all(&truncated).await.unwrap();
    drop(stream);

    // A client that connects and says nothing is dropped after the
    // handshake time-out; meanwhile others are served.
    let _silent = UnixStream::connect(server.socket_path()).await.unwrap();
    tokio::task::spawn_blocking(move || {
        server.assert_serving();
        server
    })
    .await
    .unwrap();
}

fn entry(path: &str, kind: EntryKind) -> Message {
    Message::Entry(EntryMeta {
        path: ByteBuf::from(path.as_bytes().to_vec()),
        kind,
        mode: 0o644,
        mtime_sec: 0,
        mtime_nsec: 0,
    })
}

fn put(dest: &Path) -> Vec<u8> {
    let mut out = hello();
    out.extend(encode(&Message::Put(PutRequest {
        dest: ByteBuf::from(dest.as_os_str().as_encoded_bytes().to_vec()),
        placement: Placement::Exact {
            create_parents: false,
        },
    })));
    out.extend(encode(&Message::TreeBegin(TreeBegin {
        entries: 3,
        bytes: 4,
    })));
    out
}

fn digest(bytes: &[u8]) -> [u8; 16] {
    pipeline::digest::ContentDigest::of(bytes)
}

#[tokio::test]
async fn traversal_and_corruption_in_uploads_are_refused() {
    let server = Server::start(&[]);
    let base = server.dir.path().join("up");
    fs::create_dir(&base).unwrap();
    let dest = base.join("tree");

    let cases: Vec<(Vec<Message>, ErrorCode, &str)> = vec![
        (
            vec![
                entry("", EntryKind::Directory),
                entry("../escape", EntryKind::Directory),
            ],
            ErrorCode::PathRefused,
            "\"..\"",
        ),
        (
            vec![
                entry("", EntryKind::Directory),
                entry("/etc/evil", EntryKind::Directory),
            ],
            ErrorCode::PathRefused,
            "absolute",
        ),
        (
            // A symlink to the outside, then a file "through" it.
            vec![
                entry("", EntryKind::Directory),
                entry(
                    "link",
                    EntryKind::Symlink {
                        target: ByteBuf::from(b"/tmp".to_vec()),
                    },
                ),
                entry("link/owned", EntryKind::File { size: 0 }),
            ],
            ErrorCode::PathRefused,
            "does not follow a directory",
        ),
        (
            vec![
                entry("", EntryKind::Directory),
                entry("missing-parent/file", EntryKind::File { size: 0 }),
            ],
            ErrorCode::PathRefused,
            "does not follow a directory",
        ),
        (
            vec![
                entry("", EntryKind::Directory),
                entry("a", EntryKind::Directory),
                entry("a", EntryKind::Directory),
            ],
            ErrorCode::Io,
            "exists",
        ),
        (
            vec![entry("nested/root", EntryKind::Directory)],
            ErrorCode::Protocol,
            "root",
        ),
    ];
    for (messages, code, needle) in cases {
        let mut bytes = put(&dest);
        for message in &messages {
            bytes.extend(encode(message));
        }
        bytes.extend(encode(&Message::TreeEnd));
        let (got, message) = error_for(&server, &bytes).await;
        assert_eq!(got, code, "{message}");
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
        assert!(!dest.exists(), "a refused tree was put in place");
        assert!(temp_leftovers(&base).is_empty());
    }
    assert!(!Path::new("/tmp/owned").exists());

    // Content that does not match its digest, or its announced size.
    for (content, size, sent_digest, needle) in [
        (&b"abcd"[..], 4u64, digest(b"abce"), "digest"),
        (&b"abcdef"[..], 4, digest(b"abcdef"), "more content"),
        (&b"ab"[..], 4, digest(b"ab"), "2 of 4 bytes"),
    ] {
        let mut bytes = put(&dest);
        bytes.extend(encode(&entry("", EntryKind::File { size })));
        bytes.extend(data(content));
        bytes.extend(encode(&Message::FileEnd {
            digest: sent_digest,
        }));
        bytes.extend(encode(&Message::TreeEnd));
        let (got, message) = error_for(&server, &bytes).await;
        assert_eq!(got, ErrorCode::Corrupted, "{message}");
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
        assert!(!dest.exists());
        assert!(temp_leftovers(&base).is_empty());
    }

    // A client that vanishes mid-file.
    let mut stream = UnixStream::connect(server.socket_path()).await.unwrap();
    let mut bytes = put(&dest);
    bytes.extend(encode(&entry("", EntryKind::File { size: 10_000_000 })));
    bytes.extend(data(&[7u8; 100_000]));
    stream.write_all(&bytes).await.unwrap();
    drop(stream);
    let base_clone = base.clone();
    let clean = tokio::task::spawn_blocking(move || {
        testkit::eventually(std::time::Duration::from_secs(10), || {
            temp_leftovers(&base_clone).is_empty()
        })
    })
    .await
    .unwrap();
    assert!(clean, "{:?}", temp_leftovers(&base));
    assert!(!dest.exists());
    tokio::task::spawn_blocking(move || server.assert_serving())
        .await
        .unwrap();
}

/// A hostile server: answers any download with the given tree stream.
async fn hostile_server(socket: &Path, messages: Vec<Message>) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut magic = [0u8; 4];
        stream.read_exact(&mut magic).await.unwrap();
        let mut out = encode(&Message::Welcome {
            version: PROTOCOL_VERSION,
            server: "hostile".into(),
            exec_allowed: false,
        });
        out.extend(encode(&Message::TreeBegin(TreeBegin {
            entries: 0,
            bytes: 0,
        })));
        for message in &messages {
            out.extend(encode(message));
        }
        out.extend(encode(&Message::TreeEnd));
        stream.write_all(&out).await.unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    })
}

#[tokio::test]
async fn names_sent_back_by_the_enclave_cannot_escape() {
    let work = tempfile::tempdir().unwrap();
    let victim = work.path().join("victim");
    fs::create_dir(&victim).unwrap();
    let cases = [
        vec![
            entry("", EntryKind::Directory),
            entry("../../escaped", EntryKind::File { size: 0 }),
        ],
        vec![
            entry("", EntryKind::Directory),
            entry(
                "link",
                EntryKind::Symlink {
                    target: ByteBuf::from(victim.as_os_str().as_encoded_bytes().to_vec()),
                },
            ),
            entry("link/escaped", EntryKind::File { size: 0 }),
        ],
        vec![
            entry("", EntryKind::Directory),
            entry("/abs/escaped", EntryKind::File { size: 0 }),
        ],
    ];
    for (i, messages) in cases.into_iter().enumerate() {
        let socket = work.path().join(format!("hostile{i}.sock"));
        let hostile = hostile_server(&socket, messages).await;
        let local = work.path().join(format!("download{i}"));
        let addr = format!("unix:{}", socket.display());
        let local_clone = local.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(common::BIN)
                .args([
                    "recv-dir",
                    "--addr",
                    &addr,
                    "--remotedir",
                    "/data",
                    "--localdir",
                ])
                .arg(&local_clone)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            !out.status.success(),
            "case {i}: a hostile tree was accepted"
        );
        assert!(
            stderr(&out).contains("refused") || stderr(&out).contains("does not follow"),
            "case {i}: {}",
            stderr(&out)
        );
        assert!(!local.exists(), "case {i}: partial download left");
        assert!(
            fs::read_dir(&victim).unwrap().next().is_none(),
            "case {i}: wrote outside"
        );
        assert!(!work.path().join("escaped").exists());
        assert!(temp_leftovers(work.path()).is_empty());
        hostile.abort();
    }
}

#[tokio::test]
async fn stalled_clients_are_dropped_and_cleaned_up() {
    let server = Server::start(&["--idle-timeout", "1"]);
    let big = server.dir.path().join("big");
    common::write_pattern(&big, 64 * 1024 * 1024, 3);

    // A download whose client never reads: the server's writes stall.
    let mut reader_gone = UnixStream::connect(server.socket_path()).await.unwrap();
    let mut get = hello();
    get.extend(encode(&Message::Get(pipeline::protocol::GetRequest {
        source: ByteBuf::from(big.as_os_str().as_encoded_bytes().to_vec()),
        follow_root_symlink: false,
        expect: pipeline::protocol::Expect::Any,
    })));
    reader_gone.write_all(&get).await.unwrap();

    // An upload that stops halfway: the server's reads stall.
    let dest = server.dir.path().join("partial");
    let mut writer_gone = UnixStream::connect(server.socket_path()).await.unwrap();
    let mut put_bytes = put(&dest);
    put_bytes.extend(encode(&entry("", EntryKind::File { size: 1_000_000 })));
    put_bytes.extend(data(&[1u8; 1000]));
    writer_gone.write_all(&put_bytes).await.unwrap();

    // Both are cut off after the idle limit; the upload's temporary copy goes.
    let (code, message) = {
        let frames = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            read_all(&mut writer_gone),
        )
        .await
        .expect("the stalled upload was not cut off");
        match frames.last() {
            Some(Frame::Control(Message::Error(frame))) => (frame.code, frame.message.clone()),
            other => panic!("expected an error frame, got {other:?}"),
        }
    };
    assert_eq!(code, ErrorCode::Timeout, "{message}");
    assert!(!dest.exists());
    assert!(temp_leftovers(server.dir.path()).is_empty());

    let log_has_it = {
        let server = &server;
        testkit::eventually(std::time::Duration::from_secs(20), || {
            let log = server.log();
            log.contains("sent nothing for 1s") && log.contains("stopped reading for 1s")
        })
    };
    assert!(log_has_it, "{}", server.log());
    drop(reader_gone);
    tokio::task::spawn_blocking(move || server.assert_serving())
        .await
        .unwrap();
}
