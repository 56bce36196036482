#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Read-only control listeners: what the host reaches (vsock in an image;
//! TCP here, since tests never open AF_VSOCK) may look but not touch.

mod common;

use std::process::{Command, Output};

use common::{INITCTL, Init, sleeper};
use enclave_init::control::cmd::{Request, Response};
use enclave_init::defs::SERVICE_SUFFIX;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use transport::Address;

/// The TCP address init logged for a listener with `access`.
fn listener(init: &Init, access: &str) -> String {
    let log = init.stderr();
    log.lines()
        .find_map(|l| {
            let rest = l.split("control socket listening on ").nth(1)?;
            let (addr, level) = rest.split_once(' ')?;
            (addr.starts_with("tcp:") && level.contains(&format!("({access} access)")))
                .then(|| addr.to_owned())
        })
        .unwrap_or_else(|| panic!("no {access} tcp listener in:\n{log}"))
}

fn ctl(addr: &str, args: &[&str]) -> Output {
    Command::new(INITCTL)
        .arg("--address")
        .arg(addr)
        .args(args)
        .env_remove("INITCTL_CONFIG")
        .env_remove("INIT_SOCKET")
        .output()
        .unwrap()
}

fn start() -> Init {
    let init = Init::prepare("");
    let yaml = format!(
        "service_dir: {}\nlog_dir: {}\nstop_timeout_sec: 2\ncontrol:\n  unix_socket_path: {}\n  listen:\n    - \"tcp:127.0.0.1:0\"\n    - {{address: \"tcp:127.0.0.1:0\", access: full}}\n",
        init.service_dir().display(),
        init.log_dir().display(),
        init.socket().display(),
    );
    std::fs::write(init.dir.path().join("init.yaml"), yaml).unwrap();
    init.service("web.service", &sleeper("Restart = \"no\""));
    init.service("spare.service.disabled", &sleeper(""));
    init.start()
}

#[test]
fn a_read_only_listener_answers_reads_and_refuses_every_change() {
    let init = start();
    let ro = listener(&init, "read-only");
    let pid = init.wait_state("web", "running").pid;

    for args in [
        &["ping"][..],
        &["list"],
        &["status", "web"],
        &["logs", "web"],
        &["system-status"],
    ] {
        let out = ctl(&ro, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        String::from_utf8_lossy(&ctl(&ro, &["list"]).stdout).contains("web "),
        "list shows the services"
    );

    for args in [
        &["stop", "web"][..],
        &["start", "spare"],
        &["restart", "web"],
        &["disable", "web"],
        &["disable", "--now", "web"],
        &["enable", "--now", "spare"],
        &["logs-clear", "web"],
        &["reload"],
        &["reboot"],
        &["shutdown"],
    ] {
        let out = ctl(&ro, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(77), "{args:?}: {stderr}");
        assert!(
            stderr.contains("✗ refused: ") && stderr.contains("read-only"),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // --json says so too.
    let out = ctl(&ro, &["--json", "stop", "web"]);
    assert_eq!(out.status.code(), Some(77));
    let response: Response = serde_json::from_slice(&out.stdout).unwrap();
    assert!(matches!(response, Response::Refused { .. }), "{response:?}");

    // Nothing changed: same process, still enabled, nothing started, init up.
    let web = init.status("web");
    assert_eq!(
        (web.state.as_str(), web.pid, web.enabled),
        ("running", pid, true)
    );
    assert!(
        init.service_dir()
            .join(format!("web{SERVICE_SUFFIX}"))
            .exists()
    );
    assert_eq!(init.status("spare").state, "inactive");
    assert!(!init.status("spare").enabled);
    init.ctl_ok(&["ping"]);
    assert!(
        init.stderr()
            .contains("control request ServiceStop refused")
    );

    // A listener configured with full access, and the Unix socket, may.
    let full = listener(&init, "full");
    let out = ctl(&full, &["stop", "web"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    init.wait_state("web", "inactive");
    init.ctl_ok(&["start", "web"]);
    init.wait_state("web", "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_keeps_the_connection_usable() {
    let init = tokio::task::spawn_blocking(start).await.unwrap();
    let addr: Address = listener(&init, "read-only").parse().unwrap();
    let mut stream = transport::connect(&addr).await.unwrap();
    for (request, refused) in [
        (Request::SystemShutdown, true),
        (Request::Ping, false),
        (Request::ServiceStop { name: "web".into() }, true),
        (Request::ListServices, false),
    ] {
        let payload = serde_json::to_vec(&request).unwrap();
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        stream.write_all(&frame).await.unwrap();
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).await.unwrap();
        let response: Response = serde_json::from_slice(&body).unwrap();
        match response {
            Response::Refused { message } => {
                assert!(refused, "{request:?} refused: {message}");
                assert!(message.contains(request.tag()), "{message}");
            }
            other => assert!(!refused, "{request:?} answered {other:?}"),
        }
    }
    drop(init);
}
