//! Limits and tunables of fs-monitor.

use std::time::Duration;

use inotify::WatchMask;

/// What each watched directory reports. No `IN_MODIFY`/`IN_OPEN`/
/// `IN_ATTRIB`: a file is hashed when it is closed after writing
/// (`IN_CLOSE_WRITE`), so the noisy events would only fill the kernel queue.
/// `DONT_FOLLOW` and `ONLYDIR`: a symbolic link is never watched through;
/// `EXCL_UNLINK`: no events for files already unlinked.
pub const WATCH_MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::DONT_FOLLOW)
    .union(WatchMask::ONLYDIR)
    .union(WatchMask::EXCL_UNLINK);

/// Size of the buffer inotify events are read into (many events per read).
pub const EVENT_BUFFER: usize = 256 * 1024;

/// How long an `IN_MOVED_FROM` waits for its `IN_MOVED_TO` (same cookie)
/// before it counts as a move out of the watched trees. The kernel queues
/// both halves of a rename together, so the pair normally arrives in the
/// same read.
pub const MOVE_PAIR_GRACE: Duration = Duration::from_millis(20);

/// The most files hashed at once (also capped by the number of CPUs).
pub const MAX_HASH_JOBS: usize = 8;

/// The most KV writes in flight at once.
pub const PUBLISH_CONCURRENCY: usize = 128;

/// The most KV writes taken from the outbox in one round.
pub const PUBLISH_BATCH: usize = 4096;

/// Wait after a round with failed KV writes; doubled after each such round.
pub const PUBLISH_FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between rounds with failures.
pub const PUBLISH_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// After this many failed rounds in a row the bucket is opened again (a
/// server restarted with an empty store has lost it; this re-creates it).
pub const REOPEN_AFTER_FAILURES: u32 = 5;

/// How long shutdown waits for the outbox to drain.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
