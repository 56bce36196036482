//! The hot cache: every path's record and the state of its job, in memory.
//!
//! With NATS configured, [`crate::sync`] fills it from KV `fs_att_docs` at
//! start and mirrors every change back there, so this map is the fast path
//! and the bucket the durable copy. A mirrored store remembers which paths
//! the bucket does not have yet (a [`DirtySet`]): an outage of any length
//! costs at most one entry per path, and a record made during it is never
//! replaced by the older one the bucket still holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use tokio::sync::Notify;

use crate::dirty::{DirtyPath, DirtySet};
use crate::record::Record;

/// The state of one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A job is hashing or attesting it.
    Pending,
    /// Its record is there.
    Ready,
    /// The last job failed.
    Failed,
}

#[derive(Debug, Default)]
struct Entry {
    record: Option<Arc<Record>>,
    pending: bool,
    error: Option<String>,
}

/// What the store knows about a path.
#[derive(Debug, Clone)]
pub struct PathState {
    /// Pending, ready or failed.
    pub status: Status,
    /// The record (even while a new one is being made).
    pub record: Option<Arc<Record>>,
    /// Why the last job failed.
    pub error: Option<String>,
}

/// Counts over every path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Paths with a record and no job running.
    pub ready: usize,
    /// Paths with a job running.
    pub pending: usize,
    /// Paths whose last job failed.
    pub failed: usize,
}

/// A change to mirror into the durable store.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new or replaced record.
    Put(Arc<Record>),
    /// The record of this path is gone.
    Delete(String),
}

/// What the durable store lacks, and a wake-up for its writer.
#[derive(Debug, Default)]
struct Mirror {
    unwritten: Mutex<DirtySet>,
    added: Notify,
}

/// Records and job states by path.
#[derive(Debug, Default)]
pub struct Store {
    entries: RwLock<HashMap<String, Entry>>,
    mirror: Option<Mirror>,
}

impl Store {
    /// An empty store that is not mirrored anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose changes are mirrored (see [`Store::next_change`]).
    pub fn mirrored() -> Self {
        Self {
            entries: RwLock::default(),
            mirror: Some(Mirror::default()),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves the map consistent (every
        // update is a single insert or remove), so a poisoned lock is used.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Lock order: `entries` before `unwritten`, never the other way.
    fn unwritten(mirror: &Mirror) -> MutexGuard<'_, DirtySet> {
        mirror.unwritten.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that the durable store lacks the current state of `path`
    /// (nothing happens on a store that is not mirrored).
    pub fn mark_unwritten(&self, path: &str) {
        if let Some(mirror) = &self.mirror {
            Self::unwritten(mirror).mark(path);
            mirror.added.notify_one();
        }
    }

    /// The oldest change the durable store lacks: the path's record as it
    /// is now, or its deletion. Waits for one; `None` only on a store that
    /// is not mirrored. The path stays unwritten until [`Store::written`].
    pub async fn next_change(&self) -> Option<(DirtyPath, Change)> {
        let mirror = self.mirror.as_ref()?;
        loop {
            let oldest = Self::unwritten(mirror).oldest();
            if let Some(taken) = oldest {
                let change = match self.record(&taken.path) {
                    Some(record) => Change::Put(record),
                    None => Change::Delete(taken.path.clone()),
                };
                return Some((taken, change));
            }
            mirror.added.notified().await;
        }
    }

    /// The change taken by [`Store::next_change`] is in the durable store.
    pub fn written(&self, taken: &DirtyPath) {
        if let Some(mirror) = &self.mirror {
            Self::unwritten(mirror).clear(taken);
        }
    }

    /// How many paths the durable store lacks.
    pub fn unwritten_count(&self) -> usize {
        self.mirror
            .as_ref()
            .map_or(0, |mirror| Self::unwritten(mirror).len())
    }

    /// The record of `path`.
    pub fn record(&self, path: &str) -> Option<Arc<Record>> {
        self.read().get(path).and_then(|e| e.record.clone())
    }

    /// What is known about `path`.
    pub fn state(&self, path: &str) -> Option<PathState> {
        self.read().get(path).map(|entry| PathState {
            status: if entry.pending {
                Status::Pending
            } else if entry.error.is_some() {
                Status::Failed
            } else {
                Status::Ready
            },
            record: entry.record.clone(),
            error: entry.error.clone(),
        })
    }

    /// Marks a job for `path` as running; false when one already is.
    pub fn begin(&self, path: &str) -> bool {
        let mut entries = self.write();
        let entry = entries.entry(path.to_string()).or_default();
        if entry.pending {
            return false;
        }
        entry.pending = true;
        entry.error = None;
        true
    }

    /// Ends the job of `path` with its record or its error.
    pub fn finish(&self, path: &str, outcome: Result<Record, String>) {
        let mut entries = self.write();
        let entry = entries.entry(path.to_string()).or_default();
        entry.pending = false;
        match outcome {
            Ok(record) => {
                entry.record = Some(Arc::new(record));
                entry.error = None;
                self.mark_unwritten(path);
            }
            Err(error) => entry.error = Some(error),
        }
    }

    /// Takes `record` from the durable store, unless this store has a
    /// change of that path the durable store lacks (then it is newer and
    /// kept). Says whether it was taken.
    pub fn load(&self, record: Record) -> bool {
        let mut entries = self.write();
        if let Some(mirror) = &self.mirror
            && Self::unwritten(mirror).contains(&record.path)
        {
            return false;
        }
        let entry = entries.entry(record.path.clone()).or_default();
        entry.record = Some(Arc::new(record));
        entry.error = None;
        true
    }

    /// Forgets `path` (a running job's result is still stored when it ends).
    pub fn remove(&self, path: &str) -> Option<Arc<Record>> {
        let mut entries = self.write();
        let removed = match entries.get(path) {
            Some(entry) if entry.pending => {
                entries.get_mut(path).and_then(|entry| entry.record.take())
            }
            Some(_) => entries.remove(path).and_then(|entry| entry.record),
            None => None,
        };
        self.mark_unwritten(path);
        removed
    }

    /// Every record, sorted by path.
    pub fn records(&self) -> Vec<Arc<Record>> {
        let mut records: Vec<_> = self
            .read()
            .values()
            .filter_map(|e| e.record.clone())
            .collect();
        records.sort_by(|a, b| a.path.cmp(&b.path));
        records
    }

    /// Every path's state, sorted by path.
    pub fn states(&self) -> Vec<(String, PathState)> {
        let paths: Vec<String> = self.read().keys().cloned().collect();
        let mut states: Vec<_> = paths
            .into_iter()
            .filter_map(|path| self.state(&path).map(|state| (path, state)))
            .collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        states
    }

    /// Counts of ready, pending and failed paths.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for entry in self.read().values() {
            if entry.pending {
                summary.pending += 1;
            } else if entry.error.is_some() {
                summary.failed += 1;
            } else if entry.record.is_some() {
                summary.ready += 1;
            }
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nsm::NsmKind;
    use crate::record::Source;

    fn record(path: &str) -> Record {
        Record {
            path: path.into(),
            sha3_512: ra_verify::Sha3Digest::of(path.as_bytes()).unwrap(),
            vrf_suite: ra_verify::Suite::P256Sha256Tai,
            vrf_proof: String::new(),
            vrf_public_key: String::new(),
            document: String::new(),
            nsm: NsmKind::Development,
            created_at: String::new(),
            source: Source::Generate,
        }
    }

    fn next_now(store: &Store) -> Option<(DirtyPath, Change)> {
        use std::future::Future;
        let mut next = std::pin::pin!(store.next_change());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match next.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(change) => change,
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn jobs_move_from_pending_to_ready_or_failed_and_changes_are_mirrored() {
        let store = Store::mirrored();
        assert!(store.state("/a").is_none());
        assert!(store.begin("/a"));
        assert!(!store.begin("/a"), "one job per path at a time");
        assert_eq!(store.state("/a").unwrap().status, Status::Pending);
        store.finish("/a", Ok(record("/a")));
        assert_eq!(store.state("/a").unwrap().status, Status::Ready);
        let (taken, change) = next_now(&store).unwrap();
        assert!(matches!(change, Change::Put(r) if r.path == "/a"));
        store.written(&taken);

        assert!(store.begin("/b"));
        store.finish("/b", Err("boom".into()));
        let failed = store.state("/b").unwrap();
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.error.as_deref(), Some("boom"));
        assert!(next_now(&store).is_none(), "a failure stores nothing");

        assert!(store.load(record("/c")));
        assert!(
            next_now(&store).is_none(),
            "a loaded record is not written back"
        );
        assert_eq!(
            store.summary(),
            Summary {
                ready: 2,
                pending: 0,
                failed: 1
            }
        );
        assert_eq!(store.records().len(), 2);
        assert!(store.remove("/a").is_some());
        let (taken, change) = next_now(&store).unwrap();
        assert!(matches!(change, Change::Delete(p) if p == "/a"));
        store.written(&taken);
        assert!(store.state("/a").is_none());
        assert_eq!(store.states().len(), 2);
        assert_eq!(store.unwritten_count(), 0);
    }

    #[test]
    fn an_unwritten_record_wins_over_the_durable_copy_and_waits_once() {
        let store = Store::mirrored();
        let mut newer = record("/a");
        newer.created_at = "newer".into();
        for _ in 0..100 {
            assert!(store.begin("/a"));
            store.finish("/a", Ok(newer.clone()));
        }
        assert_eq!(
            store.unwritten_count(),
            1,
            "changes of one path wait as one"
        );
        assert!(
            !store.load(record("/a")),
            "the older durable copy is refused"
        );
        assert_eq!(store.record("/a").unwrap().created_at, "newer");
        let (taken, change) = next_now(&store).unwrap();
        assert!(matches!(change, Change::Put(r) if r.created_at == "newer"));
        store.written(&taken);
        assert!(
            store.load(record("/a")),
            "once written, the durable copy is taken"
        );
    }

    #[test]
    fn a_store_that_is_not_mirrored_keeps_no_backlog() {
        let store = Store::new();
        store.finish("/a", Ok(record("/a")));
        store.remove("/a");
        assert_eq!(store.unwritten_count(), 0);
        assert!(next_now(&store).is_none());
    }
}
