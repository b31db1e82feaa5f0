//! One deployment's circuit breaker: closed (taking traffic), open (cooling down, skipped), and
//! half-open (one probe request decides). Pure and clock-injected, so every transition is tested
//! without waiting, and a shared backend can run the same rules on its own storage.

use super::window::SlidingRate;
use crate::config::CoolingMode;
use crate::providers::ErrorClass;
use std::time::{Duration, Instant};

/// The thresholds, read from `reliability.cooldown` on every call so a reload applies at once.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub allowed_fails: u32,
    pub window: Duration,
    pub duration: Duration,
    pub failure_ratio: Option<f64>,
    pub min_requests: u32,
    pub max_duration: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        let c = crate::config::CooldownConfig::default();
        Settings::from(&c)
    }
}

impl From<&crate::config::CooldownConfig> for Settings {
    fn from(c: &crate::config::CooldownConfig) -> Self {
        Settings {
            allowed_fails: c.allowed_fails,
            window: c.window.0,
            duration: c.duration.0,
            failure_ratio: c.failure_ratio,
            min_requests: c.min_requests,
            max_duration: c.max_duration.0,
        }
    }
}

/// May a request go to this deployment now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Yes,
    /// Yes, as the single probe after a cooldown: its result closes or reopens the breaker.
    Probe,
    /// Cooling down; try again after this long. The class is the failure that opened the breaker.
    No(Duration, Option<ErrorClass>),
    /// The cooldown is over but another request is out as the probe; it decides within this long.
    Probing(Duration, Option<ErrorClass>),
}

/// What a store records of one call: how it ended, and whether it was the single probe let
/// through after a cooldown (whose result closes or reopens the breaker).
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub result: CallResult,
    pub probe: bool,
}

/// How one call ended, as far as the deployment's health is concerned.
#[derive(Debug, Clone, Copy)]
pub enum CallResult {
    Success,
    Failure {
        class: ErrorClass,
        mode: CoolingMode,
        /// The provider's `Retry-After`: it cools the deployment for that long, at once.
        retry_after: Option<Duration>,
    },
}

/// A cooldown this call started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cooled {
    pub class: ErrorClass,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// A probe went out at `since`; until it reports (or times out) nobody else is let through.
    HalfOpen {
        since: Instant,
    },
}

pub struct Breaker {
    phase: Phase,
    window: SlidingRate,
    window_len: Duration,
    /// The class that opened the breaker last, shown by `/admin/deployments`.
    pub last_class: Option<ErrorClass>,
    pub last_cooldown: Option<Duration>,
    pub cooldowns: u64,
}

/// What `/admin/deployments` shows of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Healthy,
    Cooling {
        remaining: Duration,
    },
    /// Cooldown over: the next request is let through as a probe.
    ProbeReady,
    Probing,
}

impl Breaker {
    pub fn new(now: Instant, s: &Settings) -> Self {
        Breaker {
            phase: Phase::Closed,
            window: SlidingRate::starting(now, s.window),
            window_len: s.window,
            last_class: None,
            last_cooldown: None,
            cooldowns: 0,
        }
    }

    /// A probe that never reports (its client went away) must not keep the deployment out forever.
    fn probe_timeout(s: &Settings) -> Duration {
        s.duration.max(Duration::from_secs(1))
    }

    pub fn status(&self, now: Instant, s: &Settings) -> Status {
        match self.phase {
            Phase::Closed => Status::Healthy,
            Phase::Open { until } if now < until => Status::Cooling {
                remaining: until - now,
            },
            Phase::Open { .. } => Status::ProbeReady,
            Phase::HalfOpen { since } if now.duration_since(since) < Self::probe_timeout(s) => {
                Status::Probing
            }
            Phase::HalfOpen { .. } => Status::ProbeReady,
        }
    }

    pub fn admit(&mut self, now: Instant, s: &Settings) -> Admission {
        match self.status(now, s) {
            Status::Healthy => Admission::Yes,
            Status::Cooling { remaining } => Admission::No(remaining, self.last_class),
            Status::Probing => {
                let since = match self.phase {
                    Phase::HalfOpen { since } => since,
                    _ => now,
                };
                Admission::Probing(
                    Self::probe_timeout(s).saturating_sub(now.duration_since(since)),
                    self.last_class,
                )
            }
            Status::ProbeReady => {
                self.phase = Phase::HalfOpen { since: now };
                Admission::Probe
            }
        }
    }

    /// Records a call's result. `probe` says whether the call was admitted as the probe; results of
    /// calls that were already in flight when the breaker opened do not move it.
    pub fn report(
        &mut self,
        now: Instant,
        result: CallResult,
        probe: bool,
        s: &Settings,
    ) -> Option<Cooled> {
        if self.window_len != s.window {
            self.window = SlidingRate::starting(now, s.window);
            self.window_len = s.window;
        }
        let (class, mode, retry_after) = match result {
            CallResult::Success => {
                self.window.record(now, false);
                if probe || matches!(self.phase, Phase::HalfOpen { .. }) {
                    self.close(now, s);
                }
                return None;
            }
            CallResult::Failure {
                class,
                mode,
                retry_after,
            } => (class, mode, retry_after),
        };
        if mode == CoolingMode::Never {
            // The deployment answered; the request was at fault. A probe that got this far proves
            // the deployment is reachable.
            self.window.record(now, false);
            if probe {
                self.close(now, s);
            }
            return None;
        }
        match self.phase {
            Phase::Open { .. } => return None,
            Phase::HalfOpen { .. } if !probe => return None,
            Phase::HalfOpen { .. } => return Some(self.open(now, class, s.duration)),
            Phase::Closed => {}
        }
        if let Some(wait) = retry_after.filter(|d| !d.is_zero()) {
            return Some(self.open(now, class, wait.min(s.max_duration)));
        }
        if mode == CoolingMode::Immediate {
            return Some(self.open(now, class, s.duration));
        }
        self.window.record(now, true);
        let (calls, fails) = self.window.counts(now);
        let over_count = fails > u64::from(s.allowed_fails);
        let over_ratio = s.failure_ratio.is_some_and(|r| {
            calls >= u64::from(s.min_requests.max(1)) && fails as f64 / calls as f64 >= r
        });
        (over_count || over_ratio).then(|| self.open(now, class, s.duration))
    }

    fn open(&mut self, now: Instant, class: ErrorClass, d: Duration) -> Cooled {
        self.phase = Phase::Open { until: now + d };
        self.last_class = Some(class);
        self.last_cooldown = Some(d);
        self.cooldowns += 1;
        Cooled { class, duration: d }
    }

    fn close(&mut self, now: Instant, s: &Settings) {
        self.phase = Phase::Closed;
        // Failures from before the cooldown must not count against the recovered deployment.
        self.window = SlidingRate::starting(now, s.window);
    }

    /// (calls, failures) within the window.
    pub fn counts(&self, now: Instant) -> (u64, u64) {
        self.window.counts(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            allowed_fails: 2,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(30),
            failure_ratio: None,
            min_requests: 10,
            max_duration: Duration::from_secs(300),
        }
    }

    fn fail(mode: CoolingMode) -> CallResult {
        CallResult::Failure {
            class: ErrorClass::ServerError,
            mode,
            retry_after: None,
        }
    }

    #[test]
    fn opens_after_allowed_fails_then_probes_once() {
        let s = settings();
        let t = Instant::now();
        let mut b = Breaker::new(t, &s);
        assert_eq!(b.report(t, fail(CoolingMode::Count), false, &s), None);
        assert_eq!(b.report(t, fail(CoolingMode::Count), false, &s), None);
        let cooled = b.report(t, fail(CoolingMode::Count), false, &s);
        assert_eq!(
            cooled,
            Some(Cooled {
                class: ErrorClass::ServerError,
                duration: Duration::from_secs(30)
            })
        );
        assert_eq!(
            b.admit(t + Duration::from_secs(10), &s),
            Admission::No(Duration::from_secs(20), Some(ErrorClass::ServerError))
        );
        let later = t + Duration::from_secs(31);
        assert_eq!(b.admit(later, &s), Admission::Probe);
        // While the probe is out, nobody else goes.
        assert!(matches!(
            b.admit(later, &s),
            Admission::Probing(_, Some(ErrorClass::ServerError))
        ));
        // A failed probe reopens for the full duration.
        assert!(
            b.report(later, fail(CoolingMode::Count), true, &s)
                .is_some()
        );
        let again = later + Duration::from_secs(31);
        assert_eq!(b.admit(again, &s), Admission::Probe);
        b.report(again, CallResult::Success, true, &s);
        assert_eq!(b.admit(again, &s), Admission::Yes);
        // The window restarted: two fresh failures are allowed again.
        assert_eq!(b.report(again, fail(CoolingMode::Count), false, &s), None);
        assert_eq!(b.cooldowns, 2);
    }

    #[test]
    fn retry_after_and_immediate_cool_at_once() {
        let s = settings();
        let t = Instant::now();
        let mut b = Breaker::new(t, &s);
        let r = CallResult::Failure {
            class: ErrorClass::RateLimit,
            mode: CoolingMode::Count,
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            b.report(t, r, false, &s).map(|c| c.duration),
            Some(Duration::from_secs(7))
        );
        assert_eq!(b.admit(t + Duration::from_secs(8), &s), Admission::Probe);
        b.report(t, CallResult::Success, true, &s);
        let mut b = Breaker::new(t, &s);
        assert!(
            b.report(t, fail(CoolingMode::Immediate), false, &s)
                .is_some()
        );
        // A never-cooling failure (a bad request) does not count at all.
        let mut b = Breaker::new(t, &s);
        for _ in 0..10 {
            assert_eq!(b.report(t, fail(CoolingMode::Never), false, &s), None);
        }
        assert_eq!(b.admit(t, &s), Admission::Yes);
    }

    #[test]
    fn failure_ratio_needs_min_requests() {
        let mut s = settings();
        s.allowed_fails = 100;
        s.failure_ratio = Some(0.5);
        s.min_requests = 4;
        let t = Instant::now();
        let mut b = Breaker::new(t, &s);
        b.report(t, CallResult::Success, false, &s);
        assert_eq!(b.report(t, fail(CoolingMode::Count), false, &s), None);
        b.report(t, CallResult::Success, false, &s);
        assert!(b.report(t, fail(CoolingMode::Count), false, &s).is_some());
    }

    #[test]
    fn late_results_do_not_move_an_open_breaker() {
        let s = settings();
        let t = Instant::now();
        let mut b = Breaker::new(t, &s);
        b.report(t, fail(CoolingMode::Immediate), false, &s);
        assert_eq!(b.report(t, fail(CoolingMode::Immediate), false, &s), None);
        assert_eq!(b.cooldowns, 1);
        // The probe window expires if its request never reports back.
        let t2 = t + Duration::from_secs(31);
        assert_eq!(b.admit(t2, &s), Admission::Probe);
        assert_eq!(b.admit(t2 + Duration::from_secs(31), &s), Admission::Probe);
    }
}
