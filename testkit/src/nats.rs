//! A real `nats-server -js` on a free loopback port with a temporary store.

use std::io::{self, Read};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the log is polled while waiting.
const READY_POLL: Duration = Duration::from_millis(20);
/// What nats-server logs once it accepts clients (JetStream included).
const READY_LINE: &str = "Server is ready";
/// Attempts at finding a free port (another process may take it between the
/// probe and nats-server's bind).
const PORT_ATTEMPTS: usize = 5;

/// A running `nats-server` with JetStream. Killed when dropped; its store
/// survives [`NatsServer::restart`] so tests can check persistence.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server with JetStream on a free `127.0.0.1` port.
    pub fn start() -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("nats-test-").tempdir()?;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            match spawn_ready(dir.path(), port) {
                Ok(child) => return Ok(Self { child, port, dir }),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("nats-server did not start")))
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The TCP port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Stops the server (SIGKILL: no chance to flush anything not yet
    /// synced) and starts it again on the same port with the same store.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.child = spawn_ready(self.dir.path(), self.port)?;
        Ok(())
    }

    /// Stops the server; the next client calls fail until [`Self::restart`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port the kernel just handed out on loopback, released for the server.
fn free_port() -> io::Result<u16> {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(probe.local_addr()?.port())
}

/// Starts nats-server in `dir` and waits until it logs that it is ready.
fn spawn_ready(dir: &Path, port: u16) -> io::Result<Child> {
    let log_path = dir.join(format!("nats-{port}.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut child = Command::new("nats-server")
        .args(["--jetstream", "--addr", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--store_dir")
        .arg(dir.join("store"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot start nats-server ({error}); `tools/devtool deps` installs it"),
            )
        })?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let mut text = String::new();
        std::fs::File::open(&log_path)?.read_to_string(&mut text)?;
        if text.contains(READY_LINE) && TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "nats-server exited ({status}) on port {port}: {}",
                text.trim()
            )));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "nats-server not ready on port {port} after {READY_TIMEOUT:?}: {}",
                text.trim()
            )));
        }
        std::thread::sleep(READY_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn starts_speaks_nats_and_restarts_on_the_same_port() {
        let mut server = NatsServer::start().unwrap();
        let info = |port| {
            let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).unwrap();
            line
        };
        let first = info(server.port());
        assert!(first.starts_with("INFO "), "{first}");
        assert!(first.contains("\"jetstream\":true"), "{first}");
        let port = server.port();
        server.restart().unwrap();
        assert_eq!(server.port(), port);
        assert!(info(port).starts_with("INFO "));
        server.kill();
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    }
}
