//! The binaries as an operator runs them: flags, exit codes, logs, SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use pf_proxy::dns_wire::{self, TYPE_A};
use tokio::net::UdpSocket;
use tokio::time::timeout;
use transport::connect;

const BOUND: Duration = Duration::from_secs(30);

fn run(name: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin(name)).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), text)
}

fn spawn(name: &str, args: &[&str]) -> Child {
    Command::new(bin(name))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGTERM, then the exit status and the log.
fn terminate(child: Child) -> (bool, String) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_usage_and_bad_configuration_exit_64_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "allow: everything\n").unwrap();
    let policy = policy.display().to_string();
    for (name, args, needle) in [
        ("vsock-to-ip", vec![], "--vsock-addr"),
        (
            "ip-to-vsock",
            vec!["-i", "1.2.3.4:80", "-v", "3"],
            "CID:PORT",
        ),
        (
            "vsock-to-ip",
            vec!["-v", "3:80", "-i", "nohost"],
            "HOST:PORT",
        ),
        (
            "ip-to-vsock-transparent",
            vec![
                "-i",
                "127.0.0.1:8888",
                "-v",
                "3:8888",
                "--max-connections",
                "0",
            ],
            "max-connections",
        ),
        (
            "vsock-to-ip-transparent",
            vec!["-v", "any:8888"],
            "--policy",
        ),
        (
            "vsock-to-ip-transparent",
            vec!["-v", "any:8888", "--policy", &policy],
            "neither \"all\"",
        ),
        (
            "vsock-to-ip-transparent",
            vec!["-v", "any:8888", "--policy", "/nonexistent/p.yaml"],
            "cannot read policy",
        ),
        (
            "transparent-port-to-vsock",
            vec!["-i", "0.0.0.0:8000", "-v", "3:0", "--idle-timeout=-1"],
            "idle-timeout",
        ),
        ("dns-to-vsock", vec!["-i", "localhost:53"], "invalid"),
        ("vsock-to-dns", vec!["--resolver", "nowhere"], "invalid"),
    ] {
        let (code, text) = run(name, &args);
        assert_eq!(code, 64, "{name} {args:?}: {text}");
        assert!(text.contains(needle), "{name} {args:?}: {text}");
    }
    let (code, text) = run("vsock-to-ip-transparent", &["--help"]);
    assert_eq!(code, 0);
    assert!(text.contains("allow: all"), "{text}");
}

#[test]
fn a_listener_that_cannot_bind_exits_1_naming_the_address() {
    let (code, text) = run(
        "ip-to-vsock",
        &["-i", "unix:/nonexistent-dir/x.sock", "-v", "3:1"],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("unix:/nonexistent-dir/x.sock"), "{text}");
}

#[tokio::test]
async fn ip_to_vsock_and_vsock_to_ip_chain_and_stop_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (echo_addr, _echo) = echo_server(&tcp_any()).await;
    let mid = format!("unix:{}", dir.path().join("mid.vsock").display());
    let front = format!("unix:{}", dir.path().join("front.sock").display());
    let enclave = spawn("vsock-to-ip", &["-v", &mid, "-i", &echo_addr.to_string()]);
    let host = spawn("ip-to-vsock", &["-i", &front, "-v", &mid, "--threads", "1"]);
    wait_for_path(&dir.path().join("mid.vsock")).await;
    wait_for_path(&dir.path().join("front.sock")).await;
    let data = payload(4 << 20, 21);
    let stream = connect(&front.parse().unwrap()).await.unwrap();
    let got = timeout(BOUND, send_and_collect(stream, data.clone()))
        .await
        .unwrap();
    assert!(got == data);
    for child in [host, enclave] {
        let (clean, log) = terminate(child);
        assert!(clean, "{log}");
        assert!(log.contains("SIGTERM"), "{log}");
    }
}

#[tokio::test]
async fn dns_binaries_answer_through_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    // The resolver: answers every A query with 192.0.2.53.
    let resolver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let resolver_addr = resolver.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = resolver.recv_from(&mut buf).await {
            let reply =
                dns_wire::build_answer(&buf[..n], &[("192.0.2.53".parse().unwrap(), 60)]).unwrap();
            resolver.send_to(&reply, from).await.unwrap();
        }
    });
    // A free UDP port for the enclave side (bound and released).
    let port = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let vsock = format!("unix:{}", dir.path().join("dns.vsock").display());
    let host = spawn(
        "vsock-to-dns",
        &["-v", &vsock, "--resolver", &resolver_addr.to_string()],
    );
    wait_for_path(&dir.path().join("dns.vsock")).await;
    let enclave = spawn(
        "dns-to-vsock",
        &["-i", &listen.to_string(), "-v", &vsock, "--no-tcp"],
    );
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let query = dns_wire::build_query(77, "anything.test", TYPE_A).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut answer = None;
    // UDP is fire and forget: ask again until the forwarder is up.
    for _ in 0..100 {
        client.send_to(&query, listen).await.unwrap();
        if let Ok(Ok((n, _))) =
            timeout(Duration::from_millis(100), client.recv_from(&mut buf)).await
        {
            answer = Some(buf[..n].to_vec());
            break;
        }
    }
    let answer = answer.expect("no DNS answer");
    assert_eq!(
        dns_wire::parse_addresses(&answer, 77).unwrap().records,
        vec![("192.0.2.53".parse().unwrap(), 60)]
    );
    for child in [enclave, host] {
        let (clean, log) = terminate(child);
        assert!(clean, "{log}");
    }
}

#[test]
fn networking_scripts_are_shellcheck_clean() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut scripts: Vec<String> = std::fs::read_dir(format!("{root}/scripts"))
        .unwrap()
        .map(|entry| entry.unwrap().path().display().to_string())
        .filter(|path| path.ends_with(".sh"))
        .collect();
    let bench = format!("{root}/../bench/pf-proxy.sh");
    if std::path::Path::new(&bench).exists() {
        scripts.push(bench);
    }
    assert!(!scripts.is_empty());
    // From the repository's root with -x, as `tools/devtool lint` runs it:
    // the `# shellcheck source=` directives name paths from there.
    let out = Command::new("shellcheck")
        .current_dir(format!("{root}/.."))
        .arg("-x")
        .args(&scripts)
        .output()
        .expect("shellcheck is missing: apt-get install shellcheck (tools/devtool test does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for script in &scripts {
        let help = Command::new("bash")
            .arg(script)
            .arg("--help")
            .output()
            .unwrap();
        assert!(help.status.success(), "{script} --help failed");
    }
}
