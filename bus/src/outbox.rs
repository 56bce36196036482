//! Coalescing KV outboxes: the state each key should have in a bucket,
//! waiting to be written, with nothing lost while NATS is away.
//!
//! [`Pending`] holds one entry per key: setting a key again replaces its
//! value and moves it to the back, so the backlog of an outage is bounded
//! by the number of keys, not the number of changes. Entries come out
//! oldest first and stay until written: each carries a mark, and
//! [`Pending::clear`] removes an entry only when the mark written is still
//! its latest, so a change made while the previous one was being written
//! is never lost. [`Outbox`] is the same behind a lock, with a wake-up for
//! its writer; [`write_batch`] writes a batch of it concurrently and
//! clears what was written, and [`write()`] makes one put or delete.
//!
//! fs-monitor's publisher (`fs_hashes`) and ra-web-srv's mirror of its
//! records (`fs_att_docs`) use it, each with its own retry policy.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_nats::jetstream::kv::{self, Store};
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::Notify;

/// An entry taken from [`Pending`] or [`Outbox`], with the mark it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken<V> {
    /// The key whose state must be written.
    pub key: String,
    /// The value the key had when taken.
    pub value: V,
    mark: u64,
}

/// Keys with a state not yet written: one entry per key, oldest first.
#[derive(Debug)]
pub struct Pending<V> {
    by_mark: BTreeMap<u64, String>,
    entries: HashMap<String, (u64, V)>,
    next_mark: u64,
}

impl<V> Default for Pending<V> {
    fn default() -> Self {
        Self {
            by_mark: BTreeMap::new(),
            entries: HashMap::new(),
            next_mark: 0,
        }
    }
}

impl<V: Clone> Pending<V> {
    /// Asks for `key` to hold `value`; an entry already waiting is
    /// replaced and moves to the back.
    pub fn set(&mut self, key: impl Into<String>, value: V) {
        let key = key.into();
        let mark = self.next_mark;
        self.next_mark += 1;
        if let Some((old, _)) = self.entries.insert(key.clone(), (mark, value)) {
            self.by_mark.remove(&old);
        }
        self.by_mark.insert(mark, key);
    }

    /// The oldest entry, left in place until [`Pending::clear`].
    pub fn oldest(&self) -> Option<Taken<V>> {
        self.oldest_n(1).pop()
    }

    /// Up to `most` entries, oldest first, left in place.
    pub fn oldest_n(&self, most: usize) -> Vec<Taken<V>> {
        self.by_mark
            .values()
            .take(most)
            .filter_map(|key| {
                self.entries.get(key).map(|(mark, value)| Taken {
                    key: key.clone(),
                    value: value.clone(),
                    mark: *mark,
                })
            })
            .collect()
    }

    /// Removes `taken` unless its key was set again since it was taken.
    pub fn clear(&mut self, taken: &Taken<V>) {
        if self.entries.get(&taken.key).map(|(mark, _)| *mark) == Some(taken.mark) {
            self.entries.remove(&taken.key);
            self.by_mark.remove(&taken.mark);
        }
    }

    /// Whether `key` has a state not yet written.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// How many keys wait.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A [`Pending`] shared between the tasks that set keys and the one that
/// writes them.
#[derive(Debug)]
pub struct Outbox<V> {
    pending: Mutex<Pending<V>>,
    ready: Notify,
}

impl<V> Default for Outbox<V> {
    fn default() -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            ready: Notify::new(),
        }
    }
}

impl<V: Clone> Outbox<V> {
    /// Asks for `key` to hold `value` ([`Pending::set`]) and wakes the
    /// writer.
    pub fn set(&self, key: impl Into<String>, value: V) {
        self.lock().set(key, value);
        self.ready.notify_one();
    }

    /// Up to `most` entries, oldest first, left in place until
    /// [`Outbox::clear`].
    pub fn take(&self, most: usize) -> Vec<Taken<V>> {
        self.lock().oldest_n(most)
    }

    /// Removes `taken` unless its key was set again since it was taken.
    pub fn clear(&self, taken: &Taken<V>) {
        self.lock().clear(taken);
    }

    /// How many keys wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Returns once a key was set since the last wake-up (at once if one
    /// was set while nobody waited).
    pub async fn changed(&self) {
        self.ready.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending<V>> {
        // A panic while holding this lock cannot leave the maps half-changed
        // in a way that loses a key, so a poisoned lock is still usable.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What to write for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Put this value.
    Put(Bytes),
    /// Delete the key (a delete marker).
    Delete,
}

/// A write the bucket refused or that did not reach it (the client's
/// error, as it says it).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A put failed.
    #[error(transparent)]
    Put(#[from] kv::PutError),
    /// A delete failed.
    #[error(transparent)]
    Delete(#[from] kv::DeleteError),
}

/// Makes one write.
pub async fn write(store: &Store, key: &str, write: Write) -> Result<(), WriteError> {
    match write {
        Write::Put(value) => Ok(store.put(key, value).await.map(drop)?),
        Write::Delete => Ok(store.delete(key).await?),
    }
}

/// What a [`write_batch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Puts that succeeded.
    pub puts: u64,
    /// Deletes that succeeded.
    pub deletes: u64,
    /// Writes that failed; their entries stay in the outbox.
    pub failures: usize,
}

/// Writes `batch` (taken from `outbox`) to `store`, up to `concurrency`
/// writes at a time, each as `to_write` says; clears every entry written
/// (unless set again meanwhile) and leaves the failed ones in the outbox.
pub async fn write_batch<V: Clone>(
    store: &Store,
    outbox: &Outbox<V>,
    batch: Vec<Taken<V>>,
    concurrency: usize,
    to_write: impl Fn(&V) -> Write,
) -> Written {
    let writes = futures::stream::iter(batch).map(|taken| {
        let action = to_write(&taken.value);
        async move {
            let is_put = matches!(action, Write::Put(_));
            let result = write(store, &taken.key, action).await;
            (taken, is_put, result)
        }
    });
    let mut writes = writes.buffer_unordered(concurrency.max(1));
    let mut written = Written::default();
    while let Some((taken, is_put, result)) = writes.next().await {
        match result {
            Ok(()) => {
                outbox.clear(&taken);
                if is_put {
                    written.puts += 1;
                } else {
                    written.deletes += 1;
                }
            }
            Err(error) => {
                tracing::debug!(key = taken.key, %error, "KV write failed");
                written.failures += 1;
            }
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_waits_once_and_comes_out_oldest_first() {
        let mut set = Pending::default();
        for i in 0..1000 {
            set.set("/a", i);
        }
        set.set("/b", 0);
        assert_eq!(set.len(), 2, "a thousand changes of one key wait as one");
        let a = set.oldest().unwrap();
        assert_eq!((a.key.as_str(), a.value), ("/a", 999));
        set.clear(&a);
        assert_eq!(set.oldest().unwrap().key, "/b");
        set.set("/a", 1);
        assert_eq!(
            set.oldest_n(10)
                .into_iter()
                .map(|t| t.key)
                .collect::<Vec<_>>(),
            ["/b", "/a"],
            "a new state goes to the back"
        );
    }

    #[test]
    fn a_change_made_while_writing_is_not_cleared() {
        let mut set = Pending::default();
        set.set("/a", 1);
        let taken = set.oldest().unwrap();
        set.set("/a", 2);
        set.clear(&taken);
        assert!(set.contains("/a"), "the newer change still waits");
        let again = set.oldest().unwrap();
        assert_eq!(again.value, 2);
        set.clear(&again);
        assert!(set.is_empty());
    }
}
