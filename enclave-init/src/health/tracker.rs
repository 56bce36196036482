//! The health of one service, from its probes' results: consecutive
//! failures against the threshold, the grace period after each start, and
//! the counters `initctl status` shows. No I/O: the supervisor feeds it.

use std::time::{Duration, Instant, SystemTime};

use crate::health::probe::ProbeOutcome;
use crate::health::report::{Health, HealthInfo, ProbeReport};
use crate::health::spec::HealthCheck;
use crate::logs::format_utc;

/// What the supervisor should do after a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing.
    Nothing,
    /// The threshold was just reached: the service is unhealthy.
    Unhealthy,
}

#[derive(Debug, Clone)]
struct LastProbe {
    outcome: ProbeOutcome,
    at: SystemTime,
    ended: Instant,
    took: Duration,
}

/// Health state of one service across its runs.
#[derive(Debug, Clone)]
pub struct Tracker {
    check: HealthCheck,
    started: Instant,
    in_grace: bool,
    health: Health,
    consecutive_failures: u32,
    times_unhealthy: u32,
    unhealthy_restarts: u32,
    last: Option<LastProbe>,
}

impl Tracker {
    /// A tracker for a run that started at `now`.
    pub fn new(check: HealthCheck, now: Instant) -> Self {
        Self {
            check,
            started: now,
            in_grace: true,
            health: Health::Starting,
            consecutive_failures: 0,
            times_unhealthy: 0,
            unhealthy_restarts: 0,
            last: None,
        }
    }

    /// A new run started at `now` (with `check`, which a reload may have
    /// changed): the grace period and the failure count start over; the
    /// totals and the last result stay.
    pub fn restart(&mut self, check: HealthCheck, now: Instant) {
        self.check = check;
        self.started = now;
        self.in_grace = true;
        self.health = Health::Starting;
        self.consecutive_failures = 0;
    }

    /// The check.
    pub fn check(&self) -> &HealthCheck {
        &self.check
    }

    /// The current state.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Consecutive failed probes (failures in the grace period do not count).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Whether the grace period still holds at `now`.
    fn grace(&self, now: Instant) -> bool {
        self.in_grace && now.saturating_duration_since(self.started) < self.check.start_period
    }

    /// Records a probe that ended at `now` (`at` on the wall clock) after `took`.
    pub fn record(
        &mut self,
        outcome: ProbeOutcome,
        now: Instant,
        at: SystemTime,
        took: Duration,
    ) -> Verdict {
        let healthy = outcome.healthy;
        let grace = self.grace(now);
        self.last = Some(LastProbe {
            outcome,
            at,
            ended: now,
            took,
        });
        if healthy {
            self.in_grace = false;
            self.consecutive_failures = 0;
            self.health = Health::Healthy;
            return Verdict::Nothing;
        }
        if grace {
            return Verdict::Nothing;
        }
        self.in_grace = false;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures >= self.check.retries && self.health != Health::Unhealthy {
            self.health = Health::Unhealthy;
            self.times_unhealthy = self.times_unhealthy.saturating_add(1);
            return Verdict::Unhealthy;
        }
        Verdict::Nothing
    }

    /// Counts a restart made because the service was unhealthy.
    pub fn count_restart(&mut self) {
        self.unhealthy_restarts = self.unhealthy_restarts.saturating_add(1);
    }

    /// The last probe's result in words, if any.
    pub fn last_result(&self) -> Option<&str> {
        self.last.as_ref().map(|l| l.outcome.message.as_str())
    }

    /// The record `initctl status` shows.
    pub fn info(&self, now: Instant) -> HealthInfo {
        HealthInfo {
            check: self.check.to_string(),
            health: self.health,
            in_start_period: self.health == Health::Starting && self.grace(now),
            consecutive_failures: self.consecutive_failures,
            retries: self.check.retries,
            times_unhealthy: self.times_unhealthy,
            unhealthy_restarts: self.unhealthy_restarts,
            last_probe: self.last.as_ref().map(|l| ProbeReport {
                healthy: l.outcome.healthy,
                result: l.outcome.message.clone(),
                at: format_utc(l.at),
                age_ms: u64::try_from(now.saturating_duration_since(l.ended).as_millis())
                    .unwrap_or(u64::MAX),
                took_ms: u64::try_from(l.took.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::spec::{Probe, RawHealthCheck};

    fn check(retries: i64, start_period: f64) -> HealthCheck {
        RawHealthCheck {
            tcp: Some("127.0.0.1:1".into()),
            retries: Some(retries),
            start_period_sec: Some(start_period),
            interval_sec: Some(1.0),
            ..Default::default()
        }
        .validate()
        .unwrap()
        .unwrap()
    }

    fn feed(t: &mut Tracker, healthy: bool, at: Instant) -> Verdict {
        let outcome = if healthy {
            ProbeOutcome::ok("fine")
        } else {
            ProbeOutcome::failed("broken")
        };
        t.record(outcome, at, SystemTime::now(), Duration::from_millis(3))
    }

    #[test]
    fn the_threshold_acts_once_and_a_success_resets() {
        let t0 = Instant::now();
        let mut t = Tracker::new(check(3, 0.0), t0);
        assert!(matches!(t.check().probe, Probe::Tcp(_)));
        assert_eq!(t.health(), Health::Starting);
        assert_eq!(feed(&mut t, false, t0), Verdict::Nothing);
        assert_eq!(feed(&mut t, false, t0), Verdict::Nothing);
        assert_eq!(t.consecutive_failures(), 2);
        assert_eq!(feed(&mut t, false, t0), Verdict::Unhealthy);
        assert_eq!(t.health(), Health::Unhealthy);
        assert_eq!(feed(&mut t, false, t0), Verdict::Nothing, "acted once");
        assert_eq!(feed(&mut t, true, t0), Verdict::Nothing);
        assert_eq!((t.health(), t.consecutive_failures()), (Health::Healthy, 0));
        let info = t.info(t0);
        assert_eq!(info.times_unhealthy, 1);
        assert_eq!(info.last_probe.unwrap().result, "fine");
        for _ in 0..2 {
            assert_eq!(feed(&mut t, false, t0), Verdict::Nothing);
        }
        assert_eq!(
            feed(&mut t, false, t0),
            Verdict::Unhealthy,
            "again after recovery"
        );
    }

    #[test]
    fn the_start_period_forgives_until_it_ends_or_a_probe_succeeds() {
        let t0 = Instant::now();
        let mut t = Tracker::new(check(1, 10.0), t0);
        for _ in 0..5 {
            assert_eq!(
                feed(&mut t, false, t0 + Duration::from_secs(1)),
                Verdict::Nothing
            );
        }
        assert_eq!(
            (t.health(), t.consecutive_failures()),
            (Health::Starting, 0)
        );
        assert!(t.info(t0).in_start_period);
        assert_eq!(t.last_result(), Some("broken"));
        // After the start period, one failure is enough (retries = 1).
        assert_eq!(
            feed(&mut t, false, t0 + Duration::from_secs(11)),
            Verdict::Unhealthy
        );
        // A restart gives a new grace period and keeps the totals.
        t.count_restart();
        let t1 = t0 + Duration::from_secs(20);
        t.restart(check(1, 10.0), t1);
        assert_eq!(t.health(), Health::Starting);
        assert_eq!(feed(&mut t, false, t1), Verdict::Nothing);
        // A success ends the grace early.
        assert_eq!(feed(&mut t, true, t1), Verdict::Nothing);
        assert_eq!(feed(&mut t, false, t1), Verdict::Unhealthy);
        let info = t.info(t1);
        assert_eq!((info.times_unhealthy, info.unhealthy_restarts), (2, 1));
        assert!(!info.in_start_period);
    }
}
