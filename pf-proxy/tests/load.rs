//! Thousands of connections open at once through the two real binaries,
//! with the proxies' memory bounded per connection.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use transport::connect;

/// Connections held open at once (fewer if the file-descriptor limit is too
/// low: each costs this process two descriptors and each proxy two).
const CONNECTIONS: usize = 5000;

/// Connections opened before their echo is awaited (below the backlog of 1024).
const BATCH: usize = 250;

/// Most memory a proxy may use per open connection (two 16 KiB buffers to
/// start with, the task, two sockets' bookkeeping), and its base.
const PER_CONNECTION: u64 = 64 * 1024;
const BASE: u64 = 48 << 20;

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_open_connections_with_bounded_memory() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // Raise the soft limit as far as allowed (the proxies inherit it).
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let _ = setrlimit(
        Resource::RLIMIT_NOFILE,
        hard.min(1 << 20),
        hard.min(1 << 20),
    );
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let connections = CONNECTIONS.min((soft as usize / 2).saturating_sub(100));
    assert!(
        connections >= 1000,
        "descriptor limit {soft} is too low for this test"
    );
    eprintln!("{connections} connections (descriptor limit {soft})");
    let dir = tempfile::tempdir().unwrap();
    let (echo_addr, _echo) = echo_server(&unix_addr(dir.path(), "echo.sock")).await;
    let mid = format!("unix:{}", dir.path().join("mid.vsock").display());
    let front = format!("unix:{}", dir.path().join("front.sock").display());
    let spawn = |name: &str, args: &[&str]| {
        Killed(
            Command::new(bin(name))
                .args(args)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let max = (connections + 10).to_string();
    let enclave = spawn(
        "vsock-to-ip",
        &[
            "-v",
            &mid,
            "-i",
            &echo_addr.to_string(),
            "--max-connections",
            &max,
        ],
    );
    let host = spawn(
        "ip-to-vsock",
        &["-i", &front, "-v", &mid, "--max-connections", &max],
    );
    wait_for_path(&dir.path().join("mid.vsock")).await;
    wait_for_path(&dir.path().join("front.sock")).await;

    let front = front.parse().unwrap();
    let mut open = Vec::with_capacity(connections);
    // In batches smaller than the listen backlog: a Unix socket refuses
    // (EAGAIN) connections beyond it, as a real accept queue would.
    for batch in (0..connections).collect::<Vec<_>>().chunks(BATCH) {
        let first = open.len();
        for &i in batch {
            let mut stream = connect(&front).await.unwrap();
            let data = payload(1024, i as u8);
            stream.write_all(&data).await.unwrap();
            open.push((stream, data));
        }
        for (stream, data) in &mut open[first..] {
            let mut got = vec![0u8; data.len()];
            timeout(Duration::from_secs(60), stream.read_exact(&mut got))
                .await
                .unwrap()
                .unwrap();
            assert!(got == *data);
        }
    }
    // Every connection is open end to end now.
    let bound = BASE + PER_CONNECTION * connections as u64;
    for (name, proc) in [("ip-to-vsock", &host), ("vsock-to-ip", &enclave)] {
        let rss = rss_bytes(proc.0.id());
        assert!(
            rss < bound,
            "{name} uses {} MiB for {connections} connections (bound {} MiB)",
            rss >> 20,
            bound >> 20
        );
        eprintln!(
            "{name}: {} MiB for {connections} open connections",
            rss >> 20
        );
    }
    drop(open);
}
