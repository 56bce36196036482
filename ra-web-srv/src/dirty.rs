//! Paths whose record changed since the durable store last had it.
//!
//! A path is in the set once however often it changes, so the backlog of an
//! outage is bounded by the number of paths, not the number of changes.
//! Paths come out oldest first; each carries a mark, and a path is cleared
//! only when the mark written is still its latest, so a change made while
//! the previous one was being written is never lost.

use std::collections::{BTreeMap, HashMap};

/// A path to write, with the mark it had when taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyPath {
    /// The path whose state must be written.
    pub path: String,
    mark: u64,
}

/// An ordered set of paths without repeats.
#[derive(Debug, Default)]
pub struct DirtySet {
    by_mark: BTreeMap<u64, String>,
    mark_of: HashMap<String, u64>,
    next_mark: u64,
}

impl DirtySet {
    /// Adds `path`, or moves it to the back if already there.
    pub fn mark(&mut self, path: &str) {
        if let Some(old) = self.mark_of.remove(path) {
            self.by_mark.remove(&old);
        }
        let mark = self.next_mark;
        self.next_mark += 1;
        self.by_mark.insert(mark, path.to_string());
        self.mark_of.insert(path.to_string(), mark);
    }

    /// The oldest path, left in the set until [`DirtySet::clear`].
    pub fn oldest(&self) -> Option<DirtyPath> {
        self.by_mark
            .first_key_value()
            .map(|(mark, path)| DirtyPath {
                path: path.clone(),
                mark: *mark,
            })
    }

    /// Removes `taken` unless its path was marked again since it was taken.
    pub fn clear(&mut self, taken: &DirtyPath) {
        if self.mark_of.get(&taken.path) == Some(&taken.mark) {
            self.mark_of.remove(&taken.path);
            self.by_mark.remove(&taken.mark);
        }
    }

    /// Whether `path` has a change not yet written.
    pub fn contains(&self, path: &str) -> bool {
        self.mark_of.contains_key(path)
    }

    /// How many paths wait.
    pub fn len(&self) -> usize {
        self.mark_of.len()
    }

    /// Whether no path waits.
    pub fn is_empty(&self) -> bool {
        self.mark_of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_waits_once_and_comes_out_oldest_first() {
        let mut set = DirtySet::default();
        for _ in 0..1000 {
            set.mark("/a");
        }
        set.mark("/b");
        assert_eq!(set.len(), 2, "a thousand changes of one path wait as one");
        let a = set.oldest().unwrap();
        assert_eq!(a.path, "/a");
        set.clear(&a);
        assert_eq!(set.oldest().unwrap().path, "/b");
        set.mark("/a");
        assert_eq!(
            set.oldest().unwrap().path,
            "/b",
            "a new mark goes to the back"
        );
    }

    #[test]
    fn a_change_made_while_writing_is_not_cleared() {
        let mut set = DirtySet::default();
        set.mark("/a");
        let taken = set.oldest().unwrap();
        set.mark("/a");
        set.clear(&taken);
        assert!(set.contains("/a"), "the newer change still waits");
        let again = set.oldest().unwrap();
        set.clear(&again);
        assert!(set.is_empty());
    }
}
