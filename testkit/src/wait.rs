//! Waiting for another process: poll a condition until it holds or a time
//! limit passes. One way for every test of the workspace, so a loaded
//! machine gets the same patience everywhere.

use std::time::{Duration, Instant};

/// How often the condition is checked.
pub const POLL: Duration = Duration::from_millis(20);

/// Checks `check` every [`POLL`] until it holds or `limit` passes; a last
/// check at the limit decides.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    check()
}

/// [`eventually`], or a panic naming `what` and the limit.
pub fn wait_until(what: &str, limit: Duration, check: impl FnMut() -> bool) {
    assert!(
        eventually(limit, check),
        "timed out after {limit:?} waiting for {what}"
    );
}

/// [`eventually`] for async tests: sleeps on the runtime's timer, so the
/// test's other tasks go on meanwhile.
pub async fn eventually_async(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(POLL).await;
    }
    check()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_turns_true_is_seen_and_one_that_never_does_is_not() {
        let start = Instant::now();
        assert!(eventually(Duration::from_secs(5), || start.elapsed()
            > Duration::from_millis(60)));
        assert!(!eventually(Duration::from_millis(50), || false));
    }

    #[test]
    #[should_panic(expected = "waiting for the impossible")]
    fn wait_until_names_what_it_waited_for() {
        wait_until("the impossible", Duration::from_millis(30), || false);
    }

    #[tokio::test]
    async fn the_async_poll_lets_other_tasks_run() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let setter = flag.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            setter.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(
            eventually_async(Duration::from_secs(5), || flag
                .load(std::sync::atomic::Ordering::SeqCst))
            .await
        );
    }
}
