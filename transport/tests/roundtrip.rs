//! Real round trips over Unix, TCP and hybrid-vsock sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use transport::{
    Address, BindOptions, ConnectOptions, Error, Listener, Peer, connect, connect_with, hvsock,
};

/// Accepts one connection and echoes everything back until EOF.
async fn echo_once(listener: Listener) -> Peer {
    let (mut stream, peer) = listener.accept().await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).await.unwrap();
    }
    stream.shutdown().await.unwrap();
    peer
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Writes a payload, half-closes, and reads the echo to EOF.
async fn exchange(addr: &Address, data: &[u8]) -> Vec<u8> {
    let stream = connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let data = data.to_vec();
    let writer = tokio::spawn(async move {
        wr.write_all(&data).await.unwrap();
        wr.shutdown().await.unwrap();
        wr
    });
    let mut echoed = Vec::new();
    rd.read_to_end(&mut echoed).await.unwrap();
    drop(writer.await.unwrap());
    echoed
}

#[tokio::test]
async fn unix_round_trip_with_half_close() {
    let dir = tempfile::tempdir().unwrap();
    let addr: Address = format!("unix:{}", dir.path().join("s.sock").display())
        .parse()
        .unwrap();
    let listener = Listener::bind(&addr).await.unwrap();
    let server = tokio::spawn(echo_once(listener));
    let data = payload(3 * 1024 * 1024 + 7);
    assert_eq!(exchange(&addr, &data).await, data);
    assert_eq!(server.await.unwrap(), Peer::Unix);
}

#[tokio::test]
async fn tcp_round_trip_reports_the_chosen_port() {
    let listener = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().clone();
    let Address::Tcp { port, .. } = addr else {
        panic!("not tcp")
    };
    assert_ne!(port, 0);
    let server = tokio::spawn(echo_once(listener));
    let data = payload(1024 * 1024);
    assert_eq!(exchange(&addr, &data).await, data);
    assert!(matches!(server.await.unwrap(), Peer::Tcp(_)));
}

#[tokio::test]
async fn tcp_ipv6_loopback() {
    let Ok(listener) = Listener::bind(&"tcp:[::1]:0".parse().unwrap()).await else {
        eprintln!("skipped: IPv6 loopback is not available on this machine");
        return;
    };
    let addr = listener.local_addr().clone();
    assert!(addr.to_string().starts_with("tcp:[::1]:"));
    let server = tokio::spawn(echo_once(listener));
    assert_eq!(exchange(&addr, b"v6").await, b"v6");
    server.await.unwrap();
}

/// A stand-in for vhost-device-vsock: answers `CONNECT port` with `OK`, then
/// echoes; never half-closes towards the host.
async fn fake_vmm(socket: &Path, expect_port: u32) -> tokio::task::JoinHandle<()> {
    let listener = UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let port = hvsock::read_connect_request(&mut stream).await.unwrap();
        assert_eq!(port, expect_port);
        hvsock::write_ok(&mut stream, 1_000_000).await.unwrap();
        let mut buf = vec![0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            stream.write_all(&buf[..n]).await.unwrap();
        }
    })
}

#[tokio::test]
async fn hvsock_connect_runs_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let vm_socket = dir.path().join("vm.vsock");
    let vmm = fake_vmm(&vm_socket, 53000).await;
    let addr: Address = format!("hvsock:{}:53000", vm_socket.display())
        .parse()
        .unwrap();
    let mut stream = connect(&addr).await.unwrap();
    assert!(!stream.supports_half_close());
    stream.write_all(b"hello guest").await.unwrap();
    let mut back = [0u8; 11];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello guest");
    // shutdown() must not send SHUT_WR on hybrid vsock: the VMM still sees
    // an open connection and keeps echoing.
    stream.shutdown().await.unwrap();
    stream.write_all(b"more").await.unwrap();
    let mut more = [0u8; 4];
    stream.read_exact(&mut more).await.unwrap();
    assert_eq!(&more, b"more");
    drop(stream);
    vmm.await.unwrap();
}

#[tokio::test]
async fn hvsock_write_half_drop_keeps_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let vm_socket = dir.path().join("vm.vsock");
    let vmm = fake_vmm(&vm_socket, 7).await;
    let addr: Address = format!("hvsock:{}:7", vm_socket.display()).parse().unwrap();
    let (mut rd, mut wr) = connect(&addr).await.unwrap().into_split();
    assert!(!wr.supports_half_close());
    wr.write_all(b"abc").await.unwrap();
    wr.shutdown().await.unwrap();
    drop(wr);
    let mut back = [0u8; 3];
    rd.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"abc");
    drop(rd);
    vmm.await.unwrap();
}

#[tokio::test]
async fn hvsock_refused_port_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let vm_socket = dir.path().join("vm.vsock");
    let listener = UnixListener::bind(&vm_socket).unwrap();
    // The VMM closes connections for guest ports nobody listens on.
    let vmm = tokio::spawn(async move {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = hvsock::read_connect_request(&mut stream).await;
        }
    });
    let addr: Address = format!("hvsock:{}:9", vm_socket.display()).parse().unwrap();
    let options = ConnectOptions {
        attempts: 2,
        initial_backoff: Duration::from_millis(10),
        ..ConnectOptions::default()
    };
    let err = connect_with(&addr, &options).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&addr.to_string()), "{text}");
    assert!(text.contains("2 attempt"), "{text}");
    assert!(text.contains("vsock port 9"), "{text}");
    vmm.await.unwrap();
}

#[tokio::test]
async fn hvsock_listen_binds_path_underscore_port() {
    let dir = tempfile::tempdir().unwrap();
    let vm_socket = dir.path().join("vm.vsock");
    let addr: Address = format!("hvsock:{}:9000", vm_socket.display())
        .parse()
        .unwrap();
    let listener = Listener::bind(&addr).await.unwrap();
    let expected = dir.path().join("vm.vsock_9000");
    assert_eq!(listener.socket_path(), Some(expected.as_path()));
    let server = tokio::spawn(async move {
        let (mut stream, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, Peer::HybridVsock);
        assert!(!stream.supports_half_close());
        let mut b = [0u8; 1];
        stream.read_exact(&mut b).await.unwrap();
        stream.write_all(&b).await.unwrap();
    });
    // The VMM connects to PATH_PORT for a guest connection to host port 9000.
    let mut guest = tokio::net::UnixStream::connect(&expected).await.unwrap();
    guest.write_all(&[0xB7]).await.unwrap();
    let mut b = [0u8; 1];
    guest.read_exact(&mut b).await.unwrap();
    assert_eq!(b, [0xB7]);
    server.await.unwrap();
    assert!(!expected.exists(), "socket file removed with the listener");
}

#[tokio::test]
async fn connect_retries_until_the_server_appears() {
    let dir = tempfile::tempdir().unwrap();
    let addr: Address = format!("unix:{}", dir.path().join("late.sock").display())
        .parse()
        .unwrap();
    let late = addr.clone();
    let server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        echo_once(Listener::bind(&late).await.unwrap()).await
    });
    let options = ConnectOptions {
        attempts: 20,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..ConnectOptions::default()
    };
    let mut stream = connect_with(&addr, &options).await.unwrap();
    stream.write_all(b"x").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"x");
    server.await.unwrap();
}

#[tokio::test]
async fn connect_gives_up_and_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let addr: Address = format!("unix:{}", dir.path().join("none.sock").display())
        .parse()
        .unwrap();
    let options = ConnectOptions {
        attempts: 3,
        initial_backoff: Duration::from_millis(5),
        ..ConnectOptions::default()
    };
    let err = connect_with(&addr, &options).await.unwrap_err();
    assert!(matches!(err, Error::Connect { attempts: 3, .. }));
    assert!(err.to_string().contains(&addr.to_string()));
}

#[tokio::test]
async fn unix_socket_mode_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctl.sock");
    let addr: Address = format!("unix:{}", path.display()).parse().unwrap();
    let _listener = Listener::bind_with(
        &addr,
        &BindOptions {
            unix_mode: Some(0o600),
        },
    )
    .await
    .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn stale_socket_is_replaced_live_one_and_plain_file_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let addr: Address = format!("unix:{}", path.display()).parse().unwrap();

    // A socket file whose listener is gone.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let live = Listener::bind(&addr).await.unwrap();

    // A second listener on the same live path is refused.
    let err = Listener::bind(&addr).await.unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    drop(live);

    // A regular file is never deleted.
    std::fs::write(&path, b"precious").unwrap();
    let err = Listener::bind(&addr).await.unwrap_err();
    assert!(matches!(err, Error::NotASocket { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let addr: Address = "unix:/nonexistent-dir/x.sock".parse().unwrap();
    let err = Listener::bind(&addr).await.unwrap_err();
    assert!(
        err.to_string().contains("unix:/nonexistent-dir/x.sock"),
        "{err}"
    );
}

#[tokio::test]
async fn many_concurrent_connections() {
    let listener = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().clone();
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (mut stream, _) = listener.accept().await.unwrap();
            tasks.push(tokio::spawn(async move {
                let mut buf = Vec::new();
                stream.read_to_end(&mut buf).await.unwrap();
                stream.write_all(&buf).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let mut clients = Vec::new();
    for i in 0..64u32 {
        let addr = addr.clone();
        clients.push(tokio::spawn(async move {
            let data = payload(10_000 + i as usize);
            assert_eq!(exchange(&addr, &data).await, data);
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    server.await.unwrap();
}

#[tokio::test]
async fn stream_exposes_its_socket_for_socket_options() {
    let listener = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().clone();
    let (client, accepted) = tokio::join!(connect(&addr), listener.accept());
    let client = client.unwrap();
    let (accepted, _) = accepted.unwrap();
    let server_local = socket2::SockRef::from(&accepted).local_addr().unwrap();
    let client_peer = socket2::SockRef::from(&client).peer_addr().unwrap();
    assert_eq!(
        server_local.as_socket().unwrap(),
        client_peer.as_socket().unwrap()
    );
    use std::os::fd::AsRawFd;
    assert!(accepted.as_raw_fd() >= 0);
}

#[tokio::test]
async fn readiness_and_try_io_drive_raw_system_calls() {
    use std::future::poll_fn;
    let dir = tempfile::tempdir().unwrap();
    let addr: Address = format!("unix:{}/r.sock", dir.path().display())
        .parse()
        .unwrap();
    let listener = Listener::bind(&addr).await.unwrap();
    let (client, accepted) = tokio::join!(connect(&addr), listener.accept());
    let mut client = client.unwrap();
    let (accepted, _) = accepted.unwrap();
    assert!(accepted.supports_readiness());
    // Nothing to read yet: the raw read says WouldBlock and try_io passes it on.
    let mut buf = [0u8; 8];
    let raw_read = |buf: &mut [u8]| {
        let sock = socket2::SockRef::from(&accepted);
        std::io::Read::read(&mut &*sock, buf)
    };
    let err = accepted
        .try_io(tokio::io::Interest::READABLE, || raw_read(&mut buf))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    client.write_all(b"ready").await.unwrap();
    poll_fn(|cx| accepted.poll_read_ready(cx)).await.unwrap();
    let n = accepted
        .try_io(tokio::io::Interest::READABLE, || raw_read(&mut buf))
        .unwrap();
    assert_eq!(&buf[..n], b"ready");
    poll_fn(|cx| accepted.poll_write_ready(cx)).await.unwrap();
}
