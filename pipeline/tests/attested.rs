//! The attested, encrypted channel between real `pipeline` processes over
//! `unix:` sockets: handshake, key permissions, refusals, and a relay in
//! the middle that records or changes bytes (as a hostile host would).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{BIN, Server, stderr, stdout};

/// Keys, roots and the attested server.
struct Setup {
    dir: tempfile::TempDir,
    server: Server,
}

const MARKER: &str = "PLAINTEXT-MARKER-a5f1c0de-the-host-must-never-see-this";

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for sub in ["inbox", "outbox", "etc", "state"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("outbox/result.txt"), "result\n").unwrap();
        std::fs::write(root.join("etc/secret.txt"), "secret\n").unwrap();
        let mut authorized = String::from("# test keys\n");
        for (name, options) in [
            (
                "deploy",
                format!("exec,write={0}/inbox,read={0}/outbox", root.display()),
            ),
            ("limited", format!("write={0}/inbox", root.display())),
            ("stranger", String::new()),
        ] {
            let key = root.join(name);
            let out = std::process::Command::new(BIN)
                .args(["keygen", "--out"])
                .arg(&key)
                .args(["--comment", name])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            let public = std::fs::read_to_string(common_pub(&key)).unwrap();
            assert_eq!(stdout(&out).trim(), public.trim());
            if name != "stranger" {
                authorized.push_str(&format!("{options} {public}"));
            }
        }
        std::fs::write(root.join("authorized_keys"), authorized).unwrap();
        let server = Server::start(&[
            "--authorized-keys",
            root.join("authorized_keys").to_str().unwrap(),
            "--nsm",
            "development",
            "--state-dir",
            root.join("state").to_str().unwrap(),
        ]);
        Setup { dir, server }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    /// Channel flags for key `name`.
    fn flags(&self, name: &str) -> Vec<String> {
        let root = self.root();
        vec![
            "--key".into(),
            root.join(name).display().to_string(),
            "--expect-pcrs".into(),
            root.join("state/dev.eif.pcrs").display().to_string(),
            "--root".into(),
            root.join("state/dev-root.pem").display().to_string(),
        ]
    }

    /// `pipeline SUBCOMMAND <channel flags for key> ARGS...` against `addr`.
    fn run(&self, addr: &str, key: &str, subcommand: &str, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(BIN);
        cmd.env_remove("RUST_LOG")
            .arg(subcommand)
            .args(["--addr", addr])
            .args(self.flags(key))
            .args(args)
            .stdin(std::process::Stdio::null());
        cmd.output().unwrap()
    }

    fn client(&self, key: &str, subcommand: &str, args: &[&str]) -> std::process::Output {
        self.run(&self.server.addr, key, subcommand, args)
    }
}

fn common_pub(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

#[test]
fn a_deploy_key_copies_in_and_out_and_runs_commands() {
    let s = Setup::new();
    let root = s.root();
    let local = root.join("model.bin");
    std::fs::write(&local, format!("weights {MARKER}\n").repeat(1000)).unwrap();
    let dest = root.join("inbox/model.bin");
    let out = s.client(
        "deploy",
        "send-file",
        &[
            "--localpath",
            local.to_str().unwrap(),
            "--remotepath",
            dest.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}\n{}", stderr(&out), s.server.log());
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&local).unwrap()
    );

    let back = root.join("back.txt");
    let out = s.client(
        "deploy",
        "recv-file",
        &[
            "--remotepath",
            root.join("outbox/result.txt").to_str().unwrap(),
            "--localpath",
            back.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "result\n");

    let out = s.client("deploy", "run", &["--", "echo", "hello from the enclave"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from the enclave\n");
    let log = s.server.log();
    assert!(log.contains("client authenticated"), "{log}");
    assert!(log.contains("DEVELOPMENT NSM"), "{log}");
}

#[test]
fn permissions_refuse_exec_and_paths_outside_the_keys_roots() {
    let s = Setup::new();
    let root = s.root();
    let local = root.join("f.txt");
    std::fs::write(&local, "data\n").unwrap();

    let out = s.client("limited", "run", &["--", "true"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("execution is disabled"),
        "{}",
        stderr(&out)
    );

    let outside = root.join("etc/planted.txt");
    let out = s.client(
        "limited",
        "send-file",
        &[
            "--localpath",
            local.to_str().unwrap(),
            "--remotepath",
            outside.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("this client may write: "),
        "{}",
        stderr(&out)
    );
    assert!(!outside.exists());

    // The deploy key writes the inbox but reads only the outbox.
    let out = s.client(
        "deploy",
        "recv-file",
        &[
            "--remotepath",
            root.join("etc/secret.txt").to_str().unwrap(),
            "--localpath",
            root.join("stolen").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("this client may read: "),
        "{}",
        stderr(&out)
    );
    assert!(!root.join("stolen").exists());
    // And the limited key reads nothing at all.
    let out = s.client(
        "limited",
        "recv-file",
        &[
            "--remotepath",
            root.join("outbox/result.txt").to_str().unwrap(),
            "--localpath",
            root.join("x").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("may read: nowhere"),
        "{}",
        stderr(&out)
    );
    s.server.assert_process_alive();
}

#[test]
fn an_unauthorised_key_or_a_plaintext_client_is_refused() {
    let s = Setup::new();
    let out = s.client("stranger", "run", &["--", "true"]);
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refused this client key"),
        "{}",
        stderr(&out)
    );

    let out = s.server.client(["run", "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--key"), "{}", stderr(&out));
    let log = s.server.log();
    assert!(log.contains("not in the authorized keys"), "{log}");
    assert!(!log.contains("client authenticated"), "{log}");
}

#[test]
fn a_client_expecting_other_pcrs_sends_no_request() {
    let s = Setup::new();
    let root = s.root();
    let wrong = root.join("other.eif.pcrs");
    std::fs::write(&wrong, format!("{{\"PCR0\": \"{}\"}}", "ab".repeat(48))).unwrap();
    let local = root.join("f.txt");
    std::fs::write(&local, "data\n").unwrap();
    let mut cmd = std::process::Command::new(BIN);
    let flags = s.flags("deploy");
    let out = cmd
        .env_remove("RUST_LOG")
        .args(["send-file", "--addr", &s.server.addr])
        .args(&flags[..2])
        .args(["--expect-pcrs", wrong.to_str().unwrap()])
        .args(&flags[4..])
        .args([
            "--localpath",
            local.to_str().unwrap(),
            "--remotepath",
            root.join("inbox/f.txt").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(76), "{}", stderr(&out));
    assert!(stderr(&out).contains("FAIL pcrs"), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(200));
    let log = s.server.log();
    assert!(!log.contains("client authenticated"), "{log}");
    assert!(!log.contains("received"), "{log}");
    assert!(!root.join("inbox/f.txt").exists());
}

/// A relay on a Unix socket that forwards to `target`, recording what the
/// client sends; with `flip_at`, it flips one bit at that offset of the
/// client's bytes.
fn start_relay(dir: &Path, target: &Path, flip_at: Option<usize>) -> (String, Arc<Mutex<Vec<u8>>>) {
    let path = dir.join("relay.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let capture = Arc::new(Mutex::new(Vec::new()));
    let recorded = capture.clone();
    let target = target.to_owned();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let mut server = UnixStream::connect(&target).unwrap();
            let mut client_back = client.try_clone().unwrap();
            let mut server_back = server.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server_back, &mut client_back);
                let _ = client_back.shutdown(std::net::Shutdown::Write);
            });
            let recorded = recorded.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut offset = 0usize;
                loop {
                    let n = match client.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if let Some(at) = flip_at
                        && (offset..offset + n).contains(&at)
                    {
                        buf[at - offset] ^= 0x01;
                    }
                    recorded.lock().unwrap().extend_from_slice(&buf[..n]);
                    offset += n;
                    if server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = server.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (format!("unix:{}", path.display()), capture)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_relay_sees_no_plaintext_of_a_copied_file() {
    let s = Setup::new();
    let root = s.root();
    let local = root.join("secret-model.bin");
    std::fs::write(&local, format!("{MARKER}\n").repeat(5000)).unwrap();
    let relay_dir = tempfile::tempdir().unwrap();
    let (relay, capture) = start_relay(relay_dir.path(), &s.server.socket_path(), None);
    let dest = root.join("inbox/secret-model.bin");
    let out = s.run(
        &relay,
        "deploy",
        "send-file",
        &[
            "--localpath",
            local.to_str().unwrap(),
            "--remotepath",
            dest.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}\n{}", stderr(&out), s.server.log());
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&local).unwrap()
    );
    let captured = capture.lock().unwrap().clone();
    assert!(
        captured.len() > 5000 * MARKER.len(),
        "the relay saw the whole copy"
    );
    assert!(
        !contains(&captured, MARKER.as_bytes()),
        "the marker crossed the relay in plaintext"
    );
    assert!(
        !contains(&captured, b"secret-model"),
        "the file name crossed the relay in plaintext"
    );

    // The same relay in front of a plaintext server does see it: the check
    // above would catch a leak.
    let plain = Server::start(&[]);
    let plain_dir = tempfile::tempdir().unwrap();
    let (relay, capture) = start_relay(plain_dir.path(), &plain.socket_path(), None);
    let out = std::process::Command::new(BIN)
        .args([
            "send-file",
            "--addr",
            &relay,
            "--localpath",
            local.to_str().unwrap(),
        ])
        .args([
            "--remotepath",
            root.join("inbox/plain.bin").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(contains(&capture.lock().unwrap(), MARKER.as_bytes()));
}

#[test]
fn a_flipped_byte_ends_the_session_and_nothing_is_written() {
    let s = Setup::new();
    let root = s.root();
    let local = root.join("big.bin");
    common::write_pattern(&local, 4 << 20, 7);
    let relay_dir = tempfile::tempdir().unwrap();
    // Well past the handshake (136 bytes from the client), inside the file data.
    let (relay, _) = start_relay(relay_dir.path(), &s.server.socket_path(), Some(1 << 20));
    let dest = root.join("inbox/big.bin");
    let out = s.run(
        &relay,
        "deploy",
        "send-file",
        &[
            "--localpath",
            local.to_str().unwrap(),
            "--remotepath",
            dest.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "the copy must fail");
    std::thread::sleep(Duration::from_millis(500));
    let left: Vec<_> = std::fs::read_dir(root.join("inbox")).unwrap().collect();
    assert!(left.is_empty(), "left in the inbox: {left:?}");
    let log = s.server.log();
    assert!(log.contains("integrity check failed"), "{log}");
    s.server.assert_process_alive();
}

#[test]
fn plaintext_only_on_local_addresses_unless_insecure() {
    let out = std::process::Command::new(BIN)
        .args(["listen", "--addr", "tcp:0.0.0.0:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--insecure-plaintext"),
        "{}",
        stderr(&out)
    );
    let help = std::process::Command::new(BIN)
        .args(["listen", "--help"])
        .output()
        .unwrap();
    assert!(stdout(&help).contains("INSECURE"), "{}", stdout(&help));
    let keygen_twice = tempfile::tempdir().unwrap();
    let key = keygen_twice.path().join("k");
    for expect in [true, false] {
        let out = std::process::Command::new(BIN)
            .args(["keygen", "--out"])
            .arg(&key)
            .output()
            .unwrap();
        assert_eq!(out.status.success(), expect, "{}", stderr(&out));
    }
}
