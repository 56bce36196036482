//! `ip-to-vsock` and `vsock-to-ip` (the forward mode) over real Unix, TCP
//! and hybrid-vsock sockets: data, half-close, concurrency, time-outs,
//! connection limit, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use pf_proxy::{Limits, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use transport::{Address, Listener, connect, hvsock};

/// Generous bound so a broken proxy fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(30);

/// client -> ip-to-vsock (tcp) -> unix "vsock" -> vsock-to-ip -> `target`.
async fn chain(
    dir: &std::path::Path,
    target: &Address,
    limits: Limits,
) -> (RunningProxy, RunningProxy) {
    let enclave = start_proxy(
        &unix_addr(dir, "enclave.vsock"),
        Mode::Forward {
            target: target.clone(),
        },
        limits.clone(),
    )
    .await;
    let host = start_proxy(
        &tcp_any(),
        Mode::Forward {
            target: enclave.addr.clone(),
        },
        limits,
    )
    .await;
    (host, enclave)
}

#[tokio::test]
async fn large_payloads_cross_byte_exact_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let up = payload(24 << 20, 1);
    let down = payload(20 << 20, 2);
    // The server reads everything the client sent while it sends its own payload.
    let server = Listener::bind(&tcp_any()).await.unwrap();
    let server_addr = server.local_addr().clone();
    let down_copy = down.clone();
    let server_task = tokio::spawn(async move {
        let (stream, _) = server.accept().await.unwrap();
        send_and_collect(stream, down_copy).await
    });
    let (host, enclave) = chain(dir.path(), &server_addr, test_limits()).await;
    let client = connect(&host.addr).await.unwrap();
    let got_down = timeout(BOUND, send_and_collect(client, up.clone()))
        .await
        .unwrap();
    let got_up = server_task.await.unwrap();
    assert!(got_up == up, "client -> server bytes differ");
    assert!(got_down == down, "server -> client bytes differ");
    host.stop().await;
    enclave.stop().await;
}

#[tokio::test]
async fn half_close_passes_through_each_way() {
    let dir = tempfile::tempdir().unwrap();
    let server = Listener::bind(&unix_addr(dir.path(), "app.sock"))
        .await
        .unwrap();
    let server_addr = server.local_addr().clone();
    let server_task = tokio::spawn(async move {
        // 1: client half-closes first; the server must see EOF, then answer.
        let (mut stream, _) = server.accept().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"request");
        stream.write_all(b"response").await.unwrap();
        stream.shutdown().await.unwrap();
        // 2: server half-closes first; the client can still send afterwards.
        let (mut stream, _) = server.accept().await.unwrap();
        stream.write_all(b"banner").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut late = Vec::new();
        stream.read_to_end(&mut late).await.unwrap();
        late
    });
    let (host, enclave) = chain(dir.path(), &server_addr, test_limits()).await;

    let mut client = connect(&host.addr).await.unwrap();
    client.write_all(b"request").await.unwrap();
    client.shutdown().await.unwrap();
    let mut response = Vec::new();
    timeout(BOUND, client.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response, b"response");

    let mut client = connect(&host.addr).await.unwrap();
    let mut banner = Vec::new();
    timeout(BOUND, client.read_to_end(&mut banner))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(banner, b"banner");
    client
        .write_all(b"sent after the peer's EOF")
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    let late = timeout(BOUND, server_task).await.unwrap().unwrap();
    assert_eq!(late, b"sent after the peer's EOF");
    host.stop().await;
    enclave.stop().await;
}

#[tokio::test]
async fn many_concurrent_connections_each_get_their_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (echo_addr, _echo) = echo_server(&unix_addr(dir.path(), "echo.sock")).await;
    let (host, enclave) = chain(dir.path(), &echo_addr, test_limits()).await;
    let clients: Vec<_> = (0..300u32)
        .map(|i| {
            let addr = host.addr.clone();
            tokio::spawn(async move {
                let data = payload(32 * 1024 + i as usize, i as u8);
                let stream = connect(&addr).await.unwrap();
                assert!(send_and_collect(stream, data.clone()).await == data);
            })
        })
        .collect();
    for client in clients {
        timeout(BOUND, client).await.unwrap().unwrap();
    }
    host.stop().await;
    enclave.stop().await;
}

#[tokio::test]
async fn unreachable_or_silent_targets_close_the_client() {
    let dir = tempfile::tempdir().unwrap();
    // A "VMM" that accepts the hybrid-vsock connection and never answers CONNECT.
    let vmm_path = dir.path().join("silent.vsock");
    let vmm = tokio::net::UnixListener::bind(&vmm_path).unwrap();
    let _vmm = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = vmm.accept().await {
            held.push(stream);
        }
    });
    let limits = Limits {
        connect_timeout: Duration::from_millis(300),
        ..test_limits()
    };
    for target in [
        format!("hvsock:{}:5000", vmm_path.display()),
        format!("unix:{}", dir.path().join("nobody.sock").display()),
    ] {
        let proxy = start_proxy(
            &tcp_any(),
            Mode::Forward {
                target: target.parse().unwrap(),
            },
            limits.clone(),
        )
        .await;
        let mut client = connect(&proxy.addr).await.unwrap();
        let (got, _) = timeout(BOUND, read_all_lenient(&mut client)).await.unwrap();
        assert!(got.is_empty(), "{target}");
        proxy.stop().await;
    }
}

#[tokio::test]
async fn idle_connections_are_closed_busy_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let (echo_addr, _echo) = echo_server(&unix_addr(dir.path(), "echo.sock")).await;
    let limits = Limits {
        idle_timeout: Duration::from_millis(1000),
        ..test_limits()
    };
    let proxy = start_proxy(&tcp_any(), Mode::Forward { target: echo_addr }, limits).await;

    // Busy for over two idle periods: one byte every 100 ms keeps it open.
    let mut busy = connect(&proxy.addr).await.unwrap();
    for i in 0..25u8 {
        busy.write_all(&[i]).await.unwrap();
        let mut one = [0u8; 1];
        timeout(BOUND, busy.read_exact(&mut one))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one[0], i);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Silent: the proxy closes it.
    let mut silent = connect(&proxy.addr).await.unwrap();
    silent.write_all(b"x").await.unwrap();
    let (got, _) = timeout(BOUND, read_all_lenient(&mut silent)).await.unwrap();
    assert_eq!(got, b"x");
    drop(busy);
    proxy.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (echo_addr, _echo) = echo_server(&unix_addr(dir.path(), "echo.sock")).await;
    let limits = Limits {
        max_connections: 2,
        ..test_limits()
    };
    let proxy = start_proxy(&tcp_any(), Mode::Forward { target: echo_addr }, limits).await;
    async fn ping(stream: &mut transport::Stream) -> bool {
        if stream.write_all(b"ping").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        matches!(timeout(BOUND, stream.read_exact(&mut buf)).await, Ok(Ok(_)))
    }
    let mut first = connect(&proxy.addr).await.unwrap();
    let mut second = connect(&proxy.addr).await.unwrap();
    assert!(ping(&mut first).await && ping(&mut second).await);
    let mut third = connect(&proxy.addr).await.unwrap();
    let (got, _) = timeout(BOUND, read_all_lenient(&mut third)).await.unwrap();
    assert!(got.is_empty(), "the third connection was served");
    assert!(ping(&mut first).await, "the limit hurt a served connection");
    // Closing one frees its place (once the proxy has seen the close).
    drop(first);
    let mut served = false;
    for _ in 0..500 {
        let mut again = connect(&proxy.addr).await.unwrap();
        if ping(&mut again).await {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the freed place was never reused");
    drop(second);
    proxy.stop().await;
}

#[tokio::test]
async fn hvsock_target_is_never_shut_down_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let request = payload(3 << 20, 7);
    let response = payload(5 << 20, 8);
    // A fake VMM with the guest's server behind it.
    let vmm_path = dir.path().join("vm.vsock");
    let vmm = tokio::net::UnixListener::bind(&vmm_path).unwrap();
    let (want, answer) = (request.clone(), response.clone());
    let guest = tokio::spawn(async move {
        let (mut stream, _) = vmm.accept().await.unwrap();
        assert_eq!(
            hvsock::read_connect_request(&mut stream).await.unwrap(),
            8443
        );
        hvsock::write_ok(&mut stream, 1234).await.unwrap();
        let mut got = vec![0u8; want.len()];
        stream.read_exact(&mut got).await.unwrap();
        assert!(got == want, "request bytes differ");
        // The client half-closed, but the proxy must not shut the hybrid
        // vsock down (vhost-device-vsock would drop the connection).
        let mut extra = [0u8; 1];
        assert!(
            timeout(Duration::from_millis(300), stream.read(&mut extra))
                .await
                .is_err(),
            "the proxy shut down or wrote to the hybrid-vsock connection"
        );
        stream.write_all(&answer).await.unwrap();
        // The guest closes; the proxy must deliver everything first.
    });
    let proxy = start_proxy(
        &tcp_any(),
        Mode::Forward {
            target: format!("hvsock:{}:8443", vmm_path.display())
                .parse()
                .unwrap(),
        },
        test_limits(),
    )
    .await;
    let client = connect(&proxy.addr).await.unwrap();
    let got = timeout(BOUND, send_and_collect(client, request))
        .await
        .unwrap();
    guest.await.unwrap();
    assert!(got == response, "response bytes differ");
    proxy.stop().await;
}

#[tokio::test]
async fn hvsock_listener_side_passes_data_both_ways() {
    // vsock-to-ip on the host side of a local VM: the VMM connects to PATH_PORT.
    let dir = tempfile::tempdir().unwrap();
    let (echo_addr, _echo) = echo_server(&unix_addr(dir.path(), "echo.sock")).await;
    let listen: Address = format!("hvsock:{}:9000", dir.path().join("vm.vsock").display())
        .parse()
        .unwrap();
    let proxy = start_proxy(&listen, Mode::Forward { target: echo_addr }, test_limits()).await;
    // The guest's connection as the VMM delivers it: a plain Unix connection.
    let guest_side: Address = format!("unix:{}", dir.path().join("vm.vsock_9000").display())
        .parse()
        .unwrap();
    let mut guest = connect(&guest_side).await.unwrap();
    let data = payload(2 << 20, 9);
    let (mut rd, mut wr) = tokio::io::split(&mut guest);
    let write = async {
        wr.write_all(&data).await.unwrap();
    };
    let mut got = vec![0u8; data.len()];
    let read = rd.read_exact(&mut got);
    let ((), read) = timeout(BOUND, async { tokio::join!(write, read) })
        .await
        .unwrap();
    read.unwrap();
    assert!(got == data);
    drop(guest);
    proxy.stop().await;
}

#[tokio::test]
async fn shutdown_lets_open_streams_finish_and_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (echo_addr, _echo) = echo_server(&unix_addr(dir.path(), "echo.sock")).await;
    let proxy = start_proxy(
        &unix_addr(dir.path(), "proxy.sock"),
        Mode::Forward { target: echo_addr },
        test_limits(),
    )
    .await;
    let mut open = connect(&proxy.addr).await.unwrap();
    open.write_all(b"before").await.unwrap();
    let mut buf = [0u8; 6];
    open.read_exact(&mut buf).await.unwrap();
    proxy.shutdown.cancel();
    // The listener goes away, the open stream keeps working.
    let mut refused = false;
    for _ in 0..1000 {
        if transport::connect_with(&proxy.addr, &transport::ConnectOptions::once())
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "still accepting after shutdown");
    open.write_all(b"during").await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"during");
    assert!(!proxy.task.is_finished());
    drop(open);
    timeout(BOUND, proxy.task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_cuts_what_outlives_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (echo_addr, _echo) = echo_server(&unix_addr(dir.path(), "echo.sock")).await;
    let limits = Limits {
        shutdown_grace: Duration::from_millis(200),
        ..test_limits()
    };
    let proxy = start_proxy(&tcp_any(), Mode::Forward { target: echo_addr }, limits).await;
    let mut lingering = connect(&proxy.addr).await.unwrap();
    lingering.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    lingering.read_exact(&mut one).await.unwrap();
    proxy.shutdown.cancel();
    timeout(BOUND, proxy.task).await.unwrap().unwrap().unwrap();
    let (got, _) = timeout(BOUND, read_all_lenient(&mut lingering))
        .await
        .unwrap();
    assert!(got.is_empty());
}
