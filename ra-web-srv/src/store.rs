//! The hot cache: every path's record and the state of its job, in memory.
//!
//! With NATS configured, [`crate::sync`] fills it from KV `fs_att_docs` at
//! start and mirrors every change back there, so this map is the fast path
//! and the bucket the durable copy.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;

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

/// Records and job states by path.
#[derive(Debug, Default)]
pub struct Store {
    entries: RwLock<HashMap<String, Entry>>,
    changes: RwLock<Option<tokio::sync::mpsc::UnboundedSender<Change>>>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves the map consistent (every
        // update is a single insert or remove), so a poisoned lock is used.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends every later change to `sender` (the durable store's writer).
    pub fn mirror_to(&self, sender: tokio::sync::mpsc::UnboundedSender<Change>) {
        *self.changes.write().unwrap_or_else(|e| e.into_inner()) = Some(sender);
    }

    fn publish(&self, change: Change) {
        if let Some(sender) = &*self.changes.read().unwrap_or_else(|e| e.into_inner()) {
            let _ = sender.send(change);
        }
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
                let record = Arc::new(record);
                entry.record = Some(Arc::clone(&record));
                entry.error = None;
                drop(entries);
                self.publish(Change::Put(record));
            }
            Err(error) => entry.error = Some(error),
        }
    }

    /// Stores `record` (from the bus or the durable store); `mirror` says
    /// whether it must be written back to the durable store.
    pub fn put(&self, record: Record, mirror: bool) -> Arc<Record> {
        let record = Arc::new(record);
        let mut entries = self.write();
        let entry = entries.entry(record.path.clone()).or_default();
        entry.record = Some(Arc::clone(&record));
        entry.error = None;
        drop(entries);
        if mirror {
            self.publish(Change::Put(Arc::clone(&record)));
        }
        record
    }

    /// Forgets `path` (a running job's result is still stored when it ends).
    pub fn remove(&self, path: &str) -> Option<Arc<Record>> {
        let removed = {
            let mut entries = self.write();
            match entries.get(path) {
                Some(entry) if entry.pending => {
                    entries.get_mut(path).and_then(|entry| entry.record.take())
                }
                Some(_) => entries.remove(path).and_then(|entry| entry.record),
                None => None,
            }
        };
        self.publish(Change::Delete(path.to_string()));
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

    #[test]
    fn jobs_move_from_pending_to_ready_or_failed_and_changes_are_mirrored() {
        let store = Store::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        store.mirror_to(tx);
        assert!(store.state("/a").is_none());
        assert!(store.begin("/a"));
        assert!(!store.begin("/a"), "one job per path at a time");
        assert_eq!(store.state("/a").unwrap().status, Status::Pending);
        store.finish("/a", Ok(record("/a")));
        assert_eq!(store.state("/a").unwrap().status, Status::Ready);
        assert!(matches!(rx.try_recv(), Ok(Change::Put(r)) if r.path == "/a"));

        assert!(store.begin("/b"));
        store.finish("/b", Err("boom".into()));
        let failed = store.state("/b").unwrap();
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.error.as_deref(), Some("boom"));
        assert!(rx.try_recv().is_err(), "a failure stores nothing");

        store.put(record("/c"), false);
        assert!(
            rx.try_recv().is_err(),
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
        assert!(matches!(rx.try_recv(), Ok(Change::Delete(p)) if p == "/a"));
        assert!(store.state("/a").is_none());
        assert_eq!(store.states().len(), 2);
    }
}
