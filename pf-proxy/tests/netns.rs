//! Transparent egress and ingress end to end with real iptables rules, in
//! network namespaces this test creates (needs root; skipped with a message
//! only where the kernel refuses network namespaces).
//!
//! Egress: a client in the "enclave" namespace connects to an outside
//! address; `scripts/enclave-net.sh up` redirects it to
//! `ip-to-vsock-transparent`, which sends it over a Unix socket (the vsock
//! stand-in) to `vsock-to-ip-transparent` in the "host" namespace, which
//! connects to the server on the original destination if the policy allows.
//!
//! Ingress: `scripts/host-net.sh up 443` redirects connections to port 443
//! to `transparent-port-to-vsock`, which forwards them to the enclave's
//! port 443 (here the Unix socket `enclave_443`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use tokio::time::timeout;
use transport::Stream;

const BOUND: Duration = Duration::from_secs(30);

/// A network namespace, deleted on drop (also when the test fails).
struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace; `None` (after saying why) when the kernel refuses.
    fn create(tag: &str) -> Option<Self> {
        let name = format!("pfx-{tag}-{}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("`ip` is missing: install iproute2 (tools/devtool test does)");
        if !out.status.success() {
            eprintln!(
                "SKIPPED: the kernel refuses network namespaces here (ip netns add: {})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        let ns = Self { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs a command in the namespace; panics with its output when it fails.
    fn run(&self, args: &[&str]) {
        let out = self.command(args[0]).args(&args[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `f` on a thread that joined the namespace: sockets it creates
    /// belong to the namespace for good.
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = PathBuf::from("/run/netns").join(&self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    /// A TCP connection from inside the namespace, retried while the
    /// proxy there is starting.
    async fn connect(&self, dst: SocketAddr) -> std::io::Result<Stream> {
        let mut last = None;
        for _ in 0..400 {
            match self.enter(move || std::net::TcpStream::connect_timeout(&dst, BOUND)) {
                Ok(stream) => {
                    stream.set_nonblocking(true)?;
                    let stream = tokio::net::TcpStream::from_std(stream)?;
                    return Ok(Stream::from_tcp(stream));
                }
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                    last = Some(err);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap())
    }

    /// A TCP echo server bound inside the namespace.
    fn echo_server(&self, addr: SocketAddr) {
        let listener = self.enter(move || std::net::TcpListener::bind(addr).unwrap());
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(echo(Stream::from_tcp(stream)));
            }
        });
    }

    /// Starts a binary of this package in the namespace, logging to `log`.
    fn spawn(&self, name: &str, args: &[&str], log: &Path) -> Proc {
        let child = self
            .command(bin(name))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(File::create(log).unwrap())
            .spawn()
            .unwrap();
        Proc {
            child: Some(child),
            log: log.to_owned(),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A proxy process, stopped on drop.
struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// SIGTERM, wait, and return whether it exited cleanly and its log.
    fn stop(mut self) -> (bool, String) {
        let mut child = self.child.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let status = child.wait().unwrap();
        (
            status.success(),
            std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn script(name: &str) -> String {
    format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_egress_through_iptables() {
    let Some(enclave) = Netns::create("enclave") else {
        return;
    };
    let Some(host) = Netns::create("host") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();

    // The outside world: servers on documentation addresses, in the host namespace.
    host.run(&["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"]);
    host.run(&["ip", "addr", "add", "192.0.2.11/32", "dev", "lo"]);
    host.run(&[
        "ip",
        "-6",
        "addr",
        "add",
        "2001:db8::10/128",
        "dev",
        "lo",
        "nodad",
    ]);
    for server in ["192.0.2.10:80", "192.0.2.11:80", "[2001:db8::10]:80"] {
        host.echo_server(server.parse().unwrap());
    }
    std::fs::write(
        path("policy.yaml"),
        "allow:\n  - cidr: 192.0.2.10/32\n    ports: [80]\n  - cidr: 2001:db8::/64\n    ports: [80]\n",
    )
    .unwrap();
    let egress = format!("unix:{}", path("egress.vsock"));
    let host_proxy = host.spawn(
        "vsock-to-ip-transparent",
        &["-v", &egress, "--policy", &path("policy.yaml")],
        &dir.path().join("host.log"),
    );
    wait_for_path(&dir.path().join("egress.vsock")).await;

    // The enclave: rules from the script, one proxy per address family.
    enclave.run(&[&script("enclave-net.sh"), "up"]);
    let enclave_v4 = enclave.spawn(
        "ip-to-vsock-transparent",
        &["-i", "127.0.0.1:8888", "-v", &egress],
        &dir.path().join("enclave4.log"),
    );
    let enclave_v6 = enclave.spawn(
        "ip-to-vsock-transparent",
        &["-i", "[::1]:8888", "-v", &egress],
        &dir.path().join("enclave6.log"),
    );

    // Allowed, IPv4 and IPv6: byte-exact through both proxies, half-close included.
    for (dst, len) in [("192.0.2.10:80", 4 << 20), ("[2001:db8::10]:80", 1 << 20)] {
        let data = payload(len, 11);
        let client = enclave.connect(dst.parse().unwrap()).await.unwrap();
        let got = timeout(BOUND, send_and_collect(client, data.clone()))
            .await
            .unwrap();
        assert!(got == data, "{dst}: echo differs");
    }

    // Denied: another address, another port. The connection is redirected
    // (so it connects), then closed without a byte.
    for dst in ["192.0.2.11:80", "192.0.2.10:81"] {
        let mut client = enclave.connect(dst.parse().unwrap()).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut client, b"let me out")
            .await
            .unwrap();
        let (got, _) = timeout(BOUND, read_all_lenient(&mut client)).await.unwrap();
        assert!(got.is_empty(), "{dst} was let through");
    }

    enclave.run(&[&script("enclave-net.sh"), "down"]);
    for proc in [enclave_v4, enclave_v6] {
        let (clean, log) = proc.stop();
        assert!(clean, "enclave proxy did not exit cleanly:\n{log}");
    }
    let (clean, log) = host_proxy.stop();
    assert!(clean, "host proxy did not exit cleanly:\n{log}");
    for denied in ["192.0.2.11:80", "192.0.2.10:81"] {
        assert!(
            log.lines()
                .any(|line| line.contains("denied") && line.contains(denied)),
            "no denial of {denied} in the log:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_ingress_keeps_the_port() {
    let Some(host) = Netns::create("ingress") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    host.run(&["ip", "addr", "add", "192.0.2.20/32", "dev", "lo"]);
    // The enclave's service on port 443, as transparent-port-to-vsock reaches it.
    let (_, _echo) = echo_server(&unix_addr(dir.path(), "enclave_443")).await;
    let enclave = format!("unix:{}", dir.path().join("enclave").display());
    let proxy = host.spawn(
        "transparent-port-to-vsock",
        &["-i", "0.0.0.0:8000", "-v", &enclave],
        &dir.path().join("ingress.log"),
    );
    host.run(&[&script("host-net.sh"), "up", "443"]);

    let data = payload(2 << 20, 12);
    let client = host
        .connect("192.0.2.20:443".parse().unwrap())
        .await
        .unwrap();
    let got = timeout(BOUND, send_and_collect(client, data.clone()))
        .await
        .unwrap();
    assert!(got == data, "echo through port 443 differs");
    // A port that is not published is not redirected.
    let err = host
        .enter(|| std::net::TcpStream::connect("192.0.2.20:444"))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    host.run(&[&script("host-net.sh"), "down"]);
    let err = host
        .enter(|| std::net::TcpStream::connect("192.0.2.20:443"))
        .unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "rules left behind"
    );
    let (clean, log) = proxy.stop();
    assert!(clean, "ingress proxy did not exit cleanly:\n{log}");
}
