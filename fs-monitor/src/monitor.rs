//! The event loop: inotify events in, hash jobs out, KV states into the
//! outbox.
//!
//! One task owns all state. It turns events into three kinds of work:
//!
//! - **hash a file** (`IN_CLOSE_WRITE`, a file moved in, a hard link
//!   created): queued, run on the blocking pool at most
//!   [`MAX_HASH_JOBS`] at once; a result is used only if no newer request
//!   for the same path was made meanwhile (each request has a generation);
//! - **remove a path** (`IN_DELETE`, moved out): its key and every key
//!   below it are deleted, its watches dropped;
//! - **refresh a tree** (a directory created or moved in, start-up,
//!   `IN_Q_OVERFLOW`): walk it (watching each directory before listing
//!   it), hash every file whose [`Stamp`] differs from the one last hashed,
//!   and delete the keys of files under it that no longer exist; a file
//!   some process still has open for writing is left for its close
//!   ([`writers`]).
//!
//! A rename inside the trees (`IN_MOVED_FROM` then `IN_MOVED_TO` with the
//! same cookie) moves the keys without rehashing. A file is put only when
//! its hash differs from the one already in the bucket.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bus::value::Digest;
use futures::FutureExt as _;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use inotify::{EventMask, EventOwned};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Stats;
use crate::config::Config;
use crate::defs::{MAX_HASH_JOBS, MOVE_PAIR_GRACE};
use crate::filter::Filter;
use crate::hasher::{self, Outcome, Stamp};
use crate::publish::Outbox;
use crate::scan;
use crate::watch::Watcher;
use crate::writers;

/// What is known about a file whose hash is (or is being put) in the bucket.
#[derive(Debug, Clone, Copy)]
struct Known {
    digest: Digest,
    /// `None`: the hash came from the bucket, not from hashing the file.
    stamp: Option<Stamp>,
}

/// A hash request for one path.
#[derive(Debug, Clone, Copy)]
struct Want {
    /// The latest request's number; results of older ones are dropped.
    generation: u64,
    /// Whether the path waits in the queue (it is there at most once, so
    /// the queue never outgrows the number of files, however often a file
    /// is closed).
    queued: bool,
}

/// A finished hash job.
type HashResult = (PathBuf, u64, Outcome);

/// An `IN_MOVED_FROM` waiting for its `IN_MOVED_TO`.
struct PendingMove {
    cookie: u32,
    from: PathBuf,
    deadline: Instant,
}

/// The monitor's state, owned by the event loop.
pub struct Monitor {
    config: Config,
    filter: Arc<Filter>,
    /// `None` only while a walk has it on the blocking pool.
    watcher: Option<Watcher>,
    files: BTreeMap<PathBuf, Known>,
    /// The latest hash request per path.
    wanted: BTreeMap<PathBuf, Want>,
    /// Paths waiting for a hash job, each at most once while `queued`.
    queue: VecDeque<PathBuf>,
    generation: u64,
    in_flight: usize,
    max_jobs: usize,
    results_tx: mpsc::Sender<HashResult>,
    results_rx: mpsc::Receiver<HashResult>,
    pending_move: Option<PendingMove>,
    outbox: Arc<Outbox>,
    stats: Arc<Stats>,
}

impl Monitor {
    /// A monitor over `watcher`, starting from what the bucket holds
    /// (`loaded`: path -> digest, for paths under the roots).
    pub fn new(
        config: Config,
        filter: Filter,
        watcher: Watcher,
        loaded: BTreeMap<PathBuf, Digest>,
        outbox: Arc<Outbox>,
        stats: Arc<Stats>,
    ) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let max_jobs = cpus.clamp(1, MAX_HASH_JOBS);
        let (results_tx, results_rx) = mpsc::channel(max_jobs);
        let files = loaded
            .into_iter()
            .map(|(path, digest)| {
                (
                    path,
                    Known {
                        digest,
                        stamp: None,
                    },
                )
            })
            .collect();
        Self {
            config,
            filter: Arc::new(filter),
            watcher: Some(watcher),
            files,
            wanted: BTreeMap::new(),
            queue: VecDeque::new(),
            generation: 0,
            in_flight: 0,
            max_jobs,
            results_tx,
            results_rx,
            pending_move: None,
            outbox,
            stats,
        }
    }

    /// Scans every root (reconciling the bucket with the trees), then
    /// follows `events` until `shutdown`; each item of `ignore_changes`
    /// re-reads the ignore file and rescans with its rules.
    pub async fn run<S>(
        mut self,
        mut events: S,
        mut ignore_changes: Option<BoxStream<'static, ()>>,
        shutdown: tokio_util::sync::CancellationToken,
    ) where
        S: futures::Stream<Item = std::io::Result<EventOwned>> + Unpin,
    {
        self.refresh_all_trees().await;
        self.stats.scanned.store(true, Ordering::Release);
        tracing::info!(
            files = self.files.len() + self.wanted.len(),
            dirs = self.watcher.as_ref().map_or(0, Watcher::len),
            "initial scan done; watching"
        );
        loop {
            self.launch();
            let move_deadline = self.pending_move.as_ref().map(|m| m.deadline);
            tokio::select! {
                () = shutdown.cancelled() => break,
                event = events.next() => match event {
                    Some(Ok(event)) => self.on_event(event).await,
                    Some(Err(error)) => {
                        tracing::error!(%error, "reading inotify events failed");
                        break;
                    }
                    None => break,
                },
                Some(result) = self.results_rx.recv() => self.on_hashed(result),
                () = next_change(&mut ignore_changes) => self.reload_filter().await,
                () = sleep_until(move_deadline), if move_deadline.is_some() => {
                    self.flush_move().await;
                }
            }
        }
    }

    /// Walks every root again ([`Monitor::refresh_tree`]).
    async fn refresh_all_trees(&mut self) {
        for root in self.config.roots.clone() {
            self.refresh_tree(&root).await;
        }
    }

    /// Applies the ignore file's new rules: every tree is walked again, so
    /// newly ignored paths lose their keys and watches and newly included
    /// ones are hashed (unchanged files are not rehashed). A file that cannot
    /// be read or parsed leaves the rules in force.
    async fn reload_filter(&mut self) {
        let Some(file) = self.config.ignore_file.clone() else {
            return;
        };
        match Filter::new(&self.config.roots, Some(&file)) {
            Ok(filter) => {
                self.flush_move().await;
                self.filter = Arc::new(filter);
                self.stats.ignore_reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(file = %file.display(), "ignore file changed; rescanning with its rules");
                self.refresh_all_trees().await;
            }
            Err(error) => {
                tracing::warn!(%error, "the changed ignore file cannot be used; the previous rules stay");
            }
        }
    }

    /// Handles one inotify event.
    async fn on_event(&mut self, event: EventOwned) {
        let mask = event.mask;
        if mask.contains(EventMask::Q_OVERFLOW) {
            self.flush_move().await;
            self.stats.overflows.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("inotify queue overflowed; rescanning every tree");
            self.refresh_all_trees().await;
            return;
        }
        let Some(dir) = self
            .watcher()
            .and_then(|w| w.path_of(&event.wd))
            .map(Path::to_path_buf)
        else {
            return;
        };
        if mask.contains(EventMask::IGNORED) {
            if let Some(watcher) = self.watcher.as_mut() {
                watcher.forget(&event.wd);
            }
            return;
        }
        if mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::UNMOUNT) {
            // Below a root, the parent's DELETE/MOVED_FROM says it already.
            if self.config.roots.contains(&dir) {
                self.flush_move().await;
                tracing::warn!(root = %dir.display(), "watched directory removed or moved away");
                self.remove(&dir);
            }
            return;
        }
        let Some(name) = event.name else {
            return;
        };
        let path = dir.join(name);
        let is_dir = mask.contains(EventMask::ISDIR);
        if mask.contains(EventMask::MOVED_TO) {
            let paired = self
                .pending_move
                .take_if(|pending| pending.cookie == event.cookie);
            self.flush_move().await;
            match paired {
                Some(from) => self.renamed(&from.from, &path, is_dir).await,
                None => self.arrived(&path, is_dir).await,
            }
            return;
        }
        self.flush_move().await;
        if mask.contains(EventMask::MOVED_FROM) {
            self.pending_move = Some(PendingMove {
                cookie: event.cookie,
                from: path,
                deadline: Instant::now() + MOVE_PAIR_GRACE,
            });
        } else if mask.contains(EventMask::DELETE) {
            self.remove(&path);
        } else if mask.contains(EventMask::CLOSE_WRITE) {
            if !self.filter.is_ignored(&path, false) {
                self.want_hash(path);
            }
        } else if mask.contains(EventMask::CREATE) {
            if self.filter.is_ignored(&path, is_dir) {
                return;
            }
            if is_dir {
                self.refresh_tree(&path).await;
            } else if is_hard_link(&path) {
                // A new name for existing content: no close will follow.
                self.want_hash(path);
            }
        }
    }

    /// Something appeared by a move from outside the trees (or from a path
    /// whose half of the move was not seen).
    async fn arrived(&mut self, path: &Path, is_dir: bool) {
        if self.filter.is_ignored(path, is_dir) {
            return;
        }
        if is_dir {
            self.refresh_tree(path).await;
        } else {
            self.want_hash(path.to_path_buf());
        }
    }

    /// `from` was renamed to `to`, both inside the trees.
    async fn renamed(&mut self, from: &Path, to: &Path, is_dir: bool) {
        if self.filter.is_ignored(to, is_dir) {
            self.remove(from);
            return;
        }
        // Whatever had the name `to` (a file, an empty directory) is gone.
        self.remove(to);
        if let Some(watcher) = self.watcher.as_mut() {
            watcher.rename(from, to);
        }
        // Move what is known: same content, new keys, no rehash.
        let moved: Vec<(PathBuf, Known)> = under(&self.files, from)
            .into_iter()
            .filter_map(|old| self.files.remove(&old).map(|known| (old, known)))
            .collect();
        for (old, known) in moved {
            let new = rebase(&old, from, to);
            self.outbox.set(bus::key::encode(&old), None);
            self.outbox.set(bus::key::encode(&new), Some(known.digest));
            self.files.insert(new, known);
        }
        // Hash jobs under `from` now concern `to`.
        let waiting: Vec<PathBuf> = under(&self.wanted, from);
        for old in waiting {
            self.wanted.remove(&old);
            self.want_hash(rebase(&old, from, to));
        }
        if is_dir {
            // Picks up what the move raced with, and applies the ignore
            // rules at the new place; unchanged files are not rehashed.
            self.refresh_tree(to).await;
        } else if !self.files.contains_key(to) && !self.wanted.contains_key(to) {
            self.want_hash(to.to_path_buf());
        }
    }

    /// A move whose other half did not come: it left the trees.
    async fn flush_move(&mut self) {
        if let Some(pending) = self.pending_move.take() {
            self.remove(&pending.from);
        }
    }

    /// Forgets `path` and everything below it: keys deleted, hash jobs
    /// dropped, watches removed.
    fn remove(&mut self, path: &Path) {
        for old in under(&self.files, path) {
            self.files.remove(&old);
            self.outbox.set(bus::key::encode(&old), None);
        }
        for old in under(&self.wanted, path) {
            self.wanted.remove(&old);
        }
        if let Some(watcher) = self.watcher.as_mut() {
            watcher.remove_under(path);
        }
    }

    /// Walks `dir`, hashes what is new or changed, forgets what is gone.
    async fn refresh_tree(&mut self, dir: &Path) {
        let Some(mut watcher) = self.watcher.take() else {
            return;
        };
        let filter = Arc::clone(&self.filter);
        let top = dir.to_path_buf();
        let walked = tokio::task::spawn_blocking(move || {
            let found = scan::walk(&top, &filter, &mut watcher);
            let writing = if found.files.is_empty() {
                HashSet::new()
            } else {
                writers::open_for_writing()
            };
            (watcher, found, writing)
        })
        .await;
        let (watcher, found, writing) = match walked {
            Ok(done) => done,
            Err(error) => {
                // The walk panicked: the watches are lost with it. Nothing
                // sensible can continue without them.
                tracing::error!(%error, "directory walk failed");
                std::process::abort();
            }
        };
        self.watcher = Some(watcher);
        self.stats.scans.fetch_add(1, Ordering::Relaxed);

        let seen: HashSet<&Path> = found.files.iter().map(|(path, _)| path.as_path()).collect();
        for old in under(&self.files, dir) {
            if !seen.contains(old.as_path()) {
                self.files.remove(&old);
                self.outbox.set(bus::key::encode(&old), None);
            }
        }
        for old in under(&self.wanted, dir) {
            if !seen.contains(old.as_path()) {
                self.wanted.remove(&old);
            }
        }
        let dirs: HashSet<&Path> = found.dirs.iter().map(PathBuf::as_path).collect();
        if let Some(watcher) = self.watcher.as_mut() {
            for old in watcher.dirs_under(dir) {
                if !dirs.contains(old.as_path()) {
                    watcher.remove_one(&old);
                }
            }
        }
        for (path, stamp) in found.files {
            if writing.contains(&stamp.id()) {
                // Still being written: its close will bring it.
                tracing::debug!(path = %path.display(), "open for writing; hashed when closed");
                continue;
            }
            let unchanged = self
                .files
                .get(&path)
                .is_some_and(|k| k.stamp == Some(stamp));
            if !unchanged && !self.wanted.contains_key(&path) {
                self.want_hash(path);
            }
        }
    }

    /// Asks for `path` to be hashed (again).
    fn want_hash(&mut self, path: PathBuf) {
        self.generation += 1;
        let generation = self.generation;
        let want = self.wanted.entry(path.clone()).or_insert(Want {
            generation,
            queued: false,
        });
        want.generation = generation;
        if !want.queued {
            want.queued = true;
            self.queue.push_back(path);
        }
    }

    /// Starts queued hash jobs while there is room.
    fn launch(&mut self) {
        while self.in_flight < self.max_jobs {
            let Some(path) = self.queue.pop_front() else {
                return;
            };
            // Dropped meanwhile (the path was removed), or a stale entry of
            // a path removed and wanted again.
            let Some(want) = self.wanted.get_mut(&path).filter(|want| want.queued) else {
                continue;
            };
            want.queued = false;
            let generation = want.generation;
            self.in_flight += 1;
            let tx = self.results_tx.clone();
            tokio::task::spawn_blocking(move || {
                let outcome = hasher::hash(&path);
                // At most `max_jobs` results are outstanding and the channel
                // holds that many, so this never waits; it fails only when
                // the monitor is gone.
                let _ = tx.blocking_send((path, generation, outcome));
            });
        }
    }

    /// Applies a finished hash job.
    fn on_hashed(&mut self, (path, generation, outcome): HashResult) {
        self.in_flight -= 1;
        match self.wanted.get(&path) {
            Some(want) if want.generation == generation => {
                self.wanted.remove(&path);
            }
            // A newer request is queued; its result will count.
            _ => return,
        }
        match outcome {
            Outcome::Hashed(digest, stamp) => {
                self.stats.hashed.fetch_add(1, Ordering::Relaxed);
                let stamp = Some(stamp);
                match self.files.get_mut(&path) {
                    Some(known) if known.digest == digest => known.stamp = stamp,
                    _ => {
                        self.outbox.set(bus::key::encode(&path), Some(digest));
                        self.files.insert(path, Known { digest, stamp });
                    }
                }
            }
            Outcome::Gone | Outcome::NotRegular => {
                if self.files.remove(&path).is_some() {
                    self.outbox.set(bus::key::encode(&path), None);
                }
            }
            Outcome::Changed => {
                tracing::debug!(path = %path.display(), "changed while hashed; waiting for its close");
            }
            Outcome::Failed(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot hash");
            }
        }
    }

    fn watcher(&self) -> Option<&Watcher> {
        self.watcher.as_ref()
    }
}

/// Whether `path` is a regular file with more than one name.
fn is_hard_link(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.nlink() > 1)
}

/// The keys of `map` equal to `top` or below it.
fn under<V>(map: &BTreeMap<PathBuf, V>, top: &Path) -> Vec<PathBuf> {
    // Paths order by component, so everything below `top` follows it.
    map.range(top.to_path_buf()..)
        .take_while(|(path, _)| path.starts_with(top))
        .map(|(path, _)| path.clone())
        .collect()
}

/// `path` (at or below `from`) moved to below `to`.
fn rebase(path: &Path, from: &Path, to: &Path) -> PathBuf {
    match path.strip_prefix(from) {
        Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
        Ok(rest) => to.join(rest),
        Err(_) => path.to_path_buf(),
    }
}

/// Sleeps until `deadline` (forever when `None`).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The next change of the ignore file (several at once count as one); never
/// ready without a stream, nor once it has ended.
async fn next_change(changes: &mut Option<BoxStream<'static, ()>>) {
    let Some(stream) = changes.as_mut() else {
        return std::future::pending().await;
    };
    if stream.next().await.is_none() {
        *changes = None;
        return std::future::pending().await;
    }
    while let Some(Some(())) = stream.next().now_or_never() {}
}
