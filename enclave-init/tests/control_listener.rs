#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! A control listener that fails for good (here a real TCP listener shut
//! down under the server, on which accept() returns EINVAL for ever) ends
//! its control server with one error in the log, instead of a loop that
//! logs ten times a second for as long as init runs.

use std::io::Write;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enclave_init::config::Config;
use enclave_init::control::access::Access;
use enclave_init::control::server;
use enclave_init::supervisor::{Context, Supervisor};
use nix::sys::socket::{Shutdown, SockaddrIn, getsockname, shutdown};
use tokio_util::sync::CancellationToken;
use transport::{Address, Listener};

/// Everything logged, to count the lines.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The descriptor of this process's socket bound to 127.0.0.1:`port`.
fn socket_bound_to(port: u16) -> RawFd {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .find(|&fd| getsockname::<SockaddrIn>(fd).is_ok_and(|addr| addr.port() == port))
        .expect("the listener's descriptor")
}

#[tokio::test]
async fn a_listener_that_fails_for_good_ends_its_server_after_one_error() {
    let log = Log::default();
    let writer = log.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    )
    .unwrap();

    let listener = Listener::bind(&"tcp:127.0.0.1:0".parse::<Address>().unwrap())
        .await
        .unwrap();
    let Address::Tcp { port, .. } = listener.local_addr().clone() else {
        panic!("a TCP listener")
    };
    let fd = socket_bound_to(port);
    let (_supervisor, handle) = Supervisor::new(Arc::new(Config::default()), Context::default());
    let cancel = CancellationToken::new();
    let server = tokio::spawn(server::serve(
        listener,
        Access::Full,
        None,
        handle,
        cancel.clone(),
    ));
    // Let the server wait in accept(), then break its socket: from now on
    // accept() fails with EINVAL, whatever the server does.
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown(fd, Shutdown::Both).unwrap();

    let ended = tokio::time::timeout(Duration::from_secs(3), server).await;
    cancel.cancel();
    let text = log.text();
    assert!(
        ended.is_ok(),
        "the control server still runs 3 s after its listener broke:\n{text}"
    );
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(
        errors[0].contains(&format!("tcp:127.0.0.1:{port}")),
        "{text}"
    );
    assert!(errors[0].contains("Invalid argument"), "{text}");
}
