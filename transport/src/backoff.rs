//! The back-off schedule shared by accept and connect.

use std::time::Duration;

/// The next pause after `current`: doubles up to `max`.
pub(crate) fn next_backoff(current: Duration, max: Duration) -> Duration {
    (current * 2).min(max)
}
