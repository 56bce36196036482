//! Shared helpers: a real nats-server, the monitor running on temp trees,
//! and reading the bucket back.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bus::async_nats::jetstream::kv::Store;
use fs_monitor::{Config, Stats};
use testkit::NatsServer;
use tokio_util::sync::CancellationToken;

/// How long a test waits for the bucket to reach the expected state.
pub const SETTLE: Duration = Duration::from_secs(30);

pub struct Harness {
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub stats: Arc<Stats>,
    pub store: Store,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    /// A temp tree with `root/` inside (canonical), and a nats-server.
    pub async fn new() -> Self {
        let nats = NatsServer::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join("root");
        std::fs::create_dir(&root).unwrap();
        let js = bus::connect(&nats.url()).await.unwrap();
        let store = bus::open_bucket(&js, bus::FS_HASHES).await.unwrap();
        Self {
            nats,
            dir,
            root,
            stats: Arc::new(Stats::default()),
            store,
            shutdown: CancellationToken::new(),
            task: None,
        }
    }

    /// A directory next to the root (outside the watched tree).
    pub fn outside(&self) -> PathBuf {
        let path = self.root.parent().unwrap().join("outside");
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// Starts the monitor on the root and waits for its first scan.
    pub async fn start(&mut self, ignore_file: Option<&Path>) {
        let config = Config::new(
            std::slice::from_ref(&self.root),
            ignore_file,
            &self.nats.url(),
            bus::FS_HASHES,
        )
        .unwrap();
        let stats = Arc::clone(&self.stats);
        let shutdown = self.shutdown.clone();
        self.task = Some(tokio::spawn(async move {
            fs_monitor::run(config, stats, shutdown).await.unwrap();
        }));
        let deadline = Instant::now() + SETTLE;
        while !self.stats.scanned.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the first scan did not finish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the monitor.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Everything in the bucket: path -> hex value.
    pub async fn bucket(&self) -> BTreeMap<PathBuf, String> {
        bucket(&self.store).await
    }

    /// Waits until the bucket's keys under the root equal what is on disk
    /// (files not in `except` patterns), and returns that map.
    pub async fn settle(&self, expected: &BTreeMap<PathBuf, String>) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let now: BTreeMap<_, _> = self
                .bucket()
                .await
                .into_iter()
                .filter(|(path, _)| path.starts_with(&self.root))
                .collect();
            if &now == expected {
                return;
            }
            if Instant::now() > deadline {
                let missing: Vec<_> = expected
                    .keys()
                    .filter(|k| !now.contains_key(*k))
                    .take(5)
                    .collect();
                let extra: Vec<_> = now
                    .keys()
                    .filter(|k| !expected.contains_key(*k))
                    .take(5)
                    .collect();
                let wrong: Vec<_> = expected
                    .iter()
                    .filter(|(k, v)| now.get(*k).is_some_and(|n| n != *v))
                    .map(|(k, _)| k)
                    .take(5)
                    .collect();
                panic!(
                    "bucket never matched: {} expected, {} present; missing {missing:?}, extra {extra:?}, wrong {wrong:?}",
                    expected.len(),
                    now.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Harness {
    /// The `fs-monitor` binary watching the root, logging (`RUST_LOG=info`)
    /// to a file.
    pub fn spawn_binary(&self) -> Binary {
        let log = self.dir.path().join("fs-monitor.log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_fs-monitor"))
            .args([
                "--directory",
                self.root.to_str().unwrap(),
                "--nats-url",
                &self.nats.url(),
            ])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Binary { child, log }
    }
}

/// A running `fs-monitor` process; killed if still running when dropped.
pub struct Binary {
    child: std::process::Child,
    log: PathBuf,
}

impl Binary {
    /// Sends `signal` to it.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Sends SIGTERM and waits (at most 10 s) for it to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "fs-monitor did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Everything in a bucket: path -> hex value.
pub async fn bucket(store: &Store) -> BTreeMap<PathBuf, String> {
    let entries = bus::bucket::entries(store).await.unwrap();
    entries
        .into_iter()
        .map(|(key, value)| {
            (
                bus::key::decode(&key).unwrap(),
                String::from_utf8(value.to_vec()).unwrap(),
            )
        })
        .collect()
}

/// The SHA3-512 of a file as the bucket stores it.
pub fn hex_of(path: &Path) -> String {
    ra_verify_core::hash::hash_file(path).unwrap().to_hex()
}

/// `path -> hash` for the given files.
pub fn expect<P: AsRef<Path>>(files: impl IntoIterator<Item = P>) -> BTreeMap<PathBuf, String> {
    files
        .into_iter()
        .map(|path| (path.as_ref().to_path_buf(), hex_of(path.as_ref())))
        .collect()
}

/// Writes `content` to `path`, creating parent directories.
pub fn write(path: &Path, content: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}
