//! The attested handshake and the encrypted stream, end to end over
//! in-memory pipes, with the development NSM making real signed documents.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use attested_channel::attest::DocumentFuture;
use attested_channel::{
    Attester, AuthorizedKeys, ClientConfig, HandshakeError, IntegrityError, ServerConfig,
    StaticKey, accept, connect, integrity_error,
};
use enclave_nsm::{DevPcrs, Nsm, NsmMode};
use proptest::prelude::*;
use ra_verify_core::{ExpectedPcrs, Policy, Root};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

struct Fixture {
    _dir: tempfile::TempDir,
    nsm: Nsm,
    root: Root,
    pcrs: ExpectedPcrs,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let nsm = Nsm::open(NsmMode::Development, dir.path(), &DevPcrs::Seeded).unwrap();
    let root = Root::load(nsm.dev_root_pem().unwrap()).unwrap();
    let values = nsm.pcrs().await.unwrap();
    let pcrs = ExpectedPcrs::new(
        values
            .into_iter()
            .map(|(i, v)| (usize::from(i), <[u8; 48]>::try_from(v.as_slice()).unwrap())),
    );
    Fixture {
        _dir: dir,
        nsm,
        root,
        pcrs,
    }
}

fn server(f: &Fixture, authorized: &str) -> ServerConfig {
    ServerConfig::new(
        Arc::new(f.nsm.clone()),
        AuthorizedKeys::parse(authorized).unwrap(),
    )
    .unwrap()
}

fn client(f: &Fixture, key: StaticKey) -> ClientConfig {
    ClientConfig {
        key,
        policy: Policy {
            root: Some(f.root.clone()),
            pcrs: Some(f.pcrs.clone()),
            ..Policy::default()
        },
        timeout: attested_channel::defs::HANDSHAKE_TIMEOUT,
    }
}

#[tokio::test]
async fn handshake_then_data_both_ways_and_a_clean_end() {
    let f = fixture().await;
    let key = StaticKey::generate().unwrap();
    let server = server(&f, &format!("exec,write=/data {} deploy", key.public()));
    let (a, b) = duplex(1 << 20);
    let served = tokio::spawn(async move {
        let (mut stream, entry) = accept(b, &server).await.unwrap();
        assert!(entry.permissions.exec);
        assert_eq!(entry.comment, "deploy");
        let mut got = vec![0u8; 300_000];
        stream.read_exact(&mut got).await.unwrap();
        stream.write_all(&got).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        server.key.public()
    });
    let (stream, attested) = connect(a, &client(&f, key)).await.unwrap();
    assert!(attested.report.passed());
    for name in [
        "pcrs",
        "nonce",
        "public_key",
        "certificate_chain",
        "channel_label",
    ] {
        assert_eq!(
            attested.report.check(name).unwrap().outcome,
            ra_verify_core::Outcome::Pass,
            "{name}"
        );
    }
    let (mut rd, mut wr) = stream.split_with(tokio::io::split);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&sent).await.unwrap();
        wr.flush().await.unwrap();
        wr
    });
    let mut echoed = Vec::new();
    rd.read_to_end(&mut echoed).await.unwrap();
    assert_eq!(echoed, data);
    let mut wr = writer.await.unwrap();
    wr.shutdown().await.unwrap();
    assert_eq!(served.await.unwrap(), attested.server_key);
}

#[tokio::test]
async fn an_unauthorised_key_is_refused_with_a_reason() {
    let f = fixture().await;
    let listed = StaticKey::generate().unwrap();
    let server = server(&f, &format!("exec {}", listed.public()));
    let (a, b) = duplex(1 << 20);
    let served = tokio::spawn(async move { accept(b, &server).await.map(|_| ()) });
    let error = connect(a, &client(&f, StaticKey::generate().unwrap()))
        .await
        .unwrap_err();
    assert!(error.is_refusal(), "{error}");
    assert!(
        error
            .to_string()
            .contains("not in the server's authorized keys"),
        "{error}"
    );
    assert!(matches!(
        served.await.unwrap(),
        Err(HandshakeError::Unauthorized(_))
    ));
}

/// Runs a handshake whose client must refuse the server; returns the
/// client's error and what the server received after message 1.
async fn refused_by_client(
    f: &Fixture,
    config: ClientConfig,
    server: ServerConfig,
) -> (HandshakeError, HandshakeError) {
    let (a, b) = duplex(1 << 20);
    let served = tokio::spawn(async move { accept(b, &server).await.map(|_| ()).unwrap_err() });
    let _ = f;
    let error = connect(a, &config).await.unwrap_err();
    (error, served.await.unwrap())
}

#[tokio::test]
async fn a_client_expecting_other_pcrs_sends_nothing_more() {
    let f = fixture().await;
    let key = StaticKey::generate().unwrap();
    let server = server(&f, &format!("exec {}", key.public()));
    let mut config = client(&f, key);
    config.policy.pcrs = Some(ExpectedPcrs::new([(0, [0x11; 48])]));
    let (error, server_saw) = refused_by_client(&f, config, server).await;
    assert!(error.is_attestation_failure(), "{error}");
    assert!(error.to_string().contains("FAIL pcrs"), "{error}");
    // The server never got message 3: the connection closed after message 2.
    assert!(matches!(server_saw, HandshakeError::Closed), "{server_saw}");
}

#[tokio::test]
async fn a_document_from_another_root_or_unsigned_policy_fails() {
    let f = fixture().await;
    let other = fixture().await;
    let key = StaticKey::generate().unwrap();
    let server_config = server(&f, &format!("exec {}", key.public()));
    let mut config = client(&f, key.clone());
    config.policy.root = Some(other.root.clone());
    let (error, _) = refused_by_client(&f, config, server_config.clone()).await;
    assert!(
        error.to_string().contains("FAIL certificate_chain"),
        "{error}"
    );
    // The AWS root (the default) refuses a development document.
    let mut config = client(&f, key);
    config.policy.root = None;
    let (error, _) = refused_by_client(&f, config, server_config).await;
    assert!(error.is_attestation_failure(), "{error}");
}

/// Makes documents that bind a key other than the server's.
struct WrongKey(Nsm);

impl Attester for WrongKey {
    fn attest(&self, nonce: Vec<u8>, _key: Vec<u8>, user_data: Vec<u8>) -> DocumentFuture<'_> {
        Box::pin(async move {
            self.0
                .attest(Some(user_data), Some(nonce), Some(vec![7u8; 32]))
                .await
                .map_err(|e| e.to_string())
        })
    }
    fn kind(&self) -> &'static str {
        "wrong-key"
    }
}

/// Makes documents for a nonce of its own (a replayed old document).
struct OldNonce(Nsm);

impl Attester for OldNonce {
    fn attest(&self, _nonce: Vec<u8>, key: Vec<u8>, user_data: Vec<u8>) -> DocumentFuture<'_> {
        Box::pin(async move {
            self.0
                .attest(Some(user_data), Some(vec![1u8; 32]), Some(key))
                .await
                .map_err(|e| e.to_string())
        })
    }
    fn kind(&self) -> &'static str {
        "old-nonce"
    }
}

#[tokio::test]
async fn a_document_for_another_key_or_nonce_is_refused() {
    let f = fixture().await;
    let key = StaticKey::generate().unwrap();
    let authorized = AuthorizedKeys::parse(&format!("exec {}", key.public())).unwrap();
    let wrong_key =
        ServerConfig::new(Arc::new(WrongKey(f.nsm.clone())), authorized.clone()).unwrap();
    let (error, _) = refused_by_client(&f, client(&f, key.clone()), wrong_key).await;
    assert!(error.to_string().contains("FAIL public_key"), "{error}");
    let old = ServerConfig::new(Arc::new(OldNonce(f.nsm.clone())), authorized).unwrap();
    let (error, _) = refused_by_client(&f, client(&f, key), old).await;
    assert!(error.to_string().contains("FAIL nonce"), "{error}");
}

/// What a relay does to the client's bytes after the handshake.
#[derive(Clone, Copy)]
enum Meddle {
    /// Flip a bit in the first data record.
    Flip,
    /// Send the first data record twice.
    Replay,
    /// Swap the first two data records.
    Reorder,
    /// Close the connection after the first data record.
    Cut,
}

/// Reads one u16-length-prefixed unit.
async fn unit<R: AsyncRead + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    let mut prefix = [0u8; 2];
    r.read_exact(&mut prefix).await.ok()?;
    let mut unit = prefix.to_vec();
    unit.resize(2 + usize::from(u16::from_be_bytes(prefix)), 0);
    r.read_exact(&mut unit[2..]).await.ok()?;
    Some(unit)
}

/// A relay client -> server that meddles with the client's data records
/// (units after magic, message 1 and message 3); server -> client passes.
async fn relay(mut from_client: DuplexStream, mut to_server: DuplexStream, meddle: Meddle) {
    let (mut sr, mut sw) = tokio::io::split(to_server_take(&mut to_server));
    let (mut cr, mut cw) = tokio::io::split(from_client_take(&mut from_client));
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    });
    let mut magic = [0u8; 4];
    cr.read_exact(&mut magic).await.unwrap();
    sw.write_all(&magic).await.unwrap();
    let mut index = 0;
    let mut held: Option<Vec<u8>> = None;
    while let Some(mut unit) = unit(&mut cr).await {
        let data_record = index >= 2;
        let first = index == 2;
        index += 1;
        if data_record {
            match meddle {
                Meddle::Flip if first => {
                    let last = unit.len() - 1;
                    unit[last / 2] ^= 0x01;
                }
                Meddle::Replay if first => {
                    sw.write_all(&unit).await.unwrap();
                }
                Meddle::Reorder if first => {
                    held = Some(unit);
                    continue;
                }
                Meddle::Reorder => {
                    if let Some(first) = held.take() {
                        sw.write_all(&unit).await.unwrap();
                        sw.write_all(&first).await.unwrap();
                        continue;
                    }
                }
                Meddle::Cut if !first => break,
                _ => {}
            }
        }
        if sw.write_all(&unit).await.is_err() {
            break;
        }
    }
    drop(sw);
    back.abort();
}

fn to_server_take(s: &mut DuplexStream) -> DuplexStream {
    std::mem::replace(s, duplex(1).0)
}

fn from_client_take(s: &mut DuplexStream) -> DuplexStream {
    std::mem::replace(s, duplex(1).0)
}

async fn meddled(meddle: Meddle) -> std::io::Error {
    let f = fixture().await;
    let key = StaticKey::generate().unwrap();
    let server = server(&f, &format!("exec {}", key.public()));
    let (client_end, relay_client) = duplex(1 << 20);
    let (relay_server, server_end) = duplex(1 << 20);
    tokio::spawn(relay(relay_client, relay_server, meddle));
    let served = tokio::spawn(async move {
        let (mut stream, _) = accept(server_end, &server).await.unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap_err()
    });
    let (mut stream, _) = connect(client_end, &client(&f, key)).await.unwrap();
    for n in 0..3u8 {
        stream.write_all(&[n; 1000]).await.unwrap();
        stream.flush().await.unwrap();
    }
    let _ = stream.shutdown().await;
    served.await.unwrap()
}

#[tokio::test]
async fn a_flipped_bit_ends_the_session_with_an_integrity_error() {
    let error = meddled(Meddle::Flip).await;
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(
        integrity_error(&error),
        Some(&IntegrityError::BadRecord { record: 0 })
    );
    assert!(
        error
            .to_string()
            .contains("tampered with, replayed or reordered")
    );
}

#[tokio::test]
async fn a_replayed_record_is_refused() {
    let error = meddled(Meddle::Replay).await;
    assert_eq!(
        integrity_error(&error),
        Some(&IntegrityError::BadRecord { record: 1 })
    );
}

#[tokio::test]
async fn reordered_records_are_refused() {
    let error = meddled(Meddle::Reorder).await;
    assert_eq!(
        integrity_error(&error),
        Some(&IntegrityError::BadRecord { record: 0 })
    );
}

#[tokio::test]
async fn a_cut_stream_is_not_a_clean_end() {
    let error = meddled(Meddle::Cut).await;
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(matches!(
        integrity_error(&error),
        Some(IntegrityError::Truncated { .. })
    ));
}

#[tokio::test]
async fn a_silent_or_foreign_client_is_dropped() {
    let f = fixture().await;
    let mut config = server(&f, "");
    config.timeout = std::time::Duration::from_millis(200);
    let (mut a, b) = duplex(1024);
    let error = accept(b, &config).await.unwrap_err();
    assert!(matches!(error, HandshakeError::Timeout(_)), "{error}");
    let (c, d) = duplex(1024);
    let served = tokio::spawn(async move { accept(d, &config).await.map(|_| ()).unwrap_err() });
    let mut c = c;
    c.write_all(b"PLSC\0\0\0\0").await.unwrap();
    let error = served.await.unwrap();
    assert!(
        matches!(error, HandshakeError::NotAChannelClient(m) if &m == b"PLSC"),
        "{error}"
    );
    a.shutdown().await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever a peer sends in place of handshake messages, the server
    /// fails cleanly (no panic, no allocation from the announced length).
    #[test]
    fn arbitrary_handshake_bytes_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let f = fixture().await;
            let mut config = server(&f, "");
            config.timeout = std::time::Duration::from_millis(100);
            let (mut a, b) = duplex(4096);
            let mut wire = b"ACH1".to_vec();
            wire.extend_from_slice(&bytes);
            a.write_all(&wire).await.unwrap();
            a.shutdown().await.unwrap();
            assert!(accept(b, &config).await.is_err());
        });
    }

    /// Whatever arrives in place of records, the reader fails (or ends)
    /// without panicking and never yields unauthenticated bytes.
    #[test]
    fn arbitrary_records_are_never_accepted(bytes in proptest::collection::vec(any::<u8>(), 1..2000)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let f = fixture().await;
            let key = StaticKey::generate().unwrap();
            let server = server(&f, &format!("{}", key.public()));
            let (a, b) = duplex(1 << 20);
            let served = tokio::spawn(async move {
                let (mut stream, _) = accept(b, &server).await.unwrap();
                let mut got = Vec::new();
                let result = stream.read_to_end(&mut got).await;
                (result.is_err(), got.len())
            });
            let (stream, _) = connect(a, &client(&f, key)).await.unwrap();
            // Write raw bytes under the channel, as a meddling host would.
            let mut raw = stream_into_inner(stream);
            raw.write_all(&bytes).await.unwrap();
            raw.shutdown().await.unwrap();
            let (failed, got) = served.await.unwrap();
            assert!(failed);
            assert_eq!(got, 0);
        });
    }
}

/// The raw stream under the channel (the reader half owns it whole).
fn stream_into_inner(stream: attested_channel::SecureStream<DuplexStream>) -> DuplexStream {
    let (reader, _) = stream.split_with(|s| (s, ()));
    reader.into_inner()
}
