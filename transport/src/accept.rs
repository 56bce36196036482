//! What to do when `accept(2)` fails, and how often to say so.
//!
//! [`classify`] sorts accept errors into three kinds:
//! - [`AcceptErrorKind::Dropped`] (ECONNABORTED, ECONNRESET, EINTR): one
//!   pending connection went away; accept again at once.
//! - [`AcceptErrorKind::Permanent`] (EBADF, EINVAL, ENOTSOCK, EFAULT): the
//!   listening socket itself is unusable (closed, shut down, not a socket);
//!   retrying cannot help, so the accept loop ends instead of spinning.
//! - [`AcceptErrorKind::Transient`]: everything else (EMFILE, ENFILE,
//!   ENOBUFS, ENOMEM, and the network errors Linux passes on from pending
//!   connections: EPROTO, EPERM, ENETDOWN...): retried after a pause.
//!
//! [`AcceptPacing`] keeps the pause (doubling from [`ACCEPT_ERROR_BACKOFF`]
//! to [`ACCEPT_ERROR_MAX_BACKOFF`], back to the shortest after a success)
//! and a [`Throttle`] for the warnings, across calls of
//! [`crate::Listener::accept_paced`].

use std::io;
use std::time::Duration;

use tokio::time::Instant;

use crate::defs::{ACCEPT_ERROR_BACKOFF, ACCEPT_ERROR_MAX_BACKOFF, DEFAULT_WARN_INTERVAL};

/// The kinds of accept errors, by what the accept loop does about them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptErrorKind {
    /// A pending connection failed before it was accepted: accept again now.
    Dropped,
    /// Resource exhaustion or a passing network error: accept again after a pause.
    Transient,
    /// The listening socket is unusable: stop accepting on it.
    Permanent,
}

/// Sorts an accept error (see the module documentation).
pub fn classify(err: &io::Error) -> AcceptErrorKind {
    match err.raw_os_error() {
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT) => {
            AcceptErrorKind::Permanent
        }
        Some(libc::ECONNABORTED | libc::ECONNRESET | libc::EINTR) => AcceptErrorKind::Dropped,
        _ => AcceptErrorKind::Transient,
    }
}

/// Lets a repeated warning through at most once per interval, so a flood
/// of failures or of clients cannot flood the log; counts what it held back.
#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(DEFAULT_WARN_INTERVAL)
    }
}

impl Throttle {
    /// A throttle letting one warning through per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(warnings held back since the last one)` when a warning may be
    /// written now, `None` (and counted) when not.
    pub fn allow(&mut self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The pause and warning state of one listener's failed accepts.
#[derive(Debug, Clone)]
pub struct AcceptPacing {
    pause: Duration,
    failures: u64,
    warnings: Throttle,
}

impl Default for AcceptPacing {
    fn default() -> Self {
        Self::new(DEFAULT_WARN_INTERVAL)
    }
}

/// What to do after a transient accept failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Pause before the next accept.
    pub pause: Duration,
    /// Failures since the last success, this one included.
    pub failures: u64,
    /// `Some(warnings held back)` when this failure is to be logged.
    pub warn: Option<u64>,
}

impl AcceptPacing {
    /// Pacing with at most one warning per `warn_interval`.
    pub fn new(warn_interval: Duration) -> Self {
        Self {
            pause: ACCEPT_ERROR_BACKOFF,
            failures: 0,
            warnings: Throttle::new(warn_interval),
        }
    }

    /// Notes a transient failure and says how long to pause.
    pub fn failed(&mut self) -> Retry {
        self.failed_at(Instant::now())
    }

    fn failed_at(&mut self, now: Instant) -> Retry {
        self.failures += 1;
        let pause = self.pause;
        self.pause = crate::backoff::next_backoff(self.pause, ACCEPT_ERROR_MAX_BACKOFF);
        Retry {
            pause,
            failures: self.failures,
            warn: self.warnings.allow_at(now),
        }
    }

    /// Notes a successful accept: the next failure starts from the shortest
    /// pause. Returns the failures it ends.
    pub fn succeeded(&mut self) -> u64 {
        self.pause = ACCEPT_ERROR_BACKOFF;
        std::mem::take(&mut self.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os_error(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn errors_of_the_listening_socket_are_permanent_the_rest_pass() {
        for code in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK, libc::EFAULT] {
            assert_eq!(
                classify(&os_error(code)),
                AcceptErrorKind::Permanent,
                "{code}"
            );
        }
        for code in [libc::ECONNABORTED, libc::ECONNRESET, libc::EINTR] {
            assert_eq!(
                classify(&os_error(code)),
                AcceptErrorKind::Dropped,
                "{code}"
            );
        }
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EPROTO,
            libc::EPERM,
            libc::ENETDOWN,
        ] {
            assert_eq!(
                classify(&os_error(code)),
                AcceptErrorKind::Transient,
                "{code}"
            );
        }
        assert_eq!(
            classify(&io::Error::other("no errno")),
            AcceptErrorKind::Transient
        );
    }

    #[test]
    fn pauses_double_up_to_the_maximum_and_restart_after_a_success() {
        let mut pacing = AcceptPacing::default();
        let pauses: Vec<Duration> = (0..6).map(|_| pacing.failed().pause).collect();
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000].map(ms));
        assert_eq!(pacing.failed().failures, 7);
        assert_eq!(pacing.succeeded(), 7);
        let retry = pacing.failed();
        assert_eq!((retry.pause, retry.failures), (ACCEPT_ERROR_BACKOFF, 1));
    }

    #[test]
    fn one_warning_per_interval_with_the_count_held_back() {
        let interval = Duration::from_secs(60);
        let mut pacing = AcceptPacing::new(interval);
        let start = Instant::now();
        let mut warned = |at: Duration| pacing.failed_at(start + at).warn;
        assert_eq!(warned(Duration::ZERO), Some(0));
        assert_eq!(warned(Duration::from_secs(1)), None);
        assert_eq!(warned(interval - Duration::from_millis(1)), None);
        assert_eq!(warned(interval), Some(2));
        assert_eq!(warned(interval + Duration::from_secs(5)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_lets_one_warning_through_per_interval() {
        let mut throttle = Throttle::new(Duration::from_secs(1));
        assert_eq!(throttle.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(throttle.allow(), None);
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(throttle.allow(), Some(5));
        assert_eq!(throttle.allow(), None);
    }
}
