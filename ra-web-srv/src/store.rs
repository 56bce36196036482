//! The hot cache: every path's record and the state of its job, in memory.
//!
//! With NATS configured, [`crate::sync`] fills it from KV `fs_att_docs` at
//! start and mirrors every change back there, so this map is the fast path
//! and the bucket the durable copy. A mirrored store remembers which paths
//! the bucket does not have yet (a [`DirtySet`]): an outage of any length
//! costs at most one entry per path, and a record made during it is never
//! replaced by the older one the bucket still holds.
//!
//! Next to the map (one lookup per request) the store keeps its paths in
//! order (byte order of the UTF-8 string), so a page of a list
//! ([`Store::record_page`], [`Store::state_page`]) is a range walk: its
//! cost grows with the page, not with the store. The counts of
//! [`Store::summary`] are kept as the entries change, not counted per call.

use std::collections::hash_map;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use tokio::sync::Notify;

use crate::dirty::{DirtyPath, DirtySet};
use crate::record::Record;

/// The state of one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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

impl Entry {
    fn state(&self) -> PathState {
        PathState {
            status: if self.pending {
                Status::Pending
            } else if self.error.is_some() {
                Status::Failed
            } else {
                Status::Ready
            },
            record: self.record.clone(),
            error: self.error.clone(),
        }
    }
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    /// Paths with a record and no job running.
    pub ready: usize,
    /// Paths with a job running.
    pub pending: usize,
    /// Paths whose last job failed.
    pub failed: usize,
}

impl Summary {
    /// The count `entry` is in: pending before failed before ready; an
    /// entry with no job, no error and no record is in none.
    fn count_of(&mut self, entry: &Entry) -> Option<&mut usize> {
        if entry.pending {
            Some(&mut self.pending)
        } else if entry.error.is_some() {
            Some(&mut self.failed)
        } else if entry.record.is_some() {
            Some(&mut self.ready)
        } else {
            None
        }
    }

    fn add(&mut self, entry: &Entry) {
        if let Some(count) = self.count_of(entry) {
            *count += 1;
        }
    }

    fn subtract(&mut self, entry: &Entry) {
        if let Some(count) = self.count_of(entry) {
            *count -= 1;
        }
    }
}

/// One page of a list, in path order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// At most the `limit` asked for.
    pub items: Vec<T>,
    /// The path of the last item when more follow: the `after` of the next
    /// page. `None` on the last page.
    pub next: Option<String>,
}

/// The entries by path, their paths in order, and their counts.
///
/// Every change goes through [`Entries::change`], [`Entries::change_or_add`]
/// or [`Entries::remove`], which keep `order` equal to the keys of
/// `by_path` and `summary` equal to a count over it. None of them panics
/// between taking an entry out of the counts and putting it back, so a
/// poisoned lock still guards consistent counts.
#[derive(Debug, Default)]
struct Entries {
    /// Lookups: one hash per request, whatever the store holds.
    by_path: HashMap<Arc<str>, Entry>,
    /// The same paths (the same allocations) in order, for pages.
    order: BTreeSet<Arc<str>>,
    summary: Summary,
}

impl Entries {
    /// Applies `change` to the entry of `path`, if there is one.
    fn change<R>(&mut self, path: &str, change: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let entry = self.by_path.get_mut(path)?;
        self.summary.subtract(entry);
        let out = change(entry);
        self.summary.add(entry);
        Some(out)
    }

    /// Applies `change` to the entry of `path`, made empty when missing.
    fn change_or_add<R>(&mut self, path: &str, change: impl FnOnce(&mut Entry) -> R) -> R {
        let entry = match self.by_path.entry(Arc::from(path)) {
            hash_map::Entry::Occupied(entry) => entry.into_mut(),
            hash_map::Entry::Vacant(entry) => {
                self.order.insert(Arc::clone(entry.key()));
                entry.insert(Entry::default())
            }
        };
        self.summary.subtract(entry);
        let out = change(entry);
        self.summary.add(entry);
        out
    }

    /// Takes the entry of `path` out.
    fn remove(&mut self, path: &str) -> Option<Entry> {
        let entry = self.by_path.remove(path)?;
        self.order.remove(path);
        self.summary.subtract(&entry);
        Some(entry)
    }

    /// The page of entries with paths starting with `prefix`, sorted after
    /// `after`, that `keep` keeps: at most `limit`. Walks the range from
    /// `max(after, prefix)` to the first path without the prefix (the paths
    /// with a prefix are contiguous in byte order), no further than one
    /// kept entry past the page.
    fn page(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&Entry) -> bool,
    ) -> Page<(&str, &Entry)> {
        let start = match (prefix, after) {
            (Some(prefix), Some(after)) if prefix > after => Bound::Included(prefix),
            (_, Some(after)) => Bound::Excluded(after),
            (Some(prefix), None) => Bound::Included(prefix),
            (None, None) => Bound::Unbounded,
        };
        let in_range = self
            .order
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|path| prefix.is_none_or(|prefix| path.starts_with(prefix)))
            .filter_map(|path| Some((path, self.by_path.get(path)?)))
            .filter(|(_, entry)| keep(entry));
        let mut items: Vec<(&str, &Entry)> = Vec::new();
        let mut next = None;
        for (path, entry) in in_range {
            if items.len() == limit {
                // More follow: the page ends at its last item.
                next = items.last().map(|(last, _)| last.to_string());
                break;
            }
            items.push((path.as_ref(), entry));
        }
        Page { items, next }
    }
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
    entries: RwLock<Entries>,
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

    fn read(&self) -> RwLockReadGuard<'_, Entries> {
        // A panic while holding the lock leaves the map and its counts
        // consistent (see `Entries`), so a poisoned lock is used.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries> {
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
            Self::unwritten(mirror).set(path, ());
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
                let change = match self.record(&taken.key) {
                    Some(record) => Change::Put(record),
                    None => Change::Delete(taken.key.clone()),
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
        self.read().by_path.get(path).and_then(|e| e.record.clone())
    }

    /// What is known about `path`.
    pub fn state(&self, path: &str) -> Option<PathState> {
        self.read().by_path.get(path).map(Entry::state)
    }

    /// Marks a job for `path` as running; false when one already is.
    pub fn begin(&self, path: &str) -> bool {
        self.write().change_or_add(path, |entry| {
            if entry.pending {
                return false;
            }
            entry.pending = true;
            entry.error = None;
            true
        })
    }

    /// Ends the job of `path` with its record or its error.
    pub fn finish(&self, path: &str, outcome: Result<Record, String>) {
        let mut entries = self.write();
        let stored = entries.change_or_add(path, |entry| {
            entry.pending = false;
            match outcome {
                Ok(record) => {
                    entry.record = Some(Arc::new(record));
                    entry.error = None;
                    true
                }
                Err(error) => {
                    entry.error = Some(error);
                    false
                }
            }
        });
        if stored {
            // Still under the entries lock, so `load` cannot slip an older
            // durable copy in between.
            self.mark_unwritten(path);
        }
        drop(entries);
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
        let record = Arc::new(record);
        entries.change_or_add(&record.path, |entry| {
            entry.record = Some(Arc::clone(&record));
            entry.error = None;
        });
        true
    }

    /// Forgets `path` (a running job's result is still stored when it ends).
    pub fn remove(&self, path: &str) -> Option<Arc<Record>> {
        let mut entries = self.write();
        let removed = match entries.by_path.get(path) {
            Some(entry) if entry.pending => {
                entries.change(path, |entry| entry.record.take()).flatten()
            }
            Some(_) => entries.remove(path).and_then(|entry| entry.record),
            None => None,
        };
        self.mark_unwritten(path);
        drop(entries);
        removed
    }

    /// Every record, sorted by path (a walk of the whole store: for the
    /// NATS side's catch-up, not for requests).
    pub fn records(&self) -> Vec<Arc<Record>> {
        let entries = self.read();
        entries
            .order
            .iter()
            .filter_map(|path| entries.by_path.get(path)?.record.clone())
            .collect()
    }

    /// Every path's state, sorted by path (a walk of the whole store).
    pub fn states(&self) -> Vec<(String, PathState)> {
        let entries = self.read();
        entries
            .order
            .iter()
            .filter_map(|path| Some((path.to_string(), entries.by_path.get(path)?.state())))
            .collect()
    }

    /// The page of records whose paths start with `prefix` (if given) and
    /// sort after `after` (if given), in path order: at most `limit`, and
    /// with `next` when more follow. Costs `O(log n + page)` (paths in the
    /// range without a record are walked over); only the records returned
    /// are cloned (an `Arc` each).
    pub fn record_page(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Page<Arc<Record>> {
        let entries = self.read();
        let page = entries.page(prefix, after, limit, |entry| entry.record.is_some());
        Page {
            items: page
                .items
                .into_iter()
                .filter_map(|(_, entry)| entry.record.clone())
                .collect(),
            next: page.next,
        }
    }

    /// The page of path states, as [`Store::record_page`], over every path
    /// the store knows (with or without a record).
    pub fn state_page(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Page<(String, PathState)> {
        let entries = self.read();
        let page = entries.page(prefix, after, limit, |_| true);
        Page {
            items: page
                .items
                .into_iter()
                .map(|(path, entry)| (path.to_string(), entry.state()))
                .collect(),
            next: page.next,
        }
    }

    /// Counts of ready, pending and failed paths (kept as entries change:
    /// no walk of the store).
    pub fn summary(&self) -> Summary {
        self.read().summary
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
            sha3_512: ra_verify_core::Sha3Digest::of(path.as_bytes()).unwrap(),
            vrf_suite: ra_verify_core::Suite::P256Sha256Tai,
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

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    /// A page as the lists made it before the store was ordered: the
    /// sorted paths filtered by prefix and `after`, `limit` + 1 taken.
    fn naive_page(
        sorted: &[String],
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Page<String> {
        let mut items: Vec<String> = sorted
            .iter()
            .filter(|path| prefix.is_none_or(|p| path.starts_with(p)))
            .filter(|path| after.is_none_or(|a| path.as_str() > a))
            .take(limit + 1)
            .cloned()
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().cloned()
        } else {
            None
        };
        Page { items, next }
    }

    fn record_paths(page: Page<Arc<Record>>) -> Page<String> {
        Page {
            items: page.items.iter().map(|r| r.path.clone()).collect(),
            next: page.next,
        }
    }

    fn state_paths(store: &Store, page: Page<(String, PathState)>) -> Page<String> {
        for (path, state) in &page.items {
            let now = store.state(path).unwrap();
            assert_eq!(state.status, now.status, "{path}");
            assert_eq!(state.error, now.error, "{path}");
            assert_eq!(state.record, now.record, "{path}");
        }
        Page {
            items: page.items.into_iter().map(|(path, _)| path).collect(),
            next: page.next,
        }
    }

    #[test]
    fn pages_match_a_sort_and_filter_of_the_whole_store() {
        let store = Store::new();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let dirs = [
            "/a",
            "/a/b",
            "/ab",
            "/b",
            "/data/\u{e9}",
            "/data/z",
            "/data/\u{1f600}",
        ];
        let mut with_record = Vec::new();
        let mut all = Vec::new();
        // 10,000 paths in scrambled order: 7919 is prime, so i * 7919 mod
        // 10,000 visits every number once. One in ten has a running job and
        // no record, one in ten a failed job.
        let extra = ["/a", "/a/", "/ab", "/data/\u{e9}"].map(String::from);
        for i in 0..10_000u64 {
            let n = i * 7919 % 10_000;
            let path = match extra.get(n as usize) {
                Some(path) => path.clone(),
                None => format!("{}/f{n:05}", dirs[rng.below(dirs.len() as u64) as usize]),
            };
            match rng.below(10) {
                0 => assert!(store.begin(&path)),
                1 => {
                    assert!(store.begin(&path));
                    store.finish(&path, Err("boom".into()));
                }
                _ => {
                    assert!(store.load(record(&path)));
                    with_record.push(path.clone());
                }
            }
            all.push(path);
        }
        with_record.sort();
        all.sort();
        assert_eq!(all.len(), 10_000);
        assert_eq!(store.records().len(), with_record.len());

        let prefixes = [
            None,
            Some(""),
            Some("/"),
            Some("/a"),
            Some("/a/"),
            Some("/a/b/f0"),
            Some("/ab"),
            Some("/data/"),
            Some("/data/\u{e9}"),
            Some("/data/\u{1f600}/"),
            Some(all[4321].as_str()),
            Some("/zzz"),
        ];
        let between = format!("{}0", all[5000]);
        let afters = [
            None,
            Some(""),
            Some("/"),
            Some("/a"),
            Some("/a/b"),
            Some("/ab/f05000"),
            Some(all[1234].as_str()),
            Some(between.as_str()),
            Some("/data/"),
            Some("/data/\u{e9}/f09000"),
            Some(all[9999].as_str()),
            Some("\u{10ffff}"),
        ];
        for prefix in prefixes {
            for after in afters {
                for limit in [1, 3, 1000, 10_000] {
                    let what = format!("prefix {prefix:?} after {after:?} limit {limit}");
                    assert_eq!(
                        record_paths(store.record_page(prefix, after, limit)),
                        naive_page(&with_record, prefix, after, limit),
                        "records, {what}"
                    );
                    assert_eq!(
                        state_paths(&store, store.state_page(prefix, after, limit)),
                        naive_page(&all, prefix, after, limit),
                        "states, {what}"
                    );
                }
            }
            // Following `next` visits every path with the prefix once, in order.
            for limit in [7, 1000] {
                let (mut records, mut states) = (Vec::new(), Vec::new());
                let mut after = None;
                loop {
                    let page = record_paths(store.record_page(prefix, after.as_deref(), limit));
                    records.extend(page.items);
                    match page.next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
                after = None;
                loop {
                    let page =
                        state_paths(&store, store.state_page(prefix, after.as_deref(), limit));
                    states.extend(page.items);
                    match page.next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
                assert_eq!(
                    records,
                    naive_page(&with_record, prefix, None, usize::MAX - 1).items
                );
                assert_eq!(states, naive_page(&all, prefix, None, usize::MAX - 1).items);
            }
        }
    }

    /// The summary as it was counted before it was kept: a walk of every entry.
    fn counted(store: &Store) -> Summary {
        let mut summary = Summary::default();
        for entry in store.read().by_path.values() {
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

    #[test]
    fn the_kept_summary_equals_a_count_after_any_changes() {
        let store = Store::mirrored();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let path = format!("/p{}", rng.below(40));
            match rng.below(6) {
                0 => {
                    store.begin(&path);
                }
                1 => store.finish(&path, Ok(record(&path))),
                2 => store.finish(&path, Err("boom".into())),
                3 => {
                    store.load(record(&path));
                }
                4 => {
                    store.remove(&path);
                }
                _ => {
                    if let Some((taken, _)) = next_now(&store) {
                        store.written(&taken);
                    }
                }
            }
            assert_eq!(store.summary(), counted(&store), "after a change of {path}");
            let entries = store.read();
            assert_eq!(entries.order.len(), entries.by_path.len());
            assert!(
                entries
                    .order
                    .iter()
                    .all(|p| entries.by_path.contains_key(p))
            );
        }
    }
}
