//! Helpers shared by the integration tests: payloads, servers, proxies.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::Duration;

use pf_proxy::{Limits, Mode, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use transport::{Address, Listener, Stream};

/// A payload whose bytes depend on their position and on `seed`.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 131 + i / 7919) as u8).wrapping_add(seed))
        .collect()
}

pub fn unix_addr(dir: &Path, name: &str) -> Address {
    format!("unix:{}", dir.join(name).display())
        .parse()
        .unwrap()
}

pub fn tcp_any() -> Address {
    "tcp:127.0.0.1:0".parse().unwrap()
}

/// Limits small enough for tests.
pub fn test_limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        header_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(5),
        ..Limits::default()
    }
}

/// A running in-process proxy.
pub struct RunningProxy {
    pub addr: Address,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), pf_proxy::proxy::ProxyError>>,
}

impl RunningProxy {
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Binds `listen` and runs a proxy of `mode` on it.
pub async fn start_proxy(listen: &Address, mode: Mode, limits: Limits) -> RunningProxy {
    let listener = Listener::bind(listen).await.unwrap();
    let addr = listener.local_addr().clone();
    let shutdown = CancellationToken::new();
    let config = ProxyConfig {
        listen: addr.clone(),
        mode,
        limits,
    };
    let task = tokio::spawn(pf_proxy::run_on(listener, config, shutdown.clone()));
    RunningProxy {
        addr,
        shutdown,
        task,
    }
}

/// A server that echoes each connection until EOF, then half-closes.
pub async fn echo_server(listen: &Address) -> (Address, JoinHandle<()>) {
    let listener = Listener::bind(listen).await.unwrap();
    let addr = listener.local_addr().clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(echo(stream));
        }
    });
    (addr, task)
}

pub async fn echo(stream: Stream) {
    let (mut rd, mut wr) = stream.into_split();
    let _ = tokio::io::copy(&mut rd, &mut wr).await;
    let _ = wr.shutdown().await;
}

/// Sends `data`, half-closes, and returns everything read until EOF.
pub async fn send_and_collect(stream: Stream, data: Vec<u8>) -> Vec<u8> {
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&data).await.unwrap();
        wr.shutdown().await.unwrap();
        wr
    });
    let mut got = Vec::new();
    rd.read_to_end(&mut got).await.unwrap();
    drop(writer.await.unwrap());
    got
}

/// Reads until EOF or error; returns what came and whether it ended with EOF.
pub async fn read_all_lenient(stream: &mut Stream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// Path of a binary of this package.
pub fn bin(name: &str) -> std::path::PathBuf {
    match name {
        "vsock-to-ip" => env!("CARGO_BIN_EXE_vsock-to-ip").into(),
        "ip-to-vsock" => env!("CARGO_BIN_EXE_ip-to-vsock").into(),
        "ip-to-vsock-transparent" => env!("CARGO_BIN_EXE_ip-to-vsock-transparent").into(),
        "vsock-to-ip-transparent" => env!("CARGO_BIN_EXE_vsock-to-ip-transparent").into(),
        "transparent-port-to-vsock" => env!("CARGO_BIN_EXE_transparent-port-to-vsock").into(),
        "dns-to-vsock" => env!("CARGO_BIN_EXE_dns-to-vsock").into(),
        "vsock-to-dns" => env!("CARGO_BIN_EXE_vsock-to-dns").into(),
        other => panic!("no binary {other}"),
    }
}

/// Waits until `path` exists (a Unix socket a child process binds).
pub async fn wait_for_path(path: &Path) {
    assert!(
        testkit::eventually_async(Duration::from_secs(20), || path.exists()).await,
        "{} never appeared",
        path.display()
    );
}
