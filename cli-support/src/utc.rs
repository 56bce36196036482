//! UTC time stamps as RFC 3339 text (`humantime`), for any time a program
//! may meet: a time before 1970 is shown as the epoch and one after
//! 9999-12-31T23:59:59 as that second, since RFC 3339 has four-digit years
//! and `humantime` cannot show either. A time read from input (a document's
//! time stamp) never makes formatting fail.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from the epoch to 9999-12-31T23:59:59Z, the last second RFC 3339
/// can write.
const LAST_SECOND: u64 = 253_402_300_799;

/// `2026-01-31T12:34:56.789Z`: UTC with milliseconds.
pub fn utc_millis(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(clamp(time)).to_string()
}

/// `2026-01-31T12:34:56Z`: UTC to the second.
pub fn utc_seconds(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(clamp(time)).to_string()
}

/// [`utc_seconds`] of a time given as milliseconds since the epoch.
pub fn utc_seconds_from_millis(millis: u64) -> String {
    utc_seconds(
        UNIX_EPOCH
            .checked_add(Duration::from_millis(millis))
            .unwrap_or_else(last_second),
    )
}

fn last_second() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(LAST_SECOND)
}

fn clamp(time: SystemTime) -> SystemTime {
    match time.duration_since(UNIX_EPOCH) {
        Err(_) => UNIX_EPOCH,
        Ok(since) if since.as_secs() > LAST_SECOND => last_second(),
        Ok(_) => time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_and_without_milliseconds() {
        assert_eq!(utc_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(utc_millis(t), "2024-02-29T12:34:56.789Z");
        assert_eq!(utc_seconds(t), "2024-02-29T12:34:56Z");
        assert_eq!(utc_seconds_from_millis(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            utc_seconds_from_millis(951_782_400_000),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            utc_seconds_from_millis(1_789_000_000_123),
            "2026-09-10T00:26:40Z"
        );
    }

    #[test]
    fn times_rfc3339_cannot_write_are_clamped_not_a_panic() {
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(utc_millis(before), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_seconds_from_millis(u64::MAX), "9999-12-31T23:59:59Z");
        let far = UNIX_EPOCH + Duration::from_secs(LAST_SECOND + 10);
        assert_eq!(utc_millis(far), "9999-12-31T23:59:59.000Z");
        assert_eq!(
            utc_seconds(UNIX_EPOCH + Duration::from_secs(LAST_SECOND)),
            "9999-12-31T23:59:59Z"
        );
    }
}
