//! Paths whose record changed since the durable store last had it:
//! `bus`'s coalescing outbox ([`bus::outbox::Pending`]) keyed by path,
//! with no value (the record is read from the store when written).
//!
//! A path is in the set once however often it changes, so the backlog of an
//! outage is bounded by the number of paths, not the number of changes.
//! Paths come out oldest first; each carries a mark, and a path is cleared
//! only when the mark written is still its latest, so a change made while
//! the previous one was being written is never lost.

/// A path to write (`key`), with the mark it had when taken.
pub type DirtyPath = bus::outbox::Taken<()>;

/// An ordered set of paths without repeats.
pub type DirtySet = bus::outbox::Pending<()>;
