#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The attested control channel (`control.attested`): on a listener the
//! host reaches (TCP here, vsock in an image), a client whose key may
//! `manage` changes services after checking init's attestation; every other
//! client stays read-only, and the host relaying the bytes reads nothing
//! and changes nothing. Init's key is attested by the development NSM
//! (tests run outside an enclave).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attested_channel::StaticKey;
use common::{INITCTL, Init, sleeper};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Keys {
    admin: PathBuf,
    viewer: PathBuf,
    stranger: PathBuf,
}

/// Init with a Unix socket and one read-only TCP listener that accepts the
/// attested channel for `admin` (manage) and `viewer` (no permissions).
fn start() -> (Init, Keys) {
    let init = Init::prepare("");
    let dir = init.dir.path();
    let key = |name: &str| {
        let path = dir.join(name);
        StaticKey::generate_files(&path, name).unwrap();
        path
    };
    let keys = Keys {
        admin: key("admin"),
        viewer: key("viewer"),
        stranger: key("stranger"),
    };
    let public =
        |path: &Path| std::fs::read_to_string(attested_channel::keys::pub_path(path)).unwrap();
    std::fs::write(
        dir.join("authorized_keys"),
        format!(
            "# who may manage init\nmanage {}{}",
            public(&keys.admin),
            public(&keys.viewer)
        ),
    )
    .unwrap();
    let yaml = format!(
        "service_dir: {}\nlog_dir: {}\nstop_timeout_sec: 2\ncontrol:\n  unix_socket_path: {}\n  listen: [\"tcp:127.0.0.1:0\"]\n  attested:\n    authorized_keys: {}\n    nsm: development\n    state_dir: {}\n",
        init.service_dir().display(),
        init.log_dir().display(),
        init.socket().display(),
        dir.join("authorized_keys").display(),
        dir.join("state").display(),
    );
    std::fs::write(dir.join("init.yaml"), yaml).unwrap();
    init.service("web.service", &sleeper("Restart = \"no\""));
    (init.start(), keys)
}

/// The TCP control listener init logged (it may log it after the Unix
/// socket answers).
fn listener(init: &Init) -> String {
    let find = || {
        init.stderr().lines().find_map(|l| {
            let rest = l.split("control socket listening on ").nth(1)?;
            let (addr, rest) = rest.split_once(' ')?;
            (addr.starts_with("tcp:") && rest.contains("over the attested channel"))
                .then(|| addr.to_owned())
        })
    };
    init.wait_for("the attested tcp listener", Duration::from_secs(20), || {
        find().is_some()
    });
    find().unwrap()
}

fn state(init: &Init, file: &str) -> PathBuf {
    init.dir.path().join("state").join(file)
}

/// initctl at `addr` with `key` (the development root pinned), or plaintext.
fn ctl(init: &Init, addr: &str, key: Option<&Path>, args: &[&str]) -> Output {
    ctl_expecting(init, addr, key, &state(init, "dev.eif.pcrs"), args)
}

fn ctl_expecting(
    init: &Init,
    addr: &str,
    key: Option<&Path>,
    pcrs: &Path,
    args: &[&str],
) -> Output {
    let mut cmd = Command::new(INITCTL);
    cmd.arg("--address").arg(addr);
    if let Some(key) = key {
        cmd.arg("--key")
            .arg(key)
            .arg("--expect-pcrs")
            .arg(pcrs)
            .arg("--root")
            .arg(state(init, "dev-root.pem"));
    }
    cmd.args(args)
        .env_remove("INITCTL_CONFIG")
        .env_remove("INIT_SOCKET")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_key_allowed_to_manage_changes_services_and_no_other_client_can() {
    let (init, keys) = start();
    let addr = listener(&init);
    let pid = init.wait_state("web", "running").pid;

    // Plaintext on the same listener: reads yes, changes no.
    assert!(ctl(&init, &addr, None, &["list"]).status.success());
    let out = ctl(&init, &addr, None, &["stop", "web"]);
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert!(stderr(&out).contains("read-only"), "{}", stderr(&out));

    // An authorised key without `manage`: attested, still read-only.
    let out = ctl(&init, &addr, Some(&keys.viewer), &["status", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ctl(&init, &addr, Some(&keys.viewer), &["stop", "web"]);
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert!(stderr(&out).contains("read-only"), "{}", stderr(&out));

    // A key init does not know: refused in the handshake.
    let out = ctl(&init, &addr, Some(&keys.stranger), &["list"]);
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));

    // A client expecting other PCRs stops after the handshake: nothing sent.
    let other = init.dir.path().join("other.eif.pcrs");
    let text = std::fs::read_to_string(state(&init, "dev.eif.pcrs")).unwrap();
    let (head, tail) = text.split_once("\"PCR0\": \"").unwrap();
    let flipped = if tail.starts_with('0') { "1" } else { "0" };
    std::fs::write(&other, format!("{head}\"PCR0\": \"{flipped}{}", &tail[1..])).unwrap();
    let out = ctl_expecting(&init, &addr, Some(&keys.admin), &other, &["stop", "web"]);
    assert_eq!(out.status.code(), Some(76), "{}", stderr(&out));
    assert!(stderr(&out).contains("PCR0"), "{}", stderr(&out));

    // Nothing above changed anything.
    let web = init.status("web");
    assert_eq!((web.state.as_str(), web.pid), ("running", pid));

    // The managing key may.
    let out = ctl(&init, &addr, Some(&keys.admin), &["stop", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    init.wait_state("web", "inactive");
    let out = ctl(&init, &addr, Some(&keys.admin), &["start", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    init.wait_state("web", "running");
    let out = ctl(&init, &addr, Some(&keys.admin), &["ping", "--count", "20"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = init.stderr();
    assert!(
        log.contains("control client authenticated over the attested channel")
            && log.contains("comment=admin")
            && log.contains("access=full"),
        "{log}"
    );
}

/// A relay between initctl and init, as the host runs it: records what the
/// client sends and, with `flip_first_record`, flips a bit in the first
/// record after the handshake (magic, message 1, message 3, then records,
/// each message and record with a 2-byte length).
async fn relay(target: String, flip_first_record: bool) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("tcp:{}", listener.local_addr().unwrap());
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let seen = recorded.clone();
    let upstream = target.trim_start_matches("tcp:").to_owned();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut all: Vec<u8> = Vec::new();
                let mut flipped = !flip_first_record;
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let start = all.len();
                    all.extend_from_slice(&buf[..n]);
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                    if !flipped
                        && let Some(at) = first_record_byte(&all)
                        && at >= start
                    {
                        buf[at - start] ^= 0x01;
                        flipped = true;
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
        }
    });
    (addr, recorded)
}

/// The offset of the last byte of the first record after the handshake,
/// once the stream holds it.
fn first_record_byte(stream: &[u8]) -> Option<usize> {
    let mut at = 4;
    for _ in 0..3 {
        let len = usize::from(u16::from_be_bytes([*stream.get(at)?, *stream.get(at + 1)?]));
        at += 2 + len;
    }
    (at <= stream.len()).then(|| at - 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_relaying_the_channel_reads_nothing_and_changes_nothing() {
    let (init, keys) = tokio::task::spawn_blocking(start).await.unwrap();
    let addr = listener(&init);
    let pid = init.wait_state("web", "running").pid;

    // Recorded: the request is there, but not in plaintext.
    let (relayed, recorded) = relay(addr.clone(), false).await;
    let out = {
        let (init_dir, admin) = (&init, keys.admin.clone());
        tokio::task::block_in_place(|| ctl(init_dir, &relayed, Some(&admin), &["restart", "web"]))
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = recorded.lock().unwrap().clone();
    assert!(seen.len() > 100, "the relay saw the session");
    for plain in [&b"ServiceRestart"[..], b"web"] {
        assert!(
            !seen.windows(plain.len()).any(|w| w == plain),
            "{} in clear on the wire",
            String::from_utf8_lossy(plain)
        );
    }
    let restarted = init.wait_state("web", "running").pid;
    assert_ne!(restarted, pid, "restart went through the relay");

    // One flipped bit in the request: the session fails, nothing happens.
    let (tampering, _) = relay(addr.clone(), true).await;
    let out = {
        let admin = keys.admin.clone();
        tokio::task::block_in_place(|| ctl(&init, &tampering, Some(&admin), &["stop", "web"]))
    };
    assert!(!out.status.success(), "a tampered request was answered");
    let web = init.status("web");
    assert_eq!((web.state.as_str(), web.pid), ("running", restarted));
    init.ctl_ok(&["ping"]);
}
