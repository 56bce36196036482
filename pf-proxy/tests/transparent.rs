//! The transparent modes over real Unix and TCP sockets, without iptables:
//! the header, the egress policy, malformed headers, and the
//! original-destination port of transparent ingress.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use pf_proxy::{Limits, Mode, Policy, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use transport::{Address, Listener, connect};

const BOUND: Duration = Duration::from_secs(30);

/// An echo server on loopback TCP that counts its connections.
async fn counting_echo() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = Listener::bind(&tcp_any()).await.unwrap();
    let Address::Tcp { port, .. } = listener.local_addr().clone() else {
        unreachable!()
    };
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(echo(stream));
        }
    });
    (SocketAddr::from(([127, 0, 0, 1], port)), count)
}

async fn egress_proxy(dir: &std::path::Path, policy: &str, limits: Limits) -> RunningProxy {
    let policy = Policy::from_yaml(policy).unwrap();
    start_proxy(
        &unix_addr(dir, "egress.vsock"),
        Mode::TransparentIn {
            policy: Arc::new(policy),
        },
        limits,
    )
    .await
}

fn with_header(dst: SocketAddr, data: &[u8]) -> Vec<u8> {
    let (buf, len) = header::encode(&dst);
    let mut wire = buf[..len].to_vec();
    wire.extend_from_slice(data);
    wire
}

#[tokio::test]
async fn allowed_destination_gets_the_stream_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (server, count) = counting_echo().await;
    let policy = format!(
        "allow:\n  - cidr: 127.0.0.1/32\n    ports: [{}]\n",
        server.port()
    );
    let proxy = egress_proxy(dir.path(), &policy, test_limits()).await;
    let data = payload(8 << 20, 3);
    let stream = connect(&proxy.addr).await.unwrap();
    let got = timeout(BOUND, send_and_collect(stream, with_header(server, &data)))
        .await
        .unwrap();
    assert!(
        got == data,
        "echo differs (the header must not reach the server)"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn egress_from_a_local_vm_over_hybrid_vsock() {
    // vsock-to-ip-transparent on the host of a local micro-VM listens on
    // hvsock:VM.vsock:8888, that is the Unix socket VM.vsock_8888, where the
    // VMM delivers the guest's connections to host port 8888.
    let dir = tempfile::tempdir().unwrap();
    let (server, count) = counting_echo().await;
    let policy = Policy::from_yaml(&format!(
        "allow:\n  - cidr: 127.0.0.1/32\n    ports: [{}]\n",
        server.port()
    ))
    .unwrap();
    let listen: Address = format!("hvsock:{}:8888", dir.path().join("vm.vsock").display())
        .parse()
        .unwrap();
    let proxy = start_proxy(
        &listen,
        Mode::TransparentIn {
            policy: Arc::new(policy),
        },
        test_limits(),
    )
    .await;
    let from_guest = unix_addr(dir.path(), "vm.vsock_8888");
    let data = payload(6 << 20, 4);
    let stream = connect(&from_guest).await.unwrap();
    let got = timeout(BOUND, send_and_collect(stream, with_header(server, &data)))
        .await
        .unwrap();
    assert!(got == data);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn many_concurrent_egress_connections_each_reach_their_destination() {
    let dir = tempfile::tempdir().unwrap();
    let (first, first_count) = counting_echo().await;
    let (second, second_count) = counting_echo().await;
    let policy = format!(
        "allow:\n  - cidr: 127.0.0.0/8\n    ports: [{}, {}]\n",
        first.port(),
        second.port()
    );
    let proxy = egress_proxy(dir.path(), &policy, test_limits()).await;
    let clients: Vec<_> = (0..200usize)
        .map(|i| {
            let addr = proxy.addr.clone();
            let dst = if i % 2 == 0 { first } else { second };
            tokio::spawn(async move {
                let data = payload(48 * 1024 + i, i as u8);
                let stream = connect(&addr).await.unwrap();
                assert!(send_and_collect(stream, with_header(dst, &data)).await == data);
            })
        })
        .collect();
    for client in clients {
        timeout(BOUND, client).await.unwrap().unwrap();
    }
    assert_eq!(first_count.load(Ordering::SeqCst), 100);
    assert_eq!(second_count.load(Ordering::SeqCst), 100);
    proxy.stop().await;
}

#[tokio::test]
async fn denied_destinations_are_closed_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (server, count) = counting_echo().await;
    for policy in [
        // Deny by default.
        String::new(),
        // Another port only.
        format!(
            "allow:\n  - cidr: 127.0.0.1/32\n    ports: [{}]\n",
            server.port() ^ 1
        ),
        // `all` does not include loopback.
        "allow: all".to_owned(),
    ] {
        let proxy = egress_proxy(dir.path(), &policy, test_limits()).await;
        let mut stream = connect(&proxy.addr).await.unwrap();
        stream
            .write_all(&with_header(server, b"secret"))
            .await
            .unwrap();
        let (got, _) = timeout(BOUND, read_all_lenient(&mut stream)).await.unwrap();
        assert!(got.is_empty(), "policy {policy:?} let data through");
        proxy.stop().await;
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "a denied connection reached the server"
    );
}

#[tokio::test]
async fn a_bad_header_closes_only_its_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (server, count) = counting_echo().await;
    let policy = format!(
        "allow:\n  - cidr: 127.0.0.1/32\n    ports: [{}]\n",
        server.port()
    );
    let limits = Limits {
        header_timeout: Duration::from_millis(300),
        ..test_limits()
    };
    let proxy = egress_proxy(dir.path(), &policy, limits).await;

    // A good connection, open across all the bad ones.
    let mut good = connect(&proxy.addr).await.unwrap();
    good.write_all(&with_header(server, b"one")).await.unwrap();
    let mut buf = [0u8; 3];
    good.read_exact(&mut buf).await.unwrap();

    let (full, len) = header::encode(&server);
    let bad_inputs: Vec<(&str, Vec<u8>, bool)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\n\r\n".to_vec(), true),
        (
            "wrong version",
            b"PF\x09\x04\x00\x50\x7f\x00\x00\x01".to_vec(),
            true,
        ),
        ("unknown family", b"PF\x01\x05\x00\x50".to_vec(), true),
        (
            "port zero",
            b"PF\x01\x04\x00\x00\x7f\x00\x00\x01".to_vec(),
            true,
        ),
        ("truncated then EOF", full[..len - 1].to_vec(), true),
        ("truncated then silence", full[..3].to_vec(), false),
        ("nothing at all", Vec::new(), false),
    ];
    for (what, bytes, half_close) in bad_inputs {
        let mut bad = connect(&proxy.addr).await.unwrap();
        bad.write_all(&bytes).await.unwrap();
        if half_close {
            bad.shutdown().await.unwrap();
        }
        let (got, _) = timeout(BOUND, read_all_lenient(&mut bad)).await.unwrap();
        assert!(got.is_empty(), "{what}");
    }
    good.write_all(b"two").await.unwrap();
    good.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"two", "the good connection was hurt");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    drop(good);
    proxy.stop().await;
}

#[tokio::test]
async fn transparent_sides_refuse_connections_that_were_not_redirected() {
    let dir = tempfile::tempdir().unwrap();
    for mode in ["egress", "ingress"] {
        // The other side's place, watched: nothing may arrive there.
        let other = Listener::bind(&unix_addr(dir.path(), mode)).await.unwrap();
        let other_addr = other.local_addr().clone();
        let arrived = tokio::spawn(async move { other.accept().await.is_ok() });
        let mode = match mode {
            "egress" => Mode::TransparentOut { target: other_addr },
            _ => Mode::PortToVsock { target: other_addr },
        };
        let proxy = start_proxy(&tcp_any(), mode.clone(), test_limits()).await;
        let mut client = connect(&proxy.addr).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        let (got, _) = timeout(BOUND, read_all_lenient(&mut client)).await.unwrap();
        assert!(got.is_empty(), "{mode:?}");
        proxy.stop().await;
        assert!(
            !arrived.is_finished(),
            "{mode:?}: a direct connection was forwarded"
        );
        arrived.abort();
    }
}
