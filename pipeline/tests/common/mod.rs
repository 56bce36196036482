//! Shared helpers of the integration tests: a real `pipeline listen` process
//! on a temporary Unix socket (or loopback TCP port), and the client binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_pipeline");

/// A running `pipeline listen`, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

/// Which kind of socket the server listens on.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Unix,
    Tcp,
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        Server::start_on(Kind::Unix, extra)
    }

    pub fn start_on(kind: Kind, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let addr = match kind {
            Kind::Unix => format!("unix:{}", dir.path().join("pipeline.sock").display()),
            Kind::Tcp => format!("tcp:127.0.0.1:{}", free_tcp_port()),
        };
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(BIN)
            .args(["listen", "--addr", &addr])
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server { child, addr, dir };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let ok = match self.addr.strip_prefix("unix:") {
                Some(path) => std::os::unix::net::UnixStream::connect(path).is_ok(),
                None => std::net::TcpStream::connect(self.addr.trim_start_matches("tcp:")).is_ok(),
            };
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not start:\n{}", self.log());
    }

    pub fn socket_path(&self) -> PathBuf {
        PathBuf::from(self.addr.strip_prefix("unix:").expect("a unix server"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server process is still running (has not crashed).
    pub fn assert_process_alive(&self) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        assert!(
            status.contains("State:") && !status.contains("zombie"),
            "the server died:\n{}",
            self.log()
        );
    }

    /// The server is alive and answers a request.
    pub fn assert_serving(&self) {
        let out = self.client(["run", "--", "true"]);
        assert!(
            out.status.success(),
            "server stopped serving: {}\n{}",
            stderr(&out),
            self.log()
        );
    }

    /// A client command against this server.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env("PIPELINE_ADDR", &self.addr).env_remove("RUST_LOG");
        cmd
    }

    pub fn client<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// A client command that must succeed; shows both sides' logs if not.
    pub fn client_ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.client(args);
        assert!(
            out.status.success(),
            "client failed: {}\nserver log:\n{}",
            stderr(&out),
            self.log()
        );
        out
    }

    pub fn client_with_stdin<I, S>(&self, args: I, input: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        out
    }

    /// Starts `pipeline run -- sh -c SCRIPT` with its stdout piped, to read
    /// while the command runs.
    pub fn spawn_script(&self, script: &str) -> Child {
        self.cmd()
            .args(["run", "--", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Peak resident memory of the server so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `len` bytes of a deterministic, non-repeating pattern.
pub fn write_pattern(path: &Path, len: u64, seed: u64) {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut left = len;
    let mut block = vec![0u8; 1 << 16];
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    file.flush().unwrap();
}

/// BLAKE3 of a file, streamed.
pub fn digest_file(path: &Path) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    let mut file = std::fs::File::open(path).unwrap();
    std::io::copy(&mut file, &mut hasher).unwrap();
    *hasher.finalize().as_bytes()
}

/// A listing of a tree: path, kind, mode, mtime, size, link target, content digest.
pub fn snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = if rel.as_os_str().is_empty() {
            root.to_owned()
        } else {
            root.join(&rel)
        };
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let detail = if ft.is_symlink() {
            format!("link -> {}", std::fs::read_link(&path).unwrap().display())
        } else if ft.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for name in names {
                stack.push(rel.join(name));
            }
            "dir".to_owned()
        } else {
            format!("file {} {:02x?}", meta.len(), &digest_file(&path)[..6])
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            meta.mode() & 0o7777
        };
        out.push(format!(
            "{} {detail} mode={mode:o} mtime={}.{}",
            rel.display(),
            meta.mtime(),
            meta.mtime_nsec()
        ));
    }
    out.sort();
    out
}

/// Entries in `dir` whose name marks a temporary copy.
pub fn temp_leftovers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".pipeline-tmp-") {
                found.push(entry.path().display().to_string());
            }
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(entry.path());
            }
        }
    }
    found
}

/// A stand-in for vhost-device-vsock: accepts host connections on
/// `vm_socket`, answers `CONNECT <port>` with `OK`, and relays the stream to
/// the guest's listener at `guest` (a Unix socket). Like the real one, a
/// half-close from the host tears the whole connection down, dropping what
/// is in flight. Returns how many connections it relayed, once `vm_socket`
/// is removed.
pub fn fake_vmm(
    vm_socket: &Path,
    expect_port: u32,
    guest: PathBuf,
) -> std::thread::JoinHandle<usize> {
    use std::io::Read;
    use std::os::unix::net::{UnixListener, UnixStream};
    let listener = UnixListener::bind(vm_socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    let vm_socket = vm_socket.to_owned();
    std::thread::spawn(move || {
        let mut relayed = 0;
        while vm_socket.exists() {
            let mut host = match listener.accept() {
                Ok((host, _)) => host,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            host.set_nonblocking(false).unwrap();
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while host.read_exact(&mut byte).is_ok() && byte[0] != b'\n' && line.len() < 32 {
                line.push(byte[0]);
            }
            assert_eq!(
                String::from_utf8_lossy(&line),
                format!("CONNECT {expect_port}")
            );
            let guest_stream = UnixStream::connect(&guest).unwrap();
            host.write_all(b"OK 1073741824\n").unwrap();
            relayed += 1;
            let (mut host_rd, mut guest_wr) =
                (host.try_clone().unwrap(), guest_stream.try_clone().unwrap());
            let (mut guest_rd, mut host_wr) = (guest_stream, host);
            let up = std::thread::spawn(move || {
                // Host -> guest. An EOF from the host (a half-close) kills
                // the connection both ways, as vhost-device-vsock does. A
                // failed write (the guest closed) only ends this direction:
                // what the guest sent before closing still reaches the host.
                if std::io::copy(&mut host_rd, &mut guest_wr).is_ok() {
                    let _ = guest_wr.shutdown(std::net::Shutdown::Both);
                    let _ = host_rd.shutdown(std::net::Shutdown::Both);
                }
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut guest_rd, &mut host_wr);
                let _ = host_wr.shutdown(std::net::Shutdown::Write);
                let _ = up.join();
            });
        }
        relayed
    })
}
